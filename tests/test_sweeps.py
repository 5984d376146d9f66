"""Sweeps: Hydra multiruns with one MLflow parent run, child runs, a journal and a summary."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import assert_image, mlflow_client, parent_and_children, run_cli

pytestmark = pytest.mark.slow

#: Two short epochs per job, so that every job logs a per-epoch history.
TWO_EPOCHS = ["trainer.epochs=2", "trainer.limit_batches=3", "trainer.verbose=0"]
JOB = ["data.source=bundled", *TWO_EPOCHS]


def runs_of(folder: Path, experiment: str = "mnist"):
    client = mlflow_client(folder)
    return client, *parent_and_children(client, experiment)


def summary_rows(client, parent, folder: Path) -> list[dict[str, str]]:
    path = client.download_artifacts(parent.info.run_id, "sweep/sweep_summary.csv", str(folder))
    return list(csv.DictReader(open(path)))


def test_a_grid_sweep_has_one_parent_run_with_a_child_per_job_and_a_summary(workdir):
    result = run_cli(
        "-m", "+experiment=mnist", "optimizer.learning_rate=0.001,0.01", "seed=1,2", *JOB, cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, parents, children = runs_of(workdir)
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["orchestrator.sweep_id"] for c in children} == {
        parent.data.tags["orchestrator.sweep_id"]
    }
    assert sorted(int(c.data.tags["orchestrator.job"]) for c in children) == [0, 1, 2, 3]
    for child in children:
        assert child.info.status == "FINISHED"
        overrides = child.data.tags["orchestrator.overrides"]
        assert f"optimizer.learning_rate={child.data.params['optimizer.learning_rate']}" in overrides
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "fit/loss")]
        assert sorted(steps) == [0, 1]

    # The preset's objective: test/sparse_categorical_accuracy, maximized.
    accuracy = {c.info.run_id: c.data.metrics["test/sparse_categorical_accuracy"] for c in children}
    assert {c.info.run_id: c.data.metrics["objective"] for c in children} == accuracy
    assert accuracy[parent.data.tags["best_run_id"]] == max(accuracy.values())
    assert parent.data.metrics["best_objective"] == max(accuracy.values())
    assert parent.info.status == "FINISHED"

    rows = summary_rows(client, parent, workdir)
    assert [row["status"] for row in rows] == ["FINISHED"] * 4
    assert {row["optimizer.learning_rate"] for row in rows} == {"0.001", "0.01"}
    assert {row["run_id"] for row in rows} == {c.info.run_id for c in children}
    plot = client.download_artifacts(parent.info.run_id, "sweep/objective.png", str(workdir))
    assert_image(Path(plot))
    assert "config/sweep_config.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id, "config")]
    # Progress: a line per job start and end with the running best, then the table.
    log = result.stdout + result.stderr
    assert log.count("started: ") == 4 and log.count("Best so far: job") == 4
    assert "Jobs of sweep" in log and "job  status    objective" in log
    # The same data config: jobs 1-3 reuse the arrays job 0 read.
    assert log.count("Data: reusing the bundled data of the previous job") == 3


def test_a_minimized_objective_picks_the_child_with_the_lowest_configured_metric(workdir):
    result = run_cli(
        "-m", "+experiment=mnist", "optimizer.learning_rate=0.0001,0.001,0.01",
        "objective.metric=test/loss", "objective.direction=minimize",
        "data.source=bundled", "trainer.epochs=1", "trainer.limit_batches=2", "trainer.verbose=0",
        "stages.predict=null", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    _, parents, children = runs_of(workdir)
    losses = {c.info.run_id: c.data.metrics["test/loss"] for c in children}
    assert len(set(losses.values())) == 3, losses
    assert {c.info.run_id: c.data.metrics["objective"] for c in children} == losses
    lowest = min(losses, key=losses.get)
    assert parents[0].data.tags["best_run_id"] == lowest
    assert parents[0].data.metrics["best_objective"] == losses[lowest]


def test_a_parallel_sweep_on_a_fresh_sqlite_store_loses_no_job_or_metric(workdir):
    result = run_cli(
        "-m",
        "+experiment=mnist",
        "seed=1,2,3,4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *JOB,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, parents, children = runs_of(workdir)
    assert len(parents) == 1 and len(children) == 4
    for child in children:
        assert child.info.status == "FINISHED"
        for metric in ("fit/loss", "fit/val_loss", "fit/sparse_categorical_accuracy"):
            assert sorted(m.step for m in client.get_metric_history(child.info.run_id, metric)) == [0, 1]
        assert "test/loss" in child.data.metrics and "objective" in child.data.metrics
        assert len(client.list_artifacts(child.info.run_id, "checkpoints")) == 2
    assert {c.data.params["seed"] for c in children} == {"1", "2", "3", "4"}


def test_a_failing_job_does_not_end_the_sweep_and_the_command_exits_non_zero(workdir):
    # job 1's data file does not exist: found when its run loads the data (a config mistake in one
    # job's values would stop the sweep before the first job)
    result = run_cli(
        "-m", "+experiment=mnist", "data.path=null,/no/such/mnist.npz", *TWO_EPOCHS, "seed=3", cwd=workdir
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    client, parents, children = runs_of(workdir)
    by_job = {int(c.data.tags["orchestrator.job"]): c for c in children}
    assert by_job[0].info.status == "FINISHED"
    assert by_job[1].info.status == "FAILED"
    assert "data.path" in by_job[1].data.tags["orchestrator.error"]
    assert parents[0].info.status == "FAILED"
    rows = summary_rows(client, parents[0], workdir)
    assert [row["status"] for row in rows] == ["FINISHED", "FAILED"]
    assert "data.path" in rows[1]["error"]


def test_fail_fast_skips_the_jobs_after_the_first_failure(workdir):
    result = run_cli(
        "-m",
        "+experiment=mnist",
        "data.path=/no/such/mnist.npz,null,null",
        "hydra.callbacks.orchestrator.fail_fast=true",
        *TWO_EPOCHS,
        cwd=workdir,
    )
    assert result.returncode == 1
    client, parents, children = runs_of(workdir)
    assert len(children) == 1 and children[0].info.status == "FAILED"
    rows = summary_rows(client, parents[0], workdir)
    assert [row["status"] for row in rows] == ["FAILED", "SKIPPED", "SKIPPED"]
