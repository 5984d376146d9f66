"""Resume: a killed run, started again with the same command, continues in the same MLflow run.

The interruptions are real: a fixture callback (``tests/fixtures/site``) sends
the CLI's own process SIGINT (as Ctrl-C does) or SIGKILL (as a preemption or the
OOM killer does) in the middle of an epoch. Under ``deterministic=true`` the
resumed run must end with the weights and metrics of a run never interrupted.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    fixture_env,
    interrupt,
    metric_history,
    mlflow_client,
    only_run,
    parent_and_children,
    run_cli,
)

#: Three whole epochs of the bundled MNIST (94 batches each), with dropout (a seed generator to restore) and a
#: ReduceLROnPlateau whose patience counter must survive the kills: it lowers the
#: learning rate at the end of the third epoch only if its count went on.
TRAINING = [
    "+experiment=mnist",
    "seed=7",
    "deterministic=true",
    "trainer.epochs=3",
    "stages.predict=null",
    "model.dropout=0.2",
    "+callbacks.plateau={name: reduce_lr_on_plateau, monitor: loss, patience: 2, min_delta: 1, factor: 0.5}",
]


def logged_seconds(output: str, start: str, end: str) -> float:
    """Seconds between the log lines (``[2026-12-02 00:45:27,823][orchestrator][INFO] - ...``) that
    end with ``start`` and ``end``."""
    from datetime import datetime

    def when(text: str) -> datetime:
        line = next(line for line in output.splitlines() if line.endswith(text))
        return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")

    return (when(end) - when(start)).total_seconds()


def weights(path: Path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w) for w in keras.saving.load_model(path).get_weights()]


@pytest.fixture(scope="module")
def never_interrupted(tmp_path_factory) -> Path:
    """The same training, run through once (the fixture callbacks' markers already exist)."""
    folder = tmp_path_factory.mktemp("reference")
    done = folder / "done"
    done.write_text("99")
    args = [*TRAINING, interrupt("ctrl_c", 1, 30, "INT", done), interrupt("kill", 2, 50, "KILL", done)]
    result = run_cli(*args, cwd=folder, env=fixture_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.slow
def test_a_run_killed_mid_epoch_by_ctrl_c_then_sigkill_resumes_to_the_same_result(workdir, never_interrupted):
    args = [
        *TRAINING,
        interrupt("ctrl_c", 1, 30, "INT", workdir / "ctrl_c"),
        interrupt("kill", 2, 50, "KILL", workdir / "kill"),
    ]
    first = run_cli(*args, cwd=workdir, env=fixture_env())
    assert first.returncode == 130, first.stderr[-3000:]
    assert "Run the same command again to resume it" in first.stderr
    assert only_run(workdir, "mnist").info.status == "KILLED"

    second = run_cli(*args, cwd=workdir, env=fixture_env())
    assert second.returncode == -signal.SIGKILL, second.stderr[-3000:]
    assert "Resuming run" in second.stdout and "after epoch 1" in second.stdout
    assert only_run(workdir, "mnist").info.status == "RUNNING", "SIGKILL leaves no chance to end the run"

    third = run_cli(*args, cwd=workdir, env=fixture_env())
    assert third.returncode == 0, third.stderr[-3000:]
    assert "after epoch 2" in third.stdout

    run = only_run(workdir, "mnist")
    reference = only_run(never_interrupted, "mnist")
    assert run.info.status == "FINISHED"
    assert run.data.tags["orchestrator.resumed"] == "2"
    client, reference_client = mlflow_client(workdir), mlflow_client(never_interrupted)
    for key in ("fit/loss", "fit/val_loss", "fit/learning_rate", "test/loss"):
        steps = metric_history(client, run.info.run_id, key)
        assert [step for step, _ in steps] == sorted({step for step, _ in steps}), f"{key}: a step twice"
        assert steps == metric_history(reference_client, reference.info.run_id, key), key
    assert [step for step, _ in metric_history(client, run.info.run_id, "fit/loss")] == [0, 1, 2]
    rates = [value for _, value in metric_history(client, run.info.run_id, "fit/learning_rate")]
    assert rates[-1] == pytest.approx(rates[0] / 2), "ReduceLROnPlateau's patience count went on"

    (output,) = workdir.glob("outputs/*/*/model.keras")
    (expected,) = never_interrupted.glob("outputs/*/*/model.keras")
    for got, want in zip(weights(output), weights(expected), strict=True):
        np.testing.assert_array_equal(got, want)
    checkpoints = sorted(p.name for p in output.parent.glob("checkpoints/*.keras"))
    assert checkpoints == ["epoch-001.keras", "epoch-002.keras", "epoch-003.keras"]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_from_the_last_batch_checkpoint(workdir, never_interrupted):
    args = [
        *TRAINING,
        "trainer.checkpoint_every_batches=20",
        interrupt("kill", 1, 50, "KILL", workdir / "kill"),
    ]
    assert run_cli(*args, cwd=workdir, env=fixture_env()).returncode == -signal.SIGKILL
    (state,) = workdir.glob("outputs/*/*/resume/state.json")
    saved = json.loads(state.read_text())
    assert saved["batches_done"] == 40
    resumed = run_cli(*args, cwd=workdir, env=fixture_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "after batch 40 of epoch 2" in resumed.stdout

    # The stage's time adds the seconds up to the checkpoint to those of the resumed process's fit,
    # which its own log lines bracket.
    after_resume = logged_seconds(resumed.stdout, "Stage fit (fit)", "Stage test (evaluate)")
    fit_seconds = only_run(workdir, "mnist").data.metrics["time/fit_seconds"]
    assert saved["stage_seconds"] > 0, saved
    assert fit_seconds == pytest.approx(saved["stage_seconds"] + after_resume, abs=0.5), (saved, after_resume)

    run, reference = only_run(workdir, "mnist"), only_run(never_interrupted, "mnist")
    client, reference_client = mlflow_client(workdir), mlflow_client(never_interrupted)
    for key in ("fit/loss", "fit/sparse_categorical_accuracy", "fit/val_loss", "test/loss"):
        assert metric_history(client, run.info.run_id, key) == metric_history(
            reference_client, reference.info.run_id, key
        ), key
    (output,) = workdir.glob("outputs/*/*/model.keras")
    (expected,) = never_interrupted.glob("outputs/*/*/model.keras")
    for got, want in zip(weights(output), weights(expected), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_epochs_trained_again_after_a_resume_are_reported_once(workdir, never_interrupted):
    """No checkpoint before the kill: the run starts over in the same MLflow run, logging epoch 1 once."""
    args = [
        *TRAINING,
        "trainer.epochs=2",
        "trainer.checkpoint_every=2",
        interrupt("kill", 1, 10, "KILL", workdir / "kill"),
    ]
    assert run_cli(*args, cwd=workdir, env=fixture_env()).returncode == -signal.SIGKILL
    resumed = run_cli(*args, cwd=workdir, env=fixture_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "from the start" in resumed.stdout
    run, reference = only_run(workdir, "mnist"), only_run(never_interrupted, "mnist")
    client, reference_client = mlflow_client(workdir), mlflow_client(never_interrupted)
    for key in ("fit/loss", "fit/val_loss"):
        expected = metric_history(reference_client, reference.info.run_id, key)[:2]
        assert metric_history(client, run.info.run_id, key) == expected, key


@pytest.mark.slow
def test_resume_false_starts_a_new_run_and_keeps_the_killed_one(workdir):
    args = [*TRAINING, "trainer.epochs=2", interrupt("kill", 1, 2, "KILL", workdir / "kill")]
    assert run_cli(*args, cwd=workdir, env=fixture_env()).returncode == -signal.SIGKILL
    fresh = run_cli(*args, "resume=false", cwd=workdir, env=fixture_env())
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "Resuming" not in fresh.stdout
    client = mlflow_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "RUNNING"]
    assert len(list(workdir.glob("outputs/*/*/checkpoints/epoch-001.keras"))) == 2, "both runs' files stay"


@pytest.mark.slow
def test_an_unreadable_checkpoint_is_named_and_nothing_is_deleted(workdir):
    args = [*TRAINING, "trainer.epochs=2", interrupt("kill", 1, 2, "KILL", workdir / "kill")]
    assert run_cli(*args, cwd=workdir, env=fixture_env()).returncode == -signal.SIGKILL
    (checkpoint,) = workdir.glob("outputs/*/*/checkpoints/epoch-001.keras")
    checkpoint.write_bytes(b"not a keras file")
    result = run_cli(*args, cwd=workdir, env=fixture_env())
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Error: resume:" in result.stderr and str(checkpoint) in result.stderr
    assert "resume=false" in result.stderr
    assert checkpoint.exists()


@pytest.mark.slow
def test_a_killed_sweep_skips_its_finished_jobs_and_resumes_the_interrupted_one(workdir):
    args = [
        "-m",
        "+experiment=mnist",
        "seed=1,2,3",
        "trainer.epochs=2",
        "trainer.limit_batches=5",
        "stages.predict=null",
        interrupt("kill", 1, 2, "KILL", workdir / "kill", after=1),  # in job 1's second epoch
    ]
    first = run_cli(*args, cwd=workdir, env=fixture_env())
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    second = run_cli(*args, cwd=workdir, env=fixture_env())
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 finished job(s) carry over" in second.stdout
    assert "Job 0 finished before the sweep was interrupted" in second.stdout

    client = mlflow_client(workdir)
    parents, children = parent_and_children(client, "mnist")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert sorted(c.data.tags["orchestrator.job"] for c in children) == ["0", "1", "2"], "no job ran twice"
    assert all(c.info.status == "FINISHED" for c in children)
    resumed = {c.data.tags["orchestrator.job"]: c.data.tags.get("orchestrator.resumed") for c in children}
    assert resumed == {"0": None, "1": "1", "2": None}
    job_1 = next(c for c in children if c.data.tags["orchestrator.job"] == "1")
    assert [m.step for m in client.get_metric_history(job_1.info.run_id, "fit/loss")] == [0, 1]
    summary = client.download_artifacts(parents[0].info.run_id, "sweep/sweep_summary.csv", str(workdir))
    assert Path(summary).read_text().count("FINISHED") == 3
