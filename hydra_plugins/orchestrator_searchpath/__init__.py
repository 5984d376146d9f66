"""Hydra search-path plugin: the project's config folder in front, the plugins' config folders behind.

The search path of the orchestrator's app becomes, first match winning::

    pkg://hydra.conf                   Hydra's own
    file://<project>/conf              [tool.orchestrator] config_dir of the project (orchestrator/project.py)
    <orchestrator>/conf                the built-in tree
    pkg://my_package.conf, ...         what plugins return from orchestrator_config_searchpath
    string-ids://                      options without a file (hydra_plugins/orchestrator_string_ids)
    --config-dir, hydra.searchpath     Hydra adds them after these

so a project's ``conf/experiment/mine.yaml`` is ``+experiment=mine`` and its
``conf/data/mnist.yaml`` replaces the built-in ``data=mnist``. Only the
orchestrator's own app is touched: Hydra loads this module for every Hydra app
in the environment.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: The provider name the project's config folder has in Hydra's search path.
PROJECT_PROVIDER = "orchestrator-project"


class OrchestratorSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from pathlib import Path

        import orchestrator

        own = str(Path(orchestrator.__file__).resolve().parent.parent / "conf")
        if not any(element.path == own for element in search_path.get_path()):
            return
        from orchestrator.plugins import get_plugin_manager

        manager = get_plugin_manager()
        project = manager.project
        if project is not None and project.config_dir is not None:
            search_path.prepend(provider=PROJECT_PROVIDER, path=f"file://{project.config_dir}", anchor="main")
        for path in manager.config_searchpath():
            search_path.append(provider="orchestrator-plugin", path=path)
