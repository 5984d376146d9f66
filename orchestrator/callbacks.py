"""Keras callbacks from the ``callbacks`` mapping of the config.

Each enabled entry names a registered callback and its arguments; ``null``
turns an entry off::

    callbacks:
      early_stopping: {name: early_stopping, monitor: val_loss, patience: 2}
      csv: null
"""

from __future__ import annotations


def build_callbacks(context) -> list:
    """The Keras callbacks configured for this run (``context.spec.callbacks``), in config order."""
    registry = context.registries["callback"]
    return [
        registry.create(entry.name, entry.arguments(), entry.key, context=context)
        for entry in context.spec.callbacks
    ]
