"""Hydra config source: the group options plugins answer without a YAML file (``optimizer=nadam``).

Plugins return them from ``orchestrator_config_options`` (the built-in
``keras_builtins`` answers every Keras optimizer, loss, metric and callback under
the ids Keras takes: ``optimizer=nadam loss=mse metrics=[accuracy,auc]``). The
search-path plugin appends ``string-ids://`` after every folder of YAML files, so
a real ``conf/optimizer/nadam.yaml`` wins. The options are not listed (Hydra's
``--help`` would show hundreds); ``python -m orchestrator plugins`` counts them.
Only the orchestrator's own app is touched: Hydra loads this module for every
Hydra app in the environment.

Example::

    python -m orchestrator +experiment=mnist optimizer=nadam metrics=[accuracy,auc]
    # optimizer: {name: nadam}   metrics: {accuracy: accuracy, auc: {name: auc}}
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin

SCHEME = "string-ids"


def _options() -> dict:
    """``group/option`` -> (content, plugin), from the process's plugin manager."""
    from orchestrator.plugins import get_plugin_manager

    return get_plugin_manager().config_options


class StringIdsConfigSource(ConfigSource):
    """Answers ``<group>/<option>`` for the options of ``orchestrator_config_options``."""

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return True

    def is_config(self, config_path: str) -> bool:
        return _path(config_path) in _options()

    def is_group(self, config_path: str) -> bool:
        group = config_path.strip("/")
        return bool(group) and any(path.startswith(f"{group}/") for path in _options())

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        return []

    def load_config(self, config_path: str) -> ConfigResult:
        from omegaconf import OmegaConf

        path = _path(config_path)
        if path not in _options():
            raise ConfigLoadError(f"Config not found : {config_path}")
        content, plugin = _options()[path]
        return ConfigResult(
            provider=f"orchestrator plugin '{plugin}'",
            path=f"{SCHEME}://{path}",
            config=OmegaConf.create(dict(content)),
            header={"package": None},
        )


def _path(config_path: str) -> str:
    return config_path.strip("/").removesuffix(".yaml")


class StringIdsSearchPathPlugin(SearchPathPlugin):
    """Appends ``string-ids://`` to the orchestrator's search path, after its folders of YAML files."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from pathlib import Path

        import orchestrator

        own = str(Path(orchestrator.__file__).resolve().parent.parent / "conf")
        elements = [element.path for element in search_path.get_path()]
        if own in elements and f"{SCHEME}://" not in elements:
            search_path.append(provider="orchestrator-string-ids", path=f"{SCHEME}://")
