"""Read the IDX files of MNIST and Fashion-MNIST (gzip or plain).

IDX: big-endian magic ``0x00000801`` (labels, uint8) or ``0x00000803``
(images, uint8), the dimension sizes, then the values.

Example::

    images = read_idx("t10k-images-idx3-ubyte.gz")   # (10000, 28, 28) uint8
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from orchestrator import UserError


def read_idx(path: Path | str, key: str = "data.path"):
    """The array stored in the IDX file at ``path``; a bad file is a user error at ``key``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
    except FileNotFoundError:
        raise UserError(key, f"file not found: {path}") from None
    except (OSError, EOFError) as error:
        raise UserError(key, f"cannot read {path}: {error}") from None
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise UserError(key, f"{path} is not an IDX file of unsigned bytes (bad header).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise UserError(key, f"{path} is truncated or corrupt: {len(raw)} bytes, the header says {expected}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
