"""Keras guide, multi-input multi-output models: the ``multi_io`` plugins and their presets.

The end-to-end tests run the real CLI on each ``guide_multi_io_*`` preset (small
random data: 64 training samples in 2 full batches of 32, 32 validation and 32
test samples) and read the real MLflow store back. The other tests call the
plugins in-process without TensorFlow.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from orchestrator.config import register_schema
from orchestrator.errors import UserError
from orchestrator.plugins import get_plugin_manager
from orchestrator.spec import validate
from tests.conftest import REPO, cli_env, mlflow_client, only_run, run_cli

CONF = str(REPO / "conf")
PRESETS = ["guide_multi_io_dict", "guide_multi_io_list", "guide_multi_io_dataset", "guide_multi_io_none_loss"]
#: Small data: every batch full (64 = 2 x 32), so Keras's per-output loss means and
#: its total loss mean weigh the batches alike and the loss formula holds exactly.
SMALL = [
    "data.train_samples=64",
    "data.validation_samples=32",
    "data.test_samples=32",
    "data.batch_size=32",
    "trainer.batch_size=32",
    "trainer.limit_batches=2",
]
#: What Keras 3 calls each output's loss and metrics; logged as fit/<name>, fit/val_<name>, test/<name>.
PER_OUTPUT = [
    "score_output_loss",
    "score_output_mean_absolute_percentage_error",
    "score_output_mean_absolute_error",
    "class_output_loss",
    "class_output_categorical_accuracy",
]
PREFIXES = ["fit/", "fit/val_", "test/"]


# -- Runs of the real CLI, one per preset, shared by the tests that read them ----------------------


def _run_preset(folder: Path, preset: str, *overrides: str):
    result = run_cli(f"+experiment={preset}", *SMALL, *overrides, cwd=folder)
    assert result.returncode == 0, f"{preset} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return only_run(folder, preset)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("multi_io")


@pytest.fixture(scope="module")
def dict_run(folder):
    """The guide's compile call (dicts everywhere), two epochs."""
    return _run_preset(folder, "guide_multi_io_dict", "trainer.epochs=2")


@pytest.fixture(scope="module")
def list_run(folder):
    return _run_preset(folder, "guide_multi_io_list", "trainer.epochs=1")


@pytest.fixture(scope="module")
def dataset_run(folder):
    return _run_preset(folder, "guide_multi_io_dataset", "trainer.epochs=1")


@pytest.fixture(scope="module")
def none_loss_run(folder):
    return _run_preset(folder, "guide_multi_io_none_loss", "trainer.epochs=1")


def _history(folder: Path, run, name: str) -> dict[int, float]:
    """``{epoch: value}`` of one metric of ``run``."""
    return {m.step: m.value for m in mlflow_client(folder).get_metric_history(run.info.run_id, name)}


# -- End to end ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_per_output_metrics_reach_mlflow_under_readable_names_for_every_epoch(dict_run, folder):
    logged = set(dict_run.data.metrics)
    expected = {prefix + name for prefix in PREFIXES for name in PER_OUTPUT}
    assert expected <= logged, f"missing: {sorted(expected - logged)}"
    assert {"fit/loss", "fit/val_loss", "test/loss"} <= logged
    for name in ("fit/score_output_mean_absolute_error", "fit/val_class_output_categorical_accuracy"):
        history = _history(folder, dict_run, name)
        assert sorted(history) == [0, 1], f"{name}: steps {sorted(history)}"
        assert all(np.isfinite(v) for v in history.values())
    accuracy = _history(folder, dict_run, "fit/class_output_categorical_accuracy")
    assert all(0.0 <= v <= 1.0 for v in accuracy.values())


@pytest.mark.slow
@pytest.mark.parametrize("run_fixture", ["dict_run", "list_run"])
def test_loss_weights_give_the_total_loss_by_the_formula(request, run_fixture, folder):
    """total = 2.0 * score_output_loss + 1.0 * class_output_loss, the per-output losses unweighted."""
    run = request.getfixturevalue(run_fixture)
    metrics = run.data.metrics
    for prefix in PREFIXES:
        score, klass = metrics[f"{prefix}score_output_loss"], metrics[f"{prefix}class_output_loss"]
        total = metrics[f"{prefix}loss"]
        assert total == pytest.approx(2.0 * score + 1.0 * klass, rel=1e-5), prefix
        assert total != pytest.approx(score + klass, rel=1e-3), f"{prefix}: the weights had no effect"
        assert total != pytest.approx(score + 2.0 * klass, rel=1e-3), (
            f"{prefix}: weights went to the wrong output"
        )
    if run_fixture == "dict_run":
        for step, total in _history(folder, run, "fit/loss").items():
            score = _history(folder, run, "fit/score_output_loss")[step]
            klass = _history(folder, run, "fit/class_output_loss")[step]
            assert total == pytest.approx(2.0 * score + klass, rel=1e-5), f"epoch {step}"


@pytest.mark.slow
def test_predictions_are_written_per_output(dict_run, folder, tmp_path):
    client = mlflow_client(folder)
    files = {a.path for a in client.list_artifacts(dict_run.info.run_id, "predictions")}
    assert {"predictions/predict-score_output.npy", "predictions/predict-class_output.npy"} <= files
    score = np.load(
        client.download_artifacts(dict_run.info.run_id, "predictions/predict-score_output.npy", str(tmp_path))
    )
    klass = np.load(
        client.download_artifacts(dict_run.info.run_id, "predictions/predict-class_output.npy", str(tmp_path))
    )
    assert score.shape == (8, 1) and klass.shape == (8, 5)


@pytest.mark.slow
def test_each_outputs_predictions_are_the_saved_models_on_the_first_test_samples(dict_run, folder):
    import keras

    from orchestrator_plugins.multi_io import multi_io_random

    params = dict_run.data.params
    data = multi_io_random(
        train_samples=int(params["data.train_samples"]),
        validation_samples=int(params["data.validation_samples"]),
        test_samples=int(params["data.test_samples"]),
        seed=int(params["data.seed"]),
        layout=params["data.layout"],
    )
    x_test = {name: values[:8] for name, values in data.test[0].items()}
    output_dir = Path(dict_run.data.tags["orchestrator.output_dir"])
    model = keras.saving.load_model(output_dir / "model.keras")
    predicted = model.predict(x_test, verbose=0)
    if not isinstance(predicted, dict):
        predicted = dict(zip(model.output_names, predicted, strict=True))
    for output in ("score_output", "class_output"):
        logged = np.load(output_dir / "predictions" / f"predict-{output}.npy")
        np.testing.assert_allclose(logged, predicted[output], rtol=1e-5, atol=1e-6, err_msg=output)


@pytest.mark.slow
def test_a_null_loss_leaves_its_output_out_of_the_loss(none_loss_run):
    logged = set(none_loss_run.data.metrics)
    assert not [name for name in logged if "score_output_loss" in name]
    # With a single loss left Keras keeps no per-output loss at all; the total is the class loss.
    assert not [name for name in logged if "class_output_loss" in name]
    assert {"fit/loss", "fit/val_loss", "test/loss"} <= logged
    # The untrained output is still measured.
    assert {p + "score_output_mean_absolute_error" for p in PREFIXES} <= logged
    assert {p + "class_output_categorical_accuracy" for p in PREFIXES} <= logged


@pytest.mark.slow
def test_list_dict_and_dataset_layouts_all_train(list_run, dict_run, dataset_run):
    for run, layout, as_dataset in (
        (list_run, "list", "False"),
        (dict_run, "dict", "False"),
        (dataset_run, "dict", "True"),
    ):
        assert run.info.status == "FINISHED"
        assert run.data.params["data.layout"] == layout
        assert run.data.params["data.as_dataset"] == as_dataset
        assert run.data.tags["data_source"] == "random"
        expected = {prefix + name for prefix in PREFIXES for name in PER_OUTPUT}
        assert expected <= set(run.data.metrics)
        assert np.isfinite(run.data.metrics["fit/loss"])
    assert list_run.data.params["loss.0.name"] == "mean_squared_error"
    assert dict_run.data.params["loss.score_output.name"] == "mean_squared_error"


@pytest.mark.slow
def test_the_model_diagram_is_a_png_artifact(dict_run, folder, tmp_path):
    client = mlflow_client(folder)
    names = [a.path for a in client.list_artifacts(dict_run.info.run_id, "model")]
    assert "model/diagram.png" in names
    local = Path(client.download_artifacts(dict_run.info.run_id, "model/diagram.png", str(tmp_path)))
    width, height = _check_png(local.read_bytes())
    assert width > 200 and height > 200
    output_dir = Path(dict_run.data.tags["orchestrator.output_dir"])
    assert (output_dir / "diagram.png").read_bytes() == local.read_bytes()


def _check_png(data: bytes) -> tuple[int, int]:
    """Check the signature, every chunk's CRC, IHDR first, IEND last; return (width, height)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    offset, kinds, idat = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"IDAT":
            idat += body
        offset += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    assert zlib.decompress(idat)
    ihdr = data[16:24]
    return struct.unpack(">II", ihdr)


# -- In-process: no TensorFlow -----------------------------------------------------------------------


def _composed(*overrides: str):
    register_schema()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_compose_validate_and_pass_null_losses_through(preset):
    cfg = _composed(f"+experiment={preset}", "trainer.epochs=1", "trainer.limit_batches=2")
    validate(cfg, get_plugin_manager().registries)
    assert cfg.model.name == "multi_io" and cfg.data.name == "multi_io_random"
    assert cfg.stages.diagram.kind == "plot_model" and cfg.stages.diagram.show_shapes is True
    assert {m.output for m in cfg.metrics.values()} == {"score_output", "class_output"}
    if preset == "guide_multi_io_none_loss":
        assert list(cfg.loss) == [None, {"name": "categorical_crossentropy"}]
        from orchestrator.model import make_loss

        context = SimpleNamespace(registries=get_plugin_manager().registries)
        losses = make_loss(context, [None, "categorical_crossentropy"])
        assert losses == [None, "categorical_crossentropy"]


def test_random_data_is_seeded_shaped_as_the_guide_and_laid_out_as_asked():
    from orchestrator_plugins.multi_io import multi_io_random

    lists = multi_io_random(train_samples=8, test_samples=4, layout="list", seed=3)
    (image, series), (score, klass) = lists.train
    assert image.shape == (8, 32, 32, 3) and series.shape == (8, 20, 10)
    assert score.shape == (8, 1) and klass.shape == (8, 5)
    assert lists.validation is None and lists.test[0][0].shape == (4, 32, 32, 3)
    assert 0.0 <= image.min() and image.max() < 1.0
    dicts = multi_io_random(train_samples=8, test_samples=4, layout="dict", seed=3)
    x, y = dicts.train
    assert list(x) == ["img_input", "ts_input"] and list(y) == ["score_output", "class_output"]
    np.testing.assert_array_equal(x["img_input"], image)
    np.testing.assert_array_equal(y["class_output"], klass)
    other = multi_io_random(train_samples=8, layout="list", seed=4)
    assert not np.array_equal(other.train[0][0], image)
    assert dicts.info["num_classes"] == 5 and dicts.info["source"] == "random"


def test_bad_data_arguments_name_their_key():
    from orchestrator_plugins.multi_io import multi_io_random

    with pytest.raises(UserError, match="data.layout") as caught:
        multi_io_random(layout="tuple")
    assert "list, dict" in str(caught.value)
    with pytest.raises(UserError, match="data.train_samples"):
        multi_io_random(train_samples=0)


def test_plot_model_without_graphviz_names_the_stage(monkeypatch, tmp_path):
    """No ``dot`` on PATH: a UserError (the CLI prints it as one paragraph, exit 2) before Keras loads."""
    import orchestrator_plugins.multi_io as plugin

    monkeypatch.setattr(plugin.shutil, "which", lambda name: None)
    registry = get_plugin_manager().registries["stage"]
    stage = SimpleNamespace(name="diagram")
    context = SimpleNamespace(output_dir=tmp_path, model=None)
    with pytest.raises(UserError) as caught:
        registry.create("plot_model", {"show_shapes": True}, "stages.diagram", context=context, stage=stage)
    assert caught.value.key == "stages.diagram"
    assert "install graphviz" in str(caught.value) and "stages.diagram=null" in str(caught.value)


def test_a_plot_model_preset_without_graphviz_stops_before_training(monkeypatch):
    """The config check asks every configured stage what it needs, so nothing trains first."""
    import orchestrator_plugins.multi_io as plugin

    monkeypatch.setattr(plugin.shutil, "which", lambda name: None)
    cfg = _composed(f"+experiment={PRESETS[0]}")
    with pytest.raises(UserError) as caught:
        validate(cfg, get_plugin_manager().registries)
    assert caught.value.key == "stages.diagram" and "Graphviz's `dot` program is not on PATH" in str(
        caught.value
    )


def test_loading_the_plugins_imports_no_tensorflow():
    code = (
        "import sys; import orchestrator_plugins.multi_io as m; "
        "m.multi_io_random(train_samples=2); "
        "heavy = [n for n in ('tensorflow', 'keras') if n in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env())
    assert result.returncode == 0, result.stderr
