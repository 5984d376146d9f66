"""End to end: ``python -m orchestrator +experiment=mnist`` for real, read back from MLflow.

The CLI runs once for the module, in a fresh folder, offline: the Keras loader
cannot get ``mnist.npz`` (no cache in an empty ``KERAS_HOME``, and downloads go to
an unreachable proxy), so the run trains on the MNIST split the project ships.
Each test then checks one behaviour against the real MLflow store (``MlflowClient``
on ``sqlite:///<folder>/mlflow.db``), its downloaded artifacts and the output folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import mlflow_client, offline_env, only_run, store_uri

pytestmark = pytest.mark.slow

#: Artifact path in MLflow -> the same file, relative to the run's output folder.
FILES = {
    "config/config.yaml": "config.yaml",
    "config/overrides.yaml": "overrides.yaml",
    "checkpoints/epoch-001.keras": "checkpoints/epoch-001.keras",
    "checkpoints/epoch-002.keras": "checkpoints/epoch-002.keras",
    "model/model.keras": "model.keras",
    "predictions/predict.csv": "predictions/predict.csv",
    "predictions/predict.npy": "predictions/predict.npy",
}
#: The guide's model: (layer name, output shape) in order.
GUIDE_LAYERS = [
    ("digits", (None, 784)),
    ("dense_1", (None, 64)),
    ("dense_2", (None, 64)),
    ("predictions", (None, 10)),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def result(folder) -> subprocess.CompletedProcess:
    """The one real run of ``python -m orchestrator +experiment=mnist`` in ``folder``."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "+experiment=mnist"],
        cwd=folder,
        env=offline_env(folder),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def run(result, folder):
    assert result.returncode == 0, f"the CLI failed:\n{result.stdout}\n{result.stderr}"
    return only_run(folder, "mnist")


@pytest.fixture(scope="module")
def client(folder):
    return mlflow_client(folder)


@pytest.fixture(scope="module")
def artifacts(run, folder, tmp_path_factory) -> Path:
    """All of the run's artifacts, downloaded from the store."""
    import mlflow.artifacts

    target = tmp_path_factory.mktemp("artifacts")
    mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, dst_path=str(target), tracking_uri=store_uri(folder)
    )
    return target


@pytest.fixture(scope="module")
def output_dir(run) -> Path:
    return Path(run.data.tags["orchestrator.output_dir"])


@pytest.fixture(scope="module")
def model(artifacts):
    import keras

    return keras.saving.load_model(artifacts / "model" / "model.keras")


def test_exit_code_is_zero(result):
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_run_is_finished_in_experiment_mnist(run, client):
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "mnist"


def test_run_has_a_meaningful_name(run):
    # The preset's name, not one of MLflow's random "bold-cat-123" names.
    assert run.info.run_name.startswith("mnist"), run.info.run_name
    assert run.data.tags["mlflow.runName"] == run.info.run_name


@pytest.mark.parametrize("metric", ["fit/loss", "fit/val_loss", "fit/val_sparse_categorical_accuracy"])
def test_fit_metrics_are_logged_per_epoch_with_step_epoch(run, client, metric):
    history = client.get_metric_history(run.info.run_id, metric)
    assert sorted(m.step for m in history) == [0, 1]
    assert all(np.isfinite(m.value) for m in history)


def test_training_loss_goes_down(run, client):
    history = sorted(client.get_metric_history(run.info.run_id, "fit/loss"), key=lambda m: m.step)
    assert history[1].value < history[0].value


@pytest.fixture(scope="module")
def splits():
    """The run's splits (``data.source=auto`` fell back to the shipped split: the bundled data)."""
    from orchestrator_plugins.mnist import mnist

    return mnist(source="bundled")


def recount(model, x, y) -> tuple[float, float]:
    """Sparse categorical cross-entropy and accuracy of ``model`` on ``(x, y)``, counted with NumPy."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    probabilities = np.asarray(model.predict(x, batch_size=1024, verbose=0), dtype=np.float64)
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1 - 1e-7)
    return float(-np.log(picked).mean()), float((probabilities.argmax(axis=1) == y).mean())


def test_test_metrics_are_a_recount_of_the_saved_model_on_the_test_split(run, model, splits):
    loss, accuracy = recount(model, *splits.test)
    assert run.data.metrics["test/sparse_categorical_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert run.data.metrics["test/loss"] == pytest.approx(loss, rel=1e-4)


@pytest.mark.parametrize(("step", "checkpoint"), [(0, "epoch-001.keras"), (1, "epoch-002.keras")])
def test_each_epochs_validation_metrics_are_a_recount_of_that_epochs_checkpoint(
    run, client, artifacts, splits, step, checkpoint
):
    import keras

    saved = keras.saving.load_model(artifacts / "checkpoints" / checkpoint)
    loss, accuracy = recount(saved, *splits.validation)
    logged = {
        name: {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}[step]
        for name in ("fit/val_loss", "fit/val_sparse_categorical_accuracy")
    }
    assert logged["fit/val_sparse_categorical_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert logged["fit/val_loss"] == pytest.approx(loss, rel=1e-4)


def test_training_and_validation_metrics_are_different_series(run, client):
    def values(name):
        return [
            m.value for m in sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
        ]

    assert values("fit/loss") != values("fit/val_loss")
    accuracy = values("fit/sparse_categorical_accuracy")
    assert accuracy != values("fit/val_sparse_categorical_accuracy")


def test_params_are_the_flattened_resolved_config(run):
    params = run.data.params
    assert params["optimizer.name"] == "rmsprop"
    assert params["optimizer.learning_rate"] == "0.001"
    assert params["trainer.batch_size"] == "64"
    assert params["trainer.epochs"] == "2"
    assert params["stages.test.batch_size"] == "128"
    assert params["stages.predict.samples"] == "3"
    assert params["data.name"] == "mnist"
    assert params["model.name"] == "mlp"


def test_data_source_tag_says_bundled(run):
    assert run.data.tags["data_source"] == "bundled"


@pytest.mark.parametrize("tag", ["version.tensorflow", "version.keras", "version.mlflow"])
def test_version_tags_are_set(run, tag):
    assert run.data.tags.get(tag), f"no {tag} tag: {run.data.tags}"


@pytest.mark.parametrize("path", sorted(FILES))
def test_artifact_is_logged(artifacts, path):
    assert (artifacts / path).is_file()
    assert (artifacts / path).stat().st_size > 0


def test_config_artifacts_hold_the_resolved_config_and_overrides(artifacts):
    config = OmegaConf.load(artifacts / "config" / "config.yaml")
    assert config.optimizer.learning_rate == 0.001
    assert config.trainer.batch_size == 64
    assert config.stages.test.batch_size == 128
    assert config.data.name == "mnist"
    overrides = OmegaConf.load(artifacts / "config" / "overrides.yaml")
    assert list(overrides) == ["+experiment=mnist"]


def test_prediction_csv_has_3_rows_of_10_probabilities(artifacts):
    rows = np.loadtxt(artifacts / "predictions" / "predict.csv", delimiter=",", ndmin=2)
    assert rows.shape == (3, 10)
    assert np.all(rows >= 0) and np.all(rows <= 1)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-5)


def test_logged_model_loads_and_is_the_guides_mlp(model):
    assert [layer.name for layer in model.layers] == [name for name, _ in GUIDE_LAYERS]
    shapes = [tuple(layer.output.shape) for layer in model.layers]
    assert shapes == [shape for _, shape in GUIDE_LAYERS]
    kernels = [tuple(layer.kernel.shape) for layer in model.layers[1:]]
    assert kernels == [(784, 64), (64, 64), (64, 10)]
    assert model.get_layer("predictions").activation.__name__ == "softmax"


def test_logged_model_reproduces_the_logged_predictions(model, artifacts):
    from orchestrator_plugins.mnist import mnist

    x_test, _ = mnist(source="bundled").test
    logged = np.load(artifacts / "predictions" / "predict.npy")
    assert logged.shape == (3, 10)
    predicted = model.predict(x_test[:3], verbose=0)
    np.testing.assert_array_equal(predicted, logged)


def test_output_mentions_the_bundled_mnist_split(result):
    lines = (result.stdout + result.stderr).splitlines()
    loud = [
        line
        for line in lines
        if "WARNING" in line and "MNIST" in line and ("shipped" in line or "bundled" in line)
    ]
    assert loud, "no warning line about the bundled MNIST split in:\n" + "\n".join(lines[-40:])


def test_an_offline_run_does_not_claim_to_download(result):
    """The Keras loader's "Downloading data from ..." is shown only when a download happens."""
    assert "Downloading data from" not in result.stdout + result.stderr


def test_output_folder_holds_the_same_files(output_dir, artifacts, folder):
    assert output_dir.is_relative_to(folder / "outputs"), output_dir
    for artifact, local in FILES.items():
        assert (output_dir / local).is_file(), f"{local} missing in {output_dir}"
        assert (output_dir / local).read_bytes() == (artifacts / artifact).read_bytes(), local
