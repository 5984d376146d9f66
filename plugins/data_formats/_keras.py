"""The Keras input objects behind the ``data_formats`` wrappers; imported only when a run uses one.

Each function turns one in-memory split ``(x, y[, sample_weight])`` into the
form the Keras guide feeds to ``Model.fit``:

* :func:`to_tf_dataset`: ``tf.data.Dataset.from_tensor_slices(split).shuffle(1024).batch(64)``;
* :class:`SplitPyDataset`: a ``keras.utils.PyDataset`` of batches that reshuffles
  its samples in ``on_epoch_end``;
* :func:`endless_batches`: an infinite Python generator of batches (Keras needs
  ``steps_per_epoch`` with it);
* :func:`to_dataframes`: ``x`` as a pandas DataFrame (``y`` a Series).

The PyDataset and the generator share :class:`Batches`: one pass over a split
in batches, in order or in a fresh random order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import keras
import numpy as np

from orchestrator import length, unpack


def parts(split: Any) -> tuple[Any, ...]:
    """``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``: the split without its ``None`` tail."""
    x, y, sample_weight = unpack(split)
    if sample_weight is not None:
        return (x, y, sample_weight)
    return (x,) if y is None else (x, y)


def select(structure: Any, rows: np.ndarray) -> Any:
    """The given rows of an array, or of each array in a (nested) list, tuple or dict."""
    if structure is None:
        return None
    if isinstance(structure, Mapping):
        return {key: select(value, rows) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(select(value, rows) for value in structure)
    return np.asarray(structure)[rows]


class Batches:
    """One pass over a split in batches of ``batch_size`` (the last one may be smaller).

    Args:
        split: ``(x, y[, sample_weight])`` arrays (or lists or dicts of arrays).
        batch_size: samples per batch.
        shuffle: draw a new random order of the samples at each :meth:`reshuffle`
            (and at the start); otherwise the split's own order, always.
        seed: seed of the order; ``None`` uses NumPy's global generator, which
            the run's ``seed`` sets.
    """

    def __init__(self, split: Any, batch_size: int, shuffle: bool = False, seed: int | None = None):
        self.parts = parts(split)
        self.size = length(self.parts[0]) or 0
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self._random = np.random.default_rng(seed) if seed is not None else np.random
        self.order = np.arange(self.size)
        self.reshuffle()

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return select(self.parts, rows)

    def reshuffle(self) -> None:
        """A new random order of the samples (when shuffling)."""
        if self.shuffle:
            self.order = self._random.permutation(self.size)


class SplitPyDataset(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` over :class:`Batches`, as in the guide's ``ExamplePyDataset``.

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` go to
    ``PyDataset.__init__``: Keras then loads batches in that many threads (or
    processes) ahead of training. ``on_epoch_end`` reshuffles the samples, so each
    epoch sees every sample once, in new batches.
    """

    def __init__(self, batches: Batches, workers: int = 1, use_multiprocessing: bool = False, **kwargs):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, **kwargs)
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return self.batches[index]

    def on_epoch_end(self) -> None:
        self.batches.reshuffle()


def endless_batches(batches: Batches) -> Iterator[tuple[Any, ...]]:
    """Pass after pass over ``batches``, reshuffled between passes: a generator that never ends.

    One pass is ``len(batches)`` batches; give Keras that many as ``steps_per_epoch``
    (``validation_steps``, ``steps``) so that an epoch is one pass over the split.
    """
    while True:
        for index in range(len(batches)):
            yield batches[index]
        batches.reshuffle()


def to_tf_dataset(split: Any, batch_size: int, shuffle_buffer: int | None = None, repeat: bool = False):
    """``Dataset.from_tensor_slices(split)[.shuffle(shuffle_buffer)].batch(batch_size)[.repeat()]``.

    The shuffle buffer draws a new order at every pass (``reshuffle_each_iteration``);
    a dataset of ``(x, y, sample_weight)`` yields weighted batches.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(parts(split))
    if shuffle_buffer:
        dataset = dataset.shuffle(buffer_size=int(shuffle_buffer))
    dataset = dataset.batch(int(batch_size))
    return dataset.repeat() if repeat else dataset


def to_dataframes(split: Any) -> tuple[Any, ...]:
    """``x`` as a pandas DataFrame (one column per feature), ``y`` as a Series (a DataFrame if 2-D).

    ``x`` of more than two dimensions is flattened per sample; a list or dict of
    inputs becomes a list or dict of DataFrames.
    """
    x, *rest = parts(split)
    return (_frame(x, "x"), *(_frame(part, "label") for part in rest[:1]), *rest[1:])


def _frame(values: Any, name: str) -> Any:
    import pandas as pd

    if isinstance(values, Mapping):
        return {key: _frame(value, str(key)) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return type(values)(_frame(value, f"{name}{i}") for i, value in enumerate(values))
    values = np.asarray(values)
    if values.ndim == 1:
        return pd.Series(values, name=name)
    values = values.reshape(len(values), -1)
    width = len(str(values.shape[1] - 1))
    return pd.DataFrame(values, columns=[f"{name}_{i:0{width}d}" for i in range(values.shape[1])])
