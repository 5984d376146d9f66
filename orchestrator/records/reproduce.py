"""``python -m orchestrator reproduce RUN_ID``: run a recorded run again and say whether it came out the same.

Everything comes from the run's MLflow record, so it works from any folder: the
overrides, the resolved config (seed, data source), the data's digests, the
versions and the git commit. The command says what differs from then (a version,
the commit, a data path that no longer exists, data whose digest changed;
``--strict`` refuses to go on when anything does), then runs the same command
again, a job of a sweep alone, through the normal command line: a new output
folder, a new MLflow run in the same experiment, tagged
``orchestrator.reproduces=RUN_ID``, and ``resume=false`` so that it never
continues the original. Last, a table compares each metric and a verdict says
whether the results are identical, within ``--tolerance`` or differ.

    python -m orchestrator reproduce 23bb5d31f6064fe39d5cf29769d7df93
    python -m orchestrator reproduce 23bb5d31 --tracking-uri http://mlflow:5000 --tolerance 1e-6 --strict

Exit code 0 when the results are identical or within the tolerance, 1 when they
differ (or the re-run failed), 2 for bad input (an unknown run, a run another tool
made, a store that cannot be read) and for a ``--strict`` refusal.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

from orchestrator.errors import UserError
from orchestrator.records.environment import UNSET, environment_differences
from orchestrator.records.record import REPRODUCES_TAG, RunRecord, open_store, read_record
from orchestrator.records.table import text_table
from orchestrator.secrets import MASK

#: Exit codes: the results match; they differ (or the re-run failed).
MATCHED, DIFFERS = 0, 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator reproduce", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("run_id", help="the MLflow run to run again")
    parser.add_argument("--tracking-uri", default=None, help="its store (default: as a run would use)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="the largest difference of a metric that still matches (0)",
    )
    parser.add_argument("--strict", action="store_true", help="refuse when anything differs from then")
    options = parser.parse_args(argv)
    if not options.tolerance >= 0:
        raise UserError("--tolerance", f"must be 0 or more, got {options.tolerance}.")
    uri, key = store_of(options.tracking_uri)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)  # the re-run's, before this process's own MLflow settings
    client = open_store(uri, key)
    original = read_record(client, options.run_id)
    check_reproducible(original)
    print(f"Run {original.run_id} ({original.name}) of experiment '{original.experiment}', {original.status}")
    print(f"  overrides: {' '.join(original.overrides) or '(none)'}")
    print(f"  seed: {original.params.get('seed')}, deterministic: {original.params.get('deterministic')}")
    differences, notes = environment_differences(original)
    if differences:
        print("Not as it was then:")
        for difference in differences:
            print(f"  {difference.line()}")
    else:
        print(
            "The same as then: versions, git commit and data" + (f" ({'; '.join(notes)})" if notes else ".")
        )
    if options.strict and differences:
        raise UserError(
            "--strict",
            f"{len(differences)} thing(s) differ from the run's record (listed above); nothing was run.",
        )
    if differences and notes:
        print(f"  ({'; '.join(notes)})")
    started = time.time()
    command = rerun_command(original)
    print(f"Running it again: python -m orchestrator {shlex.join(command)}", flush=True)
    code = subprocess.run([sys.executable, "-m", "orchestrator", *command], env=env).returncode
    new = find_rerun(client, original, started)
    if new is None:
        print(f"The re-run ended with exit code {code} before MLflow had its run; nothing to compare.")
        return code if code == 2 else DIFFERS
    print(f"\nNew run {new.run_id} ({new.status}), output folder {new.tags.get('orchestrator.output_dir')}")
    comparison = compare_metrics(original, new, options.tolerance)
    print(text_table(["metric", "original", "new", "difference"], comparison.rows))
    print(comparison.verdict)
    return MATCHED if comparison.matched and code == 0 else DIFFERS


def store_of(given: str | None) -> tuple[str, str]:
    """The store to read and the setting it came from: ``--tracking-uri``, else as a run would choose."""
    from orchestrator.tracking.run_info import tracking_uri

    if given:
        return given, "--tracking-uri"
    return tracking_uri(None), "MLFLOW_TRACKING_URI" if os.environ.get(
        "MLFLOW_TRACKING_URI"
    ) else "--tracking-uri"


def check_reproducible(record: RunRecord) -> None:
    """Refuse a sweep's parent run, and a run whose overrides hold masked secrets."""
    if record.is_sweep_parent:
        raise UserError(
            f"run {record.run_id}",
            f"is the parent run of sweep {record.tags.get('orchestrator.sweep_id')}, which trains nothing "
            f"itself. Reproduce one of its jobs (`python -m orchestrator compare {record.run_id}` "
            "lists them).",
        )
    masked = [o for o in record.overrides if MASK in o]
    if masked:
        raise UserError(
            f"run {record.run_id}",
            f"its overrides {', '.join(masked)} were recorded masked (secrets never reach MLflow), so they "
            "cannot be given again from the record. Run the command again yourself with the secret.",
        )


def rerun_command(record: RunRecord) -> list[str]:
    """The overrides that run ``record`` again as a single run: its own, then a fresh start
    (``resume=false``), its experiment, and its tags plus ``orchestrator.reproduces``."""
    overrides = [o for o in record.overrides if o.lstrip("+~").split("=", 1)[0] != "resume"]
    command = [*overrides, "resume=false"]
    if record.experiment != expected_experiment(record):
        command.append(f"tracking.experiment_name={quoted(record.experiment)}")
    tags = dict((record.config.get("tracking") or {}).get("tags") or {})
    tags[REPRODUCES_TAG] = record.run_id
    command.append("++tracking.tags={" + ", ".join(f"{k}: {quoted(str(v))}" for k, v in tags.items()) + "}")
    return command


def expected_experiment(record: RunRecord) -> str:
    """The experiment the run's overrides choose: ``tracking.experiment_name``, the preset, or ``default``."""
    configured = record.params.get("tracking.experiment_name")
    if configured not in UNSET and configured is not None:
        return configured
    presets = [
        o.split("=", 1)[1] for o in record.overrides if o.lstrip("+~").split("=", 1)[0] == "experiment"
    ]
    return presets[-1] if presets else "default"


def quoted(value: str) -> str:
    """``value`` as a double-quoted string of Hydra's override grammar (where a backslash escapes only
    the backslashes and the quote after it)."""
    value = re.sub(r'(\\*)"', lambda m: m.group(1) * 2 + '\\"', value)
    return '"' + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value) + '"'


def find_rerun(client, original: RunRecord, since: float) -> RunRecord | None:
    """The newest run tagged as reproducing ``original`` that started after ``since`` (seconds)."""
    runs = client.search_runs(
        [original.experiment_id],
        filter_string=f"tags.`{REPRODUCES_TAG}` = '{original.run_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs or runs[0].info.start_time < (since - 1) * 1000:
        return None
    return read_record(client, runs[0].info.run_id)


@dataclass
class MetricComparison:
    """Metric by metric, original against new: the table's rows, whether they match, and the verdict."""

    rows: list[list[object]]
    matched: bool
    verdict: str


def compare_metrics(original: RunRecord, new: RunRecord, tolerance: float) -> MetricComparison:
    """Each metric of the model's results (timings aside), its two values and their difference."""
    then, now = original.compared_metrics, new.compared_metrics
    rows: list[list[object]] = []
    differing: list[str] = []
    largest = (0.0, "")
    for name in sorted(set(then) | set(now)):
        a, b = then.get(name), now.get(name)
        rows.append([name, a, b, None if a is None or b is None else b - a])
        if a is None or b is None:
            differing.append(name)
            continue
        difference = b - a
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            if abs(difference) > largest[0] or math.isnan(difference):
                largest = (abs(difference), name)
            if not abs(difference) <= tolerance:
                differing.append(name)
    if differing:
        verdict = f"Verdict: differs, beyond a tolerance of {tolerance:g}: {', '.join(differing)}"
        return MetricComparison(rows, False, verdict)
    if largest[1]:
        verdict = (
            f"Verdict: within tolerance {tolerance:g} (largest difference {largest[0]:.3g}, {largest[1]})"
        )
        return MetricComparison(rows, True, verdict)
    return MetricComparison(rows, True, f"Verdict: identical ({len(rows)} metrics)")
