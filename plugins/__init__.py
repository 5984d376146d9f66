"""The built-in plugins, installed as the package ``orchestrator_plugins``.

One module or package per feature, each registered through the ``orchestrator``
entry-point group in pyproject.toml, exactly as a third-party plugin package
registers its own. A package keeps its Keras part in ``_*.py`` modules beside its
factories, imported only when a run uses it::

    multi_io = "orchestrator_plugins.multi_io"   # multi_io/__init__.py + multi_io/_keras.py
"""
