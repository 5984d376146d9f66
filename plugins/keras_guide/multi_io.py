"""Keras side of the ``multi_io`` plugins; imported by their factories, never when plugins load.

The guide's model, its random NumPy data and ``keras.utils.plot_model``. The
registration module :mod:`orchestrator_plugins.multi_io` holds the signatures
and the documentation. Keras and TensorFlow are imported inside the functions
that need them, so that the data in NumPy form costs no TensorFlow import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import Data


def build_multi_io(
    image_shape: tuple[int, ...],
    timeseries_features: int,
    num_classes: int,
    filters: int,
    kernel_size: int,
    image_input_name: str,
    timeseries_input_name: str,
    score_output_name: str,
    class_output_name: str,
    class_activation: str | None,
) -> Any:
    """The guide's two-input, two-output functional model (outputs as a list: score, class)."""
    import keras
    from keras import layers

    image_input = keras.Input(shape=image_shape, name=image_input_name)
    timeseries_input = keras.Input(shape=(None, timeseries_features), name=timeseries_input_name)

    x1 = layers.Conv2D(filters, kernel_size)(image_input)
    x1 = layers.GlobalMaxPooling2D()(x1)

    x2 = layers.Conv1D(filters, kernel_size)(timeseries_input)
    x2 = layers.GlobalMaxPooling1D()(x2)

    x = layers.concatenate([x1, x2])

    score_output = layers.Dense(1, name=score_output_name)(x)
    class_output = layers.Dense(num_classes, activation=class_activation, name=class_output_name)(x)

    return keras.Model(inputs=[image_input, timeseries_input], outputs=[score_output, class_output])


def random_splits(
    sizes: dict[str, int],
    image_shape: tuple[int, ...],
    timesteps: int,
    features: int,
    num_classes: int,
    seed: int,
    input_names: tuple[str, str],
    output_names: tuple[str, str],
    layout: str,
    as_dataset: bool,
    batch_size: int,
    shuffle_buffer: int,
) -> dict[str, Any]:
    """One split per entry of ``sizes`` (``{"train": 100, ...}``; 0 gives ``None``), as the guide makes them.

    Like ``np.random.random_sample``, every value is uniform in [0, 1), the class
    targets included (the guide's targets are not one-hot). float32.
    """
    rng = np.random.default_rng(seed)
    splits: dict[str, Any] = {}
    for split, n in sizes.items():
        if not n:
            splits[split] = None
            continue
        image_data = rng.random((n, *image_shape), dtype=np.float32)
        ts_data = rng.random((n, timesteps, features), dtype=np.float32)
        score_targets = rng.random((n, 1), dtype=np.float32)
        class_targets = rng.random((n, num_classes), dtype=np.float32)
        if layout == "dict":
            x: Any = dict(zip(input_names, (image_data, ts_data), strict=True))
            y: Any = dict(zip(output_names, (score_targets, class_targets), strict=True))
        else:
            x, y = [image_data, ts_data], [score_targets, class_targets]
        splits[split] = _dataset(x, y, split, batch_size, shuffle_buffer, seed) if as_dataset else (x, y)
    return splits


def _dataset(x: Any, y: Any, split: str, batch_size: int, shuffle_buffer: int, seed: int):
    """The guide's ``tf.data.Dataset`` of ``(inputs, targets)``, shuffled (train only), batched.

    Lists become tuples: ``tf.data`` would stack a list into one tensor.
    """
    import tensorflow as tf

    if isinstance(x, list):
        x, y = tuple(x), tuple(y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if split == "train" and shuffle_buffer:
        dataset = dataset.shuffle(buffer_size=shuffle_buffer, seed=seed)
    return dataset.batch(batch_size)


def make_data(splits: dict[str, Any], info: dict[str, Any]) -> Data:
    return Data(
        train=splits["train"],
        validation=splits.get("validation"),
        test=splits.get("test"),
        info=info,
    )


def plot(model: Any, path: Path, **options: Any) -> None:
    """``keras.utils.plot_model(model, path, **options)``."""
    import keras

    keras.utils.plot_model(model, to_file=str(path), **options)
