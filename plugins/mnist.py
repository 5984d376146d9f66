"""The data sources ``mnist`` and ``fashion_mnist``, prepared as the Keras guide does.

Images are flattened to 784 float32 values in [0, 1], labels are float32 class
numbers (or one-hot rows with ``one_hot: true``), and the validation split is the
last ``validation_size`` training samples::

    data: {name: mnist, validation_size: 5000}
    data: {name: fashion_mnist, path: /usr/share/datasets/fashion-mnist}

Where the data comes from (``source``):

* ``auto`` (default): ``path`` if given, else the Keras loader (its cache in
  ``~/.keras/datasets``, else a download with checksum); for ``mnist`` with
  neither, the shipped MNIST test split (below), with a loud warning. For
  ``fashion_mnist``, Debian's ``dataset-fashion-mnist`` files come before the
  Keras loader.
* ``path``: a Keras ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``)
  or a folder of the four IDX files (``train-images-idx3-ubyte[.gz]`` ...).
* ``keras``, ``debian``, ``bundled``: that source only.

The bundled MNIST split: the project ships the real 10,000-image MNIST test
set (``plugins/data/mnist``, CC BY-SA 3.0, see ATTRIBUTION.md); offline its
first 8,000 images are trained and validated on and the last 2,000 are the test
split. ``validation_size`` applies to those 8,000 (``null``: 2,000, so train =
images 0-5,999, validation = 6,000-7,999); on the full data sets ``null`` is the
guide's 10,000. The run is tagged ``data_source=bundled``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path

import numpy as np

from orchestrator import Data, UserError, hookimpl

log = logging.getLogger("orchestrator.data")

BUNDLED_MNIST = Path(__file__).parent / "data" / "mnist"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NUM_CLASSES = 10


#: ``validation_size: null``: the guide's 10,000 of the full training set, 2,000 of the bundled split.
GUIDE_VALIDATION = 10000
BUNDLED_VALIDATION = 2000
MNIST_SOURCES = ("auto", "path", "keras", "bundled")
FASHION_MNIST_SOURCES = ("auto", "path", "keras", "debian")


def mnist(
    path: str | None = None,
    source: str = "auto",
    validation_size: int | None = None,
    one_hot: bool = False,
) -> Data:
    """MNIST digits (see the module docstring for ``source``)."""
    if source == "bundled":
        return _bundled_mnist(validation_size, one_hot)
    try:
        arrays, used = _load(path, source, "mnist", debian=None)
    except UserError:
        if source != "auto" or path is not None:
            raise
        return _bundled_mnist(validation_size, one_hot)
    return _guide_splits(arrays, validation_size, one_hot, used)


def fashion_mnist(
    path: str | None = None,
    source: str = "auto",
    validation_size: int | None = None,
    one_hot: bool = False,
) -> Data:
    """Fashion-MNIST (see the module docstring for ``source``)."""
    arrays, used = _load(path, source, "fashion_mnist", debian=DEBIAN_FASHION_MNIST)
    return _guide_splits(arrays, validation_size, one_hot, used)


def _checker(allowed: tuple[str, ...]):
    """The check of ``source`` and ``validation_size`` that runs with the config check, before TensorFlow."""

    def check(args, key: str) -> None:
        source, validation_size = args.get("source", "auto"), args.get("validation_size")
        if source not in allowed:
            raise UserError(f"{key}.source", f"must be one of {', '.join(allowed)}; got {source!r}.")
        if validation_size is not None and validation_size < 0:
            raise UserError(f"{key}.validation_size", f"must be null or 0 or more, got {validation_size}.")

    return check


def _load(path, source, dataset, debian):
    """``((x_train, y_train, x_test, y_test), source used)``."""
    if path is not None or source == "path":
        if path is None:
            raise UserError("data.path", "source=path needs data.path (an .npz file or IDX folder).")
        return _from_path(Path(path)), f"path:{path}"
    if debian is not None and source in ("auto", "debian"):
        if _has_idx_files(debian):
            return _from_idx_folder(debian), "debian"
        if source == "debian":
            raise UserError(
                "data.source",
                f"no Fashion-MNIST files in {debian}; install Debian's dataset-fashion-mnist "
                "or use source=keras.",
            )
    return _from_keras(dataset), "keras"


def _from_path(path: Path):
    if not path.exists():
        raise UserError("data.path", f"{path} does not exist; give an .npz file or an IDX folder.")
    if path.is_dir():
        if not _has_idx_files(path):
            names = ", ".join(f"{n}[.gz]" for n in IDX_FILES.values())
            raise UserError("data.path", f"{path} lacks the IDX files; expected {names}.")
        return _from_idx_folder(path)
    try:
        with np.load(path) as npz:
            return tuple(npz[key] for key in IDX_FILES)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            "data.path",
            f"{path} is not a Keras dataset .npz with x_train, y_train, x_test, y_test ({error}).",
        ) from None


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    return None


def _has_idx_files(folder: Path) -> bool:
    return all(_idx_file(folder, stem) is not None for stem in IDX_FILES.values())


def _from_idx_folder(folder: Path):
    from orchestrator_plugins.idx import read_idx

    return tuple(read_idx(_idx_file(folder, stem)) for stem in IDX_FILES.values())


def _from_keras(dataset: str):
    """The Keras loader's arrays. Its "Downloading data from ..." line is shown only when the
    download worked: offline, the warning about the bundled split says what happened instead."""
    import keras

    loader = getattr(keras.datasets, dataset)
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:
        raise UserError(
            "data.source",
            f"the Keras loader could not get {dataset} ({error}); give data.path, or "
            "check the network and ~/.keras/datasets.",
        ) from None
    sys.stdout.write(said.getvalue())
    return x_train, y_train, x_test, y_test


def _bundled_mnist(validation_size: int | None, one_hot: bool) -> Data:
    """The shipped 10,000 images: 8,000 to train and validate on (the last ``validation_size``,
    2,000 by default, validate), 2,000 to test."""
    pool = 8000
    held = BUNDLED_VALIDATION if validation_size is None else validation_size
    if held >= pool:
        raise UserError(
            "data.validation_size",
            f"is {held}, but the bundled MNIST split has {pool} images to train and validate on "
            "(give data.path for the full data set, or a smaller data.validation_size).",
        )
    log.warning(
        "MNIST: no local path and the Keras loader cannot get mnist.npz (offline, no cache). "
        "Using the 10,000-image MNIST test split shipped with the project: "
        "%d train / %d validation / 2,000 test. Give data.path for the full data set.",
        pool - held,
        held,
    )
    from orchestrator_plugins.idx import read_idx

    images = _prepare_images(read_idx(BUNDLED_MNIST / "t10k-images-idx3-ubyte.gz"))
    labels = _prepare_labels(read_idx(BUNDLED_MNIST / "t10k-labels-idx1-ubyte.gz"), one_hot)
    cut = pool - held
    return Data(
        train=(images[:cut], labels[:cut]),
        validation=(images[cut:pool], labels[cut:pool]) if held else None,
        test=(images[pool:], labels[pool:]),
        info=_info("bundled"),
    )


def _guide_splits(arrays, validation_size, one_hot, source) -> Data:
    """The guide's preprocessing, and validation = the last ``validation_size`` training samples.

    ``arrays`` is ``(x_train, y_train, x_test, y_test)`` as the Keras loaders return them.
    """
    x_train, y_train, x_test, y_test = arrays
    validation_size = GUIDE_VALIDATION if validation_size is None else validation_size
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise UserError("data.path", "images and labels differ in count; the files do not match.")
    if validation_size >= len(x_train):
        raise UserError(
            "data.validation_size",
            f"is {validation_size} but there are only {len(x_train)} training samples.",
        )
    x_train, x_test = _prepare_images(x_train), _prepare_images(x_test)
    y_train, y_test = _prepare_labels(y_train, one_hot), _prepare_labels(y_test, one_hot)
    cut = len(x_train) - validation_size
    validation = (x_train[cut:], y_train[cut:]) if validation_size else None
    log.info("Data: %s (%s)", source, f"{cut} train, {validation_size} validation, {len(x_test)} test")
    return Data(
        train=(x_train[:cut], y_train[:cut]),
        validation=validation,
        test=(x_test, y_test),
        info=_info(source),
    )


def _prepare_images(images):
    return images.reshape(len(images), -1).astype("float32") / 255


def _prepare_labels(labels, one_hot: bool):
    labels = labels.astype("float32")
    if one_hot:
        return np.eye(NUM_CLASSES, dtype="float32")[labels.astype(int)]
    return labels


def _info(source: str) -> dict:
    """``reusable``: the same arguments give the same arrays, so a sweep may keep them."""
    return {"input_shape": (784,), "num_classes": NUM_CLASSES, "source": source, "reusable": True}


@hookimpl
def orchestrator_register_data_sources(registry):
    registry.add("mnist", mnist, check=_checker(MNIST_SOURCES))
    registry.add("fashion_mnist", fashion_mnist, check=_checker(FASHION_MNIST_SOURCES))
