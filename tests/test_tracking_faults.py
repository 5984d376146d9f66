"""When tracking's surroundings break: a bad target, a killed worker, a plugin named before the tracker.

Each test runs the real CLI in a subprocess and reads the real MLflow store
back with ``MlflowClient``. The fixture plugin ``aaa_faults``
(``tests/fixtures/faults-site``) sorts before the tracker's entry point
``mlflow``; its callbacks kill the tracking worker or fill the disk mid-run.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY, cli_env, heavy_modules_imported, mlflow_client, only_run, run_cli

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
