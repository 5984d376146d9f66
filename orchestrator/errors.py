"""Errors the user can fix: each names the config key (or plugin) and what would be right.

The entry point prints a ``UserError`` as one short paragraph and exits non-zero;
``HYDRA_FULL_ERROR=1`` shows the traceback instead.

Example::

    raise UserError("trainer.batch_size", "must be a positive integer, got 0")
"""

from __future__ import annotations

import os
import sys

#: The exit code of a user error.
EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the configuration or the environment, explained for the user.

    Args:
        key: the config key (``data.path``) or plugin (``plugin 'mine'``) at fault.
        problem: what is wrong and what would be right.
    """

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


def full_error() -> bool:
    """Whether the user asked for tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def report(error: UserError) -> None:
    """Print a user error as one short paragraph."""
    print(f"Error: {error}", file=sys.stderr)
    print("(Set HYDRA_FULL_ERROR=1 for the full traceback.)", file=sys.stderr)


def exit_on(error: UserError) -> None:
    """End the command on a user error: one paragraph and exit code 2 (the traceback under
    ``HYDRA_FULL_ERROR=1``)."""
    if full_error():
        raise error
    report(error)
    raise SystemExit(EXIT_USER_ERROR) from None


def choices_text(names) -> str:
    """``'a, b, c'`` for a message that lists what is available, or ``'(none)'``."""
    names = sorted(names)
    return ", ".join(names) if names else "(none)"


def closest(name: str, names) -> str:
    """A ``" Did you mean 'x'?"`` suffix when ``name`` looks like a typo of one of ``names``."""
    import difflib

    match = difflib.get_close_matches(str(name), list(names), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


#: Lines of a TensorFlow error message that are its traceback, not its meaning.
_NOISE = ("File ", "[[", "Detected at node", "defined at", "Graph execution error", "Traceback")

#: Phrases of Keras and TensorFlow errors -> what the user should check.
_HINTS = {
    "incompatible shapes": "the labels do not fit the model's outputs",
    "are incompatible": "the labels do not fit the model's outputs",
    "received a label value of": "a label is outside the model's classes",
    "target.shape": "the labels do not fit the loss",
}
_LABEL_HINT = (
    " Check data.one_hot (sparse_* losses and metrics take class numbers, categorical_* take"
    " one-hot rows), the loss, the metrics and the model's output size."
)


def summarize(error: BaseException) -> str:
    """``"TypeName: message"`` in one line; a TensorFlow graph traceback is cut to its last line,
    and a label/output mismatch gets a hint of what to check."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(_NOISE)]
    text = meaningful[-1] if len(lines) > 2 and meaningful else " ".join(lines)
    summary = f"{type(error).__name__}: {text}"
    if any(phrase in summary.lower() for phrase in _HINTS):
        summary += "." + _LABEL_HINT
    return summary
