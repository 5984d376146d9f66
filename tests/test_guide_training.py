"""Guide techniques around training itself: callbacks, schedules, validation_split, fine-tuning.

Each test runs the real CLI on the bundled MNIST split, reads the real MLflow
store back, and checks the technique's effect, not only that the run finished.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import metric_history, mlflow_client, only_run, run_cli

pytestmark = pytest.mark.slow

BUNDLED = ["data.source=bundled", "trainer.verbose=0"]
STEPS = 3  # trainer.limit_batches in these tests: optimizer steps per epoch


def history(client, run, metric: str) -> list[tuple[int, float]]:
    return metric_history(client, run.info.run_id, metric)


def download(client, run, artifact: str, folder: Path) -> Path:
    return Path(client.download_artifacts(run.info.run_id, artifact, str(folder)))


def test_early_stopping_really_stops_early_and_the_callbacks_keep_their_files(workdir):
    result = run_cli(
        "+experiment=guide_callbacks",
        *BUNDLED,
        f"trainer.limit_batches={STEPS}",
        "callbacks.early_stopping.min_delta=10",  # no epoch improves by 10: stop after patience
        "callbacks.batch_checkpoint.save_freq=2",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = mlflow_client(workdir), only_run(workdir, "guide_callbacks")
    assert run.data.params["trainer.epochs"] == "20"
    epochs = history(client, run, "fit/loss")
    assert [step for step, _ in epochs] == [0, 1, 2], "patience 2: the third epoch is the last"

    rows = list(csv.DictReader(download(client, run, "logs/history.csv", workdir).open()))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    batches = list(csv.DictReader(download(client, run, "logs/loss_history.csv", workdir).open()))
    assert len(batches) == 3 * STEPS, "LossHistory records every batch"
    last_of_each_epoch = [float(b["loss"]) for b in batches if b["batch"] == str(STEPS - 1)]
    assert np.allclose(last_of_each_epoch, [value for _, value in epochs], rtol=1e-5)

    kept = [a.path for a in client.list_artifacts(run.info.run_id, "model_checkpoint")]
    best = [p for p in kept if p.startswith("model_checkpoint/mymodel-")]
    every_two_batches = [
        p for p in kept if re.fullmatch(r"model_checkpoint/e\d\d-b\d{4}-loss[\d.]+\.keras", p)
    ]
    assert best, kept
    assert len(every_two_batches) == 4, kept  # 9 batches, saved every 2: after batches 2, 4, 6, 8


def test_tensorboard_event_files_are_kept_as_artifacts_with_histograms(workdir):
    result = run_cli("+experiment=guide_tensorboard", *BUNDLED, "trainer.limit_batches=2", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = mlflow_client(workdir), only_run(workdir, "guide_tensorboard")
    local = download(client, run, "tensorboard", workdir)
    train_events = list((local / "train").glob("events.out.tfevents.*"))
    assert train_events and list((local / "validation").glob("events.out.tfevents.*"))

    import tensorflow as tf

    tags = {
        value.tag
        for event in tf.compat.v1.train.summary_iterator(str(train_events[0]))
        for value in event.summary.value
    }
    assert any("dense_1" in tag and "kernel" in tag for tag in tags), sorted(tags)[:20]
    assert "epoch_loss" in tags


SCHEDULES = {
    "exponential_decay": lambda step: 0.1 * 0.96 ** (step / 10),
    "piecewise_constant_decay": lambda step: 0.1 if step <= 10 else 0.05 if step <= 20 else 0.01,
    "polynomial_decay": lambda step: (0.1 - 0.001) * (1 - min(step, 30) / 30) ** 2.0 + 0.001,
    "inverse_time_decay": lambda step: 0.1 / (1 + 0.5 * step / 10),
    "cosine_decay": lambda step: 0.1 * 0.5 * (1 + math.cos(math.pi * min(step, 30) / 30)),
}


def test_learning_rate_schedules_follow_their_formula_epoch_by_epoch(workdir):
    epochs, steps = 4, 4
    result = run_cli(
        "-m",
        "+experiment=guide_lr_schedules",
        f"schedule={','.join(SCHEDULES)}",
        *BUNDLED,
        f"trainer.epochs={epochs}",
        f"trainer.limit_batches={steps}",
        "trainer.checkpoint_every=0",
        "stages.predict=null",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow_client(workdir)
    experiment = client.get_experiment_by_name("guide_lr_schedules")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == len(SCHEDULES)
    for run in runs:
        schedule = run.data.params["optimizer.learning_rate.name"]
        logged = history(client, run, "fit/learning_rate")
        assert [step for step, _ in logged] == list(range(epochs))
        expected = [SCHEDULES[schedule]((epoch + 1) * steps) for epoch in range(epochs)]
        assert np.allclose([value for _, value in logged], expected, rtol=1e-5), schedule


def test_validation_split_holds_out_the_last_fraction_of_the_training_arrays(workdir):
    result = run_cli(
        "+experiment=guide_validation_split", *BUNDLED, "trainer.epochs=1", "stages.predict=null", cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = mlflow_client(workdir), only_run(workdir, "guide_validation_split")
    val_loss = history(client, run, "fit/val_loss")[-1][1]

    import keras

    from orchestrator_plugins.mnist import mnist

    x, y = mnist(source="bundled").train
    model = keras.saving.load_model(download(client, run, "model/model.keras", workdir))
    held_out = model.evaluate(x[-1200:], y[-1200:], batch_size=64, verbose=0, return_dict=True)
    assert held_out["loss"] == pytest.approx(val_loss, rel=1e-5), "the last 20% of 6,000 samples"


def test_validation_split_is_refused_for_inputs_that_cannot_be_indexed():
    from orchestrator.errors import UserError
    from orchestrator_plugins.stages import _check_validation_split

    def batches():
        yield None

    with pytest.raises(UserError) as caught:
        _check_validation_split(0.2, batches(), "stages.fit")
    assert caught.value.key == "stages.fit.validation_split" and "cannot be indexed" in str(caught.value)
    with pytest.raises(UserError, match="below 1"):
        _check_validation_split(1.5, (np.zeros(4), np.zeros(4)), "stages.fit")


def test_fine_tuning_freezes_then_unfreezes_with_a_lower_learning_rate(workdir):
    result = run_cli(
        "+experiment=guide_fine_tuning",
        *BUNDLED,
        "trainer.limit_batches=3",
        "stages.head.epochs=2",
        "stages.predict=null",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = mlflow_client(workdir), only_run(workdir, "guide_fine_tuning")
    assert [s for s, _ in history(client, run, "head/loss")] == [0, 1]
    assert [s for s, _ in history(client, run, "fine_tune/loss")] == [2], "epochs continue across stages"
    assert [v for _, v in history(client, run, "head/learning_rate")] == pytest.approx([1e-3, 1e-3])
    assert history(client, run, "fine_tune/learning_rate")[0][1] == pytest.approx(1e-4)

    import keras

    def weights(epoch: int) -> dict[str, np.ndarray]:
        path = download(client, run, f"checkpoints/epoch-{epoch:03d}.keras", workdir / f"e{epoch}")
        model = keras.saving.load_model(path)
        return {name: model.get_layer(name).get_weights()[0] for name in ("dense_1", "dense_2")}

    first, second, third = weights(1), weights(2), weights(3)
    assert np.array_equal(first["dense_1"], second["dense_1"]), "frozen in the head stage"
    assert not np.array_equal(first["dense_2"], second["dense_2"]), "the rest trains"
    assert not np.array_equal(second["dense_1"], third["dense_1"]), "trainable again when fine-tuning"


def test_compile_by_string_identifiers_gives_the_same_keras_objects(workdir):
    result = run_cli(
        "+experiment=guide_compile_strings",
        *BUNDLED,
        "trainer.epochs=1",
        "trainer.limit_batches=2",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = mlflow_client(workdir), only_run(workdir, "guide_compile_strings")
    assert (
        run.data.params["optimizer"] == "rmsprop"
        and run.data.params["loss"] == "sparse_categorical_crossentropy"
    )
    assert "test/sparse_categorical_accuracy" in run.data.metrics

    import keras

    model = keras.saving.load_model(download(client, run, "model/model.keras", workdir))
    assert type(model.optimizer).__name__ == "RMSprop"
