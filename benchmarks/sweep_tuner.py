"""Suite ``sweep_tuner``: the same random search through KerasTuner and through the project's Optuna sweeper.

The search: the guide's MLP on the bundled MNIST split, batch 64, the first
``LIMIT_BATCHES`` batches of each split, ``EPOCHS`` epochs, ``TRIALS`` trials;
searched: the width of both hidden layers (32, 64, 128) and the learning rate
(log-uniform 1e-4 to 1e-1), objective ``fit/val_loss`` minimized; random sampling.
Interleaved per repetition:

* K: KerasTuner ``RandomSearch`` (``benchmarks/keras_tuner_search.py``);
* O: ``python -m orchestrator -m hydra/sweeper=orchestrator_optuna ...``, MLflow on (a fresh store);
* F: O with ``tracking=off``.

Each variant is timed as a whole (wall, peak memory of the process). The overhead
per trial is what a trial costs beyond its fit: (the end of the last trial - the
start of the second trial - the fits of trials 2 to N) / (N - 1). The first trial
is left out: it pays the imports (TensorFlow, in the orchestrator's in-process sweep).
A fit is the whole ``model.fit`` call: KerasTuner's timed in its hypermodel's
``fit``; the orchestrator's is the fit stage's time in the sweep journal
(``stage_seconds.fit``). A trial's start and end: KerasTuner's ``on_trial_begin``
and ``on_trial_end``; the orchestrator's, Optuna's own ``datetime_start`` (when
the sweeper asked for it) and ``datetime_complete`` (when it was told the result),
so Hydra's launching, the job's checks, model building, tracking and the
sweeper's bookkeeping all count as overhead.

    python benchmarks/run.py --only sweep_tuner --json /tmp/sweep_tuner.json --output /tmp/sweep_tuner.md
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from harness import ChildFailed, median

HERE = Path(__file__).resolve().parent
SEARCH = str(HERE / "keras_tuner_search.py")
PYTHON = sys.executable

VARIANTS = {
    "K": "KerasTuner RandomSearch",
    "O": "orchestrator, Optuna sweeper, MLflow on",
    "F": "orchestrator, tracking=off",
}


def plan(quick: bool) -> dict:
    if quick:
        return {"trials": 2, "epochs": 1, "limit_batches": 2, "variants": "KF"}
    return {"trials": 10, "epochs": 2, "limit_batches": 20, "variants": "KOF"}


def orchestrator_argv(p: dict, folder: Path, tracked: bool) -> list[str]:
    return [
        PYTHON,
        "-m",
        "orchestrator",
        "-m",
        "hydra/sweeper=orchestrator_optuna",
        "model.hidden_units=choice([32,32],[64,64],[128,128])",
        "optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))",
        f"hydra.sweeper.n_trials={p['trials']}",
        "hydra.sweeper.sampler.name=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.pruner.name=none",
        "objective.metric=fit/val_loss",
        "objective.direction=minimize",
        "data.source=bundled",
        "trainer.batch_size=64",
        f"trainer.epochs={p['epochs']}",
        f"trainer.limit_batches={p['limit_batches']}",
        "trainer.verbose=0",
        "stages.test=null",
        "stages.predict=null",
        *([] if tracked else ["tracking=off"]),
        f"hydra.sweep.dir={folder / 'sweep'}",
    ]


def overhead(trials: list[dict]) -> float:
    """Seconds per trial beyond its fit, trials 2 to N (``start``, ``end``, ``fit`` of each, in order)."""
    later = trials[1:] or trials
    return (later[-1]["end"] - later[0]["start"] - sum(t["fit"] for t in later)) / len(later)


def keras_tuner(bench, p: dict) -> dict:
    folder = bench.folder("keras-tuner")
    argv = [PYTHON, SEARCH, "--result", str(folder / "result.json"), "--trials", str(p["trials"])]
    argv += [
        "--epochs",
        str(p["epochs"]),
        "--limit-batches",
        str(p["limit_batches"]),
        "--folder",
        str(folder),
    ]
    run = bench.measure("K", argv, folder)
    found = json.loads((folder / "result.json").read_text())
    trials = sorted(found["trials"], key=lambda t: t["start"])
    if len(trials) != p["trials"]:
        raise ChildFailed(f"KerasTuner ran {len(trials)} trials, not {p['trials']}")
    shutil.rmtree(folder, ignore_errors=True)
    return {**_numbers(run, trials), "stderr": run["stderr"]}


def orchestrator(bench, p: dict, tracked: bool) -> dict:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    folder = bench.folder("optuna-sweep" if tracked else "optuna-sweep-off")
    run = bench.measure("O" if tracked else "F", orchestrator_argv(p, folder, tracked), folder)
    sweep = folder / "sweep"
    journal = {
        j["number"]: j for j in map(json.loads, (sweep / "orchestrator-jobs.jsonl").read_text().splitlines())
    }
    storage = JournalStorage(JournalFileBackend(str(sweep / "optuna-journal.log")))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    trials = []
    for trial in sorted(study.get_trials(), key=lambda t: t.number):
        job = journal[trial.user_attrs["orchestrator.job"]]
        if trial.state.name != "COMPLETE" or job["status"] != "FINISHED":
            raise ChildFailed(f"trial {trial.number} ended {trial.state.name} (job {job['status']})")
        trials.append(
            {
                "start": trial.datetime_start.timestamp(),
                "end": trial.datetime_complete.timestamp(),
                "fit": job["stage_seconds"]["fit"],
            }
        )
    if len(trials) != p["trials"]:
        raise ChildFailed(f"the sweep ran {len(trials)} trials, not {p['trials']}")
    shutil.rmtree(folder, ignore_errors=True)
    return {**_numbers(run, trials), "stderr": run["stderr"]}


def _numbers(run: dict, trials: list[dict]) -> dict:
    return {
        "wall": run["wall"],
        "rss_mb": run["rss_mb"],
        "load": run["load"],
        "overhead": overhead(trials),
        "fit": median([t["fit"] for t in trials[1:] or trials]),
    }


def measure(bench) -> dict:
    """Interleave K, O and F for each repetition; the medians and each repetition's figures."""
    p = plan(bench.settings.quick)
    runs: dict[str, list[dict]] = {key: [] for key in p["variants"]}
    for repetition in range(bench.settings.repeats):
        for key in p["variants"]:
            bench.say(f"sweep_tuner {key} ({VARIANTS[key]}), repetition {repetition + 1} ...")
            found = keras_tuner(bench, p) if key == "K" else orchestrator(bench, p, tracked=key == "O")
            found.pop("stderr", None)
            runs[key].append(found)
            bench.say(f"  {found['wall']:.1f} s wall, overhead {found['overhead']:.3f} s/trial")
    medians = {
        key: {name: median([r[name] for r in found]) for name in ("wall", "rss_mb", "overhead", "fit")}
        for key, found in runs.items()
    }
    return {"plan": p, "runs": runs, "medians": medians}


def summary_rows(results: dict) -> list[tuple]:
    medians = results["medians"]
    tuner = medians["K"]["overhead"]
    rows = []
    for key in ("O", "F"):
        if key in medians:
            ours = medians[key]["overhead"]
            figure = f"sweep_tuner: overhead per trial, {VARIANTS[key]} / KerasTuner"
            note = f"{ours:.3f} s against KerasTuner's {tuner:.3f} s"
            rows.append((figure, round(ours / tuner, 3), "< 1", ours < tuner, note))
    return rows


def section(results: dict) -> list[str]:
    p, medians = results["plan"], results["medians"]
    lines = [
        "## Sweeps: the orchestrator's Optuna sweeper against KerasTuner",
        "",
        f"The same random search, {p['trials']} trials of {p['epochs']} epoch(s) of {p['limit_batches']} "
        "batches (the guide's MLP on the bundled MNIST split; width 32/64/128 and a log-uniform learning "
        "rate), in a fresh process each, interleaved; medians of "
        f"{len(next(iter(results['runs'].values())))} repetition(s). Overhead per trial: what a trial costs "
        "beyond its `model.fit`, from the second trial's start to the last trial's end "
        "(KerasTuner: `on_trial_begin`/`on_trial_end` and the hypermodel's `fit`; the orchestrator: "
        "Optuna's trial start and completion times and the journal's fit-stage time).",
        "",
        "| variant | wall (s) | overhead per trial (s) | ratio to KerasTuner | fit per trial (s) "
        "| peak memory (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    tuner = medians["K"]["overhead"]
    for key, found in medians.items():
        lines.append(
            f"| {key}: {VARIANTS[key]} | {found['wall']:.1f} | {found['overhead']:.3f} | "
            f"{found['overhead'] / tuner:.2f} | {found['fit']:.3f} | {found['rss_mb']:.0f} |"
        )
    return [*lines, ""]
