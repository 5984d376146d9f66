"""Suite: what MLflow's system metrics and the datasets' digests cost a run.

The guide's run (B: ``+experiment=mnist data=fashion_mnist``, MLflow on) with
system metrics on (the default: MLflow's sampler in the tracking worker, every
10 s) against ``tracking.system_metrics=false``, interleaved off, on per
repetition; wall time and fit time (``time/fit_seconds``), medians and their
ratio. Also the time of the datasets' description (every split's content
digest, schema and rows: :func:`orchestrator.tracking.datasets.describe`) on the
guide's data, measured here, which a run spends in a thread beside training.
``--quick`` measures the description alone (on the bundled MNIST split), no run.

    python benchmarks/run.py --only system_metrics --json /tmp/s.json --output /tmp/s.md
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from harness import median

VARIANTS = {"off": ["tracking.system_metrics=false"], "on": []}
#: Fit time with system metrics on may exceed off's by this much. The goal is on fit time, the
#: training the sampler must not slow; the wall time, which the rest of a shared machine sways by
#: more than this (the load is shown beside it), is for reference.
GOAL_RATIO = 1.05
#: Seconds the datasets' description of the guide's data may take: it runs in a thread beside the
#: first stage, which it must not hold up (the guide's fit takes some 3 s here).
GOAL_DESCRIBE_SECONDS = 1.0


def measure(bench) -> dict:
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    repeats = 0 if bench.settings.quick else bench.settings.repeats
    for repetition in range(1, repeats + 1):
        for name, extra in VARIANTS.items():
            folder = bench.folder(f"system-metrics-{name}-{repetition}")
            argv = [*bench.commands("B", folder), *extra]
            stats = folder / "worker-stats.jsonl"
            env = {**bench.env, "ORCHESTRATOR_WORKER_STATS": str(stats)}
            run = bench.measure(f"system-metrics-{name}-{repetition}", argv, folder, env)
            metrics = _metrics(folder)
            workers = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
            run.update(
                fit=metrics["time/fit_seconds"],
                samples=_samples(folder),
                worker_cpu=sum(w["cpu_seconds"] for w in workers),
            )
            bench.say(f"  system metrics {name}: {run['wall']:.2f} s wall, fit {run['fit']:.2f} s")
            runs[name].append(run)
            shutil.rmtree(folder, ignore_errors=True)
    return {"runs": runs, "describe_seconds": _describe_seconds(bench)}


def _metrics(folder: Path) -> dict[str, float]:
    (run,) = _runs(folder)
    return dict(run.data.metrics)


def _samples(folder: Path) -> int:
    """How many CPU samples the run's record holds."""
    from mlflow.tracking import MlflowClient

    (run,) = _runs(folder)
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    return len(client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage"))


def _runs(folder: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("mnist").experiment_id])


def _describe_seconds(bench) -> list[float]:
    """Seconds to describe the guide's data (digests, schemas, rows), three times."""
    from orchestrator.tracking.datasets import describe
    from orchestrator_plugins.mnist import fashion_mnist, mnist

    data = mnist(source="bundled") if bench.settings.quick else fashion_mnist()
    name = "mnist" if bench.settings.quick else "fashion_mnist"
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        describe(data, name, {})
        seconds.append(time.perf_counter() - started)
    return seconds


def _figures(results: dict) -> dict:
    runs = results["runs"]
    if not runs["on"]:
        return {"describe": median(results["describe_seconds"])}
    wall = {name: median([r["wall"] for r in runs[name]]) for name in runs}
    fit = {name: median([r["fit"] for r in runs[name]]) for name in runs}
    return {
        "wall": wall,
        "fit": fit,
        "wall_ratio": wall["on"] / wall["off"],
        "fit_ratio": fit["on"] / fit["off"],
        "samples": median([r["samples"] for r in runs["on"]]),
        "worker_cpu": {name: median([r["worker_cpu"] for r in runs[name]]) for name in runs},
        "samples_off": max(r["samples"] for r in runs["off"]),
        "describe": median(results["describe_seconds"]),
        "load": median([r["load"] for name in runs for r in runs[name]]),
    }


def summary_rows(results: dict) -> list[tuple]:
    fig = _figures(results)
    described = (
        "system_metrics: datasets' digests of the guide's data",
        f"{fig['describe']:.3f} s",
        f"< {GOAL_DESCRIBE_SECONDS:g} s",
        fig["describe"] < GOAL_DESCRIBE_SECONDS,
        "in a thread beside training",
    )
    if "wall" not in fig:
        return [described]
    note = (
        f"off {fig['wall']['off']:.1f} s, on {fig['wall']['on']:.1f} s, load {fig['load']:.1f}; "
        f"{fig['samples']:.0f} CPU samples"
    )
    return [
        ("system_metrics: on / off, wall", f"{fig['wall_ratio']:.3f}", "", None, note),
        (
            "system_metrics: on / off, fit",
            f"{fig['fit_ratio']:.3f}",
            f"<= {GOAL_RATIO}",
            fig["fit_ratio"] <= GOAL_RATIO,
            "",
        ),
        described,
    ]


def section(results: dict) -> list[str]:
    fig = _figures(results)
    runs = results["runs"]
    described = [
        f"Describing the guide's splits as dataset inputs (content digest, schema, rows) takes "
        f"{fig['describe']:.3f} s (median of 3), in a thread beside the first stage; `hashlib` releases "
        "the GIL while it hashes, so training goes on meanwhile.",
    ]
    if "wall" not in fig:
        return [
            "## System metrics and dataset digests",
            "(runs not measured with --quick)",
            "",
            *described,
        ]
    lines = [
        "## System metrics and dataset digests",
        "The guide's run (B) with MLflow's system metrics sampled by the tracking worker (on, the default) "
        "against `tracking.system_metrics=false` (off), interleaved, medians of "
        f"{len(runs['on'])}, at a median load of {fig['load']:.1f} (1 min). The training process does "
        "no sampling; the worker's sampler wakes every 10 s.",
        "",
        "| | wall s | fit s | tracking worker CPU s | CPU samples in the record |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| off | {fig['wall']['off']:.2f} | {fig['fit']['off']:.2f} | {fig['worker_cpu']['off']:.2f} "
        f"| {fig['samples_off']} |",
        f"| on | {fig['wall']['on']:.2f} | {fig['fit']['on']:.2f} | {fig['worker_cpu']['on']:.2f} "
        f"| {fig['samples']:.0f} |",
        f"| on / off | {fig['wall_ratio']:.3f} | {fig['fit_ratio']:.3f} | "
        f"{fig['worker_cpu']['on'] / fig['worker_cpu']['off']:.3f} | |",
        "",
        *described,
    ]
    return lines
