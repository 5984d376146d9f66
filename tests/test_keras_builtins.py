"""Every Keras built-in optimizer, schedule, loss, metric and callback is selectable by name."""

import pytest

from orchestrator.errors import UserError
from orchestrator.plugins import get_plugin_manager
from orchestrator_plugins import keras_builtins

#: Arguments without which a Keras class cannot be built.
REQUIRED = {
    "piecewise_constant_decay": {"boundaries": [10], "values": [0.1, 0.01]},
    "exponential_decay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9},
    "inverse_time_decay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    "polynomial_decay": {"initial_learning_rate": 0.1, "decay_steps": 10},
    "cosine_decay": {"initial_learning_rate": 0.1, "decay_steps": 10},
    "cosine_decay_restarts": {"initial_learning_rate": 0.1, "first_decay_steps": 10},
    "iou": {"num_classes": 2, "target_class_ids": [0]},
    "mean_iou": {"num_classes": 2},
    "one_hot_iou": {"num_classes": 2, "target_class_ids": [0]},
    "one_hot_mean_iou": {"num_classes": 2},
    "precision_at_recall": {"recall": 0.5},
    "recall_at_precision": {"precision": 0.5},
    "sensitivity_at_specificity": {"specificity": 0.5},
    "specificity_at_sensitivity": {"sensitivity": 0.5},
}

KINDS = {
    "optimizer": {**keras_builtins.OPTIMIZERS, **keras_builtins.SCHEDULES},
    "loss": keras_builtins.LOSSES,
    "metric": keras_builtins.METRICS,
    "callback": keras_builtins.CALLBACKS,
}
CASES = [(kind, name, class_name) for kind, names in KINDS.items() for name, class_name in names.items()]


@pytest.mark.parametrize(("kind", "name", "class_name"), CASES, ids=[f"{k}:{n}" for k, n, _ in CASES])
def test_each_builtin_is_created_by_name_as_its_keras_class(kind, name, class_name):
    registry = get_plugin_manager().registries[kind]
    created = registry.create(name, REQUIRED.get(name, {}), key=kind)
    assert type(created).__name__ == class_name


def test_arguments_reach_the_keras_object():
    registries = get_plugin_manager().registries
    sgd = registries["optimizer"].create("sgd", {"learning_rate": 0.05, "momentum": 0.9}, key="optimizer")
    assert float(sgd.learning_rate) == pytest.approx(0.05) and sgd.momentum == pytest.approx(0.9)
    auc = registries["metric"].create("auc", {"num_thresholds": 50, "curve": "PR"}, key="metrics.auc")
    assert auc.num_thresholds == 50 and auc.curve.name == "PR"
    huber = registries["loss"].create("huber", {"delta": 2.0}, key="loss")
    assert huber._fn_kwargs == {"delta": 2.0}


def test_a_wrong_argument_of_a_keras_class_names_the_key_and_the_choices():
    registry = get_plugin_manager().registries["optimizer"]
    with pytest.raises(UserError) as caught:
        registry.create("adam", {"learning_rat": 0.1}, key="optimizer")
    assert caught.value.key == "optimizer.learning_rat"
    assert "Did you mean 'learning_rate'?" in str(caught.value)
