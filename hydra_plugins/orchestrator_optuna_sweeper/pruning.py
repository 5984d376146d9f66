"""Pruning of Optuna trials: a Keras callback in every trial of ``hydra/sweeper=orchestrator_optuna``.

When a job is a trial of the orchestrator's Optuna sweeper (its sweep folder
holds ``optuna-sweep.json`` naming the job's trial), the fit stage that logs
the pruning metric (``hydra.sweeper.pruning_metric``, ``<stage>/<Keras name>``)
gets an :class:`~hydra_plugins.orchestrator_optuna_sweeper._keras_pruning.OptunaPruningCallback`:
after every epoch it reports the metric to the trial (step = epoch) and, when
the pruner says so, stops training and marks the run ``PRUNED``. The run then
ends normally: later stages run, MLflow tags it ``orchestrator.outcome=PRUNED``,
the sweep journal records ``PRUNED`` and the sweeper tells Optuna.

Every trial's MLflow run is tagged ``optuna.study`` and ``optuna.trial``.
Before the first job, ``orchestrator_before_sweep`` checks the sweeper's
config (a pruning metric that is not logged every epoch is an error, so is a
search Optuna cannot sample), so that a mistake ends the command before any
run is opened.

Nothing happens outside such a sweep, and Optuna is imported only in one.
"""

from __future__ import annotations

from typing import Any

from orchestrator import Status, UserError, hookimpl

#: Where the run keeps its loaded trial: ``context.stash``.
TRIAL = "optuna.trial"


def trial_info(context) -> dict[str, Any] | None:
    """What the sweeper wrote for this job (study, storage, trial number, ...), or ``None``."""
    sweep = getattr(context, "sweep", None)
    if sweep is None:
        return None
    from hydra_plugins.orchestrator_optuna_sweeper._study import read_trial

    return read_trial(sweep.dir, sweep.number)


@hookimpl(tryfirst=True)
def orchestrator_before_sweep(sweep):
    """Check ``hydra.sweeper`` of an Optuna sweep before tracking opens the parent run."""
    from hydra_plugins.orchestrator_optuna_sweeper import _study

    if sweep.cfg is None or not _study.is_selected(sweep.cfg):
        return
    try:
        direction, metric = _study.check(sweep.cfg)
        _check_search(sweep)
    except UserError as error:
        _study.SweeperConfigError(error.key, error.problem).exit()
    if metric:  # the sweep report shows each trial's best epoch of it (orchestrator.sweep.best)
        sweep.state["orchestrator.epoch_metrics"] = {metric: direction}


@hookimpl(tryfirst=True)
def orchestrator_after_sweep(sweep, jobs, report):
    """The study's importances, parallel coordinates and trials join the sweep's report (before
    tracking logs the report on the parent run)."""
    if sweep.cfg is None:
        return
    from hydra_plugins.orchestrator_optuna_sweeper import _study

    if not _study.is_selected(sweep.cfg):
        return
    from hydra_plugins.orchestrator_optuna_sweeper._review import review_study

    try:
        report.update(review_study(sweep.dir))
    except Exception as error:  # the parent run must still be told the rest and ended
        import logging

        logging.getLogger("orchestrator.optuna").warning(
            "The Optuna study's review is incomplete: %s: %s", type(error).__name__, error
        )


def _check_search(sweep) -> None:
    """Parse the search space now, and check a run's config at the ends of every range and at every
    choice (the values Optuna may draw), before the parent run exists; syntax errors are left for the
    sweeper, which reports them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from hydra_plugins.orchestrator_optuna_sweeper import _space, requested

    sweeper: Any = OmegaConf.to_container(sweep.cfg.hydra.sweeper, resolve=True)
    try:
        overrides = OverridesParser.create().parse_overrides(requested(sweeper["params"], sweep.arguments))
    except Exception:  # the sweeper parses them again and reports the error
        return
    space, fixed = _space.search_space(overrides)
    _space.enqueued(space, sweeper.get("enqueue_trials") or [])
    sweep.check_jobs(_space.corners(space, fixed))


@hookimpl
def orchestrator_fit_callbacks(context, stage):
    info = trial_info(context)
    if info is None:
        return None
    from hydra_plugins.orchestrator_optuna_sweeper._keras_pruning import OptunaPruningCallback

    if "optuna.trial" not in context.tags:
        context.set_tags(**{"optuna.study": info["study_name"], "optuna.trial": info["trial"]})
    if context.outcome == Status.PRUNED:  # a later fit stage of a pruned trial stops after one batch
        return [OptunaPruningCallback(context, stage, trial=None, metric=None)]
    metric = info.get("pruning_metric")
    if not metric or metric.partition("/")[0] != stage.name:
        return None
    if TRIAL not in context.stash:
        from hydra_plugins.orchestrator_optuna_sweeper._study import load_trial

        context.stash[TRIAL] = load_trial(info)
    return [OptunaPruningCallback(context, stage, trial=context.stash[TRIAL], metric=metric)]
