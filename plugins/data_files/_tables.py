"""The pandas side of ``data=csv``: read a CSV or Parquet file, split it, encode and normalise the features.

Imported only when a run uses the source. The rules (docs/data-sources.md):

* categorical columns (by default the features that are not numeric) become
  one-hot columns ``<column>=<value>``, one per value seen in the training rows,
  sorted; a value that only validation or test rows have gets all zeros;
* numeric features are standardised, ``(x - mean) / std``, with the mean and the
  standard deviation (``ddof=0``) of the training rows only; a column that is
  constant there is only centred (its ``std`` is recorded as 1);
* labels: text labels and whole numbers are classes, numbered by their place in
  the sorted list of every value the label column holds (``class_names``);
  numbers with fractions are a regression target.

Example::

    table = read_table(Path("iris.csv"), ",")
    prepared = prepare(table, label="species", features=None, categorical=None, normalize=True,
                       rows={"train": ..., "validation": ..., "test": ...}, key="data")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import UserError
from orchestrator_plugins.data_files.checks import PARQUET_SUFFIXES


def read_table(path: Path, separator: str) -> pd.DataFrame:
    """The whole file as a DataFrame (Parquet by the suffix ``.parquet`` or ``.pq``, else CSV)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return pd.read_parquet(path)
    return pd.read_csv(path, sep=separator, encoding="utf-8-sig")


def prepare(
    table: pd.DataFrame,
    label: str,
    features: list[str] | None,
    categorical: list[str] | None,
    normalize: bool,
    rows: dict[str, np.ndarray],
    key: str,
    split_column: str | None = None,
) -> dict[str, Any]:
    """``{"splits": {name: (x, y) or None}, "record", "input_shape", "class_names"}``; ``rows`` are the
    row numbers of each split, and the statistics are those of ``rows["train"]``."""
    features = list(features or [c for c in table.columns if c not in (label, split_column)])
    _refuse_missing(table, [label, *features], key)
    if categorical is None:
        categorical = [c for c in features if not _is_number(table[c])]
    numeric = [c for c in features if c not in categorical]
    train = table.iloc[rows["train"]]
    categories = {c: sorted({str(v) for v in train[c]}) for c in categorical}
    means = {c: float(train[c].astype("float64").mean()) for c in numeric} if normalize else {}
    stds = {c: _std(train[c]) for c in numeric} if normalize else {}
    y_all, class_names = _labels(table[label])
    columns = [*numeric, *(f"{c}={v}" for c in categorical for v in categories[c])]
    splits: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for name in ("train", "validation", "test"):
        chosen = rows[name]
        if not len(chosen):
            splits[name] = None
            continue
        part = table.iloc[chosen]
        blocks = []
        for c in numeric:
            values = part[c].to_numpy(dtype="float64")
            if normalize:
                values = (values - means[c]) / stds[c]
            blocks.append(values[:, None])
        for c in categorical:
            values = part[c].astype(str).to_numpy()
            blocks.append((values[:, None] == np.asarray(categories[c])[None, :]).astype("float64"))
        x = np.concatenate(blocks, axis=1).astype("float32")
        splits[name] = (x, y_all[chosen])
    record = {
        "label": label,
        "features": features,
        "columns": columns,
        "categorical": {"encoding": "one-hot", "categories": categories},
        "normalization": {c: {"mean": means[c], "std": stds[c]} for c in means},
    }
    return {
        "splits": splits,
        "record": record,
        "input_shape": (len(columns),),
        "class_names": class_names,
    }


def _std(column: pd.Series) -> float:
    std = float(column.astype("float64").std(ddof=0))
    return std if std > 0 else 1.0


def _labels(column: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Class numbers and class names, or (a regression target) float32 values and ``None``."""
    if _is_number(column):
        values = column.to_numpy(dtype="float64")
        if not np.all(values == np.round(values)):
            return values.astype("float32"), None
        classes = np.unique(values.astype("int64"))
        return np.searchsorted(classes, values.astype("int64")).astype("int64"), [str(c) for c in classes]
    text = column.astype(str).str.strip().to_numpy()
    classes = np.unique(text)
    return np.searchsorted(classes, text).astype("int64"), [str(c) for c in classes]


def _is_number(column: pd.Series) -> bool:
    """Numbers (not booleans, which are categories)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _refuse_missing(table: pd.DataFrame, columns: list[str], key: str) -> None:
    for column in columns:
        missing = table[column].isna()
        if missing.any():
            first = int(np.flatnonzero(missing.to_numpy())[0]) + 1
            raise UserError(
                f"{key}.path",
                f"the column {column!r} has {int(missing.sum())} missing value(s) (the first in data row "
                f"{first}); fill or drop them first.",
            )
