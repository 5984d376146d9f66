"""Every Keras built-in optimizer, learning-rate schedule, loss, metric and callback, by name.

Names are the snake_case of the Keras class (``RMSprop`` -> ``rmsprop``,
``KLDivergence`` -> ``kl_divergence``); arguments are the class's own::

    optimizer: {name: sgd, learning_rate: 0.01, momentum: 0.9}
    optimizer: {name: adam, learning_rate: {name: exponential_decay, initial_learning_rate: 0.1,
                                            decay_steps: 1000, decay_rate: 0.96}}
    loss: {name: kl_divergence}
    metrics: {auc: {name: auc, num_thresholds: 200}}

Each is also a group option without a YAML file of its own, under the ids
Keras's ``get`` functions take (``optimizer=nadam loss=mse metrics=[accuracy,auc]``);
a file ``conf/<group>/<id>.yaml`` wins. Keras is imported only when one of them
is created. Callbacks that write files are in
:mod:`orchestrator_plugins.file_callbacks`, which places relative paths in the
run's output folder.
"""

from orchestrator import hookimpl, lazy

OPTIMIZERS = {
    "adadelta": "Adadelta",
    "adafactor": "Adafactor",
    "adagrad": "Adagrad",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "ftrl": "Ftrl",
    "lamb": "Lamb",
    "lion": "Lion",
    "muon": "Muon",
    "nadam": "Nadam",
    "rmsprop": "RMSprop",
    "schedule_free_adamw": "ScheduleFreeAdamW",
    "sgd": "SGD",
}

SCHEDULES = {
    "cosine_decay": "CosineDecay",
    "cosine_decay_restarts": "CosineDecayRestarts",
    "exponential_decay": "ExponentialDecay",
    "inverse_time_decay": "InverseTimeDecay",
    "piecewise_constant_decay": "PiecewiseConstantDecay",
    "polynomial_decay": "PolynomialDecay",
}

LOSSES = {
    "binary_crossentropy": "BinaryCrossentropy",
    "binary_focal_crossentropy": "BinaryFocalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_focal_crossentropy": "CategoricalFocalCrossentropy",
    "categorical_generalized_cross_entropy": "CategoricalGeneralizedCrossEntropy",
    "categorical_hinge": "CategoricalHinge",
    "circle": "Circle",
    "cosine_similarity": "CosineSimilarity",
    "ctc": "CTC",
    "dice": "Dice",
    "hinge": "Hinge",
    "huber": "Huber",
    "kl_divergence": "KLDivergence",
    "log_cosh": "LogCosh",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "mean_squared_error": "MeanSquaredError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "poisson": "Poisson",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "squared_hinge": "SquaredHinge",
    "tversky": "Tversky",
}

METRICS = {
    "accuracy": "Accuracy",
    "auc": "AUC",
    "binary_accuracy": "BinaryAccuracy",
    "binary_crossentropy": "BinaryCrossentropy",
    "binary_iou": "BinaryIoU",
    "categorical_accuracy": "CategoricalAccuracy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_hinge": "CategoricalHinge",
    "concordance_correlation": "ConcordanceCorrelation",
    "cosine_similarity": "CosineSimilarity",
    "f1_score": "F1Score",
    "fbeta_score": "FBetaScore",
    "false_negatives": "FalseNegatives",
    "false_positives": "FalsePositives",
    "hinge": "Hinge",
    "iou": "IoU",
    "kl_divergence": "KLDivergence",
    "log_cosh_error": "LogCoshError",
    "mean": "Mean",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "mean_iou": "MeanIoU",
    "mean_squared_error": "MeanSquaredError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "one_hot_iou": "OneHotIoU",
    "one_hot_mean_iou": "OneHotMeanIoU",
    "pearson_correlation": "PearsonCorrelation",
    "poisson": "Poisson",
    "precision": "Precision",
    "precision_at_recall": "PrecisionAtRecall",
    "r2_score": "R2Score",
    "recall": "Recall",
    "recall_at_precision": "RecallAtPrecision",
    "root_mean_squared_error": "RootMeanSquaredError",
    "sensitivity_at_specificity": "SensitivityAtSpecificity",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "sparse_top_k_categorical_accuracy": "SparseTopKCategoricalAccuracy",
    "specificity_at_sensitivity": "SpecificityAtSensitivity",
    "squared_hinge": "SquaredHinge",
    "sum": "Sum",
    "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "true_negatives": "TrueNegatives",
    "true_positives": "TruePositives",
}

#: Keras's own string ids where they differ from the registered name (``keras.losses.get("mse")``).
OPTIMIZER_ALIASES = {"schedulefreeadamw": "schedule_free_adamw"}
LOSS_ALIASES = {
    "bce": "binary_crossentropy",
    "kld": "kl_divergence",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "mse": "mean_squared_error",
    "msle": "mean_squared_logarithmic_error",
}
METRIC_ALIASES = {
    **{alias: name for alias, name in LOSS_ALIASES.items() if alias != "kld"},
    "binary_io_u": "binary_iou",
    "f_beta_score": "fbeta_score",
    "io_u": "iou",
    "mean_io_u": "mean_iou",
    "one_hot_io_u": "one_hot_iou",
    "one_hot_mean_io_u": "one_hot_mean_iou",
}

#: Metric ids ``Model.compile`` resolves from the labels and the outputs (``accuracy`` becomes binary,
#: categorical or sparse categorical accuracy): as group options they go to ``compile`` as they are.
COMPILE_METRICS = ("accuracy", "acc", "crossentropy", "ce")

CALLBACKS = {
    "early_stopping": "EarlyStopping",
    "reduce_lr_on_plateau": "ReduceLROnPlateau",
    "remote_monitor": "RemoteMonitor",
    "swap_ema_weights": "SwapEMAWeights",
    "terminate_on_nan": "TerminateOnNaN",
}


def _add_all(registry, module: str, names: dict[str, str]) -> None:
    for name, class_name in names.items():
        registry.add(name, lazy(f"{module}.{class_name}"))


@hookimpl
def orchestrator_register_optimizers(registry):
    _add_all(registry, "keras.optimizers", OPTIMIZERS)
    _add_all(registry, "keras.optimizers.schedules", SCHEDULES)


@hookimpl
def orchestrator_register_losses(registry):
    _add_all(registry, "keras.losses", LOSSES)


@hookimpl
def orchestrator_register_metrics(registry):
    _add_all(registry, "keras.metrics", METRICS)


@hookimpl
def orchestrator_register_callbacks(registry):
    _add_all(registry, "keras.callbacks", CALLBACKS)


@hookimpl
def orchestrator_config_options():
    """Every name above as a group option, Keras's short ids too: ``optimizer=nadam loss=mse
    metrics=[accuracy,auc]``. Learning-rate schedules need arguments: they stay in ``conf/schedule``."""
    options = {
        f"optimizer/{alias}": {"name": name}
        for alias, name in {**_same(OPTIMIZERS), **OPTIMIZER_ALIASES}.items()
    }
    options |= {f"loss/{alias}": {"name": name} for alias, name in {**_same(LOSSES), **LOSS_ALIASES}.items()}
    for alias, name in {**_same(METRICS), **METRIC_ALIASES}.items():
        options[f"metrics/{alias}"] = {alias: {"name": name}}
    options |= {f"metrics/{metric}": {metric: metric} for metric in COMPILE_METRICS}
    options |= {f"callbacks/{name}": {name: {"name": name}} for name in CALLBACKS}
    return options


def _same(names: dict[str, str]) -> dict[str, str]:
    return {name: name for name in names}


def keras_file(path: str, safe_mode: bool = True):
    """A model saved as a ``.keras`` file (a checkpoint, or ``model.keras`` of an earlier run).

    It loads in Keras' safe mode: a file whose model holds a ``Lambda`` layer
    (Python code saved with the model) is refused, as such code would run on
    loading. Set ``safe_mode: false`` only for files you trust. The model is
    compiled again from the config, so ``optimizer``, ``loss`` and ``metrics`` apply.

    Example, evaluating a model trained earlier::

        model: {name: keras_file, path: outputs/2026-01-02/10-00-00/model.keras}
        stages: {test: {kind: evaluate, split: test}}
    """
    from pathlib import Path

    import keras

    from orchestrator import UserError

    if not Path(path).is_file():
        raise UserError("model.path", f"no file {path}; give the path of a .keras file.")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise UserError(
                "model.safe_mode",
                f"{path} holds a Lambda layer, whose saved Python code would run on loading; it was "
                "refused. Rebuild the model with a model builder, or set model.safe_mode=false if you "
                "trust the file.",
            ) from error
        raise UserError("model.path", f"{path} is not a readable .keras model: {error}") from error
    except OSError as error:
        raise UserError("model.path", f"{path} is not a readable .keras model: {error}") from error


@hookimpl
def orchestrator_register_model_builders(registry):
    registry.add("keras_file", keras_file)
