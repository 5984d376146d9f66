"""Guide items 7-9: tf.data, PyDataset, generators, DataFrames, class and sample weights.

Two halves:

* One real CLI sweep (a subprocess, offline, the shipped MNIST split) over the
  seven presets under the smoke overrides ``trainer.epochs=1 trainer.limit_batches=2``;
  each job's MLflow run, saved model and predictions are read back.
* In-process checks of each wrapper's actual effect on a toy data set whose
  ``x`` carries the sample id, and of Keras' weighted-loss reduction against NumPy.
"""

from __future__ import annotations

import math
import threading
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from orchestrator.config import split_spec
from orchestrator.context import RunContext
from orchestrator.data import Data
from orchestrator.errors import UserError
from orchestrator.registry import Registry
from orchestrator_plugins import data_formats
from orchestrator_plugins import mnist as mnist_plugin
from tests.conftest import mlflow_client, offline_env, run_cli

FORMATS = {
    "guide_tf_data": "tf_data",
    "guide_py_dataset": "py_dataset",
    "guide_generator": "generator",
    "guide_pandas": "pandas",
}
#: The weight presets train one whole epoch at a learning rate too small to move the weights, so that
#: the epoch's loss can be recounted from the saved model.
WEIGHTS = {
    "guide_class_weight": None,
    "guide_sample_weight": "sample_weighted",
    "guide_sample_weight_dataset": "sample_weighted+tf_data",
}
PRESETS = {**FORMATS, **WEIGHTS}
SMOKE = ["trainer.epochs=1", "trainer.limit_batches=2"]
STILL = ["optimizer.learning_rate=1e-12", "stages.predict=null"]


# -- the CLI sweep ----------------------------------------------------------------------


def offline_sweep(folder: Path, presets: dict[str, str | None], *overrides: str) -> Path:
    """``python -m orchestrator -m +experiment=<presets> <overrides>``, offline, in ``folder``."""
    result = run_cli(
        "-m", f"+experiment={','.join(presets)}", *overrides, cwd=folder, env=offline_env(folder)
    )
    assert result.returncode == 0, f"the sweep failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return folder


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The four data-format presets under the smoke overrides."""
    return offline_sweep(tmp_path_factory.mktemp("guide_inputs"), FORMATS, *SMOKE)


@pytest.fixture(scope="module")
def weighted(tmp_path_factory) -> Path:
    """The three weight presets, one whole epoch each, the weights held still."""
    return offline_sweep(tmp_path_factory.mktemp("guide_weights"), WEIGHTS, *STILL)


def run_of(sweep: Path, weighted: Path, experiment: str):
    return job(weighted if experiment in WEIGHTS else sweep, experiment)


def job(folder: Path, experiment: str):
    """The run of ``experiment`` (the preset's name) in the sweep's store."""
    client = mlflow_client(folder)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = [run for run in client.search_runs([found.experiment_id]) if "fit/loss" in run.data.metrics]
    assert len(runs) == 1, f"expected one run of {experiment}, found {len(runs)}"
    return runs[0]


def saved_model(run):
    import keras

    return keras.saving.load_model(Path(run.data.tags["orchestrator.output_dir"]) / "model.keras")


def predictions(run) -> np.ndarray:
    return np.load(Path(run.data.tags["orchestrator.output_dir"]) / "predictions" / "predict.npy")


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(PRESETS))
def test_every_preset_runs_and_tags_its_format(sweep, weighted, experiment):
    run = run_of(sweep, weighted, experiment)
    assert run.info.status == "FINISHED"
    assert run.data.tags["data_source"] == "bundled"
    assert run.data.tags.get("data.format") == PRESETS[experiment]
    assert math.isfinite(run.data.metrics["test/loss"])


@pytest.mark.slow
def test_tf_data_steps_per_epoch_decides_the_number_of_training_steps(sweep):
    run = job(sweep, "guide_tf_data")
    assert run.data.params["data.shuffle_buffer"] == "1024"
    assert run.data.params["stages.fit.steps_per_epoch"] == "40"
    # the stage's own steps_per_epoch wins over trainer.limit_batches=2: 1 epoch x 40 steps
    assert int(saved_model(run).optimizer.iterations.numpy()) == 40


@pytest.mark.slow
def test_smoke_limit_caps_py_dataset_and_dataframe_training(sweep):
    for experiment in ("guide_py_dataset", "guide_pandas"):
        assert int(saved_model(job(sweep, experiment)).optimizer.iterations.numpy()) == 2


@pytest.mark.slow
def test_generator_run_reads_its_steps_from_the_data_and_predicts_in_order(sweep):
    run = job(sweep, "guide_generator")
    model = saved_model(run)
    # one pass would be 94 batches (info["steps"]); the smoke overrides' limit_batches=2 is smaller
    assert int(model.optimizer.iterations.numpy()) == 2
    x_test, _ = mnist_plugin.mnist(source="bundled").test
    predicted = predictions(run)
    assert predicted.shape == (128, 10)  # 2 batches of 64
    # evaluate ran first on the test split; predict still started at image 0
    np.testing.assert_allclose(predicted, model.predict(x_test[:128], verbose=0), atol=1e-5)


@pytest.mark.slow
def test_dataframe_run_trains_and_predicts_three_rows(sweep):
    run = job(sweep, "guide_pandas")
    assert run.data.params["data.name"] == "pandas"
    assert predictions(run).shape == (3, 10)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(WEIGHTS))
def test_weight_presets_weight_the_training_loss_of_class_5_twice(weighted, experiment):
    """The logged training loss is recounted with NumPy from the saved model: each sample's
    cross-entropy, class 5 weighted 2.0, summed and divided by the sample count (Keras 3's
    "sum_over_batch_size"); validation and test losses stay unweighted."""
    run = job(weighted, experiment)
    model = saved_model(run)
    data = mnist_plugin.mnist(source="bundled")

    def losses(split) -> tuple[np.ndarray, np.ndarray]:
        x, y = split[0], np.asarray(split[1]).astype("int64")
        probabilities = model.predict(x, batch_size=512, verbose=0)
        return -np.log(probabilities[np.arange(len(y)), y].astype("float64")), y

    train, labels = losses(data.train)
    weights = np.where(labels == 5, 2.0, 1.0)
    assert run.data.metrics["fit/loss"] == pytest.approx((weights * train).sum() / len(train), rel=1e-4)
    assert abs(run.data.metrics["fit/loss"] - train.mean()) > 1e-2, "the weights made a difference"
    assert run.data.metrics["fit/val_loss"] == pytest.approx(losses(data.validation)[0].mean(), rel=1e-4)
    assert run.data.metrics["test/loss"] == pytest.approx(losses(data.test)[0].mean(), rel=1e-4)


# -- in-process: each wrapper's effect ---------------------------------------------------


def toy(size: int = 200, classes: int = 10) -> Data:
    """``x[i] = (i, i % classes)``, ``y[i] = i % classes``: every split the same ``size`` samples."""
    ids = np.arange(size, dtype="float32")
    split = (np.stack([ids, ids % classes], axis=1), ids % classes)
    info = {"input_shape": (2,), "num_classes": classes, "source": "toy"}
    return Data(train=split, validation=split, test=split, info=info)


class Tags:
    """A hook relay that only records ``on_tags``."""

    def __init__(self):
        self.tags: dict[str, str] = {}

    def orchestrator_on_tags(self, context, tags):
        self.tags.update(tags)


def make_context(tmp_path, stages=None, limit_batches=None) -> RunContext:
    registry = Registry("data_source")
    data_formats.orchestrator_register_data_sources(registry)
    mnist_plugin.orchestrator_register_data_sources(registry)
    registry.add("toy", toy)
    cfg = OmegaConf.create({"trainer": {"limit_batches": limit_batches}, "stages": stages or {}})
    spec = SimpleNamespace(trainer=cfg.trainer)  # the part of the run spec the split helpers read
    return RunContext(
        cfg=cfg, spec=spec, hook=Tags(), registries={"data_source": registry}, output_dir=tmp_path
    )


def load(context: RunContext, spec: dict) -> Data:
    name, args = split_spec(spec, "data")
    return context.registries["data_source"].create(name, args, "data", context=context)


def ids(batch) -> np.ndarray:
    return np.asarray(batch[0])[:, 0].astype(int)


def test_tf_data_batches_of_64_shuffles_training_only(tmp_path):
    context = make_context(tmp_path)
    data = load(context, {"name": "tf_data", "source": {"name": "toy"}, "batch_size": 64})
    assert data.info["steps"] == {"train": 4, "validation": 4, "test": 4}
    assert data.info["num_classes"] == 10 and data.info["format"] == "tf_data"
    assert data.info["formats"][-1] == "tf_data"
    first, second = list(data.train), list(data.train)
    assert [len(ids(batch)) for batch in first] == [64, 64, 64, 8]
    order_1, order_2 = np.concatenate([ids(b) for b in first]), np.concatenate([ids(b) for b in second])
    assert sorted(order_1) == sorted(order_2) == list(range(200))
    assert not np.array_equal(order_1, np.arange(200)) and not np.array_equal(order_1, order_2)
    assert np.array_equal(np.concatenate([ids(b) for b in data.test]), np.arange(200))


def test_py_dataset_workers_deliver_every_sample_each_epoch_reshuffled(tmp_path, monkeypatch):
    import keras

    spec = {"name": "py_dataset", "source": {"name": "toy", "size": 300}, "batch_size": 64, "workers": 2}
    data = load(make_context(tmp_path), spec)
    dataset = data.train
    assert isinstance(dataset, keras.utils.PyDataset) and len(dataset) == 5
    assert dataset.workers == 2 and dataset.use_multiprocessing is False
    threads = set()
    original = type(dataset).__getitem__

    def recording(self, index):
        threads.add(threading.current_thread().name)
        return original(self, index)

    monkeypatch.setattr(type(dataset), "__getitem__", recording)
    model, epochs = recorder(), []
    model.fit(dataset, epochs=3, verbose=0, callbacks=[EpochSplitter(model, epochs)])
    assert len(epochs) == 3
    for seen in epochs:
        assert sorted(np.concatenate(seen)) == list(range(300))  # every sample, once
        assert sorted(len(batch) for batch in seen) == [44, 64, 64, 64, 64]
    orders = [tuple(np.concatenate(seen)) for seen in epochs]
    assert len(set(orders)) == 3  # a new order every epoch
    batches = [{tuple(sorted(b)) for b in seen} for seen in epochs]
    assert batches[0] != batches[1]  # reshuffled samples (on_epoch_end), not only batch order
    assert threads - {threading.main_thread().name}, "no batch was loaded by a worker thread"
    assert not data.test.batches.shuffle


def recorder():
    """A model whose eager training step records the ids of the samples it is given."""
    import keras

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.seen: list[np.ndarray] = []

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            self.seen.append(np.asarray(data[0])[:, 0].astype(int))
            return {"batch": keras.ops.convert_to_tensor(float(len(self.seen)))}

    model = Recorder()
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    return model


def EpochSplitter(model, epochs):  # noqa: N802 (a callback factory)
    import keras

    class Splitter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(list(model.seen))
            model.seen.clear()

    return Splitter()


def test_generator_is_endless_reshuffled_per_pass_and_fresh_per_stage(tmp_path):
    context = make_context(tmp_path, limit_batches=2)
    data = load(context, {"name": "generator", "source": {"name": "toy", "size": 150}, "batch_size": 64})
    assert data.info["steps"]["train"] == 3
    train = data.split("train")
    assert isinstance(train, types.GeneratorType)
    passes = [np.concatenate([ids(next(train)) for _ in range(3)]) for _ in range(3)]
    for order in passes:
        assert sorted(order) == list(range(150))
    assert len({tuple(order) for order in passes}) == 3
    first, second = data.split("test"), data.split("test")
    next(first)
    assert np.array_equal(ids(next(second)), np.arange(64))  # a new generator, from the start
    assert np.array_equal(ids(next(first)), np.arange(64, 128))


def test_stages_read_one_pass_of_an_endless_split_from_the_data(tmp_path):
    context = make_context(tmp_path)
    context.data = load(
        context, {"name": "generator", "source": {"name": "toy", "size": 150}, "batch_size": 64}
    )
    assert context.steps(None, "train") == 3  # one pass: ceil(150 / 64)
    assert context.steps(7, "train") == 7  # the stage's own count wins
    context.cfg.trainer.limit_batches = 2
    assert context.steps(None, "train") == 2  # a smaller trainer.limit_batches caps it


def test_generator_evaluate_and_predict_with_one_pass_of_steps(tmp_path):
    import keras

    data = load(make_context(tmp_path, limit_batches=1), {"name": "generator", "source": {"name": "toy"}})
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    steps = data.info["steps"]["test"]
    x, y = toy().test
    loss = model.evaluate(data.split("test"), steps=steps, verbose=0)
    predicted = model.predict(data.split("test"), steps=steps, verbose=0)
    assert predicted.shape == (200, 10)
    np.testing.assert_allclose(predicted, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(loss, model.evaluate(x, y, verbose=0), rtol=1e-5)


def test_pandas_splits_are_dataframes_and_train_as_the_arrays_do(tmp_path):
    import keras
    import pandas as pd

    data = load(make_context(tmp_path), {"name": "pandas", "source": {"name": "toy"}})
    x, y = data.train
    assert isinstance(x, pd.DataFrame) and list(x.columns) == ["x_0", "x_1"]
    assert isinstance(y, pd.Series) and y.name == "label"
    x_array, y_array = toy().train

    def losses(x, y):
        keras.utils.set_random_seed(2)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
        history = model.fit(x / [200.0, 10.0], y, batch_size=32, epochs=3, shuffle=False, verbose=0)
        return history.history["loss"]

    from_frame = losses(x, y)
    assert from_frame[-1] < from_frame[0]
    np.testing.assert_allclose(from_frame, losses(x_array, y_array), rtol=1e-5)


def test_sample_weighted_weights_by_class_and_nests_inside_tf_data(tmp_path):
    context = make_context(tmp_path)
    inner = {"name": "sample_weighted", "source": {"name": "toy"}, "class_weights": {5: 2.0}}
    data = load(context, inner)
    x, y, w = data.train
    np.testing.assert_array_equal(w, np.where(y == 5, 2.0, 1.0))
    assert len(data.validation) == len(data.test) == 2  # only the training split, as the guide does
    both = load(context, {**inner, "splits": ["train", "test"]})
    assert len(both.test) == 3
    dataset = load(context, {"name": "tf_data", "source": inner, "batch_size": 64})
    assert dataset.info["formats"] == ["sample_weighted", "tf_data"]
    batch_x, batch_y, batch_w = next(iter(dataset.train))
    np.testing.assert_array_equal(batch_w, np.where(np.asarray(batch_y) == 5, 2.0, 1.0))
    with pytest.raises(UserError, match="Put 'sample_weighted' inside"):
        load(context, {**inner, "source": {"name": "tf_data", "source": {"name": "toy"}}})


# -- in-process: what the weights do to the loss -----------------------------------------


@pytest.fixture(scope="module")
def fixed_model():
    """The guide's MLP with fixed random weights, and the shipped MNIST test split."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((784,))
    hidden = keras.layers.Dense(64, activation="relu")(keras.layers.Dense(64, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0),  # fit changes nothing: the loss stays fixed
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    x, y = mnist_plugin.mnist(source="bundled").test
    probabilities = model.predict(x, verbose=0).astype("float64")
    eps = keras.config.epsilon()
    per_sample = -np.log(np.clip(probabilities[np.arange(len(y)), y.astype(int)], eps, 1 - eps))
    return model, x, y, per_sample


def test_sample_weights_scale_each_loss_and_divide_by_the_sample_count(tmp_path, fixed_model):
    """Keras 3's "sum_over_batch_size": sum(w_i * l_i) / n, not / sum(w_i); metrics stay unweighted."""
    model, x, y, per_sample = fixed_model
    w = data_formats.class_sample_weights(y, {5: 2.0})
    assert w.sum() > 1.05 * len(w)  # the two candidate divisors differ enough to tell apart
    plain = model.evaluate(x, y, batch_size=128, verbose=0, return_dict=True)
    weighted = model.evaluate(x, y, sample_weight=w, batch_size=128, verbose=0, return_dict=True)
    np.testing.assert_allclose(plain["loss"], per_sample.mean(), rtol=1e-4)
    np.testing.assert_allclose(weighted["loss"], (w * per_sample).sum() / len(w), rtol=1e-4)
    assert abs(weighted["loss"] - (w * per_sample).sum() / w.sum()) > 1e-2
    assert weighted["sparse_categorical_accuracy"] == plain["sparse_categorical_accuracy"]
    # the Dataset form, (x, y, sample_weight) batches of 64: the same reduction
    spec = {
        "name": "tf_data",
        "source": {"name": "sample_weighted", "source": {"name": "mnist", "source": "bundled"},
                   "class_weights": {5: 2.0}, "splits": ["test"]},
    }  # fmt: skip
    dataset = load(make_context(tmp_path), spec).test
    from_dataset = model.evaluate(dataset, verbose=0, return_dict=True)
    np.testing.assert_allclose(from_dataset["loss"], weighted["loss"], rtol=1e-4)


def test_class_weight_in_fit_weights_the_training_loss_like_sample_weights(fixed_model):
    model, x, y, per_sample = fixed_model
    w = data_formats.class_sample_weights(y, {5: 2.0})
    expected = (w * per_sample).sum() / len(w)
    by_class = model.fit(x, y, class_weight={5: 2.0}, batch_size=64, epochs=1, shuffle=False, verbose=0)
    by_sample = model.fit(x, y, sample_weight=w, batch_size=64, epochs=1, shuffle=False, verbose=0)
    unweighted = model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(by_class.history["loss"][0], expected, rtol=1e-4)
    np.testing.assert_allclose(by_sample.history["loss"][0], expected, rtol=1e-4)
    np.testing.assert_allclose(unweighted.history["loss"][0], per_sample.mean(), rtol=1e-4)
