"""The rest of an interrupted epoch: the one place that reads Keras's private data-adapter API.

A run saved in the middle of an epoch (``trainer.checkpoint_every_batches``)
goes on with the samples that epoch had not reached yet, in the order Keras
gave them. Keras draws an epoch's order of in-memory arrays from its array
adapter; the same adapter over ``0..n-1`` gives that order (under a seed, the
very one of the interrupted epoch), so the samples not trained yet are known.

The adapter lives in ``keras.src``, which Keras may change in any release, so
:func:`check_keras_version` refuses the versions this was not checked on with a
clear message instead of training on a wrong order.

Example::

    rest = rest_of_epoch(train, batch_size=64, batches_done=40, shuffle=True, validation_split=0.0)
    if rest is not None:
        x, y, sample_weight, validation = rest
"""

from __future__ import annotations

from typing import Any

from orchestrator.arrays import is_in_memory, length, select, take, unpack
from orchestrator.errors import UserError

#: The Keras versions whose array adapter this module was checked against (major, minor), inclusive.
SUPPORTED_KERAS = ((3, 3), (3, 99))


def check_keras_version(version: str) -> None:
    """Raise a :class:`UserError` naming the version when mid-epoch resume cannot trust its Keras."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return
    low, high = SUPPORTED_KERAS
    if not low <= (major, minor) <= high:
        raise UserError(
            "trainer.checkpoint_every_batches",
            f"resuming in the middle of an epoch needs Keras {low[0]}.{low[1]} to {high[0]}.x, "
            f"and this is Keras {version}. Resume from the last epoch's checkpoint instead: "
            "set trainer.checkpoint_every_batches=0.",
        )


def rest_of_epoch(train: Any, batch_size: int, batches_done: int, shuffle: Any, validation_split: float):
    """``(x, y, sample_weight, validation)`` of an epoch cut after ``batches_done`` batches.

    ``None`` for a dataset object, whose position cannot be recovered.
    """
    if not is_in_memory(train):
        return None
    import keras
    import numpy as np

    check_keras_version(keras.__version__)
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    x, y, sample_weight = unpack(train)
    validation = None
    if validation_split:
        (x, y, sample_weight), validation = train_validation_split(
            (x, y, sample_weight), validation_split=validation_split
        )
    order = np.arange(length(x))
    if shuffle:
        adapter = ArrayDataAdapter(order, batch_size=batch_size, shuffle=shuffle)
        batches = adapter.get_tf_dataset()
        order = np.concatenate([np.asarray(b[0] if isinstance(b, tuple) else b) for b in batches])
    rest = order[batches_done * batch_size :]
    return select(x, rest), select(y, rest), select(sample_weight, rest), validation


def build_metrics(model: Any, x: Any, y: Any, sample_weight: Any) -> None:
    """Create the compiled metrics' variables now (Keras makes them in the first step),
    so that the running values of an interrupted epoch can be put back before it goes on."""
    sample = (take(x, 1), take(y, 1)) + ((take(sample_weight, 1),) if sample_weight is not None else ())
    model._symbolic_build(data_batch=sample)
