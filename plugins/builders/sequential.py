"""The model builder ``sequential``: a ``keras.Sequential`` model written in YAML as a list of layers.

Each item is a one-key mapping, a ``keras.layers`` class and its arguments; the input
(``keras.Input``) comes first, shaped as the data's examples (or ``model.input_shape``), and the
list is the rest of the model, its last layer included::

    model:
      name: sequential
      layers:
        - Reshape: {target_shape: [28, 28, 1]}
        - Conv2D: {filters: 32, kernel_size: 3, activation: relu}
        - Flatten: {}
        - Dense: {units: 10, activation: softmax}

is ``keras.Sequential([keras.Input((784,)), layers.Reshape(...), layers.Conv2D(...), ...])``.
Layer names and their argument names are checked against Keras's installed source before
TensorFlow is imported. A ``name`` argument names the layer (for a fit stage's ``trainable``).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator import UserError, hookimpl
from orchestrator_plugins.builders._keras_names import check_arguments, check_name

LAYERS = "keras.layers"
#: Names ``keras.layers`` exports that are no layer of a list: the input comes from the data.
NOT_IN_A_LIST = ("Input", "InputLayer", "InputSpec")
EXAMPLE = "{Dense: {units: 10, activation: softmax}}"


def sequential(context, layers: list, input_shape: list[int] | None = None, name: str = "sequential"):
    """``keras.Sequential`` of ``keras.Input(input_shape)`` and ``layers`` (``[{Class: {args}}, ...]``).

    ``input_shape`` defaults to the data's ``info["input_shape"]``.
    """
    info = context.data.info if context is not None and context.data is not None else {}
    shape = tuple(input_shape or info.get("input_shape") or ())
    if not shape:
        raise UserError("model.input_shape", "the data source gives no input shape; set it here.")
    import keras

    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=shape))
    before = (None, *shape)
    for index, (layer_name, arguments) in enumerate(_items(layers, "model")):
        key = f"model.layers[{index}].{layer_name}"
        try:
            layer = getattr(keras.layers, layer_name)(**arguments)
        except (TypeError, ValueError) as error:
            raise UserError(key, f"Keras refused the arguments {arguments}: {_said(error)}") from error
        try:
            model.add(layer)
        except (TypeError, ValueError) as error:
            raise UserError(
                key, f"does not fit the output of the layers before it, of shape {before}: {_said(error)}"
            ) from error
        before = model.output_shape
    return model


def _said(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _items(layers, key: str) -> list[tuple[str, dict]]:
    """``[(layer name, arguments)]`` of the config's list; a clear error for an item of another form."""
    if isinstance(layers, (str, bytes, Mapping)) or not hasattr(layers, "__iter__"):
        raise UserError(f"{key}.layers", f"must be a list of layers such as [{EXAMPLE}], got {layers!r}.")
    items = []
    for index, item in enumerate(layers):
        where = f"{key}.layers[{index}]"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise UserError(
                where,
                f"each layer is a mapping of one Keras layer name to its arguments, as {EXAMPLE} or "
                f"{{Flatten: {{}}}}; got {item!r}.",
            )
        ((layer_name, arguments),) = item.items()
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise UserError(
                f"{where}.{layer_name}",
                f"a layer's arguments are a mapping ({{units: 10}}, or {{}} for none), got {arguments!r}.",
            )
        items.append((layer_name, dict(arguments)))
    if not items:
        raise UserError(f"{key}.layers", f"is empty; give at least one layer, such as [{EXAMPLE}].")
    return items


def check_sequential(args, key: str) -> None:
    """The checks that run with the config's, before TensorFlow is imported."""
    for index, (layer_name, arguments) in enumerate(_items(args.get("layers"), key)):
        where = f"{key}.layers[{index}]"
        if layer_name in NOT_IN_A_LIST:
            raise UserError(
                where,
                f"{layer_name} is not a layer of the list: the model's input comes first, shaped as the "
                "data's examples; set model.input_shape for another shape.",
            )
        check_name(layer_name, LAYERS, where, "layer", NOT_IN_A_LIST)
        check_arguments(f"{LAYERS}.{layer_name}", arguments, f"{where}.{layer_name}", f"layer {layer_name}")


@hookimpl
def orchestrator_register_model_builders(registry):
    registry.add("sequential", sequential, check=check_sequential)
