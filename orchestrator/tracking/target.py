"""Is the tracking URI a place MLflow can keep runs? Checked before training, without importing MLflow.

A broken target is a user error, not an outage: a misspelt scheme, an
``sqlite:`` URI SQLAlchemy cannot read, a folder or a file of other bytes where
the SQLite file should be, or somebody's own SQLite database (which MLflow
would migrate, that is, fill with its tables). Each is refused with one short
message naming where the URI came from (``tracking.uri`` or
``MLFLOW_TRACKING_URI``) before the tracking worker starts, and the file is
left as it is. A server that does not answer is an outage instead: the run
goes on and its records wait in the spool.

What counts as an MLflow store: an SQLite file that does not exist yet (its
folder is created), an empty file, an SQLite database without tables, or one
with MLflow's tables (``experiments``, ``runs``, ``alembic_version``).

``tracking.register_model`` is checked too, against the Model Registry's rules
for names (:func:`check_registered_model_name`).

Example::

    check_target("sqlite:///mlflow.db", "tracking.uri")      # fine: created on first use
    check_target("foo://x", "tracking.uri")                   # UserError: unknown scheme 'foo'
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import sqlite3
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.errors import UserError, choices_text

#: The schemes MLflow's tracking store registry knows; plugins add theirs (``mlflow.tracking_store``).
SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc")
#: The tables every MLflow SQL store has.
MLFLOW_TABLES = {"experiments", "runs", "alembic_version"}
SQLITE_HEADER = b"SQLite format 3\x00"
RIGHT = "Give a new file (sqlite:///mlflow.db), an existing MLflow store, or an http(s):// server."


def uri_source() -> str:
    """The name of the setting a URI came from: ``MLFLOW_TRACKING_URI`` when set, else ``tracking.uri``."""
    return "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "tracking.uri"


def check_target(uri: str, key: str = "tracking.uri") -> None:
    """Raise :class:`~orchestrator.errors.UserError` naming ``key`` if MLflow cannot keep runs at ``uri``."""
    scheme = urlsplit(uri).scheme.lower() if "://" in uri or uri.startswith("sqlite:") else ""
    if len(scheme) == 1:  # a Windows drive letter, c:\runs
        scheme = ""
    engine = scheme.split("+", 1)[0]
    if scheme and engine not in known_schemes():
        raise UserError(
            key,
            f"'{uri}' has the scheme '{scheme}', which MLflow has no tracking store for "
            f"(known: {choices_text(known_schemes())}). {RIGHT}",
        )
    if engine == "sqlite":
        check_sqlite(uri, key)
    elif engine in ("http", "https") and not urlsplit(uri).netloc:
        raise UserError(key, f"'{uri}' names no server (http://host:port). {RIGHT}")
    elif not scheme or engine == "file":
        path = Path(urlsplit(uri).path if engine == "file" else uri)
        if path.is_file():
            raise UserError(key, f"'{uri}' is a file; a file store is a folder (mlruns). {RIGHT}")


def known_schemes() -> set[str]:
    """MLflow's own tracking-store schemes and those its plugins register (read without importing MLflow)."""
    plugins = {entry.name for entry in metadata.entry_points(group="mlflow.tracking_store")}
    return {*SCHEMES, *plugins}


def sqlite_file(uri: str, key: str) -> Path | None:
    """The database file of an ``sqlite:`` URI (``None``: in memory); refuses what SQLAlchemy cannot read."""
    parts = urlsplit(uri)
    if not uri.startswith("sqlite://") or parts.netloc:
        raise UserError(
            key,
            f"'{uri}' is not an SQLite URI SQLAlchemy can read: write sqlite:///relative/file.db or "
            "sqlite:////absolute/file.db (three slashes, then the path).",
        )
    path = parts.path.removeprefix("/")
    return None if path in ("", ":memory:") else Path(path)


def check_sqlite(uri: str, key: str) -> None:
    """Refuse a folder, a file of other bytes or another application's database where the store should be."""
    path = sqlite_file(uri, key)
    if path is None or not path.exists():
        return
    if path.is_dir():
        raise UserError(key, f"'{uri}' names the folder {path}, not an SQLite file. {RIGHT}")
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise UserError(key, f"'{uri}': {path} cannot be read ({error.strerror}). {RIGHT}") from None
    if not header:
        return  # an empty file: MLflow creates its tables in it
    if header != SQLITE_HEADER:
        raise UserError(key, f"'{uri}': {path} is not an SQLite database; it is left as it is. {RIGHT}")
    tables = sqlite_tables(path)
    if tables is None:
        raise UserError(
            key,
            f"'{uri}': {path} cannot be read as an SQLite database (damaged?); it is left as it is. {RIGHT}",
        )
    if tables and not MLFLOW_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise UserError(
            key,
            f"'{uri}': {path} is an SQLite database of something else (tables: {shown}), not an MLflow "
            f"store; it is left as it is, never migrated. {RIGHT}",
        )


def sqlite_tables(path: Path) -> set[str] | None:
    """The table names of the SQLite database ``path``, read without writing (``None``: unreadable).

    Read-only first; then as an immutable file, which needs no ``-shm`` file (a
    WAL-mode store on a full or read-only disk).
    """
    for mode in ("mode=ro", "mode=ro&immutable=1"):
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)) as db:
                rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.Error:
            continue
        return {name for (name,) in rows}
    return None


def check_registered_model_name(name: str, key: str = "tracking.register_model") -> None:
    """Refuse a Model Registry name MLflow would refuse after training (its rules as of MLflow 3).

    Example::

        check_registered_model_name("mnist-classifier")     # fine
        check_registered_model_name("team/mnist")           # UserError: no '/' or ':'
    """
    if not name.strip():
        problem = "is empty"
    elif "/" in name or ":" in name:
        problem = "contains '/' or ':'"
    elif posixpath.normpath(name) != name or name.startswith(".."):
        problem = "would change as a file name (leading or trailing dots or spaces?)"
    else:
        return
    raise UserError(
        key,
        f"'{name}' {problem}, which the MLflow Model Registry refuses. Give a name like "
        "'mnist-classifier' (letters, digits, '-', '_', '.'), or leave it empty to only log the model.",
    )
