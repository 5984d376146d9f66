"""A dry run: ``dry_run=true`` checks a run, or every job of a sweep, and starts none.

The checks are a run's own (every key, every plugin selection, every value),
made before TensorFlow, MLflow or any output folder: each job of a grid sweep is
composed from its overrides as Hydra's launcher would compose it; a sweeper that
chooses values as it goes names the jobs it would start first through a
``dry_run_jobs(config)`` function of its class (the Optuna sweeper: the first
trials of its sampler, the same ones when the sampler is seeded). The report is
printed (one line per job, its overrides and the result) and kept as JSON in
``.orchestrator/dry-run.json`` of the folder the command runs from; the exit
code is 0 when every job passes, 2 otherwise.

Example::

    python -m orchestrator -m +experiment=mnist optimizer.learning_rate=1e-3,1e-2 dry_run=true
    #   job 0  optimizer.learning_rate=0.001  ok
    #   job 1  optimizer.learning_rate=0.01   ok
    # Dry run: 2 of 2 jobs pass; nothing was trained or tracked.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from orchestrator.errors import EXIT_USER_ERROR, UserError
from orchestrator.resume.index import INDEX

#: The report's file, in the project state folder (``.orchestrator/``) of the folder the command runs from.
REPORT = INDEX / "dry-run.json"
#: With more jobs than this, a progress line goes to stderr every this many jobs.
PROGRESS_EVERY = 10


@dataclass
class Checked:
    """One job's result: its number (``None``: a single run), overrides, and the mistake if any."""

    number: int | None
    overrides: list[str]
    key: str | None = None
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None


@dataclass
class Report:
    """What a dry run found: the sweep-wide mistake, if any, and each job's result."""

    kind: str
    arguments: list[str]
    jobs: list[Checked] = field(default_factory=list)
    shared: Checked | None = None
    note: str | None = None

    @property
    def passed(self) -> bool:
        return (self.shared is None or self.shared.passed) and all(job.passed for job in self.jobs)


def run(config: DictConfig) -> int:
    """Check a single run's config; print and save the report; the exit code."""
    from orchestrator.sweep.grid import check_job

    arguments = _shown(list(config.hydra.overrides.task), config)
    report = Report("run", arguments)
    report.jobs.append(_check(None, arguments, lambda: check_job(config)))
    return _finish(config, report)


def sweep(config: DictConfig) -> int:
    """Check the shared config and every job the sweeper would start; print and save the report."""
    from orchestrator.sweep.callback import check_shared_config
    from orchestrator.sweep.grid import grid_jobs

    arguments = _shown(list(config.hydra.overrides.task), config)
    report = Report("sweep", arguments)
    report.shared = _check(None, arguments, lambda: check_shared_config(config))
    jobs: list[list[str]] | None = []
    try:
        jobs = grid_jobs(config)
        if jobs is None:
            report.kind = f"sweep by {str(config.hydra.sweeper.get('_target_')).rpartition('.')[2]}"
            jobs = _sweeper_jobs(config)
        else:
            report.kind = "grid sweep"
    except UserError as error:
        if report.shared.passed:
            report.shared = Checked(None, arguments, error.key, error.problem)
        jobs = []
    if jobs is None:
        report.note = (
            f"the sweeper {config.hydra.sweeper.get('_target_')} does not say which jobs it would start; "
            "only the config they share was checked."
        )
        jobs = []
    if report.shared.passed:
        _check_each(config, jobs, report)
    return _finish(config, report)


def _sweeper_jobs(config: DictConfig) -> list[list[str]] | None:
    """The jobs a sweeper other than Hydra's basic one would start first, if its class says."""
    from hydra.utils import get_class

    target = config.hydra.sweeper.get("_target_")
    try:
        sweeper = get_class(str(target))
    except Exception:
        return None
    jobs = getattr(sweeper, "dry_run_jobs", None)
    return None if jobs is None else jobs(config)


def _check_each(config: DictConfig, jobs: list[list[str]], report: Report) -> None:
    """Compose and check each job; a progress line on stderr every :data:`PROGRESS_EVERY` jobs."""
    from hydra.core.global_hydra import GlobalHydra

    from orchestrator.backend import check_sweep_backends, searched_backends
    from orchestrator.sweep.grid import check_job, compose_job

    loader = GlobalHydra.instance().config_loader()
    backends = searched_backends(config)
    for number, overrides in enumerate(jobs):

        def one(overrides: list[str] = overrides) -> None:
            composed = compose_job(loader, config, overrides)
            backends.add(str(composed.backend))
            check_job(composed)

        report.jobs.append(_check(number, _shown(overrides, config), one))
        done = number + 1
        if len(jobs) > PROGRESS_EVERY and (done % PROGRESS_EVERY == 0 or done == len(jobs)):
            failed = sum(not job.passed for job in report.jobs)
            print(f"dry run: {done}/{len(jobs)} jobs checked, {failed} failed", file=sys.stderr, flush=True)
    try:
        check_sweep_backends(backends, str(config.hydra.launcher.get("_target_", "")))
    except UserError as error:
        report.shared = Checked(None, report.arguments, error.key, error.problem)


def _check(number: int | None, overrides: list[str], check: Any) -> Checked:
    try:
        check()
    except UserError as error:
        return Checked(number, overrides, error.key, error.problem)
    return Checked(number, overrides)


def _shown(overrides: list[str], config: DictConfig) -> list[str]:
    """The overrides as the report shows them: secrets masked, without ``dry_run=true`` itself."""
    from orchestrator.secrets import Secrets

    kept = [o for o in overrides if o.lstrip("+~").partition("=")[0] != "dry_run"]
    return list(Secrets.of(config).overrides(kept))


def lines(report: Report) -> list[str]:
    """The printed report: one line per job, then the verdict."""
    out = []
    if report.shared is not None and not report.shared.passed:
        out.append(f"  the sweep's config  FAILED  {report.shared.key}: {report.shared.problem}")
    common = set.intersection(*(set(job.overrides) for job in report.jobs)) if len(report.jobs) > 1 else set()
    if common:
        out.insert(0, f"Every job: {' '.join(o for o in report.jobs[0].overrides if o in common)}")
    width = max((len(_own(job, common)) for job in report.jobs), default=0)
    for job in report.jobs:
        name = "run" if job.number is None else f"job {job.number}"
        result = "ok" if job.passed else f"FAILED  {job.key}: {job.problem}"
        out.append(f"  {name:<7} {_own(job, common):<{width}}  {result}")
    if report.note:
        out.append(f"Note: {report.note}")
    failed = sum(not job.passed for job in report.jobs)
    if report.kind == "run":
        verdict = "the run's config passes its checks" if report.passed else "the run's config fails"
    else:
        verdict = f"{len(report.jobs) - failed} of {len(report.jobs)} jobs pass"
        if report.shared is not None and not report.shared.passed:
            verdict += ", the config they share fails"
    out.append(f"Dry run ({report.kind}): {verdict}; nothing was trained or tracked.")
    return out


def _own(job: Checked, common: set[str]) -> str:
    return " ".join(o for o in job.overrides if o not in common) or "-"


def _finish(config: DictConfig, report: Report) -> int:
    text = lines(report)
    print("\n".join(text), flush=True)
    path = Path(str(config.hydra.runtime.cwd)) / REPORT
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**asdict(report), "passed": report.passed}, indent=2) + "\n")
        print(f"Report: {path}", flush=True)
    except OSError as error:
        print(f"The report was not saved to {path}: {error}", file=sys.stderr)
    return 0 if report.passed else EXIT_USER_ERROR
