"""Build the model with its builder plugin and compile it from the config.

``optimizer``, ``loss`` and ``metrics`` name registered plugins; a loss or
metric may also be a Keras string identifier, passed to ``compile`` as is::

    optimizer: {name: rmsprop, learning_rate: 0.001}
    loss: {name: sparse_categorical_crossentropy}      # or: loss: sparse_categorical_crossentropy
    metrics: {accuracy: {name: sparse_categorical_accuracy}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.config import is_spec, split_spec, to_python
from orchestrator.errors import UserError, closest
from orchestrator.spec import Selection


def build_model(context) -> Any:
    """Call the model builder named by ``model.name``."""
    name = context.spec.model.name
    model = context.registries["model_builder"].create(
        name, context.spec.model.arguments(), "model", context=context
    )
    import keras

    if not isinstance(model, keras.Model):
        raise UserError(
            "model.name", f"model builder '{name}' returned {type(model).__name__}, not a keras.Model."
        )
    return model


def set_trainable(model: Any, trainable: Mapping[str, bool], key: str) -> None:
    """Freeze or unfreeze layers by name: ``{"dense_1": False}``."""
    layers = {layer.name: layer for layer in model.layers}
    for name, value in trainable.items():
        if name not in layers:
            raise UserError(
                f"{key}.{name}",
                f"the model has no layer {name!r}.{closest(name, layers)} Layers: {', '.join(layers)}.",
            )
        layers[name].trainable = bool(value)


def make_optimizer(context, node: Any = None, key: str = "optimizer") -> Any:
    """The optimizer of ``node`` (default: the run spec's ``optimizer``), with its learning-rate schedule.

    ``node`` is a :class:`~orchestrator.spec.Selection` or a config entry (a fit stage's
    ``optimizer``). A string (``"rmsprop"``) is a Keras identifier and goes to ``compile`` as is.
    """
    node = context.spec.optimizer if node is None else node
    if isinstance(node, Selection):
        name, args = node.name, node.arguments()
    else:
        node = to_python(node)
        if isinstance(node, str):
            return node
        name, args = split_spec(node, key)
    registry = context.registries["optimizer"]
    if is_spec(args.get("learning_rate")):
        schedule_key = f"{key}.learning_rate"
        schedule_name, schedule_args = split_spec(args["learning_rate"], schedule_key)
        args["learning_rate"] = registry.create(schedule_name, schedule_args, schedule_key, context=context)
    return registry.create(name, args, key, context=context)


def make_loss(context, node: Any, key: str = "loss") -> Any:
    """A loss object, a Keras string id, ``None``, or a list/dict of them per output."""
    if node is None or isinstance(node, str):
        return node
    if isinstance(node, Selection):
        return context.registries["loss"].create(node.name, node.arguments(), node.key, context=context)
    if is_spec(node):
        name, args = split_spec(node, key)
        return context.registries["loss"].create(name, args, key, context=context)
    if isinstance(node, Mapping):
        return {output: make_loss(context, value, f"{key}.{output}") for output, value in node.items()}
    return [make_loss(context, value, f"{key}[{index}]") for index, value in enumerate(node)]


def make_metrics(context) -> list | dict:
    """The ``metrics`` mapping as Keras takes it: a list, or a dict per output."""
    registry = context.registries["metric"]
    per_output: dict[str, list] = {}
    plain: list = []
    for _, entry, output in context.spec.metrics:
        metric = (
            entry
            if isinstance(entry, str)
            else registry.create(entry.name, entry.arguments(), entry.key, context=context)
        )
        (per_output.setdefault(output, []) if output else plain).append(metric)
    if per_output and plain:
        raise UserError(
            "metrics",
            "give every metric an 'output' when one has one (multi-output models need it for all).",
        )
    return per_output or plain


def _loss_weights(model: Any, loss: Any, weights: Any) -> Any:
    """Weights by output name; Keras 3 would match a mapping to a list of losses by sorted key."""
    if not (isinstance(weights, Mapping) and isinstance(loss, list)):
        return weights
    names = list(model.output_names)
    unknown = [key for key in weights if key not in names]
    if unknown:
        raise UserError(
            "loss_weights", f"the model has no output {', '.join(unknown)}; outputs: {', '.join(names)}."
        )
    return [float(weights.get(name, 1.0)) for name in names]


def compile_model(context, optimizer_node: Any = None, optimizer_key: str = "optimizer") -> None:
    """``context.model.compile(...)`` from the config; ``optimizer_node`` replaces the optimizer."""
    spec = context.spec
    trainer = spec.trainer
    loss = make_loss(context, spec.loss)
    compile_args = dict(
        optimizer=make_optimizer(context, optimizer_node, optimizer_key),
        loss=loss,
        metrics=make_metrics(context),
        loss_weights=_loss_weights(context.model, loss, spec.loss_weights),
        run_eagerly=trainer.run_eagerly,
        # Keras runs whole executions: an epoch of fewer steps would train steps_per_execution batches.
        steps_per_execution=min(
            trainer.steps_per_execution, trainer.limit_batches or trainer.steps_per_execution
        ),
        jit_compile=trainer.jit_compile,
    )
    try:
        context.model.compile(**compile_args)
    except (ValueError, TypeError) as error:
        raise UserError("loss", f"the model could not be compiled: {error}") from error
