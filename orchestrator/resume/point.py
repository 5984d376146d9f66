"""Where an unfinished run stopped, and the run's entry in the index from start to end.

Example::

    open_run(context)        # context.resume is a ResumePoint, or None for a new run
    run_started(context)
    run_ended(context, error)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.resume.index import UNFINISHED, write_json
from orchestrator.resume.state import STATE
from orchestrator.status import Status

log = logging.getLogger("orchestrator")

#: What the plugins heard already: the last epoch reported and the stages whose results were.
REPORTED = Path("resume") / "reported.json"


@dataclass
class ResumePoint:
    """Where an unfinished run stopped.

    Args:
        output_dir: its output folder.
        run_id: its MLflow run, or ``None`` when tracking was off.
        state: its ``resume/state.json``, or ``None`` when it was killed before
            its first checkpoint (it then starts over in the same run).
        count: how many times the run has been resumed, this time included.
    """

    output_dir: Path
    run_id: str | None
    state: dict[str, Any] | None
    count: int = 1
    restored: bool = False

    @property
    def stages_done(self) -> int:
        """How many stages ended (the ones before are skipped)."""
        if self.state is None:
            return 0
        return self.state["stage_index"] + (1 if self.state["stage_done"] else 0)

    def continues(self, stage) -> bool:
        """Whether ``stage`` is the fit stage that was interrupted between epochs."""
        return (
            self.state is not None
            and not self.state["stage_done"]
            and stage.index == self.state["stage_index"]
        )

    def describe(self) -> str:
        if self.state is None:
            return "from the start (it was stopped before its first checkpoint)"
        where = f"stage '{self.state['stage']}'"
        if self.state.get("batches_done"):
            where += f" after batch {self.state['batches_done']} of epoch {self.state['epochs_done'] + 1}"
        elif not self.state["stage_done"]:
            where += f" after epoch {self.state['epochs_done']}"
        else:
            where = f"after {where}"
        return where


def open_run(context) -> None:
    """Claim the command's index entry; find the run to continue (``context.resume``).

    Called before the plugins hear that the run starts, so that tracking reopens
    the same MLflow run and files go to the same output folder.
    """
    index = context.index
    distribution = getattr(context, "distribution", None)
    if distribution is not None and not distribution.chief:
        return  # the chief keeps the run's state; the other workers follow it
    if not index.claim():
        log.warning(
            "The same command is already running (lock %s); this one starts a run of its own.",
            index.path.with_suffix(".lock"),
        )
        return
    entry = index.read()
    if not context.spec.resume or not entry or entry.get("status") not in UNFINISHED:
        return
    output_dir = Path(entry["output_dir"])
    state_path = output_dir / STATE
    state = None
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text())
        except ValueError as error:
            raise UserError(
                "resume",
                f"the saved state {state_path} cannot be read ({error}); start afresh with resume=false "
                "(the run's checkpoints stay in its folder).",
            ) from error
    context.resume = ResumePoint(
        output_dir=output_dir,
        run_id=entry.get("run_id"),
        state=state,
        count=int(entry.get("resumes", 0)) + 1,
    )
    context.output_dir = output_dir
    try:
        context.reported = json.loads((output_dir / REPORTED).read_text())
    except (OSError, ValueError):
        pass
    if state is not None:
        context.metrics.update(state["metrics"])
        context.epochs_done = state["epochs_done"]
        if state.get("checkpoint"):
            context.last_checkpoint = output_dir / state["checkpoint"]
    log.info(
        "Resuming run %s %s, in %s (resume=false starts a new run instead)",
        context.resume.run_id or "(no MLflow run)",
        context.resume.describe(),
        output_dir,
    )


def mark_reported(context, epoch: int | None = None, stage: int | None = None) -> None:
    """Note that the plugins heard of ``epoch`` or of ``stage``'s results (``resume/reported.json``).

    Epochs trained again after a resume (those after the last checkpoint) and a
    stage that ended just before a kill are then not reported twice: MLflow gets
    each metric step once.
    """
    reported = context.reported
    if epoch is not None:
        reported["epoch"] = max(reported["epoch"], epoch)
    if stage is not None and stage not in reported["stages"]:
        reported["stages"].append(stage)
    write_json(Path(context.output_dir) / REPORTED, reported)


def run_started(context) -> None:
    """Record the run in the index once tracking has opened it."""
    if context.index.claimed:
        context.index.write(
            output_dir=str(context.output_dir),
            run_id=context.run_id or (context.resume.run_id if context.resume else None),
            status=Status.RUNNING,
            resumes=context.resume.count if context.resume else 0,
            pid=os.getpid(),
        )


def run_ended(context, error: BaseException | None) -> None:
    """Record how the run ended and release the index entry."""
    if not context.index.claimed:
        return
    context.index.write(
        status=Status.of_error(error), **({"run_id": context.run_id} if context.run_id else {})
    )
    context.index.release()
