"""The review's record of a run, and what the tracking worker needs to log the MLflow model.

This process saves the input example (the first test samples and the model's
output on them) beside the run's spool and hands the worker the rest: the path
of ``model.keras``, the pinned requirements, the registry name.

Example::

    review = Review()
    payload = model_payload(context, review, spool_folder)   # None when tracking.log_model is false
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.arrays import is_in_memory, take, unpack
from orchestrator.tracking.review_plots import model_outputs, test_sample

log = logging.getLogger("orchestrator.review")

#: Test samples saved as the model's input example.
EXAMPLE_SAMPLES = 5


@dataclass
class Review:
    """What the review of one run gathers: epochs, results, plots, the worker's calls, the test sample."""

    started: float = field(default_factory=time.monotonic)
    history: dict[str, dict[int, float]] = field(default_factory=dict)
    results: dict[str, float] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    run_log: Any = None
    calls: dict[str, int] = field(default_factory=dict)
    sample: tuple[Any] | None = None


def test_sample_of(context, review: Review):
    """The test samples and the model's outputs on them (computed once, for the example and the matrix)."""
    if review.sample is None:
        trained = context.model
        context.model = _local_model(context)
        try:
            review.sample = (test_sample(context),)
        finally:
            context.model = trained
    return review.sample[0]


def _local_model(context) -> Any:
    """The model to predict with here: the trained one, or, when it was trained by several
    workers (which have stopped by now), the saved ``model.keras`` loaded in this process alone.

    A multi-worker model's ``predict`` is a collective step that every worker must join.
    """
    distribution = context.distribution
    if distribution is None or distribution.worker is None:
        return context.model
    import keras

    return keras.saving.load_model(Path(context.output_dir) / "model.keras")


def model_payload(context, review: Review, folder: Path) -> dict[str, Any] | None:
    """What the worker needs to log the run's ``model.keras`` as an MLflow model, or ``None``."""
    settings = context.cfg.tracking
    # In a sweep, the best job's model is registered when the sweep ends (orchestrator.tracking.champion).
    register = (settings.get("register_model") or None) if context.sweep is None else None
    if not settings.log_model:
        if register:
            log.warning("tracking.register_model=%s is ignored: tracking.log_model is false.", register)
        return None
    model_file = Path(context.output_dir) / "model.keras"
    if not model_file.exists():
        log.warning("MLflow model: no %s to log.", model_file)
        return None
    import keras

    return {
        "path": str(model_file.resolve()),
        "example": _save_example(context, review, folder / "review-example.npz"),
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "requirements": _requirements(),
        "register": register,
        "step": context.epochs_done,
    }


def _save_example(context, review: Review, file: Path) -> str | None:
    """The first test (else validation, else train) samples and the model's output on them, as ``.npz``."""
    import numpy as np

    data = context.data
    split = next((s for s in (data.test, data.validation, data.train) if is_in_memory(s)), None)
    x = unpack(split)[0] if split is not None else None
    if isinstance(x, dict) and all(isinstance(v, np.ndarray) for v in x.values()):
        example = take(x, EXAMPLE_SAMPLES)
    elif isinstance(x, np.ndarray):
        example = x[:EXAMPLE_SAMPLES]
    else:
        log.info("MLflow model: no input example or signature (the inputs are not in-memory arrays).")
        return None
    arrays = _prefixed("input:", example)
    try:
        sample = test_sample_of(context, review) if split is data.test else None
        if sample is not None:
            output = take(sample[2], EXAMPLE_SAMPLES)
        else:
            output = model_outputs(_local_model(context), example)
        if isinstance(output, (list, tuple)):
            output = dict(zip(context.model.output_names, output, strict=True))
        arrays.update(_prefixed("output:", output))
    except Exception as failure:
        log.warning("MLflow model: no signature (%s: %s).", type(failure).__name__, failure)
    np.savez(file, **arrays)
    return str(file)


def _prefixed(prefix: str, value) -> dict[str, Any]:
    import numpy as np

    if isinstance(value, dict):
        return {f"{prefix}{key}": np.asarray(array) for key, array in value.items()}
    return {prefix: np.asarray(value)}


def _requirements() -> list[str]:
    """Keras and its backend, pinned: MLflow would otherwise infer them in a subprocess (seconds)."""
    import keras

    backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(keras.backend.backend())
    return [f"{dist}=={_version(dist)}" for dist in ("keras", backend) if dist and _version(dist)]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
