"""The argument names of a class or function read from its source, without importing it.

Checking ``optimizer: {name: rmsprop, learning_rat: 0.01}`` against Keras's own
``RMSprop.__init__`` would import Keras, and with it TensorFlow (10-30 s), only
to say "no argument learning_rat". Python's ``ast`` reads the same signature
from the installed source in milliseconds: this module follows the package's
re-exports (``keras.optimizers`` -> ``keras.src.optimizers.rmsprop``) and, where
``__init__`` passes ``**kwargs`` on, the base classes it can find. It answers
``None`` whenever the source does not settle the question (a C extension, a
base class from elsewhere); the check then waits for the import, as before.

The same reading answers which names a module exports (``source_names``:
the layers of ``keras.layers``, the models of ``keras.applications``) and
where a class or function is defined (``source_definition``), so a plugin can
check a name, or read a constant its code passes on, before the import.

Example::

    source_parameters("keras.optimizers.RMSprop")
    # ['learning_rate', 'rho', 'momentum', 'epsilon', 'centered', 'weight_decay', ...]
    source_names("keras.applications")
    # ['ConvNeXtBase', ..., 'ResNet50', ..., 'convnext', 'densenet', ...]
    source_definition("keras.applications.ResNet50")
    # ('keras.src.applications.resnet', <ast.FunctionDef ResNet50>)
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

#: How many re-exports and base classes one look-up follows before it gives up.
MAX_DEPTH = 12


def source_parameters(target: str) -> list[str] | None:
    """The named parameters of the class or function at the dotted path ``target``; ``None``: unknown."""
    module, _, name = target.rpartition(".")
    found = _find(module, name, MAX_DEPTH)
    if found is None:
        return None
    return _parameters(*found, depth=MAX_DEPTH)


def source_names(module: str) -> list[str] | None:
    """The names ``module`` binds at its top level (definitions and imports), sorted; ``None``: unknown.

    Example: ``"Dense" in source_names("keras.layers")``.
    """
    tree = _parse(module)
    if tree is None:
        return None
    names: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    names.discard("*")
    return sorted(names)


def source_definition(target: str) -> tuple[str, ast.ClassDef | ast.FunctionDef] | None:
    """``(module, syntax tree)`` of the class or function at the dotted path ``target``, found
    through the package's re-exports without importing it; ``None``: not found.

    Example: ``source_definition("keras.applications.ResNet50")[0] == "keras.src.applications.resnet"``.
    """
    module, _, name = target.rpartition(".")
    found = _find(module, name, MAX_DEPTH)
    if found is None or not isinstance(found[1], (ast.ClassDef, ast.FunctionDef)):
        return None
    return found[0], found[1]


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found without importing it or its parents."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    if not spec.submodule_search_locations:
        return None
    base = Path(list(spec.submodule_search_locations)[0]).joinpath(*rest)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _parse(module: str) -> ast.Module | None:
    path = _module_file(module)
    if path is None:
        return None
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The module an ``from ... import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """The module's statements, those inside top-level ``if``/``try`` blocks included (first wins)."""
    statements: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.If):
            statements += [node, *node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            statements += [node, *node.body, *[s for h in node.handlers for s in h.body], *node.orelse]
        else:
            statements.append(node)
    return statements


def _find(module: str, name: str, depth: int) -> tuple[str, ast.AST] | None:
    """``(module, definition)`` of ``name`` as seen from ``module``, following ``from x import name``."""
    if depth <= 0:
        return None
    tree = _parse(module)
    if tree is None:
        return None
    path = _module_file(module)
    is_package = path is not None and path.name == "__init__.py"
    statements = _top_level(tree)
    for node in statements:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return module, node
    for node in statements:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(module, node, is_package)
                    return _find(source, alias.name, depth - 1) or _find(f"{source}.{alias.name}", "", 0)
    return None


def _imported_module(module: str, alias_name: str) -> str | None:
    """The module bound to ``alias_name`` in ``module`` (``from keras.src.optimizers import optimizer``)."""
    tree = _parse(module)
    if tree is None:
        return None
    path = _module_file(module)
    is_package = path is not None and path.name == "__init__.py"
    for node in _top_level(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == alias_name:
                    return f"{_absolute(module, node, is_package)}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.asname or alias.name) == alias_name:
                    return alias.name
    return None


def _base(module: str, base: ast.expr, depth: int) -> tuple[str, ast.AST] | None:
    """The definition of a base class written ``Name`` or ``module_alias.Name``."""
    if isinstance(base, ast.Name):
        return _find(module, base.id, depth)
    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
        source = _imported_module(module, base.value.id)
        return _find(source, base.attr, depth) if source else None
    return None


def _parameters(module: str, node: ast.AST, depth: int) -> list[str] | None:
    if isinstance(node, ast.FunctionDef):
        names, passes_on = _arguments(node.args)
        return None if passes_on else names
    assert isinstance(node, ast.ClassDef)
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    names: list[str] = []
    if init is not None:
        names, passes_on = _arguments(init.args)
        names = [n for n in names if n != "self"]
        if not passes_on:
            return names
    if depth <= 0:
        return None
    top = module.split(".")[0]
    resolved = 0
    for base in node.bases:
        found = _base(module, base, depth - 1)
        if found is None or found[0].split(".")[0] != top:
            continue  # a mixin from elsewhere (TensorFlow's trackable): it takes no arguments of its own
        inherited = _parameters(*found, depth=depth - 1)
        if inherited is None:
            return None
        resolved += 1
        names += [n for n in inherited if n not in names]
    if init is not None and resolved == 0:
        return None  # **kwargs goes somewhere this module cannot see
    return names


def _arguments(args: ast.arguments) -> tuple[list[str], bool]:
    """The named parameters, and whether ``**kwargs`` passes further ones on."""
    named = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return named, args.kwarg is not None
