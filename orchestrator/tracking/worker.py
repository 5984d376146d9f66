"""The tracking worker: a child process that does a training process's MLflow work.

``python -m orchestrator.tracking.worker <tracking URI> [--replay]``, started by
:class:`orchestrator.tracking.client.WorkerProcess` when a run starts. It imports MLflow
and opens the store (on another core, while the training process imports
TensorFlow and loads the data), then delivers the records that the training
process appends to its runs' spools (:mod:`orchestrator.tracking.spool`), in order and in
batches (:mod:`orchestrator.tracking.delivery`). The training process never waits for
MLflow, never imports it, and an unreachable MLflow never stops training.

Protocol, one JSON object a line. Training process to worker, on stdin:
``{"spool": folder}`` (new records there), ``{"spool": folder, "end": record}`` (the
run's end, which a full disk kept out of the spool: delivered after the spool's records),
``{"preload": module}`` (import it now, while the worker is idle). Worker to training process, on its stdout:
``{"spool": folder, "delivered": n, "run_id": ..., "experiment_id": ...,
"results": {...}, "finished": bool}`` after progress, ``{"outage": error}`` when
MLflow stops answering, ``{"back": true}`` when it answers again, and
``{"fatal": error}`` when the store cannot be opened at all.

While MLflow is unreachable the worker tries again after 0.5 s, then twice as
long each time, up to every 5 s. When stdin closes (the training process ended,
or died) it delivers what is pending for up to ``CLOSE_SECONDS`` and exits; what
is left stays in the spools for ``python -m orchestrator sync``. The worker
ignores Ctrl-C, so that a run interrupted in the terminal can still record
that it was ``KILLED``.

A worker that dies (killed, out of memory) is started again by the training
process with ``--replay``: it delivers every spool from its first unconfirmed
record, and finds a run its predecessor may have created by the run's key.

``ORCHESTRATOR_WORKER_STATS=<file>`` makes the worker append its peak memory and
CPU time to ``file`` as it exits (one JSON line), for the benchmarks.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.tracking.delivery import Delivery, Outage
from orchestrator.tracking.spool import Spool
from orchestrator.tracking.store import is_transient, open_client

log = logging.getLogger("orchestrator.tracking")

#: How long a worker whose training process has gone keeps delivering before it gives up.
CLOSE_SECONDS = 3.0
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 5.0


class Worker:
    """Delivers the spools it is told about, one record stream after the other, with one client."""

    def __init__(self, client: Any, send, replay: bool = False, open_store=None):
        self.client = client
        self.send = send
        #: A worker started again after its predecessor died: a run may exist without a saved id.
        self.replay = replay
        #: Opens the store when ``client`` is ``None`` (again after a transient error: a full disk).
        self.open_store = open_store
        self.deliveries: dict[str, Delivery] = {}
        self.dirty: set[str] = set()
        #: Ends a full disk kept out of their spools, by spool folder.
        self.ends: dict[str, dict[str, Any]] = {}
        self.retry_at = 0.0
        self.backoff = FIRST_BACKOFF
        self.outage: str | None = None

    def handle(self, message: dict[str, Any]) -> None:
        if "spool" in message:
            self.dirty.add(message["spool"])
            if "end" in message:
                self.ends[message["spool"]] = message["end"]
        elif "preload" in message:
            try:
                importlib.import_module(message["preload"])
            except Exception as error:  # only a head start: the module is imported again when used
                log.debug("preload of %s failed: %s", message["preload"], error)

    def open(self) -> bool:
        """Open the store if it is not open; whether it is. A transient failure is an outage;
        any other error is raised (the worker cannot start)."""
        if self.client is None:
            try:
                self.client = self.open_store()
            except Exception as error:
                if not is_transient(error):
                    raise
                self._down(error)
                return False
        return True

    def _down(self, error: BaseException) -> None:
        if self.outage is None:
            self.outage = str(error)
            self.send({"outage": self.outage})
        self.retry_at = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)

    def _delivery(self, folder: str) -> Delivery:
        if folder not in self.deliveries:
            delivery = self.deliveries[folder] = Delivery(Spool(Path(folder)), self.client, live=True)
            delivery.failed_before = self.replay  # then found by its run key, never created twice
        return self.deliveries[folder]

    def due(self) -> bool:
        return bool(self.dirty) and time.monotonic() >= self.retry_at

    def wait_seconds(self) -> float | None:
        """How long the worker may block for the next message."""
        if not self.dirty:
            return None
        return max(0.0, self.retry_at - time.monotonic())

    def deliver(self) -> None:
        """Deliver every dirty spool (the store is open); on an outage, stop and schedule the next attempt."""
        for folder in list(self.dirty):
            delivery = self._delivery(folder)
            try:
                done = delivery.deliver()
                if folder in self.ends and not delivery.pending:
                    delivery.end_unspooled(self.ends[folder])
                    del self.ends[folder]
                    done += 1
            except Outage as outage:
                self._down(outage)
                self._report(folder, delivery)
                return
            if self.outage is not None:
                self.outage = None
                self.send({"back": True})
            self.backoff = FIRST_BACKOFF
            self.dirty.discard(folder)
            complete = delivery.complete
            if done or complete:
                self._report(folder, delivery, complete)
            if complete:
                delivery.spool.remove()
                del self.deliveries[folder]

    def _report(self, folder: str, delivery: Delivery, complete: bool = False) -> None:
        state = delivery.state
        self.send(
            {
                "spool": folder,
                "delivered": delivery.delivered,
                "run_id": state.get("run_id"),
                "experiment_id": state.get("experiment_id"),
                "results": state.get("results", {}),
                "finished": delivery.finished or complete,
            }
        )


def read_messages(stream, inbox: queue.Queue) -> None:
    """Put every JSON line of ``stream`` on ``inbox``; ``None`` when it closes."""
    for line in stream:
        if line.strip():
            inbox.put(json.loads(line))
    inbox.put(None)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # whatever MLflow prints goes to stderr, never into the protocol
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with lock:
            try:
                protocol.write(json.dumps(message, default=str) + "\n")
            except (BrokenPipeError, ValueError):
                pass

    form = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    logging.basicConfig(level=logging.WARNING, format=form, stream=sys.stderr)
    inbox: queue.Queue = queue.Queue()
    threading.Thread(target=read_messages, args=(sys.stdin, inbox), daemon=True).start()

    def open_store() -> Any:
        client = open_client(argv[0])
        import mlflow

        mlflow.set_tracking_uri(argv[0])  # the worker's one store, for MLflow's APIs that read it
        return client

    worker = Worker(None, send, replay="--replay" in argv[1:], open_store=open_store)
    try:
        worker.open()  # now, while the training process imports TensorFlow
    except Exception as error:
        send({"fatal": f"{type(error).__name__}: {error}"})
        return 1
    deadline: float | None = None
    while True:
        timeout = worker.wait_seconds()
        if deadline is not None:
            timeout = min(timeout if timeout is not None else 1.0, max(0.0, deadline - time.monotonic()))
        messages = []
        try:
            messages.append(inbox.get(timeout=timeout))
            while True:
                messages.append(inbox.get_nowait())
        except queue.Empty:
            pass
        for message in messages:
            if message is None:
                deadline = deadline or time.monotonic() + CLOSE_SECONDS
            else:
                worker.handle(message)
        if worker.due():
            try:
                opened = worker.open()
            except Exception as error:  # the store cannot be opened after all
                send({"fatal": f"{type(error).__name__}: {error}"})
                return 1
            if opened:
                worker.deliver()
        if deadline is not None and (not worker.dirty or time.monotonic() >= deadline):
            return 0


def write_stats() -> None:
    """Append this process's peak memory and CPU time to ``$ORCHESTRATOR_WORKER_STATS``, if set."""
    target = os.environ.get("ORCHESTRATOR_WORKER_STATS")
    if not target:
        return
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = {"max_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime}
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(stats) + "\n")


if __name__ == "__main__":
    code = main(sys.argv[1:])
    write_stats()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything delivered is committed. Skip the interpreter's teardown of MLflow, SQLAlchemy and
    # matplotlib (0.8 s on 2 cores), which the training process would otherwise wait for as it exits.
    os._exit(code)
