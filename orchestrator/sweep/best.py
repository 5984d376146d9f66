"""The best epoch of each job of a sweep, and the settings that differ between jobs.

A sweep's report compares jobs by more than their last epoch and their command
lines. In every job of a sweep, the built-in plugin ``sweep_best`` (this module,
registered by an entry point) follows the objective (``objective.metric``, in
``objective.direction``) and the metrics a sweeper names in the sweep's state
(``orchestrator.epoch_metrics``: the Optuna sweeper's pruning metric) epoch by
epoch; the job's journal entry records each one's best value and its epoch
(:func:`best_epochs`) and the job's flattened config (:func:`job_params`), so
the report can show only the settings that differ between jobs, also those a
preset chosen per job changed (:func:`differing_params`).

Example::

    best_epochs(context)   # {"fit/val_loss": {"value": 0.31, "epoch": 1}}
    differing_params([{"params": {"a": 1, "b": 2}}, {"params": {"a": 1, "b": 3}}])   # ["b"]
"""

from __future__ import annotations

from typing import Any

from orchestrator import hookimpl

#: Where a job keeps its best epochs: ``context.stash``.
BEST = "sweep.best_epochs"
#: The sweep-state key under which a sweeper names more per-epoch metrics to follow: ``{name: direction}``.
EPOCH_METRICS = "orchestrator.epoch_metrics"


def watched(context) -> dict[str, str]:
    """``{metric: direction}`` a job of a sweep follows; empty outside a sweep."""
    if context.sweep is None:
        return {}
    metrics = {str(context.cfg.objective.metric): str(context.cfg.objective.direction)}
    metrics.update(context.sweep.state.get(EPOCH_METRICS) or {})
    return metrics


@hookimpl
def orchestrator_after_epoch(context, stage, epoch, metrics, checkpoint):
    """Keep the best value of each followed metric so far, and its epoch."""
    follow = watched(context)
    if not follow:
        return
    best = context.stash.setdefault(BEST, {})
    for name, direction in follow.items():
        if name not in metrics:
            continue
        value = float(metrics[name])
        known = best.get(name)
        maximize = direction == "maximize"
        better = known is None or (value > known["value"] if maximize else value < known["value"])
        if better and value == value:  # NaN is never the best
            best[name] = {"value": value, "epoch": int(epoch)}


def best_epochs(context) -> dict[str, dict[str, Any]]:
    """``{metric: {"value": best value, "epoch": its epoch}}`` of a finished job (empty: none logged)."""
    if context is None:
        return {}
    return dict(context.stash.get(BEST) or {})


def job_params(cfg) -> dict[str, Any]:
    """The job's config flattened to dotted keys (lists kept whole: ``model.hidden_units: "[64, 64]"``),
    secrets masked; empty if it cannot be resolved."""
    from orchestrator.config import to_python
    from orchestrator.secrets import Secrets

    try:
        return _flat(to_python(Secrets.of(cfg).node(cfg)))
    except Exception:
        return {}


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[f"{prefix}{key}"] = value
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def differing_params(jobs: list[dict[str, Any]]) -> list[str]:
    """The config keys whose values differ between the jobs that recorded their config, in config order.

    A key only some jobs have (a preset that adds it) differs too.
    """
    recorded = [job["params"] for job in jobs if job.get("params")]
    if len(recorded) < 2:
        return []
    keys = list(dict.fromkeys(key for params in recorded for key in params))
    missing = object()
    return [key for key in keys if len({repr(params.get(key, missing)) for params in recorded}) > 1]
