"""The index of commands: which run (or sweep) a command started last, locked while it lives.

``.orchestrator/runs/<key>.json`` in the folder the command runs from; the key
is a hash of the command's overrides and, in a sweep, the sweep id.

Example::

    index = RunIndex(Path.cwd(), command_key(["seed=7"]))
    if index.claim():
        entry = index.read()
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.status import Status

#: The index of commands, in the folder they run from: ``runs/`` and ``sweeps/``.
INDEX = Path(".orchestrator")
#: Statuses of an index entry that a new start of the command continues.
UNFINISHED = Status.unfinished()


def command_key(overrides: list[str], sweep_id: str | None = None, backend: str = "tensorflow") -> str:
    """The identity of a command: its overrides (less ``resume=...``), its sweep and its Keras backend
    (a run never resumes one that trained on another backend)."""
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != "resume"]
    payload = json.dumps({"overrides": kept, "sweep": sweep_id, "backend": backend})
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that a kill leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, default=str))
    os.replace(temporary, path)


class RunIndex:
    """The index entry of one command (``kind``: ``runs`` or ``sweeps``), locked while it runs.

    Example::

        index = RunIndex(Path.cwd(), command_key(["seed=7"]))
        if index.claim():
            entry = index.read()
    """

    def __init__(self, root: Path, key: str, kind: str = "runs"):
        self.path = Path(root) / INDEX / kind / f"{key}.json"
        self._lock: Any = None
        #: Writes come from the run and from tracking's reader thread (the run id): one at a time.
        self._writing = threading.Lock()

    def claim(self) -> bool:
        """Take the entry's lock; ``False`` when a live process holds it."""
        try:
            import fcntl
        except ImportError:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        return True

    def __getstate__(self) -> dict[str, Any]:
        """Copies sent to other processes (a parallel launcher's workers) hold no lock."""
        return {**self.__dict__, "_lock": None, "_writing": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _writing=threading.Lock())

    @property
    def claimed(self) -> bool:
        return self._lock is not None

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def write(self, **entry: Any) -> None:
        with self._writing:
            write_json(self.path, {**(self.read() or {}), **entry, "updated": time.time()})

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
