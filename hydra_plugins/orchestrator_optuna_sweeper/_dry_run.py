"""The trials an Optuna sweep starts with, for ``dry_run=true`` (:mod:`orchestrator.dry_run`).

The sweeper's sampler, seeded as configured, asks an in-memory study for the
first trials: the enqueued ones, then the random start (``tpe``: the first
``sampler.n_startup_trials``; ``random``: every trial). With ``sampler.seed``
they are the trials the sweep will run; without, a sample like them.

Example::

    first_trials(config)   # [["optimizer.learning_rate=0.0031", "+experiment=mnist"], ...]
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("orchestrator.optuna")


def first_trials(config: DictConfig) -> list[list[str]]:
    """The override list of each of the sweep's first trials; a ``SweeperConfigError`` for a mistake."""
    import optuna
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.orchestrator_optuna_sweeper import _space, _study, requested

    direction, _ = _study.check(config)
    sweeper: Any = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    try:
        overrides = OverridesParser.create().parse_overrides(
            requested(sweeper.get("params") or {}, list(config.hydra.overrides.task))
        )
    except Exception as error:
        raise _study.SweeperConfigError("hydra.sweeper.params", str(error).splitlines()[0]) from None
    space, fixed = _space.search_space(overrides)
    enqueued = _space.enqueued(space, sweeper.get("enqueue_trials") or [])
    sampler_conf = dict(sweeper.get("sampler") or {})
    n_trials = int(sweeper.get("n_trials", 20))
    if sampler_conf.get("name", "tpe") == "tpe":
        count = min(n_trials, max(len(enqueued), int(sampler_conf.get("n_startup_trials", 10))))
    else:
        count = n_trials
    if sampler_conf.get("seed") is None:
        log.warning("hydra.sweeper.sampler.seed is null: the sweep will sample other trials than these.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=_study.make_sampler(sampler_conf), direction=direction)
    for values in enqueued:
        study.enqueue_trial(values, skip_if_exists=True)
    distributions = {key: dim.distribution for key, dim in space.items()}
    jobs = []
    for _ in range(count):
        trial = study.ask(distributions)
        jobs.append([dim.override(trial.params[key]) for key, dim in space.items()] + fixed)
    return jobs
