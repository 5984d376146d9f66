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

from orchestrator import UserError, hookimpl, is_in_memory, take, unpack

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
    """Train ``context.model`` with ``Model.fit`` (through ``context.fit``); epochs continue across stages.

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
    key = f"stages.{stage.name}"
    epochs = context.cfg.trainer.epochs if epochs is None else epochs
    if epochs < 0:
        raise UserError(f"{key}.epochs", f"must be 0 or more, got {epochs}.")
    train = context.split("train", key)
    if validation_split:
        _check_validation_split(validation_split, train, key)
        validation_data = None
    else:
        validation_data = None if validation is None else context.split(validation, f"{key}.validation")
    configure_fit(context, stage, trainable=trainable, optimizer=optimizer)
    context.fit(
        stage,
        train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
        shuffle=shuffle,
        class_weight=_class_weight(class_weight),
        steps_per_epoch=context.steps(steps_per_epoch, "train"),
        validation_steps=context.steps(validation_steps, validation) if validation_data is not None else None,
        validation_freq=validation_freq,
    )
    return {}


def configure_fit(
    context, stage, trainable: dict[str, bool] | None = None, optimizer: Any = None, **_: Any
) -> None:
    """Apply a fit stage's ``trainable`` and ``optimizer`` settings (compiling again if needed).

    A resumed run calls it for a fit stage that ended before the interruption, so
    the model reaches the next stage as it did the first time.
    """
    context.recompile(stage, trainable=trainable, optimizer=optimizer)


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
        batch_size=context.batch_size(data, batch_size),
        sample_weight=sample_weight,
        steps=context.steps(steps, split),
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
        batch_size=context.batch_size(data, batch_size),
        steps=None if samples is not None else context.steps(steps, split),
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


def _split(context, stage, split: str) -> Any:
    return context.split(split, f"stages.{stage.name}.split")


def _class_weight(class_weight: dict | None) -> dict | None:
    if class_weight is None:
        return None
    return {int(label): float(weight) for label, weight in class_weight.items()}


@hookimpl
def orchestrator_register_stages(registry):
    registry.add("fit", fit, when_skipped=configure_fit)
    registry.add("evaluate", evaluate, changes_model=False)
    registry.add("predict", predict, changes_model=False, check=_check_predict)


def _check_predict(args, key: str) -> None:
    samples = args.get("samples")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise UserError(f"{key}.samples", f"must be null (the whole split) or 1 or more, got {samples!r}.")
