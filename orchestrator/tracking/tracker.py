"""MLflow tracking, as a plugin on the lifecycle hooks.

One MLflow run per job, in an experiment named after the preset
(``+experiment=mnist`` -> ``mnist``); in a multirun, one parent run per sweep
with every job a child run. The store is ``MLFLOW_TRACKING_URI`` if set, else
``tracking.uri``, else ``sqlite:///mlflow.db`` in the folder the command ran
from, so that ``mlflow ui`` started there shows the runs.

What a job's run records:

* params: the resolved config, flattened (``optimizer.learning_rate``), with the
  values of secret-looking keys (password, token, secret, api_key, ...) masked, as
  they are in the run name, the tags and the config artifacts
  (:mod:`orchestrator.secrets`);
* metrics: every epoch of every fit stage with step = epoch, each stage's
  summary (``test/loss``), and ``objective``;
* artifacts: ``config/`` (resolved config and overrides), ``checkpoints/``,
  ``model/model.keras``, ``predictions/``, and what plugins add;
* tags: data source, versions of TensorFlow, Keras and MLflow, git commit; in a
  sweep ``mlflow.parentRunId``, ``orchestrator.sweep_id``, ``orchestrator.job``;
  MLflow's own ``mlflow.source.name`` (the command), ``mlflow.source.type``,
  ``mlflow.source.git.commit`` and ``mlflow.user``, the UI's Source and Created by;
* dataset inputs: each split's name, source, content digest, schema and row count,
  with its context (:mod:`orchestrator.tracking.datasets`);
* system metrics: CPU, memory, disk, network and GPU, sampled by the tracking
  worker (:mod:`orchestrator.tracking.system_metrics`; ``tracking.system_metrics=false``: none).

The experiment is tagged as model training, so the MLflow UI opens it on its runs.

Under a multi-worker ``trainer.strategy`` only the chief worker has a run.

The sweep's parent run gets the sweep's config, the report under ``sweep/``
(``sweep_summary.csv``: every job's status, objective, best epoch and the settings
that differ; ``objective.png``; an Optuna sweep's study, importances and
parallel coordinates), the best job's run id, overrides and objective, and a
description that says which job is best and why. With ``tracking.register_model``
the best job's model is registered with the alias ``champion``
(:mod:`orchestrator.tracking.champion`).

The training process never imports MLflow and never waits for it: each call
appends a record to the run's spool (``<output folder>/mlflow-spool``) and a
tracking worker process delivers it (:mod:`orchestrator.tracking.client`,
:mod:`orchestrator.tracking.worker`). The worker starts with the run and imports
MLflow and opens the store while the training process imports TensorFlow. At
the end of a run the tracker waits up to ``tracking.delivery_timeout`` seconds
for the worker; what MLflow has not taken by then stays in the spool, and
``python -m orchestrator sync <folder>`` delivers it later.
"""

from __future__ import annotations

import atexit
import logging
import traceback
from pathlib import Path

from omegaconf import OmegaConf

from orchestrator import hookimpl
from orchestrator.config import flatten
from orchestrator.errors import UserError, exit_on
from orchestrator.secrets import Secrets
from orchestrator.status import Status
from orchestrator.sweep.journal import FAILURES, best
from orchestrator.sweep.report import why_best
from orchestrator.tracking.client import RunLog, WorkerProcess
from orchestrator.tracking.datasets import describe_in_thread
from orchestrator.tracking.run_info import (
    disk_full_message,
    experiment_name,
    git_tags,
    review_hint,
    run_name,
    source_tags,
    tracking_uri,
    undelivered_message,
    version_tags,
    wait_for_delivery,
)
from orchestrator.tracking.spool import FOLDER as SPOOL_FOLDER
from orchestrator.tracking.store import RETRY_SECONDS, is_full_disk
from orchestrator.tracking.target import check_registered_model_name, check_target, uri_source

__all__ = ["RUN_LOG", "MlflowTracker", "review_hint", "run_log_of", "tracking_uri"]

log = logging.getLogger("orchestrator.tracking")


#: Where a run's (and a sweep's) :class:`RunLog` is kept: ``context.stash`` and ``sweep.stash``.
RUN_LOG = "mlflow.run_log"
#: Where the thread computing a run's dataset digests is kept: ``context.stash``.
DIGESTS = "mlflow.dataset_digests"


def run_log_of(holder) -> RunLog | None:
    """The :class:`~orchestrator.tracking.client.RunLog` of a run context or a sweep (``None``: untracked)."""
    return holder.stash.get(RUN_LOG)


class MlflowTracker:
    """Records one run per job and one parent run per sweep (see the module docstring).

    The plugin manager makes one tracker (the entry point names the class); it
    keeps the tracking workers of its process, one per store. Each run's record
    lives in ``context.stash``, each sweep's in ``sweep.stash``.
    """

    def __init__(self):
        self.workers: dict[str, WorkerProcess] = {}

    def _worker(self, uri: str) -> WorkerProcess:
        """One tracking worker per store and process: the store is opened (and migrated) once."""
        worker = self.workers.get(uri)
        if worker is None or not worker.alive:
            worker = self.workers[uri] = WorkerProcess(uri)
            if len(self.workers) == 1:
                atexit.register(self.close)
        return worker

    def close(self) -> None:
        """Let every worker finish: at exit, or when a test is done with the tracker."""
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()

    # -- a job -------------------------------------------------------------------

    @hookimpl
    def orchestrator_before_run(self, context):
        settings = context.cfg.tracking
        if not settings.enabled:
            return
        if not context.chief:
            log.info("MLflow: %s does not track; the chief records the run.", context.distribution.worker)
            return
        sweep = context.sweep
        uri = (sweep.state.get("mlflow.tracking_uri") if sweep else None) or tracking_uri(settings.uri)
        name = experiment_name(settings.experiment_name, context.experiment)
        job = sweep.number if sweep else None
        secrets = Secrets.of(context.cfg)
        overrides = secrets.overrides(context.overrides)
        tags = {
            "mlflow.runName": secrets.text(settings.run_name or run_name(context.experiment, overrides, job)),
            "orchestrator.overrides": " ".join(overrides),
            "orchestrator.output_dir": str(context.output_dir),
            **version_tags(),
            **git_tags(),
            **source_tags(overrides),
            **{str(k): str(v) for k, v in secrets.node(settings.tags).items()},
        }
        if sweep is not None:
            tags.update({"orchestrator.sweep_id": str(sweep.id), "orchestrator.job": str(sweep.number)})
            if sweep.state.get("mlflow.parent_run_id"):
                tags["mlflow.parentRunId"] = sweep.state["mlflow.parent_run_id"]
        if not (sweep and sweep.state.get("mlflow.tracking_uri")):
            check_target(uri, uri_source())  # before the worker starts, and before TensorFlow loads
        if settings.log_model and settings.get("register_model"):
            check_registered_model_name(str(settings.register_model))
        context.tracking_uri = uri
        resume = context.resume
        reopened = resume.run_id if resume is not None else None
        run_log = self._start_run(context, uri, name, tags, run_id=reopened)
        if resume is not None:
            run_log.set_tags({"orchestrator.resumed": str(resume.count)})
        if settings.get("system_metrics", True):
            run_log.sample_system_metrics()
        run_log.log_params(flatten(secrets.node(context.cfg)))
        self._log_config(context, run_log, secrets)

    def _start_run(
        self, context, uri: str, experiment: str, tags: dict[str, str], run_id: str | None = None
    ) -> RunLog:
        """The job's MLflow run: created (or, given ``run_id``, reopened) by the tracking worker.

        A resumed run whose spool is still in its output folder (killed before MLflow
        took everything) goes on in the run that spool names.
        """
        run_log = RunLog(self._worker(uri), Path(context.output_dir) / SPOOL_FOLDER)
        run_log.on_run = context.set_run_id
        run_log.start(experiment, tags, run_id=run_id)
        context.stash[RUN_LOG] = run_log
        return run_log

    @hookimpl
    def orchestrator_before_stage(self, context, stage):
        """The data is loaded: its splits' digests are computed in a thread while the stage runs."""
        run_log = run_log_of(context)
        if run_log is None or context.data is None or DIGESTS in context.stash:
            return
        data = context.spec.data
        context.stash[DIGESTS] = describe_in_thread(context.data, data.name, data.args, run_log.log_inputs)

    @hookimpl
    def orchestrator_after_epoch(self, context, stage, epoch, metrics, checkpoint):
        run_log = run_log_of(context)
        if run_log is None:
            return
        run_log.log_metrics(metrics, step=epoch)
        if checkpoint is not None and context.cfg.tracking.log_checkpoints:
            run_log.log_artifact(checkpoint, "checkpoints")

    @hookimpl
    def orchestrator_after_stage(self, context, stage, metrics):
        run_log = run_log_of(context)
        if run_log is not None and metrics:
            run_log.log_metrics(metrics, step=context.epochs_done)

    @hookimpl
    def orchestrator_on_tags(self, context, tags):
        run_log = run_log_of(context)
        if run_log is not None:
            run_log.set_tags(tags)

    @hookimpl
    def orchestrator_on_artifact(self, context, path, artifact_path):
        run_log = run_log_of(context)
        if run_log is None:
            return
        if artifact_path == "model" and not context.cfg.tracking.log_model:
            return
        run_log.log_artifact(path, artifact_path)

    @hookimpl(wrapper=True)
    def orchestrator_after_run(self, context, error):
        """End the run after every other plugin's ``after_run``, which may still log, tag and add files."""
        try:
            return (yield)
        finally:
            self._end_run(context, error)

    def _end_run(self, context, error: BaseException | None) -> None:
        run_log = run_log_of(context)
        if run_log is None:
            return
        status = Status.of_error(error)
        ended = True
        digests = context.stash.pop(DIGESTS, None)
        if digests is not None:
            digests.join()
        try:
            if context.objective_value is not None:
                run_log.log_metrics({"objective": context.objective_value}, step=context.epochs_done)
            if error is not None:
                self._log_error(context, run_log, error)
        except OSError as failure:
            if not is_full_disk(failure):
                raise
            error = error if is_full_disk(error) else failure
        try:
            run_log.end(status)
        except OSError as failure:  # the worker was told the end directly; it ends the run after the rest
            if not is_full_disk(failure):
                raise
            ended, error = False, error if is_full_disk(error) else failure
        timeout = float(context.cfg.tracking.get("delivery_timeout", 60))
        delivered = wait_for_delivery(run_log, timeout)
        if not ended:
            ended = run_log.wait(timeout, for_end=True)
        context.run_id = run_log.run_id
        if is_full_disk(error):
            raise UserError("hydra.run.dir", disk_full_message(context, run_log, status, ended))
        if not delivered:
            log.warning("%s", undelivered_message(run_log, timeout))
        elif status == Status.FINISHED or context.sweep is not None:
            log.info("MLflow run %s ended %s.", run_log.run_id, status)
        else:
            hint = review_hint(context.tracking_uri, run_log.experiment_id, run_log.run_id)
            log.info("MLflow run %s ended %s. %s", run_log.run_id, status, hint)

    # -- a sweep -----------------------------------------------------------------

    @hookimpl
    def orchestrator_before_sweep(self, sweep):
        settings = sweep.cfg.tracking
        if not settings.enabled:
            return
        if sweep.resumed and sweep.state.get("mlflow.parent_run_id"):
            run_id = sweep.state["mlflow.parent_run_id"]
            # The parent's records go on in the interrupted sweep's spool, if it is still there: one
            # spool per run, which ends (and is removed) with the run, never left half-told.
            earlier = Path(sweep.state.get("resumed_from") or sweep.dir) / SPOOL_FOLDER
            folder = earlier if earlier.is_dir() else Path(sweep.dir) / SPOOL_FOLDER
            parent = RunLog(self._worker(sweep.state["mlflow.tracking_uri"]), folder)
            experiment = experiment_name(settings.experiment_name, sweep.experiment)
            parent.start(experiment, {}, run_id=run_id, announce=False)
            sweep.stash[RUN_LOG] = parent
            log.info("MLflow parent run %s continues for sweep %s", run_id, sweep.id)
            return
        uri = tracking_uri(settings.uri)
        check_target(uri, uri_source())
        if settings.log_model and settings.get("register_model"):
            try:
                check_registered_model_name(str(settings.register_model))
            except UserError as error:
                exit_on(error)
        secrets = Secrets.of(sweep.cfg)
        shown = secrets.overrides(a for a in sweep.arguments if not a.startswith("+experiment="))
        name = f"{sweep.experiment or 'sweep'} sweep {sweep.id}"
        tags = {
            "mlflow.runName": name,
            "orchestrator.sweep_id": sweep.id,
            "orchestrator.sweep_dir": str(sweep.dir),
            "orchestrator.overrides": " ".join(shown),
            **version_tags(),
            **git_tags(),
            **source_tags(["-m", *secrets.overrides([*sweep.cfg.hydra.overrides.hydra, *sweep.arguments])]),
        }
        parent = RunLog(self._worker(uri), Path(sweep.dir) / SPOOL_FOLDER)
        parent.start(experiment_name(settings.experiment_name, sweep.experiment), tags, announce=False)
        config = sweep.dir / "sweep_config.yaml"
        job_config = {key: secrets.node(value) for key, value in sweep.cfg.items() if key != "hydra"}
        config.write_text(OmegaConf.to_yaml(OmegaConf.create(job_config)))
        parent.log_artifact(config, "config")
        # The jobs are tagged with the parent's id, so the sweep waits for it (jobs of a parallel
        # launcher read it from the sweep's state file).
        if not parent.wait(timeout=RETRY_SECONDS, for_run_id=True):
            raise UserError(
                "tracking.uri",
                f"the MLflow store at {uri} did not answer within {RETRY_SECONDS:.0f} s "
                f"({parent.worker.problem or 'no answer'}); the sweep's parent run cannot be created.",
            )
        sweep.stash[RUN_LOG] = parent
        sweep.state.update(
            {
                "mlflow.parent_run_id": parent.run_id,
                "mlflow.tracking_uri": uri,
                "mlflow.experiment_id": parent.experiment_id,
            }
        )
        log.info("MLflow parent run %s for sweep %s", parent.run_id, sweep.id)

    @hookimpl
    def orchestrator_after_sweep(self, sweep, jobs, report):
        parent = sweep.stash.pop(RUN_LOG, None)
        if parent is None:
            return
        for path in report.values():
            parent.log_artifact(path, "sweep")
        top = best(jobs, sweep.direction)
        if top is not None:
            parent.log_metrics({"best_objective": float(top["objective"])}, step=0)
            parent.set_tags(
                {
                    "best_job": top["number"],
                    "best_run_id": top.get("run_id") or "",
                    "best_overrides": " ".join(top["overrides"]),
                    "mlflow.note.content": why_best(sweep, jobs),
                }
            )
            self._register_champion(sweep, parent, top)
        bests = {j["run_id"]: j["best_epochs"] for j in jobs if j.get("run_id") and j.get("best_epochs")}
        if bests:  # best/<metric> on each job's run, for MLflow's comparison
            parent.call("orchestrator.tracking.best_epochs:log_best_epochs", bests=bests)
        counts = {status: sum(j["status"] == status for j in jobs) for status in {j["status"] for j in jobs}}
        parent.log_metrics({f"jobs_{status.lower()}": count for status, count in counts.items()}, step=0)
        failed = not sweep.completed or any(j["status"] in FAILURES for j in jobs)
        parent.end(Status.FAILED if failed else Status.FINISHED)
        timeout = float(sweep.cfg.tracking.get("delivery_timeout", 60))
        if not wait_for_delivery(parent, timeout):
            log.warning("%s", undelivered_message(parent, timeout))

    def _register_champion(self, sweep, parent: RunLog, top: dict) -> None:
        """With ``tracking.register_model``: the best job's model, registered with the alias ``champion``."""
        settings = sweep.cfg.tracking
        name = settings.get("register_model")
        if not name or not top.get("run_id"):
            return
        if not settings.log_model:
            log.warning("tracking.register_model=%s is ignored: tracking.log_model is false.", name)
            return
        output_dir = top.get("output_dir")
        parent.call(
            "orchestrator.tracking.champion:register_champion",
            best_run_id=top["run_id"],
            name=str(name),
            model_file=str(Path(output_dir) / "model.keras") if output_dir else None,
            keras_backend=str(sweep.cfg.get("backend", "tensorflow")),
            sweep_id=sweep.id,
            job=int(top["number"]),
        )

    # -- helpers ------------------------------------------------------------------

    def _log_config(self, context, run_log: RunLog, secrets: Secrets) -> None:
        folder = Path(context.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.yaml"
        config.write_text(OmegaConf.to_yaml(OmegaConf.create(secrets.node(context.cfg))))
        overrides = folder / "overrides.yaml"
        overrides.write_text(OmegaConf.to_yaml(OmegaConf.create(secrets.overrides(context.overrides))))
        run_log.log_artifact(config, "config")
        run_log.log_artifact(overrides, "config")

    def _log_error(self, context, run_log: RunLog, error: BaseException) -> None:
        secrets = Secrets.of(context.cfg)
        message = secrets.text(f"{type(error).__name__}: {error}")
        run_log.set_tags({"orchestrator.error": message[:5000]})
        report = Path(context.output_dir) / "error.txt"
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(secrets.text("".join(traceback.format_exception(error))))
        except OSError:  # a full disk: the tag above says what happened
            report.unlink(missing_ok=True)
            return
        run_log.log_artifact(report)
