"""The sweep's journal: one line per finished job in ``orchestrator-jobs.jsonl``, and the best job.

Jobs append to it under a file lock, whatever launcher runs them, so the
running best, ``fail_fast`` and the final report read one record. A job that
ran records when it started and ended (``started_at``, ``ended_at``: seconds
since the epoch), how long it took and its attempts.

Example::

    record(sweep_dir, {"number": 0, "overrides": ["seed=1"], "status": "FINISHED", "objective": 0.3})
    best(read_journal(sweep_dir), "minimize")
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.status import Status

JOURNAL = "orchestrator-jobs.jsonl"
#: Job statuses that make a sweep fail (``PRUNED`` and ``FINISHED`` do not).
FAILURES = Status.failures()
#: Job statuses a resumed sweep keeps instead of running the job again.
CARRIED_OVER = Status.carried_over()


@contextlib.contextmanager
def _locked(sweep_dir: Path) -> Iterator[None]:
    """An exclusive lock on the sweep folder's journal, across processes."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: appends of one short line are atomic enough
        yield
        return
    with open(Path(sweep_dir) / f"{JOURNAL}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(sweep_dir: Path, entry: dict[str, Any]) -> None:
    """Append one finished job to the sweep's journal."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    with _locked(sweep_dir), open(Path(sweep_dir) / JOURNAL, "a") as journal:
        journal.write(json.dumps(entry, default=str) + "\n")


def read_journal(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job recorded so far, the last record of each job number winning."""
    path = Path(sweep_dir) / JOURNAL
    if not path.exists():
        return []
    with _locked(sweep_dir):
        lines = path.read_text().splitlines()
    jobs: dict[int, dict[str, Any]] = {}
    for line in lines:
        if line.strip():
            entry = json.loads(line)
            jobs[int(entry["number"])] = entry
    return [jobs[number] for number in sorted(jobs)]


def best(jobs: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The finished job with the best objective."""
    scored = [j for j in jobs if j.get("status") == Status.FINISHED and j.get("objective") is not None]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda j: j["objective"])


def describe(job: dict[str, Any] | None, overrides: bool = False) -> str:
    """``"job 3 = 0.912"`` (with its overrides when asked), or ``"none yet"``."""
    if job is None:
        return "none yet"
    shown = f" ({' '.join(job['overrides'])})" if overrides and job["overrides"] else ""
    return f"job {job['number']}{shown} = {job['objective']:.6g}"
