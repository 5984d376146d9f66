"""The command line: clear errors without tracebacks, light start-up, plugin listing."""

import re

import pytest

from tests.conftest import (
    TINY,
    assert_user_error,
    cli_env,
    fixture_env,
    heavy_modules_imported,
    mlflow_client,
    only_run,
    run_cli,
)

HEAVY = ("tensorflow", "keras", "mlflow")


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("data.name=mnsit", ["data.name", "mnsit", "Did you mean 'mnist'?", "fashion_mnist"]),
        ("data=mnsit", ["data: no option 'mnsit'", "Did you mean 'mnist'?", "fashion_mnist"]),
        ("sed=1", ["sed"]),
        ("seed=abc", ["seed", "abc", "Integer"]),
        ("deterministic=maybe", ["deterministic", "maybe", "bool"]),
        ("+data.vaildation_size=3", ["data.vaildation_size", "Did you mean 'validation_size'?"]),
        ("trainer.batch_size=0", ["trainer.batch_size", "1 or more"]),
        ("+stages.fit.validation_split=1.5", ["stages.fit.validation_split", "below 1"]),
        ("trainer.epochs=-1", ["trainer.epochs", "0 or more"]),
    ],
)
def test_a_user_error_is_one_short_message_without_traceback(workdir, override, words):
    result = run_cli("+experiment=mnist", override, cwd=workdir)
    assert_user_error(result, *words)
    assert not (workdir / "mlflow.db").exists(), "no run may start for an invalid config"


def test_hydra_full_error_shows_the_traceback(workdir):
    result = run_cli("+experiment=mnist", "data.name=mnsit", cwd=workdir, env=cli_env(HYDRA_FULL_ERROR="1"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UnknownPluginError" in result.stderr


def test_a_missing_data_file_fails_the_started_run_with_the_error_recorded(workdir):
    result = run_cli("+experiment=mnist", "data.path=/no/such/mnist.npz", cwd=workdir)
    assert_user_error(result, "data.path", "/no/such/mnist.npz")
    run = only_run(workdir, "mnist")
    assert run.info.status == "FAILED"
    assert "/no/such/mnist.npz" in run.data.tags["orchestrator.error"]
    artifacts = [a.path for a in mlflow_client(workdir).list_artifacts(run.info.run_id)]
    assert "error.txt" in artifacts


@pytest.mark.parametrize("args", [["+experiment=mnist", "--cfg", "job"], ["--help"], ["plugins"]])
def test_start_up_paths_never_import_tensorflow_keras_or_mlflow(workdir, args):
    assert heavy_modules_imported(args, workdir, HEAVY)[0] == []


def test_plugins_lists_every_kind_with_its_distribution(workdir):
    result = run_cli("plugins", cwd=workdir)
    assert result.returncode == 0
    for kind in ("data_source", "model_builder", "optimizer", "loss", "metric", "callback", "stage"):
        assert f"\n{kind} (" in result.stdout
    assert re.search(r"^  mnist +plugin 'mnist' \(keras-orchestrator\)$", result.stdout, re.M)
    assert re.search(r"^  fit +plugin 'stages' \(keras-orchestrator\)$", result.stdout, re.M)


def test_a_blocked_plugin_is_not_loaded(workdir):
    env = cli_env(ORCHESTRATOR_DISABLE_PLUGINS="mnist")
    listing = run_cli("plugins", cwd=workdir, env=env)
    assert "plugin 'mnist'" not in listing.stdout
    result = run_cli("+experiment=mnist", cwd=workdir, env=env)
    assert_user_error(result, "data.name", "unknown data_source 'mnist'")


def test_tracing_prints_hook_calls(workdir):
    result = run_cli("plugins", cwd=workdir, env=cli_env(ORCHESTRATOR_TRACE_HOOKS="1"))
    assert result.returncode == 0
    assert "orchestrator_register_losses <- keras_builtins" in result.stderr


def test_a_hook_with_a_wrong_signature_names_the_plugin_and_the_hook(workdir):
    from tests.conftest import REPO

    site = REPO / "tests" / "fixtures" / "signature-site"
    for args in (["plugins"], ["+experiment=mnist"]):
        result = run_cli(*args, cwd=workdir, env=cli_env(PYTHONPATH=str(site)))
        assert result.returncode == 2
        assert_user_error(result, "plugin 'bad_signature'", "orchestrator_register_losses", "scale")
    assert not (workdir / "mlflow.db").exists()


def test_help_lists_every_config_group_with_its_options(workdir):
    groups = dict(
        line.split(": ", 1) for line in run_cli("--help", cwd=workdir).stdout.splitlines() if ": " in line
    )
    assert {"keras_file", "mlp"} <= set(groups["model"].split(", "))
    assert groups["trainer"] == "default, fast" and groups["tracking"] == "mlflow, off"
    hydra = run_cli("--hydra-help", cwd=workdir).stdout
    launchers = next(line for line in hydra.splitlines() if line.startswith("hydra/launcher:"))
    assert {"basic", "joblib", "slurm_local"} <= set(launchers.split(": ", 1)[1].split(", "))


@pytest.mark.slow
def test_a_warning_mid_epoch_starts_on_its_own_line_below_the_progress_bar(workdir):
    """Both streams into one pipe, as a terminal shows them: the bar's line ends before each message."""
    import subprocess
    import sys

    args = [
        "+experiment=mnist",
        *TINY,
        "tracking=off",
        "stages.predict=null",
        "+callbacks.w={name: warn_at, batch: 1}",
    ]
    shown = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=workdir, env=fixture_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=300,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout[-3000:]
    for message in ("UserWarning: fixture warning at batch 1", "[WARNING] - fixture log record at batch 1"):
        start = shown.stdout.index(message)
        line = shown.stdout[shown.stdout.rfind("\n", 0, start) + 1 : start]
        assert "\r" not in line and "step" not in line, f"glued to the bar: {line!r}"
    assert shown.stdout.count("5/5") >= 1, "the bar goes on after the messages"
