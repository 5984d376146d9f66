"""The Keras callback that reports a per-epoch metric to an Optuna trial and prunes it.

Unlike ``optuna-integration``'s ``KerasPruningCallback``, it does not raise
``optuna.TrialPruned``: it stops training (``model.stop_training = True``) and
marks the run ``PRUNED`` (``context.set_outcome``), so that the run ends
normally and is tracked as pruned. Imported only when a trial trains.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from orchestrator import Status, UserError

log = logging.getLogger("orchestrator.optuna")


class OptunaPruningCallback(keras.callbacks.Callback):
    """After every epoch: ``trial.report(metric, step=epoch)``; stop when ``trial.should_prune()``.

    Args:
        context: the run's :class:`~orchestrator.context.RunContext`.
        stage: the fit :class:`~orchestrator.stage.Stage` that logs ``metric``.
        trial: the job's ``optuna.trial.Trial``; ``None`` only stops training (a pruned run's later stage).
        metric: the metric as the project logs it, ``"<stage>/<Keras name>"`` (``fit/val_loss``).
    """

    def __init__(self, context: Any, stage: Any, trial: Any, metric: str | None):
        super().__init__()
        self.context = context
        self.stage = stage
        self.trial = trial
        self.metric = metric
        self.keras_name = metric.partition("/")[2] if metric else None

    def on_train_begin(self, logs=None):
        if self.trial is None:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        if self.trial is None:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.trial is None:
            self.model.stop_training = True
            return
        logs = logs or {}
        if self.keras_name not in logs:
            if self.keras_name.startswith("val_") and not any(name.startswith("val_") for name in logs):
                return  # no validation this epoch (validation_freq)
            logged = ", ".join(self.context.metric_name(self.stage, name) for name in sorted(logs))
            raise UserError(
                "hydra.sweeper.pruning_metric",
                f"the stage '{self.stage.name}' logged no metric '{self.metric}' at epoch {epoch}. "
                f"Logged: {logged or '(none)'}.",
            )
        value = float(logs[self.keras_name])
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            log.info(
                "Optuna trial %d pruned after epoch %d: %s = %.6g",
                self.trial.number,
                epoch,
                self.metric,
                value,
            )
            self.model.stop_training = True
            self.context.set_outcome(Status.PRUNED)
