"""Where an unfinished run stopped: the stages to skip, the stage to continue, and the log line."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.resume.point import ResumePoint


def point(**state) -> ResumePoint:
    saved = {"stage": "fit", "stage_index": 1, "stage_done": False, "epochs_done": 4, "batches_done": 0}
    return ResumePoint(output_dir=Path("outputs/1"), run_id="abc", state={**saved, **state})


def stopped_before_first_checkpoint() -> ResumePoint:
    return ResumePoint(output_dir=Path("outputs/1"), run_id="abc", state=None)


def test_a_run_stopped_before_its_first_checkpoint_has_no_stage_done():
    assert stopped_before_first_checkpoint().stages_done == 0


def test_the_stages_before_an_interrupted_stage_are_done():
    assert point(stage_index=1, stage_done=False).stages_done == 1


def test_a_stage_that_ended_is_done_too():
    assert point(stage_index=1, stage_done=True).stages_done == 2


def test_an_interrupted_stage_is_continued():
    assert point(stage_index=1, stage_done=False).continues(SimpleNamespace(index=1))


@pytest.mark.parametrize("index", [0, 2])
def test_another_stage_is_not_continued(index):
    assert not point(stage_index=1, stage_done=False).continues(SimpleNamespace(index=index))


def test_a_stage_that_ended_is_not_continued():
    assert not point(stage_index=1, stage_done=True).continues(SimpleNamespace(index=1))


def test_nothing_is_continued_in_a_run_stopped_before_its_first_checkpoint():
    assert not stopped_before_first_checkpoint().continues(SimpleNamespace(index=0))


def test_describe_a_run_stopped_before_its_first_checkpoint():
    assert stopped_before_first_checkpoint().describe() == (
        "from the start (it was stopped before its first checkpoint)"
    )


def test_describe_a_stage_interrupted_between_epochs():
    assert point(epochs_done=4).describe() == "stage 'fit' after epoch 4"


def test_describe_a_stage_interrupted_in_the_middle_of_an_epoch():
    assert point(epochs_done=4, batches_done=30).describe() == "stage 'fit' after batch 30 of epoch 5"


def test_describe_a_stage_that_ended():
    assert point(stage="evaluate", stage_done=True).describe() == "after stage 'evaluate'"
