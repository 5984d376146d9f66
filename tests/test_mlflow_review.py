"""The mlflow_review plugin: the MLflow model loads back and predicts as the run did; plots; sweeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_image, mlflow_client, only_run, run_cli

pytestmark = pytest.mark.slow

REGISTERED = "digits-review"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("review")
    result = run_cli(
        "+experiment=mnist",
        "data.source=bundled",
        "trainer.limit_batches=5",
        "trainer.verbose=0",
        f"tracking.register_model={REGISTERED}",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_the_registered_mlflow_model_predicts_what_the_run_predicted(folder):
    import mlflow

    from orchestrator_plugins.mnist import mnist

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/1")
    x_test, _ = mnist(source="bundled").test
    run = only_run(folder, "mnist")
    in_process = np.load(Path(run.data.tags["orchestrator.output_dir"]) / "predictions" / "predict.npy")
    loaded = np.asarray(model.predict(x_test[:3]))
    np.testing.assert_allclose(loaded, in_process, rtol=1e-5, atol=1e-6)


def test_the_registered_mlflow_model_predicts_what_the_runs_saved_model_predicts(folder):
    import keras
    import mlflow

    from orchestrator_plugins.mnist import mnist

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/1")
    run = only_run(folder, "mnist")
    saved = keras.saving.load_model(Path(run.data.tags["orchestrator.output_dir"]) / "model.keras")
    x_test, _ = mnist(source="bundled").test
    samples = x_test[:256]
    expected = saved.predict(samples, verbose=0)
    np.testing.assert_allclose(np.asarray(pyfunc.predict(samples)), expected, rtol=1e-5, atol=1e-6)


def test_the_mlflow_model_has_a_signature_and_an_input_example(folder):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    info = mlflow.models.get_model_info(f"models:/{REGISTERED}/1")
    assert info.signature is not None
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 784]
    assert info.saved_input_example_info is not None


@pytest.mark.parametrize("name", ["plots/learning_curves.png", "plots/confusion_matrix.png"])
def test_each_plot_is_a_png_image_that_is_not_blank(folder, tmp_path, name):
    client, run = mlflow_client(folder), only_run(folder, "mnist")
    assert_image(Path(client.download_artifacts(run.info.run_id, name, str(tmp_path))))


def test_sweep_jobs_skip_the_mlflow_model_and_plots_unless_asked(workdir):
    result = run_cli(
        "-m", "+experiment=mnist", "data.source=bundled", "trainer.limit_batches=2", "trainer.epochs=1",
        "tracking.review_in_sweeps=false,true", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    jobs = {
        r.data.params["tracking.review_in_sweeps"]: r for r in runs if "mlflow.parentRunId" in r.data.tags
    }
    plots = {
        flag: [a.path for a in client.list_artifacts(run.info.run_id, "plots")] for flag, run in jobs.items()
    }
    assert plots["False"] == [] and "plots/learning_curves.png" in plots["True"]
