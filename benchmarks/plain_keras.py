"""The Keras guide's end-to-end example written by hand: the baseline of the benchmarks.

"Training & evaluation with the built-in methods", the API overview, as a user
would type it: read the data, preprocess, build the functional MLP, compile,
``fit`` (2 epochs, batch 64, validation on the last 10,000 training samples),
``evaluate`` (batch 128), ``predict`` the first 3 test samples. No seed, Keras's
default ``verbose``, exactly as the guide writes it.

With ``--mlflow FOLDER`` it is the peer a user would write by hand with MLflow:
the same script plus ``mlflow.keras.MlflowCallback`` (per-epoch metrics, the
optimizer's settings, the model summary), a few params, the test metrics and
the saved model as an artifact, in a SQLite store in ``FOLDER``.

    python benchmarks/plain_keras.py --result out.json                 # (A) plain Keras
    python benchmarks/plain_keras.py --result out.json --mlflow DIR    # (C) plain Keras + MLflow
    python benchmarks/plain_keras.py --result out.json --bundled --limit-batches 5   # tiny
    python benchmarks/plain_keras.py --result out.json --backend jax   # KERAS_BACKEND=jax, as typed

``--backend NAME`` sets ``KERAS_BACKEND`` before Keras is imported, as a user
would in the shell; without it the environment's backend (TensorFlow by default)
is used.

The result file gets ``{"fit_seconds", "evaluate_seconds", "predict_seconds",
"train_steps", "test": {...}}``; each time is measured around its Keras call only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import time
from pathlib import Path

import numpy as np

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: The real MNIST test split the project ships (the orchestrator's ``data.source=bundled``).
BUNDLED_MNIST = Path(__file__).resolve().parent.parent / "plugins" / "data" / "mnist"


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array of a gzipped IDX file (big-endian header: magic, then the sizes)."""
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_guide_data(bundled: bool):
    """``(x_train, y_train), (x_val, y_val), (x_test, y_test)`` prepared as the guide does.

    Full Fashion-MNIST: validation = the last 10,000 of the 60,000 training images.
    Bundled MNIST (10,000 images): 6,000 / 2,000 / 2,000, as the orchestrator splits it.
    """
    if bundled:
        images = read_idx(BUNDLED_MNIST / "t10k-images-idx3-ubyte.gz")
        labels = read_idx(BUNDLED_MNIST / "t10k-labels-idx1-ubyte.gz")
        images = images.reshape(len(images), 784).astype("float32") / 255
        labels = labels.astype("float32")
        return (
            (images[:6000], labels[:6000]),
            (images[6000:8000], labels[6000:8000]),
            (images[8000:], labels[8000:]),
        )
    x_train = read_idx(FASHION_MNIST / "train-images-idx3-ubyte.gz")
    y_train = read_idx(FASHION_MNIST / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(FASHION_MNIST / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(FASHION_MNIST / "t10k-labels-idx1-ubyte.gz")

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
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def limit(split, batches: int | None, batch_size: int):
    """The first ``batches`` batches of a split (the orchestrator's ``trainer.limit_batches``)."""
    if batches is None:
        return split
    return tuple(array[: batches * batch_size] for array in split)


def build_compiled_model():
    """The guide's functional MLP, compiled as the guide compiles it."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)

    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def main(
    result: Path, mlflow_folder: Path | None, bundled: bool, limit_batches: int | None, epochs: int
) -> None:
    train, validation, test = load_guide_data(bundled)
    (x_train, y_train) = limit(train, limit_batches, 64)
    (x_val, y_val) = limit(validation, limit_batches, 64)
    (x_test, y_test) = limit(test, limit_batches, 128)

    model = build_compiled_model()

    callbacks = []
    run = None
    if mlflow_folder is not None:
        import mlflow
        import mlflow.keras

        mlflow.set_tracking_uri(f"sqlite:///{mlflow_folder / 'mlflow.db'}")
        mlflow.set_experiment("plain_keras_mlflow")
        run = mlflow.start_run()
        mlflow.log_params({"batch_size": 64, "epochs": epochs, "learning_rate": 1e-3})
        callbacks.append(mlflow.keras.MlflowCallback())

    started = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=epochs,
        validation_data=(x_val, y_val),
        callbacks=callbacks,
    )
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    results = model.evaluate(x_test, y_test, batch_size=128, return_dict=True)
    evaluate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predictions = model.predict(x_test[:3])
    predict_seconds = time.perf_counter() - started

    if run is not None:
        import mlflow

        mlflow.log_metrics({f"test_{name}": float(value) for name, value in results.items()})
        path = mlflow_folder / "model.keras"
        model.save(path)
        mlflow.log_artifact(str(path), "model")
        mlflow.end_run()

    result.write_text(
        json.dumps(
            {
                "fit_seconds": fit_seconds,
                "evaluate_seconds": evaluate_seconds,
                "predict_seconds": predict_seconds,
                "train_steps": math.ceil(len(x_train) / 64) * epochs,
                "test": {name: float(value) for name, value in results.items()},
                "predictions_shape": list(predictions.shape),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--mlflow", type=Path, default=None, help="track in a SQLite store in this folder")
    parser.add_argument("--bundled", action="store_true", help="the shipped MNIST split (tiny runs)")
    parser.add_argument("--limit-batches", type=int, default=None, help="cap every split at N batches")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--backend", default=None, help="KERAS_BACKEND for this run (default: the environment's)"
    )
    args = parser.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    main(args.result, args.mlflow, args.bundled, args.limit_batches, args.epochs)
