"""The config tree composes, and validation catches what Hydra's schema cannot."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from orchestrator.config import flatten, register_schema
from orchestrator.errors import UserError
from orchestrator.plugins import get_plugin_manager
from orchestrator.spec import validate

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def composed(*overrides: str):
    register_schema()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def registries():
    return get_plugin_manager().registries


def test_the_mnist_preset_is_the_guide_example():
    cfg = composed("+experiment=mnist")
    assert cfg.data.name == "mnist" and cfg.data.validation_size is None
    assert cfg.model.name == "mlp" and list(cfg.model.hidden_units) == [64, 64]
    assert cfg.model.input_name == "digits" and cfg.model.output_name == "predictions"
    assert cfg.optimizer.name == "rmsprop" and cfg.optimizer.learning_rate == 0.001
    assert cfg.loss.name == "sparse_categorical_crossentropy"
    assert [m.name for m in cfg.metrics.values()] == ["sparse_categorical_accuracy"]
    assert cfg.trainer.batch_size == 64 and cfg.trainer.epochs == 2
    assert [s.kind for s in cfg.stages.values()] == ["fit", "evaluate", "predict"]
    assert cfg.stages.test.batch_size == 128 and cfg.stages.predict.samples == 3
    validate(cfg, registries())


def test_every_experiment_preset_validates():
    presets = sorted(p.stem for p in Path(CONF, "experiment").glob("*.yaml"))
    assert presets
    for preset in presets:
        validate(composed(f"+experiment={preset}"), registries())


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.name=mnsit", "data.name"),
        ("+data.vaildation_size=3", "data.vaildation_size"),
        ("model.name=cnn", "model.name"),
        ("optimizer.name=adamm", "optimizer.name"),
        ("loss.name=msee", "loss.name"),
        ("+metrics.acc={name:acuracy}", "metrics.acc.name"),
        ("stages.fit.kind=train", "stages.fit.kind"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.epochs=-1", "trainer.epochs"),
        ("+stages.fit.validation_split=1.5", "stages.fit.validation_split"),
        ("+stages.fit.epochs=-2", "stages.fit.epochs"),
        ("stages.test.batch_size=0", "stages.test.batch_size"),
        ("objective.direction=up", "objective.direction"),
        ("deterministic=true", "seed"),
    ],
)
def test_a_bad_value_is_reported_at_its_key(override, key):
    with pytest.raises(UserError) as caught:
        validate(composed("+experiment=mnist", override), registries())
    assert caught.value.key == key


def test_no_enabled_stage_is_an_error():
    cfg = composed("+experiment=mnist", "stages.fit=null", "stages.test=null", "stages.predict=null")
    with pytest.raises(UserError) as caught:
        validate(cfg, registries())
    assert caught.value.key == "stages"


def test_a_typo_in_a_top_level_key_fails_at_composition():
    with pytest.raises(Exception, match="sed"):
        composed("sed=1")


def test_a_wrong_type_fails_at_composition():
    with pytest.raises(Exception, match="seed"):
        composed("seed=abc")


def test_flatten_gives_dotted_keys():
    cfg = OmegaConf.create({"a": {"b": 1, "c": [2, 3]}, "d": None, "e": {}})
    assert flatten(cfg) == {"a.b": 1, "a.c.0": 2, "a.c.1": 3, "d": None, "e": {}}
