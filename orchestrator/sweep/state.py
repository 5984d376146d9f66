"""What a sweep shares with its jobs: the :class:`Sweep` plugins see, and one job's view of it.

Example::

    job = current_job(HydraConfig.get())   # None outside a multirun
    job.state["mlflow.parent_run_id"]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    #: Plugins' own state for this sweep, by a key of their own; never saved or shared with jobs.
    stash: dict[str, Any] = field(default_factory=dict, repr=False)

    def check_jobs(self, jobs: list[list[str]]) -> None:
        """Check the config of each job (its override list) as a run's is checked, before any run
        exists; raises :class:`~orchestrator.UserError` naming the job. A sweeper plugin that picks
        values as it goes hands over the ones worth checking (the ends of each range, every choice)::

            sweep.check_jobs([["optimizer.learning_rate=1e-05"], ["optimizer.learning_rate=0.1"]])
        """
        from orchestrator.sweep.grid import check_jobs

        check_jobs(self.cfg, jobs, numbered=False)


@dataclass
class SweepJob:
    """What one job knows of its sweep: the folder, its number, the shared state, the failure policy."""

    dir: Path
    number: int
    overrides: list[str]
    fail_fast: bool
    state: dict[str, Any]
    #: ``hydra.callbacks.orchestrator.retries``, ``retry_delay``, ``time_limit`` (:mod:`.policy`).
    retries: int = 0
    retry_delay: float = 0.0
    time_limit: float | None = None
    #: 1 for the first attempt, 2 for the first retry, ...
    attempt: int = 1

    @property
    def id(self) -> str | None:
        return self.state.get("sweep_id")

    def tags(self) -> dict[str, str]:
        """The job's own tags for its run: its devices (a device slot) and, when retried, its attempt."""
        tags = {}
        devices = os.environ.get("ORCHESTRATOR_DEVICES")
        if devices:
            tags["orchestrator.devices"] = devices
        if self.attempt > 1:
            tags["orchestrator.attempt"] = str(self.attempt)
        return tags


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
        retries=int(callback.get("retries") or 0),
        retry_delay=float(callback.get("retry_delay") or 0.0),
        time_limit=callback.get("time_limit"),
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
