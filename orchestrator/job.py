"""One Hydra job: a single run, or one job of a sweep with its journal entry.

Outside a multirun a user error propagates to the command line, which prints
it. Inside one, a failing job is recorded (``FAILED`` in MLflow and in the
sweep journal) and the sweep goes on; with ``fail_fast`` the jobs that have not
started yet are skipped. Each job logs a line when it starts and when it ends,
with the best objective so far; its journal entry records how long it took,
how long each stage took, and the process's peak memory.

Example::

    objective = run_job(cfg, Session())   # inside @hydra.main
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from orchestrator.errors import UserError
from orchestrator.overrides import check_group_choices
from orchestrator.run import execute, prepare
from orchestrator.secrets import Secrets
from orchestrator.session import Session
from orchestrator.status import Status
from orchestrator.sweep.best import best_epochs, job_params
from orchestrator.sweep.journal import CARRIED_OVER, FAILURES, best, describe, read_journal, record
from orchestrator.sweep.policy import TimeLimit, time_limit
from orchestrator.sweep.state import current_job

log = logging.getLogger("orchestrator.sweep")


def max_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (0 where it cannot be read)."""
    try:
        import resource
    except ImportError:
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def finished_before(sweep) -> dict[str, Any] | None:
    """In a resumed sweep, the journal entry of this job if it finished before the interruption."""
    if not sweep.state.get("resumed_from"):
        return None
    for job in read_journal(sweep.dir):
        same = job["number"] == sweep.number and job["overrides"] == sweep.overrides
        if same and job["status"] in CARRIED_OVER:
            return job
    return None


def run_job(cfg: DictConfig, session: Session) -> float | None:
    """Run the Hydra job of ``cfg`` in the process's ``session``; return its objective."""
    hydra_cfg = HydraConfig.get()
    sweep = current_job(hydra_cfg)
    if sweep is not None:  # as the journal, the report and the log show them
        sweep.overrides = Secrets.of(cfg).overrides(sweep.overrides)

    def prepared():
        check_group_choices(cfg, hydra_cfg)
        return prepare(
            cfg,
            output_dir=Path(hydra_cfg.runtime.output_dir),
            experiment=hydra_cfg.runtime.choices.get("experiment"),
            overrides=list(hydra_cfg.overrides.task),
            sweep=sweep,
            root=Path(hydra_cfg.runtime.cwd),
            session=session,
        )

    if sweep is None:
        return execute(prepared())

    entry: dict[str, Any] = {
        "number": sweep.number,
        "overrides": sweep.overrides,
        "objective": None,
        "run_id": None,
    }
    done = finished_before(sweep)
    if done is not None:
        log.info("Job %d finished before the sweep was interrupted: %s", sweep.number, done["status"])
        return done["objective"]
    if sweep.fail_fast and any(j["status"] in FAILURES for j in read_journal(sweep.dir)):
        log.warning("Job %d skipped: an earlier job failed and fail_fast is on", sweep.number)
        record(sweep.dir, {**entry, "status": Status.SKIPPED, "error": "skipped after a failure (fail_fast)"})
        return None
    log.info("Job %d started: %s", sweep.number, " ".join(sweep.overrides) or "no overrides")
    started = time.monotonic()
    entry["started_at"] = round(time.time(), 3)
    while True:
        context = _attempt(prepared, sweep, entry)
        if entry["status"] != Status.FAILED or entry.get("refused") or sweep.attempt > sweep.retries:
            break
        log.warning(
            "Job %d failed (attempt %d of %d); it runs again in %g s: %s",
            sweep.number, sweep.attempt, sweep.retries + 1, sweep.retry_delay, entry.get("error"),
        )  # fmt: skip
        time.sleep(sweep.retry_delay)
        sweep.attempt += 1
    entry.pop("refused", None)
    if sweep.attempt > 1:
        entry["attempts"] = sweep.attempt
    entry["run_id"] = context.run_id if context is not None else None
    entry["seconds"] = round(time.monotonic() - started, 3)
    entry["stage_seconds"] = {
        name.removeprefix("time/").removesuffix("_seconds"): round(value, 3)
        for name, value in (context.metrics.items() if context is not None else ())
        if name.startswith("time/")
    }
    entry["max_rss_mb"] = round(max_rss_mb(), 1)
    entry["best_epochs"] = best_epochs(context)
    entry["output_dir"] = str(Path(hydra_cfg.runtime.output_dir).resolve())
    entry["params"] = job_params(cfg)
    entry["ended_at"] = round(time.time(), 3)
    if context is not None and not context.chief:
        return entry["objective"]  # the chief worker records the job
    record(sweep.dir, entry)
    direction = str(cfg.objective.direction)
    log.info(
        "Job %d %s in %.1f s, objective %s. Best so far: %s",
        sweep.number,
        entry["status"],
        entry["seconds"],
        "n/a" if entry["objective"] is None else f"{entry['objective']:.6g}",
        describe(best(read_journal(sweep.dir), direction)),
    )
    return entry["objective"]


def _attempt(prepared: Any, sweep: Any, entry: dict[str, Any]) -> Any:
    """One attempt at the job, within its time limit; its outcome goes into ``entry``; the run context."""
    context = None
    entry.pop("error", None)
    try:
        with time_limit(sweep.time_limit):
            context = prepared()
            objective = execute(context)
        entry.update(status=context.outcome or Status.FINISHED, objective=objective)
    except UserError as error:
        # a config that is refused before the run starts fails again: it is not retried
        entry.update(status=Status.FAILED, error=str(error), refused=context is None)
        log.error("Job %d failed: %s", sweep.number, error)
    except KeyboardInterrupt:
        record(sweep.dir, {**entry, "status": Status.KILLED, "error": "interrupted"})
        raise
    except Exception as error:
        entry.update(status=Status.FAILED, error=f"{type(error).__name__}: {error}")
        if isinstance(error, TimeLimit):
            log.error("Job %d failed: %s", sweep.number, error)
        else:
            log.exception("Job %d failed", sweep.number)
    return context
