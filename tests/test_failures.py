"""What goes wrong in training, and secrets: clear endings, nothing lost, nothing leaked."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from orchestrator.secrets import MASK, masked
from tests.conftest import (
    QUIET,
    cli_env,
    fixture_env,
    interrupt,
    mlflow_client,
    only_run,
    parent_and_children,
    run_cli,
)

#: Short epochs of the shipped split; each test sets its own epoch count where it matters.
SHORT = [*QUIET, "trainer.limit_batches=5"]


@pytest.mark.slow
def test_a_diverging_loss_fails_the_run_and_keeps_the_last_good_checkpoint(workdir):
    result = run_cli(
        "+experiment=guide_fine_tuning",
        *SHORT,
        "stages.fine_tune.optimizer={name:sgd,learning_rate:1.0e12}",
        cwd=workdir,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "stages.fine_tune: the training loss became" in result.stderr
    assert "epoch-001.keras" in result.stderr and "learning_rate" in result.stderr
    run = only_run(workdir, "guide_fine_tuning")
    assert run.info.status == "FAILED"
    client = mlflow_client(workdir)
    kept = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert kept == ["checkpoints/epoch-001.keras"], "no checkpoint of the diverged epoch"
    head = [m.value for m in client.get_metric_history(run.info.run_id, "head/loss")]
    assert head and all(math.isfinite(v) for v in head)

    import keras
    import numpy as np

    local = Path(run.data.tags["orchestrator.output_dir"]) / "checkpoints" / "epoch-001.keras"
    model = keras.saving.load_model(local)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_secret_values_are_masked_at_any_depth():
    cfg = {"db": {"password": "hunter2", "host": "x"}, "api_key": "k", "tokens": [{"token": "t"}], "n": None}
    assert masked(cfg) == {
        "db": {"password": MASK, "host": "x"},
        "api_key": MASK,
        "tokens": MASK,
        "n": None,
    }


@pytest.mark.slow
def test_secrets_never_reach_mlflow_params_tags_or_artifacts(workdir):
    result = run_cli(
        "+experiment=mnist",
        *SHORT,
        "trainer.epochs=1",
        "+tracking.tags.api_token=abc123",
        "+tracking.tags.db_password=hunter2",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run(workdir, "mnist")
    assert run.data.params["tracking.tags.db_password"] == MASK
    assert run.data.params["tracking.tags.api_token"] == MASK
    assert run.data.tags["api_token"] == MASK
    config = mlflow_client(workdir).download_artifacts(run.info.run_id, "config/config.yaml", str(workdir))
    text = Path(config).read_text()
    assert "hunter2" not in text and "abc123" not in text and MASK in text


@pytest.mark.slow
def test_ctrl_c_ends_the_run_killed_with_a_short_message(workdir):
    ctrl_c = interrupt("ctrl_c", 1, 2, "INT", workdir / "ctrl_c")
    result = run_cli("+experiment=mnist", *SHORT, "trainer.epochs=50", ctrl_c, cwd=workdir, env=fixture_env())
    assert result.returncode == 130
    assert "Traceback" not in result.stderr and "Interrupted" in result.stderr
    run = only_run(workdir, "mnist")
    assert run.info.status == "KILLED"
    assert list(workdir.glob("outputs/*/*/checkpoints/epoch-001.keras")), "the checkpoint stays"


@pytest.mark.slow
def test_an_interrupted_sweep_still_reports_and_fails_its_parent_run(workdir):
    ctrl_c = interrupt("ctrl_c", 1, 2, "INT", workdir / "ctrl_c")
    args = ["-m", "+experiment=mnist", "seed=1,2,3", *SHORT, "trainer.epochs=50", ctrl_c]
    result = run_cli(*args, cwd=workdir, env=fixture_env())
    assert result.returncode == 130
    client = mlflow_client(workdir)
    [parent], children = parent_and_children(client, "mnist")
    assert parent.info.status == "FAILED"
    assert [c.info.status for c in children] == ["KILLED"]
    rows = client.download_artifacts(parent.info.run_id, "sweep/sweep_summary.csv", str(workdir))
    assert "KILLED" in Path(rows).read_text()


def test_a_corrupt_data_file_is_named_with_what_is_wrong(workdir):
    folder = workdir / "mnist"
    folder.mkdir()
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (folder / stem).write_bytes(b"this is not an IDX file")
    result = run_cli("+experiment=mnist", f"data.path={folder}", "tracking=off", cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "data.path" in result.stderr and "not an IDX file" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "override",
    [
        "data.one_hot=true",  # one-hot rows for a sparse loss
        "loss=categorical_crossentropy",  # class numbers for a loss that needs one-hot rows
        "+model.num_classes=5",  # labels up to 9 for a model with 5 outputs
    ],
)
def test_labels_that_do_not_fit_the_loss_or_the_outputs_get_a_hint_about_the_label_format(workdir, override):
    result = run_cli("+experiment=mnist", *SHORT, override, "tracking=off", cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "stages.fit" in result.stderr and "Check data.one_hot" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_a_target_outside_the_allowlist_is_refused_before_anything_runs(workdir):
    evil = "+callbacks.evil={_target_: os.system, _args_: ['touch pwned']}"
    result = run_cli("+experiment=mnist", *SHORT, evil, cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "callbacks.evil._target_" in result.stderr and "security.allowed_targets" in result.stderr
    assert not (workdir / "pwned").exists()
    assert not (workdir / "mlflow.db").exists(), "no run may start"


@pytest.mark.slow
def test_allowed_targets_build_keras_objects_and_the_allowlist_extends(workdir):
    args = [
        "+experiment=mnist",
        *SHORT,
        "tracking=off",
        "stages.predict=null",
        "+callbacks.nan={_target_: keras.callbacks.TerminateOnNaN}",
        "+metrics.top3={_target_: keras.metrics.SparseTopKCategoricalAccuracy, k: 3}",
        "+callbacks.log={_target_: my_lab.Log}",
        "security.allowed_targets=[keras.,orchestrator.,orchestrator_plugins.,my_lab.]",
    ]
    env = cli_env(PYTHONPATH=str(workdir))
    result = run_cli(*args, cwd=workdir, env=env)
    assert result.returncode == 2, "my_lab is allowed now, but it does not exist yet"
    assert "callbacks.log" in result.stderr and "my_lab.Log" in result.stderr
    (workdir / "my_lab.py").write_text(
        "import keras\n\nclass Log(keras.callbacks.Callback):\n"
        "    def on_train_end(self, logs=None):\n        open('trained', 'w').close()\n"
    )
    result = run_cli(*args, cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "trained").exists()
    assert "sparse_top_k_categorical_accuracy" in result.stdout


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> Path:
    """``plain.keras`` (the guide's input and output), ``lambda.keras`` (a Lambda layer), ``bad.keras``."""
    import keras

    folder = tmp_path_factory.mktemp("saved")
    inputs = keras.Input((784,), name="digits")
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs)).save(folder / "plain.keras")
    doubled = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(doubled)).save(folder / "lambda.keras")
    (folder / "bad.keras").write_text("not a model")
    return folder


@pytest.mark.slow
def test_a_saved_model_loads_in_safe_mode_and_a_lambda_layer_is_refused(workdir, saved_models):
    def evaluate(name: str):
        return run_cli(
            "+experiment=mnist", *SHORT, "tracking=off", "stages.fit=null", "stages.predict=null",
            "model=keras_file", f"model.path={saved_models / name}", cwd=workdir,
        )  # fmt: skip

    assert evaluate("plain.keras").returncode == 0
    refused = evaluate("lambda.keras")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "model.safe_mode" in refused.stderr and "Lambda" in refused.stderr
    unreadable = evaluate("bad.keras")
    assert unreadable.returncode == 2 and "Traceback" not in unreadable.stderr
    assert "model.path" in unreadable.stderr and "bad.keras" in unreadable.stderr
