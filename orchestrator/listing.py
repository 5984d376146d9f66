"""``python -m orchestrator plugins``: every registered name, by kind, with its origin.

Example output::

    loss
      sparse_categorical_crossentropy  plugin 'keras_builtins' (keras-orchestrator)
"""

from __future__ import annotations


def print_plugins(manager) -> None:
    """Print the registries of ``manager`` (a :class:`~orchestrator.plugins.PluginManager`)."""
    print(
        "Plugins: "
        + ", ".join(
            f"{name} ({manager.distributions.get(name) or 'registered directly'})"
            for name in manager.plugin_names()
        )
    )
    for kind, registry in manager.registries.items():
        print(f"\n{kind} ({len(registry)})")
        width = max((len(name) for name in registry.names()), default=0)
        for entry in registry.entries():
            print(f"  {entry.name.ljust(width)}  {entry.origin}")
