"""A plugin-based experiment workflow orchestrator for Keras.

Hydra composes the configuration, pluggy plugins provide the parts (data sources,
model builders, losses, metrics, callbacks, stages) and MLflow records every run.

Example, a plugin module that adds a loss::

    from orchestrator import hookimpl

    @hookimpl
    def orchestrator_register_losses(registry):
        registry.add("scaled_mse", scaled_mse)

Importing this package is cheap: it never imports TensorFlow, Keras or MLflow.
"""

import pluggy

PROJECT_NAME = "orchestrator"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__version__ = "0.1.0"

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "Data", "UserError", "__version__"]


def __getattr__(name: str):
    # The public data types live in their own modules; import them on first use.
    if name == "Data":
        from orchestrator.data import Data

        return Data
    if name == "UserError":
        from orchestrator.errors import UserError

        return UserError
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
