"""Multi-input, multi-output models (Keras guide "Training & evaluation with the built-in methods").

Three plugins, each one function whose signature the config is checked against
before TensorFlow loads; Keras is imported inside them, when a run uses one (the
``tf.data`` step is in :mod:`orchestrator_plugins.multi_io._keras`).

* model builder ``multi_io``: the guide's model. An image input ``img_input``
  (32, 32, 3) -> Conv2D(3, 3) -> GlobalMaxPooling2D and a time-series input
  ``ts_input`` (None, 10) -> Conv1D(3, 3) -> GlobalMaxPooling1D, concatenated,
  then two outputs: ``score_output`` Dense(1) and ``class_output`` Dense(5)::

      model: {name: multi_io, filters: 3, kernel_size: 3, num_classes: 5}

* data source ``multi_io_random``: the guide's random NumPy data, seeded:
  image_data (N, 32, 32, 3), ts_data (N, 20, 10), score_targets (N, 1),
  class_targets (N, 5). ``layout: list`` gives ``x = [image_data, ts_data]``,
  ``y = [score_targets, class_targets]``; ``layout: dict`` keys them by input and
  output names; ``as_dataset: true`` wraps each split in a batched
  ``tf.data.Dataset`` (the training split shuffled)::

      data: {name: multi_io_random, train_samples: 100, layout: dict, as_dataset: true, batch_size: 64}

* stage kind ``plot_model``: ``keras.utils.plot_model`` into the run's output
  folder, logged as an MLflow artifact under ``model/`` (needs Graphviz's ``dot``
  and pydot)::

      stages: {diagram: {kind: plot_model, show_shapes: true}}

Presets: ``+experiment=guide_multi_io_dict`` (the guide's compile call),
``guide_multi_io_list``, ``guide_multi_io_dataset``, ``guide_multi_io_none_loss``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator import Data, UserError, hookimpl

#: The guide's names; the data source's dict keys must match the model's.
IMAGE_INPUT = "img_input"
TIMESERIES_INPUT = "ts_input"
SCORE_OUTPUT = "score_output"
CLASS_OUTPUT = "class_output"
LAYOUTS = ("list", "dict")


def multi_io(
    context,
    image_shape: list[int] | None = None,
    timeseries_features: int | None = None,
    num_classes: int | None = None,
    filters: int = 3,
    kernel_size: int = 3,
    image_input_name: str = IMAGE_INPUT,
    timeseries_input_name: str = TIMESERIES_INPUT,
    score_output_name: str = SCORE_OUTPUT,
    class_output_name: str = CLASS_OUTPUT,
    class_activation: str | None = None,
):
    """The guide's two-input, two-output model.

    ``image_shape``, ``timeseries_features`` and ``num_classes`` default to the
    data source's ``info`` (``image_shape``, ``timeseries_features``,
    ``num_classes``), else to the guide's (32, 32, 3), 10 and 5. The time-series
    input takes any length: its shape is ``(None, timeseries_features)``.
    ``class_activation`` is ``null`` as in the guide (a linear ``class_output``).

    Config::

        model: {name: multi_io, filters: 3, kernel_size: 3, class_activation: softmax}
    """
    info = context.data.info if context is not None and context.data is not None else {}
    shape = tuple(int(d) for d in (image_shape or info.get("image_shape") or (32, 32, 3)))
    timeseries_features = int(timeseries_features or info.get("timeseries_features") or 10)
    num_classes = int(num_classes or info.get("num_classes") or 5)
    if len(shape) != 3:
        raise UserError("model.image_shape", f"must be [height, width, channels], got {list(shape)}.")
    for key, value in (("filters", filters), ("kernel_size", kernel_size), ("num_classes", num_classes)):
        if int(value) < 1:
            raise UserError(f"model.{key}", f"must be 1 or more, got {value}.")

    import keras
    from keras import layers

    image_input = keras.Input(shape=shape, name=image_input_name)
    timeseries_input = keras.Input(shape=(None, timeseries_features), name=timeseries_input_name)

    x1 = layers.Conv2D(int(filters), int(kernel_size))(image_input)
    x1 = layers.GlobalMaxPooling2D()(x1)

    x2 = layers.Conv1D(int(filters), int(kernel_size))(timeseries_input)
    x2 = layers.GlobalMaxPooling1D()(x2)

    x = layers.concatenate([x1, x2])

    score_output = layers.Dense(1, name=score_output_name)(x)
    class_output = layers.Dense(num_classes, activation=class_activation, name=class_output_name)(x)

    return keras.Model(inputs=[image_input, timeseries_input], outputs=[score_output, class_output])


def multi_io_random(
    train_samples: int = 100,
    validation_samples: int = 0,
    test_samples: int = 0,
    image_shape: list[int] | tuple[int, ...] = (32, 32, 3),
    timesteps: int = 20,
    features: int = 10,
    num_classes: int = 5,
    seed: int = 0,
    layout: str = "list",
    as_dataset: bool = False,
    batch_size: int = 64,
    shuffle_buffer: int = 1024,
    image_input_name: str = IMAGE_INPUT,
    timeseries_input_name: str = TIMESERIES_INPUT,
    score_output_name: str = SCORE_OUTPUT,
    class_output_name: str = CLASS_OUTPUT,
):
    """The guide's random data: uniform [0, 1) float32 arrays from a generator seeded with ``seed``.

    The class targets too are uniform, not one-hot, as in the guide.

    Args:
        train_samples, validation_samples, test_samples: the size of each split
            (0: no such split). The guide trains on 100 samples.
        layout: ``list`` (x and y as lists, in the model's input and output order)
            or ``dict`` (keyed by ``*_name``, which must match the model's names).
        as_dataset: give each split as a ``tf.data.Dataset`` of ``(x, y)``,
            batched by ``batch_size`` (the training split first shuffled with
            ``shuffle_buffer``, as the guide does; lists become tuples).

    Config::

        data: {name: multi_io_random, train_samples: 100, test_samples: 20, layout: dict}
    """
    key = "data"
    if layout not in LAYOUTS:
        raise UserError(f"{key}.layout", f"must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    if train_samples < 1:
        raise UserError(f"{key}.train_samples", f"must be 1 or more, got {train_samples}.")
    for name, value in (("validation_samples", validation_samples), ("test_samples", test_samples)):
        if value < 0:
            raise UserError(f"{key}.{name}", f"must be 0 (no such split) or more, got {value}.")
    for name, value in (("timesteps", timesteps), ("features", features), ("num_classes", num_classes)):
        if value < 1:
            raise UserError(f"{key}.{name}", f"must be 1 or more, got {value}.")
    if as_dataset and batch_size < 1:
        raise UserError(f"{key}.batch_size", f"must be 1 or more, got {batch_size}.")
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3:
        raise UserError(f"{key}.image_shape", f"must be [height, width, channels], got {list(image_shape)}.")

    import numpy as np

    input_names = (image_input_name, timeseries_input_name)
    output_names = (score_output_name, class_output_name)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", train_samples), ("validation", validation_samples), ("test", test_samples)):
        if not n:
            splits[split] = None
            continue
        inputs = (
            rng.random((n, *image_shape), dtype=np.float32),
            rng.random((n, timesteps, features), dtype=np.float32),
        )
        targets = (rng.random((n, 1), dtype=np.float32), rng.random((n, num_classes), dtype=np.float32))
        x, y = _laid_out(inputs, input_names, layout), _laid_out(targets, output_names, layout)
        if as_dataset:
            from orchestrator_plugins.multi_io._keras import to_dataset

            splits[split] = to_dataset(x, y, batch_size, shuffle_buffer if split == "train" else 0, seed)
        else:
            splits[split] = (x, y)
    info = {
        "source": "random",
        "image_shape": image_shape,
        "timeseries_features": features,
        "num_classes": num_classes,
        "input_names": list(input_names),
        "output_names": list(output_names),
        "layout": layout,
    }
    return Data(**splits, info=info)


def _laid_out(arrays: tuple, names: tuple[str, str], layout: str) -> list | dict:
    """``arrays`` as a list in the model's order, or (``layout: dict``) keyed by the model's names."""
    return dict(zip(names, arrays, strict=True)) if layout == "dict" else list(arrays)


def plot_model(
    context,
    stage,
    filename: str | None = None,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
) -> dict[str, float]:
    """Draw ``context.model`` with ``keras.utils.plot_model`` and log the file under ``model/``.

    The file is ``<output folder>/<filename>``, by default ``<stage name>.png``;
    its extension picks the format (``png``, ``svg``, ``pdf``, ``dot``). The other
    arguments are ``plot_model``'s own (``show_layer_names`` defaults to true here,
    as the guide's diagrams show the names).

    Config::

        stages: {diagram: {kind: plot_model, show_shapes: true, filename: diagram.png}}
    """
    key = f"stages.{stage.name}"
    _require_graphviz(key)
    path = Path(context.output_dir) / (filename or f"{stage.name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    import keras

    try:
        keras.utils.plot_model(
            context.model,
            to_file=str(path),
            show_shapes=show_shapes,
            show_dtype=show_dtype,
            show_layer_names=show_layer_names,
            rankdir=rankdir,
            expand_nested=expand_nested,
            dpi=dpi,
            show_layer_activations=show_layer_activations,
            show_trainable=show_trainable,
        )
    except ImportError as error:  # Keras's own pydot / Graphviz check
        raise UserError(key, f"{_GRAPHVIZ_HELP} ({error})") from error
    if not path.is_file():
        raise UserError(key, f"keras.utils.plot_model wrote no file at {path}.")
    context.log_artifact(path, "model")
    return {}


_GRAPHVIZ_HELP = (
    "the plot_model stage needs Graphviz and pydot: install graphviz (its `dot` program on PATH: "
    "`apt-get install graphviz`, `brew install graphviz` or `conda install graphviz`) and "
    "`pip install pydot`, or disable the stage"
)


def _require_graphviz(key: str) -> None:
    """Fail early, naming the stage, when pydot or Graphviz's ``dot`` is missing."""
    try:
        import pydot  # noqa: F401
    except ImportError:
        raise UserError(key, f"{_GRAPHVIZ_HELP} (`{key}=null`). pydot is not installed.") from None
    if shutil.which("dot") is None:
        raise UserError(
            key, f"{_GRAPHVIZ_HELP} (`{key}=null`). Graphviz's `dot` program is not on PATH."
        ) from None


@hookimpl
def orchestrator_register_model_builders(registry):
    registry.add("multi_io", multi_io)


@hookimpl
def orchestrator_register_data_sources(registry):
    registry.add("multi_io_random", multi_io_random)


@hookimpl
def orchestrator_register_stages(registry):
    registry.add("plot_model", plot_model, changes_model=False, check=_check_plot_model)


def _check_plot_model(args, key: str) -> None:
    """Before the first stage runs: a run whose diagram cannot be drawn stops before it trains."""
    _require_graphviz(key)
