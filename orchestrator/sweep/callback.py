"""The Hydra callback that opens a sweep for the plugins and reports on it at the end.

Hydra creates it from ``hydra.callbacks.orchestrator`` (``conf/config.yaml``).

Example::

    python -m orchestrator -m ... hydra.callbacks.orchestrator.fail_fast=true
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from orchestrator.errors import UserError, exit_on
from orchestrator.status import Status
from orchestrator.sweep.journal import CARRIED_OVER, FAILURES, best, describe, read_journal, record
from orchestrator.sweep.state import STATE, STATE_ENV, Sweep

log = logging.getLogger("orchestrator.sweep")


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
        from orchestrator.resume.index import RunIndex, command_key

        check_before_sweep(config)
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
                sweep_id=self.sweep.id,
                sweep_dir=str(sweep_dir),
                state=self.sweep.state,
                status=Status.RUNNING,
            )
        os.environ["ORCHESTRATOR_SWEEP_ID"] = self.sweep.id
        os.environ[STATE_ENV] = json.dumps(self.sweep.state)
        self.started = time.monotonic()
        atexit.register(self._finish_interrupted)
        log.info("Sweep %s started in %s", self.sweep.id, sweep_dir)

    def _unfinished_sweep(self, resume: bool) -> dict[str, Any] | None:
        """The index entry of this command's last sweep, if it was interrupted and may go on."""
        from orchestrator.resume.index import UNFINISHED

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
        from orchestrator.sweep.report import write_report

        if self.sweep is None or self.finished:
            return False
        self.finished = True
        self.sweep.completed = completed
        jobs = read_journal(self.sweep.dir)
        report = write_report(self.sweep, jobs)
        get_plugin_manager().hook.orchestrator_after_sweep(sweep=self.sweep, jobs=jobs, report=report)
        failed = [j for j in jobs if j["status"] in FAILURES]
        if self.index is not None and self.index.claimed:
            self.index.write(status=Status.FINISHED if completed else Status.KILLED)
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


def check_before_sweep(config: DictConfig) -> None:
    """Check the sweep's config (its overrides less the swept ones) before any run exists.

    A mistake that every job would share (a misspelt key, a wrong value) ends the
    command here, before the parent run is created; each job is checked again with
    its own values.
    """
    from orchestrator.plugins import get_plugin_manager
    from orchestrator.spec import validate

    job_config = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    try:
        validate(job_config, get_plugin_manager().registries)
        _check_launcher(config.hydra.launcher)
    except UserError as error:
        exit_on(error)


def _check_launcher(launcher: DictConfig) -> None:
    """The settings Hydra's launchers leave unchecked until their first job (joblib's ``n_jobs``)."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
        raise UserError(
            "hydra.launcher.n_jobs",
            f"must be the number of jobs to run at once (1 or more; -1: one per CPU), got {n_jobs!r}.",
        )
