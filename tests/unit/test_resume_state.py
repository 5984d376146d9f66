"""The resume state, ``resume/state.json``: what a checkpoint saves and what a resumed run puts back."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.errors import UserError
from orchestrator.resume.point import ResumePoint
from orchestrator.resume.state import STATE, restore_model, save_state

pytestmark = pytest.mark.usefixtures("keep_global_generators")

FIT = SimpleNamespace(name="fit", index=0)
X, Y = np.linspace(0, 1, 32, dtype="float32").reshape(8, 4), np.ones((8, 2), "float32")


def model(seed: int, hidden: int = 8):
    import keras

    keras.utils.set_random_seed(seed)
    built = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(hidden), keras.layers.Dropout(0.3), keras.layers.Dense(2)]
    )
    built.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return built


def context(folder: Path, trained, **extra) -> SimpleNamespace:
    values = dict(output_dir=folder, run_id="abc", epochs_done=3, stage_start_epoch=0, resume=None)
    return SimpleNamespace(model=trained, metrics={"fit/loss": {"0": 0.5}}, **{**values, **extra})


def checkpoint(folder: Path, trained, name: str = "epoch-003.keras") -> Path:
    path = folder / "resume" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    trained.save(path)
    return path


def read_state(folder: Path) -> dict:
    return json.loads((folder / STATE).read_text())


def test_save_state_records_where_the_run_is(tmp_path):
    trained = model(1)
    weights = checkpoint(tmp_path, trained)

    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=weights)

    state = read_state(tmp_path)
    assert {key: state[key] for key in ("run_id", "stage", "stage_index", "stage_done", "epochs_done")} == {
        "run_id": "abc",
        "stage": "fit",
        "stage_index": 0,
        "stage_done": False,
        "epochs_done": 3,
    }
    assert (state["checkpoint"], state["batches_done"], state["metric_variables"]) == (
        "resume/epoch-003.keras",
        0,
        None,
    )
    assert state["metrics"] == {"fit/loss": {"0": 0.5}}


def test_a_state_saved_without_new_weights_keeps_the_last_checkpoint(tmp_path):
    trained = model(1)
    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=checkpoint(tmp_path, trained))

    save_state(context(tmp_path, trained, epochs_done=4), FIT, stage_done=True)

    assert (read_state(tmp_path)["checkpoint"], read_state(tmp_path)["stage_done"]) == (
        "resume/epoch-003.keras",
        True,
    )


def test_a_state_saved_mid_epoch_keeps_the_running_metric_totals(tmp_path):
    trained = model(1)
    trained.train_on_batch(X, Y)
    totals = [np.asarray(v.value).tolist() for v in trained.metrics_variables]

    weights = checkpoint(tmp_path, trained, "epoch-004-batch-00002.keras")
    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=weights, batches_done=2)

    assert read_state(tmp_path)["batches_done"] == 2
    assert read_state(tmp_path)["metric_variables"] == totals


def test_a_new_checkpoint_removes_the_mid_epoch_checkpoint_before_it(tmp_path):
    trained = model(1)
    older = checkpoint(tmp_path, trained, "epoch-004-batch-00002.keras")
    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=older, batches_done=2)

    newer = checkpoint(tmp_path, trained, "epoch-004-batch-00004.keras")
    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=newer, batches_done=4)

    assert sorted(p.name for p in (tmp_path / "resume").glob("*.keras")) == ["epoch-004-batch-00004.keras"]


def resumed(folder: Path, fresh) -> SimpleNamespace:
    point = ResumePoint(output_dir=folder, run_id="abc", state=read_state(folder))
    return context(folder, fresh, resume=point)


def test_restore_puts_back_the_weights_and_the_optimizer(tmp_path):
    trained = model(1)
    trained.train_on_batch(X, Y)
    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=checkpoint(tmp_path, trained))
    fresh = model(2)

    restore_model(resumed(tmp_path, fresh))

    for restored, saved in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert int(fresh.optimizer.iterations) == 1
    for restored, saved in zip(fresh.optimizer.variables, trained.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(restored.value), np.asarray(saved.value))


def test_restore_puts_back_the_random_generators(tmp_path):
    trained = model(1)
    weights = checkpoint(tmp_path, trained)
    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=weights)
    drawn = (random.random(), np.random.random(), np.asarray(trained(X, training=True)))
    fresh = model(2)

    restore_model(resumed(tmp_path, fresh))

    again = (random.random(), np.random.random(), np.asarray(fresh(X, training=True)))
    assert again[:2] == drawn[:2]
    np.testing.assert_array_equal(again[2], drawn[2])  # the same dropout mask


def test_restore_of_a_checkpoint_that_does_not_fit_the_model_is_a_user_error(tmp_path):
    trained = model(1, hidden=8)
    save_state(context(tmp_path, trained), FIT, stage_done=False, weights=checkpoint(tmp_path, trained))

    with pytest.raises(UserError) as refused:
        restore_model(resumed(tmp_path, model(2, hidden=5)))

    assert refused.value.key == "resume"
    assert "resume=false" in refused.value.problem


def test_restore_without_a_checkpoint_leaves_the_model_as_it_is(tmp_path):
    fresh = model(2)
    before = fresh.get_weights()
    point = ResumePoint(output_dir=tmp_path, run_id="abc", state=None)

    restore_model(context(tmp_path, fresh, resume=point))

    for after, weights in zip(fresh.get_weights(), before, strict=True):
        np.testing.assert_array_equal(after, weights)
