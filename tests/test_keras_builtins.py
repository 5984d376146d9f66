"""Every Keras built-in optimizer, schedule, loss, metric and callback is selectable by name."""

from types import SimpleNamespace

import pytest

from orchestrator.errors import UserError
from orchestrator.plugins import get_plugin_manager

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

#: Project spellings that differ from Keras's own snake_case (``keras.src.utils.naming``).
SPELLINGS = {
    "AdamW": "adamw",
    "ScheduleFreeAdamW": "schedule_free_adamw",
    "RMSprop": "rmsprop",
    "BinaryIoU": "binary_iou",
    "FBetaScore": "fbeta_score",
    "IoU": "iou",
    "MeanIoU": "mean_iou",
    "OneHotIoU": "one_hot_iou",
    "OneHotMeanIoU": "one_hot_mean_iou",
    "TerminateOnNaN": "terminate_on_nan",
    # Callbacks that write files are the file_callbacks plugin's, under the output folder.
    "ModelCheckpoint": "model_checkpoint",
    "CSVLogger": "csv_logger",
    "BackupAndRestore": "backup_and_restore",
    "TensorBoard": "tensorboard",
}

#: Keras classes that cannot be selected by name, and why.
NOT_SELECTABLE = {
    "LossScaleOptimizer": "wraps another optimizer object",
    "MultiOptimizer": "wraps other optimizer objects",
    "MeanMetricWrapper": "wraps a Python function",
    "LambdaCallback": "takes Python functions",
    "LearningRateScheduler": "takes a Python function (use a schedule as optimizer.learning_rate)",
    "CallbackList": "Keras's own container of callbacks",
    "History": "added by Model.fit itself",
    "ProgbarLogger": "added by Model.fit itself",
    "OrbaxCheckpoint": "needs the orbax-checkpoint package, which the project does not depend on",
}


def keras_classes() -> list[tuple[str, type]]:
    """Every public class Keras exports as an optimizer, schedule, loss, metric or callback."""
    import keras

    kinds = [
        ("optimizer", keras.optimizers, keras.optimizers.Optimizer),
        ("optimizer", keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule),
        ("loss", keras.losses, keras.losses.Loss),
        ("metric", keras.metrics, keras.metrics.Metric),
        ("callback", keras.callbacks, keras.callbacks.Callback),
    ]
    found = []
    for kind, module, base in kinds:
        for attribute in sorted(dir(module)):
            value = getattr(module, attribute)
            if isinstance(value, type) and issubclass(value, base) and value is not base:
                found.append((kind, value))
    return found


def selectable_name(cls: type) -> str:
    from keras.src.utils.naming import to_snake_case

    return SPELLINGS.get(cls.__name__, to_snake_case(cls.__name__))


CASES = [(kind, cls) for kind, cls in keras_classes() if cls.__name__ not in NOT_SELECTABLE]


def test_keras_exports_the_classes_the_test_derives():
    names = {cls.__name__ for _, cls in keras_classes()}
    expected = {"Adam", "ScheduleFreeAdamW", "CategoricalGeneralizedCrossEntropy", "AUC", "EarlyStopping"}
    assert expected <= names
    assert set(NOT_SELECTABLE) <= names, "an exclusion names a class Keras no longer exports"


@pytest.mark.parametrize(
    ("kind", "cls"), CASES, ids=[f"{kind}:{selectable_name(cls)}" for kind, cls in CASES]
)
def test_each_keras_class_is_created_by_its_snake_case_name(kind, cls, tmp_path):
    registry = get_plugin_manager().registries[kind]
    context = SimpleNamespace(output_dir=str(tmp_path), watch_artifact=lambda *args: None)
    name = selectable_name(cls)
    created = registry.create(name, REQUIRED.get(name, {}), key=kind, context=context)
    assert type(created) is cls


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
