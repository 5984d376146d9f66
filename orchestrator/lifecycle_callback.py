"""The Keras callback through which a fit stage reports its epochs to the plugins.

After every epoch it adds the optimizer's learning rate to the metrics
(``<stage>/learning_rate``: what the optimizer, or its schedule at the step
count reached, gives at the end of the epoch), writes a checkpoint (every
``trainer.checkpoint_every`` epochs), records the metrics under their logged
names, calls the ``orchestrator_after_epoch`` hook and then saves the resume
state (:mod:`orchestrator.resume`) pointing at the new checkpoint. An epoch whose
loss is NaN or infinite stops training and writes no checkpoint, so the last
one on disk is the last good state. When a fit stage continues after a kill, it
gives the other callbacks their saved state once Keras has reset them in
``on_train_begin``. Imported only when a fit stage runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from orchestrator.resume.callback_state import progress, restore_callbacks, set_progress
from orchestrator.resume.generators import set_metric_variable_values, set_rng_state


class LifecycleCallback(keras.callbacks.Callback):
    """Forwards each finished epoch to ``orchestrator_after_epoch``.

    Args:
        context: the :class:`~orchestrator.context.RunContext`.
        stage: the running :class:`~orchestrator.stage.Stage`.
        checkpoint_every: save a ``.keras`` checkpoint every this many epochs (0: never).
        others: the fit's other callbacks, whose state the resume state keeps.
        resume_state: the saved state this fit continues from, or ``None``.
    """

    def __init__(
        self, context, stage, checkpoint_every: int, others=(), resume_state=None, checkpoint_every_batches=0
    ):
        super().__init__()
        self.context = context
        self.stage = stage
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_batches = checkpoint_every_batches
        self.others = list(others)
        self.resume_state = resume_state
        self.checkpoint_dir = Path(context.output_dir) / "checkpoints"
        self.diverged: tuple[int, float] | None = None
        self.epoch = 0
        #: Batches of the current epoch trained before this ``fit`` call (a resumed epoch).
        self.batch_offset = 0
        #: The callbacks' progress at the end of the previous ``fit`` call of this stage.
        self.carried: list | None = None

    def on_train_begin(self, logs=None):
        if self.carried is not None:
            set_progress(self.others, self.carried)
        elif self.resume_state is not None:
            restore_callbacks(self.others, self.resume_state["callbacks"], Path(self.context.output_dir))
            if keras.backend.backend() != "tensorflow":
                # Keras on JAX shuffles arrays with NumPy's global generator, and its fit draws one
                # permutation while it builds the model's metrics, before this call (on PyTorch,
                # torch's generator, drawn as each epoch starts): the saved states go back in place
                # for the epoch the interrupted run would train.
                set_rng_state(self.resume_state["rng"])

    def on_train_end(self, logs=None):
        """Keep the callbacks' progress for a ``fit`` call that continues this one."""
        self.carried = progress(self.others)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        state = self.resume_state
        if state is not None and state.get("batches_done") and state["epochs_done"] == epoch:
            set_metric_variable_values(self.model, state["metric_variables"])

    def on_train_batch_end(self, batch, logs=None):
        done = self.batch_offset + batch + 1
        last = (self.params or {}).get("steps")
        if last is not None and batch + 1 >= last:
            return  # the epoch's end saves the state, after validation
        if self.checkpoint_every_batches and done % self.checkpoint_every_batches == 0:
            folder = Path(self.context.output_dir) / "resume"
            folder.mkdir(parents=True, exist_ok=True)
            checkpoint = folder / f"epoch-{self.epoch + 1:03d}-batch-{done:05d}.keras"
            self.model.save(checkpoint)
            self.context.keeper.checkpoint(self.stage, checkpoint, self.others, batches_done=done)

    def on_epoch_end(self, epoch, logs=None):
        metrics = {
            self.context.metric_name(self.stage, name): float(value)
            for name, value in (logs or {}).items()
            if _is_number(value)
        }
        learning_rate = _learning_rate(self.model)
        if learning_rate is not None:
            metrics[self.context.metric_name(self.stage, "learning_rate")] = learning_rate
        self.context.record(metrics)
        self.context.epochs_done = epoch + 1
        self.batch_offset = 0
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.diverged = (epoch, loss)
            self.model.stop_training = True
        checkpoint = None
        if self.diverged is None and self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            checkpoint = self.checkpoint_dir / f"epoch-{epoch + 1:03d}.keras"
            self.model.save(checkpoint)
            self.context.last_checkpoint = checkpoint
        keeper = self.context.keeper
        if keeper.reports_epoch(epoch):  # not heard of before a resume
            self.context.hook.orchestrator_after_epoch(
                context=self.context,
                stage=self.stage,
                epoch=epoch,
                metrics=metrics,
                checkpoint=checkpoint,
            )
            keeper.epoch_reported(epoch)
        if checkpoint is not None:
            keeper.checkpoint(self.stage, checkpoint, self.others)


def _learning_rate(model) -> float | None:
    """The optimizer's current learning rate (a schedule evaluated at its iterations)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
