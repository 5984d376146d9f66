"""The orchestrator's Hydra callback: own folders, masked secrets, and a sweep's parent run and report.

Hydra creates it from ``hydra.callbacks.orchestrator`` (``conf/config.yaml``). For
every run and every sweep it claims the output folder before Hydra writes into it
(:mod:`orchestrator.folders`), masks secrets in the log and in Hydra's own files
(``.hydra/*.yaml``, ``multirun.yaml``; :mod:`orchestrator.secrets`); for a sweep it
opens the sweep for the plugins and reports on it at the end.

Example::

    python -m orchestrator -m ... hydra.callbacks.orchestrator.fail_fast=true
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write

from orchestrator.backend import check_sweep_backends, searched_backends
from orchestrator.errors import UserError
from orchestrator.folders import Claim, claim_folder, follows_a_chief, named_by_time
from orchestrator.plugins import get_plugin_manager
from orchestrator.resume.index import UNFINISHED, RunIndex, command_key
from orchestrator.secrets import Secrets, mask_log, mask_yaml
from orchestrator.status import Status
from orchestrator.sweep import devices, policy
from orchestrator.sweep.fingerprint import sweep_fingerprint, what_changed
from orchestrator.sweep.grid import check_job, check_jobs, grid_jobs
from orchestrator.sweep.journal import CARRIED_OVER, FAILURES, best, describe, read_journal, record
from orchestrator.sweep.report import write_report
from orchestrator.sweep.state import STATE, STATE_ENV, Sweep

log = logging.getLogger("orchestrator.sweep")


class SweepCallback(Callback):
    """Hydra callback: claims each run's and sweep's folder, masks secrets in the log and in Hydra's
    files, opens a sweep for the plugins and reports on it at the end.

    Args:
        fail_fast: skip the jobs that have not started once one job failed.
        retries, retry_delay, time_limit: the jobs' failure policy (:mod:`orchestrator.sweep.policy`).
        devices: one entry per device slot (:mod:`orchestrator.sweep.devices`); ``None``: every job
            sees every device.
    """

    def __init__(
        self,
        fail_fast: bool = False,
        retries: int = 0,
        retry_delay: float = 10.0,
        time_limit: float | None = None,
        devices: Any = None,
    ):
        self.fail_fast = fail_fast
        self.retries = retries
        self.retry_delay = retry_delay
        self.time_limit = time_limit
        self.devices = OmegaConf.to_container(devices) if OmegaConf.is_config(devices) else devices
        self.sweep: Sweep | None = None
        self.index: Any = None
        self.started = 0.0
        self.finished = False
        self.claim: Claim | None = None
        self.secrets = Secrets()

    def __getstate__(self) -> dict[str, Any]:
        """The copy a parallel launcher sends its workers: the sweep stays with the process running it."""
        return {**self.__dict__, "sweep": None, "index": None, "claim": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A single run: mask its secrets in the log; claim its folder (``hydra.run.dir``).

        With ``dry_run=true`` the run's config is checked and the command ends here, before
        any folder exists (:mod:`orchestrator.dry_run`).
        """
        if config.get("dry_run"):
            from orchestrator import dry_run

            raise SystemExit(dry_run.run(config))
        self.secrets = Secrets.of(config)
        mask_log(self.secrets)
        self._claim(config, "run", "runs", "output_dir")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Each job (in whichever process runs it): take its device slot, before TensorFlow starts;
        mask its secrets in the log and in Hydra's files."""
        if self.devices is not None and config.hydra.mode == RunMode.MULTIRUN:
            sweep_dir = Path(config.hydra.runtime.cwd) / str(config.hydra.sweep.dir)
            slot = devices.take(sweep_dir, devices.parse(self.devices))
            if slot is not None:
                slot.apply()
                log.info("Job %s runs on %s", config.hydra.job.num, slot.text)
        secrets = Secrets.of(config)
        mask_log(secrets)
        if config.hydra.output_subdir is not None:
            folder = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                mask_yaml(folder / name, secrets)
        if config.hydra.mode == RunMode.MULTIRUN:
            sweep_dir = Path(config.hydra.runtime.cwd) / str(config.hydra.sweep.dir)
            mask_yaml(sweep_dir / "multirun.yaml", secrets)

    def _claim(self, config: DictConfig, mode: str, kind: str, recorded: str) -> Path:
        """Claim ``hydra.<mode>.dir`` for this process (the next free name if it is named by time).

        A folder the user named is taken over only by the command's own unfinished run
        (or sweep) being resumed; otherwise it is refused with exit code 2.
        """
        key = f"hydra.{mode}.dir"
        node = config.hydra[mode]
        pattern = OmegaConf.to_container(node, resolve=False)["dir"]
        wanted = Path(str(node.dir))
        backend = str(config.get("backend", "tensorflow"))
        command = command_key(list(config.hydra.overrides.task), backend=backend)
        index = RunIndex(Path(config.hydra.runtime.cwd), command, kind)

        def resumes(folder: Path) -> bool:
            entry = index.read() or {}
            return (
                bool(config.get("resume", True))
                and entry.get("status") in UNFINISHED
                and Path(str(entry.get(recorded))).resolve() == folder.resolve()
            )

        by_time = named_by_time(pattern)
        if not by_time and follows_a_chief():
            return wanted
        try:
            self.claim = claim_folder(wanted, key, by_time, resumes)
        except UserError as error:
            stop(error)
        if self.claim.path != wanted:
            log.warning("%s %s is taken by another process; this one uses %s", key, wanted, self.claim.path)
            with read_write(config.hydra):
                node.dir = str(self.claim.path)
                if mode == "sweep":  # each job's config is composed again from the overrides
                    config.hydra.overrides.hydra.append(f"{key}={quoted(str(self.claim.path))}")
        return self.claim.path

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("dry_run"):  # every job checked, none started (orchestrator/dry_run.py)
            from orchestrator import dry_run

            raise SystemExit(dry_run.sweep(config))
        self.started = time.monotonic()
        check_before_sweep(config)
        try:
            policy.check(self.retries, self.retry_delay, self.time_limit)
            workers = config.hydra.launcher.get("n_jobs")
            devices.check(
                devices.parse(self.devices), workers if isinstance(workers, int) and workers > 0 else None
            )
        except UserError as error:
            stop(error)
        # Hydra turns an exception in a callback into a warning and would run the jobs all the same,
        # without the sweep's parent run or record: the command ends here instead.
        try:
            self._open(config)
        except UserError as error:
            stop(error)
        except Exception:
            log.exception("The sweep could not start")
            raise SystemExit(1) from None

    def _open(self, config: DictConfig) -> None:
        """Claim the sweep's folder, go on with its interrupted start if any, open it for the plugins."""
        self.secrets = Secrets.of(config)
        mask_log(self.secrets)
        sweep_dir = self._claim(config, "sweep", "sweeps", "sweep_dir").resolve()
        arguments = list(config.hydra.overrides.task)
        self.sweep = Sweep(
            dir=sweep_dir,
            id=uuid.uuid4().hex[:8],
            experiment=config.hydra.runtime.choices.get("experiment"),
            arguments=arguments,
            direction=str(config.objective.direction),
            cfg=config,
        )
        key = command_key(arguments, backend=str(config.get("backend", "tensorflow")))  # as _claim's
        self.index = RunIndex(Path(config.hydra.runtime.cwd), key, kind="sweeps")
        previous = self._unfinished_sweep(bool(config.resume))
        fingerprint = sweep_fingerprint(config)
        if previous is not None:
            changed = what_changed(previous.get("config") or {}, fingerprint)
            if changed:
                raise UserError(
                    "resume",
                    f"the interrupted sweep in {previous['sweep_dir']} was started with another config: "
                    f"{changed}. Start it with the config it had to finish it, or with resume=false "
                    "for a new sweep.",
                )
            self._continue(previous)
        self.sweep.state["sweep_id"] = self.sweep.id
        get_plugin_manager().hook.orchestrator_before_sweep(sweep=self.sweep)
        (sweep_dir / STATE).write_text(json.dumps(self.sweep.state, indent=2))
        if self.index.claimed:
            self.index.write(
                sweep_id=self.sweep.id,
                sweep_dir=str(sweep_dir),
                state=self.sweep.state,
                config=fingerprint,
                status=Status.RUNNING,
            )
        os.environ["ORCHESTRATOR_SWEEP_ID"] = self.sweep.id
        os.environ[STATE_ENV] = json.dumps(self.sweep.state)
        atexit.register(self._finish_interrupted)
        log.info("Sweep %s started in %s", self.sweep.id, sweep_dir)

    def _unfinished_sweep(self, resume: bool) -> dict[str, Any] | None:
        """The index entry of this command's last sweep, if it was interrupted and may go on."""
        if not self.index.claim():
            log.warning("The same sweep is already running; this one starts a sweep of its own.")
            return None
        entry = self.index.read()
        if resume and entry and entry.get("status") in UNFINISHED and entry.get("sweep_id"):
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
        if Path(previous["sweep_dir"]).resolve() != self.sweep.dir:  # a new folder; else they are there
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
        if self.sweep is None or self.finished:
            return False
        self.finished = True
        self.sweep.completed = completed
        jobs = read_journal(self.sweep.dir)
        try:
            mask_yaml(self.sweep.dir / "multirun.yaml", self.secrets)
            report = write_report(self.sweep, jobs)
            get_plugin_manager().hook.orchestrator_after_sweep(sweep=self.sweep, jobs=jobs, report=report)
        finally:  # a report that fails leaves the sweep ended all the same: never resumed into its folder
            if self.index is not None and self.index.claimed:
                self.index.write(status=Status.FINISHED if completed else Status.KILLED)
                self.index.release()
        failed = [j for j in jobs if j["status"] in FAILURES]
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
    command here, before the parent run is created; so does a wrong swept value of a
    grid sweep (:mod:`orchestrator.sweep.grid`), and a sweep over Keras backends (its jobs',
    or those its search space offers) whose launcher runs jobs in one process. Each job is
    checked again when it starts.
    A complaint of the base config about a key the sweep sets (``data.path=a.csv,b.csv``
    over a default ``path: null``) is left to the check of each job's own values.
    """
    try:
        check_shared_config(config)
        jobs = check_jobs(config, grid_jobs(config) or [])
        backends = {str(job.backend) for job in jobs} | searched_backends(config) or {str(config.backend)}
        check_sweep_backends(backends, str(config.hydra.launcher.get("_target_", "")))
    except UserError as error:
        stop(error)


def stop(error: UserError) -> None:
    """End the command on a user error found in a callback: one paragraph (the traceback under
    ``HYDRA_FULL_ERROR=1``) and exit code 2. Raising it would not do: Hydra turns an exception in a
    callback into a warning and goes on."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(error)
    else:
        print(f"Error: {error}\n(Set HYDRA_FULL_ERROR=1 for the full traceback.)", file=sys.stderr)
    raise SystemExit(2) from None


def check_shared_config(config: DictConfig) -> None:
    """Check what every job of the sweep shares: its config less the swept keys, and its launcher."""
    try:
        check_job(config)
    except UserError as error:
        if not _is_swept(error.key, list(config.hydra.overrides.task)):
            raise
    _check_launcher(config.hydra.launcher)


def _is_swept(key: str, overrides: list[str]) -> bool:
    """Whether ``key`` (``data.path``) is, or lies under, a key or group that ``overrides`` sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return False
    swept = [override.key_or_group for override in parsed if override.is_sweep_override()]
    return any(key == name or key.startswith(f"{name}.") for name in swept)


def _check_launcher(launcher: DictConfig) -> None:
    """The settings Hydra's launchers leave unchecked until their first job (joblib's ``n_jobs``)."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
        raise UserError(
            "hydra.launcher.n_jobs",
            f"must be the number of jobs to run at once (1 or more; -1: one per CPU), got {n_jobs!r}.",
        )


def quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value: ``/tmp/it's`` -> ``'/tmp/it\\'s'``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
