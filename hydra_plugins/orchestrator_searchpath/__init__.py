"""Hydra search-path plugin: adds the config folders that orchestrator plugins ship.

A plugin implementing ``orchestrator_config_searchpath`` (for example returning
``["pkg://my_package.conf"]``) makes its ``conf/data/mydata.yaml`` selectable as
``data=mydata``. Only the orchestrator's own app is touched: Hydra loads this
module for every Hydra app in the environment.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class OrchestratorSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from pathlib import Path

        import orchestrator

        own = str(Path(orchestrator.__file__).resolve().parent.parent / "conf")
        if not any(element.path == own for element in search_path.get_path()):
            return
        from orchestrator.plugins import get_plugin_manager

        for path in get_plugin_manager().config_searchpath():
            search_path.append(provider="orchestrator-plugin", path=path)
