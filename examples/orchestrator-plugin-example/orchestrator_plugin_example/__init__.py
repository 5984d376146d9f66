"""An example third-party plugin for the Keras orchestrator.

It adds three things, each selectable by name once the package is installed:

* the data source ``blobs``: Gaussian clusters made with NumPy (``data=blobs``);
* the loss ``smoothed_crossentropy``: sparse cross-entropy with label smoothing
  (``loss=smoothed_crossentropy``);
* the stage kind ``summary``: writes ``model.summary()`` to a file and keeps it
  as an artifact (``+stages.summary.kind=summary``);

and the config-group entries for them (``conf/data/blobs.yaml``, ...), found by
Hydra through ``orchestrator_config_searchpath``. Example::

    pip install ./examples/orchestrator-plugin-example
    python -m orchestrator plugins                 # lists blobs, smoothed_crossentropy, summary
    python -m orchestrator +experiment=blobs       # the preset this package ships

This module imports only NumPy and the orchestrator's light public names, so that
``python -m orchestrator plugins`` and config checks stay fast. The Keras part of
the loss lives in :mod:`orchestrator_plugin_example.losses`, which the loss
factory imports when a run compiles the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator import Data, UserError, hookimpl


def blobs(
    samples: int = 1200,
    num_classes: int = 3,
    features: int = 2,
    spread: float = 1.0,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Data:
    """Gaussian blobs: ``num_classes`` clusters of points with ``features`` coordinates.

    Cluster centres are drawn uniformly in [-5, 5]; a point is its cluster's centre
    plus Gaussian noise of standard deviation ``spread``. Labels are class numbers
    (int32). The same ``seed`` gives the same data. The last ``test_fraction`` of
    the points are the test split, the ``validation_fraction`` before them the
    validation split.

    Example::

        data: {name: blobs, samples: 600, num_classes: 4, spread: 0.5}
    """
    if num_classes < 2:
        raise UserError("data.num_classes", f"must be 2 or more, got {num_classes}.")
    if features < 1:
        raise UserError("data.features", f"must be 1 or more, got {features}.")
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1):
        raise UserError("data", "validation_fraction and test_fraction must be in [0, 1).")
    n_validation = int(samples * validation_fraction)
    n_test = int(samples * test_fraction)
    n_train = samples - n_validation - n_test
    if n_train < 1:
        raise UserError("data.samples", f"{samples} samples leave none for training.")

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-5.0, 5.0, size=(num_classes, features))
    y = rng.integers(0, num_classes, size=samples).astype("int32")
    x = (centres[y] + rng.normal(scale=spread, size=(samples, features))).astype("float32")

    def part(start: int, stop: int):
        return (x[start:stop], y[start:stop]) if stop > start else None

    return Data(
        train=part(0, n_train),
        validation=part(n_train, n_train + n_validation),
        test=part(n_train + n_validation, samples),
        info={"input_shape": (features,), "num_classes": num_classes, "source": "blobs"},
    )


def smoothed_crossentropy(smoothing: float = 0.1, from_logits: bool = False):
    """Sparse categorical cross-entropy with label smoothing (see :mod:`.losses`).

    Example::

        loss: {name: smoothed_crossentropy, smoothing: 0.1}
    """
    if not 0.0 <= smoothing < 1.0:
        raise UserError("loss.smoothing", f"must be in [0, 1), got {smoothing}.")
    # Imported here, not at the top: that module imports Keras (and so TensorFlow),
    # which listing plugins and checking a config must not pay for.
    from orchestrator_plugin_example.losses import SmoothedCrossentropy

    return SmoothedCrossentropy(smoothing=smoothing, from_logits=from_logits)


def summary(context, stage, filename: str = "model_summary.txt", expand_nested: bool = False):
    """A stage kind: write ``context.model.summary()`` to ``filename`` and keep it.

    The file goes to the run's output folder and to the artifacts (``summary/``).
    It returns no metrics.

    Example::

        stages: {summary: {kind: summary, filename: model.txt}}   # or +stages.summary.kind=summary
    """
    parts: list[str] = []
    context.model.summary(print_fn=lambda text, **_: parts.append(text), expand_nested=expand_nested)
    path = Path(context.output_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    context.log_artifact(path, "summary")
    return {}


@hookimpl
def orchestrator_register_data_sources(registry):
    registry.add("blobs", blobs)


@hookimpl
def orchestrator_register_losses(registry):
    registry.add("smoothed_crossentropy", smoothed_crossentropy)


@hookimpl
def orchestrator_register_stages(registry):
    registry.add("summary", summary)


@hookimpl
def orchestrator_config_searchpath():
    # conf/ is a package (it has an __init__.py) so that Hydra's pkg:// source accepts it.
    return ["pkg://orchestrator_plugin_example.conf"]
