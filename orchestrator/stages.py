"""The built-in stage kinds around ``Model.fit``, ``evaluate`` and ``predict``.

A stage is a function ``(context, stage, **args) -> dict`` registered through
``orchestrator_register_stages``, like a third-party stage kind. Its arguments
come from its entry in the ``stages`` mapping::

    stages:
      fit: {kind: fit, epochs: 2, validation: validation}
      test: {kind: evaluate, split: test, batch_size: 128}
      predict: {kind: predict, split: test, samples: 3}
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from orchestrator import hookimpl
from orchestrator.arrays import is_in_memory, length, select, take, unpack
from orchestrator.errors import UserError

log = logging.getLogger("orchestrator")


def fit(
    context,
    stage,
    epochs: int | None = None,
    batch_size: int | None = None,
    validation: str | None = "validation",
    validation_split: float = 0.0,
    shuffle: bool = True,
    class_weight: dict | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    validation_freq: int = 1,
    trainable: dict[str, bool] | None = None,
    optimizer: Any = None,
) -> dict[str, float]:
    """Train ``context.model`` with ``Model.fit``; epochs continue across fit stages.

    Args:
        epochs: epochs to train in this stage (default ``trainer.epochs``).
        batch_size: for in-memory data (default ``trainer.batch_size``).
        validation: the split used as ``validation_data`` (``null``: none).
        validation_split: instead, hold out this last fraction of the training
            arrays (taken before shuffling, as Keras does); in-memory data only.
        trainable: ``{layer name: bool}`` to freeze or unfreeze layers before
            this stage; the model is compiled again.
        optimizer: an optimizer spec for this stage (``{name: rmsprop,
            learning_rate: 1e-5}``); the model is compiled again.

    Example, fine-tuning in two stages::

        stages:
          head: {kind: fit, epochs: 2, trainable: {dense_1: false}}
          fine_tune: {kind: fit, epochs: 2, trainable: {dense_1: true},
                      optimizer: {name: rmsprop, learning_rate: 1.0e-5}}
    """
    from orchestrator.callbacks import build_callbacks
    from orchestrator.lifecycle_callback import LifecycleCallback
    from orchestrator.resume import restore_model

    key = f"stages.{stage.name}"
    if context.outcome == "PRUNED":
        log.info("Stage %s skipped: the run was pruned", stage.name)
        return {}
    trainer = context.cfg.trainer
    epochs = trainer.epochs if epochs is None else epochs
    if epochs < 0:
        raise UserError(f"{key}.epochs", f"must be 0 or more, got {epochs}.")
    train = context.data.split("train")
    x, y, sample_weight = unpack(train)
    if validation_split:
        _check_validation_split(validation_split, train, key)
        validation_data = None
    else:
        validation_data = _validation_data(context, stage, validation)
    configure_fit(context, stage, trainable=trainable, optimizer=optimizer)
    resuming = context.resume is not None and context.resume.continues(stage)
    start = context.resume.state["stage_start_epoch"] if resuming else context.epochs_done
    context.stage_start_epoch = start
    if resuming:
        restore_model(context)
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
        resume_state=context.resume.state if resuming else None,
    )
    if context.distribution is not None and is_in_memory(train):
        per_replica = trainer.batch_size if batch_size is None else batch_size
        log.info(
            "Global batch %d: %d per replica x %d replicas",
            per_replica * context.distribution.replicas,
            per_replica,
            context.distribution.replicas,
        )
    common = dict(
        batch_size=_batch_size(context, train, batch_size, trainer.batch_size),
        verbose=trainer.verbose,
        callbacks=[*others, lifecycle],
        class_weight=_class_weight(class_weight),
        validation_freq=validation_freq,
    )
    steps = _steps(context, steps_per_epoch, "train")
    validation_steps = _steps(context, validation_steps, validation) if validation_data is not None else None
    initial = context.epochs_done
    batches_done = context.resume.state.get("batches_done", 0) if resuming else 0
    if batches_done:
        # The interrupted epoch: the batches not trained yet, in the order Keras gave them.
        rest = _rest_of_epoch(train, common["batch_size"], batches_done, shuffle, validation_split)
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
            _build_metrics(context.model, x_rest, y_rest, weight_rest)
            history = context.model.fit(
                x_rest,
                y_rest,
                sample_weight=weight_rest,
                epochs=initial + 1,
                initial_epoch=initial,
                shuffle=False,
                validation_data=split if validation_split else validation_data,
                steps_per_epoch=steps - batches_done if steps else None,
                validation_steps=None if validation_split else validation_steps,
                **common,
            )
            initial += len(history.epoch)
    if initial < start + epochs and not (batches_done and context.model.stop_training):
        history = context.model.fit(
            x,
            y,
            sample_weight=sample_weight,
            epochs=start + epochs,
            initial_epoch=initial,
            shuffle=shuffle,
            validation_split=validation_split,
            validation_data=validation_data,
            steps_per_epoch=steps,
            validation_steps=validation_steps,
            **common,
        )
        initial += len(history.epoch)
    context.epochs_done = initial
    if lifecycle.diverged is not None:
        _report_divergence(key, *lifecycle.diverged, context.last_checkpoint)
    return {}


def configure_fit(
    context, stage, trainable: dict[str, bool] | None = None, optimizer: Any = None, **_: Any
) -> None:
    """Apply a fit stage's ``trainable`` and ``optimizer`` settings (compiling again if needed)."""
    from orchestrator.model import compile_model, set_trainable

    key = f"stages.{stage.name}"
    if trainable:
        set_trainable(context.model, trainable, f"{key}.trainable")
    if trainable or optimizer is not None:
        with context.scope():
            compile_model(context, optimizer_node=optimizer, optimizer_key=f"{key}.optimizer")


def _report_divergence(key: str, epoch: int, loss: float, checkpoint: Path | None) -> None:
    kept = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
    raise UserError(
        key,
        f"the training loss became {loss} in epoch {epoch + 1}, so training stopped; {kept}. "
        "Lower optimizer.learning_rate, clip gradients (optimizer.clipnorm), or check the data "
        "for NaN or infinite values.",
    )


def _rest_of_epoch(train: Any, batch_size: int, batches_done: int, shuffle: Any, validation_split: float):
    """``(x, y, sample_weight, validation)`` of an epoch cut after ``batches_done`` batches.

    Keras draws an epoch's order of in-memory arrays from its array adapter; the
    same adapter over ``0..n-1`` gives that order (under a seed, the very one of
    the interrupted epoch), so the samples not trained yet are known. ``None``
    for a dataset object, whose position cannot be recovered.
    """
    import numpy as np
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    if not is_in_memory(train):
        return None
    x, y, sample_weight = unpack(train)
    validation = None
    if validation_split:
        (x, y, sample_weight), validation = train_validation_split(
            (x, y, sample_weight), validation_split=validation_split
        )
    count = length(x)
    order = np.arange(count)
    if shuffle:
        adapter = ArrayDataAdapter(order, batch_size=batch_size, shuffle=shuffle)
        batches = adapter.get_tf_dataset()
        order = np.concatenate([np.asarray(b[0] if isinstance(b, tuple) else b) for b in batches])
    rest = order[batches_done * batch_size :]
    return select(x, rest), select(y, rest), select(sample_weight, rest), validation


def _build_metrics(model: Any, x: Any, y: Any, sample_weight: Any) -> None:
    """Create the compiled metrics' variables now (Keras makes them in the first step),
    so that the running values of an interrupted epoch can be put back before it goes on."""
    sample = (take(x, 1), take(y, 1)) + ((take(sample_weight, 1),) if sample_weight is not None else ())
    model._symbolic_build(data_batch=sample)


def _check_validation_split(fraction: float, train: Any, key: str) -> None:
    """The guide's rule: a fraction in [0, 1) of in-memory arrays, nothing else."""
    if not 0 <= fraction < 1:
        raise UserError(f"{key}.validation_split", f"must be at least 0 and below 1, got {fraction}.")
    if not is_in_memory(train):
        raise UserError(
            f"{key}.validation_split",
            f"needs in-memory arrays, but the training split is a {type(train).__name__}, which "
            "cannot be indexed; give the data source a validation split and use `validation` instead.",
        )


def evaluate(
    context, stage, split: str = "test", batch_size: int | None = None, steps: int | None = None
) -> dict[str, float]:
    """Evaluate ``context.model`` on a split; returns its metrics (logged as ``<stage>/<name>``).

    Example::

        stages: {test: {kind: evaluate, split: test, batch_size: 128}}
    """
    data = _split(context, stage, split)
    x, y, sample_weight = unpack(data)
    results = context.model.evaluate(
        x,
        y,
        batch_size=_batch_size(context, data, batch_size, context.cfg.trainer.batch_size),
        sample_weight=sample_weight,
        steps=_steps(context, steps, split),
        verbose=context.cfg.trainer.verbose,
        return_dict=True,
    )
    return {name: float(value) for name, value in results.items()}


def predict(
    context,
    stage,
    split: str = "test",
    samples: int | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
) -> dict[str, float]:
    """Predict on a split (its first ``samples`` when given) and keep the predictions.

    The predictions are written to ``predictions/<stage>.npy`` (and ``.csv`` when
    they are a table) in the output folder and logged as artifacts.

    Example::

        stages: {predict: {kind: predict, split: test, samples: 3}}
    """
    import numpy as np

    data = _split(context, stage, split)
    x, _, _ = unpack(data)
    if samples is not None:
        if not is_in_memory(data):
            raise UserError(
                f"stages.{stage.name}.samples",
                "works on in-memory splits only; use steps for a dataset object.",
            )
        x = take(x, samples)
    predictions = context.model.predict(
        x,
        batch_size=_batch_size(context, data, batch_size, context.cfg.trainer.batch_size),
        steps=None if samples is not None else _steps(context, steps, split),
        verbose=context.cfg.trainer.verbose,
    )
    folder = Path(context.output_dir) / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    outputs = _by_output(context.model, predictions)
    for output, values in outputs.items():
        base = folder / (f"{stage.name}-{output}" if output else stage.name)
        values = np.asarray(values)
        np.save(base.with_suffix(".npy"), values)
        context.log_artifact(base.with_suffix(".npy"), "predictions")
        if values.ndim <= 2:
            np.savetxt(base.with_suffix(".csv"), values.reshape(len(values), -1), delimiter=",")
            context.log_artifact(base.with_suffix(".csv"), "predictions")
    context.results[stage.name] = predictions
    return {}


def _by_output(model: Any, predictions: Any) -> dict[str, Any]:
    """Predictions by output name (``""`` for a single-output model)."""
    if isinstance(predictions, dict):
        return predictions
    if isinstance(predictions, (list, tuple)):
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(predictions):
            names = [str(index) for index in range(len(predictions))]
        return dict(zip(names, predictions, strict=True))
    return {"": predictions}


def _split(context, stage, split: str | None) -> Any:
    if split not in ("train", "validation", "test"):
        raise UserError(f"stages.{stage.name}.split", f"must be train, validation or test, got {split!r}.")
    data = context.data.split(split)
    if data is None:
        source = context.cfg.data.get("name")
        raise UserError(
            f"stages.{stage.name}.split",
            f"the data source '{source}' has no {split} split; choose another split.",
        )
    return data


def _validation_data(context, stage, validation: str | None) -> Any:
    if validation is None:
        return None
    return _split(context, stage, validation)


def _batch_size(context, split: Any, stage_value: int | None, default: int) -> int | None:
    """Keras takes a batch size for in-memory data only; datasets batch themselves.

    Under ``trainer.strategy`` the configured size is one replica's: Keras gets the
    global batch, that size times the replicas.
    """
    from orchestrator.distribute import global_batch_size

    if not is_in_memory(split):
        return None
    return global_batch_size(context, default if stage_value is None else stage_value)


def _steps(context, stage_value: int | None, split: str | None) -> int | None:
    """The batches to read from ``split``: the stage's own count, else the smaller of
    the data's one pass (``info["steps"][split]``) and ``trainer.limit_batches``;
    ``None``: until the split ends."""
    if stage_value is not None:
        return stage_value
    one_pass = (context.data.info.get("steps") or {}).get(split) if split else None
    counts = [n for n in (one_pass, context.cfg.trainer.limit_batches) if n is not None]
    return min(counts) if counts else None


def _class_weight(class_weight: dict | None) -> dict | None:
    if class_weight is None:
        return None
    return {int(label): float(weight) for label, weight in class_weight.items()}


@hookimpl
def orchestrator_register_stages(registry):
    registry.add("fit", fit)
    registry.add("evaluate", evaluate)
    registry.add("predict", predict)
