"""A sweep's config as it started, and what changed since: the check of a resumed sweep.

When a sweep starts, its index entry (``.orchestrator/sweeps/``) records the
jobs' config and ``hydra.sweeper`` (the search), flattened, secrets masked. An
interrupted sweep started again with another config (an edited preset, another
search space) is refused, naming what changed.

Example::

    what_changed(previous["config"], sweep_fingerprint(config))
    # "hydra.sweeper.params.optimizer.learning_rate (was interval(1e-4, 1e-1), now interval(1e-3, 1e-1))"
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from orchestrator.config import flatten
from orchestrator.secrets import Secrets

#: Keys that may differ between two starts of the same sweep (``resume=true`` is what resumes it).
VOLATILE = ("resume",)


def sweep_fingerprint(config: DictConfig) -> dict[str, str]:
    """The sweep's config as ``{dotted key: value}``: the jobs' config and ``hydra.sweeper`` (the search)."""
    job = OmegaConf.to_container(
        OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]), resolve=True
    )
    sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    shown = Secrets.of(config).node({**job, "hydra": {"sweeper": sweeper}})
    flat = flatten(shown)
    return {
        key: str(value)
        for key, value in flat.items()
        if not any(key == v or key.startswith(f"{v}.") for v in VOLATILE)
    }


def what_changed(before: dict[str, str], now: dict[str, str]) -> str:
    """``"trainer.epochs (was 2, now 3), seed (new: 1)"``: the keys that differ, the first five."""
    keys = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    shown = []
    for key in keys[:5]:
        if key not in before:
            shown.append(f"{key} (new: {now[key]})")
        elif key not in now:
            shown.append(f"{key} (was {before[key]}, now unset)")
        else:
            shown.append(f"{key} (was {before[key]}, now {now[key]})")
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return ", ".join(shown) + more
