"""The guide's custom callback as a plugin: ``loss_history`` records the loss after every batch.

Config::

    callbacks:
      loss_history: {name: loss_history, filename: loss_history.csv}

The CSV (``epoch,batch,loss``) is written to the run's output folder and kept
among its artifacts under ``logs/``.
"""

from orchestrator import hookimpl
from orchestrator_plugins.file_callbacks import in_output_dir


def loss_history(context, filename: str = "loss_history.csv"):
    """A :class:`~orchestrator_plugins.keras_guide.callbacks.LossHistory` writing ``filename``."""
    from orchestrator_plugins.keras_guide.callbacks import LossHistory

    path = in_output_dir(context, filename)
    context.watch_artifact(path, "logs")
    return LossHistory(path)


@hookimpl
def orchestrator_register_callbacks(registry):
    registry.add("loss_history", loss_history)
