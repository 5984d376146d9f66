"""Factories that import their target only when called.

Registering ``keras.losses.Huber`` directly would import Keras (and TensorFlow)
while plugins load, which would make ``--help`` and config validation slow. A
``lazy`` factory names its target by dotted path and imports it on first call.

Example::

    from orchestrator.factories import lazy

    registry.add("huber", lazy("keras.losses.Huber"))
    registry.get("huber").factory(delta=2.0)   # imports keras here
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.source_signature import source_parameters

F = TypeVar("F", bound=Callable[..., Any])


class LazyFactory:
    """A callable standing for the object at ``target`` (``"package.module.Name"``).

    Args:
        target: dotted path of a class or function.
        defaults: keyword arguments used unless the config gives others.
    """

    def __init__(self, target: str, **defaults: Any):
        self.target = target
        self.defaults = defaults
        self._resolved = None
        self._parameter_names: list[str] | None = None

    def resolve(self):
        """Import and return the target."""
        if self._resolved is None:
            module_name, _, attr = self.target.rpartition(".")
            self._resolved = getattr(importlib.import_module(module_name), attr)
        return self._resolved

    def signature(self) -> inspect.Signature:
        """The target's signature (imports it)."""
        return inspect.signature(self.resolve())

    def parameter_names(self) -> list[str] | None:
        """The target's argument names read from its source, without importing it (``None``: unknown)."""
        if self._parameter_names is None:
            self._parameter_names = source_parameters(self.target)
        return self._parameter_names

    def __call__(self, **kwargs: Any):
        return self.resolve()(**{**self.defaults, **kwargs})

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str, **defaults: Any) -> LazyFactory:
    """Shorthand for :class:`LazyFactory`."""
    return LazyFactory(target, **defaults)


def forwards_to(target: str) -> Callable[[F], F]:
    """Mark a factory whose ``**kwargs`` go on to ``target`` (a dotted path), so that their names
    are checked against ``target``'s own arguments with the rest of the config.

    Example::

        @forwards_to("keras.callbacks.CSVLogger")
        def csv_logger(context, filename: str = "history.csv", **kwargs):
            return keras.callbacks.CSVLogger(in_output_dir(context, filename), **kwargs)
    """

    def mark(factory: F) -> F:
        factory.forwards_to = target  # type: ignore[attr-defined]
        return factory

    return mark
