"""The plugin API as a contract: what plugins may import, every hook documented and called, no process state.

A fixture plugin (tests/fixtures/hook-site) implements every hook and records
each call; a run and a sweep through the real CLI show the documented order.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import orchestrator
from orchestrator import hookspecs
from tests.conftest import REPO, TINY, cli_env, run_cli

HOOK_SITE = REPO / "tests" / "fixtures" / "hook-site"
#: Modules that are built-in plugins (registered by an entry point), beside plugins/.
PLUGIN_MODULES = [
    *sorted((REPO / "plugins").rglob("*.py")),
    REPO / "hydra_plugins" / "orchestrator_optuna_sweeper" / "pruning.py",
    REPO / "hydra_plugins" / "orchestrator_optuna_sweeper" / "_keras_pruning.py",
]
HOOKS = sorted(
    name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("orchestrator_")
)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in a file (``names`` empty for ``import x``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def test_built_in_plugins_import_only_the_public_api():
    public = {"hookimpl", "hookspec", "PROJECT_NAME", *orchestrator.PUBLIC}
    wrong = []
    for path in PLUGIN_MODULES:
        for module, names in imports_of(path):
            if module.startswith("orchestrator."):
                wrong.append(f"{path.relative_to(REPO)}: {module}")
            elif module == "orchestrator":
                wrong += [f"{path.relative_to(REPO)}: orchestrator.{n}" for n in names if n not in public]
    assert not wrong, "built-in plugins import host internals:\n" + "\n".join(wrong)


def test_every_public_name_imports_without_tensorflow_keras_or_mlflow():
    code = (
        "import sys, orchestrator\n"
        "[getattr(orchestrator, name) for name in orchestrator.PUBLIC]\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'mlflow')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


#: Calls at module level that make state code could change between runs.
MUTABLE_TYPES = ("dict", "list", "set", "defaultdict", "deque", "OrderedDict", "Counter", "ContextVar")


def test_the_host_and_the_plugins_keep_no_module_level_state():
    """No ``global`` statement, and no module-level name (other than an UPPER_CASE constant) bound to a
    dict, list or set that code could change between runs."""
    found = []
    sources = [*(REPO / "orchestrator").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]
    for path in sources:
        tree = ast.parse(path.read_text())
        found += [
            f"{path.relative_to(REPO)}:{n.lineno} global" for n in ast.walk(tree) if isinstance(n, ast.Global)
        ]
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            value = getattr(node, "value", None)
            called = value.func if isinstance(value, ast.Call) else None
            name = getattr(called, "id", None) or getattr(called, "attr", "")
            mutable = isinstance(value, (ast.Dict, ast.List, ast.Set)) or name in MUTABLE_TYPES
            for target in targets:
                if (
                    mutable
                    and isinstance(target, ast.Name)
                    and not target.id.isupper()
                    and target.id != "__all__"
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {target.id}")
    assert not found, "module-level state:\n" + "\n".join(found)


def test_every_hook_is_typed_documented_and_in_the_reference():
    reference = (REPO / "docs" / "writing-plugins.md").read_text()
    for name in HOOKS:
        spec = getattr(hookspecs, name)
        signature = inspect.signature(spec)
        assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name
        assert signature.return_annotation is not inspect.Signature.empty, name
        assert spec.__doc__ and len(spec.__doc__.strip()) > 40, f"{name} has no reference docstring"
        assert f"| `{name}(" in reference, f"{name} is missing from the hook table of docs/writing-plugins.md"


def test_the_hook_recorder_fixture_implements_every_hook():
    sys.path.insert(0, str(HOOK_SITE))
    try:
        import orchestrator_hook_recorder as recorder
    finally:
        sys.path.remove(str(HOOK_SITE))
    implemented = sorted(n for n in vars(recorder) if n.startswith("orchestrator_"))
    assert implemented == HOOKS


def _recorder_env(record: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(HOOK_SITE), os.environ.get("PYTHONPATH")]))
    return cli_env(PYTHONPATH=path, ORCHESTRATOR_HOOK_RECORD=str(record))


def _calls(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_every_hook_is_called_in_the_documented_order_in_a_sweep(workdir):
    """before_sweep, then per job before_run, (before_stage, after_epoch*, after_stage)*, after_run;
    then after_sweep; the registration hooks and the search path before anything runs."""
    record = workdir / "hooks.jsonl"
    result = run_cli(
        "-m",
        "+experiment=mnist",
        *TINY,
        "trainer.epochs=2",
        "seed=1,2",
        "stages.predict=null",
        "tracking.log_model=false",
        cwd=workdir,
        env=_recorder_env(record),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    calls = _calls(record)
    assert {c["hook"] for c in calls} == {name.removeprefix("orchestrator_") for name in HOOKS}
    lifecycle = [c for c in calls if not c["hook"].startswith(("register_", "config_", "on_"))]
    names = [c["hook"] for c in lifecycle]
    one_run = [
        "before_run",
        "before_stage",
        "fit_callbacks",
        "after_epoch",
        "after_epoch",
        "after_stage",
        "before_stage",
        "after_stage",
        "after_run",
    ]
    assert names == ["before_sweep", *one_run, *one_run, "after_sweep"]
    epochs = [c["epoch"] for c in lifecycle if c["hook"] == "after_epoch"]
    assert epochs == [0, 1, 0, 1]
    assert [c["stage"] for c in lifecycle if c["hook"] == "before_stage"] == ["fit", "test", "fit", "test"]
    assert all(
        c["error"] is None and c["status"] == "FINISHED" for c in lifecycle if c["hook"] == "after_run"
    )
    assert lifecycle[-1]["jobs"] == [0, 1] and lifecycle[-1]["statuses"] == ["FINISHED", "FINISHED"]
    checkpoints = [Path(c["checkpoint"]).name for c in lifecycle if c["hook"] == "after_epoch"]
    assert checkpoints == ["epoch-001.keras", "epoch-002.keras"] * 2
    first_run = next(i for i, c in enumerate(calls) if c["hook"] == "before_run")
    assert all(c["hook"] != "on_artifact" for c in calls[:first_run])


def test_a_plugin_check_refuses_a_value_before_tensorflow_and_before_any_run(workdir):
    record = workdir / "hooks.jsonl"
    result = run_cli(
        "+experiment=mnist",
        "+stages.check.kind=checked_stage",
        "+stages.check.value=-1",
        cwd=workdir,
        env=_recorder_env(record),
    )
    assert result.returncode == 2
    assert "stages.check.value: must be 0 or more, got -1." in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "mlflow.db").exists()
    assert not list(workdir.glob("outputs/*/*/checkpoints")) and not list(
        workdir.glob("outputs/*/*/mlflow-spool")
    )
    assert "before_run" not in {c["hook"] for c in _calls(record)}


def test_every_host_module_is_in_the_architecture_map():
    """docs/architecture.md maps every module of the host and of the built-in plugins to its job."""
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted([*(REPO / "orchestrator").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]):
        if path.name != "__init__.py" and f"`{path.stem}" not in text:
            missing.append(str(path.relative_to(REPO)))
    assert not missing, "not in docs/architecture.md: " + ", ".join(missing)
