"""The sweep's champion: the best job's model registered in the Model Registry, alias ``champion``.

With ``tracking.register_model=NAME`` in a sweep, the jobs register nothing;
when the sweep ends, the parent run's tracking worker runs
:func:`register_champion`: the best job's MLflow model (logged by the job with
``tracking.review_in_sweeps=true``, else logged now on the job's run from its
``model.keras``) becomes a new version of ``NAME``, and the registered model's
alias ``champion`` points at it (MLflow's aliases, not the deprecated stages).
The version and the parent run are tagged with the sweep and the job.

Load the champion with ``mlflow.pyfunc.load_model("models:/NAME@champion")``.
Runs in the tracking worker, through ``RunLog.call``; MLflow is imported here only.

Example::

    parent.call("orchestrator.tracking.champion:register_champion", best_run_id=..., name="mnist-mlp", ...)
"""

from __future__ import annotations

import logging
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.tracking.store import is_transient

log = logging.getLogger("orchestrator.tracking")

#: The registered model's alias that names the sweep's best version.
ALIAS = "champion"
#: The name of the MLflow model a job logs (``orchestrator.tracking.review_worker.MODEL_NAME``).
MODEL_NAME = "keras_model"


def register_champion(
    client,
    run: dict[str, Any],
    best_run_id: str,
    name: str,
    model_file: str | None,
    keras_backend: str,
    sweep_id: str,
    job: int,
) -> dict[str, Any]:
    """Register the best job's model as a version of ``name`` with the alias ``champion``."""
    import mlflow

    from orchestrator.tracking.review_worker import _tracking_uri

    try:
        uri = _logged_model(client, best_run_id) or _log_now(client, best_run_id, model_file, keras_backend)
        with _tracking_uri(client.tracking_uri):
            version = mlflow.register_model(uri, name).version
        client.set_registered_model_alias(name, ALIAS, version)
        client.set_model_version_tag(name, version, "orchestrator.sweep_id", sweep_id)
        client.set_model_version_tag(name, version, "orchestrator.job", str(job))
        client.set_tag(run["run_id"], "champion", f"{name} version {version}")
    except Exception as error:
        if is_transient(error):
            raise
        log.warning("tracking.register_model=%s: the sweep's best model is not registered: %s", name, error)
        return {"error": f"{type(error).__name__}: {error}"}
    log.info("Champion: %s version %s (job %d, run %s)", name, version, job, best_run_id)
    return {"name": name, "version": str(version), "uri": uri}


def _logged_model(client, run_id: str) -> str | None:
    """The URI of the MLflow model the job logged itself, if it did."""
    experiment_id = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'", max_results=10
    )
    models = [model for model in found if model.name == MODEL_NAME]
    return f"models:/{models[0].model_id}" if models else None


def _log_now(client, run_id: str, model_file: str | None, keras_backend: str) -> str:
    """Log the job's ``model.keras`` (its output folder's, else its run's artifact) as its MLflow model."""
    from orchestrator.tracking.review_worker import log_model

    run = client.get_run(run_id)
    path = Path(model_file) if model_file else None
    if path is None or not path.is_file():
        folder = tempfile.mkdtemp(prefix="champion-")
        path = Path(client.download_artifacts(run_id, "model/model.keras", folder))
    backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(keras_backend)
    requirements = [f"{dist}=={_version(dist)}" for dist in ("keras", backend) if dist and _version(dist)]
    return log_model(
        client,
        run_id,
        run.info.experiment_id,
        path=str(path),
        example=None,
        keras_version=_version("keras") or "",
        keras_backend=keras_backend,
        requirements=requirements,
        register=None,
        step=0,
    )


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
