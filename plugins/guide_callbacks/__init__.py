"""The guide's custom callback as a plugin: ``loss_history`` records the loss after every batch.

Config::

    callbacks:
      loss_history: {name: loss_history, filename: loss_history.csv}

The CSV (``epoch,batch,loss``) is written to the run's output folder and kept
among its artifacts under ``logs/``. The Keras callback is in ``_keras.py`` beside
this file, imported only when a run uses it.
"""

from orchestrator import hookimpl
from orchestrator_plugins.file_callbacks import in_output_dir


def loss_history(context, filename: str = "loss_history.csv"):
    """A :class:`~orchestrator_plugins.guide_callbacks._keras.LossHistory` writing ``filename``.

    Config::

        callbacks: {loss_history: {name: loss_history, filename: loss_history.csv}}
    """
    from orchestrator_plugins.guide_callbacks._keras import LossHistory

    path = in_output_dir(context, filename)
    context.watch_artifact(path, "logs")
    return LossHistory(path)


@hookimpl
def orchestrator_register_callbacks(registry):
    registry.add("loss_history", loss_history)
