"""The guide's custom stateful metric, ``CategoricalTruePositives``.

Config (the label is free; the metric is logged under its Keras name)::

    metrics:
      categorical_true_positives: {name: categorical_true_positives}

Registered as a Keras serializable object (package ``orchestrator_guide``), so a
saved model compiled with it loads again once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

from orchestrator_plugins.guide_custom import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class CategoricalTruePositives(keras.metrics.Metric):
    """How many samples were classified correctly: a running count, reset every epoch.

    ``update_state`` adds the (weighted) number of samples whose arg-max
    prediction is their label, ``result`` returns the count, ``reset_state``
    sets it to zero, exactly the guide's three methods. Labels may be class
    numbers (``(batch,)`` or ``(batch, 1)``) or one-hot rows.

    Unlike the guide's listing, the labels are flattened before the comparison:
    the guide compares ``(batch,)`` labels with ``(batch, 1)`` predictions, which
    broadcasts to a ``(batch, batch)`` matrix and counts label *pairs*, not
    correct samples (it reports ~1,400 "true positives" for 256 samples).

    Config::

        metrics: {categorical_true_positives: {name: categorical_true_positives}}
    """

    def __init__(self, name: str = "categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        predicted = ops.argmax(y_pred, axis=-1)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] not in (None, 1):
            y_true = ops.argmax(y_true, axis=-1)  # one-hot rows
        y_true = ops.reshape(y_true, (-1,))
        predicted = ops.reshape(predicted, (-1,))
        values = ops.cast(ops.equal(ops.cast(y_true, "int32"), ops.cast(predicted, "int32")), self.dtype)
        if sample_weight is not None:
            values = ops.multiply(values, ops.reshape(ops.cast(sample_weight, self.dtype), (-1,)))
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        # A copy, not the variable: Keras keeps the epoch's training result while validation
        # resets and refills the same variable, so returning the variable would log the
        # validation count as the training count.
        return ops.copy(self.true_positives)

    def reset_state(self):
        # Keras resets every metric at the start of each epoch and of evaluate().
        self.true_positives.assign(0.0)
