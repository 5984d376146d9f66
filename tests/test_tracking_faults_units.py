"""Tracking's fault handling, piece by piece: what counts as transient, a spool on a full disk, targets."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from orchestrator.errors import UserError
from orchestrator.tracking.spool import Spool
from orchestrator.tracking.store import is_full_disk, is_transient
from orchestrator.tracking.target import check_registered_model_name, check_target
from tests.conftest import tmpfs


def test_no_space_left_on_device_is_transient():
    assert is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert is_transient(sqlite3.OperationalError("database or disk is full"))


def test_a_full_disk_is_recognised_behind_a_wrapping_error():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as cause:
            raise RuntimeError("MLflow could not log the artifact") from cause
    except RuntimeError as wrapped:
        assert is_full_disk(wrapped) and is_transient(wrapped)


def test_an_ordinary_error_is_neither_full_disk_nor_transient():
    assert not is_full_disk(ValueError("bad value")) and not is_transient(ValueError("bad value"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs."""
    with tmpfs(tmp_path / "disk", "64k") as mount:
        yield mount


def test_a_record_the_full_disk_refuses_leaves_the_spool_readable(tiny_disk):
    spool = Spool(tiny_disk / "mlflow-spool")
    written = 0
    with pytest.raises(OSError) as failure:
        while True:
            spool.append({"op": "tags", "items": [["key", "x" * 1000]]})
            written += 1
    assert failure.value.errno == errno.ENOSPC
    records = spool.records()
    assert [r["seq"] for r in records] == list(range(written))  # all whole, none half-written
    (tiny_disk / "mlflow-spool" / "records.jsonl").write_text("")  # space again
    spool.close()
    assert spool.append({"op": "tags", "items": [["after", "1"]]}) == 0


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:1", "https://mlflow.example.org", "postgresql+psycopg2://u@h/db"]
)
def test_a_server_or_database_uri_passes_the_check(uri):
    check_target(uri)  # an unreachable server is an outage, found later, not a user error


def test_an_empty_file_and_a_new_file_are_stores_to_be(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    check_target(f"sqlite:///{tmp_path / 'empty.db'}")
    check_target(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")


@pytest.mark.parametrize("name", ["", "team/mnist", "a:b", "../up", "name/"])
def test_registered_model_names_mlflow_refuses_are_refused(name):
    with pytest.raises(UserError, match="tracking.register_model"):
        check_registered_model_name(name)


def test_an_ordinary_registered_model_name_passes():
    check_registered_model_name("mnist-classifier_v2.1")


def test_an_end_the_full_disk_kept_out_of_the_spool_reaches_mlflow_through_the_worker(tiny_disk, tmp_path):
    """The real worker and a real store: the run's records in a spool on a disk that then fills up,
    the end sent as a message; the run ends FAILED after every spooled record."""
    from orchestrator.tracking.store import open_client
    from orchestrator.tracking.worker import Worker

    client = open_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    folder = tiny_disk / "mlflow-spool"
    spool = Spool(folder)
    spool.append({"op": "start_run", "experiment": "full", "tags": {}, "run_id": None, "run_key": "k",
                  "time": 1, "tracking_uri": "sqlite://"})  # fmt: skip
    spool.append({"op": "metrics", "items": [["fit/loss", 0.5, 2, 0]]})
    for size in (1000, 0):  # to the last byte
        with pytest.raises(OSError):
            while True:
                spool.append({"op": "tags", "items": [["filler", "x" * size]]})
    with pytest.raises(OSError):
        spool.append({"op": "end", "status": "FAILED", "time": 3})
    sent: list[dict] = []
    worker = Worker(client, sent.append)
    worker.handle({"spool": str(folder), "end": {"op": "end", "status": "FAILED", "time": 3}})
    worker.deliver()
    [run] = client.search_runs([client.get_experiment_by_name("full").experiment_id])
    assert run.info.status == "FAILED" and run.data.metrics["fit/loss"] == 0.5
    assert "filler" in run.data.tags, "every spooled record came first"
    assert sent[-1]["finished"] is True and sent[-1]["run_id"] == run.info.run_id
