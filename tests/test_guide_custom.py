"""The guide's custom losses, metrics and layers (plugin ``guide_custom``).

Unit tests call the Keras classes directly and check their maths against NumPy.
End-to-end tests run each preset through the real CLI in a subprocess, read the
real MLflow store, load the saved model, and recompute with NumPy what the run
logged: the custom loss, the custom metric's count, the loss a layer added and
the standard deviation a layer logged, the endpoint layer's cross-entropy.

The runs are small (``trainer.limit_batches``, bundled MNIST) to keep the file
to about a minute.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, cli_env, mlflow_client, only_run, run_cli

PRESETS = [
    "guide_custom_loss_function",
    "guide_custom_loss_class",
    "guide_custom_metric",
    "guide_layer_losses",
    "guide_endpoint",
]
#: Every MNIST run uses the shipped split, so the tests can rebuild the same batches.
BUNDLED = "data.source=bundled"
#: The end-to-end runs: preset -> overrides (MNIST presets evaluate 2 batches of 128 test digits).
RUNS = {
    "guide_custom_loss_function": ["trainer.limit_batches=2", BUNDLED],
    "guide_custom_loss_class": ["trainer.limit_batches=2", BUNDLED],
    "guide_custom_metric": ["trainer.limit_batches=2", "trainer.epochs=2", BUNDLED],
    "guide_layer_losses": ["trainer.limit_batches=2", "trainer.epochs=2", BUNDLED],
    "guide_endpoint": [],  # the whole preset: 1,024 random samples, 2 epochs
}
#: Evaluation batches of the MNIST presets: stages.test.batch_size (128) x trainer.limit_batches (2).
TEST_BATCH, TEST_BATCHES = 128, 2


# -- helpers -------------------------------------------------------------------------------


def _finished(job):
    """Wait for a launched CLI run; return (folder, MLflow run, saved model path)."""
    folder, preset, future = job
    result = future.result()
    assert result.returncode == 0, f"{preset} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    run = only_run(folder, preset)
    assert run.info.status == "FINISHED"
    return folder, run, Path(run.data.tags["orchestrator.output_dir"]) / "model.keras"


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Start every preset's CLI run at once (each pays ~8 s of TensorFlow import; they overlap).

    Returns ``preset -> (folder, preset, future of run_cli's result)``; each folder
    holds one run's ``mlflow.db`` and ``outputs/``.
    """
    jobs = {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        for preset, overrides in RUNS.items():
            folder = tmp_path_factory.mktemp(preset)
            args = (f"+experiment={preset}", "trainer.verbose=0", *overrides)
            jobs[preset] = (folder, preset, pool.submit(run_cli, *args, cwd=folder))
        yield jobs


def _load(path: Path):
    import keras

    from orchestrator_plugins.guide_custom import custom_objects

    return keras.saving.load_model(path, custom_objects=custom_objects())


def _history(folder: Path, run, metric: str) -> list[float]:
    history = mlflow_client(folder).get_metric_history(run.info.run_id, metric)
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def _mnist_test(one_hot: bool):
    from orchestrator_plugins.mnist import mnist

    x, y = mnist(source="bundled", one_hot=one_hot).test
    n = TEST_BATCH * TEST_BATCHES
    return x[:n], y[:n]


def _dense(model, name: str, x):
    kernel, bias = (np.asarray(w) for w in model.get_layer(name).get_weights())
    return x @ kernel + bias


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# -- unit tests: the maths ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def probabilities():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 10)).astype("float32")
    probs = np.exp(_log_softmax(logits)).astype("float32")
    labels = rng.integers(0, 10, size=16)
    return probs, labels, np.eye(10, dtype="float32")[labels]


def test_custom_mean_squared_error_is_the_per_sample_mse(probabilities):
    from orchestrator_plugins.guide_custom._losses import custom_mean_squared_error

    probs, _, one_hot = probabilities
    got = np.asarray(custom_mean_squared_error(one_hot, probs))
    np.testing.assert_allclose(got, ((one_hot - probs) ** 2).mean(axis=-1), rtol=1e-6)


@pytest.mark.parametrize("factor", [0.1, 0.5])
def test_custom_mse_adds_the_pull_towards_one_half(probabilities, factor):
    from orchestrator_plugins.guide_custom._losses import CustomMSE

    probs, _, one_hot = probabilities
    mse = ((one_hot - probs) ** 2).mean(axis=-1)
    reg = ((0.5 - probs) ** 2).mean(axis=-1)
    loss = CustomMSE(regularization_factor=factor)
    np.testing.assert_allclose(float(loss(one_hot, probs)), (mse + factor * reg).mean(), rtol=1e-5)
    again = CustomMSE.from_config(loss.get_config())
    assert again.regularization_factor == factor and again.name == "custom_mse"


@pytest.mark.parametrize("shape", ["sparse", "column", "one_hot"])
def test_categorical_true_positives_counts_correct_samples(probabilities, shape):
    from orchestrator_plugins.guide_custom._metrics import CategoricalTruePositives

    probs, labels, one_hot = probabilities
    y_true = {"sparse": labels, "column": labels[:, None], "one_hot": one_hot}[shape].astype("float32")
    correct = probs.argmax(axis=-1) == labels
    metric = CategoricalTruePositives()
    metric.update_state(y_true, probs)
    metric.update_state(y_true[:5], probs[:5])
    assert float(metric.result()) == correct.sum() + correct[:5].sum()
    metric.reset_state()
    assert float(metric.result()) == 0.0
    weights = np.linspace(0, 1, len(labels)).astype("float32")
    metric.update_state(y_true, probs, sample_weight=weights)
    np.testing.assert_allclose(float(metric.result()), (correct * weights).sum(), rtol=1e-6)


def test_activity_regularization_layer_adds_rate_times_sum():
    from orchestrator_plugins.guide_custom._layers import ActivityRegularizationLayer

    x = np.arange(12, dtype="float32").reshape(3, 4)
    layer = ActivityRegularizationLayer(rate=0.01)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 0.01 * x.sum(), rtol=1e-6)


def test_metric_logging_layer_tracks_the_mean_of_batch_stds():
    from orchestrator_plugins.guide_custom._layers import MetricLoggingLayer

    rng = np.random.default_rng(1)
    batches = [rng.normal(scale=s, size=(8, 5)).astype("float32") for s in (1.0, 3.0)]
    layer = MetricLoggingLayer()
    for batch in batches:
        layer(batch)
    assert [m.name for m in layer.metrics] == ["std_of_activation"]
    np.testing.assert_allclose(float(layer.tracker.result()), np.mean([b.std() for b in batches]), rtol=1e-5)


def test_logistic_endpoint_adds_binary_crossentropy_and_returns_softmax():
    from orchestrator_plugins.guide_custom._layers import LogisticEndpoint

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 10)).astype("float32")
    targets = rng.random((4, 10)).astype("float32")
    layer = LogisticEndpoint()
    out = np.asarray(layer(targets, logits))
    np.testing.assert_allclose(out, np.exp(_log_softmax(logits)), rtol=1e-5)
    bce = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    np.testing.assert_allclose(float(layer.losses[0]), bce.mean(), rtol=1e-5)
    hits = (targets > 0.5) == (logits > 0)
    np.testing.assert_allclose(float(layer.accuracy.result()), hits.mean(), rtol=1e-6)


def test_endpoint_random_gives_dict_inputs_and_no_y():
    from orchestrator_plugins.guide_custom import endpoint_random

    data = endpoint_random(train_size=5, validation_size=0, test_size=2, seed=3)
    x, y = data.train
    assert y is None and set(x) == {"inputs", "targets"}
    assert x["inputs"].shape == (5, 3) and x["targets"].shape == (5, 10)
    assert data.validation is None and data.test[0]["inputs"].shape == (2, 3)
    again = endpoint_random(train_size=5, validation_size=0, test_size=2, seed=3)
    np.testing.assert_array_equal(again.train[0]["targets"], x["targets"])


def test_presets_compose_and_validate_without_importing_keras(tmp_path):
    """Every preset validates, a misspelt loss argument does not, and no TensorFlow is imported."""
    script = f"""
import sys
from hydra import compose, initialize_config_dir
from orchestrator.config import register_schema
from orchestrator.spec import validate
from orchestrator.errors import UserError
from orchestrator.plugins import get_plugin_manager
register_schema()
registries = get_plugin_manager().registries
with initialize_config_dir(config_dir={str(REPO / "conf")!r}, version_base="1.3"):
    for preset in {PRESETS!r}:
        validate(compose("config", overrides=["+experiment=" + preset]), registries)
    typo = ["+experiment=guide_custom_loss_class", "+loss.regularization_factr=1"]
    typo = compose("config", overrides=typo)
    try:
        validate(typo, registries)
    except UserError as error:
        print("TYPO", error)
print("HEAVY", [m for m in ("tensorflow", "keras", "mlflow") if m in sys.modules])
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "TYPO loss.regularization_factr" in result.stdout and "regularization_factor" in result.stdout


# -- end to end: custom losses --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "factor"), [("guide_custom_loss_function", 0.0), ("guide_custom_loss_class", 0.1)]
)
def test_custom_loss_is_what_the_run_logged(launched, preset, factor):
    _, run, model_path = _finished(launched[preset])
    assert run.data.params["data.one_hot"] == "True"
    model = _load(model_path)
    x, y = _mnist_test(one_hot=True)
    probs = model.predict(x, verbose=0)
    mse = ((y - probs) ** 2).mean(axis=-1)
    reg = ((0.5 - probs) ** 2).mean(axis=-1)
    expected = (mse + factor * reg).mean()
    np.testing.assert_allclose(run.data.metrics["test/loss"], expected, rtol=1e-4)
    if factor:
        # The regularization term is really there: the plain MSE would be clearly lower.
        assert run.data.metrics["test/loss"] - mse.mean() > 0.5 * factor * reg.mean()
        assert type(model.loss).__name__ == "CustomMSE"
        assert model.loss.regularization_factor == factor
    accuracy = (probs.argmax(-1) == y.argmax(-1)).mean()
    np.testing.assert_allclose(run.data.metrics["test/categorical_accuracy"], accuracy, atol=1e-6)


# -- end to end: custom metric ------------------------------------------------------------------


@pytest.mark.slow
def test_categorical_true_positives_is_the_numpy_recount(launched):
    folder, run, model_path = _finished(launched["guide_custom_metric"])
    model = _load(model_path)
    metrics = model.get_compile_config()["metrics"]
    assert [m["registered_name"] for m in metrics] == ["orchestrator_guide>CategoricalTruePositives"]
    x, labels = _mnist_test(one_hot=False)
    predicted = model.predict(x, verbose=0).argmax(axis=-1)
    logged = run.data.metrics["test/categorical_true_positives"]
    assert logged == float((predicted == labels).sum())
    assert 0 < logged <= len(labels)
    # Reset each epoch: a count per epoch of at most its 2 batches of 64 samples.
    per_epoch = _history(folder, run, "fit/categorical_true_positives")
    assert len(per_epoch) == 2
    assert all(0 <= value <= 128 and value == int(value) for value in per_epoch)


@pytest.mark.slow
def test_categorical_true_positives_logs_the_training_count_apart_from_the_validation_count(workdir):
    """With weights that do not move (SGD at 1e-12) and no shuffling, the epoch's running count is the
    model's correct predictions on the batches it saw: recounted with NumPy on the training split and,
    separately, on the validation split (Keras validates with the same metric object)."""
    result = run_cli(
        "+experiment=guide_custom_metric",
        BUNDLED,
        "trainer.epochs=1",
        "trainer.limit_batches=2",
        "optimizer=sgd",
        "optimizer.learning_rate=1e-12",
        "+stages.fit.shuffle=false",
        "stages.predict=null",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run(workdir, "guide_custom_metric")
    model = _load(Path(run.data.tags["orchestrator.output_dir"]) / "checkpoints" / "epoch-001.keras")
    from orchestrator_plugins.mnist import mnist

    data = mnist(source="bundled")
    seen = 2 * 64  # trainer.limit_batches batches of trainer.batch_size, in order
    counts = {}
    for split in ("train", "validation"):
        x, labels = getattr(data, split)
        counts[split] = float((model.predict(x[:seen], verbose=0).argmax(-1) == labels[:seen]).sum())
    assert counts["train"] != counts["validation"]  # else the test could not tell them apart
    assert run.data.metrics["fit/categorical_true_positives"] == counts["train"]
    assert run.data.metrics["fit/val_categorical_true_positives"] == counts["validation"]


# -- end to end: losses and metrics added by layers --------------------------------------------------


@pytest.mark.slow
def test_layer_loss_and_std_metric_reach_the_logs(launched):
    folder, run, model_path = _finished(launched["guide_layer_losses"])
    rate = float(run.data.params["model.regularization_rate"])
    model = _load(model_path)
    assert model.get_layer("activity_regularization").rate == rate
    x, labels = _mnist_test(one_hot=False)

    # Recompute, in NumPy, the guide's MLP on the evaluated batches.
    activations = np.maximum(_dense(model, "dense_1", x), 0)
    hidden = np.maximum(_dense(model, "dense_2", activations), 0)
    logits = _dense(model, "predictions", hidden)
    cross_entropy = -_log_softmax(logits)[np.arange(len(labels)), labels.astype(int)].mean()
    batches = np.split(activations, TEST_BATCHES)
    layer_loss = np.mean([rate * batch.sum() for batch in batches])

    logged = run.data.metrics["test/loss"]
    np.testing.assert_allclose(logged, cross_entropy + layer_loss, rtol=1e-4)
    assert logged > cross_entropy + 0.5 * layer_loss  # the added loss is really in the logged loss
    np.testing.assert_allclose(
        run.data.metrics["test/std_of_activation"], np.mean([b.std() for b in batches]), rtol=1e-4
    )
    for metric in ("fit/loss", "fit/std_of_activation", "fit/val_std_of_activation"):
        values = _history(folder, run, metric)
        assert len(values) == 2 and all(np.isfinite(values)), (metric, values)
    assert all(v >= 0 for v in _history(folder, run, "fit/std_of_activation"))


# -- end to end: the endpoint layer, compiled with no loss ----------------------------------------------


@pytest.mark.slow
def test_endpoint_model_trains_on_its_own_loss(launched):
    from orchestrator_plugins.guide_custom import endpoint_random

    folder, run, model_path = _finished(launched["guide_endpoint"])
    assert run.data.params["loss"] == "None"
    model = _load(model_path)
    # Compiled with no loss: the endpoint layer's add_loss is the whole loss.
    assert model.loss is None and model.get_compile_config()["loss"] is None
    assert sorted(model.input) == ["inputs", "targets"]

    params = run.data.params
    sizes = {k: int(params[f"data.{k}"]) for k in ("train_size", "validation_size", "test_size", "seed")}
    x, y = endpoint_random(**sizes).test
    assert y is None
    logits = _dense(model, "logits", x["inputs"])
    targets = x["targets"]
    bce = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    np.testing.assert_allclose(run.data.metrics["test/loss"], bce.mean(), rtol=1e-4)
    hits = (targets > 0.5) == (logits > 0)
    np.testing.assert_allclose(run.data.metrics["test/accuracy"], hits.mean(), atol=1e-6)

    losses = _history(folder, run, "fit/loss")
    assert len(losses) == 2 and losses[1] < losses[0]
    predictions = np.loadtxt(model_path.parent / "predictions" / "predict.csv", delimiter=",", ndmin=2)
    assert predictions.shape == (3, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=1e-5)
