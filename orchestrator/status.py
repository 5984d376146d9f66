"""How a run, a sweep job or a trial ended: one enum instead of bare strings.

``Status`` is a ``StrEnum``, so a value compares equal to its name, goes into
JSON as it is, and reads back with ``Status(text)``.

Example::

    context.set_outcome(Status.PRUNED)
    if job["status"] in Status.failures(): ...
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """The end of a run or of a sweep job, as MLflow, the sweep journal and the resume index record it."""

    #: Still going, or stopped without a word (SIGKILL, a lost machine): a new start resumes it.
    RUNNING = "RUNNING"
    #: Ended normally.
    FINISHED = "FINISHED"
    #: Ended by an error.
    FAILED = "FAILED"
    #: Stopped by Ctrl-C or SIGTERM: a new start resumes it.
    KILLED = "KILLED"
    #: Stopped early on purpose (an Optuna pruner): ended normally, recorded as pruned.
    PRUNED = "PRUNED"
    #: A sweep job that never ran (``fail_fast`` after a failure).
    SKIPPED = "SKIPPED"

    @classmethod
    def failures(cls) -> tuple[Status, ...]:
        """The job statuses that make a sweep fail."""
        return (cls.FAILED, cls.KILLED, cls.SKIPPED)

    @classmethod
    def unfinished(cls) -> tuple[Status, ...]:
        """The statuses a new start of the same command continues."""
        return (cls.RUNNING, cls.KILLED)

    @classmethod
    def carried_over(cls) -> tuple[Status, ...]:
        """The job statuses a resumed sweep keeps instead of running the job again."""
        return (cls.FINISHED, cls.PRUNED)

    @classmethod
    def of_error(cls, error: BaseException | None) -> Status:
        """``FINISHED`` without an error, ``FAILED`` for an exception, ``KILLED`` for Ctrl-C."""
        if error is None:
            return cls.FINISHED
        return cls.FAILED if isinstance(error, Exception) else cls.KILLED
