"""What the training process calls to log to MLflow: a spool on disk and a worker process that delivers it.

:class:`RunLog` is one MLflow run as the training process sees it: every call
appends a record to the run's spool (:mod:`orchestrator.tracking.spool`) and returns at
once; :class:`WorkerProcess` is the tracking worker
(:mod:`orchestrator.tracking.worker`), one per tracking URI and process, started
when the first run starts and told about each new record. Neither imports MLflow.

Why not MLflow's own asynchronous logging (``synchronous=False``,
``MLFLOW_ENABLE_ASYNC_LOGGING``)? It queues calls in a thread of the same
process: that process must still import MLflow and open the store first (about
3 s of the critical path on 2 cores; Python's GIL keeps a thread from
overlapping them with TensorFlow's import), and what it queued is lost when the
server stays away longer than its retries or the process dies. Here MLflow's
import and store set-up run in another process, in parallel with TensorFlow's
import and the data loading, and what is not delivered stays on disk.

Example::

    worker = WorkerProcess("sqlite:///mlflow.db")
    run = RunLog(worker, Path("outputs/now/mlflow-spool"))
    run.start("mnist", tags={"mlflow.runName": "mnist"})
    run.log_metrics({"fit/loss": 0.3}, step=0)
    run.end("FINISHED")
    run.wait(timeout=60)      # False: still pending, `python -m orchestrator sync` delivers it later
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.tracking.spool import Spool
from orchestrator.tracking.store import FULL_DISK_MARKERS, is_full_disk

log = logging.getLogger("orchestrator.tracking")


def now_ms() -> int:
    return int(time.time() * 1000)


class WorkerProcess:
    """The tracking worker for one tracking URI: started at once, fed with spool notifications.

    A worker that dies before it is closed (killed, out of memory) is started
    again, up to ``RESTARTS`` times, with one log line; the new one delivers every
    run's spool from its first unconfirmed record (delivering twice changes nothing).

    Args:
        uri: the MLflow tracking URI the worker delivers to.
    """

    RESTARTS = 3

    def __init__(self, uri: str):
        self.uri = uri
        self.logs: dict[str, RunLog] = {}
        self.alive = True
        self.problem: str | None = None
        self.closing = False
        self.restarts = 0
        self._lock = threading.Lock()
        self.process = self._spawn()
        threading.Thread(target=self._read, name="tracking-worker-reader", daemon=True).start()

    def _spawn(self, replay: bool = False) -> subprocess.Popen:
        env = dict(os.environ)
        # The worker retries on its own, without blocking anyone: MLflow's retries would only delay it.
        env.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        env.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        env.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.tracking.worker", self.uri, *(["--replay"] * replay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if not self.alive or self.process.stdin is None:
                return
            try:
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the worker died: the reader starts another, which reads the spools again

    def preload(self, module: str) -> None:
        """Ask the worker to import ``module`` now, while it is idle."""
        self.send({"preload": module})

    def close(self, timeout: float = 5.0) -> None:
        """Close the worker's input; it exits once nothing is pending (or after its own grace period)."""
        with self._lock:
            self.closing = True
            if self.process.stdin is not None and not self.process.stdin.closed:
                try:
                    self.process.stdin.close()
                except OSError:
                    pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass  # still delivering: it exits by itself; what it cannot deliver stays in the spools

    def _read(self) -> None:
        """Follow what the worker reports; start it again if it dies before it is closed."""
        while True:
            process = self.process
            fatal = self._follow(process)
            code = process.wait()
            with self._lock:
                if fatal or self.closing or self.restarts >= self.RESTARTS:
                    break
                self.restarts += 1
                self.process = self._spawn(replay=True)
            log.warning(
                "The tracking worker (pid %d) died (%s); started another (pid %d), which delivers what "
                "this process logged from the spool again. Nothing is lost.",
                process.pid,
                exit_reason(code),
                self.process.pid,
            )
            for key, run_log in list(self.logs.items()):
                if not run_log.finished:
                    self.send({"spool": key})
        if not fatal and not self.closing:
            self.problem = f"the tracking worker died ({exit_reason(code)}) {self.restarts + 1} times"
        self.alive = False
        for run_log in list(self.logs.values()):
            run_log.update({})

    def _follow(self, process: subprocess.Popen) -> bool:
        """Read ``process``'s messages until it exits; whether it said it cannot start (fatal)."""
        assert process.stdout is not None
        fatal = False
        for line in process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "fatal" in message:
                fatal = True
                self.problem = message["fatal"]
                log.error(
                    "MLflow tracking at %s cannot start (%s). Training goes on; what it logs is kept "
                    "in the run's mlflow-spool folder.",
                    self.uri,
                    self.problem,
                )
            elif "outage" in message:
                self.problem = message["outage"]
                full = any(marker in self.problem.lower() for marker in FULL_DISK_MARKERS)
                log.warning(
                    "%s (%s). Training goes on; what it logs is kept on disk and delivered when %s.",
                    "A disk of the MLflow store or the spool is full"
                    if full
                    else f"MLflow at {self.uri} does not answer",
                    self.problem,
                    "there is space again" if full else "MLflow is back",
                )
            elif "back" in message:
                self.problem = None
                log.info("MLflow at %s answers again; delivering what was kept.", self.uri)
            elif message.get("spool") in self.logs:
                self.logs[message["spool"]].update(message)
        return fatal


def exit_reason(code: int | None) -> str:
    """``killed by SIGKILL`` or ``exit code 1``, for a process's return code."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class RunLog:
    """One MLflow run, logged through a spool and the worker; no call waits for MLflow.

    Args:
        worker: the :class:`WorkerProcess` of the run's tracking URI.
        folder: the run's spool folder (``<output folder>/mlflow-spool``).
    """

    def __init__(self, worker: WorkerProcess, folder: Path):
        self.worker = worker
        self.spool = Spool(folder)
        self.key = str(Path(folder).resolve())
        self.delivered = 0
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.results: dict[str, Any] = {}
        self.run_name: str | None = None
        #: Called with the run's id once MLflow has created the run (from the worker's reader thread).
        self.on_run: Callable[[str], None] | None = None
        self.finished = False
        self._changed = threading.Condition()
        self._announce: tuple[str, ...] | None = None
        worker.logs[self.key] = self

    # -- logging ------------------------------------------------------------------------

    def start(
        self, experiment: str, tags: dict[str, str], run_id: str | None = None, announce: bool = True
    ) -> None:
        """Create the run in ``experiment`` with ``tags`` (or, given ``run_id``, reopen that run).

        With ``announce``, a log line names the run once MLflow has created it.
        """
        self._announce = (experiment, self.worker.uri) if announce else None
        self.run_name = tags.get("mlflow.runName")
        self._append(
            {
                "op": "start_run",
                "experiment": experiment,
                "tags": tags,
                "run_id": run_id,
                "run_key": uuid.uuid4().hex,
                "time": now_ms(),
                "tracking_uri": self.worker.uri,
            }
        )

    def log_params(self, params: dict[str, Any]) -> None:
        items = [[str(key)[:250], str(value)[:6000]] for key, value in params.items()]
        if items:
            self._append({"op": "params", "items": items})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        stamp = now_ms()
        items = [[name, float(value), stamp, int(step)] for name, value in metrics.items()]
        if items:
            self._append({"op": "metrics", "items": items})

    def set_tags(self, tags: dict[str, Any]) -> None:
        items = [[str(key), str(value)[:5000]] for key, value in tags.items()]
        if items:
            self._append({"op": "tags", "items": items})

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Upload the file or folder ``path`` (as it is when the worker gets to it) to ``artifact_path``."""
        self._append({"op": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path})

    def log_inputs(self, datasets: list[dict[str, Any]]) -> None:
        """Log the run's dataset inputs (records of :func:`orchestrator.tracking.datasets.describe`)."""
        if datasets:
            self._append({"op": "inputs", "datasets": datasets})

    def sample_system_metrics(self) -> None:
        """Have the worker sample the machine's CPU, memory and GPU for the run until it ends."""
        self._append({"op": "system_metrics"})

    def call(self, target: str, **kwargs: Any) -> int:
        """Run ``module:function(client=..., run=..., **kwargs)`` in the worker; see :meth:`result`."""
        return self._append({"op": "call", "target": target, "kwargs": kwargs})

    def end(self, status: str) -> None:
        """Record the run's end; the spool is closed even when the record cannot be written.

        When the disk is full the end is sent to the worker instead, which ends the run once it
        has delivered what the spool holds (:meth:`wait` ``for_end`` learns of it); the ``OSError``
        is raised all the same.
        """
        record = {"op": "end", "status": status, "time": now_ms()}
        try:
            self._append(record)
            self.spool.sync_to_disk()
        except OSError as error:
            if is_full_disk(error):
                self.worker.send({"spool": self.key, "end": record})
            raise
        finally:
            self.spool.close()

    def _append(self, record: dict[str, Any]) -> int:
        seq = self.spool.append(record)
        self.worker.send({"spool": self.key})
        return seq

    # -- what the worker reports ---------------------------------------------------------

    def update(self, message: dict[str, Any]) -> None:
        with self._changed:
            if message:
                self.delivered = max(self.delivered, int(message.get("delivered", 0)))
                self.run_id = message.get("run_id") or self.run_id
                self.experiment_id = message.get("experiment_id") or self.experiment_id
                self.results.update(message.get("results") or {})
                self.finished = self.finished or bool(message.get("finished"))
            self._changed.notify_all()
        if self.run_id and self._announce is not None:
            experiment, uri = self._announce
            self._announce = None
            log.info("MLflow run %s in experiment '%s' (%s)", self.run_id, experiment, uri)
        if self.run_id and self.on_run is not None:
            on_run, self.on_run = self.on_run, None
            on_run(self.run_id)

    @property
    def pending(self) -> int:
        return self.spool.count - self.delivered

    def wait(self, timeout: float, for_run_id: bool = False, for_end: bool = False) -> bool:
        """Wait until every record is delivered (``for_run_id``: the run exists; ``for_end``: the
        worker ended the run); whether it happened."""
        deadline = time.monotonic() + timeout

        def done() -> bool:
            if for_end:
                return self.finished
            return bool(self.run_id) if for_run_id else self.delivered >= self.spool.count

        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or not self.worker.alive:
                    return done()
                self._changed.wait(min(left, 1.0))
        return True

    def result(self, seq: int) -> Any:
        """What the worker's ``call`` number ``seq`` returned (``None`` while it has not run)."""
        return self.results.get(str(seq))
