"""Custom losses, metrics and layers of the Keras guide "Training & evaluation with the built-in methods".

What this plugin registers (the Keras classes are in ``_losses.py``, ``_metrics.py`` and
``_layers.py`` beside this file, imported only when a run uses them):

============================  ============  ==========================================================
name                          kind          config example
============================  ============  ==========================================================
custom_mean_squared_error     loss          ``loss: {name: custom_mean_squared_error}``
custom_mse                    loss          ``loss: {name: custom_mse, regularization_factor: 0.1}``
categorical_true_positives    metric        ``metrics: {ctp: {name: categorical_true_positives}}``
mlp_with_layer_losses         model         ``model: {name: mlp_with_layer_losses, regularization_rate: 0.1}``
logistic_endpoint             model         ``model: {name: logistic_endpoint}`` (compile with ``loss: null``)
endpoint_random               data source   ``data: {name: endpoint_random, train_size: 1024}``
============================  ============  ==========================================================

Presets: ``guide_custom_loss_function``, ``guide_custom_loss_class``,
``guide_custom_metric``, ``guide_layer_losses``, ``guide_endpoint``
(``python -m orchestrator +experiment=guide_endpoint``). See docs/guide.md,
"Custom losses, metrics and layers", for where Keras 3 differs from the guide.

The custom objects are registered with ``keras.saving.register_keras_serializable``
(package ``orchestrator_guide``); to load a saved model that uses them, import
their module first (:func:`custom_objects` does it and returns them by name)::

    from orchestrator_plugins.guide_custom import custom_objects
    model = keras.saving.load_model("model.keras", custom_objects=custom_objects())
"""

from __future__ import annotations

from orchestrator import Data, UserError, hookimpl, model_dimensions

#: The package the custom objects are registered under in Keras (``orchestrator_guide>CustomMSE``);
#: saved models name it, so it never changes.
PACKAGE = "orchestrator_guide"

# -- Losses ------------------------------------------------------------------------------


def custom_mean_squared_error():
    """The guide's loss function ``mean(square(y_true - y_pred), axis=-1)``, for one-hot labels.

    Config::

        data: {name: mnist, one_hot: true}
        loss: {name: custom_mean_squared_error}
    """
    from orchestrator_plugins.guide_custom._losses import custom_mean_squared_error as loss

    return loss


def custom_mse(regularization_factor: float = 0.1, reduction: str | None = "sum_over_batch_size"):
    """The guide's ``CustomMSE`` loss: ``mse + regularization_factor * mean(square(0.5 - y_pred))``.

    A ``keras.losses.Loss`` subclass with a parameter, for one-hot labels. The
    arguments are checked (a misspelt one fails) before TensorFlow is imported.

    Config::

        data: {name: mnist, one_hot: true}
        loss: {name: custom_mse, regularization_factor: 0.1}
    """
    from orchestrator_plugins.guide_custom._losses import CustomMSE

    return CustomMSE(regularization_factor=regularization_factor, reduction=reduction)


# -- Metrics -------------------------------------------------------------------------------


def categorical_true_positives():
    """The guide's stateful metric: the number of correctly classified samples, reset every epoch.

    Labels may be class numbers or one-hot rows. Logged under its Keras name,
    ``fit/categorical_true_positives`` per epoch and ``test/categorical_true_positives``.

    Config::

        metrics:
          categorical_true_positives: {name: categorical_true_positives}
    """
    from orchestrator_plugins.guide_custom._metrics import CategoricalTruePositives

    return CategoricalTruePositives()


# -- Data --------------------------------------------------------------------------------


def endpoint_random(
    train_size: int = 1024,
    validation_size: int = 256,
    test_size: int = 256,
    input_dim: int = 3,
    num_targets: int = 10,
    seed: int = 0,
):
    """The guide's data for the endpoint model: ``{"inputs": (n, 3), "targets": (n, 10)}``, no ``y``.

    Uniform random numbers in [0, 1), as the guide's ``np.random.random``; each
    split is ``(x, None)``: the targets are a model *input*, consumed by the
    ``LogisticEndpoint`` layer, so ``Model.fit`` gets no ``y``.

    Config::

        data: {name: endpoint_random, train_size: 1024, validation_size: 256, test_size: 256}
    """
    import numpy as np

    minimums = {
        "train_size": (train_size, 1),
        "validation_size": (validation_size, 0),
        "test_size": (test_size, 0),
        "input_dim": (input_dim, 1),
        "num_targets": (num_targets, 1),
    }
    for key, (value, least) in minimums.items():
        if value < least:
            raise UserError(f"data.{key}", f"must be {least} or more, got {value}.")
    rng = np.random.default_rng(seed)

    def split(n: int):
        if n == 0:
            return None
        x = {
            "inputs": rng.random((n, input_dim)).astype("float32"),
            "targets": rng.random((n, num_targets)).astype("float32"),
        }
        return (x, None)

    return Data(
        train=split(train_size),
        validation=split(validation_size),
        test=split(test_size),
        info={"input_shape": (input_dim,), "num_targets": num_targets, "source": "random"},
    )


# -- Model builders --------------------------------------------------------------------


def mlp_with_layer_losses(
    context,
    hidden_units: tuple[int, ...] | list[int] = (64, 64),
    activation: str = "relu",
    regularization_rate: float = 0.1,
    log_std: bool = True,
    metric_name: str = "std_of_activation",
    output_activation: str | None = None,
    input_name: str = "digits",
    output_name: str = "predictions",
    input_shape: list[int] | None = None,
    num_classes: int | None = None,
):
    """The guide's MLP with an ``ActivityRegularizationLayer`` and a ``MetricLoggingLayer`` after ``dense_1``.

    ``digits -> dense_1 -> activity_regularization -> metric_logging -> dense_2 ->
    predictions``. The first adds ``regularization_rate * sum(activations)`` to the
    loss (``0`` leaves the layer out); the second logs the standard deviation of
    the activations as ``std_of_activation`` (``log_std: false`` leaves it out).
    The output is logits, as in the guide: compile with
    ``sparse_categorical_crossentropy`` and ``from_logits: true``.

    Config::

        model: {name: mlp_with_layer_losses, hidden_units: [64, 64], regularization_rate: 0.1,
                log_std: true}
        loss: {name: sparse_categorical_crossentropy, from_logits: true}
    """
    import keras

    from orchestrator_plugins.guide_custom._layers import ActivityRegularizationLayer, MetricLoggingLayer

    shape, num_classes = model_dimensions(context, input_shape, num_classes)
    if not hidden_units or any(int(units) < 1 for units in hidden_units):
        raise UserError("model.hidden_units", f"needs one width or more, each 1 or more; got {hidden_units}.")
    if regularization_rate < 0:
        raise UserError("model.regularization_rate", f"must be 0 or more, got {regularization_rate}.")
    inputs = keras.Input(shape=shape, name=input_name)
    x = inputs
    for index, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(int(units), activation=activation, name=f"dense_{index}")(x)
        if index == 1:
            if regularization_rate:
                x = ActivityRegularizationLayer(rate=regularization_rate, name="activity_regularization")(x)
            if log_std:
                x = MetricLoggingLayer(metric_name=metric_name, name="metric_logging")(x)
    outputs = keras.layers.Dense(num_classes, activation=output_activation, name=output_name)(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def logistic_endpoint(
    context=None,
    input_dim: int | None = None,
    num_targets: int | None = None,
    prediction: str = "softmax",
):
    """The guide's endpoint model: inputs ``inputs`` and ``targets``, ``Dense`` logits, ``LogisticEndpoint``.

    Both the data and the targets are model inputs; the endpoint layer adds the
    binary cross-entropy with ``add_loss``, so the model is compiled with no loss
    (``loss: null``). Sizes default to the data source's ``info`` (3 and 10 for
    ``endpoint_random``, as in the guide).

    Config::

        data: {name: endpoint_random}
        model: {name: logistic_endpoint, prediction: softmax}
        loss: null
    """
    import keras

    from orchestrator_plugins.guide_custom._layers import LogisticEndpoint

    info = context.data.info if context is not None and context.data is not None else {}
    input_dim = input_dim or (info.get("input_shape") or (3,))[0]
    num_targets = num_targets or info.get("num_targets") or info.get("num_classes") or 10
    if prediction not in ("softmax", "sigmoid"):
        raise UserError("model.prediction", f"must be softmax or sigmoid, got {prediction!r}.")
    inputs = keras.Input(shape=(int(input_dim),), name="inputs")
    targets = keras.Input(shape=(int(num_targets),), name="targets")
    logits = keras.layers.Dense(int(num_targets), name="logits")(inputs)
    predictions = LogisticEndpoint(prediction=prediction, name="predictions")(targets, logits)
    return keras.Model(inputs={"inputs": inputs, "targets": targets}, outputs=predictions)


# -- Loading saved models ---------------------------------------------------------------


def custom_objects() -> dict:
    """The custom Keras objects of this plugin by class name, for ``keras.saving.load_model``.

    Importing them also registers them as serializable, which is all a plain
    ``keras.saving.load_model(path)`` needs.
    """
    from orchestrator_plugins.guide_custom._layers import (
        ActivityRegularizationLayer,
        LogisticEndpoint,
        MetricLoggingLayer,
    )
    from orchestrator_plugins.guide_custom._losses import CustomMSE, custom_mean_squared_error
    from orchestrator_plugins.guide_custom._metrics import CategoricalTruePositives

    objects = [
        ActivityRegularizationLayer,
        MetricLoggingLayer,
        LogisticEndpoint,
        CustomMSE,
        custom_mean_squared_error,
        CategoricalTruePositives,
    ]
    return {obj.__name__: obj for obj in objects}


# -- Registration ------------------------------------------------------------------------


@hookimpl
def orchestrator_register_losses(registry):
    registry.add("custom_mean_squared_error", custom_mean_squared_error)
    registry.add("custom_mse", custom_mse)


@hookimpl
def orchestrator_register_metrics(registry):
    registry.add("categorical_true_positives", categorical_true_positives)


@hookimpl
def orchestrator_register_model_builders(registry):
    registry.add("mlp_with_layer_losses", mlp_with_layer_losses)
    registry.add("logistic_endpoint", logistic_endpoint)


@hookimpl
def orchestrator_register_data_sources(registry):
    registry.add("endpoint_random", endpoint_random)
