"""How a run ended: one enum whose values are their names."""

from __future__ import annotations

import json

from orchestrator.status import Status


def test_no_error_is_finished():
    assert Status.of_error(None) is Status.FINISHED


def test_an_exception_is_failed():
    assert Status.of_error(ValueError("bad")) is Status.FAILED


def test_ctrl_c_is_killed():
    assert Status.of_error(KeyboardInterrupt()) is Status.KILLED


def test_a_status_goes_into_json_as_its_name_and_reads_back():
    text = json.dumps({"status": Status.PRUNED})

    assert text == '{"status": "PRUNED"}'
    assert Status(json.loads(text)["status"]) is Status.PRUNED


def test_a_status_equals_its_name():
    assert Status.RUNNING == "RUNNING"
    assert "KILLED" in Status.unfinished()


def test_the_statuses_a_new_start_continues_are_running_and_killed():
    assert set(Status.unfinished()) == {Status.RUNNING, Status.KILLED}


def test_a_sweep_fails_on_failed_killed_and_skipped_jobs():
    assert set(Status.failures()) == {Status.FAILED, Status.KILLED, Status.SKIPPED}


def test_a_resumed_sweep_keeps_finished_and_pruned_jobs():
    assert set(Status.carried_over()) == {Status.FINISHED, Status.PRUNED}
