"""MLflow tracking, as a plugin on the lifecycle hooks.

One MLflow run per job, in an experiment named after the preset
(``+experiment=mnist`` -> ``mnist``); in a multirun, one parent run per sweep
with every job a child run. The store is ``MLFLOW_TRACKING_URI`` if set, else
``tracking.uri``, else ``sqlite:///mlflow.db`` in the folder the command ran
from, so that ``mlflow ui`` started there shows the runs.

What a job's run records:

* params: the resolved config, flattened (``optimizer.learning_rate``), with the
  values of secret-looking keys (password, token, secret, api_key, ...) masked;
* metrics: every epoch of every fit stage with step = epoch, each stage's
  summary (``test/loss``), and ``objective``;
* artifacts: ``config/`` (resolved config and overrides), ``checkpoints/``,
  ``model/model.keras``, ``predictions/``, and what plugins add;
* tags: data source, versions of TensorFlow, Keras and MLflow, git commit; in a
  sweep ``mlflow.parentRunId``, ``orchestrator.sweep_id``, ``orchestrator.job``.

Under a multi-worker ``trainer.strategy`` only the chief worker has a run.

The sweep's parent run gets the sweep's config, ``sweep_summary.csv`` (every
job's overrides, status and objective), ``objective.png``, and the best job's
run id, overrides and objective.

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
from orchestrator.config import flatten, masked
from orchestrator.mlflow_store import open_client, retry

log = logging.getLogger("orchestrator.tracking")

#: MLflow takes at most this many params, metrics or tags in one call.
BATCH_LIMIT = 100


def tracking_uri(configured: str | None) -> str:
    """``MLFLOW_TRACKING_URI``, else the configured URI, else ``mlflow.db`` in the current folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    return uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def run_name(experiment: str | None, overrides: list[str], job: int | None = None) -> str:
    """``mnist[seed=7,data=fashion_mnist]``, or ``mnist#3[...]`` for job 3 of a sweep."""
    shown = [o for o in overrides if not o.startswith("+experiment=")]
    base = (experiment or "run") + (f"#{job}" if job is not None else "")
    return (f"{base}[{','.join(shown)}]" if shown else base)[:250]


def review_hint(uri: str, experiment_id: str | None, run_id: str) -> str:
    """Where to open a run in the MLflow UI (and how to start the UI on a local store)."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}" if experiment_id else ""
    if uri.startswith(("http://", "https://")):
        return f"Review: {uri.rstrip('/')}/{page}"
    command = "mlflow ui --host 127.0.0.1"
    if uri != tracking_uri(None) or "MLFLOW_TRACKING_URI" in os.environ:
        command += f" --backend-store-uri {uri}"
    return f"Review: `{command}` in {Path.cwd()}, then open http://127.0.0.1:5000/{page}"


def experiment_name(configured: str | None, preset: str | None) -> str:
    return configured or preset or "default"


class MlflowTracker:
    """Records one run per job and one parent run per sweep (see the module docstring)."""

    def __init__(self):
        self.clients: dict[str, object] = {}
        self.client = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None

    def _client(self, uri: str):
        """One client per store and process: the store is opened (and migrated) once."""
        if uri not in self.clients:
            self.clients[uri] = open_client(uri)
        return self.clients[uri]

    # -- a job -------------------------------------------------------------------

    @hookimpl
    def orchestrator_before_run(self, context):
        settings = context.cfg.tracking
        self.run_id = None
        if not settings.enabled:
            return
        if not context.chief:
            log.info("MLflow: %s does not track; the chief records the run.", context.distribution.worker)
            return
        sweep = context.sweep
        # MLflow would print its own "View run at ..." lines for server stores.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        uri = (sweep.state.get("mlflow.tracking_uri") if sweep else None) or tracking_uri(settings.uri)
        self.client = self._client(uri)
        name = experiment_name(settings.experiment_name, context.experiment)
        experiment_id = self._experiment_id(name)
        self.experiment_id = experiment_id
        job = sweep.number if sweep else None
        tags = {
            "mlflow.runName": settings.run_name or run_name(context.experiment, context.overrides, job),
            "orchestrator.overrides": " ".join(context.overrides),
            "orchestrator.output_dir": str(context.output_dir),
            **_version_tags(),
            **_git_tags(),
            **{str(k): str(v) for k, v in masked(settings.tags).items()},
        }
        if sweep is not None:
            tags.update({"orchestrator.sweep_id": str(sweep.id), "orchestrator.job": str(sweep.number)})
            if sweep.state.get("mlflow.parent_run_id"):
                tags["mlflow.parentRunId"] = sweep.state["mlflow.parent_run_id"]
        context.tracking_uri = uri
        if self._reopen(context):
            return
        run = retry(self.client.create_run, experiment_id, tags=tags, run_name=tags["mlflow.runName"])
        self.run_id = run.info.run_id
        context.run_id = self.run_id
        log.info("MLflow run %s in experiment '%s' (%s)", self.run_id, name, uri)
        self._log_params(flatten(masked(context.cfg)))
        self._log_config(context)

    def _reopen(self, context) -> bool:
        """Continue the MLflow run of a resumed job; whether there was one to continue."""
        resume = context.resume
        if resume is None or not resume.run_id:
            return False
        try:
            run = retry(self.client.get_run, resume.run_id)
        except Exception:
            log.warning(
                "MLflow run %s is not in %s; starting a new run.", resume.run_id, context.tracking_uri
            )
            return False
        self.run_id = context.run_id = run.info.run_id
        resumed = int(run.data.tags.get("orchestrator.resumed", "0")) + 1
        retry(self.client.update_run, self.run_id, status="RUNNING")
        retry(self.client.set_tag, self.run_id, "orchestrator.resumed", str(resumed))
        log.info("MLflow run %s continues (resumed %d time(s))", self.run_id, resumed)
        return True

    @hookimpl
    def orchestrator_after_epoch(self, context, stage, epoch, metrics, checkpoint):
        if self.run_id is None:
            return
        self._log_metrics(metrics, step=epoch)
        if checkpoint is not None and context.cfg.tracking.log_checkpoints:
            retry(self.client.log_artifact, self.run_id, str(checkpoint), "checkpoints")

    @hookimpl
    def orchestrator_after_stage(self, context, stage, metrics):
        if self.run_id is not None and metrics:
            self._log_metrics(metrics, step=context.epochs_done)

    @hookimpl
    def orchestrator_on_tags(self, context, tags):
        if self.run_id is not None:
            for key, value in tags.items():
                retry(self.client.set_tag, self.run_id, key, value)

    @hookimpl
    def orchestrator_on_artifact(self, context, path, artifact_path):
        if self.run_id is None:
            return
        if artifact_path == "model" and not context.cfg.tracking.log_model:
            return
        if path.is_dir():
            retry(self.client.log_artifacts, self.run_id, str(path), artifact_path)
        else:
            retry(self.client.log_artifact, self.run_id, str(path), artifact_path)

    @hookimpl
    def orchestrator_after_run(self, context, error):
        if self.run_id is None:
            return
        status = "FINISHED"
        if context.objective_value is not None:
            self._log_metrics({"objective": context.objective_value}, step=context.epochs_done)
        if error is not None:
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            self._log_error(context, error)
        retry(self.client.set_terminated, self.run_id, status=status)
        if status == "FINISHED" or context.sweep is not None:
            log.info("MLflow run %s ended %s.", self.run_id, status)
        else:
            hint = review_hint(context.tracking_uri, self.experiment_id, self.run_id)
            log.info("MLflow run %s ended %s. %s", self.run_id, status, hint)
        self.run_id = None

    # -- a sweep -----------------------------------------------------------------

    @hookimpl
    def orchestrator_before_sweep(self, sweep):
        settings = sweep.cfg.tracking
        if not settings.enabled:
            return
        if sweep.resumed and sweep.state.get("mlflow.parent_run_id"):
            parent = sweep.state["mlflow.parent_run_id"]
            client = self._client(sweep.state["mlflow.tracking_uri"])
            retry(client.update_run, parent, status="RUNNING")
            log.info("MLflow parent run %s continues for sweep %s", parent, sweep.id)
            return
        uri = tracking_uri(settings.uri)
        client = self._client(uri)
        experiment_id = self._experiment_id(
            experiment_name(settings.experiment_name, sweep.experiment), client
        )
        shown = [a for a in sweep.arguments if not a.startswith("+experiment=")]
        name = f"{sweep.experiment or 'sweep'} sweep {sweep.id}"
        tags = {
            "mlflow.runName": name,
            "orchestrator.sweep_id": sweep.id,
            "orchestrator.sweep_dir": str(sweep.dir),
            "orchestrator.overrides": " ".join(shown),
            **_version_tags(),
            **_git_tags(),
        }
        run = retry(client.create_run, experiment_id, tags=tags, run_name=name)
        sweep.state.update(
            {
                "mlflow.parent_run_id": run.info.run_id,
                "mlflow.tracking_uri": uri,
                "mlflow.experiment_id": experiment_id,
            }
        )
        config = sweep.dir / "sweep_config.yaml"
        job_config = {key: masked(value) for key, value in sweep.cfg.items() if key != "hydra"}
        config.write_text(OmegaConf.to_yaml(OmegaConf.create(job_config)))
        retry(client.log_artifact, run.info.run_id, str(config), "config")
        log.info("MLflow parent run %s for sweep %s", run.info.run_id, sweep.id)

    @hookimpl
    def orchestrator_after_sweep(self, sweep, jobs, report):
        parent = sweep.state.get("mlflow.parent_run_id")
        if not parent:
            return
        client = self._client(sweep.state["mlflow.tracking_uri"])
        for path in report.values():
            retry(client.log_artifact, parent, str(path), "sweep")
        from orchestrator.sweep import best

        top = best(jobs, sweep.direction)
        if top is not None:
            retry(client.log_metric, parent, "best_objective", float(top["objective"]))
            for key, value in {
                "best_job": top["number"],
                "best_run_id": top.get("run_id") or "",
                "best_overrides": " ".join(top["overrides"]),
            }.items():
                retry(client.set_tag, parent, key, str(value))
        counts = {status: sum(j["status"] == status for j in jobs) for status in {j["status"] for j in jobs}}
        for status, count in counts.items():
            retry(client.log_metric, parent, f"jobs_{status.lower()}", count)
        from orchestrator.sweep import FAILURES

        failed = not sweep.completed or any(j["status"] in FAILURES for j in jobs)
        retry(client.set_terminated, parent, status="FAILED" if failed else "FINISHED")

    # -- helpers ------------------------------------------------------------------

    def _experiment_id(self, name: str, client=None) -> str:
        client = client or self.client
        experiment = retry(client.get_experiment_by_name, name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return retry(client.create_experiment, name)
        except Exception:
            # Another process created it in the meantime.
            experiment = retry(client.get_experiment_by_name, name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(key[:250], str(value)[:6000]) for key, value in params.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            retry(self.client.log_batch, self.run_id, params=items[start : start + BATCH_LIMIT])

    def _log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(name, float(value), now, step) for name, value in metrics.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            retry(self.client.log_batch, self.run_id, metrics=items[start : start + BATCH_LIMIT])

    def _log_config(self, context) -> None:
        folder = Path(context.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yaml"
        config.write_text(OmegaConf.to_yaml(OmegaConf.create(masked(context.cfg))))
        overrides = folder / "overrides.yaml"
        overrides.write_text(OmegaConf.to_yaml(OmegaConf.create(list(context.overrides))))
        retry(self.client.log_artifact, self.run_id, str(config), "config")
        retry(self.client.log_artifact, self.run_id, str(overrides), "config")

    def _log_error(self, context, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        retry(self.client.set_tag, self.run_id, "orchestrator.error", message[:5000])
        report = Path(context.output_dir) / "error.txt"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text("".join(traceback.format_exception(error)))
        retry(self.client.log_artifact, self.run_id, str(report))


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
