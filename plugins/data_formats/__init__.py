"""Data-source wrappers: another source's splits as tf.data, PyDataset, generator, DataFrame, or weighted.

The Keras guide feeds one model the same data in several forms ("Training &
evaluation with the built-in methods", sections on tf.data, PyDataset, other
inputs, class and sample weights). Each form here is a data source that wraps
another one, named in ``source`` with its own arguments, and converts its
in-memory ``(x, y[, sample_weight])`` splits::

    data: {name: tf_data, source: {name: mnist}, batch_size: 64, shuffle_buffer: 1024}
    data: {name: py_dataset, source: {name: mnist}, batch_size: 64, workers: 2,
           use_multiprocessing: false, shuffle: true}
    data: {name: generator, source: {name: mnist}, batch_size: 64}
    data: {name: pandas, source: {name: mnist}}
    data: {name: sample_weighted, source: {name: mnist}, class_weights: {5: 2.0}}

Wrappers nest: ``tf_data`` around ``sample_weighted`` gives a Dataset that
yields ``(x, y, sample_weight)`` batches. Only the training split is shuffled
(``tf_data``, ``py_dataset``, ``generator``); validation and test keep their
order, so predictions line up with the labels.

``info`` is the inner source's, plus ``format`` (``"tf_data"``), ``formats``
(the chain, innermost first) and, for the batching wrappers, ``batch_size`` and
``steps``: ``{split: ceil(samples / batch_size)}``, the batches of one pass. The
run is tagged ``data.format`` (``sample_weighted+tf_data``).

Steps. A Python generator (and ``tf_data`` with ``repeat: true``) never ends, so
Keras needs ``steps_per_epoch``, ``validation_steps`` and ``steps``: the built-in
stages read one pass from ``info["steps"]`` unless the stage gives its own (or
``trainer.limit_batches`` is smaller). The ``generator`` source also makes a new
generator for every stage (``Data.split`` returns a fresh one), so that evaluate
and predict each start at the first test sample.

TensorFlow, Keras and pandas are imported inside the factories (through
``_keras.py`` beside this file), never when plugins load.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator import Data, UserError, hookimpl, is_in_memory, length, split_spec, unpack

log = logging.getLogger("orchestrator.data")

SPLITS = ("train", "validation", "test")


@dataclass
class FreshSplits(Data):
    """Data whose splits are made anew each time a stage asks for one.

    A Python generator can be consumed once: ``split(name)``, which the stages
    call, returns a new one from ``makers[name]``. The attributes ``train``,
    ``validation`` and ``test`` hold one generator each, for code that reads them.
    """

    makers: dict[str, Callable[[], Any]] = field(default_factory=dict, repr=False)

    def split(self, name: str) -> Any:
        current = super().split(name)
        maker = self.makers.get(name)
        return maker() if maker is not None else current


# -- the wrappers ---------------------------------------------------------------------


def tf_data(
    context,
    key: str,
    source: dict,
    batch_size: int = 64,
    shuffle_buffer: int | None = 1024,
    repeat: bool = False,
) -> Data:
    """Each split as ``Dataset.from_tensor_slices(split)``, the training split shuffled, batched.

    Args:
        shuffle_buffer: buffer of the training split's ``shuffle`` (``null`` or 0: no shuffling).
        repeat: repeat the training split without end (``.repeat()``); fit reads
            one pass per epoch (``info["steps"]["train"]``) unless told otherwise.
    """
    from orchestrator_plugins.data_formats._keras import to_tf_dataset

    def convert(name: str, split: Any) -> Any:
        training = name == "train"
        return to_tf_dataset(split, batch_size, shuffle_buffer if training else None, repeat and training)

    return _wrap(context, key, source, "tf_data", convert, batch_size)


def py_dataset(
    context,
    key: str,
    source: dict,
    batch_size: int = 64,
    workers: int = 1,
    use_multiprocessing: bool = False,
    max_queue_size: int = 10,
    shuffle: bool = True,
    seed: int | None = None,
) -> Data:
    """Each split as a ``keras.utils.PyDataset``; the training split reshuffles its samples every epoch.

    Args:
        workers: threads (or processes) that load batches ahead of training.
        use_multiprocessing: processes instead of threads (the data is forked, not pickled).
        shuffle: a new order of the training samples at the start and after every epoch.
        seed: seed of that order (default: NumPy's global generator, set by ``seed``).
    """
    from orchestrator_plugins.data_formats._keras import Batches, SplitPyDataset

    def convert(name: str, split: Any) -> Any:
        batches = Batches(split, batch_size, shuffle=shuffle and name == "train", seed=seed)
        return SplitPyDataset(
            batches, workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )

    return _wrap(context, key, source, "py_dataset", convert, batch_size)


def generator(
    context, key: str, source: dict, batch_size: int = 64, shuffle: bool = True, seed: int | None = None
) -> Data:
    """Each split as an endless Python generator of batches, new for every stage.

    Keras needs the steps of one pass (``info["steps"]``) as ``steps_per_epoch``,
    ``validation_steps`` and ``steps``; see the module docstring.

    Args:
        shuffle: a new order of the training samples at every pass.
        seed: seed of that order (default: NumPy's global generator, set by ``seed``).
    """
    from orchestrator_plugins.data_formats._keras import Batches, endless_batches

    def convert(name: str, split: Any) -> Callable[[], Iterator]:
        training = shuffle and name == "train"
        return lambda: endless_batches(Batches(split, batch_size, shuffle=training, seed=seed))

    return _wrap(context, key, source, "generator", convert, batch_size, fresh=True)


def pandas(context, key: str, source: dict) -> Data:
    """Each split's ``x`` as a pandas DataFrame (one column per feature) and ``y`` as a Series.

    The splits stay ``(x, y[, sample_weight])`` tuples: Keras batches and
    shuffles a DataFrame as it does arrays (``trainer.batch_size`` applies).
    """
    from orchestrator_plugins.data_formats._keras import to_dataframes

    return _wrap(context, key, source, "pandas", lambda name, split: to_dataframes(split))


def sample_weighted(
    context,
    key: str,
    source: dict,
    class_weights: dict,
    splits: list[str] | tuple[str, ...] = ("train",),
    default: float = 1.0,
) -> Data:
    """Adds a per-sample weight to each of ``splits``: the weight of the sample's class.

    ``sample_weight[i] = class_weights.get(class of y[i], default)``, as Keras
    turns ``class_weight`` into sample weights (one-hot labels: the arg-max). A
    split that has weights already gets the product.

    Args:
        class_weights: ``{class: weight}`` (``{5: 2.0}``).
        splits: the splits to weight (default: ``[train]``, as the guide does);
            add ``validation`` or ``test`` to weight their losses too.
        default: the weight of a class that ``class_weights`` does not name.
    """
    unknown = [name for name in splits if name not in SPLITS]
    if unknown:
        raise UserError(f"{key}.splits", f"unknown split(s) {unknown}; use train, validation or test.")
    weights = _class_weights(class_weights, f"{key}.class_weights")

    def convert(name: str, split: Any) -> Any:
        if name not in splits:
            return split
        x, y, sample_weight = unpack(split)
        if y is None:
            raise UserError(key, f"the {name} split has no labels to take class weights from.")
        weight = class_sample_weights(y, weights, default)
        return (x, y, weight if sample_weight is None else weight * sample_weight)

    return _wrap(context, key, source, "sample_weighted", convert)


def class_sample_weights(y: Any, class_weights: Mapping[int, float], default: float = 1.0):
    """``float32`` weights, one per sample: the weight of its class (Keras' own rule for ``class_weight``)."""
    import numpy as np

    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] > 1 else y[..., 0]
    classes = np.round(y).astype("int64")
    weights = np.full(classes.shape, default, dtype="float32")
    for label, weight in class_weights.items():
        weights[classes == label] = weight
    return weights


# -- shared by every wrapper ----------------------------------------------------------


def _wrap(
    context,
    key: str,
    source: Any,
    fmt: str,
    convert: Callable[[str, Any], Any],
    batch_size: int | None = None,
    fresh: bool = False,
) -> Data:
    """Build the inner source, ``convert(name, split)`` each in-memory split, extend ``info``.

    With ``fresh``, ``convert`` returns a maker and the result is :class:`FreshSplits`.
    """
    if batch_size is not None and int(batch_size) < 1:
        raise UserError(f"{key}.batch_size", f"must be 1 or more, got {batch_size}.")
    inner = _inner(context, source, f"{key}.source")
    converted: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for name in SPLITS:
        split = inner.split(name)
        if split is None:
            converted[name] = None
            continue
        if not is_in_memory(split):
            raise UserError(
                f"{key}.source",
                f"'{fmt}' converts in-memory (x, y[, sample_weight]) arrays, but the {name} split of "
                f"'{source.get('name')}' is a {type(split).__name__}. Put '{fmt}' inside that wrapper "
                f"(e.g. tf_data around sample_weighted, not the reverse).",
            )
        sizes[name] = length(unpack(split)[0]) or 0
        converted[name] = convert(name, split)
    formats = [*inner.info.get("formats", []), fmt]
    info = {**inner.info, "format": fmt, "formats": formats, "reusable": False}
    if batch_size is not None:
        info["batch_size"] = int(batch_size)
        info["steps"] = {name: math.ceil(size / int(batch_size)) for name, size in sizes.items()}
    if fresh:
        makers = {name: maker for name, maker in converted.items() if maker is not None}
        first = {name: (maker() if maker is not None else None) for name, maker in converted.items()}
        return FreshSplits(**first, info=info, makers=makers)
    return Data(**converted, info=info)


def _inner(context, source: Any, key: str) -> Data:
    """The data of the nested spec ``source`` (``{name: mnist, ...}``), built through the registry."""
    name, args = split_spec(source, key)
    data = context.registries["data_source"].create(name, args, key, context=context)
    if not isinstance(data, Data):
        raise UserError(f"{key}.name", f"data source '{name}' returned {type(data).__name__}, not Data.")
    return data


def _class_weights(class_weights: Any, key: str) -> dict[int, float]:
    if not isinstance(class_weights, Mapping) or not class_weights:
        raise UserError(key, f"expected a mapping class -> weight (e.g. {{5: 2.0}}), got {class_weights!r}.")
    try:
        return {int(label): float(weight) for label, weight in class_weights.items()}
    except (TypeError, ValueError):
        message = f"classes must be integers and weights numbers, got {class_weights!r}."
        raise UserError(key, message) from None


@hookimpl
def orchestrator_register_data_sources(registry):
    registry.add("tf_data", tf_data)
    registry.add("py_dataset", py_dataset)
    registry.add("generator", generator)
    registry.add("pandas", pandas)
    registry.add("sample_weighted", sample_weighted)


__all__ = [
    "FreshSplits",
    "class_sample_weights",
    "generator",
    "pandas",
    "py_dataset",
    "sample_weighted",
    "tf_data",
]
