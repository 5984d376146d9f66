"""A sweep killed with SIGKILL and started again ends with the trials it asked for; the failure policy.

One Optuna sweep of three trials (the basic launcher) is killed in the middle of
job 1 (the process kills itself: the ``interrupt_once`` fixture callback), then
started again with the same command: job 1 goes on in its own MLflow run, job 2
fails once and is retried, and the sweep ends with exactly three trials. Started
with another config it is refused; started again once it has ended, too.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    QUIET,
    assert_user_error,
    cli_env,
    fixture_env,
    interrupt,
    mlflow_client,
    parent_and_children,
    run_cli,
)


@dataclass
class Resumed:
    folder: Path
    sweep_dir: Path
    killed: subprocess.CompletedProcess
    changed: subprocess.CompletedProcess
    resumed: subprocess.CompletedProcess
    again: subprocess.CompletedProcess
    journal_before_again: str


#: The project's own search (``+sweep=search``), in the folder the sweep runs from.
SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: orchestrator_optuna
hydra:
  sweeper:
    params:
      optimizer.learning_rate: tag(log, interval({low}, 1e-1))
      trainer.batch_size: choice(32, 64)
"""


def search(folder: Path, low: str) -> None:
    (folder / "pyproject.toml").write_text('[tool.orchestrator]\nconfig_dir = "conf"\n')
    (folder / "conf" / "sweep").mkdir(parents=True, exist_ok=True)
    (folder / "conf" / "sweep" / "search.yaml").write_text(SEARCH.format(low=low))


def command(folder: Path) -> list[str]:
    seen = folder / "seen"
    seen.mkdir(exist_ok=True)
    return [
        "-m",
        "+experiment=mnist",
        "+sweep=search",
        *QUIET,
        "tracking.log_checkpoints=false",
        "tracking.log_model=false",
        "stages.predict=null",
        "trainer.epochs=1",
        "trainer.limit_batches=3",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.name=random",
        "hydra.sweeper.sampler.seed=5",
        "hydra.sweeper.pruner.name=none",
        "hydra.sweeper.study_name=resumed",
        "hydra.callbacks.orchestrator.retries=1",
        "hydra.callbacks.orchestrator.retry_delay=0",
        interrupt("kill", 0, 1, "KILL", folder / "killed", after=1),  # job 1, after its second batch
        f"+callbacks.seen={{name: seen, folder: '{seen}', fail_job: 2}}",
        f"hydra.sweep.dir={folder / 'sweep'}",
    ]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Resumed:
    folder = tmp_path_factory.mktemp("resumed")
    args = command(folder)
    search(folder, "1e-4")
    killed = run_cli(*args, cwd=folder, env=fixture_env())
    search(folder, "1e-3")  # the search changed in the project's preset, the command is the same
    changed = run_cli(*args, cwd=folder, env=fixture_env())
    search(folder, "1e-4")
    resumed = run_cli(*args, cwd=folder, env=fixture_env())
    journal = (folder / "sweep" / "orchestrator-jobs.jsonl").read_text()
    again = run_cli(*args, cwd=folder, env=fixture_env())
    return Resumed(folder, folder / "sweep", killed, changed, resumed, again, journal)


@pytest.mark.slow
def test_a_killed_optuna_sweep_started_again_ends_with_the_trials_it_asked_for(resumed):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from orchestrator.sweep.journal import read_journal

    assert resumed.killed.returncode == -9, resumed.killed.stderr[-3000:]
    assert resumed.resumed.returncode == 0, resumed.resumed.stderr[-4000:]
    log = resumed.resumed.stdout + resumed.resumed.stderr
    assert "goes on: 1 of its 3 trials ended, 1 continue, 1 to ask for" in log
    storage = JournalStorage(JournalFileBackend(str(resumed.sweep_dir / "optuna-journal.log")))
    trials = optuna.load_study(study_name="resumed", storage=storage).get_trials()
    assert [(t.state.name, t.user_attrs["orchestrator.job"]) for t in trials] == [
        ("COMPLETE", 0),
        ("COMPLETE", 1),
        ("COMPLETE", 2),
    ]
    jobs = read_journal(resumed.sweep_dir)
    assert [(j["number"], j["status"]) for j in jobs] == [(0, "FINISHED"), (1, "FINISHED"), (2, "FINISHED")]
    numbered = sorted(int(p.name) for p in resumed.sweep_dir.iterdir() if p.name.isdigit())
    assert numbered == [0, 1, 2]  # job numbers went on from the killed sweep's; no folder 3

    client = mlflow_client(resumed.folder)
    parents, children = parent_and_children(client, "mnist")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    by_job: dict[str, list] = {}
    for run in children:
        by_job.setdefault(run.data.tags["orchestrator.job"], []).append(run)
    # the interrupted trial went on in its own run; the others ran once each (job 2 twice, below)
    assert [len(by_job[job]) for job in ("0", "1", "2")] == [1, 1, 2]
    (interrupted,) = by_job["1"]
    assert interrupted.info.status == "FINISHED" and interrupted.data.tags.get("orchestrator.resumed")
    assert trials[1].user_attrs["mlflow.run_id"] == interrupted.info.run_id
    assert "orchestrator.resumed" not in by_job["0"][0].data.tags
    assert trials[1].value == pytest.approx(interrupted.data.metrics["objective"])


@pytest.mark.slow
def test_a_failed_job_is_retried_in_a_run_of_its_own(resumed):
    from orchestrator.sweep.journal import read_journal

    client = mlflow_client(resumed.folder)
    _, children = parent_and_children(client, "mnist")
    attempts = sorted(
        (r for r in children if r.data.tags["orchestrator.job"] == "2"), key=lambda r: r.info.start_time
    )
    assert [r.info.status for r in attempts] == ["FAILED", "FINISHED"]
    assert "job 2 fails once" in attempts[0].data.tags["orchestrator.error"]
    assert "orchestrator.attempt" not in attempts[0].data.tags
    assert attempts[1].data.tags["orchestrator.attempt"] == "2"
    (job,) = [j for j in read_journal(resumed.sweep_dir) if j["number"] == 2]
    assert (job["attempts"], job["run_id"]) == (2, attempts[1].info.run_id)
    log = resumed.resumed.stdout + resumed.resumed.stderr
    assert "Job 2 failed (attempt 1 of 2); it runs again in 0 s" in log


@pytest.mark.slow
def test_an_interrupted_sweep_started_with_another_config_is_refused_naming_what_changed(resumed):
    assert_user_error(
        resumed.changed,
        "resume",
        "hydra.sweeper.params.optimizer.learning_rate (was tag(log, interval(1e-4, 1e-1)), now "
        "tag(log, interval(1e-3, 1e-1)))",
        "resume=false",
    )


@pytest.mark.slow
def test_a_sweep_that_ended_is_not_started_again_into_its_folder(resumed):
    assert_user_error(resumed.again, "hydra.sweep.dir", str(resumed.sweep_dir), "sweep that ended")
    assert (resumed.sweep_dir / "orchestrator-jobs.jsonl").read_text() == resumed.journal_before_again


@pytest.mark.slow
def test_a_job_past_its_time_limit_fails_in_its_run_and_the_sweep_says_so(workdir):
    from orchestrator.sweep.journal import read_journal

    sweep_dir = workdir / "limited"
    result = run_cli(
        "-m",
        "+experiment=mnist",
        *QUIET,
        "trainer.epochs=100000",  # hours of training: only the limit ends it
        "trainer.limit_batches=2",
        "stages.predict=null",
        "tracking.log_checkpoints=false",
        "hydra.callbacks.orchestrator.time_limit=4",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=workdir,
    )
    assert result.returncode != 0, result.stderr[-3000:]
    (job,) = read_journal(sweep_dir)
    assert job["status"] == "FAILED" and "time limit of 4 s reached" in job["error"], job
    assert job["ended_at"] - job["started_at"] < 60
    _, (child,) = parent_and_children(mlflow_client(workdir), "mnist")
    assert child.info.status == "FAILED"
    assert (
        "time limit of 4 s reached (hydra.callbacks.orchestrator.time_limit)"
        in child.data.tags["orchestrator.error"]
    )


def test_a_time_limit_interrupts_the_attempt_that_runs_past_it():
    import threading

    from orchestrator.sweep.policy import TimeLimit, time_limit

    never = threading.Event()
    with pytest.raises(TimeLimit, match="time limit of 0.05 s reached"), time_limit(0.05):
        never.wait()
    with time_limit(None):
        assert not never.is_set()


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("retries", "-1", ["hydra.callbacks.orchestrator.retries", "0 or more"]),
        ("time_limit", "0", ["hydra.callbacks.orchestrator.time_limit", "more than 0"]),
        ("devices", "[cpu:0,gpu]", ["hydra.callbacks.orchestrator.devices", "'gpu'", "cpu:0-3"]),
        ("devices", "[0]", ["devices", "1 slot(s) for 2 jobs at once"]),
    ],
)
def test_a_mistake_in_the_failure_policy_or_the_slots_is_refused_before_any_job(workdir, key, value, words):
    result = run_cli(
        "-m", "+experiment=mnist", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        f"hydra.callbacks.orchestrator.{key}={value}", cwd=workdir,
    )  # fmt: skip
    assert_user_error(result, *words)
    assert not (workdir / "mlflow.db").exists()


def test_parallel_trials_with_the_basic_launcher_are_refused(workdir):
    result = run_cli("-m", "+experiment=mnist", "+sweep=mnist_optuna", "hydra.sweeper.n_jobs=2", cwd=workdir)
    assert_user_error(result, "hydra.sweeper.n_jobs", "hydra/launcher=joblib hydra.launcher.n_jobs=2")


@pytest.mark.parametrize("full_error", [False, True])
def test_a_mistake_found_as_the_sweep_opens_ends_the_command_before_any_job(workdir, full_error):
    """The tracker refuses the URI when it opens the parent run: Hydra would turn that into a warning and
    run every job (the sweep's clock never started: its closing line gave the machine's uptime)."""
    env = cli_env(**({"HYDRA_FULL_ERROR": "1"} if full_error else {}))
    sweep_dir = workdir / "sweep"
    result = run_cli(
        "-m", "+experiment=mnist", "seed=1,2", "tracking.uri=foo://x", f"hydra.sweep.dir={sweep_dir}",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "tracking.uri: 'foo://x' has the scheme 'foo'" in result.stderr
    if not full_error:
        assert_user_error(result, "tracking.uri")
    assert not [p for p in sweep_dir.iterdir() if p.is_dir()]  # no job folder
    assert not re.search(r"Sweep \w+: \d+ jobs", result.stdout + result.stderr)  # no closing line
