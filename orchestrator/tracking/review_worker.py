"""The review's MLflow work, done in the tracking worker: plots and the MLflow model of a finished run.

:mod:`orchestrator.tracking.review` (in the training process) computes what
needs Keras (the predicted test labels, the model's output on the input
example) and hands the rest to :func:`learning_curves`, :func:`confusion_matrix`
and :func:`mlflow_model` through the run's spool, so
the training process neither imports MLflow nor matplotlib, nor serialises the
model a second time: the MLflow model's ``data/model.keras`` is a copy of the
run's ``model.keras``, with the files and metadata that ``mlflow.keras.save_model``
writes (the Keras flavour, the pyfunc loader, requirements, input example,
signature), so ``mlflow.keras.load_model`` and ``mlflow.pyfunc.load_model`` load it.

The worker imports this module while the training process is still importing
TensorFlow (a preload), so that matplotlib and MLflow's model code are ready
when the run ends. The model's requirements pin the installed Keras and
TensorFlow, so MLflow's check of them against the environment (which reads
every installed package's files: 0.8 s on 2 cores) is left out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import matplotlib.figure  # noqa: F401  (preloaded: imported here, while the worker is idle)
import mlflow.models  # noqa: F401

from orchestrator.tracking import review_plots as plots
from orchestrator.tracking.store import is_transient

log = logging.getLogger("orchestrator.review")


def _warm_up() -> None:
    """Load what the first plot would load: fonts, the PNG writer."""
    import io

    import numpy as np

    try:
        curves = plots.learning_curves({"fit/loss": {0: 1.0}, "fit/val_loss": {0: 1.0}}, "warm-up")
        matrix = plots.confusion_matrix(np.array([0, 1]), np.array([0, 1]), 2, ["0", "1"])
        for figure in (curves, matrix):
            figure.savefig(io.BytesIO(), format="png", dpi=10)
    except Exception as error:  # only a head start
        log.debug("Review warm-up incomplete: %s", error)


_warm_up()

#: The MLflow 3 logged model's name. Not ``model``: MLflow resolves ``runs:/<run>/<name>/...`` to
#: a logged model of that name first, which would hide the run's own ``model/model.keras``.
MODEL_NAME = "keras_model"


def learning_curves(client, run: dict[str, Any], output_dir: str, history: dict[str, dict[str, float]]):
    """Draw and log ``plots/learning_curves.png``; return its artifact path (``None``: nothing to draw)."""
    run_id = run["run_id"]
    title = client.get_run(run_id).info.run_name or "run"
    draw = lambda: plots.learning_curves(_stored_history(client, run_id, history), title)  # noqa: E731
    return _log_plot(client, run_id, Path(output_dir), "learning_curves", draw)


def confusion_matrix(client, run: dict[str, Any], output_dir: str, file: str, classes: int, names: list[str]):
    """Draw and log ``plots/confusion_matrix.png`` from the labels the training process saved in ``file``."""
    import numpy as np

    with np.load(file) as labels:
        truth, predicted = labels["truth"], labels["predicted"]
    draw = lambda: plots.confusion_matrix(truth, predicted, classes, names)  # noqa: E731
    return _log_plot(client, run["run_id"], Path(output_dir), "confusion_matrix", draw)


def mlflow_model(client, run: dict[str, Any], output_dir: str, **model: Any) -> str | None:
    """Log the run's saved ``model.keras`` as its MLflow model; return the model's URI (``None``: failed)."""
    try:
        return log_model(client, run["run_id"], run["experiment_id"], **model)
    except Exception as failure:
        if is_transient(failure):
            raise
        log.error("Review in MLflow incomplete: %s: %s", type(failure).__name__, failure)
        return None


def _stored_history(client, run_id: str, history: dict[str, dict[str, float]]) -> dict[str, dict[int, float]]:
    """Every per-epoch metric by step: this process's epochs and the store's (earlier ones, if resumed)."""
    merged = {name: {int(step): value for step, value in steps.items()} for name, steps in history.items()}
    for name in merged:
        merged[name].update({m.step: m.value for m in client.get_metric_history(run_id, name)})
    return merged


def _log_plot(client, run_id: str, folder: Path, name: str, draw) -> str | None:
    path = _save_plot(folder, name, draw)
    if path is None:
        return None
    client.log_artifact(run_id, str(path), "plots")
    return f"plots/{path.name}"


def _save_plot(folder: Path, name: str, draw) -> Path | None:
    try:
        figure = draw()
    except Exception as failure:  # a plot never fails a trained run
        log.warning("Plot %s skipped: %s: %s", name, type(failure).__name__, failure)
        return None
    if figure is None:
        return None
    path = folder / "plots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


# -- The MLflow model ----------------------------------------------------------------


def log_model(
    client,
    run_id: str,
    experiment_id: str,
    path: str,
    example: str | None,
    keras_version: str,
    keras_backend: str,
    requirements: list[str],
    register: str | None,
    step: int,
) -> str:
    """Log the saved ``model.keras`` as the run's MLflow model (Keras flavour); return its URI."""
    from mlflow.models import Model, infer_signature

    input_example, signature = None, None
    if example is not None:
        input_example, output = _load_example(example)
        signature = infer_signature(input_example, output) if output is not None else None
    run = client.get_run(run_id)
    # Created here, in the run's own experiment: MLflow would otherwise use the process's active one.
    logged = client.create_logged_model(
        experiment_id,
        name=MODEL_NAME,
        source_run_id=run_id,
        params=dict(run.data.params),
        model_type="keras",
    )
    flavour = KerasFileFlavour(path, keras_version, keras_backend)
    with _tracking_uri(client.tracking_uri):
        info = Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=flavour,
            model=path,
            run_id=run_id,
            model_id=logged.model_id,
            input_example=input_example,
            signature=signature,
            pip_requirements=requirements,
            step=step,
            validate_serving_input=False,
        )
    uri = info.model_uri
    if register:
        uri += " " + _register(client, uri, register)
    return uri


def _register(client, uri: str, name: str) -> str:
    """Register the logged model ``uri`` as a new version of ``name``; the model stays if that fails."""
    import mlflow

    try:
        with _tracking_uri(client.tracking_uri):
            version = mlflow.register_model(uri, name)
    except Exception as error:
        if is_transient(error):
            raise
        log.warning("tracking.register_model=%s: the model is logged but not registered: %s", name, error)
        return f"(not registered as {name}: {type(error).__name__})"
    return f"(registered as {name} version {version.version})"


def _load_example(file: str) -> tuple[Any, Any]:
    """The input example and the model's output on it, as saved by the training process."""
    import numpy as np

    with np.load(file) as saved:
        arrays = {key: saved[key] for key in saved.files}

    def part(prefix: str) -> Any:
        found = {key.removeprefix(prefix): value for key, value in arrays.items() if key.startswith(prefix)}
        if not found:
            return None
        return found[""] if list(found) == [""] else found

    return part("input:"), part("output:")


class KerasFileFlavour:
    """MLflow's Keras flavour, written from a ``.keras`` file instead of a model object.

    ``Model.log`` calls ``save_model(path=..., mlflow_model=..., **kwargs)``; this one
    lays out what ``mlflow.keras.save_model`` would (``data/model.keras``,
    ``data/keras_module.txt``, the ``keras`` and ``python_function`` flavours,
    ``conda.yaml``, ``python_env.yaml``, ``requirements.txt``) without importing Keras.
    """

    def __init__(self, model_file: str, keras_version: str, keras_backend: str):
        self.__name__ = "mlflow.keras"
        self.model_file = model_file
        self.keras_version = keras_version
        self.keras_backend = keras_backend

    def save_model(
        self, path, mlflow_model, model=None, input_example=None, signature=None, pip_requirements=None, **_
    ):
        import mlflow
        import yaml
        from mlflow import pyfunc
        from mlflow.models.utils import _save_example
        from mlflow.utils.environment import (
            _CONDA_ENV_FILE_NAME,
            _PYTHON_ENV_FILE_NAME,
            _REQUIREMENTS_FILE_NAME,
            _mlflow_conda_env,
            _PythonEnv,
        )
        from mlflow.utils.file_utils import get_total_file_size, write_to

        data = Path(path) / "data"
        data.mkdir(parents=True, exist_ok=True)
        if signature is not None:
            mlflow_model.signature = signature
        if input_example is not None:
            _save_example(mlflow_model, input_example, str(path))
        shutil.copyfile(self.model_file, data / "model.keras")
        (data / "keras_module.txt").write_text("keras")
        mlflow_model.add_flavor(
            "keras",
            data="data",
            keras_version=self.keras_version,
            keras_backend=self.keras_backend,
            save_exported_model=False,
        )
        pyfunc.add_to_model(
            mlflow_model,
            loader_module="mlflow.keras",
            conda_env=_CONDA_ENV_FILE_NAME,
            python_env=_PYTHON_ENV_FILE_NAME,
        )
        if size := get_total_file_size(path):
            mlflow_model.model_size_bytes = size
        mlflow_model.save(os.path.join(path, "MLmodel"))
        # The requirements pin what is installed here, so MLflow's check of them against this
        # environment (which reads every installed package's files: 0.8 s) would find nothing.
        requirements = [f"mlflow=={mlflow.__version__}", *(pip_requirements or [])]
        conda_env = _mlflow_conda_env(additional_pip_deps=requirements, install_mlflow=False)
        with open(os.path.join(path, _CONDA_ENV_FILE_NAME), "w") as handle:
            yaml.safe_dump(conda_env, stream=handle, default_flow_style=False)
        write_to(os.path.join(path, _REQUIREMENTS_FILE_NAME), "\n".join(requirements))
        _PythonEnv.current().to_yaml(os.path.join(path, _PYTHON_ENV_FILE_NAME))


@contextlib.contextmanager
def _tracking_uri(uri: str):
    """MLflow's model API reads the process-wide tracking URI: point it at the run's store meanwhile."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    if previous == uri:  # the worker's own store (set once: setting it resets MLflow's tracing, 0.2 s)
        yield
        return
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it, as MLflow's own code does
