"""The model builder ``keras_application``: a ``keras.applications`` model without its top, and a
classification head.

The model, for ``application: MobileNetV3Small`` on 28x28 grayscale images given as flat rows::

    image (784,) -> to_image Reshape(28, 28, 1) -> resize Resizing(32, 32) -> to_rgb (32, 32, 3)
      -> base MobileNetV3Small(include_top=False) -> pooling GlobalAveragePooling2D
      -> dropout Dropout (when dropout > 0) -> predictions Dense(num_classes, softmax)

Config::

    model: {name: keras_application, application: ResNet50, weights: resnet50_notop.weights.h5,
            trainable_base: false, dropout: 0.2}

The application is one layer of the model named ``base``, whichever it is, so a fit stage's
``trainable: {base: true}`` unfreezes it (``stages=fine_tuning_application``). Weights are never
downloaded: ``weights`` is ``null`` (random initial weights) or a local file. Names, arguments,
the weights file and the minimum image size are checked before TensorFlow is imported.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from pathlib import Path

from orchestrator import UserError, hookimpl, model_dimensions, source_definition
from orchestrator_plugins.builders._keras_names import check_arguments, check_name

APPLICATIONS = "keras.applications"
#: The name of the application's layer in the model (for a fit stage's ``trainable``).
BASE = "base"
POOLINGS = {"avg": "GlobalAveragePooling2D", "max": "GlobalMaxPooling2D"}
#: The application's arguments the builder sets itself -> what the user sets instead.
RESERVED = {
    "include_top": "the application comes without its top, under the builder's head.",
    "weights": "use model.weights.",
    "input_shape": "use model.input_shape (and model.image_size).",
    "input_tensor": "the builder's head gives the input.",
    "classes": "use model.num_classes.",
    "pooling": "use model.pooling.",
    "classifier_activation": "use model.output_activation.",
    "name": f"the application is the layer {BASE!r} of the model.",
}
#: What Keras warns when it leaves some of the layers with their initial weights.
PARTIAL_LOAD = ("Skipping", "could not be loaded", "freshly-initialized")
#: How many functions deep the minimum image size is looked for (``ResNet50`` -> ``ResNet``).
SIZE_DEPTH = 3


def keras_application(
    context,
    application: str,
    weights: str | None = None,
    input_shape: list[int] | None = None,
    num_classes: int | None = None,
    image_size: list[int] | None = None,
    rescale: float | None = None,
    pooling: str = "avg",
    dropout: float = 0.0,
    trainable_base: bool = True,
    output_activation: str = "softmax",
    arguments: dict | None = None,
):
    """``keras.applications.<application>(include_top=False)`` under a pooling and Dense head.

    ``input_shape`` (default: the data's) is the image shape; when the data's differs (flat rows
    of the same size) a ``Reshape`` layer makes images of them. 1-channel images are repeated to
    3 channels. A frozen application's batch normalisation runs in inference mode (its statistics
    stay the file's); unfrozen, it trains with the rest.
    """
    shape, classes = model_dimensions(context, input_shape, num_classes)
    given = tuple(context.data.info.get("input_shape") or shape) if context.data is not None else shape
    image = _image_shape(shape, given, input_shape is not None)
    size = tuple(int(n) for n in (image_size or image[:2]))
    _check_size(application, size, "model.image_size" if image_size else "model.input_shape")

    import keras

    inputs = keras.Input(shape=given, name="image")
    x = inputs
    if given != image:
        x = keras.layers.Reshape(image, name="to_image")(x)
    if rescale is not None:
        x = keras.layers.Rescaling(rescale, name="rescale")(x)
    if image_size:
        x = keras.layers.Resizing(*size, name="resize")(x)
    channels = image[-1]
    if channels == 1:
        x = keras.layers.Concatenate(name="to_rgb")([x, x, x])
        channels = 3
    base = getattr(keras.applications, application)(
        include_top=False, weights=None, input_shape=(*size, channels), name=BASE, **(arguments or {})
    )
    if weights is not None:
        _load_weights(base, application, weights)
    base.trainable = bool(trainable_base)
    x = base(x)
    x = getattr(keras.layers, POOLINGS[pooling])(name="pooling")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(classes, activation=output_activation, name="predictions")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=f"{application}_classifier")


def _image_shape(shape: tuple[int, ...], given: tuple[int, ...], configured: bool) -> tuple[int, ...]:
    """The image (height, width, channels) the application's head sees."""
    key = "model.input_shape"
    if len(shape) != 3:
        side = math.isqrt(math.prod(shape)) if len(shape) == 1 else 0
        example = f"[{side}, {side}, 1]" if side and side * side == shape[0] else "[height, width, channels]"
        raise UserError(
            key,
            f"keras_application takes images (height, width, channels); the data gives {list(shape)}. "
            f"For flat rows of pixels set model.input_shape={example}: a Reshape layer makes images of them.",
        )
    if configured and given != shape and math.prod(given) != math.prod(shape):
        raise UserError(
            key,
            f"is {list(shape)} ({math.prod(shape)} values), but the data's examples have the shape "
            f"{list(given)} ({math.prod(given)} values); they cannot be reshaped into these images.",
        )
    return tuple(int(n) for n in shape)


def _load_weights(base, application: str, weights: str) -> None:
    """Load the file into the application; a file that fits it only partly is refused too."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            base.load_weights(weights)
            said = [str(w.message) for w in caught]
            problem = next((m for m in said if any(p in m for p in PARTIAL_LOAD)), None)
        except (ValueError, OSError, KeyError) as error:
            problem = f"{type(error).__name__}: {_gist(error)}"
    if problem is not None:
        raise UserError(
            "model.weights",
            f"{weights} does not fit {application} without its top ({problem}). Give a file saved from "
            f"keras.applications.{application}(include_top=False, ...) with save_weights.",
        )


def _gist(error: Exception) -> str:
    """The first line of Keras's message, and the shapes that differ (it also prints every value)."""
    text = str(error).strip()
    shapes = re.search(r"variable\.shape=\([^)]*\), Received: value\.shape=\([^)]*\)", text)
    first = text.splitlines()[0][:300].rstrip(":") if text else ""
    return "; ".join(filter(None, [first, shapes.group(0) if shapes else None]))


def minimum_size(application: str) -> int | None:
    """The smallest image side ``application`` accepts, read from Keras's source (``None``: unknown).

    Keras's applications pass it on as ``min_size=`` (``ResNet50`` through ``ResNet``: 32).
    """
    found = source_definition(f"{APPLICATIONS}.{application}")
    for _ in range(SIZE_DEPTH):
        if found is None:
            return None
        module, node = found
        calls = [call for call in ast.walk(node) if isinstance(call, ast.Call)]
        for call in calls:
            for keyword in call.keywords:
                value = keyword.value
                if (
                    keyword.arg == "min_size"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, int)
                ):
                    return value.value
        returned = [
            n.value.func.id
            for n in ast.walk(node)
            if isinstance(n, ast.Return)
            and isinstance(n.value, ast.Call)
            and isinstance(n.value.func, ast.Name)
        ]
        found = source_definition(f"{module}.{returned[0]}") if returned else None
    return None


def _check_size(application: str, size: tuple[int, ...], key: str) -> None:
    smallest = minimum_size(application)
    if smallest is not None and min(size) < smallest:
        raise UserError(
            key,
            f"model.application={application} needs images of at least {smallest}x{smallest}, got "
            f"{'x'.join(map(str, size))}; set model.image_size=[{smallest}, {smallest}] (or larger) "
            "to resize them in the model.",
        )


def check_keras_application(args, key: str) -> None:
    """The checks that run with the config's, before TensorFlow is imported."""
    application = args.get("application")
    if application in (None, "???"):
        raise UserError(
            f"{key}.application",
            "is required: a keras.applications model by name, e.g. model.application=MobileNetV3Small.",
        )
    check_name(application, APPLICATIONS, f"{key}.application", "application")
    check_arguments(
        f"{APPLICATIONS}.{application}",
        args.get("arguments") or {},
        f"{key}.arguments",
        f"keras.applications.{application}",
        RESERVED,
    )
    _check_weights(args.get("weights"), f"{key}.weights")
    pooling = args.get("pooling", "avg")
    if pooling not in POOLINGS:
        raise UserError(f"{key}.pooling", f"must be one of {', '.join(POOLINGS)}; got {pooling!r}.")
    dropout = args.get("dropout", 0.0)
    if not 0 <= dropout < 1:
        raise UserError(f"{key}.dropout", f"must be at least 0 and below 1, got {dropout}.")
    input_shape, image_size = args.get("input_shape"), args.get("image_size")
    if image_size is not None:
        if len(image_size) != 2 or any(int(n) < 1 for n in image_size):
            raise UserError(f"{key}.image_size", f"must be [height, width], got {list(image_size)}.")
        _check_size(application, tuple(image_size), f"{key}.image_size")
    elif input_shape is not None and len(input_shape) == 3:
        _check_size(application, tuple(input_shape[:2]), f"{key}.input_shape")


def _check_weights(weights, key: str) -> None:
    if weights is None:
        return
    if not isinstance(weights, str):
        raise UserError(key, f"must be null or the path of a weights file, got {weights!r}.")
    if weights.lower() == "imagenet":
        raise UserError(
            key,
            "imagenet would be downloaded at run time, which runs never do. Give a local file: save "
            "it once where there is a network, e.g. keras.applications.ResNet50(include_top=False)"
            ".save_weights('resnet50_notop.weights.h5'), then model.weights=resnet50_notop.weights.h5.",
        )
    path = Path(weights)
    if not path.is_file():
        raise UserError(
            key, f"no file {weights}; give the path of a local weights file (.weights.h5 or .h5)."
        )
    if not path.name.endswith(".h5"):
        raise UserError(key, f"{weights} is not a Keras weights file; it must end in .weights.h5 (or .h5).")


@hookimpl
def orchestrator_register_model_builders(registry):
    registry.add("keras_application", keras_application, check=check_keras_application)
