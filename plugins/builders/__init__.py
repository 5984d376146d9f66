"""Model builders for the models users have: a ``keras.applications`` model with a classification
head (:mod:`~orchestrator_plugins.builders.keras_application`) and a stack of Keras layers written
in YAML (:mod:`~orchestrator_plugins.builders.sequential`)::

    model: {name: keras_application, application: MobileNetV3Small, weights: null}
    model: {name: sequential, layers: [{Flatten: {}}, {Dense: {units: 10, activation: softmax}}]}

Each module is a plugin of its own, registered by an entry point. Names and argument names are
checked against Keras's installed source (:mod:`~orchestrator_plugins.builders._keras_names`)
before TensorFlow is imported; Keras is imported inside the builders, when a run builds a model.
See docs/model-builders.md.
"""
