"""The trials of one sweep: which the sweep has, the job numbers it used, how each ended.

A trial's user attributes name the job that runs it (``orchestrator.job``) and
the sweep that asked for it (``orchestrator.sweep_id``), so that a sweep started
again after an interruption finds its own trials in a study that may hold
others', counts them toward its total and continues those that were running.

Example::

    tell(study, trial, number=3, result=job_return, sweep_dir=sweep_dir)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from orchestrator.status import Status
from orchestrator.sweep.journal import read_journal, record

log = logging.getLogger("orchestrator.optuna")

#: Trial user attributes: the job number that runs the trial, and the sweep that asked for it.
JOB_ATTR = "orchestrator.job"
SWEEP_ATTR = "orchestrator.sweep_id"


def of_sweep(trials: list[Any], sweep_id: str, resumed: bool) -> tuple[list[Any], list[Any]]:
    """``(ended, in flight)``: the sweep's trials that ended, and (when it is resumed) those that were
    running when it stopped."""
    mine = [t for t in trials if t.user_attrs.get(SWEEP_ATTR) == sweep_id]
    ended = [t for t in mine if t.state.is_finished()]
    return ended, [t for t in mine if not t.state.is_finished()] if resumed else []


def next_job_number(sweep_dir: Path, info: dict[str, Any], resumed_from: Path | None) -> int:
    """The first job number no job of this sweep has had: after the journal's, the trial file's and the
    job folders' (a resumed sweep never writes into a folder of an earlier job)."""
    numbers = [int(n) for n in info["trials"]]
    for folder in {sweep_dir, *([resumed_from] if resumed_from else [])}:
        numbers += [int(e["number"]) for e in read_journal(folder)]
        numbers += [int(p.name) for p in Path(folder).iterdir() if p.is_dir() and p.name.isdigit()]
    return max(numbers, default=-1) + 1


def tell(
    study: Any,
    trial: Any,
    number: int,
    result: Any,
    sweep_dir: Path,
    error: BaseException | None = None,
    overrides: list[str] | None = None,
) -> None:
    """Tell Optuna the job's outcome, from the sweep journal (by job number) and its return value;
    ``error``: the launch of the job raised it."""
    import optuna
    from hydra.core.utils import JobStatus

    State = optuna.trial.TrialState
    entry = {e["number"]: e for e in read_journal(sweep_dir)}.get(number, {})
    if error is not None and not entry:  # the job never got to record itself (its worker died)
        entry = {"number": number, "overrides": list(overrides or []), "status": Status.FAILED}
        record(
            sweep_dir,
            {**entry, "objective": None, "run_id": None, "error": f"{type(error).__name__}: {error}"},
        )
    if entry.get("run_id"):
        trial.set_user_attr("mlflow.run_id", entry["run_id"])
    status = entry.get("status")
    completed = result is not None and result.status == JobStatus.COMPLETED
    value = _number(result.return_value) if completed else None
    if value is None and status in (None, Status.FINISHED):
        value = _number(entry.get("objective"))
    if status == Status.PRUNED:
        study.tell(trial, state=State.PRUNED, skip_if_finished=True)
    elif status in (None, Status.FINISHED) and completed and value is not None:
        study.tell(trial, value, skip_if_finished=True)
    else:
        why = entry.get("error") or (
            "no objective (objective.metric not logged)" if status == Status.FINISHED else status
        )
        log.warning("Trial %d (job %d) failed: %s", trial.number, number, why or "job failed")
        study.tell(trial, state=State.FAIL, skip_if_finished=True)


def summary(study: Any) -> None:
    import optuna

    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
    shown = ", ".join(f"{count} {name.lower()}" for name, count in counts.items() if count)
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = (
        f"trial {study.best_trial.number} = {study.best_value:.6g} {study.best_params}"
        if completed
        else "none"
    )
    log.info("Optuna study '%s': %s. Best: %s", study.study_name, shown or "no trials", best)


def _number(value: Any) -> float | None:
    """A finite float, or ``None``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
