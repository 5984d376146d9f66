"""One run's resume, as one object the host calls at fixed points.

The host creates a :class:`ResumeKeeper` for every run and calls it where a run
changes state; nothing else of the host knows how resume works::

    keeper.open()                         # before the plugins hear of the run: find what it continues
    keeper.started()                      # the run is recorded in the command index
    keeper.run_id_known(run_id)           # tracking's run id, as soon as it has one
    keeper.skips(stage)                   # a stage that ended before the interruption
    keeper.before_stage(stage)            # the model as the last stage left it; the stage's clock starts
    keeper.stage_seconds()                # the stage's seconds so far, those before an interruption included
    keeper.fit_start(stage)               # where a fit stage goes on: epoch, batches, saved state
    keeper.checkpoint(stage, path, ...)   # a checkpoint was written (an epoch's end, or N batches)
    keeper.stage_ended(stage, weights)    # a stage ended: its weights and the state
    keeper.close(error)                   # how the run ended; the index entry is released

What the plugins heard (an epoch, a stage's results) is kept too, so that a
resumed run reports nothing twice: :meth:`reports_epoch`, :meth:`reports_stage`.

Example::

    keeper = ResumeKeeper(context)
    keeper.open()
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.resume.point import mark_reported, open_run, run_ended, run_started
from orchestrator.resume.state import restore_model, save_state


@dataclass(frozen=True)
class FitStart:
    """Where a fit stage starts.

    Args:
        epoch: the run's epoch count at the start of the stage (``initial_epoch`` of its first epoch).
        batches_done: batches of the interrupted epoch already trained (0: it starts at an epoch).
        state: the saved state the stage continues from, or ``None`` for a fresh stage.
    """

    epoch: int
    batches_done: int = 0
    state: dict[str, Any] | None = None


class ResumeKeeper:
    """What a kill would lose is kept, and what a new start of the command continues is found."""

    def __init__(self, context):
        self.context = context
        #: When the current stage's clock started (``perf_counter``), and the seconds it carries over
        #: from before an interruption.
        self._clock: tuple[float, float] = (time.perf_counter(), 0.0)

    @property
    def point(self):
        """Where the run being continued stopped (``context.resume``), or ``None`` for a new run."""
        return self.context.resume

    def open(self) -> None:
        """Claim the command's index entry and find the run to continue (sets ``context.resume``)."""
        open_run(self.context)

    def started(self) -> None:
        """Record the run in the index once the plugins (tracking) have opened it."""
        run_started(self.context)

    def run_id_known(self, run_id: str) -> None:
        """Tracking learnt the run's id (``context.set_run_id``): a new start of the command reopens it."""
        if self.context.index is not None and self.context.index.claimed:
            self.context.index.write(run_id=run_id)

    def skips(self, stage) -> bool:
        """Whether ``stage`` ended before the interruption (a resumed run does not run it again)."""
        return self.point is not None and stage.index < self.point.stages_done

    def before_stage(self, stage) -> None:
        """A resumed run's first stage after those skipped starts from the saved model."""
        continues = self.point is not None and self.point.continues(stage)
        if self.point is not None and not continues:
            restore_model(self.context)
        carried = float(self.point.state.get("stage_seconds", 0.0)) if continues else 0.0
        self._clock = (time.perf_counter(), carried)

    def stage_seconds(self) -> float:
        """Seconds the current stage has taken: since :meth:`before_stage`, plus, in a resumed run,
        those up to the checkpoint it continues from (work redone after a kill counts once)."""
        started, carried = self._clock
        return carried + time.perf_counter() - started

    def fit_start(self, stage) -> FitStart:
        """Where ``stage`` starts; a stage interrupted mid-way gets the model and generators back."""
        point = self.point
        if point is None or not point.continues(stage):
            return FitStart(epoch=self.context.epochs_done)
        restore_model(self.context)
        state = point.state
        return FitStart(
            epoch=state["stage_start_epoch"], batches_done=state.get("batches_done", 0), state=state
        )

    def checkpoint(self, stage, path: Path, callbacks: list, batches_done: int = 0) -> None:
        """A checkpoint of ``stage`` was written: the state now points at it."""
        save_state(
            self.context,
            stage,
            stage_done=False,
            weights=path,
            callbacks=callbacks,
            batches_done=batches_done,
            seconds=self.stage_seconds(),
        )

    def stage_ended(self, stage, weights: Path | None) -> None:
        """``stage`` ended; ``weights`` is the model after it (``None``: a stage that changes nothing)."""
        save_state(self.context, stage, stage_done=True, weights=weights, seconds=self.stage_seconds())

    def reports_epoch(self, epoch: int) -> bool:
        """Whether the plugins have not heard of ``epoch`` yet (a resumed run trains some again)."""
        return epoch > self.context.reported["epoch"]

    def epoch_reported(self, epoch: int) -> None:
        mark_reported(self.context, epoch=epoch)

    def reports_stage(self, stage) -> bool:
        """Whether the plugins have not heard of ``stage``'s results yet."""
        return stage.index not in self.context.reported["stages"]

    def stage_reported(self, stage) -> None:
        mark_reported(self.context, stage=stage.index)

    def close(self, error: BaseException | None) -> None:
        """Record how the run ended in the index and release its entry."""
        run_ended(self.context, error)
