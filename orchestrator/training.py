"""``context.fit``: ``Model.fit`` inside a run, the one call a fit stage makes.

Around Keras's own ``Model.fit`` it adds what every fit in a run needs, so that
a stage kind of its own (third-party included) trains exactly as the built-in
``fit`` does:

* the callbacks: those of the ``callbacks`` config, those plugins add through
  ``orchestrator_fit_callbacks``, and the host's
  :class:`~orchestrator.lifecycle_callback.LifecycleCallback` (epoch hooks,
  checkpoints, the resume state);
* epochs that continue across fit stages (``initial_epoch``);
* resume: a run continued after a kill restores the model and goes on after the
  last checkpoint, or with the rest of an interrupted epoch
  (:mod:`orchestrator.resume.epoch`);
* a loss that turns NaN or infinite stops training with a clear error naming
  the last good checkpoint.

Example, a stage kind::

    def fit_twice(context, stage, epochs: int = 1):
        train = context.split(stage, "train")
        context.fit(stage, train, epochs=epochs, validation_data=context.split(stage, "validation"))
        return {}
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from orchestrator.arrays import unpack
from orchestrator.callbacks import build_callbacks
from orchestrator.errors import UserError
from orchestrator.resume.epoch import build_metrics, rest_of_epoch

log = logging.getLogger("orchestrator")


def fit(
    context,
    stage,
    train: Any,
    *,
    epochs: int,
    batch_size: int | None = None,
    validation_data: Any = None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    class_weight: dict | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    validation_freq: int = 1,
) -> int:
    """Train ``context.model`` on ``train`` for ``epochs`` more epochs; return the epochs trained.

    ``train`` is a split as a data source gives it (arrays, a tuple with sample
    weights, a dataset); ``batch_size`` is one replica's (in-memory data only).
    """
    from orchestrator.lifecycle_callback import LifecycleCallback  # a Keras class

    trainer = context.spec.trainer
    begin = context.keeper.fit_start(stage)
    start = context.stage_start_epoch = begin.epoch
    from_plugins = context.hook.orchestrator_fit_callbacks(context=context, stage=stage)
    others = [
        *build_callbacks(context),
        *(callback for result in from_plugins for callback in (result or [])),
    ]
    lifecycle = LifecycleCallback(
        context,
        stage,
        checkpoint_every=trainer.checkpoint_every,
        checkpoint_every_batches=trainer.checkpoint_every_batches,
        others=others,
        resume_state=begin.state,
    )
    global_batch = context.batch_size(train, batch_size)
    if context.distribution is not None and global_batch is not None:
        log.info(
            "Global batch %d: %d per replica x %d replicas",
            global_batch,
            global_batch // context.distribution.replicas,
            context.distribution.replicas,
        )
    common = dict(
        batch_size=global_batch,
        verbose=trainer.verbose,
        callbacks=[*others, lifecycle],
        class_weight=class_weight,
        validation_freq=validation_freq,
    )
    initial = first = context.epochs_done
    batches_done = begin.batches_done
    if batches_done:
        rest = rest_of_epoch(train, global_batch, batches_done, shuffle, validation_split)
        if rest is None:
            log.warning(
                "Epoch %d starts again from its first batch: only in-memory arrays can skip the %d "
                "batches trained before the interruption.",
                initial + 1,
                batches_done,
            )
        else:
            x_rest, y_rest, weight_rest, split = rest
            lifecycle.batch_offset = batches_done
            build_metrics(context.model, x_rest, y_rest, weight_rest)
            history = context.model.fit(
                x_rest,
                y_rest,
                sample_weight=weight_rest,
                epochs=initial + 1,
                initial_epoch=initial,
                shuffle=False,
                validation_data=split if validation_split else validation_data,
                steps_per_epoch=steps_per_epoch - batches_done if steps_per_epoch else None,
                validation_steps=None if validation_split else validation_steps,
                **common,
            )
            initial += len(history.epoch)
    if initial < start + epochs and not (batches_done and context.model.stop_training):
        x, y, sample_weight = unpack(train)
        history = context.model.fit(
            x,
            y,
            sample_weight=sample_weight,
            epochs=start + epochs,
            initial_epoch=initial,
            shuffle=shuffle,
            validation_split=validation_split,
            validation_data=validation_data,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            **common,
        )
        initial += len(history.epoch)
    trained = initial - first
    context.epochs_done = initial
    if lifecycle.diverged is not None:
        _report_divergence(f"stages.{stage.name}", *lifecycle.diverged, context.last_checkpoint)
    return trained


def _report_divergence(key: str, epoch: int, loss: float, checkpoint: Path | None) -> None:
    kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
    raise UserError(
        key,
        f"the training loss became {loss} in epoch {epoch + 1}, so training stopped; {kept}. "
        "Lower optimizer.learning_rate, clip gradients (optimizer.clipnorm), or check the data "
        "for NaN or infinite values.",
    )
