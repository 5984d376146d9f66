"""Small helpers for in-memory splits: ``(x, y[, sample_weight])`` tuples of arrays.

``x`` and ``y`` may be arrays, or lists or dicts of arrays (multi-input and
multi-output models), exactly as ``Model.fit`` takes them.

Example::

    x, y, sample_weight = unpack((x_train, y_train))
    first = take(x, 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_in_memory(split: Any) -> bool:
    """Whether ``split`` is an ``(x, y[, sample_weight])`` tuple rather than a dataset object."""
    return isinstance(split, tuple) and 1 <= len(split) <= 3


def unpack(split: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of a split; a dataset object comes back as ``(split, None, None)``."""
    if not is_in_memory(split):
        return split, None, None
    padded = tuple(split) + (None,) * (3 - len(split))
    return padded[0], padded[1], padded[2]


def take(x: Any, n: int) -> Any:
    """The first ``n`` samples of an array, or of each array in a list or dict."""
    return select(x, slice(0, n))


def select(x: Any, indices: Any) -> Any:
    """The samples at ``indices`` (an integer array or a slice), of an array or of each array
    in a list or dict."""
    if x is None:
        return None
    if isinstance(x, Mapping):
        return {key: select(value, indices) for key, value in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(select(value, indices) for value in x)
    if hasattr(x, "iloc"):  # a pandas DataFrame or Series
        return x.iloc[indices]
    return x[indices]


def length(x: Any) -> int | None:
    """The number of samples in an array (or the first array of a list or dict)."""
    if isinstance(x, Mapping):
        x = next(iter(x.values()), None)
    elif isinstance(x, (list, tuple)):
        x = x[0] if x else None
    return len(x) if hasattr(x, "__len__") else None
