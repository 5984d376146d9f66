"""Random generators and running metric totals, read as JSON and put back exactly."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from orchestrator.resume.generators import (
    metric_variable_values,
    rng_state,
    seed_generator_states,
    set_metric_variable_values,
    set_rng_state,
    set_seed_generator_states,
)
from tests.conftest import NEEDS_TORCH

pytestmark = pytest.mark.usefixtures("keep_global_generators")


def through_json(value):
    return json.loads(json.dumps(value))


def test_python_s_generator_draws_the_same_numbers_again():
    random.seed(11)
    random.gauss(0.0, 1.0)  # leaves the second number of the pair cached
    saved = through_json(rng_state())
    drawn = [random.random(), random.gauss(0.0, 1.0), random.gauss(0.0, 1.0), random.randrange(10**9)]

    set_rng_state(saved)

    assert [random.random(), random.gauss(0.0, 1.0), random.gauss(0.0, 1.0), random.randrange(10**9)] == drawn


def test_numpy_s_generator_draws_the_same_numbers_again():
    np.random.seed(11)
    np.random.standard_normal()  # leaves the second number of the pair cached
    saved = through_json(rng_state())
    assert saved["numpy"][3] == 1
    drawn = (np.random.standard_normal(3), np.random.randint(0, 10**9, size=4), np.random.permutation(10))

    set_rng_state(saved)

    again = (np.random.standard_normal(3), np.random.randint(0, 10**9, size=4), np.random.permutation(10))
    for first, second in zip(drawn, again, strict=True):
        np.testing.assert_array_equal(first, second)


@NEEDS_TORCH
def test_torch_s_generator_draws_the_same_permutation_again():
    """Keras on PyTorch shuffles arrays with ``torch.utils.data.RandomSampler``, seeded from it."""
    import torch

    torch.manual_seed(11)
    torch.rand(3)
    saved = through_json(rng_state())
    drawn = (torch.randperm(50).tolist(), torch.rand(4).tolist())

    set_rng_state(saved)

    assert (torch.randperm(50).tolist(), torch.rand(4).tolist()) == drawn


def dropout_model():
    import keras

    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(16), keras.layers.Dropout(0.5, seed=3)])
    model.build((None, 16))
    return model


def test_a_dropout_model_draws_the_same_mask_again():
    model = dropout_model()
    x = np.ones((4, 16), "float32")
    saved = through_json(seed_generator_states(model))
    first = np.asarray(model(x, training=True))
    second = np.asarray(model(x, training=True))
    assert not np.array_equal(first, second)  # the generator moved on

    set_seed_generator_states(model, saved)

    np.testing.assert_array_equal(np.asarray(model(x, training=True)), first)


def test_a_model_without_random_layers_has_no_seed_generators():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

    assert seed_generator_states(model) == []


def test_seed_generators_that_changed_are_left_alone(caplog):
    model = dropout_model()
    before = seed_generator_states(model)

    set_seed_generator_states(model, [[1, 2], [3, 4]])

    assert seed_generator_states(model) == before
    assert "random layers changed" in caplog.text


def compiled_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def test_the_running_metric_totals_are_put_back():
    model = compiled_model()
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    model.train_on_batch(x, y)
    saved = through_json(metric_variable_values(model))
    assert any(np.any(np.asarray(value) != 0) for value in saved)
    model.reset_metrics()

    set_metric_variable_values(model, saved)

    for variable, value in zip(model.metrics_variables, saved, strict=True):
        np.testing.assert_allclose(np.asarray(variable.value), value)


def test_metric_totals_that_do_not_fit_the_model_are_left_alone(caplog):
    model = compiled_model()
    model.train_on_batch(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"))
    before = metric_variable_values(model)

    set_metric_variable_values(model, [1.0])

    assert metric_variable_values(model) == before
    assert "metrics changed" in caplog.text
