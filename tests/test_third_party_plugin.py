"""A third-party plugin works with no edit to the orchestrator: installed for real, run for real.

The example distribution (``examples/orchestrator-plugin-example``) and two broken
fixture distributions (``tests/fixtures/``) are installed with
``pip install --no-deps --target <tmp>``; the real CLI runs in a subprocess with
that folder on ``PYTHONPATH``, and the MLflow store it wrote is read back.
``docs/writing-plugins.md`` quotes the example's files verbatim; a test here keeps
them identical.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY, assert_user_error, cli_env, mlflow_client, only_run, run_cli

EXAMPLE = REPO / "examples" / "orchestrator-plugin-example"
FIXTURES = REPO / "tests" / "fixtures"
DOC = REPO / "docs" / "writing-plugins.md"
DIST = "orchestrator-plugin-example"
ORIGIN = f"plugin 'example' ({DIST})"

# -- Installing distributions --------------------------------------------------------


def pip_install(source: Path, target: Path) -> Path:
    """``pip install --no-deps --target target source``, as a user would install it.

    pip builds in the source tree (``build/``, ``*.egg-info``), so it builds a copy.
    The installed setuptools is tried first (fast, offline), then build isolation.
    """
    copy = target.with_name(f"{target.name}-src")
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
        "--disable-pip-version-check", "--target", str(target),
    ]  # fmt: skip
    for isolation in (["--no-build-isolation"], []):
        shutil.rmtree(target, ignore_errors=True)
        result = subprocess.run(
            [*command, *isolation, str(copy)], capture_output=True, text=True, timeout=300
        )
        if result.returncode == 0:
            return target
    pytest.fail(f"pip could not install {source}:\n{result.stdout}\n{result.stderr}")


def plugin_env(*folders: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment with ``folders`` first on ``PYTHONPATH``."""
    path = [str(folder) for folder in folders]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return cli_env(PYTHONPATH=os.pathsep.join(path), **extra)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The folder the example distribution is installed in."""
    return pip_install(EXAMPLE, tmp_path_factory.mktemp("example") / "site")


@pytest.fixture(scope="module")
def duplicate(tmp_path_factory) -> Path:
    return pip_install(FIXTURES / "duplicate-plugin", tmp_path_factory.mktemp("dup") / "site")


@pytest.fixture(scope="module")
def misspelt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("misspelt") / "site"
    return pip_install(FIXTURES / "misspelt-hook-plugin", folder)


@pytest.fixture(scope="module")
def same_name(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("same-name") / "site"
    return pip_install(FIXTURES / "same-name-plugin", folder)


@dataclass
class Entries:
    """Where the example's config entries are found.

    Attributes:
        env: a CLI environment in which ``data=blobs`` and ``+experiment=blobs`` compose.
        preset: the ``+experiment=blobs --cfg job`` output in that environment.
    """

    env: dict[str, str]
    preset: str


@pytest.fixture(scope="module")
def entries(example, tmp_path_factory) -> Entries:
    folder = tmp_path_factory.mktemp("compose")
    env = plugin_env(example)
    result = run_cli("+experiment=blobs", "--cfg", "job", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr
    return Entries(env, result.stdout)


def listing(stdout: str) -> dict[str, dict[str, str]]:
    """``python -m orchestrator plugins`` output as ``{kind: {name: origin}}``."""
    kinds: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in stdout.splitlines():
        if re.fullmatch(r"\w+ \(\d+\)", line):
            current = kinds.setdefault(line.split()[0], {})
        elif line.startswith("  "):
            name, origin = line.split(None, 1)
            current[name] = origin.strip()
    return kinds


# -- The example plugin ----------------------------------------------------------------


def test_plugins_lists_the_example_parts_with_their_distribution(example, workdir):
    result = run_cli("plugins", cwd=workdir, env=plugin_env(example))
    assert result.returncode == 0, result.stderr
    assert f"example ({DIST})" in result.stdout.splitlines()[0]
    kinds = listing(result.stdout)
    assert kinds["data_source"]["blobs"] == ORIGIN
    assert kinds["loss"]["smoothed_crossentropy"] == ORIGIN
    assert kinds["stage"]["summary"] == ORIGIN
    assert kinds["data_source"]["mnist"] == "plugin 'mnist' (keras-orchestrator)"


def test_the_plugin_module_imports_no_tensorflow_keras_or_mlflow(example):
    script = (
        "import sys, orchestrator_plugin_example\n"
        "heavy = sorted({'tensorflow', 'keras', 'mlflow'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=plugin_env(example), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_hook_tracing_shows_the_plugin_registering(example, workdir):
    result = run_cli("plugins", cwd=workdir, env=plugin_env(example, ORCHESTRATOR_TRACE_HOOKS="1"))
    assert result.returncode == 0, result.stderr
    for hook in ("data_sources", "losses", "stages"):
        assert f"[hook] orchestrator_register_{hook} <- example" in result.stderr


def test_the_plugin_config_entries_compose_from_any_folder(entries):
    cfg = yaml.safe_load(entries.preset)
    assert cfg["data"]["name"] == "blobs" and cfg["data"]["samples"] == 1200
    assert cfg["loss"] == {"name": "smoothed_crossentropy", "smoothing": 0.1, "from_logits": False}
    assert cfg["stages"]["summary"] == {"kind": "summary"}
    assert list(cfg["stages"]) == ["fit", "test", "predict", "summary"]
    assert cfg["model"]["hidden_units"] == [16]


@pytest.mark.slow
def test_a_run_selecting_the_plugin_entries_is_tracked_in_mlflow(entries, workdir):
    result = run_cli(
        "data=blobs",
        "loss=smoothed_crossentropy",
        "+stages.summary.kind=summary",
        "tracking.experiment_name=plugin_example",
        *TINY,
        cwd=workdir,
        env=entries.env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    run = only_run(workdir, "plugin_example")
    assert run.info.status == "FINISHED"
    assert run.data.tags["data_source"] == "blobs"
    assert run.data.params["data.name"] == "blobs"
    assert run.data.params["loss.name"] == "smoothed_crossentropy"
    assert run.data.params["loss.smoothing"] == "0.1"
    assert run.data.params["stages.summary.kind"] == "summary"
    assert "test/loss" in run.data.metrics
    client = mlflow_client(workdir)
    summary = [a.path for a in client.list_artifacts(run.info.run_id, "summary")]
    assert summary == ["summary/model_summary.txt"]
    local = Path(client.download_artifacts(run.info.run_id, summary[0], str(workdir)))
    text = local.read_text(encoding="utf-8")
    assert "Total params" in text and "predictions (Dense)" in text


@pytest.mark.parametrize(
    ("selection", "words"),
    [
        ("data=blobs", ["data: no option 'blobs'", "mnist", "ORCHESTRATOR_DISABLE_PLUGINS blocks"]),
        ("data.name=blobs", ["data.name", "unknown data_source 'blobs'", "mnist"]),
    ],
)
def test_a_blocked_plugin_cannot_be_selected(entries, workdir, selection, words):
    env = {**entries.env, "ORCHESTRATOR_DISABLE_PLUGINS": "example"}
    assert_user_error(run_cli(selection, *TINY, cwd=workdir, env=env), *words)
    assert not (workdir / "mlflow.db").exists(), "no run may start"


def test_a_blocked_plugin_is_not_listed(example, workdir):
    env = plugin_env(example, ORCHESTRATOR_DISABLE_PLUGINS="example")
    result = run_cli("plugins", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    assert DIST not in result.stdout and "blobs" not in listing(result.stdout)["data_source"]


def test_a_typo_in_a_plugin_argument_fails_before_the_run_starts(entries, workdir):
    result = run_cli("data=blobs", "+data.sampels=10", cwd=workdir, env=entries.env)
    assert_user_error(result, "data.sampels", "Did you mean 'samples'?")
    assert not (workdir / "mlflow.db").exists(), "no run may start"


# -- Broken plugins ----------------------------------------------------------------------


@pytest.mark.parametrize("args", [["plugins"], ["data=mnist", *TINY]])
def test_two_plugins_registering_one_name_stop_the_cli_naming_both(duplicate, workdir, args):
    result = run_cli(*args, cwd=workdir, env=plugin_env(duplicate))
    assert_user_error(
        result,
        "data_source 'mnist' is registered twice",
        "plugin 'mnist' (keras-orchestrator)",
        "plugin 'duplicate_mnist' (orchestrator-duplicate-fixture)",
        "ORCHESTRATOR_DISABLE_PLUGINS",
    )


@pytest.mark.parametrize("args", [["plugins"], ["data=mnist", *TINY]])
def test_a_misspelt_hook_name_stops_the_cli_naming_the_plugin(misspelt, workdir, args):
    result = run_cli(*args, cwd=workdir, env=plugin_env(misspelt))
    assert_user_error(
        result,
        "plugin 'misspelt'",
        "orchestrator_register_losess",
        "Did you mean 'orchestrator_register_losses'?",
    )


def test_two_plugins_with_one_entry_point_name_stop_the_cli_naming_both(same_name, workdir):
    result = run_cli("plugins", cwd=workdir, env=plugin_env(same_name))
    assert_user_error(result, "plugin 'mnist'", "keras-orchestrator", "orchestrator-same-name-fixture")


# -- The guide ---------------------------------------------------------------------------

VERBATIM = re.compile(r"<!-- verbatim: (?P<path>\S+) -->\n```\w*\n(?P<body>.*?)```\n", re.S)


@pytest.mark.parametrize(
    ("doc", "required"),
    [
        (
            DOC,
            {
                "examples/orchestrator-plugin-example/pyproject.toml",
                "examples/orchestrator-plugin-example/orchestrator_plugin_example/__init__.py",
            },
        ),
        (
            REPO / "README.md",
            {"examples/scaled-mse-plugin/pyproject.toml", "examples/scaled-mse-plugin/scaled_mse_plugin.py"},
        ),
    ],
    ids=["writing-plugins", "readme"],
)
def test_the_docs_quote_the_example_files_verbatim(doc, required):
    blocks = {m["path"]: m["body"] for m in VERBATIM.finditer(doc.read_text(encoding="utf-8"))}
    assert required <= set(blocks)
    stale = [path for path, body in blocks.items() if body != (REPO / path).read_text(encoding="utf-8")]
    assert not stale, f"{doc.name} quotes an old version of {stale}: copy them again"


@pytest.mark.slow
def test_the_readme_plugin_example_installs_and_its_loss_trains_the_model(tmp_path_factory, workdir):
    site = pip_install(REPO / "examples" / "scaled-mse-plugin", tmp_path_factory.mktemp("readme") / "site")
    env = plugin_env(site)
    listing = run_cli("plugins", cwd=workdir, env=env)
    assert re.search(r"^  scaled_mse +plugin 'scaled_mse' \(scaled-mse-plugin\)$", listing.stdout, re.M)
    result = run_cli(
        "+experiment=mnist", "data.source=bundled", "data.one_hot=true", "metrics=none",
        "loss.name=scaled_mse", "+loss.scale=2.0", "trainer.epochs=1", "trainer.limit_batches=5",
        "stages.predict=null",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run(workdir, "mnist")
    assert run.data.params["loss.name"] == "scaled_mse" and run.data.params["loss.scale"] == "2.0"

    import keras
    import numpy as np

    from orchestrator_plugins.mnist import mnist

    model = keras.saving.load_model(
        Path(run.data.tags["orchestrator.output_dir"]) / "model.keras", compile=False
    )
    x, y = mnist(source="bundled", one_hot=True).test
    seen = 5 * 128  # limit_batches x the evaluate stage's batch size
    mse = np.mean(np.square(y[:seen] - model.predict(x[:seen], verbose=0)), axis=-1)
    assert run.data.metrics["test/loss"] == pytest.approx(2.0 * mse.mean(), rel=1e-4)


def test_the_guide_quotes_the_entry_point_section():
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[project\.entry-points\.orchestrator\]\n(?:.+\n)+", pyproject, re.M)
    assert section is not None
    assert section[0] == '[project.entry-points.orchestrator]\nexample = "orchestrator_plugin_example"\n'
    assert section[0] in DOC.read_text(encoding="utf-8")


def test_the_guide_names_every_hook():
    from orchestrator import hookspecs

    hooks = [name for name in vars(hookspecs) if name.startswith("orchestrator_")]
    text = DOC.read_text(encoding="utf-8")
    missing = [hook for hook in hooks if f"`{hook}(" not in text]
    assert hooks and not missing, f"docs/writing-plugins.md, section 4, lacks the hooks {missing}"
