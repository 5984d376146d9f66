"""Opening an MLflow store safely when several processes share it.

Three problems of SQLite stores, and their cure here:

* creating a new ``mlflow.db`` runs every one of MLflow's schema migrations
  (about 1.5-2.5 s on 2 cores). The first store a given MLflow version creates is
  kept as an empty template in the user's cache folder
  (``~/.cache/keras-orchestrator``), and a new store is a copy of it. MLflow's own
  test suite does the same (its ``cached_db`` fixture). It is safe across MLflow
  versions because the template is named after the version that migrated it, its
  ``Default`` experiment is removed (MLflow recreates it with this store's artifact
  folder), and MLflow checks the schema revision of every store it opens: a copy
  that does not match is replaced by a freshly migrated store;
* several processes creating a new ``mlflow.db`` at once race on its schema
  migration: the first one to open it does so under a file lock, and turns on
  SQLite's write-ahead log (readers then never block the writer);
* concurrent writers can get ``database is locked``: every call is retried with
  backoff for up to ``RETRY_SECONDS`` instead of failing the job.

A full disk (``ENOSPC``, SQLite's "database or disk is full") is transient too:
the records wait in the spool until there is space again. A target that is not
an MLflow store is never opened (:mod:`orchestrator.tracking.target`).

Example::

    client = open_client("sqlite:///mlflow.db")
    retry(client.log_batch, run_id, metrics=[...])
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.tracking.target import check_target

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
    """An ``MlflowClient`` on ``uri`` whose store is created and migrated exactly once.

    A target that is not an MLflow store (another application's SQLite file, a
    folder) raises :class:`~orchestrator.errors.UserError` and is left untouched.
    """
    from mlflow.tracking import MlflowClient

    check_target(uri)
    database = sqlite_path(uri)
    if database is None:
        return MlflowClient(tracking_uri=uri)
    with file_lock(database.with_name(database.name + ".lock")):
        copied = not database.exists() and copy_template(database)
        client = MlflowClient(tracking_uri=uri)
        try:
            retry(client.search_experiments, max_results=1)  # creates or migrates the schema
        except Exception as error:
            if not copied:
                raise
            log.warning("The store copied from the template did not open (%s); migrating a new one.", error)
            database.unlink()
            client = MlflowClient(tracking_uri=uri)
            retry(client.search_experiments, max_results=1)
        with contextlib.closing(sqlite3.connect(database, timeout=60)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    return client


def template_path() -> Path:
    """The empty, migrated store of this MLflow version in the user's cache folder."""
    from importlib import metadata

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keras-orchestrator"
    return cache / f"mlflow-{metadata.version('mlflow')}-empty.db"


def copy_template(database: Path) -> bool:
    """Create ``database`` as a copy of the empty store template (made first if missing); whether it did.

    Any failure (a read-only cache folder, say) leaves ``database`` absent, so
    MLflow migrates a new store as it would without the template.
    """
    try:
        template = template_path()
        if not template.exists():
            make_template(template)
        database.parent.mkdir(parents=True, exist_ok=True)
        partial = database.with_name(f".{database.name}.{os.getpid()}.partial")
        shutil.copyfile(template, partial)
        os.replace(partial, database)
        return True
    except Exception as error:  # the template only saves time; without it MLflow migrates as usual
        log.debug("No MLflow store template (%s: %s)", type(error).__name__, error)
        return False


def make_template(template: Path) -> None:
    """Let MLflow create and migrate an empty store at ``template``, without its Default experiment."""
    from mlflow.tracking import MlflowClient

    template.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(template.with_name(template.name + ".lock")):
        if template.exists():
            return
        with tempfile.TemporaryDirectory(dir=template.parent) as folder:
            fresh = Path(folder) / "store.db"
            MlflowClient(tracking_uri=f"sqlite:///{fresh}").search_experiments(max_results=1)
            with contextlib.closing(sqlite3.connect(fresh)) as connection:
                connection.execute("DELETE FROM experiments")
                connection.commit()
            os.replace(fresh, template)


#: What the text of an error worth retrying contains: a locked SQLite database, a busy or unreachable server.
TRANSIENT_MARKERS = (
    "database is locked",
    "database table is locked",
    "connection refused",
    "connection aborted",
    "connection reset",
    "remote end closed",
    "failed to establish a new connection",
    "max retries exceeded",
    "timed out",
    "read timeout",
    "too many 5",
    " 502",
    " 503",
    " 504",
    " 429",
    "bad gateway",
    "service unavailable",
)
#: What the text of a full-disk error contains (SQLite says "disk I/O error" when it cannot create its
#: ``-shm`` file on a full disk).
FULL_DISK_MARKERS = (
    "no space left on device",
    "database or disk is full",
    "disk quota exceeded",
    "disk i/o error",
)
#: ``errno`` values of a full disk: space may come back, so what waits is delivered later.
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying: a locked SQLite database, a busy or unreachable server, a full disk.

    The causes of a wrapped error count too (an ``MlflowException`` raised from an ``OSError``).
    """
    if is_full_disk(error) or isinstance(error, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(error).__name__}: {error}".lower()
    return any(marker in text for marker in TRANSIENT_MARKERS)


def is_full_disk(error: BaseException | None) -> bool:
    """Whether ``error`` (or an error that caused it) says the disk is full (``ENOSPC``)."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in FULL_DISK:
            return True
        if any(marker in str(error).lower() for marker in FULL_DISK_MARKERS):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def retry(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried with jittered backoff while the error is transient.

    A full disk is not retried here: it does not clear in seconds, and the worker
    keeps what waits in the spool meanwhile.
    """
    deadline = time.monotonic() + RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if not is_transient(error) or is_full_disk(error) or time.monotonic() + delay > deadline:
                raise
            log.debug("MLflow busy (%s); retrying in %.2f s", error, delay)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
