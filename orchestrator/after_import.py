"""Run a function on a module right after it is first imported, by whatever imports it.

The host leaves some packages out of Keras's start-up (TensorFlow on JAX and
PyTorch, pandas) and finishes their set-up the moment a run imports them: it
seeds TensorFlow, or hands pandas to Keras. The finder finds nothing itself; it
wraps the module's own loader once, then leaves ``sys.meta_path``.

Example::

    after_import("tensorflow", lambda tf: tf.random.set_seed(7))
    after_import("tensorflow", None)   # forget it, if it has not run yet
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from typing import Any


def after_import(name: str, action: Callable[[Any], None] | None) -> None:
    """Call ``action(module)`` right after ``name`` is imported; replaces an earlier wish for ``name``
    that has not run yet (``None``: none). Nothing happens for a module already imported."""
    for finder in [f for f in sys.meta_path if isinstance(f, AfterImport) and f.name == name]:
        sys.meta_path.remove(finder)
    if action is not None and name not in sys.modules:
        sys.meta_path.insert(0, AfterImport(name, action))


class AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of ``name`` to call ``action`` on the module after it runs."""

    def __init__(self, name: str, action: Callable[[Any], None]):
        self.name, self.action = name, action

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module, action = spec.loader.exec_module, self.action

        def exec_and_act(module) -> None:
            exec_module(module)
            action(module)

        spec.loader.exec_module = exec_and_act  # type: ignore[method-assign]
        return spec
