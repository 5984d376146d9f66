"""The failure policy of a sweep's jobs: retries with a delay, and a time limit per job.

``hydra.callbacks.orchestrator`` holds it, beside ``fail_fast``:

* ``retries`` (0): a job that fails (an exception, its time limit) runs again, up
  to this many times, ``retry_delay`` seconds later, in a new MLflow child run
  tagged ``orchestrator.attempt``; a job whose config is refused before its run
  starts is not retried (it would be refused again), nor is one stopped by Ctrl-C;
* ``time_limit`` (null): seconds one attempt may take; past it the attempt fails
  with :class:`TimeLimit` (the signal ``SIGALRM`` interrupts it between two Python
  steps, such as two training batches).

Example::

    with time_limit(600):
        execute(context)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from orchestrator.errors import UserError


class TimeLimit(Exception):
    """An attempt ran past ``hydra.callbacks.orchestrator.time_limit``."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimeLimit` in the block once ``seconds`` have passed (``None``: no limit).

    Only the main thread of a process receives signals: elsewhere the block runs unlimited.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise TimeLimit(f"time limit of {seconds:g} s reached (hydra.callbacks.orchestrator.time_limit)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check(retries: Any, retry_delay: Any, limit: Any) -> None:
    """The policy's keys as numbers, or a :class:`UserError` naming the key."""
    prefix = "hydra.callbacks.orchestrator"
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UserError(
            f"{prefix}.retries",
            f"must be how many times a failed job runs again (0 or more), got {retries!r}.",
        )
    for key, value in (("retry_delay", retry_delay), ("time_limit", limit)):
        if value is None and key == "time_limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UserError(f"{prefix}.{key}", f"must be a number of seconds (0 or more), got {value!r}.")
    if limit == 0:
        raise UserError(f"{prefix}.time_limit", "must be more than 0 seconds, or null for no limit.")
