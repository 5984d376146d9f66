"""The Keras side of ``data=image_folder``: ``keras.utils.image_dataset_from_directory``, split three ways.

Imported only when a run uses the source. The images stay on disk: each split is
a ``tf.data.Dataset`` that reads, decodes and resizes its files batch by batch.

Keras cuts one hold-out share off the shuffled file list
(``validation_split=validation + test``, ``subset="both"``, ``seed``); that share
comes back in a fixed order, and its first ``int(validation * count)`` images
validate, the rest test (the rule of ``splits.py``). A split that has a folder of
its own (``validation_path``, ``test_path``) is read from it instead, with the
training folder's class names. Example::

    splits, class_names = read_splits(path="flowers", image_size=(64, 64), color_mode="rgb", ...)
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import keras
import tensorflow as tf


def read_splits(
    path: str,
    validation_path: str | None,
    test_path: str | None,
    fractions: tuple[float, float],
    sizes: dict[str, int],
    image_size: tuple[int, int],
    color_mode: str,
    label_mode: str,
    batch_size: int,
    seed: int,
    interpolation: str,
    crop_to_aspect_ratio: bool,
    flatten: bool,
) -> tuple[dict[str, Any], list[str]]:
    """``({split: batched dataset or None}, class names)``."""
    options = dict(
        image_size=image_size,
        color_mode=color_mode,
        label_mode=label_mode,
        interpolation=interpolation,
        crop_to_aspect_ratio=crop_to_aspect_ratio,
        batch_size=None,
        verbose=False,
    )
    validation, test = fractions
    held = validation + test
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Using N files for training" regardless
        if held:
            train, holdout = keras.utils.image_dataset_from_directory(
                path, validation_split=held, subset="both", shuffle=True, seed=seed, **options
            )
        else:
            train = keras.utils.image_dataset_from_directory(path, shuffle=True, seed=seed, **options)
            holdout = None
    class_names = list(train.class_names)
    splits: dict[str, Any] = {"train": train, "validation": None, "test": None}
    if holdout is not None:
        splits["validation"] = holdout.take(sizes["validation"]) if validation else None
        splits["test"] = holdout.skip(sizes["validation"]) if test else None
    for name, folder in (("validation", validation_path), ("test", test_path)):
        if folder is not None:
            splits[name] = keras.utils.image_dataset_from_directory(
                folder, shuffle=False, class_names=class_names, **options
            )
    pixels = math.prod(image_size) * {"grayscale": 1, "rgb": 3, "rgba": 4}[color_mode]
    return {
        name: _batched(split, batch_size, pixels if flatten else None) for name, split in splits.items()
    }, class_names


def _batched(dataset: Any, batch_size: int, flat: int | None) -> Any:
    if dataset is None:
        return None
    dataset = dataset.batch(batch_size)
    if flat is not None:
        dataset = dataset.map(
            lambda x, y: (tf.reshape(x, (-1, flat)), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
