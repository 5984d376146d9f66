"""Keras string ids are group options without a YAML file: ``optimizer=nadam loss=mse metrics=[acc,auc]``.

The options come from ``keras_builtins`` (hook ``orchestrator_config_options``)
through the Hydra config source ``hydra_plugins/orchestrator_string_ids``;
Hydra composes them here in-process, as the command line would. Their
misspellings are in the bad-input corpus (``KERAS_IDS`` in test_bad_input.py).
"""

from __future__ import annotations

import json
import zipfile

import pytest
from omegaconf import OmegaConf

from orchestrator.__main__ import CONFIG_DIR, register_hydra_plugins
from orchestrator.config import register_schema
from orchestrator.errors import UserError
from orchestrator.listing import print_plugins
from orchestrator.plugins import get_plugin_manager
from orchestrator_plugins import keras_builtins
from tests.conftest import metric_history, mlflow_client, only_run, run_cli


def compose(*overrides: str) -> dict:
    """The config ``python -m orchestrator OVERRIDES`` would run, as plain Python."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schema()
    register_hydra_plugins()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return OmegaConf.to_container(hydra_compose("config", overrides=list(overrides)))


def test_an_optimizer_id_composes_to_its_registered_name():
    assert compose("optimizer=nadam")["optimizer"] == {"name": "nadam"}


@pytest.mark.parametrize(
    ("override", "group", "expected"),
    [
        ("loss=mse", "loss", {"name": "mean_squared_error"}),
        ("loss=kld", "loss", {"name": "kl_divergence"}),
        ("loss=huber", "loss", {"name": "huber"}),
        ("metrics=mae", "metrics", {"mae": {"name": "mean_absolute_error"}}),
        ("callbacks=swap_ema_weights", "callbacks", {"swap_ema_weights": {"name": "swap_ema_weights"}}),
    ],
)
def test_keras_ids_compose_to_the_registered_names(override, group, expected):
    assert compose(override)[group] == expected


def test_a_list_of_metric_ids_gives_each_under_its_id():
    """``accuracy`` stays a string: ``Model.compile`` picks its variant from the labels, as in Keras."""
    assert compose("metrics=[accuracy,auc]")["metrics"] == {"accuracy": "accuracy", "auc": {"name": "auc"}}


def test_a_yaml_file_in_conf_wins_over_the_id():
    """``conf/optimizer/rmsprop.yaml`` holds a learning rate that the id alone does not."""
    from pathlib import Path

    own = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "optimizer" / "rmsprop.yaml"))
    assert own != {"name": "rmsprop"}
    assert compose("optimizer=rmsprop")["optimizer"] == own


def test_the_config_source_answers_only_the_ids_a_plugin_answers():
    from hydra.plugins.config_source import ConfigLoadError

    from hydra_plugins.orchestrator_string_ids import StringIdsConfigSource

    source = StringIdsConfigSource(provider="test", path="string-ids://")
    assert source.is_config("optimizer/nadam") and source.is_config("metrics/auc")
    for unknown in ("optimizer/nadm", "optimizer/exponential_decay", "optimizer/Nadam", "data/nadam"):
        assert not source.is_config(unknown), unknown
    with pytest.raises(ConfigLoadError):
        source.load_config("optimizer/nadm")
    assert source.list("optimizer", None) == []


def test_an_unknown_id_is_a_missing_option():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="optimizer/nadm"):
        compose("optimizer=nadm")


def test_every_option_names_a_registered_entry():
    manager = get_plugin_manager()
    kinds = {"optimizer": "optimizer", "loss": "loss", "metrics": "metric", "callbacks": "callback"}
    for path, (content, _) in manager.config_options.items():
        group = path.split("/")[0]
        for spec in [content] if group in ("optimizer", "loss") else content.values():
            if isinstance(spec, dict):
                assert spec["name"] in manager.registries[kinds[group]], path
            else:
                assert spec in keras_builtins.COMPILE_METRICS, path


def _manager(*answers: dict):
    """A plugin manager of plugins that each answer ``orchestrator_config_options`` with one mapping."""
    import pluggy

    from orchestrator import PROJECT_NAME, hookimpl, hookspecs
    from orchestrator.plugins import PluginManager

    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for index, answer in enumerate(answers):
        plugin = type(f"P{index}", (), {"orchestrator_config_options": hookimpl(lambda self, a=answer: a)})
        pm.register(plugin(), name=f"p{index}")
    return PluginManager(pm, {})


def test_two_plugins_answering_one_option_are_refused_by_name():
    with pytest.raises(
        UserError, match="plugin 'p.': answers the config option loss/smooth, which plugin 'p.'"
    ):
        _manager({"loss/smooth": {"name": "huber"}}, {"loss/smooth": {"name": "log_cosh"}})


def test_an_option_that_is_not_group_and_content_is_refused():
    with pytest.raises(UserError, match="plugin 'p0'.*'group/option'"):
        _manager({"smooth": {"name": "huber"}})
    assert _manager({"loss/smooth": {"name": "huber"}}).group_options("loss") == {"smooth": "p0"}


def test_the_short_ids_are_those_keras_takes_and_mean_the_same():
    """Every lower-case id Keras's ``get`` takes besides the registered names, and for the same object."""
    from keras.src import losses, metrics, optimizers

    for module, registered, aliases in (
        (optimizers, keras_builtins.OPTIMIZERS, keras_builtins.OPTIMIZER_ALIASES),
        (losses, keras_builtins.LOSSES, keras_builtins.LOSS_ALIASES),
        (metrics, keras_builtins.METRICS, keras_builtins.METRIC_ALIASES),
    ):
        keras_ids = module.ALL_OBJECTS_DICT  # what ``keras.<module>.get`` looks a string up in
        short = {n for n in keras_ids if n.islower() and n not in registered}
        short -= {"optimizer", "multioptimizer", "optimizermap", "lossscaleoptimizer"}  # wrappers
        short -= {"loss", "metric", "mean_metric_wrapper", "loss_function_wrapper"}  # base classes
        assert short == set(aliases), module.__name__
        for alias, name in aliases.items():  # a loss id names a function, the others a class
            assert keras_ids[alias].__name__ in (name, registered[name]), alias


def test_the_listing_counts_the_ids_per_group(capsys):
    print_plugins(get_plugin_manager())
    out = capsys.readouterr().out
    assert "group options without a YAML file" in out
    optimizers = len(keras_builtins.OPTIMIZERS)
    assert f"optimizer=  {optimizers} of the optimizer names above, and schedulefreeadamw  plugin" in out
    assert "and bce, kld, mae, mape, mse, msle  plugin 'keras_builtins'" in out
    assert len(out.splitlines()) < 250


RUN = [
    "+experiment=mnist",
    "optimizer=nadam",
    "metrics=[accuracy,sparse_categorical_accuracy,sparse_top_k_categorical_accuracy]",
    "data.source=bundled",
    "trainer.epochs=1",
    "trainer.limit_batches=2",
    "trainer.verbose=0",
    "stages.predict=null",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny MNIST run chosen by Keras ids, tracked: ``(folder, MLflow run)``."""
    folder = tmp_path_factory.mktemp("keras_ids")
    done = run_cli(*RUN, cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, only_run(folder, "mnist")


@pytest.mark.slow
def test_the_run_trained_with_the_optimizer_the_id_names(run):
    folder, found = run
    assert found.data.params["optimizer.name"] == "nadam"
    model = mlflow_client(folder).download_artifacts(found.info.run_id, "model/model.keras", str(folder))
    with zipfile.ZipFile(model) as archive:
        compiled = json.loads(archive.read("config.json"))["compile_config"]
    assert compiled["optimizer"]["class_name"] == "Nadam"


@pytest.mark.slow
def test_each_metric_id_is_logged_under_its_id(run):
    """``accuracy`` on sparse labels is Keras's sparse categorical accuracy: the two histories agree."""
    folder, found = run
    client = mlflow_client(folder)
    for prefix in ("fit/", "fit/val_", "test/"):
        accuracy = metric_history(client, found.info.run_id, f"{prefix}accuracy")
        sparse = metric_history(client, found.info.run_id, f"{prefix}sparse_categorical_accuracy")
        top_k = metric_history(client, found.info.run_id, f"{prefix}sparse_top_k_categorical_accuracy")
        assert accuracy and accuracy == sparse, prefix
        assert len(top_k) == len(accuracy)
        assert all(k >= a for (_, k), (_, a) in zip(top_k, accuracy, strict=True)), prefix
    assert found.data.params["metrics.accuracy"] == "accuracy"
