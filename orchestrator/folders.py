"""Each run and each sweep in a folder of its own, claimed before anything is written into it.

The process that starts a run (``hydra.run.dir``) or a sweep (``hydra.sweep.dir``)
claims its folder: it creates ``.orchestrator-owner`` there, atomically, and holds a
lock on it while it lives. A folder is free when it is absent or empty.

* A folder named by time (a ``${now:...}`` pattern, as the default
  ``outputs/<date>/<time>`` is) is meant to be new for every run: when another
  process has it (two commands started in the same second), this one takes the
  next free name, ``<time>_2``, ``<time>_3``, ...
* A folder named by the user (``hydra.sweep.dir=/shared/s1``) is used as given or
  refused: a user error when a live process has it, or when it holds files of
  another run or sweep (nothing is ever written over). The one exception: the
  command's own unfinished run or sweep in that folder, being resumed.

Example::

    claim = claim_folder(Path("outputs/2024-05-01/12-00-00"), "hydra.run.dir", by_time=True)
    claim.path   # outputs/2024-05-01/12-00-00, or outputs/2024-05-01/12-00-00_2 if taken
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

#: The file that says which process owns a folder; locked while that process lives.
OWNER = ".orchestrator-owner"


@dataclass
class Claim:
    """A folder this process owns, and the open, locked owner file that proves it."""

    path: Path
    handle: Any = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Copies sent to other processes (a parallel launcher's workers) hold no lock."""
        return {**self.__dict__, "handle": None}


def _lock(handle: Any) -> bool:
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _owner_record() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})


def _describe_owner(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER).read_text())
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["started"]))
        return f"pid {owner['pid']} on {owner['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "an earlier run"


def try_claim(folder: Path, resumes: Callable[[Path], bool] = lambda path: False) -> Claim | str:
    """Claim ``folder``; or say why not (``"in use"`` or ``"not empty"``).

    ``resumes(folder)`` says whether this process resumes the run or sweep that
    left the folder; it may then take over a folder whose owner has ended.
    """
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OWNER
    try:
        handle = open(marker, "x")  # noqa: SIM115 (held, locked, while the process lives)
    except FileExistsError:
        handle = open(marker, "r+")  # noqa: SIM115
        if not _lock(handle):
            handle.close()
            return "in use"
        if not resumes(folder):
            handle.close()
            return "not empty"
    else:
        if not _lock(handle):
            handle.close()
            return "in use"
        if any(p.name != OWNER for p in folder.iterdir()):
            handle.close()
            marker.unlink(missing_ok=True)
            return "not empty"
    handle.seek(0)
    handle.truncate()
    handle.write(_owner_record())
    handle.flush()
    return Claim(folder, handle)


def claim_folder(
    wanted: Path, key: str, by_time: bool, resumes: Callable[[Path], bool] = lambda path: False
) -> Claim:
    """Claim ``wanted`` (or, ``by_time``, the next free ``wanted_N``); a :class:`UserError` at ``key``."""
    for number in range(1, 1000):
        folder = wanted if number == 1 else wanted.with_name(f"{wanted.name}_{number}")
        claim = try_claim(folder, resumes)
        if isinstance(claim, Claim):
            return claim
        if not by_time:
            break
    else:
        raise UserError(key, f"{wanted} and 998 folders named after it are taken; choose another folder.")
    if claim == "in use":
        why = f"is in use by another process ({_describe_owner(folder)})"
    elif (folder / OWNER).exists():
        why = f"already holds the files of a run or sweep that ended ({_describe_owner(folder)})"
    else:
        why = "already holds files"
    raise UserError(
        key,
        f"{wanted} {why}; a run or a sweep never writes over another's folder. Give this one a folder "
        f"of its own ({key}={wanted}-2), remove the old one, or leave {key} unset for a new "
        "time-named folder per run.",
    )


def named_by_time(pattern: Any) -> bool:
    """Whether a folder pattern as written (``outputs/${now:%H-%M-%S}``) is new for every start."""
    return "${now:" in str(pattern)


def follows_a_chief() -> bool:
    """Whether ``TF_CONFIG`` makes this process a worker that is not the chief of a multi-worker run.

    Such a worker writes its files in a temporary folder (:func:`orchestrator.distribute.worker_files`),
    so it may share a folder the user named with its chief.
    """
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task, cluster = config.get("task") or {}, config.get("cluster") or {}
        if not task:
            return False
        if "chief" in cluster:
            return task.get("type") != "chief"
        return not (task.get("type") == "worker" and int(task.get("index", 0)) == 0)
    except (ValueError, AttributeError, TypeError):
        return False
