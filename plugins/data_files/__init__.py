"""Data sources for the files users have: an image folder, a list of image files, a table, an ``.npz``.

::

    data=image_folder data.path=flowers data.image_size=[64,64]     # one subfolder per class
    data=image_files data.path=images.csv                          # a CSV of image files and labels
    data=csv data.path=iris.csv data.label=species                 # a CSV or Parquet table
    data=npz data.path=arrays.npz                                  # x_train, y_train, ...

Every source checks its paths, columns and array shapes with the rest of the
config (``checks.py``, ``arrays.py``), before TensorFlow is imported and before
any MLflow run exists, and splits by the same rule (``splits.py``): seeded fractions, or a
split of its own (a folder, a split column, arrays in the file). Each gives the
model builders ``input_shape`` and ``num_classes`` in ``info`` (so ``model=mlp``
needs no sizes), and what the run should record in ``info["record"]``: the class
names, the split sizes and, for tables, the encoding and the normalisation
statistics. This plugin's ``before_stage`` hook records it, as tags
(``data.class_names``, ``data.samples.<split>``) and as the artifact
``data/data_info.json``. docs/data-sources.md has every argument.

TensorFlow, Keras, pandas and Pillow are imported inside the factories (through
the ``_*.py`` modules beside this file), never when plugins load.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Literal

import numpy as np

from orchestrator import Data, hookimpl
from orchestrator_plugins.data_files import arrays, checks
from orchestrator_plugins.data_files.splits import SPLITS, by_column, counts, cut, resolve_fractions

log = logging.getLogger("orchestrator.data")

#: What a tag may hold; the whole record is in the artifact.
TAG_LIMIT = 5000
ColorMode = Literal["grayscale", "rgb", "rgba"]
#: The resizing methods ``image_dataset_from_directory`` accepts.
Interpolation = Literal[
    "bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"
]


def image_folder(
    key: str,
    path: str | None = None,
    image_size: list[int] | tuple[int, int] = (256, 256),
    color_mode: ColorMode = "rgb",
    label_mode: Literal["int", "categorical"] = "int",
    batch_size: int = 32,
    validation_fraction: float | None = None,
    test_fraction: float | None = None,
    validation_path: str | None = None,
    test_path: str | None = None,
    seed: int = 0,
    interpolation: Interpolation = "bilinear",
    crop_to_aspect_ratio: bool = False,
    flatten: bool = False,
    verify_images: bool = True,
) -> Data:
    """One subfolder of images per class, streamed from disk by ``keras.utils.image_dataset_from_directory``.

    Each split is a batched ``tf.data.Dataset`` of float32 images (0-255) and
    their class numbers (one-hot rows with ``label_mode: categorical``); classes
    are the subfolders in sorted order. ``flatten`` gives each image as one row
    (for ``model=mlp``). Example::

        data: {name: image_folder, path: flowers, image_size: [64, 64], validation_fraction: 0.2}
    """
    from orchestrator_plugins.data_files._image_folder import read_splits

    classes = checks.class_folders(path, key)
    separate = {
        name: folder for name, folder in (("validation", validation_path), ("test", test_path)) if folder
    }
    given = {name: f"{key}.{name}_path" for name in separate}
    fractions = resolve_fractions(validation_fraction, test_fraction, key, given)
    sizes = counts(sum(len(files) for files in classes.values()), *fractions, key, "images")
    size = checks.check_image_size(image_size, key)
    splits, class_names = read_splits(
        path=str(path),
        validation_path=validation_path,
        test_path=test_path,
        fractions=fractions,
        sizes=sizes,
        image_size=size,
        color_mode=color_mode,
        label_mode=label_mode,
        batch_size=batch_size,
        seed=seed,
        interpolation=interpolation,
        crop_to_aspect_ratio=crop_to_aspect_ratio,
        flatten=flatten,
    )
    for name, folder in separate.items():
        sizes[name] = sum(len(files) for files in checks.class_folders(folder, key, f"{name}_path").values())
    shape = _image_shape(size, color_mode, flatten)
    return _data(
        splits, shape, class_names, sizes, f"image_folder:{path}", {}, reusable=False, batch_size=batch_size
    )


def image_files(
    key: str,
    path: str | None = None,
    file: str = "file",
    label: str = "label",
    separator: str = ",",
    image_size: list[int] | tuple[int, int] = (256, 256),
    color_mode: ColorMode = "rgb",
    batch_size: int = 32,
    validation_fraction: float | None = None,
    test_fraction: float | None = None,
    split_column: str | None = None,
    seed: int = 0,
    shuffle: bool = True,
    flatten: bool = False,
    workers: int = 1,
    use_multiprocessing: bool = False,
    max_queue_size: int = 10,
    verify_images: bool = True,
) -> Data:
    """Image files listed in a CSV (a file and a label column), read with Pillow by a ``PyDataset``.

    Relative file names are read from the CSV's folder. ``workers`` threads (or
    processes, ``use_multiprocessing: true``) load batches ahead of training; the
    training files are reshuffled after every epoch. Example::

        data: {name: image_files, path: images.csv, file: file, label: label, workers: 4}
    """
    from orchestrator_plugins.data_files._image_files import ImageFiles

    rows = checks.image_rows(
        {"path": path, "file": file, "label": label, "separator": separator, "split_column": split_column},
        key,
    )
    parts = rows.splits or cut(
        len(rows.files), *resolve_fractions(validation_fraction, test_fraction, key), seed, key
    )
    labels, class_names = _class_numbers(rows.labels)
    size = checks.check_image_size(image_size, key)
    options = dict(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
    splits = {
        name: ImageFiles(
            [rows.files[i] for i in parts[name]],
            labels[parts[name]],
            batch_size,
            size,
            color_mode,
            shuffle=shuffle and name == "train",
            flatten=flatten,
            key=key,
            **options,
        )
        if len(parts[name])
        else None
        for name in SPLITS
    }
    shape = _image_shape(size, color_mode, flatten)
    sizes = {name: len(parts[name]) for name in SPLITS}
    return _data(
        splits, shape, class_names, sizes, f"image_files:{path}", {}, reusable=False, batch_size=batch_size
    )


def csv(
    key: str,
    path: str | None = None,
    label: str = "label",
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    normalize: bool = True,
    separator: str = ",",
    validation_fraction: float | None = None,
    test_fraction: float | None = None,
    split_column: str | None = None,
    seed: int = 0,
) -> Data:
    """A table from a CSV file, or a Parquet file by its suffix (``.parquet``, ``.pq``), read with pandas.

    The label column gives the classes, the feature columns (default: all the
    others) the inputs: categorical ones one-hot encoded, numeric ones
    standardised with the training rows' statistics. Each split is ``(x, y)``
    NumPy arrays. Example::

        data: {name: csv, path: iris.csv, label: species, validation_fraction: 0.2, test_fraction: 0.2}
    """
    from orchestrator_plugins.data_files._tables import prepare, read_table

    file = checks.existing_file(path, key, "a .csv file (or .parquet) with a header row")
    table = read_table(file, separator)
    if split_column is not None:
        parts = by_column(table[split_column].tolist(), f"{key}.split_column")
    else:
        parts = cut(len(table), *resolve_fractions(validation_fraction, test_fraction, key), seed, key)
    prepared = prepare(table, label, features, categorical, normalize, parts, key, split_column)
    sizes = {name: len(parts[name]) for name in SPLITS}
    kind = "parquet" if file.suffix.lower() in checks.PARQUET_SUFFIXES else "csv"
    return _data(
        prepared["splits"],
        prepared["input_shape"],
        prepared["class_names"],
        sizes,
        f"{kind}:{path}",
        {"preprocessing": prepared["record"]},
        reusable=True,
    )


def npz(
    key: str,
    path: str | None = None,
    validation_fraction: float | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
) -> Data:
    """Named arrays of a NumPy ``.npz``: ``x_train``, ``y_train`` and, if present, ``x_validation``
    (or ``x_val``), ``y_validation`` (``y_val``), ``x_test``, ``y_test``.

    A split the file lacks is cut from the training arrays by the fractions.
    Labels: one-hot rows, or class numbers (``num_classes`` is the largest plus
    one); numbers with fractions are a regression target. Example::

        data: {name: npz, path: arrays.npz}
    """
    names = arrays.check_npz(
        {"path": path, "validation_fraction": validation_fraction, "test_fraction": test_fraction}, key
    )
    loaded = arrays.load_arrays(path, names)
    given = {split: "the file" for split in loaded if split != "train"}
    x_train, y_train = loaded["train"]
    parts = cut(len(x_train), *resolve_fractions(validation_fraction, test_fraction, key, given), seed, key)
    splits = {name: loaded.get(name) for name in SPLITS}
    for name in SPLITS:
        if name not in given:
            splits[name] = (x_train[parts[name]], y_train[parts[name]]) if len(parts[name]) else None
    classes = arrays.class_count(y_train)
    class_names = [str(c) for c in range(classes)] if classes else None
    sizes = {name: (len(split[0]) if split is not None else 0) for name, split in splits.items()}
    return _data(splits, tuple(x_train.shape[1:]), class_names, sizes, f"npz:{path}", {}, reusable=True)


# -- shared -------------------------------------------------------------------------------


def _class_numbers(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each label's place in the sorted class names (whole numbers sorted as numbers)."""
    numbers = all(label.lstrip("-").isdigit() for label in labels)
    names = sorted(set(labels), key=int if numbers else str)
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[label] for label in labels], dtype="int64"), names


def _image_shape(size: tuple[int, int], color_mode: str, flatten: bool) -> tuple[int, ...]:
    """The model's input shape for images of ``size`` (height, width): ``(h, w, channels)``, or
    ``(h * w * channels,)`` when the images are flattened for an MLP."""
    channels = checks.COLOR_MODES[color_mode]
    return (size[0] * size[1] * channels,) if flatten else (*size, channels)


def _data(
    splits, shape, class_names, sizes, source, extra, reusable: bool, batch_size: int | None = None
) -> Data:
    """The ``Data``; a source that batches itself gives ``batch_size``, and ``info["steps"]`` is one pass."""
    record = {"source": source, "samples": sizes, "class_names": class_names, **extra}
    log.info(
        "Data: %s: %s%s",
        source,
        ", ".join(f"{sizes[n]} {n}" for n in SPLITS),
        f"; {len(class_names)} classes" if class_names else "",
    )
    info = {
        "input_shape": tuple(shape),
        "source": source,
        "class_names": class_names,
        "samples": sizes,
        "record": record,
        "reusable": reusable,
    }
    if class_names:
        info["num_classes"] = len(class_names)
    if batch_size is not None:
        info["batch_size"] = int(batch_size)
        info["steps"] = {name: math.ceil(count / int(batch_size)) for name, count in sizes.items() if count}
    return Data(**{name: splits.get(name) for name in SPLITS}, info=info)


@hookimpl
def orchestrator_before_stage(context) -> None:
    """Record a source's ``info["record"]`` once per run: tags, and ``data/data_info.json``."""
    record = context.data.info.get("record") if context.data is not None else None
    if not record or context.stash.get("data_files.recorded"):
        return
    context.stash["data_files.recorded"] = True
    tags = {f"data.samples.{name}": count for name, count in record["samples"].items()}
    if record.get("class_names"):
        tags["data.class_names"] = json.dumps(record["class_names"])[:TAG_LIMIT]
    context.set_tags(**tags)
    folder = Path(context.output_dir) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "data_info.json"
    file.write_text(json.dumps(record, indent=2, default=str))
    context.log_artifact(file, "data")


@hookimpl
def orchestrator_register_data_sources(registry):
    registry.add("image_folder", image_folder, check=checks.check_image_folder)
    registry.add("image_files", image_files, check=checks.check_image_files)
    registry.add("csv", csv, check=checks.check_table)
    registry.add("npz", npz, check=arrays.check_npz)
