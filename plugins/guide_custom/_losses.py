"""Custom losses of the Keras guide "Training & evaluation with the built-in methods".

Both compare one-hot targets with probabilities, so use them with one-hot labels
(``data.one_hot: true`` for ``mnist``)::

    loss: {name: custom_mean_squared_error}
    loss: {name: custom_mse, regularization_factor: 0.1}

Both are registered as Keras serializable objects (package ``orchestrator_guide``),
so a saved model compiled with them loads again once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

from orchestrator_plugins.guide_custom import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
def custom_mean_squared_error(y_true, y_pred):
    """The guide's loss as a plain function: the mean squared error over the last axis.

    Config::

        loss: {name: custom_mean_squared_error}
    """
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CustomMSE(keras.losses.Loss):
    """The guide's loss as a ``keras.losses.Loss`` subclass with a parameter.

    ``mse + regularization_factor * mean(square(0.5 - y_pred))``: the extra term
    pulls predictions towards 0.5, discouraging over-confident outputs.

    Config::

        loss: {name: custom_mse, regularization_factor: 0.1}
    """

    def __init__(self, regularization_factor: float = 0.1, name: str = "custom_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.regularization_factor = regularization_factor

    def call(self, y_true, y_pred):
        mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
        reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
        return mse + reg * self.regularization_factor

    def get_config(self):
        return {**super().get_config(), "regularization_factor": self.regularization_factor}
