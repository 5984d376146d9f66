"""The registry: names to factories, duplicate and unknown names, argument checks."""

import subprocess
import sys

import pytest

from orchestrator.errors import UserError
from orchestrator.factories import lazy
from orchestrator.registry import DuplicatePluginError, Registry, UnknownPluginError


def scaled(scale: float = 1.0, offset: float = 0.0):
    return ("scaled", scale, offset)


def needs_context(context, size: int = 3):
    return (context, size)


def make_registry() -> Registry:
    registry = Registry("loss")
    with registry.registering("first_plugin", "first-dist"):
        registry.add("scaled", scaled)
        registry.add("with_context", needs_context)
    return registry


def test_create_calls_the_factory_with_the_config_arguments():
    assert make_registry().create("scaled", {"scale": 2.0}, key="loss") == ("scaled", 2.0, 0.0)


def test_a_duplicate_name_names_both_plugins():
    registry = make_registry()
    with registry.registering("second_plugin", "second-dist"):
        with pytest.raises(DuplicatePluginError) as caught:
            registry.add("scaled", scaled)
    message = str(caught.value)
    assert "first_plugin" in message and "second_plugin" in message
    assert "first-dist" in message and "second-dist" in message


def test_an_unknown_name_lists_the_registered_ones_and_suggests_the_closest():
    with pytest.raises(UnknownPluginError) as caught:
        make_registry().get("scaeld", key="loss")
    assert caught.value.key == "loss.name"
    assert "Did you mean 'scaled'?" in str(caught.value)
    assert "scaled, with_context" in str(caught.value)


def test_a_misspelt_argument_is_caught_before_the_factory_runs():
    with pytest.raises(UserError) as caught:
        make_registry().check("scaled", {"scael": 2.0}, key="loss")
    assert caught.value.key == "loss.scael"
    assert "Did you mean 'scale'?" in str(caught.value)
    assert "Accepted: offset, scale" in str(caught.value)


def test_context_is_passed_only_to_factories_that_declare_it():
    registry = make_registry()
    assert registry.create("with_context", {"size": 5}, key="loss", context="ctx") == ("ctx", 5)
    assert registry.create("scaled", {}, key="loss", context="ctx") == ("scaled", 1.0, 0.0)


def test_context_is_not_an_argument_the_config_may_set():
    with pytest.raises(UserError):
        make_registry().check("with_context", {"context": 1}, key="loss")


def test_a_factory_error_names_the_key_and_the_plugin():
    def broken():
        raise RuntimeError("boom")

    registry = Registry("metric")
    with registry.registering("bad_plugin"):
        registry.add("broken", broken)
    with pytest.raises(UserError) as caught:
        registry.create("broken", {}, key="metrics.broken")
    assert caught.value.key == "metrics.broken"
    assert "bad_plugin" in str(caught.value) and "RuntimeError: boom" in str(caught.value)


def test_a_non_callable_factory_is_refused():
    with pytest.raises(UserError):
        Registry("loss").add("oops", 42)


def test_lazy_factories_import_their_target_only_when_called():
    registry = Registry("metric")
    registry.add("mean", lazy("statistics.mean"))
    registry.check("mean", {"data": [1]}, key="metrics.mean")
    assert registry.create("mean", {"data": [1, 2, 3]}, key="metrics.mean") == 2


def test_lazy_factories_check_argument_names_from_the_source_without_importing_it():
    code = (
        "import sys\n"
        "from orchestrator.registry import Registry\n"
        "from orchestrator.factories import lazy\n"
        "from orchestrator.errors import UserError\n"
        "registry = Registry('optimizer')\n"
        "registry.add('rmsprop', lazy('keras.optimizers.RMSprop'))\n"
        "registry.check('rmsprop', {'learning_rate': 0.1, 'clipnorm': 1.0}, key='optimizer')\n"
        "try:\n"
        "    registry.check('rmsprop', {'learning_rat': 0.1}, key='optimizer')\n"
        "except UserError as error:\n"
        "    print(error)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = result.stdout.splitlines()
    assert first.startswith("optimizer.learning_rat: optimizer 'rmsprop' takes no argument 'learning_rat'.")
    assert "Did you mean 'learning_rate'?" in first
    assert second == "[]"


def test_source_signatures_of_every_lazy_keras_factory_equal_the_imported_classes():
    """The names read from the source, for every Keras class the built-ins register lazily,
    against the names the imported class itself declares (its MRO's ``__init__`` parameters)."""
    import importlib

    from orchestrator.factories import LazyFactory
    from orchestrator.plugins import get_plugin_manager
    from orchestrator.registry import _class_parameters

    targets = sorted(
        {
            entry.factory.target
            for registry in get_plugin_manager().registries.values()
            for entry in registry.entries()
            if isinstance(entry.factory, LazyFactory) and entry.factory.target.startswith("keras.")
        }
    )
    assert len(targets) > 50
    for target in targets:
        module, _, name = target.rpartition(".")
        imported = getattr(importlib.import_module(module), name)
        assert set(LazyFactory(target).parameter_names() or []) == set(_class_parameters(imported)), target


def test_lazy_factories_check_arguments_once_imported():
    registry = Registry("metric")
    registry.add("fraction", lazy("fractions.Fraction"))
    with pytest.raises(UserError) as caught:
        registry.create("fraction", {"numeratr": 1}, key="metrics.f")
    assert "Did you mean 'numerator'?" in str(caught.value)


def named(name: str = "default", size: int = 1):
    return (name, size)


def test_a_factory_parameter_called_name_is_set_with_underscored_name():
    registry = Registry("metric")
    registry.add("named", named)
    registry.check("named", {"_name_": "mine"}, key="metrics.m")
    assert registry.create("named", {"_name_": "mine", "size": 2}, key="metrics.m") == ("mine", 2)
    with pytest.raises(UserError) as caught:
        registry.check("named", {"nmae": "x"}, key="metrics.m")
    assert caught.value.key == "metrics.m.nmae" and "Did you mean '_name_'?" in str(caught.value)


def test_a_keras_objects_own_name_is_set_with_underscored_name_before_and_after_import():
    registry = Registry("metric")
    registry.add("top_k", lazy("keras.metrics.SparseTopKCategoricalAccuracy"))
    args = {"k": 3, "_name_": "top3"}
    registry.check("top_k", args, key="metrics.top3")  # read from the source, nothing imported
    metric = registry.create("top_k", args, key="metrics.top3")
    assert (metric.name, metric.get_config()["k"]) == ("top3", 3)


def test_every_key_of_a_target_node_is_an_argument_name_included():
    from orchestrator.config import split_spec

    node = {"_target_": "keras.metrics.AUC", "name": "auc_pr", "curve": "PR"}
    assert split_spec(node, "metrics.pr") == ("_target_", node)
    assert split_spec({"name": "auc", "_name_": "auc_pr"}, "metrics.pr") == ("auc", {"_name_": "auc_pr"})


def test_a_target_must_be_defined_in_an_allowed_module_not_only_reached_through_one():
    """``orchestrator.errors.os.getcwd`` starts with an allowed prefix, but is ``os.getcwd``: refused, also
    nested; what an allowed module defines is made."""
    registry = make_registry()
    reached = {"_target_": "orchestrator.errors.os.getcwd"}
    nested = {"_target_": "orchestrator.errors.UserError", "key": "k", "problem": reached}
    for args, where in ((reached, "callbacks.x._target_"), (nested, "callbacks.x.problem._target_")):
        with pytest.raises(UserError, match=r"is \w+\.getcwd, which is defined outside security") as refused:
            registry.create("_target_", args, key="callbacks.x")
        assert refused.value.key == where
    made = registry.create(
        "_target_", {"_target_": "orchestrator.errors.UserError", "key": "k", "problem": "p"}, "x"
    )
    assert str(made) == "k: p"
