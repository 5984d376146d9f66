"""When tracking's surroundings break: a bad target, a killed worker, a plugin named before the tracker.

Each test runs the real CLI in a subprocess and reads the real MLflow store
back with ``MlflowClient``. The fixture plugin ``aaa_faults``
(``tests/fixtures/faults-site``) sorts before the tracker's entry point
``mlflow``; its callbacks kill the tracking worker or fill the disk mid-run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
    TINY,
    cli_env,
    fixture_env,
    heavy_modules_imported,
    interrupt,
    mlflow_client,
    only_run,
    run_cli,
    tmpfs,
)

pytestmark = pytest.mark.slow

FAULTS_SITE = REPO / "tests" / "fixtures" / "faults-site"
RUN = ["+experiment=mnist", "trainer.verbose=0", "tracking.log_model=false"]


def faults_env(**extra: str) -> dict[str, str]:
    """The CLI's environment with the ``aaa_faults`` fixture plugin importable."""
    path = os.pathsep.join(filter(None, [str(FAULTS_SITE), os.environ.get("PYTHONPATH")]))
    return cli_env(PYTHONPATH=path, **extra)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def customers_db(path: Path) -> Path:
    """Somebody's own SQLite database, nothing to do with MLflow."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers (name) VALUES ('Ada')")
    return path


# -- a broken target is a user error ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("foo://x", "scheme 'foo'"),
        ("sqlite:mlflow.db", "not an SQLite URI"),
        ("sqlite:///random.db", "not an SQLite database"),
        ("sqlite:///folder", "names the folder"),
        ("sqlite:///customers.db", "tables: customers"),
    ],
)
def test_a_tracking_uri_that_is_no_mlflow_store_is_refused_before_training(workdir, target, reason):
    (workdir / "random.db").write_bytes(os.urandom(4096))
    (workdir / "folder").mkdir()
    customers = customers_db(workdir / "customers.db")
    before = digest(customers)
    result = run_cli(*RUN, *TINY, f"tracking.uri={target}", cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"tracking.uri: '{target}'" in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr
    assert "Stage fit" not in result.stdout + result.stderr  # refused before training
    assert digest(customers) == before  # never migrated, not a byte changed
    assert not list(workdir.glob("*.lock")) and not list(workdir.rglob("mlflow-spool"))  # no worker started


def test_a_bad_target_from_the_environment_is_named_as_mlflow_tracking_uri(workdir):
    customers = customers_db(workdir / "mlflow.db")  # where the default store would be
    before = digest(customers)
    env = cli_env(MLFLOW_TRACKING_URI=f"sqlite:///{customers}")
    result = run_cli(*RUN, *TINY, cwd=workdir, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "MLFLOW_TRACKING_URI: " in result.stderr and "not an MLflow store" in result.stderr
    assert digest(customers) == before


def test_a_bad_target_is_refused_before_tensorflow_or_mlflow_is_imported(workdir):
    imported, output = heavy_modules_imported(
        [*RUN, "tracking.uri=sqlite:///."], workdir, ("tensorflow", "keras", "mlflow")
    )
    assert imported == [], output


# -- a killed worker is replaced -------------------------------------------------------------------


def test_a_killed_tracking_worker_is_replaced_and_the_run_ends_finished_with_every_epoch_once(workdir):
    marker = workdir / "killed.pid"
    killer = f"+callbacks.killer={{name: kill_tracking_worker, epoch: 1, marker: '{marker}'}}"
    history = "+callbacks.csv={name: csv_logger, filename: history.csv}"
    result = run_cli(
        *RUN, "trainer.epochs=3", "trainer.limit_batches=5", killer, history, cwd=workdir, env=faults_env()
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    killed = int(marker.read_text())
    assert re.search(rf"tracking worker \(pid {killed}\) died \(killed by SIGKILL\); started another", output)
    assert "does not answer" not in output  # not blamed on an outage

    run = only_run(workdir, "mnist")
    assert run.info.status == "FINISHED"
    client = mlflow_client(workdir)
    output_dir = Path(run.data.tags["orchestrator.output_dir"])
    with open(output_dir / "history.csv") as handle:
        logged = list(csv.DictReader(handle))  # what Keras itself logged, epoch by epoch
    assert [int(row["epoch"]) for row in logged] == [0, 1, 2]
    for keras_name in ("loss", "val_loss", "sparse_categorical_accuracy"):
        stored = client.get_metric_history(run.info.run_id, f"fit/{keras_name}")
        assert sorted(m.step for m in stored) == [0, 1, 2], keras_name  # every epoch, exactly once
        values = [m.value for m in sorted(stored, key=lambda m: m.step)]
        assert values == pytest.approx([float(row[keras_name]) for row in logged], rel=1e-6)
    assert not (output_dir / "mlflow-spool").exists()  # everything delivered, the spool removed


# -- a full disk ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 16 MiB tmpfs of its own."""
    with tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; return the file that holds the space."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    return filler


def test_a_disk_that_fills_up_under_the_run_ends_it_with_one_message_and_keeps_what_was_written(
    workdir, small_disk
):
    filling = f"+callbacks.fill={{name: fill_disk, epoch: 1, path: '{small_disk / 'filler'}'}}"
    run_dir = small_disk / "run"
    result = run_cli(
        *RUN, "trainer.epochs=3", "trainer.limit_batches=5", f"hydra.run.dir={run_dir}", filling,
        cwd=workdir, env=faults_env(),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("is full (No space left on device)") == 1 and "Traceback" not in result.stderr
    assert f"hydra.run.dir: the disk of {run_dir} is full" in result.stderr

    run = only_run(workdir, "mnist")  # the store is on another disk: MLflow got what was written
    client = mlflow_client(workdir)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "fit/loss")] == [0]
    checkpoints = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert "checkpoints/epoch-001.keras" in checkpoints
    # the end found no space in the spool either: the worker was told it directly
    assert "ends FAILED" in result.stderr and run.info.status == "FAILED"


def test_records_a_full_store_refused_reach_mlflow_with_sync_once_there_is_space(workdir, small_disk):
    from orchestrator.tracking.store import open_client

    uri = f"sqlite:///{small_disk / 'mlflow.db'}"
    open_client(uri)  # an existing store, on a disk that then fills up
    filler = fill(small_disk)
    env = cli_env(MLFLOW_TRACKING_URI=uri)
    result = run_cli(*RUN, *TINY, "tracking.delivery_timeout=3", cwd=workdir, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # training does not depend on MLflow's disk
    assert "is full" in output and "python -m orchestrator sync" in output
    [spool] = list((workdir / "outputs").rglob("mlflow-spool"))

    filler.unlink()  # space again
    synced = run_cli("sync", str(workdir / "outputs"), cwd=workdir, env=cli_env())
    assert synced.returncode == 0 and "the run is complete" in synced.stdout, synced.stdout + synced.stderr
    assert not spool.exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "fit/loss")] == [0]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")} == {
        "checkpoints/epoch-001.keras"
    }


# -- what plugins hand over at the end --------------------------------------------------------------


def test_what_a_plugin_named_before_the_tracker_hands_over_in_after_run_is_recorded(workdir):
    result = run_cli(*RUN, *TINY, cwd=workdir, env=faults_env())
    assert result.returncode == 0, result.stdout + result.stderr
    run = only_run(workdir, "mnist")
    assert run.info.status == "FINISHED"
    assert run.data.tags["late_tag"] == "handed over in after_run"
    files = {artifact.path for artifact in mlflow_client(workdir).list_artifacts(run.info.run_id, "late")}
    assert files == {"late/late.txt"}
    late = Path(run.data.tags["orchestrator.output_dir"]) / "late.txt"
    assert run.info.end_time >= late.stat().st_mtime_ns // 1_000_000  # the run ended after the plugin
    assert re.search(r"Run mnist\S* finished in", result.stdout + result.stderr)  # the summary, still last


def test_an_invalid_registered_model_name_is_refused_before_training(workdir):
    result = run_cli(
        *RUN, *TINY, "tracking.log_model=true", "tracking.register_model=team/mnist", cwd=workdir
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "tracking.register_model: 'team/mnist' contains '/' or ':'" in result.stderr
    assert "Stage fit" not in result.stdout + result.stderr and "Traceback" not in result.stderr


# -- sync --------------------------------------------------------------------------------------------


def test_sync_of_a_file_says_it_needs_a_folder(workdir):
    file = workdir / "records.jsonl"
    file.write_text("")
    result = run_cli("sync", str(file), cwd=workdir)
    assert result.returncode == 2
    assert "sync needs a folder" in result.stderr and str(file) in result.stderr


def test_a_resumed_sweep_leaves_no_spool_for_sync_to_report(workdir):
    args = [
        "-m", "+experiment=mnist", "seed=1,2", "trainer.epochs=1", "trainer.limit_batches=5",
        "stages.predict=null", "tracking.log_model=false",
        interrupt("kill", 0, 2, "KILL", workdir / "kill", after=1),  # in job 1: the sweep dies
    ]  # fmt: skip
    first = run_cli(*args, cwd=workdir, env=fixture_env())
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    second = run_cli(*args, cwd=workdir, env=fixture_env())
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 finished job(s) carry over" in second.stdout
    assert not list(workdir.rglob("mlflow-spool"))  # the parent's records went on in its first spool
    synced = run_cli("sync", str(workdir), cwd=workdir)
    assert synced.returncode == 0 and "Nothing to deliver" in synced.stdout, synced.stdout + synced.stderr


def test_sync_removes_a_spool_whose_run_ended_and_was_delivered_before(workdir):
    """As a resumed sweep's parent left it: every record delivered, the last one the run's end."""
    from orchestrator.tracking.spool import Spool

    spool = Spool(workdir / "outputs" / "sweep" / "mlflow-spool")
    start = {"op": "start_run", "experiment": "x", "tags": {}, "run_id": None, "run_key": "k", "time": 1}
    spool.append({**start, "tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"})
    spool.append({"op": "end", "status": "FINISHED", "time": 2})
    spool.close()
    spool.save_state({"delivered": 2, "run_id": "0" * 32, "experiment_id": "1", "results": {}})
    result = run_cli("sync", str(workdir / "outputs"), cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the run is complete" in result.stdout
    assert not spool.folder.exists()
