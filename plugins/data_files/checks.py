"""What the sources of this package check before TensorFlow is imported: paths, columns, shapes.

Each ``check_*`` function is a registry ``check(args, key)``: it runs with the
rest of the config check, so a wrong path, a missing column or mismatched
arrays stop the command before TensorFlow loads and before any MLflow run
exists. The readers here use the standard library, NumPy and Pillow only (a
CSV's header with :mod:`csv`, a Parquet file's schema with pyarrow; an
``.npz``'s arrays are checked in ``arrays.py``). Example::

    check_image_folder({"path": "flowers", "image_size": [64, 64]}, "data")
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import UserError, choices_text, closest
from orchestrator_plugins.data_files.splits import by_column, check_split_column, counts, resolve_fractions

#: The files ``keras.utils.image_dataset_from_directory`` reads, and the formats TensorFlow decodes.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TF_FORMATS = ("BMP", "GIF", "JPEG", "PNG")
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
PARQUET_SUFFIXES = (".parquet", ".pq")


# -- images -------------------------------------------------------------------------------


def check_image_size(image_size: Any, key: str) -> tuple[int, int]:
    """``(height, width)`` from ``[height, width]``."""
    ok = (
        isinstance(image_size, Sequence)
        and len(image_size) == 2
        and all(isinstance(side, int) and not isinstance(side, bool) and side >= 1 for side in image_size)
    )
    if not ok:
        raise UserError(
            f"{key}.image_size",
            f"give [height, width] in pixels, two whole numbers of 1 or more (e.g. [64, 64]); "
            f"got {image_size!r}.",
        )
    return int(image_size[0]), int(image_size[1])


def class_folders(path: Any, key: str, field: str = "path") -> dict[str, list[Path]]:
    """``{class name: its image files}`` of a folder with a subfolder per class, in Keras's order."""
    if path is None:
        raise UserError(f"{key}.{field}", "give the folder that holds one subfolder of images per class.")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise UserError(
            f"{key}.{field}",
            f"{folder} does not exist; give a folder with one subfolder of images per class "
            "(<folder>/cats/1.jpg, <folder>/dogs/2.jpg, ...).",
        )
    if not folder.is_dir():
        raise UserError(f"{key}.{field}", f"{folder} is a file; give a folder with one subfolder per class.")
    classes = sorted(entry for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        loose = sum(1 for entry in folder.iterdir() if entry.suffix.lower() in IMAGE_SUFFIXES)
        hint = f" ({loose} images lie directly in it: move them into class subfolders)" if loose else ""
        raise UserError(f"{key}.{field}", f"{folder} has no class subfolders{hint}.")
    found: dict[str, list[Path]] = {}
    for subfolder in classes:
        images = sorted(
            file for file in subfolder.rglob("*") if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file()
        )
        if not images:
            raise UserError(
                f"{key}.{field}",
                f"the class folder {subfolder} has no images ({', '.join(IMAGE_SUFFIXES)}); "
                "add images or remove the folder.",
            )
        found[subfolder.name] = images
    return found


def unreadable_images(files: Sequence[Path], formats: Sequence[str] | None = None) -> list[str]:
    """The files Pillow cannot identify as images (or of a format outside ``formats``), with the reason."""
    from PIL import Image, UnidentifiedImageError

    bad = []
    for file in files:
        try:
            with Image.open(file) as image:
                kind = image.format
        except (OSError, UnidentifiedImageError, ValueError) as error:
            bad.append(f"{file} ({type(error).__name__})")
            continue
        if formats is not None and kind not in formats:
            bad.append(f"{file} ({kind}, not {', '.join(formats)})")
    return bad


def refuse_unreadable(files: Sequence[Path], key: str, formats: Sequence[str] | None = None) -> None:
    bad = unreadable_images(files, formats)
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise UserError(key, f"{len(bad)} file(s) are not readable images: {shown}. Replace or remove them.")


def check_image_folder(args: Mapping[str, Any], key: str) -> None:
    """``data=image_folder``: the folders, the image files, the size, the split fractions."""
    check_image_size(args.get("image_size", (256, 256)), key)
    classes = class_folders(args.get("path"), key)
    files = [file for found in classes.values() for file in found]
    given = {}
    for name in ("validation", "test"):
        separate = args.get(f"{name}_path")
        if separate is None:
            continue
        given[name] = f"{key}.{name}_path"
        other = class_folders(separate, key, f"{name}_path")
        if sorted(other) != sorted(classes):
            raise UserError(
                f"{key}.{name}_path",
                f"its class folders ({choices_text(other)}) differ from those of {key}.path "
                f"({choices_text(classes)}); they must be the same.",
            )
        files += [file for found in other.values() for file in found]
    if args.get("verify_images", True):
        refuse_unreadable(files, f"{key}.path", TF_FORMATS)
    fractions = resolve_fractions(args.get("validation_fraction"), args.get("test_fraction"), key, given)
    counts(sum(len(found) for found in classes.values()), *fractions, key, "images")


@dataclass(frozen=True)
class ImageRows:
    """The rows of an image list: each file (resolved against the CSV's folder), its label, its split."""

    files: list[Path]
    labels: list[str]
    splits: dict[str, np.ndarray] | None


def image_rows(args: Mapping[str, Any], key: str) -> ImageRows:
    """The rows of ``data=image_files``'s CSV, checked: columns, files, split column."""
    path = existing_file(args.get("path"), key, "a CSV file with a column of image files and one of labels")
    file_column, label_column = args.get("file", "file"), args.get("label", "label")
    split_column = args.get("split_column")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=args.get("separator", ","))
        columns = reader.fieldnames or []
        for field, column in (("file", file_column), ("label", label_column), ("split_column", split_column)):
            if column is not None:
                _refuse_unknown_column(column, columns, f"{key}.{field}", path)
        rows = list(reader)
    if not rows:
        raise UserError(f"{key}.path", f"{path} has a header but no rows.")
    files = [_resolve(row[file_column], path.parent) for row in rows]
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise UserError(
            f"{key}.path",
            f"{len(missing)} file(s) named in {path.name} do not exist (first: {missing[0]}); "
            "relative paths are read from the CSV's folder.",
        )
    labels = [(row[label_column] or "").strip() for row in rows]
    if "" in labels:
        raise UserError(f"{key}.label", f"row {labels.index('') + 2} of {path.name} has no label.")
    splits = None
    if split_column is not None:
        splits = by_column([row[split_column] for row in rows], f"{key}.split_column")
    return ImageRows(files, labels, splits)


def check_image_files(args: Mapping[str, Any], key: str) -> None:
    """``data=image_files``: the CSV, its columns and files, the size, the splits."""
    check_image_size(args.get("image_size", (256, 256)), key)
    _check_workers(args, key)
    check_split_column(
        args.get("split_column"), args.get("validation_fraction"), args.get("test_fraction"), key
    )
    rows = image_rows(args, key)
    if args.get("verify_images", True):
        refuse_unreadable(rows.files, f"{key}.path")
    if rows.splits is None:
        fractions = resolve_fractions(args.get("validation_fraction"), args.get("test_fraction"), key)
        counts(len(rows.files), *fractions, key, "images")


def _check_workers(args: Mapping[str, Any], key: str) -> None:
    for field in ("workers", "max_queue_size", "batch_size"):
        value = args.get(field, 1)
        if isinstance(value, int) and value < 1:
            raise UserError(f"{key}.{field}", f"must be 1 or more, got {value}.")


# -- tables -------------------------------------------------------------------------------


def table_columns(path: Path, separator: str = ",") -> list[str]:
    """The column names of a CSV file (its header) or a Parquet file (its schema)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle, delimiter=separator), [])


def check_table(args: Mapping[str, Any], key: str) -> None:
    """``data=csv``: the file, the label, feature, categorical and split columns, the split fractions."""
    path = existing_file(args.get("path"), key, "a .csv file (or .parquet) with a header row")
    try:
        columns = table_columns(path, args.get("separator", ","))
    except Exception as error:
        raise UserError(f"{key}.path", f"{path} cannot be read as a table: {error}") from None
    label, split_column = args.get("label", "label"), args.get("split_column")
    _refuse_unknown_column(label, columns, f"{key}.label", path)
    if split_column is not None:
        _refuse_unknown_column(split_column, columns, f"{key}.split_column", path)
    features = args.get("features")
    for column in features or []:
        _refuse_unknown_column(column, columns, f"{key}.features", path)
        if column in (label, split_column):
            raise UserError(
                f"{key}.features", f"{column!r} is the label or split column; it cannot be a feature."
            )
    chosen = features or [c for c in columns if c not in (label, split_column)]
    if not chosen:
        raise UserError(f"{key}.features", f"{path.name} has no column besides the label to learn from.")
    for column in args.get("categorical") or []:
        if column not in chosen:
            raise UserError(
                f"{key}.categorical",
                f"{column!r} is not a feature column.{closest(column, chosen)} "
                f"Features: {', '.join(chosen)}.",
            )
    check_split_column(split_column, args.get("validation_fraction"), args.get("test_fraction"), key)
    if split_column is None:
        resolve_fractions(args.get("validation_fraction"), args.get("test_fraction"), key)


def _refuse_unknown_column(column: str, columns: Sequence[str], key: str, path: Path) -> None:
    if column not in columns:
        raise UserError(
            key,
            f"no column {column!r} in {path.name}.{closest(column, columns)} "
            f"Its columns: {', '.join(columns) or '(none: the file is empty)'}.",
        )


# -- shared -------------------------------------------------------------------------------


def existing_file(path: Any, key: str, what: str) -> Path:
    if path is None:
        raise UserError(f"{key}.path", f"give {what}.")
    file = Path(path).expanduser()
    if not file.exists():
        raise UserError(f"{key}.path", f"{file} does not exist; give {what}.")
    if not file.is_file():
        raise UserError(f"{key}.path", f"{file} is a folder; give {what}.")
    return file


def _resolve(name: str, folder: Path) -> Path:
    file = Path(name.strip()).expanduser()
    return file if file.is_absolute() else folder / file
