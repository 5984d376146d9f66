"""The tracking spool: what a run logs to MLflow, kept on disk until MLflow has it.

Every metric, param, tag, artifact and the run's start and end become one JSON
line of ``<output folder>/mlflow-spool/records.jsonl``, written (and handed to the
operating system) before the logging call returns, so that a crash of the
training process loses nothing; a write the full disk refuses is undone whole. The tracking worker
(:mod:`orchestrator.tracking.worker`) delivers the records in order and notes
how far it got in ``state.json`` (with the run's id once MLflow gave one); when
every record is delivered and the run has ended, the folder is removed. A folder
that is left holds what is still to deliver: ``python -m orchestrator sync
<folder>`` delivers it (:mod:`orchestrator.tracking.sync`).

Example::

    spool = Spool(Path("outputs/2024-01-01/12-00-00/mlflow-spool"))
    spool.append({"op": "metrics", "items": [["fit/loss", 0.3, 1700000000000, 0]]})
    spool.records(start=spool.state().get("delivered", 0))
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

#: The spool's folder inside a run's (or a sweep's) output folder.
FOLDER = "mlflow-spool"
RECORDS = "records.jsonl"
STATE = "state.json"


class Spool:
    """One run's records (appended by the training process) and its delivery state (the worker's).

    Args:
        folder: the spool folder, ``<output folder>/mlflow-spool``.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.count = 0

    # -- the training process's side ------------------------------------------------

    def append(self, record: dict[str, Any]) -> int:
        """Write ``record`` with the next sequence number; return that number.

        A write that fails (``ENOSPC``: the disk is full) is undone, so the records
        already written stay readable, and the error is raised.
        """
        with self._lock:
            if self._fd is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                _drop_torn_tail(self.folder / RECORDS)
                self.count = len(self.records())
                self._fd = os.open(self.folder / RECORDS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            seq = self.count
            line = (json.dumps({"seq": seq, **record}, default=str) + "\n").encode("utf-8")
            size = os.fstat(self._fd).st_size
            try:
                written = os.write(self._fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.folder / RECORDS))
            except OSError:
                os.ftruncate(self._fd, size)  # no half line for the next record to run into
                raise
            self.count += 1
            return seq

    def sync_to_disk(self) -> None:
        """``fsync`` the records: they then survive a power cut too, not only a crash."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- the worker's side ----------------------------------------------------------

    def records(self, start: int = 0) -> list[dict[str, Any]]:
        """Every complete record with ``seq >= start``, in order (a half-written last line is skipped)."""
        path = self.folder / RECORDS
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n") or not line.strip():
                continue
            record = json.loads(line)
            if record["seq"] >= start:
                found.append(record)
        return found

    def state(self) -> dict[str, Any]:
        """``{"delivered": n, "run_id": ..., "experiment_id": ..., "results": {...}}`` so far."""
        try:
            return json.loads((self.folder / STATE).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"delivered": 0}

    def save_state(self, state: dict[str, Any]) -> None:
        """Replace ``state.json`` atomically."""
        partial = self.folder / f".{STATE}.partial"
        partial.write_text(json.dumps(state, default=str), encoding="utf-8")
        os.replace(partial, self.folder / STATE)

    def remove(self) -> None:
        """Delete the spool folder (everything in it was delivered)."""
        for name in (RECORDS, STATE, f".{STATE}.partial", "delivery.lock"):
            (self.folder / name).unlink(missing_ok=True)
        for leftover in self.folder.glob("*"):
            if leftover.is_file():
                leftover.unlink()
        try:
            self.folder.rmdir()
        except OSError:
            pass


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a kill in the middle of a write), so the next record starts a line."""
    try:
        with open(path, "rb+") as records:
            text = records.read()
            if text and not text.endswith(b"\n"):
                records.truncate(text.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def find_spools(paths: list[Path]) -> list[Path]:
    """The spool folders at or under each of ``paths``, oldest first."""
    found: set[Path] = set()
    for path in paths:
        path = Path(path)
        if path.name == FOLDER and (path / RECORDS).exists():
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.parent.resolve() for p in path.rglob(f"{FOLDER}/{RECORDS}"))
    return sorted(found, key=lambda p: (p / RECORDS).stat().st_mtime)
