"""The arrays of a ``data=npz`` file: their names and shapes checked from the headers, then loaded.

``x_train`` and ``y_train`` are required; ``x_validation`` (or ``x_val``) with
``y_validation`` (``y_val``), and ``x_test`` with ``y_test``, give those splits.
The check reads each array's header inside the zip file (its shape and dtype)
and loads nothing, so it runs with the config check, before TensorFlow. Example::

    names = check_npz({"path": "arrays.npz"}, "data")    # {"train": ("x_train", "y_train"), ...}
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import UserError
from orchestrator_plugins.data_files.checks import existing_file
from orchestrator_plugins.data_files.splits import counts, resolve_fractions

#: The arrays of a ``data=npz`` file: split -> (x name, y name), with the accepted short names.
NPZ_ARRAYS = {
    "train": (("x_train",), ("y_train",)),
    "validation": (("x_validation", "x_val"), ("y_validation", "y_val")),
    "test": (("x_test",), ("y_test",)),
}


def npz_headers(path: Path, key: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{array name: (shape, dtype)}`` of an ``.npz``, read from the arrays' headers (nothing is loaded)."""
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = {}
            for member in archive.namelist():
                if member.endswith(".npy"):
                    with archive.open(member) as handle:
                        version = np.lib.format.read_magic(handle)
                        read = (
                            np.lib.format.read_array_header_1_0
                            if version == (1, 0)
                            else np.lib.format.read_array_header_2_0
                        )
                        shape, _, dtype = read(handle)
                        shapes[member[: -len(".npy")]] = (tuple(shape), dtype)
            return shapes
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UserError(f"{key}.path", f"{path} is not a NumPy .npz file ({error}).") from None


def npz_names(shapes: Mapping[str, tuple[int, ...]], key: str) -> dict[str, tuple[str, str]]:
    """``{split: (x name, y name)}`` for the splits the file holds; train is required, pairs complete."""
    found: dict[str, tuple[str, str]] = {}
    listed = ", ".join(sorted(shapes)) or "(none)"
    for split, (x_names, y_names) in NPZ_ARRAYS.items():
        x = [name for name in x_names if name in shapes]
        y = [name for name in y_names if name in shapes]
        if len(x) > 1 or len(y) > 1:
            raise UserError(
                f"{key}.path", f"the file has both {' and '.join(x + y)}; keep one name per array."
            )
        if not x and not y:
            if split == "train":
                raise UserError(f"{key}.path", f"the file needs x_train and y_train; it has {listed}.")
            continue
        if not x or not y:
            lacking = y_names[0] if x else x_names[0]
            raise UserError(
                f"{key}.path",
                f"{lacking} is missing (each x array needs its y array); the file has {listed}.",
            )
        found[split] = (x[0], y[0])
    return found


def check_npz(args: Mapping[str, Any], key: str) -> dict[str, tuple[str, str]]:
    """``data=npz``: the arrays present, lengths that match, the same sample shape in every split."""
    path = existing_file(args.get("path"), key, "a NumPy .npz file with x_train and y_train")
    headers = npz_headers(path, key)
    shapes = {name: shape for name, (shape, _) in headers.items()}
    names = npz_names(shapes, key)
    x_train, y_train = names["train"]
    for x, y in names.values():
        for name in (x, y):
            if headers[name][1].hasobject:
                raise UserError(
                    f"{key}.path",
                    f"{name} holds Python objects, which NumPy loads only with pickling allowed (it could "
                    "run code); save it as an array of numbers.",
                )
        if not shapes[x] or not shapes[y]:
            raise UserError(f"{key}.path", f"{x} and {y} must hold one row per sample, not a single value.")
        if shapes[x][0] != shapes[y][0]:
            raise UserError(
                f"{key}.path",
                f"{x} has {shapes[x][0]} samples but {y} has {shapes[y][0]}; "
                "they must match, one label per sample.",
            )
        if shapes[x][1:] != shapes[x_train][1:] or shapes[y][1:] != shapes[y_train][1:]:
            raise UserError(
                f"{key}.path",
                f"the samples of {x}/{y} have the shape {shapes[x][1:]}/{shapes[y][1:]}, those of "
                f"{x_train}/{y_train} {shapes[x_train][1:]}/{shapes[y_train][1:]}; they must be the same.",
            )
    given = {split: f"{names[split][0]} in the file" for split in ("validation", "test") if split in names}
    fractions = resolve_fractions(args.get("validation_fraction"), args.get("test_fraction"), key, given)
    counts(shapes[x_train][0], *fractions, key)
    return names


def load_arrays(path: str, names: Mapping[str, tuple[str, str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (x, y)}`` of the splits ``names`` lists (pickled objects are never loaded)."""
    with np.load(Path(path).expanduser(), allow_pickle=False) as archive:
        return {split: (archive[x], archive[y]) for split, (x, y) in names.items()}


def class_count(y: np.ndarray) -> int | None:
    """The class count of labels that are one-hot rows or class numbers; ``None`` for a regression target."""
    if y.ndim == 2 and y.shape[1] > 1:
        return int(y.shape[1])
    values = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if not len(values) or not np.all(values == np.round(values)):
        return None
    return int(values.max()) + 1
