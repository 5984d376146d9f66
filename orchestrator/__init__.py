"""A plugin-based experiment workflow orchestrator for Keras.

Hydra composes the configuration, pluggy plugins provide the parts (data sources,
model builders, losses, metrics, callbacks, stages) and MLflow records every run.

This package's top level is the public plugin API, documented in
docs/writing-plugins.md: a plugin imports what it needs from ``orchestrator``
and nothing from its submodules. The built-in plugins (``orchestrator_plugins``)
keep to the same rule, so anything a built-in does, a third-party plugin can do.

Example, a plugin module that adds a loss::

    from orchestrator import hookimpl

    @hookimpl
    def orchestrator_register_losses(registry):
        registry.add("scaled_mse", scaled_mse)

Importing this package is cheap: it never imports TensorFlow, Keras or MLflow,
and the names below are loaded from their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

import pluggy

PROJECT_NAME = "orchestrator"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__version__ = "0.1.0"

#: The public API beyond the markers: name -> the module that defines it.
PUBLIC: dict[str, str] = {
    # the data a source returns, and what a model builder reads of it
    "Data": "orchestrator.data",
    "model_dimensions": "orchestrator.data",
    # errors a plugin raises for a config mistake, and the helpers that word them
    "UserError": "orchestrator.errors",
    "closest": "orchestrator.errors",
    "choices_text": "orchestrator.errors",
    # what hooks and factories receive
    "RunContext": "orchestrator.context",
    "Stage": "orchestrator.stage",
    "Registry": "orchestrator.registry",
    "Sweep": "orchestrator.sweep.state",
    "Status": "orchestrator.status",
    # registering a Keras class without importing Keras; a factory whose **kwargs go to a Keras class
    "lazy": "orchestrator.factories",
    "forwards_to": "orchestrator.factories",
    # what an installed package (Keras) defines, read from its source without importing it
    "source_names": "orchestrator.source_signature",
    "source_definition": "orchestrator.source_signature",
    # reading a config entry that selects a plugin ({name: ..., **arguments})
    "split_spec": "orchestrator.config",
    # splits in any form Model.fit accepts: arrays, (x, y), (x, y, sample_weight), dicts
    "is_in_memory": "orchestrator.arrays",
    "unpack": "orchestrator.arrays",
    "take": "orchestrator.arrays",
    "select": "orchestrator.arrays",
    "length": "orchestrator.arrays",
}

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "__version__", *PUBLIC]


def __getattr__(name: str) -> Any:
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
