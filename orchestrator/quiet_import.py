"""Import Keras (and TensorFlow, when it is the backend) without their start-up noise on stderr.

TensorFlow's C++ runtime writes informational lines to the terminal while it
loads (oneDNN notes, "Could not find cuda drivers", CPU instruction sets) that
``TF_CPP_MIN_LOG_LEVEL`` no longer silences. During the import (and the first
device query, which probes CUDA) file descriptor 2 goes to a temporary file;
afterwards every line that is not one of those known notes is written back, so
a real warning or error still reaches the user.

Keras also imports, when they are installed, packages a run does not need while
it loads: scikit-learn and IPython (:data:`SKIPPED`), pandas (:data:`DEFERRED`,
handed to Keras once something imports it) and JAX on the other backends
(:data:`UNUSED_BACKENDS`). They are left out of the import.

Example::

    keras = import_keras()
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from typing import Any

from orchestrator.after_import import after_import

#: Fragments of the start-up lines TensorFlow prints on every CPU-only machine.
NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "cpu_feature_guard",
    "To enable the following instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
    "failed call to cuInit",
    "TF-TRT Warning",
    "Unable to register cu",
    "computation placer already registered",
)
#: Optional packages Keras imports at start-up when they are installed, for what a run never uses:
#: scikit-learn for the estimators of ``keras.wrappers``, IPython for notebook display. Left out
#: while Keras loads (some 1.3 s of CPU and 70 MB a process); importable as usual afterwards.
SKIPPED = ("sklearn", "IPython")
#: Backends Keras imports at start-up when they are installed although another one trains: JAX,
#: for a shim of its Orbax checkpoint callback and for TensorFlow Lite's JAX converter (some
#: 0.4-0.5 s of CPU and 110 MB on TensorFlow and PyTorch). Left out while Keras loads, as :data:`SKIPPED`.
UNUSED_BACKENDS = {"tensorflow": ("jax",), "torch": ("jax",), "jax": ()}
#: Imported by Keras at start-up only to slice pandas objects given to ``fit`` (0.2-0.3 s of CPU):
#: left out while Keras loads, and handed to Keras as soon as something imports it
#: (:func:`hand_pandas_to_keras`), so that Keras slices DataFrames and Series as it always does.
DEFERRED = ("pandas",)


def import_keras() -> Any:
    """``import keras`` (and its backend, and a first device query) with the noise filtered.

    The backend is the one ``KERAS_BACKEND`` names (:func:`orchestrator.backend.use_backend`
    sets it): TensorFlow is imported only when it is the backend, or when the run itself
    uses it (:func:`orchestrator.backend.tensorflow_on_demand`, also when a plugin imported
    Keras first). Once Keras is imported (``sys.modules`` knows it) nothing more is imported.
    """
    if "keras" in sys.modules or os.environ.get("ORCHESTRATOR_TF_NOISE") == "1":
        import keras

        _tensorflow_on_demand(keras)
        return keras
    backend = os.environ.get("KERAS_BACKEND", "")
    with _filtered_stderr(), _skipped(SKIPPED + DEFERRED + UNUSED_BACKENDS.get(backend, ())) as skipped:
        import keras

        _tensorflow_on_demand(keras)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()
        elif keras.backend.backend() == "jax":
            import jax

            jax.devices()
    if "pandas" in skipped.names:
        after_import("pandas", hand_pandas_to_keras)
    # The millions of objects TensorFlow and Keras create at import live as long as
    # the process: leave them out of every later garbage collection, which makes the
    # collection Keras runs between the jobs of a sweep several times cheaper.
    gc.freeze()
    return keras


def _tensorflow_on_demand(keras: Any) -> None:
    if keras.backend.backend() != "tensorflow":
        from orchestrator.backend import tensorflow_on_demand

        tensorflow_on_demand()


def hand_pandas_to_keras(pandas: Any) -> None:
    """What Keras's ``array_slicing`` does at import when pandas is installed, done now."""
    from keras.src.trainers.data_adapters import array_slicing

    if getattr(array_slicing, "pandas", False) is None:
        array_slicing.pandas = pandas
        array_slicing.ARRAY_TYPES = (*array_slicing.ARRAY_TYPES, pandas.Series, pandas.DataFrame)


class _skipped:
    """While inside, ``import NAME`` raises ``ImportError`` for each of ``names`` not yet imported."""

    def __init__(self, names: tuple[str, ...]):
        self.names = [name for name in names if name not in sys.modules]

    def __enter__(self):
        for name in self.names:
            sys.modules[name] = None  # type: ignore[assignment]
        return self

    def __exit__(self, *exc):
        for name in self.names:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
        return False


class _filtered_stderr:
    """Send fd 2 to a temporary file; on exit write back the lines that are not ``NOISE``."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.capture = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self.capture.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.capture.seek(0)
        kept = [
            line
            for line in self.capture.read().decode(errors="replace").splitlines(keepends=True)
            if not any(fragment in line for fragment in NOISE)
        ]
        self.capture.close()
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return False
