"""The Keras guide's end-to-end example, written by hand in plain Keras (no orchestrator).

"Training & evaluation with the built-in methods", the API overview: a functional
MLP trained with ``fit`` on the guide's preprocessing, then ``evaluate``. Here on
Fashion-MNIST from Debian's IDX files, seeded and deterministic, so that
``tests/test_parity.py`` can compare it number for number with::

    python -m orchestrator +experiment=mnist data=fashion_mnist seed=7 deterministic=true

The order of the calls is the orchestrator's (seed, op determinism, load the
data, build, compile, fit, evaluate), so both draw the same random streams. The
backend is Keras's own choice, ``KERAS_BACKEND`` (op determinism on TensorFlow,
deterministic algorithms on PyTorch; JAX on CPU is deterministic as it is)::

    python tests/plain_keras_guide.py [IDX folder]                    # prints {"history": ..., "test": ...}
    KERAS_BACKEND=jax python tests/plain_keras_guide.py [IDX folder]  # the same on JAX
    KERAS_BACKEND=torch python tests/plain_keras_guide.py [IDX folder]  # and on PyTorch
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_FOLDER = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array in a gzipped IDX file (big-endian header: magic, then the sizes)."""
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_data(folder: Path):
    """``((x_train, y_train), (x_test, y_test))`` as ``keras.datasets.*.load_data`` returns them."""
    x_train = read_idx(folder / "train-images-idx3-ubyte.gz")
    y_train = read_idx(folder / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    return (x_train, y_train), (x_test, y_test)


def main(folder: Path) -> dict:
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True)

    (x_train, y_train), (x_test, y_test) = load_data(folder)

    # Preprocess the data (these are NumPy arrays)
    x_train = x_train.reshape(60000, 784).astype("float32") / 255
    x_test = x_test.reshape(10000, 784).astype("float32") / 255

    y_train = y_train.astype("float32")
    y_test = y_test.astype("float32")

    # Reserve 10,000 samples for validation
    x_val = x_train[-10000:]
    y_val = y_train[-10000:]
    x_train = x_train[:-10000]
    y_train = y_train[:-10000]

    inputs = keras.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)

    model = keras.Model(inputs=inputs, outputs=outputs)

    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
        # Loss function to minimize
        loss=keras.losses.SparseCategoricalCrossentropy(),
        # List of metrics to monitor
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )

    history = model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=2,
        # We pass some validation for
        # monitoring validation loss and metrics
        # at the end of each epoch
        validation_data=(x_val, y_val),
        verbose=0,
    )

    # Evaluate the model on the test data using `evaluate`
    results = model.evaluate(x_test, y_test, batch_size=128, verbose=0, return_dict=True)

    return {
        "history": {name: [float(v) for v in values] for name, values in history.history.items()},
        "test": {name: float(value) for name, value in results.items()},
    }


if __name__ == "__main__":
    data_folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FOLDER
    print(json.dumps(main(data_folder)))
