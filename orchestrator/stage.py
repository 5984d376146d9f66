"""One entry of the ``stages`` mapping, as stage kinds and lifecycle hooks receive it.

Example::

    stages:
      fit: {kind: fit, epochs: 2}      # Stage(name="fit", kind="fit", args={"epochs": 2}, index=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The splits a data source may give (``Data.train``, ``Data.validation``, ``Data.test``).
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Stage:
    """One entry of the ``stages`` mapping.

    Args:
        name: its key in ``stages``; the prefix of its metrics (``fit/loss``).
        kind: the registered stage kind (``fit``, ``evaluate``, ``predict``).
        args: the entry's other keys, passed to the stage function.
        index: its position in the run, from 0.
    """

    name: str
    kind: str
    args: dict[str, Any]
    index: int
