"""The plugin manager: finds plugins through entry points and the project, and fills the registries.

Built-in and third-party plugins load the same way: every module named in the
``orchestrator`` entry-point group is registered under its entry-point name.
Then the plugin modules of the project the command runs in (``[tool.orchestrator]
plugins`` of its ``pyproject.toml``, see :mod:`orchestrator.project`) are
registered under their module names.

Environment:

* ``ORCHESTRATOR_DISABLE_PLUGINS=mlflow,mnist`` blocks the named plugins.
* ``ORCHESTRATOR_TRACE_HOOKS=1`` prints every hook call and its result to stderr.

Example::

    from orchestrator.plugins import get_plugin_manager
    manager = get_plugin_manager()
    manager.registries["loss"].names()
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import pluggy

from orchestrator import PROJECT_NAME, hookspecs
from orchestrator.errors import UserError, choices_text, closest
from orchestrator.project import Project, find_project, import_plugin, plugin_file, put_on_path
from orchestrator.registry import KINDS, Registry

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_ENV = "ORCHESTRATOR_DISABLE_PLUGINS"
TRACE_ENV = "ORCHESTRATOR_TRACE_HOOKS"


class PluginManager:
    """pluggy's manager behind a few typed methods, plus one registry per kind."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        distributions: dict[str, str | None],
        blocked: tuple[str, ...] = (),
        project: Project | None = None,
        files: dict[str, str] | None = None,
    ):
        self.pm = pm
        self.hook = pm.hook
        self.distributions = distributions
        #: The project the command runs in, and the files of its plugins that were loaded, by name.
        self.project = project
        self.files = dict(files or {})
        self.registries: dict[str, Registry] = {
            kind: Registry(kind, name_field="kind" if kind == "stage" else "name", blocked=blocked)
            for kind in KINDS
        }
        for kind, hook_name in KINDS.items():
            self._collect(self.registries[kind], hook_name)
        #: ``group/option`` -> (content, plugin): the options plugins answer without a YAML file.
        self.config_options: dict[str, tuple[Mapping[str, Any], str]] = self._collect_options()

    def _collect(self, registry: Registry, hook_name: str) -> None:
        caller = getattr(self.hook, hook_name)
        # Call each plugin's implementation on its own so the registry knows who added what.
        for impl in reversed(caller.get_hookimpls()):
            with registry.registering(impl.plugin_name, self.distributions.get(impl.plugin_name)):
                if _tracing():
                    print(f"[hook] {hook_name} <- {impl.plugin_name}", file=sys.stderr)
                impl.function(registry=registry)

    def _collect_options(self) -> dict[str, tuple[Mapping[str, Any], str]]:
        options: dict[str, tuple[Mapping[str, Any], str]] = {}
        for impl in reversed(self.hook.orchestrator_config_options.get_hookimpls()):
            if _tracing():
                print(f"[hook] orchestrator_config_options <- {impl.plugin_name}", file=sys.stderr)
            for path, content in (impl.function() or {}).items():
                if not (isinstance(path, str) and "/" in path.strip("/") and isinstance(content, Mapping)):
                    raise UserError(
                        f"plugin '{impl.plugin_name}'",
                        f"returned {path!r}: {content!r} from orchestrator_config_options; give each "
                        "option as 'group/option': {...the content of its YAML file...}.",
                    )
                if path in options:
                    raise UserError(
                        f"plugin '{impl.plugin_name}'",
                        f"answers the config option {path}, which plugin '{options[path][1]}' answers "
                        f"too. Leave it to one, or block one with {DISABLE_ENV}=<plugin>.",
                    )
                options[path] = (content, impl.plugin_name)
        return options

    def group_options(self, group: str) -> dict[str, str]:
        """The options plugins answer in ``group`` (``"optimizer"``), each with its plugin's name."""
        prefix = f"{group}/"
        return {
            path.removeprefix(prefix): plugin
            for path, (_, plugin) in self.config_options.items()
            if path.startswith(prefix) and "/" not in path.removeprefix(prefix)
        }

    def plugin_names(self) -> list[str]:
        return sorted(name for name, _ in self.pm.list_name_plugin())

    def trusted_targets(self) -> tuple[str, ...]:
        """``_target_`` prefixes the project trusts: the top-level packages of its loaded plugins."""
        if self.project is None:
            return ()
        packages = [plugin.package for plugin in self.project.plugins if plugin.module in self.files]
        return tuple(f"{package}." for package in dict.fromkeys(packages))

    def config_searchpath(self) -> list[str]:
        """Hydra search-path entries contributed by plugins, in load order."""
        paths: list[str] = []
        for result in reversed(self.hook.orchestrator_config_searchpath()):
            paths.extend([result] if isinstance(result, str) else result)
        return paths


def _tracing() -> bool:
    return os.environ.get(TRACE_ENV, "").lower() not in ("", "0", "false", "no")


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


@functools.cache
def get_plugin_manager() -> PluginManager:
    """Load every plugin of the ``orchestrator`` entry-point group, then the project's (once per process)."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = disabled_plugins()
    project = find_project()
    distributions: dict[str, str | None] = {}
    entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    own = [plugin.module for plugin in project.plugins] if project is not None else []
    unknown = sorted(blocked - {ep.name for ep in entry_points} - set(own))
    if unknown:
        names = [ep.name for ep in entry_points] + own
        raise UserError(
            DISABLE_ENV,
            f"names no installed plugin: {', '.join(unknown)}.{closest(unknown[0], names)} "
            f"Installed: {choices_text(names)}.",
        )
    for ep in entry_points:
        if ep.name in blocked:
            continue
        if pm.get_plugin(ep.name) is not None:
            if distributions.get(ep.name) == _dist_name(ep):
                continue  # the same distribution found twice on sys.path
            raise UserError(
                f"plugin '{ep.name}'",
                f"is the entry-point name of two distributions: {distributions.get(ep.name)} and "
                f"{_dist_name(ep)}. Rename one, or block both with {DISABLE_ENV}={ep.name}.",
            )
        try:
            plugin = ep.load()
        except Exception as error:
            raise UserError(
                f"plugin '{ep.name}'",
                f"could not be imported from '{ep.value}' ({_dist_name(ep)}): "
                f"{type(error).__name__}: {error}. Fix or uninstall it, or block it with "
                f"{DISABLE_ENV}={ep.name}.",
            ) from error
        if isinstance(plugin, type):
            plugin = plugin()  # a plugin class: one instance per manager keeps its state
        _register(pm, plugin, ep.name, _dist_name(ep))
        distributions[ep.name] = _dist_name(ep)
    files = _register_project(pm, project, blocked, distributions) if project is not None else {}
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        name = pm.get_name(error.plugin) or repr(error.plugin)
        raise UserError(f"plugin '{name}'", _unknown_hook_message(pm, distributions.get(name))) from error
    if _tracing():
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return PluginManager(pm, distributions, blocked=tuple(sorted(blocked)), project=project, files=files)


def _register_project(
    pm: pluggy.PluginManager, project: Project, blocked: set[str], distributions: dict[str, str | None]
) -> dict[str, str]:
    """Register the project's plugin modules under their module names; return their files by name."""
    put_on_path(project)
    origin = f"project {project.name}"
    files: dict[str, str] = {}
    for plugin in project.plugins:
        name = plugin.module
        if name in blocked:
            continue
        if name in distributions:
            raise UserError(
                project.key("plugins"),
                f"'{plugin.entry}' has the name of the installed plugin '{name}' ({distributions[name]}): "
                "a project's plugin is named after its module. Rename the module.",
            )
        module = import_plugin(project, plugin)
        if pm.is_registered(module):
            raise UserError(
                project.key("plugins"),
                f"'{plugin.entry}' is already loaded as the installed plugin '{pm.get_name(module)}'. "
                "List it in one place only.",
            )
        _register(pm, module, name, origin)
        distributions[name] = origin
        files[name] = plugin_file(module)
    return files


def _unknown_hook_message(pm: pluggy.PluginManager, dist: str | None) -> str:
    """Name the hooks no specification knows, each with the closest real hook name."""
    known = [name for name in dir(hookspecs) if name.startswith("orchestrator_")]
    unknown = [name for name in vars(pm.hook) if name.startswith("orchestrator_") and name not in known]
    hints = " ".join(f"'{name}' does not exist.{closest(name, known)}" for name in unknown)
    origin = f"({dist}) " if dist else ""
    return f"{origin}implements an unknown hook: {hints} See orchestrator/hookspecs.py for the hooks."


def _register(pm: pluggy.PluginManager, plugin: object, name: str, dist: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as error:
        raise UserError(
            f"plugin '{name}'",
            f"({dist}) has a hook that does not match its specification: {error}. "
            "See orchestrator/hookspecs.py for the hook names and their arguments.",
        ) from error


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else None
