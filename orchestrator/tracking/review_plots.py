"""The review plots: learning curves and a confusion matrix, drawn with matplotlib's Agg.

Used by :mod:`orchestrator.tracking.review` (in the training process,
which computes the predicted labels) and :mod:`orchestrator.tracking.review_worker`
(in the tracking worker, which draws). The drawing functions take plain data
(metrics by epoch, label arrays) and return a figure, or ``None`` (with a log
line) when there is nothing to draw.

Example::

    figure = learning_curves({"fit/loss": {0: 0.5, 1: 0.3}}, title="mnist")
    figure.savefig("plots/learning_curves.png")
"""

from __future__ import annotations

import logging
import math
from typing import Any

from orchestrator.arrays import is_in_memory, length, take, unpack

log = logging.getLogger("orchestrator.review")

#: At most this many test samples go into the confusion matrix.
CONFUSION_SAMPLES = 10_000
#: The most test samples the review's predictions take in one call (their outputs' memory).
PREDICT_BATCH = 2048
#: Above this many classes the confusion matrix cells are not annotated.
ANNOTATE_CLASSES = 20


def _figure(width: float, height: float):
    """A matplotlib figure drawn with Agg, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def learning_curves(history: dict[str, dict[int, float]], title: str):
    """One panel per Keras metric (``history``: metric name -> epoch -> value), training beside validation."""
    if not history:
        log.info("Plot learning_curves skipped: no fit stage reported an epoch.")
        return None
    panels: dict[str, list[tuple[str, dict[int, float]]]] = {}
    stages = list(dict.fromkeys(name.partition("/")[0] for name in history))
    for name, steps in history.items():
        stage, _, keras_name = name.partition("/")
        validation = keras_name.startswith("val_")
        base = keras_name[4:] if validation else keras_name
        label = "validation" if validation else "train"
        panels.setdefault(base, []).append((label if len(stages) == 1 else f"{stage} {label}", steps))
    for base, lines in panels.items():  # a metric with no validation twin (learning_rate) needs no legend
        if not any(label.endswith("validation") for label, _ in lines):
            panels[base] = [(label.removesuffix("train").strip(), steps) for label, steps in lines]
    order = sorted(panels, key=lambda base: (base != "loss", base == "learning_rate"))
    columns = min(3, len(order))
    rows = -(-len(order) // columns)
    figure = _figure(4.4 * columns, 3.2 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, base in zip(axes, order, strict=False):
        for index, (label, steps) in enumerate(panels[base]):
            epochs = sorted(steps)
            style = _line_style(label, index, stages)
            axis.plot([e + 1 for e in epochs], [steps[e] for e in epochs], label=label, **style)
        axis.set_title(base)
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        axis.ticklabel_format(axis="y", useOffset=False)
        if any(label for label, _ in panels[base]):
            axis.legend(fontsize="small")
    for axis in axes[len(order) :]:
        axis.set_visible(False)
    figure.suptitle(f"Learning curves: {title}")
    return figure


def _line_style(label: str, index: int, stages: list[str]) -> dict[str, Any]:
    """One colour per line; with several fit stages, one colour per stage, validation dashed."""
    if len(stages) == 1:
        return {"marker": "o", "color": f"C{index}"}
    stage = label.split(" ")[0]
    dashed = label.endswith("validation")
    color = f"C{stages.index(stage) if stage in stages else index}"
    return {"marker": "s" if dashed else "o", "linestyle": "--" if dashed else "-", "color": color}


def test_sample(context) -> tuple[Any, Any, Any] | None:
    """``(x, y, the model's outputs)`` for the first ``CONFUSION_SAMPLES`` of the in-memory test split,
    else ``None`` with a log line saying why there is no confusion matrix."""
    test = context.data.test if context.data is not None else None
    if not is_in_memory(test):
        kind = "no test split" if test is None else f"the test split is a {type(test).__name__}"
        log.info("Plot confusion_matrix skipped: %s, not in-memory arrays.", kind)
        return None
    x, y, _ = unpack(test)
    count = min(length(x) or 0, CONFUSION_SAMPLES)
    try:
        return take(x, count), take(y, count), model_outputs(context.model, take(x, count))
    except Exception as failure:
        log.warning("Plot confusion_matrix skipped: %s: %s", type(failure).__name__, failure)
        return None


def model_outputs(model, x, batch: int = PREDICT_BATCH) -> Any:
    """The model's outputs on in-memory ``x`` (NumPy, in the model's output structure).

    The model is called directly, batch by batch, as ``predict`` would, without
    tracing a ``predict`` function for new shapes (a large part of ``predict``'s
    cost on a few thousand samples). On JAX, where a direct call compiles each
    operation on its own, ``predict_on_batch`` compiles the model once a shape.
    Every call therefore has the same shape (:func:`chunks`): one program, not two.
    pandas columns are given as NumPy arrays (``predict_on_batch`` on JAX takes no DataFrame).
    """
    import keras
    import numpy as np

    jax = keras.backend.backend() == "jax"
    x = keras.tree.map_structure(lambda array: array.to_numpy() if hasattr(array, "to_numpy") else array, x)

    def outputs(start: int, stop: int) -> Any:
        chunk = keras.tree.map_structure(lambda array: array[start:stop], x)
        if jax:
            return model.predict_on_batch(chunk)
        return keras.tree.map_structure(keras.ops.convert_to_numpy, model(chunk, training=False))

    parts = []
    for start, stop, keep in chunks(length(x) or 0, batch):
        parts.append(keras.tree.map_structure(lambda array, keep=keep: array[keep:], outputs(start, stop)))
    return keras.tree.map_structure(lambda *arrays: np.concatenate(arrays), *parts)


def chunks(count: int, batch: int) -> list[tuple[int, int, int]]:
    """``(start, stop, keep)`` for each call over ``count`` samples: all of one size, at most ``batch``.

    The samples are split as evenly as ``batch`` allows (10,000 in five chunks of 2,000, not
    four of 2,048 and one of 1,808); when they do not split evenly, the last chunk ends at the
    last sample and overlaps the one before, whose outputs it repeats for its first
    ``keep`` rows (left out). On JAX each new batch shape is one more program to compile,
    0.1-0.2 s of CPU on 2 cores. (XLA may round a sample's outputs differently in the last
    bit in a batch of another size; the guide's 10,000 Fashion-MNIST test outputs are the
    same, bit for bit, in chunks of 2,048 and of 2,000.)

    Example::

        chunks(10_000, 2048)   # [(0, 2000, 0), (2000, 4000, 0), ..., (8000, 10000, 0)]
        chunks(9_999, 2048)    # [(0, 2000, 0), ..., (6000, 8000, 0), (7999, 9999, 1)]
    """
    if count <= 0:
        return []
    size = math.ceil(count / math.ceil(count / batch))
    whole = [(start, start + size, 0) for start in range(0, count - size + 1, size)]
    done = whole[-1][1]
    return whole if done == count else [*whole, (count - size, count, size - (count - done))]


def confusion_labels(context, sample: tuple[Any, Any, Any] | None) -> tuple[Any, Any, int, list[str]] | None:
    """``(true classes, predicted classes, class count, class names)`` of a single-output classifier on
    :func:`test_sample`'s ``sample``, else ``None`` with a log line saying why."""
    import numpy as np

    if sample is None:
        return None
    _, y, scores = sample
    y = y.to_numpy() if hasattr(y, "to_numpy") else y  # a pandas Series of labels
    if not isinstance(y, np.ndarray) or len(y) == 0:
        log.info("Plot confusion_matrix skipped: not a single-output model with label arrays.")
        return None
    truth, predicted, classes = _labels(context, np.asarray(y), scores)
    if truth is None:
        log.info("Plot confusion_matrix skipped: the model is not a classifier.")
        return None
    names = [str(c) for c in (context.data.info.get("class_names") or range(classes))]
    return truth, predicted, classes, names


def confusion_matrix(truth, predicted, classes: int, names: list[str]):
    """True against predicted class, one cell per pair, annotated up to ``ANNOTATE_CLASSES`` classes."""
    import numpy as np

    count = len(truth)
    matrix = np.zeros((classes, classes), dtype=int)
    np.add.at(matrix, (truth, predicted), 1)
    size = min(10.0, 2.5 + 0.45 * classes)
    figure = _figure(size + 1.2, size)
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, shrink=0.8)
    if classes <= ANNOTATE_CLASSES:
        ticks = range(classes)
        axis.set_xticks(ticks, names, rotation=45 if max(map(len, names)) > 2 else 0)
        axis.set_yticks(ticks, names)
        high = matrix.max() / 2
        for (row, column), value in np.ndenumerate(matrix):
            colour = "white" if value > high else "black"
            axis.text(column, row, value, ha="center", va="center", fontsize="small", color=colour)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    accuracy = float(np.trace(matrix)) / max(1, count)
    axis.set_title(f"Confusion matrix, test split ({count} samples, accuracy {accuracy:.3f})")
    return figure


def _labels(context, y, scores) -> tuple[Any, Any, int]:
    """``(true classes, predicted classes, class count)``, or ``(None, None, 0)`` for a non-classifier."""
    import numpy as np

    if isinstance(scores, (list, tuple, dict)):
        return None, None, 0
    scores = np.asarray(scores)
    loss = str(context.cfg.get("loss")).lower()
    known = context.data.info.get("num_classes")
    if scores.ndim == 2 and scores.shape[1] >= 2:
        classes = scores.shape[1]
        if known != classes and not any(word in loss for word in ("crossentropy", "hinge", "focal")):
            return None, None, 0
        predicted = scores.argmax(axis=1)
    elif scores.size == len(scores) and "binary" in loss:
        classes = 2
        flat = scores.reshape(-1)
        threshold = 0.5 if 0 <= flat.min() and flat.max() <= 1 else 0.0  # probabilities or logits
        predicted = (flat > threshold).astype(int)
    else:
        return None, None, 0
    if y.ndim == 2 and y.shape[1] == classes and classes > 1:
        truth = y.argmax(axis=1)
    else:
        truth = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 and y.size == len(y) else y
        if truth.ndim != 1 or not np.all(np.mod(truth, 1) == 0) or truth.min() < 0 or truth.max() >= classes:
            return None, None, 0
        truth = truth.astype(int)
    return truth, predicted, classes
