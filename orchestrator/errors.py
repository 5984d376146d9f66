"""Errors the user can fix: each names the config key (or plugin) and what would be right.

The entry point prints a ``UserError`` as one short paragraph and exits non-zero;
``HYDRA_FULL_ERROR=1`` shows the traceback instead.

Example::

    raise UserError("trainer.batch_size", "must be a positive integer, got 0")
"""

from __future__ import annotations


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


def choices_text(names) -> str:
    """``'a, b, c'`` for a message that lists what is available, or ``'(none)'``."""
    names = sorted(names)
    return ", ".join(names) if names else "(none)"


def closest(name: str, names) -> str:
    """A ``" Did you mean 'x'?"`` suffix when ``name`` looks like a typo of one of ``names``."""
    import difflib

    match = difflib.get_close_matches(str(name), list(names), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""
