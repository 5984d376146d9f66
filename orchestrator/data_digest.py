"""A digest of a split's content, so that two runs on different data are told apart.

The digest covers every array of an in-memory split, ``(x, y[, sample_weight])``
with arrays or lists or dicts of arrays: each array's dtype, shape and bytes, in
a fixed order (dict keys sorted). A change to any sample changes it; the same
content gives the same digest on every machine. ``hashlib`` releases the GIL
while it hashes a large buffer, so the digest can be computed in a thread
beside training. Dataset objects (``tf.data``, ``PyDataset``, generators) have
no content digest here: reading them would consume or slow them.

Example::

    split_digest((x_train, y_train))   # 'c0ffee12ab34cd56'
    split_digest(tf_dataset)           # None
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator.arrays import is_in_memory

DIGEST_LENGTH = 16


def split_digest(split: Any) -> str | None:
    """The hex digest of an in-memory split's content, or ``None`` for a dataset object."""
    if not is_in_memory(split):
        return None
    digest = hashlib.blake2b(digest_size=DIGEST_LENGTH // 2)
    for path, array in _leaves(split, ()):
        digest.update(f"{'/'.join(path)}|{array.dtype.str}|{array.shape}|".encode())
        if array.dtype.hasobject:
            digest.update(repr(array.tolist()).encode())
        else:
            digest.update(memoryview(_contiguous(array)).cast("B"))
    return digest.hexdigest()


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    import numpy as np

    if value is None:
        return
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from _leaves(value[key], (*path, str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, str(index)))
    elif hasattr(value, "to_numpy"):  # a pandas DataFrame or Series
        columns = getattr(value, "columns", None)
        if columns is not None:
            for column in columns:
                yield from _leaves(value[column], (*path, str(column)))
        else:
            yield path, np.asarray(value.to_numpy())
    else:
        yield path, np.asarray(value)


def _contiguous(array: Any) -> Any:
    import numpy as np

    return array if array.flags.c_contiguous else np.ascontiguousarray(array)
