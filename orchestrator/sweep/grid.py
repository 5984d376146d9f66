"""The jobs of a sweep, checked before the sweep starts.

Hydra's basic sweeper expands the swept overrides (``trainer.epochs=1,-1``) only
when it launches a batch, so a wrong value in one job would be found after the
earlier jobs had trained and the sweep's parent run existed. :func:`grid_jobs`
expands them the way the basic sweeper does (``hydra.sweeper.params`` and the
command line, the cartesian product in the same order); :func:`check_jobs`
composes each job's config with Hydra's own config loader and checks it like a
single run's. A sweeper that chooses values while it runs (Optuna) hands over
the jobs worth checking through :meth:`orchestrator.sweep.state.Sweep.check_jobs`.

Example::

    check_jobs(config, grid_jobs(config) or [])
    # UserError: "trainer.epochs: must be 0 or more, got -1. (job 1: trainer.epochs=-1)"
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from orchestrator.errors import UserError
from orchestrator.hydra_errors import explain
from orchestrator.overrides import check_group_choices

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def grid_jobs(config: DictConfig) -> list[list[str]] | None:
    """The override list of each job of a basic-sweeper sweep, in launch order (``None``: another sweeper)."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [list(job) for batch in batches for job in batch]


def check_job(config: DictConfig) -> None:
    """The checks of one run's composed config: the group choices took effect, the config is valid."""
    from orchestrator.plugins import get_plugin_manager
    from orchestrator.spec import validate

    check_group_choices(config, config.hydra)
    job_config = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    validate(job_config, get_plugin_manager().registries)


def check_jobs(config: DictConfig, jobs: list[list[str]], numbered: bool = True) -> list[DictConfig]:
    """Compose the config of each job (its override list) and :func:`check_job` it; return the
    composed configs. A mistake names the job's number (``numbered=False``: values a sweeper may
    choose, "a trial with") and its own overrides."""
    if len(jobs) < 2:
        return []
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    shared = set.intersection(*(set(job) for job in jobs))
    composed = []
    for number, overrides in enumerate(jobs):
        try:
            composed.append(compose_job(loader, config, overrides))
            check_job(composed[-1])
        except UserError as error:
            swept = " ".join(o for o in overrides if o not in shared)
            which = f"job {number}: {swept}" if numbered else f"a trial with {swept}"
            raise UserError(error.key, f"{error.problem} ({which})") from error
    return composed


def compose_job(loader: Any, config: DictConfig, overrides: list[str]) -> DictConfig:
    """The job's config as Hydra's launcher composes it; Hydra's composition errors as a UserError."""
    try:
        return loader.load_sweep_config(config, overrides)
    except Exception as error:
        explained = explain(error)
        if explained is None:
            raise
        raise explained from error
