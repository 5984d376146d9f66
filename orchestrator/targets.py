"""``_target_`` entries: a class or function named by its import path, from allowed modules only.

Any plugin selection may name an importable class or function instead of a
registered name, as Hydra's ``instantiate`` does; the other keys are its arguments::

    callbacks:
      nan: {_target_: keras.callbacks.TerminateOnNaN}
    loss: {_target_: keras.losses.Huber, delta: 2.0}

A config file must not be able to run arbitrary code (``_target_: os.system``),
so every ``_target_``, nested ones included, must start with one of the module
prefixes in ``security.allowed_targets`` (default: ``keras.``,
``orchestrator.``, ``orchestrator_plugins.``). Add your own package to allow it::

    python -m orchestrator ... 'security.allowed_targets=[keras.,orchestrator.,orchestrator_plugins.,my_lab.]'

The check runs with the rest of the config's, before anything is imported.
When the entry is made, each target must also be *defined* in an allowed
module: a prefix allows what its modules define, not what they import
(``orchestrator.errors.os.system`` starts with ``orchestrator.`` but is ``os.system``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import UserError

TARGET = "_target_"
DEFAULT_ALLOWED = ("keras.", "orchestrator.", "orchestrator_plugins.")


def check_targets(node: Any, key: str, allowed: Sequence[str]) -> None:
    """Raise :class:`UserError` for any ``_target_`` in ``node`` outside the allowed prefixes."""
    if isinstance(node, Mapping):
        target = node.get(TARGET)
        if target is not None and not (isinstance(target, str) and target.startswith(tuple(allowed))):
            module = str(target).rsplit(".", 1)[0] + "."
            raise UserError(
                f"{key}.{TARGET}",
                f"'{target}' is not allowed: a config may only instantiate from the modules in "
                f"security.allowed_targets ({', '.join(allowed)}). If you trust it, add its module: "
                f"security.allowed_targets=[{','.join([*allowed, module])}]",
            )
        for name, value in node.items():
            if name != TARGET:
                check_targets(value, f"{key}.{name}", allowed)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_targets(value, f"{key}[{index}]", allowed)


def check_defined_in_allowed(node: Any, key: str, allowed: Sequence[str]) -> None:
    """Raise :class:`UserError` for a ``_target_`` in ``node`` whose object an allowed module only imports.

    Imports each target's module; a target that cannot be found is left for ``instantiate`` to report.
    """
    from hydra.utils import get_object

    for where, target in _targets(node, key):
        try:
            found = get_object(target)
        except Exception:
            continue
        module = getattr(found, "__module__", None)
        if not isinstance(module, str) or not f"{module}.".startswith(tuple(allowed)):
            name = getattr(found, "__qualname__", type(found).__name__)
            raise UserError(
                f"{where}.{TARGET}",
                f"'{target}' is {module}.{name}, which is defined outside security.allowed_targets "
                f"({', '.join(allowed)}): a prefix allows what its modules define, not what they import. "
                "Name it where it is defined.",
            )


def _targets(node: Any, key: str):
    """``(config key, target)`` of every ``_target_`` in ``node``, nested ones included."""
    if isinstance(node, Mapping):
        if isinstance(node.get(TARGET), str):
            yield key, node[TARGET]
        for name, value in node.items():
            if name != TARGET:
                yield from _targets(value, f"{key}.{name}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _targets(value, f"{key}[{index}]")


def instantiate_target(args: Mapping[str, Any], key: str, allowed: Sequence[str]) -> Any:
    """``hydra.utils.instantiate`` of an allowed ``{_target_: ..., arguments...}``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    check_targets(args, key, allowed)
    check_defined_in_allowed(args, key, allowed)
    try:
        return instantiate(dict(args), _convert_="all")
    except InstantiationException as error:
        raise UserError(key, f"{args[TARGET]} could not be made: {str(error).splitlines()[0]}") from error
