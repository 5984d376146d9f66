"""Layers of the guide section "Handling losses and metrics that don't fit the standard signature".

* :class:`ActivityRegularizationLayer` adds a loss from inside ``call`` with ``self.add_loss``.
* :class:`MetricLoggingLayer` reports the standard deviation of its inputs "like a
  metric". The guide's Keras 2 version called ``self.add_metric(...)``, which Keras 3
  removed; here the layer owns a ``keras.metrics.Mean`` tracker. Keras 3 collects the
  metrics of every sub-layer into ``Model.metrics``, so its value shows up in the
  ``fit``/``evaluate`` logs (``std_of_activation``, ``val_std_of_activation``).
* :class:`LogisticEndpoint` takes targets and logits, adds its own loss and tracks
  its own accuracy: a model built on it is compiled with no loss at all.

The model builders ``mlp_with_layer_losses`` and ``logistic_endpoint``
(:mod:`orchestrator_plugins.guide_custom`) use them::

    model: {name: mlp_with_layer_losses, regularization_rate: 0.1, log_std: true}
    model: {name: logistic_endpoint}

All three are Keras serializable (package ``orchestrator_guide``): a saved model
loads again once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

from orchestrator_plugins.guide_custom import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class ActivityRegularizationLayer(keras.layers.Layer):
    """Pass-through layer that adds ``rate * sum(inputs)`` to the model's loss.

    The sum runs over the whole batch, as in the guide (whose Keras 3 version uses
    ``rate = 0.1``; its TensorFlow 2 version used ``1e-2``). Keras adds the loss to
    the compiled loss in ``fit`` and ``evaluate``, so the logged ``loss`` is the
    total.

    Config (through the model builder)::

        model: {name: mlp_with_layer_losses, regularization_rate: 0.1}
    """

    def __init__(self, rate: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(ops.sum(inputs) * self.rate)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MetricLoggingLayer(keras.layers.Layer):
    """Pass-through layer that logs the standard deviation of its inputs as a metric.

    Keras 3 replacement for the guide's ``self.add_metric(keras.backend.std(inputs),
    name="std_of_activation", aggregation="mean")``: a ``keras.metrics.Mean``
    tracker updated with ``ops.std(inputs)`` on every batch. Keras resets it with
    the other metrics at each epoch, so the logged value is the mean over the
    epoch's batches of the per-batch standard deviation.

    Config (through the model builder)::

        model: {name: mlp_with_layer_losses, log_std: true, metric_name: std_of_activation}
    """

    def __init__(self, metric_name: str = "std_of_activation", **kwargs):
        super().__init__(**kwargs)
        self.metric_name = metric_name
        self.tracker = keras.metrics.Mean(name=metric_name)

    def call(self, inputs):
        self.tracker.update_state(ops.std(inputs))
        return inputs

    def compute_output_shape(self, input_shape):
        # Declared so that Keras does not trace call() symbolically (no metric update then).
        return input_shape

    def get_config(self):
        return {**super().get_config(), "metric_name": self.metric_name}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogisticEndpoint(keras.layers.Layer):
    """The guide's endpoint layer: ``(targets, logits) -> probabilities``, with its own loss.

    In ``call`` it adds ``BinaryCrossentropy(from_logits=True)(targets, logits)``
    with ``self.add_loss`` and updates a ``BinaryAccuracy`` tracker (logged as
    ``accuracy``: sigmoid probabilities against the targets rounded at 0.5). It
    returns ``softmax(logits)`` as the guide does (``prediction: sigmoid`` returns
    the per-class probabilities that match the binary cross-entropy instead).

    Config (through the model builder)::

        model: {name: logistic_endpoint, prediction: softmax}
    """

    def __init__(self, prediction: str = "softmax", accuracy_name: str = "accuracy", **kwargs):
        super().__init__(**kwargs)
        if prediction not in ("softmax", "sigmoid"):
            raise ValueError(f"prediction must be softmax or sigmoid, got {prediction!r}")
        self.prediction = prediction
        self.accuracy_name = accuracy_name
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.accuracy = keras.metrics.BinaryAccuracy(name=accuracy_name)

    def call(self, targets, logits, sample_weights=None):
        loss = self.loss_fn(targets, logits, sample_weights)
        self.add_loss(loss)
        hard_targets = ops.cast(ops.greater(targets, 0.5), logits.dtype)
        self.accuracy.update_state(hard_targets, ops.sigmoid(logits), sample_weights)
        return ops.softmax(logits) if self.prediction == "softmax" else ops.sigmoid(logits)

    def compute_output_shape(self, targets_shape, logits_shape):
        return logits_shape

    def get_config(self):
        return {
            **super().get_config(),
            "prediction": self.prediction,
            "accuracy_name": self.accuracy_name,
        }
