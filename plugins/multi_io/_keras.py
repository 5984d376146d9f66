"""The TensorFlow side of ``multi_io_random``: a split as the guide's ``tf.data.Dataset``.

Imported by the data source only with ``as_dataset: true``, never when plugins load::

    data: {name: multi_io_random, layout: dict, as_dataset: true, batch_size: 64}
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def to_dataset(x: Any, y: Any, batch_size: int, shuffle_buffer: int, seed: int):
    """``Dataset.from_tensor_slices((x, y))[.shuffle(shuffle_buffer, seed)].batch(batch_size)``.

    Lists become tuples: ``tf.data`` would stack a list into one tensor. A
    ``shuffle_buffer`` of 0 keeps the order (the guide shuffles the training split only).

    Example::

        to_dataset([images, series], [scores, classes], batch_size=64, shuffle_buffer=1024, seed=0)
    """
    if isinstance(x, list):
        x, y = tuple(x), tuple(y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_buffer:
        dataset = dataset.shuffle(buffer_size=shuffle_buffer, seed=seed)
    return dataset.batch(batch_size)
