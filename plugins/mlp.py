"""The model builder ``mlp``: the Keras guide's functional multi-layer perceptron.

With the defaults and MNIST it is the guide's model exactly::

    inputs = keras.Input(shape=(784,), name="digits")
    x = layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)

Config::

    model: {name: mlp, hidden_units: [64, 64], activation: relu}
"""

from orchestrator import UserError, hookimpl, model_dimensions


def mlp(
    context,
    hidden_units: tuple[int, ...] | list[int] = (64, 64),
    activation: str = "relu",
    input_name: str = "digits",
    output_name: str = "predictions",
    output_activation: str = "softmax",
    input_shape: list[int] | None = None,
    num_classes: int | None = None,
    dropout: float = 0.0,
):
    """A functional MLP; input shape and class count default to the data source's ``info``.

    Hidden layers are named ``dense_1``, ``dense_2``, ...; with ``dropout`` above 0,
    each is followed by a ``Dropout`` layer (``dropout_1``, ...) of that rate.
    """
    import keras

    shape, num_classes = model_dimensions(context, input_shape, num_classes)
    if any(int(units) < 1 for units in hidden_units):
        raise UserError("model.hidden_units", f"every width must be 1 or more, got {hidden_units}.")
    if not 0 <= dropout < 1:
        raise UserError("model.dropout", f"must be at least 0 and below 1, got {dropout}.")
    inputs = keras.Input(shape=shape, name=input_name)
    x = inputs
    for index, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(int(units), activation=activation, name=f"dense_{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
    outputs = keras.layers.Dense(num_classes, activation=output_activation, name=output_name)(x)
    return keras.Model(inputs=inputs, outputs=outputs)


@hookimpl
def orchestrator_register_model_builders(registry):
    registry.add("mlp", mlp)
