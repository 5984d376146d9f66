"""The end-of-sweep report: a console table, ``sweep_summary.csv`` and objective plots.

One row per job: its status, its objective (the value the sweeper was told), the
best epoch's value of each metric the jobs followed (the objective, a sweeper's
pruning metric: :mod:`orchestrator.sweep.best`), and only the settings that
differ between jobs, read from each job's whole config (a preset chosen per job
shows the keys it changed), else from the jobs' overrides.

Example::

    report = write_report(sweep, jobs)   # {"summary": Path(...), "plot": Path(...)}
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from orchestrator.sweep.best import differing_params
from orchestrator.sweep.journal import best
from orchestrator.sweep.state import Sweep

log = logging.getLogger("orchestrator.sweep")

#: The most settings the objective plot draws a panel for.
PANELS = 8


def override_values(overrides: list[str]) -> dict[str, str]:
    """``["+a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    values = {}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        values[key] = value
    return values


def swept_keys(jobs: list[dict[str, Any]]) -> list[str]:
    """The override keys whose values differ between jobs, in first-seen order."""
    seen: dict[str, set[str]] = {}
    for job in jobs:
        for key, value in override_values(job["overrides"]).items():
            seen.setdefault(key, set()).add(value)
    return [key for key, values in seen.items() if len(values) > 1]


def compared_keys(jobs: list[dict[str, Any]]) -> list[str]:
    """The settings that differ between jobs: config keys when the jobs recorded their config,
    else the override keys whose values differ."""
    return differing_params(jobs) or swept_keys(jobs)


def value_of(job: dict[str, Any], key: str) -> str:
    """A job's value of ``key``: from its recorded config, else from its overrides (``""``: unset)."""
    params = job.get("params")
    if params:
        return "" if key not in params else _text(params[key])
    return override_values(job["overrides"]).get(key, "")


def followed_metrics(jobs: list[dict[str, Any]], objective: str | None = None) -> list[str]:
    """The metrics whose best epoch the jobs recorded, the objective's first."""
    names = list(dict.fromkeys(name for job in jobs for name in job.get("best_epochs") or {}))
    return sorted(names, key=lambda name: name != objective)


def best_epoch(job: dict[str, Any], metric: str) -> tuple[float, int] | None:
    """``(best value, its epoch)`` of ``metric`` in ``job``, or ``None``."""
    found = (job.get("best_epochs") or {}).get(metric)
    return None if found is None else (float(found["value"]), int(found["epoch"]))


def write_report(sweep: Sweep, jobs: list[dict[str, Any]]) -> dict[str, Path]:
    """Print the table of jobs and write the CSV and the plot into the sweep folder."""
    keys = compared_keys(jobs)
    objective = str(sweep.cfg.objective.metric) if sweep.cfg is not None else None
    metrics = followed_metrics(jobs, objective)
    report = {"summary": _write_csv(sweep.dir / "sweep_summary.csv", jobs, keys, metrics)}
    log.info("Jobs of sweep %s:\n%s", sweep.id, table(jobs, keys, sweep.direction, metrics))
    plot = _plot(sweep.dir / "objective.png", jobs, keys)
    if plot is not None:
        report["plot"] = plot
    return report


def table(jobs: list[dict[str, Any]], keys: list[str], direction: str, metrics: list[str] = ()) -> str:
    """A plain-text table: job, status, objective, each followed metric's best epoch
    (``value @epoch``), each differing setting; the best job marked with *."""
    top = best(jobs, direction)
    header = ["", "job", "status", "objective", *(f"best {m}" for m in metrics), *keys]
    rows = [header]
    for job in jobs:
        objective = "" if job.get("objective") is None else f"{job['objective']:.6g}"
        mark = "*" if top is not None and job["number"] == top["number"] else ""
        bests = [_best_text(best_epoch(job, m)) for m in metrics]
        values = [value_of(job, k) for k in keys]
        rows.append([mark, str(job["number"]), job["status"], objective, *bests, *values])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def _best_text(found: tuple[float, int] | None) -> str:
    return "" if found is None else f"{found[0]:.6g} @{found[1]}"


def _text(value: Any) -> str:
    return "null" if value is None else str(value)


def _write_csv(path: Path, jobs: list[dict[str, Any]], keys: list[str], metrics: list[str] = ()) -> Path:
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        best_columns = [column for m in metrics for column in (f"best {m}", f"best {m} epoch")]
        writer.writerow(["job", "run_id", "status", "objective", *best_columns, "overrides", *keys, "error"])
        for job in jobs:
            bests = []
            for metric in metrics:
                found = best_epoch(job, metric)
                bests += ["", ""] if found is None else [found[0], found[1]]
            writer.writerow(
                [
                    job["number"],
                    job.get("run_id") or "",
                    job["status"],
                    "" if job.get("objective") is None else job["objective"],
                    *bests,
                    " ".join(job["overrides"]),
                    *(value_of(job, k) for k in keys),
                    job.get("error") or "",
                ]
            )
    return path


def _plot(path: Path, jobs: list[dict[str, Any]], keys: list[str]) -> Path | None:
    """Objective against each differing setting (the first :data:`PANELS`), one panel each; ``None`` if
    nothing to plot."""
    scored = [j for j in jobs if j.get("objective") is not None]
    keys = keys[:PANELS]
    if not scored or not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        raw = [value_of(j, key) for j in scored]
        objectives = [j["objective"] for j in scored]
        numbers = _as_numbers(raw)
        if numbers is not None:
            axis.scatter(numbers, objectives)
            if min(numbers) > 0 and max(numbers) / min(numbers) >= 100:
                axis.set_xscale("log")
        else:
            labels = sorted(set(raw))
            axis.scatter([labels.index(v) for v in raw], objectives)
            axis.set_xticks(range(len(labels)), labels, rotation=30)
        axis.set_xlabel(key)
        axis.set_ylabel("objective")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _as_numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


#: The most jobs the parent run's description lists (MLflow keeps 5000 characters of it).
DESCRIBED = 15


def why_best(sweep: Sweep, jobs: list[dict[str, Any]]) -> str:
    """Markdown for the parent run's description: the best job, its numbers, what sets it apart,
    and the leading jobs side by side (the settings that differ only)."""
    top = best(jobs, sweep.direction)
    if top is None:
        return "No job finished with an objective."
    objective = str(sweep.cfg.objective.metric) if sweep.cfg is not None else "objective"
    keys = compared_keys(jobs)
    metrics = followed_metrics(jobs, objective)
    counts = ", ".join(
        f"{sum(j['status'] == s for j in jobs)} {s.lower()}" for s in dict.fromkeys(j["status"] for j in jobs)
    )
    lines = [
        f"**Best: job {top['number']}** (run `{top.get('run_id') or '-'}`): {objective} = "
        f"{top['objective']:.6g} ({sweep.direction}), of {len(jobs)} jobs ({counts}).",
        "",
    ]
    for metric in metrics:
        found = best_epoch(top, metric)
        if found is not None:
            lines.append(f"* best epoch of {metric}: {found[0]:.6g} at epoch {found[1]}")
    others = [j for j in jobs if j["number"] != top["number"]]
    for key in keys:
        values = sorted({value_of(j, key) for j in others} - {value_of(top, key)})
        if values:
            lines.append(f"* {key} = {value_of(top, key) or '(unset)'} (other jobs: {', '.join(values[:5])})")
    sign = -1 if sweep.direction == "maximize" else 1
    scored = sorted((j for j in jobs if j.get("objective") is not None), key=lambda j: sign * j["objective"])
    ranked = [*scored, *(j for j in jobs if j.get("objective") is None)][:DESCRIBED]
    header = ["job", "status", "objective", *(f"best {m}" for m in metrics), *keys]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for job in ranked:
        number = f"**{job['number']}**" if job["number"] == top["number"] else str(job["number"])
        value = "" if job.get("objective") is None else f"{job['objective']:.6g}"
        cells = [number, job["status"], value, *(_best_text(best_epoch(job, m)) for m in metrics)]
        lines.append("| " + " | ".join([*cells, *(value_of(job, k) for k in keys)]) + " |")
    if len(jobs) > DESCRIBED:
        lines.append(f"\n{len(jobs) - DESCRIBED} more jobs in sweep/sweep_summary.csv.")
    return "\n".join(lines)
