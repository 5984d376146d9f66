"""The progress of Keras callbacks (EarlyStopping, ReduceLROnPlateau...) survives a resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator.resume.callback_state import callback_state, progress, restore_callbacks, set_progress


def model(learning_rate: float = 0.1):
    import keras

    built = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    built.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return built


def early_stopping(trained):
    import keras

    callback = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    callback.set_model(trained)
    callback.on_train_begin()
    return callback


def shift(trained, by: float) -> None:
    trained.set_weights([w + by for w in trained.get_weights()])


def saved_and_read_back(callback, folder, epoch):
    """``callback_state`` as the resume state keeps it: through JSON."""
    return json.loads(json.dumps(callback_state(callback, folder, epoch)))


def interrupted_early_stopping(trained, folder):
    """EarlyStopping after a best epoch 0 and a worse epoch 1; its saved state; the best weights."""
    callback = early_stopping(trained)
    callback.on_epoch_end(0, {"val_loss": 1.0})
    best = trained.get_weights()
    shift(trained, 1.0)
    callback.on_epoch_end(1, {"val_loss": 2.0})
    return saved_and_read_back(callback, folder, epoch=2), best


def test_early_stopping_s_progress_survives_a_round_trip(tmp_path):
    trained = model()
    saved, best = interrupted_early_stopping(trained, tmp_path)
    fresh = early_stopping(trained)

    restore_callbacks([fresh], [saved], tmp_path)

    assert (fresh.wait, fresh.best, fresh.best_epoch) == (1, 1.0, 0)
    for restored, weights in zip(fresh.best_weights, best, strict=True):
        np.testing.assert_array_equal(restored, weights)


def test_a_restored_early_stopping_stops_when_an_uninterrupted_one_would(tmp_path):
    trained = model()
    saved, best = interrupted_early_stopping(trained, tmp_path)
    fresh = early_stopping(trained)
    restore_callbacks([fresh], [saved], tmp_path)

    fresh.on_epoch_end(2, {"val_loss": 1.5})  # the second epoch without improvement: patience is 2
    fresh.on_train_end()

    assert trained.stop_training
    assert fresh.stopped_epoch == 2
    for restored, weights in zip(trained.get_weights(), best, strict=True):
        np.testing.assert_array_equal(restored, weights)


def test_early_stopping_s_best_weights_are_kept_in_a_file_of_the_run(tmp_path):
    saved, best = interrupted_early_stopping(model(), tmp_path)

    assert saved["arrays"] == "resume/EarlyStopping-best-weights-0002.npz"
    with np.load(tmp_path / saved["arrays"]) as arrays:
        assert len(arrays.files) == len(best)


def reduce_on_plateau(trained):
    import keras

    callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1)
    callback.set_model(trained)
    callback.on_train_begin()
    return callback


def learning_rate(trained) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(trained.optimizer.learning_rate))


def test_reduce_lr_on_plateau_s_cooldown_survives_a_round_trip(tmp_path):
    trained = model(learning_rate=0.1)
    callback = reduce_on_plateau(trained)
    for epoch, loss in enumerate([1.0, 2.0, 2.0]):  # two epochs without improvement: halved, cooldown 1
        callback.on_epoch_end(epoch, {"val_loss": loss})
    assert learning_rate(trained) == pytest.approx(0.05)
    saved = saved_and_read_back(callback, tmp_path, epoch=3)
    fresh = reduce_on_plateau(trained)

    restore_callbacks([fresh], [saved], tmp_path)

    assert (fresh.wait, fresh.best, fresh.cooldown_counter) == (0, 1.0, 1)
    fresh.on_epoch_end(3, {"val_loss": 1.5})  # cooldown: no count
    assert learning_rate(trained) == pytest.approx(0.05)
    fresh.on_epoch_end(4, {"val_loss": 1.5})  # not better than 1.0: the count starts
    fresh.on_epoch_end(5, {"val_loss": 1.5})  # second epoch without improvement after the cooldown
    assert learning_rate(trained) == pytest.approx(0.025)


def test_a_callback_of_another_class_starts_afresh(tmp_path, caplog):
    trained = model()
    saved, _ = interrupted_early_stopping(trained, tmp_path)
    other, untouched = reduce_on_plateau(trained), reduce_on_plateau(trained)

    restore_callbacks([other], [saved], tmp_path)

    assert (other.wait, other.best) == (untouched.wait, untouched.best)
    assert "changed since the checkpoint" in caplog.text


def test_callbacks_that_changed_in_number_start_afresh(tmp_path, caplog):
    trained = model()
    saved, _ = interrupted_early_stopping(trained, tmp_path)
    first, second, untouched = early_stopping(trained), early_stopping(trained), early_stopping(trained)

    restore_callbacks([first, second], [saved], tmp_path)

    assert [(c.wait, c.best) for c in (first, second)] == [(untouched.wait, untouched.best)] * 2
    assert "callbacks changed" in caplog.text


class Counting:
    """A callback of its own that says what its progress is."""

    def __init__(self):
        self.seen = 0

    def get_state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        self.seen = state["seen"]


def test_a_callback_with_get_state_and_set_state_keeps_its_own_progress(tmp_path):
    counting = Counting()
    counting.seen = 7
    saved = saved_and_read_back(counting, tmp_path, epoch=1)
    fresh = Counting()

    restore_callbacks([fresh], [saved], tmp_path)

    assert saved == {"class": "Counting", "values": {"seen": 7}}
    assert fresh.seen == 7


def test_progress_carries_over_to_the_next_fit_call_in_memory(tmp_path):
    trained = model()
    callback = early_stopping(trained)
    callback.on_epoch_end(0, {"val_loss": 1.0})
    callback.on_epoch_end(1, {"val_loss": 2.0})
    carried = progress([callback])
    fresh = early_stopping(trained)

    set_progress([fresh], carried)

    assert (fresh.wait, fresh.best, fresh.best_epoch) == (1, 1.0, 0)
    assert fresh.best_weights is callback.best_weights
