"""Idle workers in a parallel Optuna sweep: batches (Hydra's way) against asynchronous workers.

Two joblib workers run trials of unequal length, long and short in turn
(``trainer.epochs`` 16 or 1, enqueued), through ``hydra/sweeper=orchestrator_optuna``:

* batched (``hydra.sweeper.batches=true``): the sweeper asks for two trials, waits for
  both to end, then asks again, as Hydra's sweepers do;
* asynchronous (the default): a worker whose trial ended gets a new one at once.

From each job's start and end in the sweep journal (``started_at``, ``ended_at``:
when the job began and ended in its worker, not when Optuna was asked and told,
which a batch would hold back), the idle share is the part
of the two workers' time between the first and the last trial start in which a
worker ran no trial: ``1 - (trial-seconds running in that window) / (2 x window)``.
The variants are interleaved, medians of the repetitions. Goal: asynchronous at most 10%.

    python benchmarks/run.py --only sweep_idle --json /tmp/sweep_idle.json --output /tmp/sweep_idle.md
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

WORKERS = 2
GOAL = 0.10
#: Epochs of a long trial (a short one trains 1).
LONG = 16
VARIANTS = {"batched": ["hydra.sweeper.batches=true"], "asynchronous": []}


def trials(quick: bool) -> list[int]:
    """The epochs of each trial, long and short in turn."""
    return [1, 1] if quick else [LONG, 1, LONG, 1, LONG, 1]


def command(epochs: list[int], sweep_dir: Path, extra: list[str], quick: bool = False) -> list[str]:
    """The sweep; ``quick``: two tiny trials in the sweep's own process (the harness's check)."""
    enqueued = ",".join(f"{{trainer.epochs:{e}}}" for e in epochs)
    workers = 1 if quick else WORKERS
    launcher = (
        ["trainer.limit_batches=2"]
        if quick
        else ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"]
    )
    return [
        sys.executable, "-m", "orchestrator", "-m", "+experiment=mnist", "hydra/sweeper=orchestrator_optuna",
        "data.source=bundled", "trainer.verbose=0", "tracking=off", "stages.predict=null",
        f"trainer.epochs=choice(1,{LONG})", f"hydra.sweeper.enqueue_trials=[{enqueued}]",
        f"hydra.sweeper.n_trials={len(epochs)}", "hydra.sweeper.pruner.name=none",
        f"hydra.sweeper.n_jobs={workers}", *launcher,
        "hydra.sweeper.study_name=idle", f"hydra.sweep.dir={sweep_dir}", *extra,
    ]  # fmt: skip


def spans(sweep_dir: Path) -> list[tuple[float, float]]:
    """``(start, end)`` in seconds of every job of the sweep, from its journal."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from orchestrator.sweep.journal import read_journal

    return [(job["started_at"], job["ended_at"]) for job in read_journal(sweep_dir)]


def idle_share(intervals: list[tuple[float, float]], workers: int = WORKERS) -> float:
    """The share of ``workers``' time between the first and the last trial start with no trial running."""
    first = min(start for start, _ in intervals)
    last = max(start for start, _ in intervals)
    if last <= first:
        return 0.0
    busy = sum(max(0.0, min(end, last) - max(start, first)) for start, end in intervals)
    return max(0.0, 1 - busy / (workers * (last - first)))


def measure(bench) -> dict:
    epochs = trials(bench.settings.quick)
    repeats = 1 if bench.settings.quick else bench.settings.repeats
    names = ["asynchronous"] if bench.settings.quick else list(VARIANTS)
    results: dict = {name: {"idle": [], "wall": []} for name in names}
    for repetition in range(repeats):
        for name in names:
            folder = bench.folder(f"sweep-idle-{name}-{repetition}")
            sweep_dir = folder / "sweep"
            bench.say(f"sweep_idle: {name} {repetition + 1}/{repeats}")
            argv = command(epochs, sweep_dir, VARIANTS[name], bench.settings.quick)
            measured = bench.measure(f"sweep-idle-{name}", argv, folder)
            results[name]["idle"].append(idle_share(spans(sweep_dir), 1 if bench.settings.quick else WORKERS))
            results[name]["wall"].append(measured["wall"])
    return {"trials": epochs, "workers": 1 if bench.settings.quick else WORKERS, "variants": results}


def _median(results: dict, name: str, key: str) -> float | None:
    values = (results.get("variants") or {}).get(name, {}).get(key) or []
    return statistics.median(values) if values else None


def summary_rows(results: dict) -> list[tuple]:
    asynchronous = _median(results, "asynchronous", "idle")
    batched = _median(results, "batched", "idle")
    figure = f"sweep_idle: idle worker share, {WORKERS} asynchronous Optuna workers"
    if asynchronous is None or results.get("workers") != WORKERS:
        return [(figure, "n/a", "<= 10%", None, "quick: one worker (the basic launcher), no idle share")]
    reference = f"batched: {batched:.1%}" if batched is not None else ""
    return [(figure, f"{asynchronous:.1%}", "<= 10%", asynchronous <= GOAL, reference)]


def section(results: dict) -> list[str]:
    lines = [
        "## Idle workers in a parallel Optuna sweep",
        "",
        (f"{WORKERS} joblib workers" if results.get("workers") == WORKERS else "quick: the basic launcher")
        + ", trials of "
        f"{'/'.join(str(e) for e in results.get('trials', []))} epochs (enqueued in turn), tracking off; "
        "idle share between the first and the last job start, from each job's start and end in the "
        "sweep journal. "
        "Medians of the repetitions, the variants interleaved.",
        "",
        "| variant | idle share | wall (s) |",
        "| --- | --- | --- |",
    ]
    for name in VARIANTS:
        idle, wall = _median(results, name, "idle"), _median(results, name, "wall")
        if idle is not None:
            lines.append(f"| {name} | {idle:.1%} | {wall:.1f} |")
    return lines
