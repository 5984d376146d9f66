"""The mlflow_review plugin: the MLflow model loads back and predicts as the run did; plots; sweeps.
And what the run's record holds for review: the experiment's kind, the run's datasets with their
digests, its source tags, its system metrics; a sweep job's model, linked to the job."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_image, cli_env, mlflow_client, only_run, run_cli

pytestmark = pytest.mark.slow

REGISTERED = "digits-review"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("review")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], cwd=folder, check=True)
    result = run_cli(
        "+experiment=mnist",
        "data.source=bundled",
        "trainer.limit_batches=5",
        "trainer.verbose=0",
        f"tracking.register_model={REGISTERED}",
        cwd=folder,
        env=cli_env(MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1"),
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


def test_the_experiment_is_a_model_training_one(folder):
    client = mlflow_client(folder)
    assert client.get_experiment_by_name("mnist").tags["mlflow.experimentKind"] == "custom_model_development"


def test_each_split_is_a_dataset_input_with_its_content_digest_and_rows(folder):
    from orchestrator.data_digest import split_digest
    from orchestrator.tracking.datasets import read_inputs
    from orchestrator_plugins.mnist import mnist

    data = mnist(source="bundled")
    expected = {
        split: {
            "name": f"mnist-{split}",
            "digest": split_digest(getattr(data, split)),
            "source": "bundled",
            "num_rows": len(getattr(data, split)[0]),
            "digest_of": "content",
        }
        for split in ("train", "validation", "test")
    }
    assert read_inputs(only_run(folder, "mnist")) == expected
    assert [expected[split]["num_rows"] for split in expected] == [6000, 2000, 2000]


def test_the_run_names_its_command_commit_and_user(folder):
    tags = only_run(folder, "mnist").data.tags
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout
    assert tags["mlflow.source.name"] == (
        "python -m orchestrator +experiment=mnist data.source=bundled trainer.limit_batches=5 "
        f"trainer.verbose=0 tracking.register_model={REGISTERED}"
    )
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.git.commit"] == tags["git.commit"] == commit.strip()
    assert tags["mlflow.user"] == getpass.getuser()


def test_the_worker_samples_the_machines_cpu_and_memory_through_the_run(folder):
    import psutil

    client, run = mlflow_client(folder), only_run(folder, "mnist")
    cpu = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    memory = client.get_metric_history(run.info.run_id, "system/system_memory_usage_megabytes")
    assert len(cpu) >= 2 and [m.step for m in cpu] == list(range(len(cpu)))
    assert all(0 <= m.value <= 100 for m in cpu)
    assert all(0 < m.value <= psutil.virtual_memory().total / 2**20 for m in memory)
    assert run.info.start_time <= cpu[0].timestamp < run.info.end_time  # from the run's start on


def test_sweep_jobs_skip_the_mlflow_model_and_plots_unless_asked(workdir):
    result = run_cli(
        "-m", "+experiment=mnist", "data.source=bundled", "trainer.limit_batches=2", "trainer.epochs=1",
        "tracking.review_in_sweeps=false,true", "tracking.system_metrics=false", cwd=workdir,
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
    models = {flag: [m.model_id for m in run.outputs.model_outputs] for flag, run in jobs.items()}
    assert models["False"] == [] and len(models["True"]) == 1  # the Model column of the run list
    (logged,) = client.search_logged_models([jobs["True"].info.experiment_id])
    assert (logged.model_id, logged.source_run_id) == (models["True"][0], jobs["True"].info.run_id)
    assert not [key for run in runs for key in run.data.metrics if key.startswith("system/")]
