"""Config values checked against a factory's type annotations, before anything heavy is imported.

A plugin declares the types of its arguments the ordinary way, as annotations,
and a wrong value is refused with the key and the expected type::

    def build_mlp(hidden_units: list[int] = (64, 64), dropout: float = 0.0): ...

    model: {name: mlp, hidden_units: 64}
    # Error: model.hidden_units: expected a list of int, got 64 (int).

Understood: ``int``, ``float`` (an int is accepted), ``bool``, ``str``, ``list[X]``,
``tuple[X, ...]``, ``dict[K, V]``, ``X | None``, ``Optional[X]``, unions and
``Literal[...]``; any other annotation (``Any``, a class of the plugin's own) is not
checked. Annotations that cannot be resolved are skipped.

Example::

    problem = mismatch(64, list[int])    # "expected a list of int, got 64 (int)"
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def annotations_of(factory: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of ``factory``'s parameters (``{}`` when they cannot be resolved)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation naming something not importable here: check nothing
        return {}


def mismatch(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` (``None``: it fits, or the annotation is not checked)."""
    expected = describe(annotation)
    if expected is None or fits(value, annotation):
        return None
    return f"expected {expected}, got {value!r} ({type(value).__name__})"


def fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is of ``annotation``, as far as :func:`describe` understands it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or describe(annotation) is None:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in args)
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [a for a in args if a is not Ellipsis]
        return not inner or all(fits(item, inner[0]) for item in value)
    if origin in (dict, Mapping) or annotation is dict:
        if not isinstance(value, Mapping):
            return False
        if len(args) == 2:
            return all(fits(k, args[0]) and fits(v, args[1]) for k, v in value.items())
        return True
    return True


def describe(annotation: Any) -> str | None:
    """``list[int] | None`` -> ``"a list of int, or null"``; ``None`` for annotations not checked."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    simple = {bool: "true or false", int: "an int", float: "a number", str: "a string", type(None): "null"}
    if annotation in simple:
        return simple[annotation]
    if origin in (typing.Union, types.UnionType):
        parts = [describe(arg) for arg in args]
        return None if None in parts else ", or ".join(dict.fromkeys(p for p in parts if p))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        item = describe(inner[0]) if inner else None
        return "a list" + (f" of {_plural(item)}" if item else "")
    if origin in (dict, Mapping) or annotation is dict:
        return "a mapping"
    return None


def _plural(item: str) -> str:
    return item.removeprefix("an ").removeprefix("a ")


def is_finite_number(value: Any) -> bool:
    """An int or float that is neither NaN nor infinite (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
