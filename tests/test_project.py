"""A project folder of the user's own: ``init`` writes it, and the orchestrator run inside it finds its
configs and plugin (``[tool.orchestrator]`` in its pyproject.toml, orchestrator/project.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY, assert_user_error, cli_env, mlflow_client, only_run, run_cli

#: The folder ``init`` writes: its name is not a Python name, so the project is called ``my_proj``.
FOLDER = "my-proj"
NAME = "my_proj"
PLUGIN = f"{NAME}_plugin"


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A project written by ``python -m orchestrator init my-proj``, and what init printed."""
    parent = tmp_path_factory.mktemp("projects")
    result = run_cli("init", FOLDER, cwd=parent)
    assert result.returncode == 0, result.stderr
    return parent / FOLDER, result


@pytest.fixture(scope="module")
def project(scaffold) -> Path:
    return scaffold[0]


def small_project(folder: Path, table: str, files: dict[str, str] | None = None) -> Path:
    """A project folder with ``table`` as its ``[tool.orchestrator]`` table and ``files`` in it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f"[tool.orchestrator]\n{table}\n")
    for name, text in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_init_writes_a_project_named_after_its_folder(scaffold):
    project, result = scaffold
    written = sorted(str(path.relative_to(project)) for path in project.rglob("*") if path.is_file())
    assert written == sorted(
        [
            ".gitignore",
            "README.md",
            "pyproject.toml",
            f"{PLUGIN}.py",
            f"conf/data/{NAME}.yaml",
            f"conf/experiment/{NAME}.yaml",
            f"conf/model/{NAME}.yaml",
            f"tests/test_{NAME}.py",
        ]
    )
    assert f'plugins = ["{PLUGIN}"]' in (project / "pyproject.toml").read_text()
    assert f"python -m orchestrator +experiment={NAME}" in result.stdout
    assert f"python -m orchestrator +experiment={NAME}" in (project / "README.md").read_text()
    assert "{{name}}" not in "".join(path.read_text() for path in project.rglob("*") if path.is_file())


def test_plugins_lists_the_project_plugin_with_its_file_from_a_subfolder(project):
    result = run_cli("plugins", cwd=project / "conf" / "experiment")
    assert result.returncode == 0, result.stderr
    assert f"{PLUGIN} (project {FOLDER}: {project / f'{PLUGIN}.py'})" in result.stdout
    assert f"Project: {project} (pyproject.toml); configs: {project / 'conf'}" in result.stdout
    for kind in ("data_source", "model_builder"):
        section = result.stdout.split(f"\n{kind} (")[1].split("\n\n")[0]
        assert f"  {NAME}" in section and f"plugin '{PLUGIN}' (project {FOLDER})" in section


def test_the_project_packages_are_trusted_as_targets_and_nothing_else(project):
    result = run_cli(f"+experiment={NAME}", "+callbacks.x={_target_: os.system}", cwd=project)
    assert_user_error(result, "callbacks.x._target_", "'os.system' is not allowed", f"{PLUGIN}.")


def test_a_blocked_project_plugin_is_named_when_its_data_source_is_selected(project):
    env = cli_env(ORCHESTRATOR_DISABLE_PLUGINS=PLUGIN)
    assert PLUGIN not in run_cli("plugins", cwd=project, env=env).stdout
    result = run_cli(f"+experiment={NAME}", cwd=project, env=env)
    assert_user_error(result, "data.name", f"unknown data_source '{NAME}'", f"blocks the plugin(s) {PLUGIN}")


def test_orchestrator_project_none_leaves_the_project_out(project):
    result = run_cli("plugins", cwd=project, env=cli_env(ORCHESTRATOR_PROJECT="none"))
    assert result.returncode == 0 and PLUGIN not in result.stdout and "Project:" not in result.stdout


@pytest.mark.slow
def test_a_run_inside_the_project_trains_its_data_and_model_and_records_them(project):
    """Run from a folder below the project root: the project's preset, data source and model builder."""
    folder = project / "runs"
    folder.mkdir()
    # The review's model and plots are not the point here: mlflow_review is left out to keep the run short.
    env = cli_env(ORCHESTRATOR_DISABLE_PLUGINS="mlflow_review")
    result = run_cli(f"+experiment={NAME}", *TINY, "stages.predict=null", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run(folder, NAME)
    assert run.info.status == "FINISHED"
    assert run.data.tags["data_source"] == f"{NAME} (generated)"
    assert (run.data.params["data.name"], run.data.params["model.name"]) == (NAME, NAME)
    assert run.data.params["optimizer.learning_rate"] == "0.01"  # the preset's value, not adam.yaml's
    history = mlflow_client(folder).get_metric_history(run.info.run_id, "fit/loss")
    assert [m.step for m in history] == [0]
    assert 0 <= run.data.metrics["test/sparse_categorical_accuracy"] <= 1


@pytest.mark.slow
def test_the_test_init_writes_passes(project):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout


def test_a_project_config_wins_over_the_built_in_of_the_same_name(tmp_path):
    """The built-in preset mnist selects data=mnist: the project's conf/data/mnist.yaml is what it gets."""
    mine = "name: mnist\nsource: bundled\nvalidation_size: 123\n"
    project = small_project(tmp_path / "mine", 'config_dir = "conf"', {"conf/data/mnist.yaml": mine})
    result = run_cli("+experiment=mnist", "--cfg", "job", cwd=project / "conf")
    assert result.returncode == 0, result.stderr
    assert "validation_size: 123" in result.stdout and "path:" not in result.stdout.split("model:")[0]
    plain = run_cli("+experiment=mnist", "--cfg", "job", cwd=tmp_path)
    assert "validation_size: null" in plain.stdout


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert_user_error(run_cli("init", str(tmp_path), cwd=tmp_path), "init", "not empty", "notes.txt")
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_init_refuses_a_folder_name_without_letters_or_digits(tmp_path):
    assert_user_error(run_cli("init", "--", "-_-", cwd=tmp_path), "init", "no letter or digit")
    assert not (tmp_path / "-_-").exists()


#: A plugin module whose hook ``{hook}`` registers ``{name}``.
HOOK = (
    "from orchestrator import hookimpl\n\n@hookimpl\ndef {hook}(registry):\n    registry.add('{name}', len)\n"
)


def test_init_refuses_a_name_an_installed_plugin_has(tmp_path):
    result = run_cli("init", "MNIST", cwd=tmp_path)
    assert_user_error(result, "init", "'mnist' is already the data_source of plugin 'mnist'")
    assert not (tmp_path / "MNIST").exists()


BAD_TABLES = {
    "unknown key": ('confg_dir = "conf"', {}, ["tool.orchestrator.confg_dir", "Did you mean 'config_dir'"]),
    "missing config folder": ('config_dir = "confs"', {}, ["tool.orchestrator.config_dir", "'confs'"]),
    "a primary config": (
        'config_dir = "c"',
        {"c/config.yaml": "seed: 1\n"},
        ["config_dir", "primary config"],
    ),
    "plugins not a list": ('plugins = "mine"', {}, ["tool.orchestrator.plugins", "must be a list"]),
    "missing module": ('plugins = ["mine"]', {}, ["tool.orchestrator.plugins", "no mine.py"]),
    "syntax error": (
        'plugins = ["mine.py"]',
        {"mine.py": "def f(:\n"},
        ["'mine.py'", "SyntaxError", "line 1"],
    ),
    "not valid TOML": ('plugins = ["mine"', {}, ["pyproject.toml", "is not valid TOML"]),
    "a name of another plugin": (
        'plugins = ["mine"]',
        {"mine.py": HOOK.format(hook="orchestrator_register_data_sources", name="mnist")},
        ["data_source 'mnist' is registered twice", "plugin 'mnist' (keras-orchestrator)", "(project bad)"],
    ),
    "a misspelt hook": (
        'plugins = ["mine"]',
        {"mine.py": HOOK.format(hook="orchestrator_register_data_source", name="mine")},
        ["plugin 'mine'", "Did you mean 'orchestrator_register_data_sources'"],
    ),
}


@pytest.mark.parametrize("case", BAD_TABLES, ids=list(BAD_TABLES))
def test_a_mistake_in_the_project_is_one_message_naming_the_key_and_file(tmp_path, case):
    table, files, words = BAD_TABLES[case]
    project = small_project(tmp_path / "bad", table, files)
    result = run_cli("+experiment=mnist", cwd=project)
    message = assert_user_error(result, *words)
    if "tool.orchestrator" in message:
        assert str(project / "pyproject.toml") in message
    assert not (project / "outputs").exists()
