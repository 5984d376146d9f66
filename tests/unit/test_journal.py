"""The sweep's journal: one record per finished job, the last of each job number winning, and the best."""

from __future__ import annotations

import pytest

from orchestrator.status import Status
from orchestrator.sweep.journal import CARRIED_OVER, FAILURES, best, describe, read_journal, record


def job(number: int, status: str = "FINISHED", objective: float | None = None, overrides=None) -> dict:
    return {
        "number": number,
        "overrides": overrides or [f"seed={number}"],
        "status": status,
        "objective": objective,
    }


def test_a_sweep_without_a_journal_has_no_jobs(tmp_path):
    assert read_journal(tmp_path / "sweep") == []


def test_recorded_jobs_read_back_by_job_number(tmp_path):
    record(tmp_path / "sweep", job(2, objective=0.2))
    record(tmp_path / "sweep", job(0, objective=0.5))
    record(tmp_path / "sweep", job(1, "FAILED"))

    assert read_journal(tmp_path / "sweep") == [
        job(0, objective=0.5),
        job(1, "FAILED"),
        job(2, objective=0.2),
    ]


def test_the_last_record_of_a_job_number_wins(tmp_path):
    record(tmp_path, job(0, "KILLED"))
    record(tmp_path, job(1, objective=0.7))
    record(tmp_path, job(0, objective=0.4))  # job 0 resumed and finished

    assert read_journal(tmp_path) == [job(0, objective=0.4), job(1, objective=0.7)]


def test_a_status_is_recorded_as_its_name(tmp_path):
    record(tmp_path, job(0, Status.PRUNED))

    assert read_journal(tmp_path)[0]["status"] == "PRUNED"


JOBS = [
    job(0, objective=0.30),
    job(1, "FAILED", objective=0.01),
    job(2, objective=0.10),
    job(3, "PRUNED", objective=0.05),
    job(4, objective=0.90),
    job(5, "KILLED", objective=0.99),
    job(6, objective=None),
]


def test_best_when_minimizing_is_the_finished_job_with_the_lowest_objective():
    assert best(JOBS, "minimize") == job(2, objective=0.10)


def test_best_when_maximizing_is_the_finished_job_with_the_highest_objective():
    assert best(JOBS, "maximize") == job(4, objective=0.90)


def test_best_of_jobs_that_all_failed_is_none():
    assert best([job(0, "FAILED", objective=0.1), job(1, "SKIPPED")], "minimize") is None


def test_failures_are_the_failed_killed_and_skipped_statuses():
    assert set(FAILURES) == {Status.FAILED, Status.KILLED, Status.SKIPPED}
    assert all(isinstance(status, Status) for status in FAILURES)


def test_carried_over_are_the_finished_and_pruned_statuses():
    assert set(CARRIED_OVER) == {Status.FINISHED, Status.PRUNED}
    assert all(isinstance(status, Status) for status in CARRIED_OVER)


@pytest.mark.parametrize(
    ("entry", "overrides", "text"),
    [
        (None, False, "none yet"),
        (job(3, objective=0.912345678), False, "job 3 = 0.912346"),
        (job(3, objective=0.5, overrides=["lr=0.1", "seed=2"]), True, "job 3 (lr=0.1 seed=2) = 0.5"),
    ],
)
def test_describe_names_the_job_and_its_objective(entry, overrides, text):
    assert describe(entry, overrides=overrides) == text
