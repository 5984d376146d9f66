"""The rest of an interrupted epoch, checked against the order in which Keras's own ``fit`` trains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.errors import UserError
from orchestrator.resume.epoch import check_keras_version, rest_of_epoch

N, BATCH, SEED = 23, 5, 7  # batches of 5, 5, 5, 5 and 3


def data():
    """``x[:, 0]`` is each sample's index; ``y`` and the sample weights are derived from it."""
    index = np.arange(N, dtype="float32")
    x = np.stack([index, np.ones(N, "float32")], axis=1)
    return x, 2 * index[:, None], index + 100


def keras_order(epochs: int, **fit) -> list[np.ndarray]:
    """The samples Keras's ``fit`` trains on, batch by batch, under ``SEED``."""
    import keras

    seen: list[np.ndarray] = []

    class Recording(keras.Sequential):
        def train_step(self, batch):
            seen.append(np.asarray(batch[0])[:, 0].astype(int))
            return super().train_step(batch)

    keras.utils.set_random_seed(SEED)
    model = Recording([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    x, y, weights = data()
    model.fit(x, y, sample_weight=weights, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, **fit)
    return seen


def cut(batches_done: int, **options):
    import keras

    keras.utils.set_random_seed(SEED)  # as the resumed run does before it trains
    arguments = {"shuffle": True, "validation_split": 0.0, **options}
    return rest_of_epoch(data(), batch_size=BATCH, batches_done=batches_done, **arguments)


def test_the_rest_of_a_shuffled_epoch_is_what_keras_had_not_trained_on_yet_in_its_order():
    epoch = np.concatenate(keras_order(epochs=1))
    assert not np.array_equal(epoch, np.arange(N))  # shuffled

    x, y, weights, validation = cut(batches_done=2)

    np.testing.assert_array_equal(x[:, 0], epoch[2 * BATCH :])
    np.testing.assert_array_equal(y[:, 0], 2 * epoch[2 * BATCH :])
    np.testing.assert_array_equal(weights, epoch[2 * BATCH :] + 100)
    assert validation is None


def test_the_rest_of_a_later_epoch_follows_that_epoch_s_order():
    batches = keras_order(epochs=2)
    second = np.concatenate(batches[len(batches) // 2 :])

    x, _, _, _ = cut(batches_done=3)

    np.testing.assert_array_equal(x[:, 0], second[3 * BATCH :])


def test_the_rest_after_the_last_full_batch_is_the_short_last_batch():
    epoch = np.concatenate(keras_order(epochs=1))

    x, _, _, _ = cut(batches_done=4)

    np.testing.assert_array_equal(x[:, 0], epoch[20:])
    assert len(x) == 3


def test_with_a_validation_split_the_rest_comes_from_the_training_part_and_the_validation_is_kept():
    epoch = np.concatenate(keras_order(epochs=1, validation_split=0.2))
    first_validation = math.floor(N * (1 - 0.2))

    x, _, _, validation = cut(batches_done=1, validation_split=0.2)

    np.testing.assert_array_equal(x[:, 0], epoch[BATCH:])
    assert set(epoch) == set(range(first_validation))
    validation_x, validation_y, _ = validation
    np.testing.assert_array_equal(validation_x[:, 0], np.arange(first_validation, N))
    np.testing.assert_array_equal(validation_y[:, 0], 2 * np.arange(first_validation, N))


def test_without_shuffling_the_rest_is_the_samples_after_the_batches_done():
    x, y, _, _ = cut(batches_done=2, shuffle=False)

    np.testing.assert_array_equal(x[:, 0], np.arange(10, N))
    np.testing.assert_array_equal(y[:, 0], 2 * np.arange(10, N))


def test_a_dataset_object_has_no_recoverable_position():
    import tensorflow as tf

    x, y, _ = data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)

    assert (
        rest_of_epoch(dataset, batch_size=BATCH, batches_done=2, shuffle=True, validation_split=0.0) is None
    )


@pytest.mark.parametrize("version", ["3.3.0", "3.15.1", "3.99.2"])
def test_the_keras_versions_checked_are_accepted(version):
    check_keras_version(version)


@pytest.mark.parametrize("version", ["3.2.1", "2.15.0", "4.0.0"])
def test_another_keras_version_is_refused_naming_the_setting_that_turns_it_off(version):
    with pytest.raises(UserError) as refused:
        check_keras_version(version)

    assert refused.value.key == "trainer.checkpoint_every_batches"
    assert f"this is Keras {version}" in refused.value.problem
    assert "trainer.checkpoint_every_batches=0" in refused.value.problem
