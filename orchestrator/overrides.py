"""Every config group chosen on the command line is what the run gets, or the command is refused.

Hydra composes the defaults list in order, so a preset that sets a group's keys
itself (``+experiment=guide_compile_strings`` sets ``optimizer: rmsprop``) wins
over the group chosen on the command line (``optimizer=adam``), silently: the
run would train with RMSprop and be named ``optimizer=adam``. After composition,
:func:`check_group_choices` compares each group chosen on the command line with
its option's own file: when what the option selects (its ``name``, ``kind`` or
``_target_``, at its top or in its entries) is not what the composed config
holds, and no ``key=value`` override on the command line changed it, the command
is refused with the key, both values and what would work. The option's other
values (a learning rate, a patience) may be set by later configs, as Hydra's
composition intends (a preset's learning-rate schedule over ``optimizer=sgd``).

Example::

    check_group_choices(cfg, HydraConfig.get())   # in the job, before anything runs
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from orchestrator.config import flatten
from orchestrator.errors import UserError

#: The keys that say which plugin an option selects.
SELECTORS = ("name", "kind", "_target_")
#: A value that is not in the composed config at all.
_ABSENT = object()


def check_group_choices(cfg: DictConfig, hydra_cfg: Any) -> None:
    """Raise :class:`UserError` when a group chosen on the command line does not take effect."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return
    repository = GlobalHydra.instance().config_loader().repository
    task = [str(o) for o in hydra_cfg.overrides.task]
    choices = hydra_cfg.runtime.choices
    changed = [o.lstrip("+~").split("=", 1)[0] for o in task if "." in o.split("=", 1)[0]]
    for override in task:
        group, _, option = override.lstrip("+").partition("=")
        if group.startswith(("~", "hydra/")) or "." in group or choices.get(group) != option:
            continue
        loaded = repository.load_config(f"{group}/{option}")
        if loaded is None:
            continue
        package = loaded.header.get("package") or group.replace("/", ".")
        if package == "_global_":
            continue  # a preset: the command line's own values override it by design
        content = OmegaConf.to_container(loaded.config, resolve=False)
        content = {k: v for k, v in content.items() if k != "defaults"} if isinstance(content, dict) else {}
        for leaf, expected in flatten(content).items():
            key = f"{package}.{leaf}"
            if leaf.rsplit(".", 1)[-1] not in SELECTORS or _interpolated(expected):
                continue
            if any(key == c or key.startswith(f"{c}.") for c in changed):
                continue
            actual = _value(cfg, key)
            if actual != expected:
                raise UserError(group, _refusal(group, option, key, expected, actual, choices))


def _value(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, (DictConfig, dict)) or part not in node:
            if isinstance(node, (ListConfig, list)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            return _ABSENT
        node = node[part]
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def _interpolated(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _refusal(group: str, option: str, key: str, expected: Any, actual: Any, choices: Any) -> str:
    preset = choices.get("experiment")
    by = f"the preset '+experiment={preset}'" if preset else "a config later in the defaults list"
    top = key.split(".")[0]
    held = "nothing" if actual is _ABSENT else repr(actual)
    return (
        f"{group}={option} does not take effect: {by} sets {top} itself, so the run would get "
        f"{key} = {held} instead of the option's {expected!r}. Set the values on the command line "
        f"({key}=...), or choose the group in a preset with 'override /{group}: {option}'."
    )
