"""The end-of-sweep report: a console table, ``sweep_summary.csv`` and objective plots.

Example::

    report = write_report(sweep, jobs)   # {"summary": Path(...), "plot": Path(...)}
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from orchestrator.sweep.journal import best
from orchestrator.sweep.state import Sweep

log = logging.getLogger("orchestrator.sweep")


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


def write_report(sweep: Sweep, jobs: list[dict[str, Any]]) -> dict[str, Path]:
    """Print the table of jobs and write the CSV and the plot into the sweep folder."""
    keys = swept_keys(jobs)
    report = {"summary": _write_csv(sweep.dir / "sweep_summary.csv", jobs, keys)}
    log.info("Jobs of sweep %s:\n%s", sweep.id, table(jobs, keys, sweep.direction))
    plot = _plot(sweep.dir / "objective.png", jobs, keys)
    if plot is not None:
        report["plot"] = plot
    return report


def table(jobs: list[dict[str, Any]], keys: list[str], direction: str) -> str:
    """A plain-text table: job, status, objective, each swept value; the best marked with *."""
    top = best(jobs, direction)
    header = ["", "job", "status", "objective", *keys]
    rows = [header]
    for job in jobs:
        values = override_values(job["overrides"])
        objective = "" if job.get("objective") is None else f"{job['objective']:.6g}"
        mark = "*" if top is not None and job["number"] == top["number"] else ""
        rows.append([mark, str(job["number"]), job["status"], objective, *(values.get(k, "") for k in keys)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def _write_csv(path: Path, jobs: list[dict[str, Any]], keys: list[str]) -> Path:
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["job", "run_id", "status", "objective", "overrides", *keys, "error"])
        for job in jobs:
            values = override_values(job["overrides"])
            writer.writerow(
                [
                    job["number"],
                    job.get("run_id") or "",
                    job["status"],
                    "" if job.get("objective") is None else job["objective"],
                    " ".join(job["overrides"]),
                    *(values.get(k, "") for k in keys),
                    job.get("error") or "",
                ]
            )
    return path


def _plot(path: Path, jobs: list[dict[str, Any]], keys: list[str]) -> Path | None:
    """Objective against each swept parameter, one panel each; ``None`` if nothing to plot."""
    scored = [j for j in jobs if j.get("objective") is not None]
    if not scored or not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        raw = [override_values(j["overrides"]).get(key, "") for j in scored]
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
