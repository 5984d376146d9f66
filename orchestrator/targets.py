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


def instantiate_target(args: Mapping[str, Any], key: str, allowed: Sequence[str]) -> Any:
    """``hydra.utils.instantiate`` of an allowed ``{_target_: ..., arguments...}``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    check_targets(args, key, allowed)
    try:
        return instantiate(dict(args), _convert_="all")
    except InstantiationException as error:
        raise UserError(key, f"{args[TARGET]} could not be made: {str(error).splitlines()[0]}") from error
