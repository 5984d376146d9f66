"""Delivering a spool's records to MLflow, in order, in batches, safe to repeat.

The records (see :mod:`orchestrator.tracking.spool`) and what each becomes:

* ``start_run``: the experiment (created if missing) and the run (``create_run``;
  with ``run_id``, that run is reopened instead);
* ``params``, ``metrics``, ``tags``: consecutive records merged into as few
  ``log_batch`` calls as MLflow's limits allow;
* ``artifact``: ``log_artifact`` or ``log_artifacts`` of a file or folder the run wrote;
* ``inputs``: the run's data splits as MLflow dataset inputs (:mod:`orchestrator.tracking.datasets`);
* ``system_metrics``: start sampling the machine for the run, in the worker only, and
  only while the run goes on (:mod:`orchestrator.tracking.system_metrics`); the end stops it;
* ``call``: ``module:function(client=..., run=..., **kwargs)`` for work a plugin
  does on the run in the tracking process (the review's MLflow model and plots);
  its return value is kept in the state as the record's result;
* ``end``: ``set_terminated`` with the status and the time the run really ended.

Delivering a record twice changes nothing: a metric keeps the timestamp it was
logged with, and MLflow's SQL stores ignore a metric identical in key, value,
step and timestamp; params and tags are set to the same values; artifacts are
overwritten with the same files; a run whose ``create_run`` may have reached the
server before the connection broke is found again by its ``orchestrator.run_key``
tag. So after an outage the worker (or ``python -m orchestrator sync``) simply
delivers again from the first record not confirmed.

A transient error (server unreachable, database locked, disk full) raises :class:`Outage`
and leaves the record pending; any other error rejects that one record with a
warning, and delivery goes on.

Example::

    delivery = Delivery(Spool(folder), client)
    delivery.deliver()        # everything pending, or Outage
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from orchestrator.tracking.spool import Spool
from orchestrator.tracking.store import file_lock, is_full_disk, is_transient

log = logging.getLogger("orchestrator.tracking")

#: MLflow's limits for one ``log_batch``.
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
BATCHED = ("params", "metrics", "tags")
#: The lock file inside a spool folder, held while a record is delivered.
LOCK = "delivery.lock"
#: The experiment tag that tells the MLflow UI which view to open, and its model-training value.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
#: Call targets that spools written by earlier versions name by their old import path.
MOVED = {"orchestrator_plugins.mlflow_review_worker": "orchestrator.tracking.review_worker"}


class Outage(Exception):
    """MLflow could not be reached (or was busy); the pending records wait for the next attempt."""


class Delivery:
    """Delivers one spool's pending records with ``client``.

    Args:
        spool: the run's :class:`~orchestrator.tracking.spool.Spool`.
        client: an ``MlflowClient`` on the store the records are meant for.
        live: delivering while the run goes on (the tracking worker), so its system metrics are
            sampled; ``sync`` delivers after the fact and samples nothing.
    """

    def __init__(self, spool: Spool, client: Any, live: bool = False):
        self.spool = spool
        self.client = client
        self.live = live
        self.sampler: Any = None
        self.state = spool.state()
        self.state.setdefault("delivered", 0)
        self.state.setdefault("results", {})
        self.pending: list[dict[str, Any]] = []
        self.failed_before = False
        self.finished = False

    @property
    def delivered(self) -> int:
        return int(self.state["delivered"])

    def refresh(self) -> None:
        """Read the records appended since the last look."""
        start = self.pending[-1]["seq"] + 1 if self.pending else self.delivered
        self.pending.extend(self.spool.records(start))

    def deliver(self) -> int:
        """Deliver every pending record; return how many. Raises :class:`Outage` (some may be delivered).

        Holds a lock on the spool meanwhile, so that the worker and ``python -m
        orchestrator sync`` never deliver the same spool at the same time. A spool
        folder that is gone (delivered and removed) is left gone.
        """
        if not self.spool.folder.is_dir():
            return 0
        with file_lock(self.spool.folder / LOCK):
            on_disk = self.spool.state()
            if int(on_disk.get("delivered", 0)) > self.delivered:  # someone else delivered meanwhile
                self.state, self.pending = {"results": {}, **on_disk}, []
            return self._deliver_pending()

    def _deliver_pending(self) -> int:
        self.refresh()
        done = 0
        while self.pending:
            batch = self._next_batch()
            try:
                self._deliver(batch)
            except Exception as error:
                if is_transient(error):
                    self.failed_before = True
                    raise Outage(_short(error)) from error
                if batch[0]["op"] in BATCHED and len(batch) > 1:
                    for record in batch:  # find the one record MLflow refuses; deliver the others
                        self._deliver_alone(record)
                else:
                    self._reject(batch[0], error)
            del self.pending[: len(batch)]
            self.state["delivered"] = batch[-1]["seq"] + 1
            self._save_state()
            done += len(batch)
            if batch[-1]["op"] == "end":
                self.finished = True
        return done

    def end_unspooled(self, record: dict[str, Any]) -> None:
        """End the run with ``record``, which a full disk kept out of the spool (after every spooled
        record). Raises :class:`Outage` when MLflow is unreachable."""
        try:
            self._deliver([record])
        except Exception as error:
            if is_transient(error):
                raise Outage(_short(error)) from error
            raise
        self.finished = True

    def _save_state(self) -> None:
        """Note on disk how far delivery got; on a full disk MLflow has the records all the same,
        so delivery goes on (a later delivery from the older note repeats some: that changes nothing)."""
        try:
            self.spool.save_state(self.state)
        except OSError as error:
            if not is_full_disk(error):
                raise
            (self.spool.folder / ".state.json.partial").unlink(missing_ok=True)

    @property
    def complete(self) -> bool:
        """Whether MLflow has every record and the last one ended the run (now or in an earlier delivery)."""
        records = self.spool.records(max(0, self.delivered - 1))
        return len(records) == 1 and records[0]["seq"] == self.delivered - 1 and records[0]["op"] == "end"

    def _deliver_alone(self, record: dict[str, Any]) -> None:
        try:
            self._deliver([record])
        except Exception as error:
            if is_transient(error):
                raise
            self._reject(record, error)

    def _reject(self, record: dict[str, Any], error: BaseException) -> None:
        log.warning("MLflow refused record %d (%s): %s", record["seq"], record["op"], _short(error))
        self.state.setdefault("rejected", []).append({"seq": record["seq"], "error": _short(error)})
        if record["op"] == "call":
            self.state["results"][str(record["seq"])] = {"error": _short(error)}

    def _next_batch(self) -> list[dict[str, Any]]:
        """The first pending record, with the ones after it that fit in the same ``log_batch``."""
        first = self.pending[0]
        if first["op"] not in BATCHED:
            return [first]
        batch: list[dict[str, Any]] = []
        counts = {"params": 0, "metrics": 0, "tags": 0}
        limits = {"params": MAX_PARAMS, "metrics": MAX_METRICS, "tags": MAX_TAGS}
        for record in self.pending:
            if record["op"] not in BATCHED:
                break
            size = len(record["items"])
            total = sum(counts.values())
            if batch and (counts[record["op"]] + size > limits[record["op"]] or total + size > MAX_ENTITIES):
                break
            counts[record["op"]] += size
            batch.append(record)
        return batch

    # -- one record (or batch) ---------------------------------------------------------

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        op = batch[0]["op"]
        if op in BATCHED:
            self._log_batch(batch)
        elif op == "start_run":
            self._start_run(batch[0])
        else:
            run_id = self.state.get("run_id")
            if run_id is None:
                raise RuntimeError("the spool has no start_run record before its other records")
            getattr(self, f"_{op}")(batch[0], run_id)

    def _start_run(self, record: dict[str, Any]) -> None:
        client = self.client
        if record.get("run_id"):  # reopened (a resumed run), also later in the spool of its first start
            run = client.get_run(record["run_id"])
            client.update_run(run.info.run_id, status="RUNNING")
        elif self.state.get("run_id"):
            return
        else:
            experiment_id = experiment_by_name(client, record["experiment"])
            run = self._created_before(experiment_id, record["run_key"]) if self.failed_before else None
            if run is None:
                tags = {**record["tags"], "orchestrator.run_key": record["run_key"]}
                run = client.create_run(
                    experiment_id, start_time=record["time"], tags=tags, run_name=tags.get("mlflow.runName")
                )
        self.state.update(run_id=run.info.run_id, experiment_id=run.info.experiment_id)

    def _created_before(self, experiment_id: str, run_key: str):
        """The run an earlier, interrupted attempt may have created (found by its run key)."""
        query = f"tags.`orchestrator.run_key` = '{run_key}'"
        found = self.client.search_runs([experiment_id], filter_string=query)
        return found[0] if found else None

    def _log_batch(self, batch: list[dict[str, Any]]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run_id = self.state.get("run_id")
        if run_id is None:
            raise RuntimeError("the spool has no start_run record before its other records")
        metrics: list[Metric] = []
        params: list[Param] = []
        tags: list[RunTag] = []
        for record in batch:
            if record["op"] == "metrics":
                metrics.extend(Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in record["items"])
            elif record["op"] == "params":
                params.extend(Param(key, value) for key, value in record["items"])
            else:
                tags.extend(RunTag(key, value) for key, value in record["items"])
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def _artifact(self, record: dict[str, Any], run_id: str) -> None:
        from pathlib import Path

        path = Path(record["path"])
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), record.get("artifact_path"))
        elif path.exists():
            self.client.log_artifact(run_id, str(path), record.get("artifact_path"))
        else:
            raise FileNotFoundError(f"{path} no longer exists")

    def _call(self, record: dict[str, Any], run_id: str) -> None:
        module, _, name = record["target"].partition(":")
        function = getattr(importlib.import_module(MOVED.get(module, module)), name)
        run = {"run_id": run_id, "experiment_id": self.state.get("experiment_id")}
        self.state["results"][str(record["seq"])] = function(client=self.client, run=run, **record["kwargs"])

    def _inputs(self, record: dict[str, Any], run_id: str) -> None:
        from orchestrator.tracking.datasets import log_inputs

        log_inputs(self.client, run_id, record["datasets"])

    def _system_metrics(self, record: dict[str, Any], run_id: str) -> None:
        ended = any(later["op"] == "end" for later in self.pending)
        if not self.live or ended or self.sampler is not None:
            return
        from orchestrator.tracking.system_metrics import Sampler

        self.sampler = Sampler.start(self.client.tracking_uri, run_id)

    def _end(self, record: dict[str, Any], run_id: str) -> None:
        if self.sampler is not None:
            sampler, self.sampler = self.sampler, None
            sampler.stop()
        self.client.set_terminated(run_id, status=record["status"], end_time=record["time"])


def experiment_by_name(client: Any, name: str) -> str:
    """The id of the experiment ``name``, created if missing (by another process meanwhile, too).

    The experiment is tagged as model training (``mlflow.experimentKind``), so that the MLflow
    UI opens it on its runs, not on GenAI traces; one that has no kind, or only a kind the UI
    inferred, gets the tag too.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        kind = experiment.tags.get(EXPERIMENT_KIND, "")
        if not kind or kind.endswith("_inferred") or kind == "no_inferred_type":
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return experiment.experiment_id
    try:
        return client.create_experiment(name, tags={EXPERIMENT_KIND: MODEL_TRAINING})
    except Exception as error:
        if is_transient(error):
            raise
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _short(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= 300 else text[:297] + "..."
