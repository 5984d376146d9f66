"""Cutting a data set into train / validation / test: seeded fractions, or a column naming each row's split.

The rule every source of this package follows (``data.validation_fraction``,
``data.test_fraction``, ``data.seed``)::

    held out = int((validation + test) * count)     # the samples not trained on
    validation = int(validation * count)            # the first of them validate, the rest test

A seeded permutation of ``0..count-1`` decides which samples those are; each
split then keeps the file's order. The same seed and the same rows give the same
split, on every machine and in a resumed run. ``null`` for a fraction means
0.2 (validation) or 0.1 (test), unless that split comes from elsewhere (a folder,
arrays in the file, a split column): then it is 0. Example::

    fractions = resolve_fractions(None, None, "data", given={"test": "x_test in the file"})
    rows = cut(150, *fractions, seed=0, key="data")    # {"train": [...], "validation": [...], "test": []}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from orchestrator import UserError

SPLITS = ("train", "validation", "test")
#: ``null`` fractions: what a split is when nothing else provides it.
DEFAULT_FRACTIONS = {"validation": 0.2, "test": 0.1}


def resolve_fractions(
    validation: float | None, test: float | None, key: str, given: Mapping[str, str] | None = None
) -> tuple[float, float]:
    """``(validation, test)`` fractions to cut; ``given`` names the splits provided otherwise
    (``{"validation": "data.validation_path"}``), whose fraction must then be null or 0."""
    given = given or {}
    resolved = []
    for name, value in (("validation", validation), ("test", test)):
        field = f"{key}.{name}_fraction"
        if name in given:
            if value:
                raise UserError(
                    field,
                    f"the {name} split comes from {given[name]}; set {field}=null (or 0), "
                    f"or drop {given[name]}.",
                )
            resolved.append(0.0)
            continue
        if value is None:
            value = DEFAULT_FRACTIONS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise UserError(
                field,
                f"must be a number from 0 to below 1 (or null: {DEFAULT_FRACTIONS[name]}), got {value!r}.",
            )
        resolved.append(float(value))
    if resolved[0] + resolved[1] >= 1:
        raise UserError(
            f"{key}.validation_fraction",
            f"with {key}.test_fraction={resolved[1]} it leaves nothing to train on "
            f"({resolved[0]} + {resolved[1]} >= 1); make them smaller.",
        )
    return resolved[0], resolved[1]


def counts(count: int, validation: float, test: float, key: str, what: str = "samples") -> dict[str, int]:
    """``{split: size}`` under the module's rule; a fraction that cuts no sample is an error."""
    held = int((validation + test) * count)
    sizes = {"train": count - held, "validation": int(validation * count)}
    sizes["test"] = held - sizes["validation"]
    for name, fraction in (("validation", validation), ("test", test)):
        if fraction and sizes[name] < 1:
            raise UserError(
                f"{key}.{name}_fraction",
                f"{fraction} of {count} {what} is no {what[:-1]} at all; use a larger fraction, "
                f"or 0 for no {name} split.",
            )
    if sizes["train"] < 1:
        raise UserError(key, f"no {what} are left to train on: {count} {what} in all.")
    return sizes


def cut(count: int, validation: float, test: float, seed: int, key: str) -> dict[str, np.ndarray]:
    """``{split: row numbers}``: a seeded permutation cut by :func:`counts`, each split in file order."""
    sizes = counts(count, validation, test, key)
    order = np.random.default_rng(seed).permutation(count)
    ends = np.cumsum([sizes[name] for name in SPLITS])
    parts = np.split(order, ends[:-1])
    return {name: np.sort(part) for name, part in zip(SPLITS, parts, strict=True)}


def by_column(values: Sequence[object], key: str) -> dict[str, np.ndarray]:
    """``{split: row numbers}`` from a column whose values are ``train``, ``validation`` or ``test``."""
    names = np.asarray([str(value).strip() for value in values])
    wrong = sorted(set(names.tolist()) - set(SPLITS))
    if wrong:
        shown = ", ".join(repr(value) for value in wrong[:5])
        raise UserError(key, f"every value must be train, validation or test; found {shown}.")
    rows = {name: np.flatnonzero(names == name) for name in SPLITS}
    if not len(rows["train"]):
        raise UserError(key, "no row is marked train; the model needs rows to train on.")
    return rows


def check_split_column(
    split_column: str | None, validation: float | None, test: float | None, key: str
) -> None:
    """A split column and split fractions exclude each other."""
    if split_column is None:
        return
    for name, value in (("validation", validation), ("test", test)):
        if value:
            raise UserError(
                f"{key}.{name}_fraction",
                f"the splits come from the column {split_column!r} ({key}.split_column); "
                f"set {key}.{name}_fraction=null, or {key}.split_column=null to cut by fractions.",
            )
