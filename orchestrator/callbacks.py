"""Keras callbacks from the ``callbacks`` mapping of the config.

Each enabled entry names a registered callback and its arguments; ``null``
turns an entry off::

    callbacks:
      early_stopping: {name: early_stopping, monitor: val_loss, patience: 2}
      csv: null
"""

from __future__ import annotations

from orchestrator.config import named_entries, split_spec


def build_callbacks(context) -> list:
    """The Keras callbacks configured for this run, in config order."""
    registry = context.registries["callback"]
    callbacks = []
    for label, entry in named_entries(context.cfg.callbacks):
        name, args = split_spec(entry, f"callbacks.{label}")
        callbacks.append(registry.create(name, args, f"callbacks.{label}", context=context))
    return callbacks
