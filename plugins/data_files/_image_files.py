"""The Keras side of ``data=image_files``: the Keras guide's ``Sequence`` over image files, a ``PyDataset``.

The guide's ``CIFAR10Sequence`` reads the files of one batch and resizes them
in ``__getitem__``; this one does the same with Pillow, and reshuffles the
training files at the end of every epoch. ``workers`` threads (or processes, with
``use_multiprocessing``) read batches ahead of training. Imported only when a run
uses the source. Example::

    dataset = ImageFiles(files, labels, batch_size=32, image_size=(64, 64), color_mode="rgb",
                         key="data", workers=4)
    x, y = dataset[0]
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from orchestrator import UserError

#: Pillow's modes for ``color_mode``.
PILLOW_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}


class ImageFiles(keras.utils.PyDataset):
    """Batches of ``(images, labels)`` read from ``files`` with Pillow, resized to ``image_size``.

    Args:
        files: the image files, one per sample.
        labels: the class number of each file.
        image_size: ``(height, width)``.
        color_mode: ``grayscale``, ``rgb`` or ``rgba``.
        shuffle: a new order of the files at the start and after every epoch
            (NumPy's global generator, which the run's ``seed`` sets).
        flatten: each image as one row of ``height * width * channels`` values.
        key: the config key that named the files, for the message about a file that cannot be read.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` (``keras.utils.PyDataset``).
    """

    def __init__(
        self,
        files: list[Path],
        labels: np.ndarray,
        batch_size: int,
        image_size: tuple[int, int],
        color_mode: str,
        shuffle: bool = False,
        flatten: bool = False,
        key: str = "data",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.files, self.labels = list(files), np.asarray(labels)
        self.batch_size, self.image_size, self.mode = (
            int(batch_size),
            tuple(image_size),
            PILLOW_MODES[color_mode],
        )
        self.shuffle, self.flatten, self.key = shuffle, flatten, key
        self.order = np.arange(len(self.files))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.files) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = np.stack([self.read(self.files[row]) for row in rows])
        if self.flatten:
            images = images.reshape(len(rows), -1)
        return images, self.labels[rows]

    def read(self, file: Path) -> np.ndarray:
        """One image as float32 ``(height, width, channels)``, values 0-255 as Keras's image loaders give."""
        height, width = self.image_size
        try:
            with Image.open(file) as image:
                resized = image.convert(self.mode).resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(resized, dtype="float32")
        except (OSError, ValueError) as error:
            raise UserError(f"{self.key}.path", f"the image {file} cannot be read: {error}") from None
        return pixels[..., None] if pixels.ndim == 2 else pixels

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = np.random.permutation(len(self.files))
