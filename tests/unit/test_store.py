"""The store helpers: which URIs are SQLite files, which errors are worth retrying, a cross-process lock."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import sqlite3
from pathlib import Path

import pytest

from orchestrator.tracking.store import file_lock, is_transient, sqlite_path
from tests.unit.holder import Holder


def test_sqlite_path_of_an_absolute_sqlite_uri_is_its_file():
    assert sqlite_path("sqlite:////data/runs/mlflow.db") == Path("/data/runs/mlflow.db")


def test_sqlite_path_of_a_relative_sqlite_uri_is_relative():
    assert sqlite_path("sqlite:///mlflow.db") == Path("mlflow.db")


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:5000", "file:///tmp/mlruns", "postgresql://u@h/db", "sqlite://", "mlruns"]
)
def test_sqlite_path_of_any_other_uri_is_none(uri):
    assert sqlite_path(uri) is None


def locked_database_error(tmp_path: Path) -> sqlite3.OperationalError:
    """The error SQLite raises to a writer while another connection holds the write lock."""
    database = tmp_path / "busy.db"
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as owner:
        owner.execute("CREATE TABLE t (x)")
        owner.execute("BEGIN EXCLUSIVE")
        with contextlib.closing(sqlite3.connect(database, timeout=0)) as writer:
            try:
                writer.execute("INSERT INTO t VALUES (1)")
            except sqlite3.OperationalError as error:
                return error
    raise AssertionError("SQLite let a second writer in")


def test_a_locked_sqlite_database_is_transient(tmp_path):
    assert is_transient(locked_database_error(tmp_path))


def test_a_refused_connection_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connecting is refused
        with socket.socket() as client, pytest.raises(ConnectionRefusedError) as refused:
            client.connect(("127.0.0.1", port))

    assert is_transient(refused.value)


def test_a_socket_timeout_is_transient():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as client:
            client.settimeout(0.01)
            with pytest.raises(TimeoutError) as timeout:
                client.recv(1)  # the server never sends

    assert is_transient(timeout.value)


def test_an_unreachable_mlflow_server_is_transient(monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{probe.getsockname()[1]}")
        with pytest.raises(MlflowException) as unreachable:
            client.get_experiment_by_name("x")

    assert is_transient(unreachable.value)


def test_a_missing_mlflow_run_is_not_transient(mlflow_client):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as missing:
        mlflow_client.get_run("0123456789abcdef0123456789abcdef")

    assert not is_transient(missing.value)


@pytest.mark.parametrize(
    "error", [ValueError("bad value 3"), KeyError("fit/loss"), FileNotFoundError("x.png")]
)
def test_a_mistake_is_not_transient(error):
    assert not is_transient(error)


def can_lock(path: Path) -> bool:
    """Whether this process could take ``path``'s lock now (without waiting)."""
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_file_lock_excludes_another_process_until_it_lets_go(tmp_path):
    path = tmp_path / "delivery.lock"
    take = (
        "from pathlib import Path; from orchestrator.tracking.store import file_lock; "
        f"lock = file_lock(Path({str(path)!r})); lock.__enter__()"
    )

    with Holder(take, release="lock.__exit__(None, None, None)") as other:
        assert not can_lock(path)
        other.release()
        assert can_lock(path)


def test_file_lock_is_free_again_after_the_block(tmp_path):
    path = tmp_path / "delivery.lock"

    with file_lock(path):
        assert not can_lock(path)

    assert can_lock(path)


def test_file_lock_creates_its_folder(tmp_path):
    path = tmp_path / "new" / "folder" / "delivery.lock"

    with file_lock(path):
        assert path.exists()
