"""The model builders ``keras_application`` and ``sequential`` through the real CLI.

One fine-tuning run of MobileNet (alpha 0.25) at 32x32 on Fashion-MNIST (a weights file the test
writes, the application frozen in the first fit stage and unfrozen in the second) and one run of
a YAML layer list are shared by the tests that read them; mistakes are answered before
TensorFlow and before any MLflow run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from orchestrator import UserError
from orchestrator_plugins.builders.keras_application import check_keras_application, minimum_size
from orchestrator_plugins.builders.sequential import check_sequential
from tests.conftest import (
    assert_user_error,
    cli_env,
    heavy_modules_imported,
    mlflow_client,
    only_run,
    run_cli,
)

APPLICATION = "MobileNet"
#: The smallest MobileNet: a fine-tuning run of it costs a few seconds.
ALPHA = 0.25
CLASSES = 10
#: Fashion-MNIST's flat rows as 28x28 grayscale images, resized to 32x32 in the model.
IMAGES = ["data=fashion_mnist", "model.input_shape=[28,28,1]", "model.image_size=[32,32]"]
#: The head the builder puts around the application, in order: (layer name, Keras class).
APPLICATION_MODEL = [
    ("image", "InputLayer"),
    ("to_image", "Reshape"),
    ("resize", "Resizing"),
    ("to_rgb", "Concatenate"),
    ("base", "Functional"),
    ("pooling", "GlobalAveragePooling2D"),
    ("dropout", "Dropout"),
    ("predictions", "Dense"),
]
LAYERS = [
    {"Reshape": {"target_shape": [28, 28, 1]}},
    {"Conv2D": {"filters": 4, "kernel_size": [3, 3], "activation": "relu"}},
    {"MaxPooling2D": {"pool_size": [2, 2]}},
    {"Flatten": {}},
    {"Dense": {"units": CLASSES, "activation": "softmax", "name": "predictions"}},
]


def hydra_value(value) -> str:
    """``value`` written as a Hydra override value: ``[{Flatten:{}}, ...]``."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return str(value)


def as_lists(value):
    """Keras keeps shapes as tuples; the config writes lists."""
    return [as_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


@pytest.fixture(scope="module")
def weights(tmp_path_factory, keras):
    """A MobileNet without its top, built here with a seed, and the file its weights went to."""
    keras.utils.set_random_seed(11)
    application = keras.applications.MobileNet(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=ALPHA
    )
    path = tmp_path_factory.mktemp("weights") / "mobilenet_notop.weights.h5"
    application.save_weights(path)
    return path, application


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, weights) -> Path:
    """``stages=fine_tuning_application``: stage ``head`` with the application frozen by
    ``model.trainable_base=false``, ``fine_tune`` with it unfrozen by the fit stage's ``trainable``."""
    folder = tmp_path_factory.mktemp("application")
    result = run_cli(
        *IMAGES,
        "model=keras_application",
        f"model.application={APPLICATION}",
        f"+model.arguments.alpha={ALPHA}",
        f"model.weights={weights[0]}",
        "model.trainable_base=false",
        "model.dropout=0.2",
        "stages=fine_tuning_application",
        "stages.head.trainable=null",
        "~stages.test",
        "~stages.predict",
        "trainer.limit_batches=2",
        "tracking.log_model=false",
        "tracking.experiment_name=builders",
        "seed=1",
        cwd=folder,
        env=cli_env(ORCHESTRATOR_DISABLE_PLUGINS="mlflow_review"),  # no plots: the record is the point
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def checkpoint(folder: Path, epoch: int, keras):
    (path,) = folder.glob(f"outputs/*/*/checkpoints/epoch-{epoch:03d}.keras")
    return keras.saving.load_model(path, compile=False)


def parameters(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.mark.slow
def test_the_run_records_the_application_and_the_model_has_the_application_under_its_head(
    fine_tuned, keras, tmp_path
):
    run = only_run(fine_tuned, "builders")
    assert run.data.params["model.name"] == "keras_application"
    assert run.data.params["model.application"] == APPLICATION
    client = mlflow_client(fine_tuned)
    saved = client.download_artifacts(run.info.run_id, "checkpoints/epoch-002.keras", str(tmp_path))
    model = keras.saving.load_model(saved, compile=False)
    assert [(layer.name, type(layer).__name__) for layer in model.layers] == APPLICATION_MODEL
    head = model.get_layer("predictions")
    assert (head.units, head.get_config()["activation"]) == (CLASSES, "softmax")
    assert model.get_layer("dropout").rate == 0.2
    assert model.input_shape == (None, 784) and model.get_layer("to_rgb").output.shape == (None, 32, 32, 3)


@pytest.mark.slow
def test_a_weights_file_is_loaded_and_a_frozen_application_keeps_it(fine_tuned, weights, keras):
    """After the first stage, the application holds the file's weights exactly and only the
    Dense head is trainable: (features + 1) x classes parameters."""
    _, built = weights
    model = checkpoint(fine_tuned, 1, keras)
    base = model.get_layer("base")
    assert not base.trainable
    loaded = base.get_weights()
    assert len(loaded) == len(built.weights)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, built.get_weights(), strict=True))
    features = built.output_shape[-1]
    assert parameters(model.trainable_weights) == (features + 1) * CLASSES


@pytest.mark.slow
def test_a_fit_stage_unfreezes_the_application_for_fine_tuning(fine_tuned, weights, keras):
    _, built = weights
    model = checkpoint(fine_tuned, 2, keras)
    base = model.get_layer("base")
    assert base.trainable
    features = built.output_shape[-1]
    assert (
        parameters(model.trainable_weights) == parameters(built.trainable_weights) + (features + 1) * CLASSES
    )
    kernel = base.get_layer("conv1").kernel
    assert not np.array_equal(np.asarray(kernel), np.asarray(built.get_layer("conv1").kernel))


@pytest.fixture(scope="module")
def sequential_model(tmp_path_factory, keras):
    folder = tmp_path_factory.mktemp("sequential")
    result = run_cli(
        "+experiment=mnist",
        "data=fashion_mnist",
        "model=sequential",
        f"model.layers={hydra_value(LAYERS)}",
        "trainer.epochs=1",
        "trainer.limit_batches=2",
        "tracking=off",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = folder.glob("outputs/*/*/model.keras")
    return keras.saving.load_model(path, compile=False)


@pytest.mark.slow
def test_a_sequential_model_has_the_layers_of_the_yaml_list_with_their_arguments(sequential_model):
    model = sequential_model
    assert [type(layer).__name__ for layer in model.layers] == [next(iter(item)) for item in LAYERS]
    for layer, item in zip(model.layers, LAYERS, strict=True):
        ((_, arguments),) = item.items()
        config = layer.get_config()
        assert {name: as_lists(config[name]) for name in arguments} == arguments, layer.name
    assert model.input_shape == (None, 784)
    assert model.output_shape == (None, CLASSES)


A = ["model=keras_application"]
S = ["model=sequential"]

MISTAKES = {
    "unknown application": (
        [*A, "model.application=MobileNetV3Smal"],
        ["model.application", "unknown Keras application", "Did you mean 'MobileNetV3Small'?"],
    ),
    "imagenet weights": (
        [*A, "model.application=ResNet50", "model.weights=imagenet"],
        ["model.weights", "imagenet would be downloaded", "local file"],
    ),
    "image smaller than the application takes": (
        [*A, "model.application=ResNet50", "model.image_size=[16,16]"],
        ["model.image_size", "model.application=ResNet50", "at least 32x32", "model.image_size=[32, 32]"],
    ),
    "misspelt application argument": (
        [*A, "model.application=MobileNetV3Small", "+model.arguments.alfa=0.5"],
        ["model.arguments.alfa", "Did you mean 'alpha'?"],
    ),
    "unknown layer": (
        [*S, "model.layers=[{Dens:{units:10}}]"],
        ["model.layers[0]", "unknown Keras layer 'Dens'", "Did you mean 'Dense'?"],
    ),
    "misspelt layer argument": (
        [*S, "model.layers=[{Flatten:{}},{Dense:{unit:10}}]"],
        ["model.layers[1].Dense.unit", "Did you mean 'units'?"],
    ),
    "layer item that is not a mapping": (
        [*S, "model.layers=[Flatten]"],
        ["model.layers[0]", "a mapping of one Keras layer name to its arguments", "got 'Flatten'"],
    ),
}


@pytest.mark.parametrize("args, says", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_builder_mistake_is_answered_before_any_run(args, says, workdir):
    assert_user_error(run_cli("+experiment=mnist", *args, cwd=workdir), *says)
    assert not (workdir / "mlflow.db").exists()


#: More mistakes, asked of the builders' own checks (the ones the CLI runs before TensorFlow).
CHECKED = {
    "application missing": (
        check_keras_application,
        {"application": "???"},
        "model.application: is required",
    ),
    "application in lower case": (
        check_keras_application,
        {"application": "resnet50"},
        "Did you mean 'ResNet50'? Keras names are case-sensitive.",
    ),
    "missing weights file": (
        check_keras_application,
        {"application": "ResNet50", "weights": "/no/such.weights.h5"},
        "model.weights: no file /no/such.weights.h5",
    ),
    "input shape smaller than the application takes": (
        check_keras_application,
        {"application": "Xception", "input_shape": [28, 28, 1]},
        "model.input_shape: model.application=Xception needs images of at least 71x71",
    ),
    "application argument the builder sets": (
        check_keras_application,
        {"application": "ResNet50", "arguments": {"include_top": True}},
        "model.arguments.include_top: is set by the builder",
    ),
    "unknown pooling": (
        check_keras_application,
        {"application": "ResNet50", "pooling": "mean"},
        "model.pooling: must be one of avg, max",
    ),
    "layer item with two layers": (
        check_sequential,
        {"layers": [{"Flatten": {}, "Dense": {"units": 10}}]},
        "model.layers[0]: each layer is a mapping of one Keras layer name",
    ),
    "layer arguments that are not a mapping": (
        check_sequential,
        {"layers": [{"Dense": 10}]},
        "model.layers[0].Dense: a layer's arguments are a mapping",
    ),
    "an input layer in the list": (
        check_sequential,
        {"layers": [{"Input": {"shape": [4]}}]},
        "set model.input_shape",
    ),
    "an empty list": (check_sequential, {"layers": []}, "model.layers: is empty"),
}


@pytest.mark.parametrize("check, args, says", CHECKED.values(), ids=CHECKED.keys())
def test_a_builder_check_refuses_the_mistake(check, args, says):
    with pytest.raises(UserError) as refused:
        check(args, "model")
    assert says in str(refused.value)


def test_layer_and_application_names_are_checked_without_importing_tensorflow(workdir):
    for args in (["model=sequential", "model.layers=[{Dense:{unit:1}}]"], [*A, "model.application=X"]):
        heavy, _ = heavy_modules_imported(["+experiment=mnist", *args], workdir, ("tensorflow", "keras"))
        assert heavy == []


@pytest.mark.slow
def test_a_weights_file_of_another_model_is_refused_naming_model_weights(weights, keras):
    """The file holds a MobileNet of alpha 0.25; a MobileNet of alpha 1.0 has other shapes."""
    from types import SimpleNamespace

    from orchestrator import Data
    from orchestrator_plugins.builders.keras_application import keras_application

    context = SimpleNamespace(data=Data(train=None, info={"input_shape": (32, 32, 3), "num_classes": 2}))
    with pytest.raises(UserError) as refused:
        keras_application(context, application=APPLICATION, weights=str(weights[0]))
    assert refused.value.key == "model.weights"
    assert f"does not fit {APPLICATION} without its top" in refused.value.problem
    assert "variable.shape=(3, 3, 3, 32), Received: value.shape=(3, 3, 3, 8)" in refused.value.problem
    assert len(refused.value.problem) < 500, "Keras's message lists every value; only its gist is kept"


#: Layers a YAML model is made of, whose argument names are compared with the imported classes'.
COMMON_LAYERS = (
    "Activation BatchNormalization Conv1D Conv2D Conv2DTranspose DepthwiseConv2D Dense Dropout "
    "Embedding Flatten GRU GlobalAveragePooling2D LSTM LayerNormalization LeakyReLU MaxPooling2D "
    "RandomFlip Rescaling Reshape Resizing SeparableConv2D SpatialDropout2D UpSampling2D"
).split()


@pytest.mark.slow
def test_the_names_read_from_keras_source_are_the_names_keras_exports(keras):
    """Application and layer names, and the argument names of common layers, read without importing
    Keras, against the imported modules (a valid name or argument must never be refused)."""
    from orchestrator import lazy
    from orchestrator.registry import _class_parameters
    from orchestrator_plugins.builders._keras_names import public_classes
    from orchestrator_plugins.builders.sequential import NOT_IN_A_LIST

    applications = [n for n in dir(keras.applications) if n[:1].isupper()]
    assert public_classes("keras.applications") == sorted(applications)
    layers = [n for n in dir(keras.layers) if n[:1].isupper() and n not in NOT_IN_A_LIST]
    assert public_classes("keras.layers", NOT_IN_A_LIST) == sorted(layers)
    for name in COMMON_LAYERS:
        read = lazy(f"keras.layers.{name}").parameter_names()
        assert set(read or []) == set(_class_parameters(getattr(keras.layers, name))), name


@pytest.mark.parametrize(
    "application, smallest",
    [
        ("ResNet50", 32),
        ("EfficientNetB0", 32),
        ("Xception", 71),
        ("InceptionV3", 75),
        ("MobileNetV3Small", None),
    ],
)
def test_the_minimum_image_size_is_read_from_keras_source(application, smallest):
    assert minimum_size(application) == smallest
