"""Measuring child processes: wall time, CPU time and peak memory of exactly one child.

Each measured command runs in a fresh subprocess (its own session, so a timeout
kills everything it started) with stdout and stderr in files. The parent reaps
it with ``os.wait4``, whose ``rusage`` belongs to that child alone (and to the
children it waited for), so ``ru_maxrss`` is that child's peak resident memory,
not the largest of every child so far as ``RUSAGE_CHILDREN`` would report.

Example::

    measured = run_child("A", [sys.executable, "script.py"], cwd=folder, env=child_env())
    measured.wall_seconds, measured.max_rss_mb
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Variables that would change what a measured command does; children never inherit them.
SCRUBBED_ENV = (
    "MLFLOW_TRACKING_URI",
    "HYDRA_FULL_ERROR",
    "ORCHESTRATOR_TRACE_HOOKS",
    "PYTHONPROFILEIMPORTTIME",
)
#: Keras's progress bars redraw with these; they make an stderr tail unreadable.
_PROGRESS = re.compile(r"\x1b\[[0-9;]*m|[\b\r]")


class ChildFailed(RuntimeError):
    """A measured command exited non-zero or ran out of time (the message has its stderr tail)."""


@dataclass
class Measured:
    """One finished child: what it cost, and where its output is."""

    label: str
    wall_seconds: float
    cpu_seconds: float
    max_rss_mb: float
    load_1min: float
    stdout: Path
    stderr: Path


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured command: the user's, without variables that change the run."""
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def load_1min() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_child(
    label: str,
    argv: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    logs: Path | None = None,
) -> Measured:
    """Run ``argv`` in ``cwd`` and measure it; raise :class:`ChildFailed` unless it exits 0."""
    logs = logs or cwd
    logs.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
    stdout_path, stderr_path = logs / f"{slug}.stdout", logs / f"{slug}.stderr"
    load = load_1min()
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        guard = threading.Lock()
        state = {"reaped": False, "timed_out": False}

        def kill() -> None:
            with guard:
                if not state["reaped"]:
                    state["timed_out"] = True
                    os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            # Wait without reaping, so that the timer can never signal a recycled pid; then reap.
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - started
            with guard:
                state["reaped"] = True
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    if state["timed_out"] or process.returncode != 0:
        why = f"ran past {timeout:.0f} s" if state["timed_out"] else f"exited {process.returncode}"
        raise ChildFailed(
            f"{label} {why}: {' '.join(map(str, argv))}\n(in {cwd})\n--- stderr, last lines ---\n"
            + tail(stderr_path)
        )
    return Measured(
        label=label,
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        load_1min=load,
        stdout=stdout_path,
        stderr=stderr_path,
    )


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log, progress-bar redraws removed."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(cannot read {path}: {error})"
    kept = [_PROGRESS.sub("", line) for line in text.splitlines()]
    kept = [line for line in kept if line.strip() and "━" not in line]
    return "\n".join(kept[-lines:])


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else float("nan")


def spread(values: Sequence[float]) -> tuple[float, float]:
    clean = [v for v in values if v == v]
    return (min(clean), max(clean)) if clean else (float("nan"), float("nan"))
