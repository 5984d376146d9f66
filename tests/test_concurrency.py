"""The same command started twice at once: each process its own folder and MLflow run, nothing shared.

The copies are real processes, released together: each imports the command line,
says it is ready, and blocks on a pipe that the test closes once all are ready.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.folders import OWNER, try_claim
from orchestrator.sweep.journal import read_journal
from tests.conftest import TINY, cli_env, fixture_env, interrupt, mlflow_client, only_run, run_cli

#: Waits, imported, on the pipe ``GO_FD``, then runs ``python -m orchestrator`` with its arguments.
WRAPPER = """
import os, sys
from orchestrator.__main__ import main
os.write(int(os.environ["READY_FD"]), b"r")
os.read(int(os.environ["GO_FD"]), 1)
sys.argv = ["orchestrator", *sys.argv[1:]]
main()
"""

EPOCHS = ["trainer.epochs=2", "trainer.limit_batches=3", "trainer.verbose=0"]
#: A time-named folder as coarse as a day, so that copies started together always collide on it.
SAME_RUN_DIR = "hydra.run.dir=outputs/${now:%Y-%m-%d}"
SAME_SWEEP_DIR = "hydra.sweep.dir=multirun/${now:%Y-%m-%d}"


def started_together(folder: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run each command in its own process, all released at the same instant; wait for all."""
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    processes = []
    for args in commands:
        env = cli_env(READY_FD=str(ready_write), GO_FD=str(go_read))
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WRAPPER, *args],
                cwd=folder,
                env=env,
                pass_fds=(ready_write, go_read),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    os.close(ready_write)
    os.close(go_read)
    for _ in commands:
        assert os.read(ready_read, 1) == b"r", "a copy ended before it was ready"
    os.close(go_write)  # every copy reads end-of-file now
    os.close(ready_read)
    results = []
    for process, args in zip(processes, commands, strict=True):
        stdout, stderr = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def runs_of(folder: Path, experiment: str = "mnist"):
    client = mlflow_client(folder)
    return client, client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def assert_complete_history(client, run, epochs: int = 2) -> None:
    """Each epoch's step logged once, in this run only."""
    for metric in ("fit/loss", "fit/val_loss"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
        assert steps == list(range(epochs)), (run.info.run_id, metric, steps)


@pytest.mark.slow
def test_two_runs_started_in_the_same_instant_get_their_own_folders_and_runs(workdir):
    command = ["+experiment=mnist", *TINY, *EPOCHS, SAME_RUN_DIR]
    results = started_together(workdir, command, command)
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    client, runs = runs_of(workdir)
    assert len(runs) == 2
    folders = [Path(run.data.tags["orchestrator.output_dir"]) for run in runs]
    first, second = sorted(folders)
    assert second == first.with_name(first.name + "_2"), "the later claim takes the next free name"
    owners = {json.loads((f / OWNER).read_text())["pid"] for f in folders}
    assert len(owners) == 2, "one process per folder"
    for run, folder in zip(runs, folders, strict=True):
        assert run.info.status == "FINISHED"
        assert_complete_history(client, run)
        assert (folder / "model.keras").exists() and (folder / ".hydra" / "config.yaml").exists()
        assert not (folder / "mlflow-spool").exists(), "every record delivered, none deleted by the other"
        checkpoints = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
        assert checkpoints == ["checkpoints/epoch-001.keras", "checkpoints/epoch-002.keras"]


@pytest.mark.slow
def test_two_sweeps_started_in_the_same_instant_get_their_own_folders_and_parent_runs(workdir):
    command = ["-m", "+experiment=mnist", *TINY, *EPOCHS, "seed=1,2", SAME_SWEEP_DIR]
    results = started_together(workdir, command, command)
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    client, runs = runs_of(workdir)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2 and len(runs) == 6
    sweep_dirs = [Path(p.data.tags["orchestrator.sweep_dir"]) for p in parents]
    assert sweep_dirs[0] != sweep_dirs[1]
    assert sorted(d.name for d in sweep_dirs)[1] == sorted(d.name for d in sweep_dirs)[0] + "_2"
    for parent, sweep_dir in zip(parents, sweep_dirs, strict=True):
        assert parent.info.status == "FINISHED"
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(r.data.tags["orchestrator.job"] for r in children) == ["0", "1"]
        assert {r.data.tags["orchestrator.sweep_id"] for r in children} == {
            parent.data.tags["orchestrator.sweep_id"]
        }
        assert {Path(r.data.tags["orchestrator.output_dir"]) for r in children} == {
            sweep_dir / "0",
            sweep_dir / "1",
        }
        journal = read_journal(sweep_dir)
        assert sorted(j["run_id"] for j in journal) == sorted(r.info.run_id for r in children)
        for child in children:
            assert child.info.status == "FINISHED"
            assert_complete_history(client, child)


@pytest.mark.slow
def test_a_sweep_never_writes_over_the_folder_of_an_earlier_sweep(workdir):
    sweep_dir = workdir / "sweeps" / "s1"
    command = [
        "-m",
        "+experiment=mnist",
        *TINY,
        "trainer.verbose=0",
        "seed=1,2",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    first = run_cli(*command, cwd=workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    again = run_cli(*command, cwd=workdir)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
    assert (
        f"hydra.sweep.dir: {sweep_dir} already holds the files of a run or sweep that ended" in again.stderr
    )
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == before
    _, runs = runs_of(workdir)
    assert len(runs) == 3, "no parent run for the refused sweep"


def test_a_folder_is_claimed_by_one_process_and_taken_over_only_to_resume(tmp_path):
    folder = tmp_path / "run"
    first = try_claim(folder)
    assert first.path == folder
    assert try_claim(folder) == "in use"
    assert try_claim(folder, resumes=lambda path: True) == "in use", "never while its owner lives"
    first.handle.close()  # the owner ends
    assert try_claim(folder) == "not empty"
    assert try_claim(folder, resumes=lambda path: True).path == folder
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    assert try_claim(tmp_path / "user") == "not empty"
    assert sorted(p.name for p in (tmp_path / "user").iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_a_run_killed_in_a_folder_you_named_resumes_there(workdir):
    folder = workdir / "runs" / "fixed"
    kill = interrupt("kill", 2, 1, "KILL", workdir / "killed")
    command = ["+experiment=mnist", *TINY, "trainer.epochs=3", "trainer.limit_batches=3", kill]
    command += [f"hydra.run.dir={folder}"]
    assert run_cli(*command, cwd=workdir, env=fixture_env()).returncode == -signal.SIGKILL
    resumed = run_cli(*command, cwd=workdir, env=fixture_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming run" in resumed.stdout
    run = only_run(workdir, "mnist")
    assert run.info.status == "FINISHED" and run.data.tags["orchestrator.output_dir"] == str(folder)
    assert_complete_history(mlflow_client(workdir), run, epochs=3)
