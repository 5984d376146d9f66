"""A loss plugin: mean squared error times a factor, selectable as loss.name=scaled_mse."""

from orchestrator import hookimpl


def scaled_mse(scale: float = 1.0):
    """``loss: {name: scaled_mse, scale: 2.0}``; Keras is imported only when a run builds it."""
    import keras

    def loss(y_true, y_pred):
        return scale * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    return loss


@hookimpl
def orchestrator_register_losses(registry):
    registry.add("scaled_mse", scaled_mse)
