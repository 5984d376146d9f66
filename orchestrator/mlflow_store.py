"""Opening an MLflow store safely when several processes share it.

Two problems of SQLite stores under parallel jobs, and their cure here:

* several processes creating a new ``mlflow.db`` at once race on its schema
  migration: the first one to open it does so under a file lock, and turns on
  SQLite's write-ahead log (readers then never block the writer);
* concurrent writers can get ``database is locked``: every call is retried with
  backoff for up to ``RETRY_SECONDS`` instead of failing the job.

Example::

    client = open_client("sqlite:///mlflow.db")
    retry(client.log_batch, run_id, metrics=[...])
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("orchestrator.tracking")

RETRY_SECONDS = 120.0
T = TypeVar("T")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None``."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing), across processes."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_client(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri`` whose store is created and migrated exactly once."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    database = sqlite_path(uri)
    if database is None:
        return client
    with file_lock(database.with_name(database.name + ".lock")):
        retry(client.search_experiments, max_results=1)  # creates or migrates the schema
        with contextlib.closing(sqlite3.connect(database, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    return client


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying: a locked SQLite database, a busy or unreachable server."""
    text = f"{type(error).__name__}: {error}".lower()
    return any(
        marker in text
        for marker in ("database is locked", "database table is locked", "connection refused", "503", "429")
    )


def retry(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with jittered backoff while the error is transient."""
    deadline = time.monotonic() + RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not is_transient(error) or time.monotonic() + delay > deadline:
                raise
            log.debug("MLflow busy (%s); retrying in %.2f s", error, delay)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
