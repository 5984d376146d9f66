"""``dry_run=true``: a run, or every job of a sweep, checked before TensorFlow; nothing trained or tracked.

Each test runs the real CLI in an empty folder and then looks at what the folder
holds: the report ``.orchestrator/dry-run.json`` and nothing else (no MLflow
store, no ``outputs/`` or ``multirun/`` folder).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import heavy_modules_imported, run_cli

HEAVY = ("tensorflow", "keras", "mlflow")


def left_behind(folder: Path) -> list[str]:
    """What the command left in ``folder``, but for the dry run's report."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder) != Path(".orchestrator/dry-run.json")
    )


def report_of(folder: Path) -> dict:
    return json.loads((folder / ".orchestrator" / "dry-run.json").read_text())


def test_a_dry_run_of_one_run_checks_it_without_tensorflow_and_leaves_only_its_report(workdir):
    heavy, printed = heavy_modules_imported(
        ["+experiment=mnist", "trainer.epochs=3", "dry_run=true"], workdir, HEAVY
    )
    assert heavy == []
    assert "run     +experiment=mnist trainer.epochs=3  ok" in printed
    assert "the run's config passes its checks" in printed
    assert left_behind(workdir) == []
    report = report_of(workdir)
    assert report["passed"] is True and report["jobs"][0]["overrides"] == [
        "+experiment=mnist",
        "trainer.epochs=3",
    ]


def test_a_dry_run_of_a_bad_run_names_the_key_and_exits_2(workdir):
    result = run_cli("+experiment=mnist", "trainer.batch_size=0", "dry_run=true", cwd=workdir)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "FAILED  trainer.batch_size: must be 1 or more, got 0." in result.stdout
    assert "Traceback" not in result.stderr
    assert left_behind(workdir) == []
    assert report_of(workdir)["jobs"][0]["key"] == "trainer.batch_size"


def test_a_dry_run_of_a_grid_names_each_bad_job_with_its_overrides_and_key(workdir):
    args = [
        "-m",
        "+experiment=mnist",
        "trainer.epochs=1,-1",
        "optimizer.learning_rate=0.001,0.01",
        "dry_run=true",
    ]
    heavy, _ = heavy_modules_imported(args, workdir, HEAVY)
    assert heavy == []
    result = run_cli(*args, cwd=workdir)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "Every job: +experiment=mnist" in lines
    rows = [line.split() for line in lines if line.startswith("  job ")]
    assert [row[:4] for row in rows] == [
        ["job", "0", "trainer.epochs=1", "optimizer.learning_rate=0.001"],
        ["job", "1", "trainer.epochs=1", "optimizer.learning_rate=0.01"],
        ["job", "2", "trainer.epochs=-1", "optimizer.learning_rate=0.001"],
        ["job", "3", "trainer.epochs=-1", "optimizer.learning_rate=0.01"],
    ]
    assert [row[4] for row in rows] == ["ok", "ok", "FAILED", "FAILED"]
    assert all(" ".join(row[5:]) == "trainer.epochs: must be 0 or more, got -1." for row in rows[2:])
    assert "Dry run (grid sweep): 2 of 4 jobs pass; nothing was trained or tracked." in lines
    assert left_behind(workdir) == []
    report = report_of(workdir)
    assert [job["key"] for job in report["jobs"]] == [None, None, "trainer.epochs", "trainer.epochs"]
    assert report["passed"] is False


def test_a_dry_run_of_many_jobs_shows_its_progress_and_passes_with_exit_0(workdir):
    result = run_cli("-m", "+experiment=mnist", "seed=range(0,11)", "dry_run=true", cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        sum(line.startswith("  job ") and line.endswith("  ok") for line in result.stdout.splitlines()) == 11
    )
    assert "dry run: 10/11 jobs checked, 0 failed" in result.stderr
    assert "dry run: 11/11 jobs checked, 0 failed" in result.stderr
    assert "Dry run (grid sweep): 11 of 11 jobs pass" in result.stdout
    assert left_behind(workdir) == []


def test_a_dry_run_of_an_optuna_sweep_checks_its_first_trials_without_tensorflow(workdir):
    args = [
        "-m",
        "+experiment=mnist",
        "hydra/sweeper=orchestrator_optuna",
        "trainer.epochs=choice(2,-1)",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler.name=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.pruner.name=none",
        "dry_run=true",
    ]
    heavy, printed = heavy_modules_imported(args, workdir, HEAVY)
    assert heavy == []
    rows = [line.split() for line in printed.splitlines() if line.startswith("  job ")]
    epochs = [int(row[2].removeprefix("trainer.epochs=")) for row in rows]
    assert len(rows) == 4 and set(epochs) == {2, -1}
    for row, value in zip(rows, epochs, strict=True):
        assert row[3] == ("ok" if value == 2 else "FAILED"), row
    assert f"{epochs.count(2)} of 4 jobs pass" in printed
    assert [job["key"] for job in report_of(workdir)["jobs"]] == [
        None if value == 2 else "trainer.epochs" for value in epochs
    ]
    assert left_behind(workdir) == []


def test_a_dry_run_reports_a_sweeper_mistake_once_with_exit_2(workdir):
    result = run_cli(
        "-m",
        "+experiment=mnist",
        "hydra/sweeper=orchestrator_optuna",
        "hydra.sweeper.sampler.name=grid",
        "dry_run=true",
        cwd=workdir,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        "the sweep's config  FAILED  hydra.sweeper.sampler.name: must be one of tpe, random" in result.stdout
    )
    assert left_behind(workdir) == []
