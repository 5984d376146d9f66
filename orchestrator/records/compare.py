"""``python -m orchestrator compare RUN_ID RUN_ID [...]``: what differs between runs, from their record.

The config keys that differ (the flattened params), the metrics that differ (the
last value of each, and the fit metrics at the best epoch, the epoch where
``objective.metric`` was best), the data (source and digest of each split), the
versions and the git commit. A sweep's parent run stands for the jobs of the sweep.
Timings and system metrics are left out: they differ on every run.

    python -m orchestrator compare 9841eaf2d5484f6b... f0346cf03c994112...
    python -m orchestrator compare 8855042600cd487d... --format csv     # the jobs of a sweep
    python -m orchestrator compare A B --format json --tracking-uri http://mlflow:5000

Exit code 0, or 2 for bad input (an unknown run, a run another tool made, a store
that cannot be read, fewer than two runs).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UserError
from orchestrator.records.record import (
    REPRODUCES_TAG,
    RunRecord,
    metric_history,
    open_store,
    read_record,
    sweep_children,
)
from orchestrator.records.reproduce import store_of
from orchestrator.records.table import csv_text, text_table

#: The sections of a comparison, in order.
SECTIONS = ("config", "metrics", "data", "versions", "commit")
FORMATS = ("text", "csv", "json")


@dataclass
class Comparison:
    """The runs compared and, per section, the rows that differ: ``(key, [value of each run])``.

    ``counts`` holds how many keys each section compared, ``same`` the values all runs share in the
    short sections (data, versions, commit), ``notes`` what the records do not say.
    """

    runs: list[RunRecord]
    rows: dict[str, list[tuple[str, list[Any]]]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    counts: dict[str, int] = field(default_factory=dict)
    same: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator compare", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="runs, or a sweep's parent run")
    parser.add_argument("--tracking-uri", default=None, help="their store (default: as a run would use)")
    parser.add_argument("--format", default="text", help=f"{', '.join(FORMATS)} (text)")
    options = parser.parse_args(argv)
    if options.format not in FORMATS:
        raise UserError("--format", f"must be one of {', '.join(FORMATS)}, got '{options.format}'.")
    uri, key = store_of(options.tracking_uri)
    client = open_store(uri, key)
    runs = collect(client, options.run_ids)
    comparison = compare_runs(client, runs)
    print({"text": render_text, "csv": render_csv, "json": render_json}[options.format](comparison), end="")
    return 0


def collect(client: Any, run_ids: list[str]) -> list[RunRecord]:
    """The records of ``run_ids``, each sweep parent replaced by its jobs; at least two runs, each once."""
    runs: dict[str, RunRecord] = {}
    for run_id in run_ids:
        record = read_record(client, run_id)
        for run in sweep_children(client, record) if record.is_sweep_parent else [record]:
            runs.setdefault(run.run_id, run)
    if len(runs) < 2:
        raise UserError(
            "RUN_ID",
            f"compare needs two runs or more, or a sweep's parent run with jobs; got {len(runs)} "
            f"({', '.join(runs) or 'none'}).",
        )
    return list(runs.values())


def compare_runs(client: Any, runs: list[RunRecord]) -> Comparison:
    """What differs between ``runs``, section by section."""
    comparison = Comparison(runs)
    add = comparison.rows
    params = sorted(set().union(*(run.params for run in runs)))
    comparison.counts["config"] = len(params)
    add["config"] = differing([(key, [run.params.get(key) for run in runs]) for key in params])
    metric_rows = final_metrics(runs) + best_epoch_metrics(client, runs)
    comparison.counts["metrics"] = len(metric_rows)
    add["metrics"] = differing(metric_rows)
    splits = sorted(set().union(*(run.digests for run in runs)))
    if not splits:
        comparison.notes.append("no data digest recorded")
    data_rows = [("data_source", [run.tags.get("data_source") for run in runs])]
    data_rows += [(f"digest of {split}", [run.digests.get(split) for run in runs]) for split in splits]
    comparison.counts["data"] = len(data_rows)
    add["data"] = differing(data_rows)
    comparison.same["data"] = shared(data_rows)
    dists = sorted(set().union(*(run.versions for run in runs)))
    comparison.counts["versions"] = len(dists)
    version_rows = [(dist, [run.versions.get(dist) for run in runs]) for dist in dists]
    add["versions"] = differing(version_rows)
    comparison.same["versions"] = shared(version_rows)
    if all(run.commit is None for run in runs):
        comparison.notes.append("no git commit recorded")
    comparison.counts["commit"] = 1
    commit_rows = [("git commit", [run.commit for run in runs])]
    add["commit"] = differing(commit_rows)
    comparison.same["commit"] = shared(commit_rows)
    return comparison


def final_metrics(runs: list[RunRecord]) -> list[tuple[str, list[Any]]]:
    """The last value of every metric of the model's results."""
    names = sorted(set().union(*(run.compared_metrics for run in runs)))
    return [(name, [run.compared_metrics.get(name) for run in runs]) for name in names]


def best_epoch_metrics(client: Any, runs: list[RunRecord]) -> list[tuple[str, list[Any]]]:
    """Each run's best epoch (the MLflow step where ``objective.metric`` was best), and the values of the
    objective's stage metrics (``fit/...``) at that step."""
    objectives = {run.params.get("objective.metric") or "" for run in runs}
    objective = objectives.pop()
    if objectives or not objective:
        return []
    prefix = objective.split("/", 1)[0] + "/"
    names = sorted({name for run in runs for name in run.compared_metrics if name.startswith(prefix)})
    steps: list[int | None] = []
    values: dict[str, list[float | None]] = {name: [] for name in names}
    for run in runs:
        history = metric_history(client, run.run_id, objective)
        pick = max if run.params.get("objective.direction") == "maximize" else min
        best = pick(history, key=lambda point: point[1])[0] if history else None
        steps.append(best)
        for name in names:
            at = dict(metric_history(client, run.run_id, name)) if best is not None else {}
            values[name].append(at.get(best) if best is not None else None)
    return [(f"best epoch (by {objective})", steps)] + [
        (f"{name} at best epoch", values[name]) for name in names
    ]


def differing(rows: list[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """The rows whose values are not all the same."""
    return [(key, values) for key, values in rows if len({json.dumps(v) for v in values}) > 1]


def shared(rows: list[tuple[str, list[Any]]]) -> list[tuple[str, Any]]:
    """``(key, value)`` of the rows whose values are all the same (and recorded)."""
    kept = {key for key, _ in differing(rows)}
    return [(key, values[0]) for key, values in rows if key not in kept and values[0] is not None]


def run_label(run: RunRecord) -> str:
    return run.run_id[:8]


def run_facts(run: RunRecord) -> list[str]:
    """``["FINISHED", "job 1 of sweep f0d9b60b"]``, or ``[..., "reproduces 2371ed9d"]``."""
    tags = run.tags
    facts = [run.status]
    if "orchestrator.sweep_id" in tags:
        facts.append(f"job {tags.get('orchestrator.job')} of sweep {tags['orchestrator.sweep_id']}")
    if REPRODUCES_TAG in tags:
        facts.append(f"reproduces {tags[REPRODUCES_TAG][:8]}")
    return facts


def render_text(comparison: Comparison) -> str:
    """Plain-text tables, one per section that differs, and a line for each that does not."""
    runs = comparison.runs
    lines = ["Runs compared:"]
    for run in runs:
        lines.append(f"  {run_label(run)}  {run.run_id}  {run.name} ({', '.join(run_facts(run))})")
    header = ["key", *[run_label(run) for run in runs]]
    for section in SECTIONS:
        rows = comparison.rows[section]
        total = comparison.counts[section]
        if rows:
            lines.append(f"\n{section}: {len(rows)} of {total} differ")
            lines.append(text_table(header, [[key, *values] for key, values in rows], indent="  "))
        else:
            same = ", ".join(f"{key} {value}" for key, value in comparison.same.get(section, []))
            detail = f" ({same})" if same else f" ({total} keys)" if section not in comparison.same else ""
            lines.append(f"\n{section}: the same{detail}")
    lines.extend(f"({note})" for note in comparison.notes)
    return "\n".join(lines) + "\n"


def render_csv(comparison: Comparison) -> str:
    """``section,key,<run id>...``: one row per key that differs."""
    header = ["section", "key", *[run.run_id for run in comparison.runs]]
    rows = [[section, key, *values] for section in SECTIONS for key, values in comparison.rows[section]]
    return csv_text(header, rows)


def render_json(comparison: Comparison) -> str:
    """``{"runs": [...], "config": {key: {run id: value}}, "metrics": ..., "notes": [...]}``."""
    ids = [run.run_id for run in comparison.runs]
    document: dict[str, Any] = {
        "runs": [
            {
                "run_id": run.run_id,
                "name": run.name,
                "experiment": run.experiment,
                "status": run.status,
                "sweep_id": run.tags.get("orchestrator.sweep_id"),
                "job": run.tags.get("orchestrator.job"),
            }
            for run in comparison.runs
        ]
    }
    for section in SECTIONS:
        document[section] = {
            key: dict(zip(ids, [_json_value(v) for v in values], strict=True))
            for key, values in comparison.rows[section]
        }
    document["compared"] = comparison.counts
    document["notes"] = comparison.notes
    return json.dumps(document, indent=2) + "\n"


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
