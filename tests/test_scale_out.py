"""Scale out: one job on several devices or workers (``trainer.strategy``), many jobs on a cluster
(the ``slurm_local``, ``ray_local`` and ``ray_cluster`` launcher presets), read back from MLflow."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_env, free_port, mlflow_client, only_run, parent_and_children, run_cli

#: A short, reproducible run of the guide's example on the shipped MNIST split.
SMALL = [
    "+experiment=mnist",
    "data.source=bundled",
    "trainer.epochs=2",
    "trainer.limit_batches=5",
    "trainer.verbose=0",
    "seed=1",
    "tracking.log_model=false",
]
#: Per-replica sizes under two replicas; the single-device run gets twice these.
PER_REPLICA = ["trainer.batch_size=32", "stages.test.batch_size=64"]
GLOBAL = ["trainer.batch_size=64", "stages.test.batch_size=128"]
#: Metrics whose every epoch must agree with the single-device run.
COMPARED = ["fit/loss", "fit/val_loss", "fit/sparse_categorical_accuracy", "test/loss"]
#: Sweep jobs: one tiny epoch each.
SWEEP = ["+experiment=mnist", "data.source=bundled", "trainer.epochs=1", "trainer.limit_batches=3"]
SWEEP += ["trainer.verbose=0", "seed=1,2"]


def history(folder: Path, experiment: str = "mnist") -> dict[str, list[float]]:
    """Every epoch of the compared metrics of the only run in ``folder``'s store."""
    client, run = mlflow_client(folder), only_run(folder, experiment)
    steps = {name: client.get_metric_history(run.info.run_id, name) for name in COMPARED}
    return {name: [m.value for m in sorted(found, key=lambda m: m.step)] for name, found in steps.items()}


def assert_same_numbers(got: dict[str, list[float]], expected: dict[str, list[float]]) -> None:
    for name in COMPARED:
        assert got[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name


@pytest.fixture(scope="module")
def one_device(tmp_path_factory) -> dict[str, list[float]]:
    """The reference: the same run on one device, with the global batch sizes."""
    folder = tmp_path_factory.mktemp("one_device")
    result = run_cli(*SMALL, *GLOBAL, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return history(folder)


# -- trainer.strategy: checks before TensorFlow ------------------------------------------


def test_an_unknown_strategy_names_the_key_and_the_choices(workdir):
    result = run_cli("+experiment=mnist", "trainer.strategy=mirored", cwd=workdir)
    assert result.returncode == 2
    assert "trainer.strategy.name: unknown strategy 'mirored'. Did you mean 'mirrored'?" in result.stderr
    assert "multi_worker_mirrored" in result.stderr and "Traceback" not in result.stderr


def test_a_misspelt_strategy_argument_names_the_right_one(workdir):
    result = run_cli("+experiment=mnist", "trainer.strategy={name:mirrored,cpu_device:2}", cwd=workdir)
    assert result.returncode == 2
    assert "trainer.strategy.cpu_device: strategy 'mirrored' takes no argument 'cpu_device'." in result.stderr
    assert "Did you mean 'cpu_devices'?" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_bad_strategy_value_is_one_message_and_no_run(workdir):
    result = run_cli("+experiment=mnist", "trainer.strategy={name:mirrored,cpu_devices:0}", cwd=workdir)
    assert result.returncode == 2
    assert "trainer.strategy.cpu_devices: must be null or a number >= 1, got 0." in result.stderr
    assert "Traceback" not in result.stderr and not (workdir / "mlflow.db").exists()


# -- mirrored on two logical CPU devices -------------------------------------------------


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_gives_the_numbers_of_one_device_at_the_global_batch(workdir, one_device):
    result = run_cli(*SMALL, *PER_REPLICA, "trainer.strategy={name:mirrored,cpu_devices:2}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Global batch 64: 32 per replica x 2 replicas" in result.stdout + result.stderr
    run = only_run(workdir, "mnist")
    assert run.data.tags["distribute.strategy"] == "mirrored"
    assert run.data.tags["distribute.replicas"] == "2"
    assert_same_numbers(history(workdir), one_device)


# -- multi_worker_mirrored: two workers on 127.0.0.1 --------------------------------------


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


@pytest.mark.slow
def test_two_workers_train_as_one_run_that_only_the_chief_records(workdir, one_device):
    ports = [free_port(), free_port()]
    strategy = "trainer.strategy=multi_worker_mirrored"
    args = [sys.executable, "-m", "orchestrator", *SMALL, *PER_REPLICA, strategy]
    scratch = workdir / "tmp"
    scratch.mkdir()
    workers = []
    for index in (1, 0):
        env = cli_env(TF_CONFIG=tf_config(ports, index), TMPDIR=str(scratch), no_proxy="127.0.0.1")
        log = open(workdir / f"worker-{index}.log", "w")
        workers.append(
            (subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        )
    try:
        codes = [worker.wait(timeout=400) for worker, _ in workers]
    finally:
        for worker, log in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            log.close()
    logs = {index: (workdir / f"worker-{index}.log").read_text() for index in (0, 1)}
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "worker 1 does not track; the chief records the run" in logs[1]

    run = only_run(workdir, "mnist")  # exactly one run in the store
    assert run.data.tags["distribute.strategy"] == "multi_worker_mirrored"
    assert run.data.tags["distribute.task"] == "worker 0"
    assert run.data.tags["distribute.replicas"] == "2"
    assert_same_numbers(history(workdir), one_device)
    client = mlflow_client(workdir)
    assert len(client.list_artifacts(run.info.run_id, "checkpoints")) == 2
    # One set of files: the chief's. The other worker's temporary folder is gone.
    assert len(list((workdir / "outputs").rglob("epoch-*.keras"))) == 2
    assert len(list((workdir / "outputs").rglob("model.keras"))) == 1
    assert list(scratch.glob("orchestrator-*")) == []


# -- many jobs: launcher presets ---------------------------------------------------------


def sweep_runs(folder: Path):
    client = mlflow_client(folder)
    return client, *parent_and_children(client, "mnist")


def assert_parent_and_children(folder: Path, jobs: int) -> None:
    """One parent run, a finished child per job under it, and the sweep's report of every job."""
    import csv

    client, parents, children = sweep_runs(folder)
    assert len(parents) == 1 and len(children) == jobs
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(int(c.data.tags["orchestrator.job"]) for c in children) == list(range(jobs))
    assert all(c.info.status == "FINISHED" and "test/loss" in c.data.metrics for c in children)
    path = client.download_artifacts(parent.info.run_id, "sweep/sweep_summary.csv", str(folder))
    rows = list(csv.DictReader(open(path)))
    assert [row["status"] for row in rows] == ["FINISHED"] * jobs
    assert {row["run_id"] for row in rows} == {c.info.run_id for c in children}


@pytest.mark.slow
def test_a_sweep_on_submitit_processes_keeps_the_parent_and_child_runs(workdir):
    result = run_cli("-m", *SWEEP, "hydra/launcher=slurm_local", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_parent_and_children(workdir, jobs=2)
    assert list(workdir.glob("multirun/*/*/.submitit/*"))  # the jobs went through submitit


def ray_env(**extra: str) -> dict[str, str]:
    """Ray on loopback only (its single-machine mode), without token authentication or usage stats."""
    return cli_env(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        **extra,
    )


@pytest.mark.slow
def test_a_sweep_on_a_ray_the_launcher_starts_keeps_the_parent_and_child_runs(workdir):
    pytest.importorskip("ray")
    result = run_cli("-m", *SWEEP, "hydra/launcher=ray_local", cwd=workdir, env=ray_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert_parent_and_children(workdir, jobs=2)


@contextlib.contextmanager
def ray_head(folder: Path) -> Iterator[str]:
    """``ray start --head`` in ``folder`` (a cluster of one node); yields its address; stops it after."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}"]
    command += ["--num-cpus=2", "--include-dashboard=false", "--object-store-memory=100000000"]
    log = open(folder / "ray-head.log", "w")
    head = subprocess.Popen(
        command, cwd=folder, env=ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while "--block" not in (folder / "ray-head.log").read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not start:\n{(folder / 'ray-head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever it left behind, and only that
        head.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_a_sweep_on_a_running_ray_cluster_keeps_the_parent_and_child_runs(workdir):
    pytest.importorskip("ray")
    cluster = workdir / "cluster"
    cluster.mkdir()
    with ray_head(cluster) as address:
        result = run_cli(
            "-m", *SWEEP, "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={address}",
            cwd=workdir, env=ray_env(),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # The workers ran in the cluster's folder and still wrote to the sweep's store and journal.
    assert list(cluster.glob("multirun/*/*/0")) and not (cluster / "mlflow.db").exists()
    assert_parent_and_children(workdir, jobs=2)


def test_jobs_that_cannot_read_the_sweep_folder_get_its_state_from_the_environment(tmp_path, monkeypatch):
    from orchestrator.sweep.state import STATE, STATE_ENV, read_state

    monkeypatch.setenv(STATE_ENV, json.dumps({"mlflow.parent_run_id": "abc"}))
    assert read_state(tmp_path)["mlflow.parent_run_id"] == "abc"
    (tmp_path / STATE).write_text(json.dumps({"mlflow.parent_run_id": "from-file"}))
    assert read_state(tmp_path)["mlflow.parent_run_id"] == "from-file"
