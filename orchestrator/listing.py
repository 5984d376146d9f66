"""``python -m orchestrator plugins``: every registered name, by kind, with its origin.

A project's plugins are listed with their files, and the project with its config folder.

Example output::

    Plugins: keras_builtins (keras-orchestrator), mine_plugin (project mine: /home/me/mine/mine_plugin.py)
    Project: /home/me/mine (pyproject.toml); configs: /home/me/mine/conf

    loss
      sparse_categorical_crossentropy  plugin 'keras_builtins' (keras-orchestrator)

    group options without a YAML file (a file conf/<group>/<option>.yaml wins)
      loss=  22 of the loss names above, and bce, kld, mae, mape, mse, msle  plugin 'keras_builtins'
"""

from __future__ import annotations

#: Config groups whose options name one plugin kind's entries.
GROUP_KINDS = {"optimizer": "optimizer", "loss": "loss", "metrics": "metric", "callbacks": "callback"}


def print_plugins(manager) -> None:
    """Print the registries of ``manager`` (a :class:`~orchestrator.plugins.PluginManager`)."""
    print("Plugins: " + ", ".join(_describe(manager, name) for name in manager.plugin_names()))
    project = manager.project
    if project is not None:
        configs = project.config_dir or "none (no config_dir)"
        print(f"Project: {project.root} ({project.pyproject.name}); configs: {configs}")
    for kind, registry in manager.registries.items():
        print(f"\n{kind} ({len(registry)})")
        width = max((len(name) for name in registry.names()), default=0)
        for entry in registry.entries():
            print(f"  {entry.name.ljust(width)}  {entry.origin}")
    _print_options(manager)


def _print_options(manager) -> None:
    """The options plugins answer without a file, one line per group and plugin, names counted."""
    by_group: dict[tuple[str, str], list[str]] = {}
    for path, (_, plugin) in manager.config_options.items():
        group, _, option = path.rpartition("/")
        by_group.setdefault((group, plugin), []).append(option)
    if not by_group:
        return
    print("\ngroup options without a YAML file (a file conf/<group>/<option>.yaml wins)")
    width = max(len(group) for group, _ in by_group) + 1
    for (group, plugin), options in sorted(by_group.items()):
        kind = GROUP_KINDS.get(group)
        registered = set(manager.registries[kind].names()) if kind else set()
        named = [option for option in options if option in registered]
        others = sorted(option for option in options if option not in registered)
        parts = [f"{len(named)} of the {kind} names above"] if named else []
        parts += [", ".join(others)] if others else []
        print(f"  {(group + '=').ljust(width)}  {', and '.join(parts)}  plugin '{plugin}'")


def _describe(manager, name: str) -> str:
    origin = manager.distributions.get(name) or "registered directly"
    where = manager.files.get(name)
    return f"{name} ({origin}: {where})" if where else f"{name} ({origin})"
