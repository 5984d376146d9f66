"""Sweeps: what a Hydra multirun shares between its jobs, and the callback around it.

``python -m orchestrator -m ...`` runs one job per combination; the orchestrator
adds, through the Hydra callback :class:`SweepCallback` (in ``conf/config.yaml``):

* before the first job, the plugins' ``orchestrator_before_sweep`` hook: tracking
  opens one MLflow parent run for the sweep (once, in the main process);
* a journal, ``orchestrator-jobs.jsonl`` in the sweep folder: one line per
  finished job (number, overrides, status, objective, run id). Jobs read it for
  the running best and for ``fail_fast``, whatever launcher runs them;
* after the last job, a report (table, CSV, plots) and ``orchestrator_after_sweep``;
  the command exits 1 if any job failed.

Example::

    python -m orchestrator -m +experiment=mnist optimizer.learning_rate=1e-3,1e-2
    python -m orchestrator -m ... hydra.callbacks.orchestrator.fail_fast=true
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("orchestrator.sweep")

JOURNAL = "orchestrator-jobs.jsonl"
#: Job statuses that make a sweep fail (``PRUNED`` and ``FINISHED`` do not).
FAILURES = ("FAILED", "KILLED", "SKIPPED")
#: Job statuses a resumed sweep keeps instead of running the job again.
CARRIED_OVER = ("FINISHED", "PRUNED")
STATE = "orchestrator-sweep.json"
#: The sweep's shared state as JSON, for job processes that cannot read the sweep folder.
STATE_ENV = "ORCHESTRATOR_SWEEP_STATE"


@dataclass
class Sweep:
    """One multirun, as plugins see it.

    Args:
        dir: the sweep folder (``hydra.sweep.dir``).
        id: a short id, tagged on every run of the sweep.
        experiment: the preset's name, or ``None``.
        arguments: the multirun's command-line overrides.
        direction: ``objective.direction`` (``minimize`` or ``maximize``).
        state: what plugins share with the jobs (``{"mlflow.parent_run_id": ...}``);
            saved in the sweep folder before the first job starts.
        completed: whether the sweep reached its end (``False`` after a crash or Ctrl-C).
        resumed: whether it goes on with an interrupted sweep (same id, same parent run).
    """

    dir: Path
    id: str
    experiment: str | None
    arguments: list[str]
    direction: str = "minimize"
    cfg: Any = field(default=None, repr=False)
    state: dict[str, Any] = field(default_factory=dict)
    completed: bool = False
    resumed: bool = False


@dataclass
class SweepJob:
    """What one job knows of its sweep: the folder, its number, the shared state."""

    dir: Path
    number: int
    overrides: list[str]
    fail_fast: bool
    state: dict[str, Any]

    @property
    def id(self) -> str | None:
        return self.state.get("sweep_id")


def current_job(hydra_cfg: Any) -> SweepJob | None:
    """The sweep of the running Hydra job, or ``None`` outside a multirun."""
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    # A relative sweep folder is relative to where the sweep was started, whatever
    # folder a launcher's worker process runs in.
    sweep_dir = (Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir).resolve()
    callback = hydra_cfg.callbacks.get("orchestrator") or {}
    return SweepJob(
        dir=sweep_dir,
        number=int(hydra_cfg.job.num),
        overrides=list(hydra_cfg.overrides.task),
        fail_fast=bool(callback.get("fail_fast", False)),
        state=read_state(sweep_dir),
    )


def read_state(sweep_dir: Path) -> dict[str, Any]:
    """The state the sweep shares with its jobs: the sweep folder's copy, else ``ORCHESTRATOR_SWEEP_STATE``.

    The environment variable reaches jobs on machines that do not share the sweep
    folder (the ``ray_cluster`` launcher preset passes it to Ray's workers).
    """
    path = Path(sweep_dir) / STATE
    if path.exists():
        return json.loads(path.read_text())
    return json.loads(os.environ.get(STATE_ENV) or "{}")


@contextlib.contextmanager
def _locked(sweep_dir: Path) -> Iterator[None]:
    """An exclusive lock on the sweep folder's journal, across processes."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: appends of one short line are atomic enough
        yield
        return
    with open(Path(sweep_dir) / f"{JOURNAL}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(sweep_dir: Path, entry: dict[str, Any]) -> None:
    """Append one finished job to the sweep's journal."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    with _locked(sweep_dir), open(Path(sweep_dir) / JOURNAL, "a") as journal:
        journal.write(json.dumps(entry, default=str) + "\n")


def read_journal(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job recorded so far, the last record of each job number winning."""
    path = Path(sweep_dir) / JOURNAL
    if not path.exists():
        return []
    with _locked(sweep_dir):
        lines = path.read_text().splitlines()
    jobs: dict[int, dict[str, Any]] = {}
    for line in lines:
        if line.strip():
            entry = json.loads(line)
            jobs[int(entry["number"])] = entry
    return [jobs[number] for number in sorted(jobs)]


def best(jobs: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The finished job with the best objective."""
    scored = [j for j in jobs if j.get("status") == "FINISHED" and j.get("objective") is not None]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda j: j["objective"])


def describe(job: dict[str, Any] | None, overrides: bool = False) -> str:
    """``"job 3 = 0.912"`` (with its overrides when asked), or ``"none yet"``."""
    if job is None:
        return "none yet"
    shown = f" ({' '.join(job['overrides'])})" if overrides and job["overrides"] else ""
    return f"job {job['number']}{shown} = {job['objective']:.6g}"


class SweepCallback(Callback):
    """Hydra callback: opens the sweep for the plugins and reports on it at the end.

    Args:
        fail_fast: skip the jobs that have not started once one job failed.
    """

    def __init__(self, fail_fast: bool = False):
        self.fail_fast = fail_fast
        self.sweep: Sweep | None = None
        self.index: Any = None
        self.started = 0.0
        self.finished = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from orchestrator.plugins import get_plugin_manager
        from orchestrator.resume import RunIndex, command_key

        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        arguments = list(config.hydra.overrides.task)
        self.sweep = Sweep(
            dir=sweep_dir,
            id=uuid.uuid4().hex[:8],
            experiment=config.hydra.runtime.choices.get("experiment"),
            arguments=arguments,
            direction=str(config.objective.direction),
            cfg=config,
        )
        self.index = RunIndex(Path(config.hydra.runtime.cwd), command_key(arguments), kind="sweeps")
        previous = self._unfinished_sweep(bool(config.resume))
        if previous is not None:
            self._continue(previous)
        self.sweep.state["sweep_id"] = self.sweep.id
        get_plugin_manager().hook.orchestrator_before_sweep(sweep=self.sweep)
        (sweep_dir / STATE).write_text(json.dumps(self.sweep.state, indent=2))
        if self.index.claimed:
            self.index.write(
                sweep_id=self.sweep.id, sweep_dir=str(sweep_dir), state=self.sweep.state, status="RUNNING"
            )
        os.environ["ORCHESTRATOR_SWEEP_ID"] = self.sweep.id
        os.environ[STATE_ENV] = json.dumps(self.sweep.state)
        self.started = time.monotonic()
        atexit.register(self._finish_interrupted)
        log.info("Sweep %s started in %s", self.sweep.id, sweep_dir)

    def _unfinished_sweep(self, resume: bool) -> dict[str, Any] | None:
        """The index entry of this command's last sweep, if it was interrupted and may go on."""
        from orchestrator.resume import UNFINISHED

        if not self.index.claim():
            log.warning("The same sweep is already running; this one starts a sweep of its own.")
            return None
        entry = self.index.read()
        if resume and entry and entry.get("status") in UNFINISHED:
            return entry
        return None

    def _continue(self, previous: dict[str, Any]) -> None:
        """Go on with an interrupted sweep: same id and parent run; its finished jobs carry over."""
        assert self.sweep is not None
        self.sweep.id = previous["sweep_id"]
        self.sweep.state.update(previous.get("state") or {})
        self.sweep.state["resumed_from"] = previous["sweep_dir"]
        self.sweep.resumed = True
        finished = [j for j in read_journal(Path(previous["sweep_dir"])) if j["status"] in CARRIED_OVER]
        for job in finished:
            record(self.sweep.dir, job)
        log.info(
            "Resuming sweep %s from %s: %d finished job(s) carry over (resume=false starts afresh)",
            self.sweep.id,
            previous["sweep_dir"],
            len(finished),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._finish(completed=True):
            raise SystemExit(1)

    def _finish_interrupted(self) -> None:
        """At exit: a sweep that never reached its end (a crash, Ctrl-C) still gets its report."""
        if self.sweep is not None and not self.finished:
            log.warning("Sweep %s ended before its last job; reporting what finished.", self.sweep.id)
            self._finish(completed=False)

    def _finish(self, completed: bool) -> bool:
        """Report on the sweep once; whether any job failed."""
        from orchestrator.plugins import get_plugin_manager
        from orchestrator.sweep_report import write_report

        if self.sweep is None or self.finished:
            return False
        self.finished = True
        self.sweep.completed = completed
        jobs = read_journal(self.sweep.dir)
        report = write_report(self.sweep, jobs)
        get_plugin_manager().hook.orchestrator_after_sweep(sweep=self.sweep, jobs=jobs, report=report)
        failed = [j for j in jobs if j["status"] in FAILURES]
        if self.index is not None and self.index.claimed:
            self.index.write(status="FINISHED" if completed else "KILLED")
            self.index.release()
        log.info(
            "Sweep %s: %d jobs, %d failed or skipped, %.1f s. Best: %s",
            self.sweep.id,
            len(jobs),
            len(failed),
            time.monotonic() - self.started,
            describe(best(jobs, self.sweep.direction), overrides=True),
        )
        return bool(failed)
