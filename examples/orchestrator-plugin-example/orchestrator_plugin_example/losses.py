"""The Keras side of the ``smoothed_crossentropy`` loss. It imports Keras at the top,
so the plugin module imports it only inside its factory, when a run compiles a model.

The class is registered with Keras, so a saved model that uses it loads again once
this module is imported::

    import keras
    import orchestrator_plugin_example.losses  # registers SmoothedCrossentropy

    model = keras.models.load_model("outputs/.../model.keras")
"""

import keras


@keras.saving.register_keras_serializable(package="orchestrator_plugin_example")
class SmoothedCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing.

    Keras's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this loss
    turns the class numbers into one-hot rows and calls
    ``keras.losses.categorical_crossentropy`` with ``label_smoothing=smoothing``.

    Example::

        loss = SmoothedCrossentropy(smoothing=0.1)
        loss([0, 2], [[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    """

    def __init__(self, smoothing=0.1, from_logits=False, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = smoothing
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, y_pred.shape[-1])
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.smoothing
        )

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing, "from_logits": self.from_logits}
