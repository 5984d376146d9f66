"""The built-in plugins, installed as the package ``orchestrator_plugins``.

Each module is registered through the ``orchestrator`` entry-point group in
pyproject.toml, exactly as a third-party plugin package registers its own.
"""
