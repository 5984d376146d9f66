"""MLflow tracking, as a plugin on the lifecycle hooks.

One MLflow run per job, in an experiment named after the preset
(``+experiment=mnist`` -> ``mnist``). The store is ``MLFLOW_TRACKING_URI`` if
set, else ``tracking.uri``, else ``sqlite:///mlflow.db`` in the folder the
command ran from, so that ``mlflow ui`` started there shows the runs.

What a run records:

* params: the resolved config, flattened (``optimizer.learning_rate``);
* metrics: every epoch of every fit stage with step = epoch, then each stage's
  summary (``test/loss``);
* artifacts: ``config/`` (resolved config and overrides), ``checkpoints/``,
  ``model/model.keras``, ``predictions/``;
* tags: data source, versions of TensorFlow, Keras and MLflow, git commit.

MLflow is imported when a run starts, never when plugins load.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import traceback
from importlib import metadata
from pathlib import Path

from omegaconf import OmegaConf

from orchestrator import hookimpl
from orchestrator.config import flatten

log = logging.getLogger("orchestrator.tracking")

#: MLflow takes at most this many params, metrics or tags in one call.
BATCH_LIMIT = 100


def tracking_uri(configured: str | None) -> str:
    """``MLFLOW_TRACKING_URI``, else the configured URI, else ``mlflow.db`` in the current folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    return uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def run_name(experiment: str | None, overrides: list[str]) -> str:
    """``mnist[seed=7,data=fashion_mnist]``: the preset and what the command line changed."""
    shown = [o for o in overrides if not o.startswith("+experiment=")]
    base = experiment or "run"
    return (f"{base}[{','.join(shown)}]" if shown else base)[:250]


class MlflowTracker:
    """Records one run per job in MLflow (see the module docstring)."""

    def __init__(self):
        self.client = None
        self.run_id: str | None = None

    # -- lifecycle hooks ----------------------------------------------------------

    @hookimpl
    def orchestrator_before_run(self, context):
        settings = context.cfg.tracking
        self.run_id = None
        if not settings.enabled:
            return
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(settings.uri)
        self.client = MlflowClient(tracking_uri=uri)
        experiment_name = settings.experiment_name or context.experiment or "default"
        experiment_id = self._experiment_id(experiment_name)
        tags = {
            "mlflow.runName": settings.run_name or run_name(context.experiment, context.overrides),
            "orchestrator.overrides": " ".join(context.overrides),
            "orchestrator.output_dir": str(context.output_dir),
            **_version_tags(),
            **_git_tags(),
            **{str(k): str(v) for k, v in settings.tags.items()},
        }
        run = self.client.create_run(experiment_id, tags=tags, run_name=tags["mlflow.runName"])
        self.run_id = run.info.run_id
        context.tracking_uri = uri
        context.run_id = self.run_id
        log.info("MLflow run %s in experiment '%s' (%s)", self.run_id, experiment_name, uri)
        self._log_params(flatten(context.cfg))
        self._log_config(context)

    @hookimpl
    def orchestrator_after_epoch(self, context, stage, epoch, metrics, checkpoint):
        if self.run_id is None:
            return
        self._log_metrics(metrics, step=epoch)
        if checkpoint is not None and context.cfg.tracking.log_checkpoints:
            self.client.log_artifact(self.run_id, str(checkpoint), "checkpoints")

    @hookimpl
    def orchestrator_after_stage(self, context, stage, metrics):
        if self.run_id is not None and metrics:
            self._log_metrics(metrics, step=context.epochs_done)

    @hookimpl
    def orchestrator_on_tags(self, context, tags):
        if self.run_id is not None:
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, value)

    @hookimpl
    def orchestrator_on_artifact(self, context, path, artifact_path):
        if self.run_id is None:
            return
        if artifact_path == "model" and not context.cfg.tracking.log_model:
            return
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    @hookimpl
    def orchestrator_after_run(self, context, error):
        if self.run_id is None:
            return
        status = "FINISHED"
        if error is not None:
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            self._log_error(context, error)
        self.client.set_terminated(self.run_id, status=status)
        log.info("MLflow run %s ended %s. %s", self.run_id, status, self._review_hint(context))
        self.run_id = None

    # -- helpers ------------------------------------------------------------------

    def _review_hint(self, context) -> str:
        """How to open this run in the MLflow UI."""
        run = self.client.get_run(self.run_id)
        page = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{self.run_id}"
        uri = context.tracking_uri
        if uri == tracking_uri(None) and "MLFLOW_TRACKING_URI" not in os.environ:
            command = "mlflow ui --host 127.0.0.1"
        elif uri.startswith(("http://", "https://")):
            return f"Review it at {uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{self.run_id}"
        else:
            command = f"mlflow ui --host 127.0.0.1 --backend-store-uri {uri}"
        return f"Review it: run `{command}` in {Path.cwd()} and open {page}"

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:
            # Another process created it in the meantime.
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(key[:250], _param_value(value)) for key, value in params.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH_LIMIT])

    def _log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(name, float(value), now, step) for name, value in metrics.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=items[start : start + BATCH_LIMIT])

    def _log_config(self, context) -> None:
        folder = Path(context.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yaml"
        config.write_text(OmegaConf.to_yaml(context.cfg, resolve=True))
        overrides = folder / "overrides.yaml"
        overrides.write_text(OmegaConf.to_yaml(OmegaConf.create(list(context.overrides))))
        self.client.log_artifact(self.run_id, str(config), "config")
        self.client.log_artifact(self.run_id, str(overrides), "config")

    def _log_error(self, context, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        self.client.set_tag(self.run_id, "orchestrator.error", message[:5000])
        report = Path(context.output_dir) / "error.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("".join(traceback.format_exception(error)))
        self.client.log_artifact(self.run_id, str(report))


def _param_value(value) -> str:
    return str(value)[:6000]


def _version_tags() -> dict[str, str]:
    tags = {}
    for dist in ("tensorflow", "keras", "mlflow", "keras-orchestrator"):
        try:
            tags[f"version.{dist}"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return tags


def _git_tags() -> dict[str, str]:
    """The commit of the git checkout the command ran in, if any."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git.commit": commit} if commit else {}


tracker = MlflowTracker()
