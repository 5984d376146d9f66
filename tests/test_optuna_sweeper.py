"""The Optuna sweeper (``hydra/sweeper=orchestrator_optuna``) and its pruning callback, for real.

Each CLI test runs ``python -m orchestrator -m +experiment=mnist +sweep=mnist_optuna``
on the bundled MNIST split with a few tiny trials, then reads the Optuna
journal, the sweep journal and the MLflow store the command wrote.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, fixture_env, heavy_modules_imported, mlflow_client, run_cli

#: Tiny, offline, quiet: trials here test plumbing, not learning.
SMOKE = [
    "data.source=bundled",
    "trainer.verbose=0",
    "tracking.log_checkpoints=false",
    "tracking.log_model=false",
    "stages.predict=null",
]
HIDDEN_UNITS = ("[32,32]", "[64,64]", "[128,128]", "[256,256]")
ACCURACY = "fit/val_sparse_categorical_accuracy"


def load_study(sweep_dir: Path, name: str):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "optuna-journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def sweep_runs(folder: Path):
    """``(parent run, {run id: child run})`` of the single sweep in the ``mnist`` experiment."""
    client = mlflow_client(folder)
    experiment = client.get_experiment_by_name("mnist")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.data.tags.get("mlflow.runName") for r in parents]
    parent = parents[0]
    children = {r.info.run_id: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert len(children) == len(runs) - 1
    return parent, children


@dataclass
class Parallel:
    """One asynchronous sweep, shared by the tests that read it: 3 trials on 2 joblib workers, one
    CPU core each; job 0 waits at its first batch until job 2 starts training."""

    folder: Path
    sweep_dir: Path
    seen: Path
    result: subprocess.CompletedProcess
    seconds: float


@pytest.fixture(scope="module")
def parallel(tmp_path_factory) -> Parallel:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPU cores")
    folder = tmp_path_factory.mktemp("parallel")
    sweep_dir, seen = folder / "sweep", folder / "seen"
    seen.mkdir()
    fifo = folder / "meet"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = run_cli(
        "-m",
        "+experiment=mnist",
        "+sweep=mnist_optuna",
        *SMOKE,
        "trainer.limit_batches=3",
        "trainer.epochs=2",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.sampler.name=random",
        "hydra.sweeper.sampler.seed=3",
        "hydra.sweeper.pruner.n_startup_trials=100",  # trials report every epoch, none is pruned
        "hydra.sweeper.study_name=search",
        "hydra.callbacks.orchestrator.devices=[cpu:0,cpu:1]",
        f"+callbacks.seen={{name: seen, folder: '{seen}', fifo: '{fifo}', wait_job: 0, meet_job: 2}}",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=folder,
        env=fixture_env(),
    )
    return Parallel(folder, sweep_dir, seen, result, time.monotonic() - started)


@pytest.mark.slow
def test_parallel_optuna_trials_are_child_runs_and_the_parent_names_the_best(parallel):
    workdir, sweep_dir, result = parallel.folder, parallel.sweep_dir, parallel.result
    assert result.returncode == 0, result.stderr[-4000:]

    study = load_study(sweep_dir, "search")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    parent, children = sweep_runs(workdir)
    assert len(children) == 3
    for trial in trials:
        rate = trial.distributions["optimizer.learning_rate"]
        assert (type(rate).__name__, rate.log, rate.low, rate.high) == ("FloatDistribution", True, 1e-4, 1e-1)
        assert 1e-4 <= trial.params["optimizer.learning_rate"] <= 1e-1
        assert trial.params["model.hidden_units"] in HIDDEN_UNITS
        assert trial.params["trainer.batch_size"] in (32, 64, 128)
        # Reported after every epoch from the joblib worker that ran the trial.
        assert sorted(trial.intermediate_values) == [0, 1]

        run = children[trial.user_attrs["mlflow.run_id"]]
        assert run.data.tags["optuna.trial"] == str(trial.number)
        assert run.data.tags["orchestrator.job"] == str(trial.user_attrs["orchestrator.job"])
        # What Optuna was told is what the job returned: the objective MLflow logged.
        assert trial.value == pytest.approx(run.data.metrics["objective"], abs=1e-12)
        params = run.data.params
        assert float(params["optimizer.learning_rate"]) == pytest.approx(
            trial.params["optimizer.learning_rate"]
        )
        assert params["trainer.batch_size"] == str(trial.params["trainer.batch_size"])
        width = json.loads(trial.params["model.hidden_units"])
        assert [int(params["model.hidden_units.0"]), int(params["model.hidden_units.1"])] == width
        assert trial.intermediate_values[1] == pytest.approx(run.data.metrics[ACCURACY], abs=1e-6)

    top = max(run.data.metrics["objective"] for run in children.values())
    assert study.best_value == pytest.approx(top)
    assert parent.data.metrics["best_objective"] == pytest.approx(top)
    best_run = children[parent.data.tags["best_run_id"]]
    assert best_run.data.metrics["objective"] == pytest.approx(top)
    assert parent.data.tags["best_job"] == best_run.data.tags["orchestrator.job"]
    assert json.loads((sweep_dir / "optuna-sweep.json").read_text())["trials"] == {
        str(t.user_attrs["orchestrator.job"]): t.number for t in trials
    }


@pytest.mark.slow
def test_a_worker_asks_for_a_new_trial_as_soon_as_its_own_ends(parallel):
    """Job 0 cannot end before job 2 has started training: a sweeper that waited for the batch of jobs
    0 and 1 to end before launching job 2 would never get there."""
    from orchestrator.sweep.journal import read_journal

    assert parallel.result.returncode == 0, parallel.result.stderr[-4000:]
    study = load_study(parallel.sweep_dir, "search")
    jobs = {t.user_attrs["orchestrator.job"]: t for t in study.get_trials()}
    assert sorted(jobs) == [0, 1, 2]
    # job 2 ran in the worker that job 1 left: the worker of job 0 was busy until job 2 started
    seen = {job: json.loads((parallel.seen / f"job-{job}.json").read_text()) for job in jobs}
    assert seen[2]["pid"] == seen[1]["pid"] != seen[0]["pid"]
    journal = {job["number"]: job for job in read_journal(parallel.sweep_dir)}
    assert journal[1]["ended_at"] <= journal[2]["started_at"] < journal[0]["ended_at"]
    assert jobs[2].datetime_start < jobs[0].datetime_complete  # asked for while trial 0 ran


@pytest.mark.slow
def test_each_parallel_worker_has_its_own_cpu_slot_and_each_run_records_it(parallel):
    assert parallel.result.returncode == 0, parallel.result.stderr[-4000:]
    _, children = sweep_runs(parallel.folder)
    slots = {}
    for run in children.values():
        job = run.data.tags["orchestrator.job"]
        seen = json.loads((parallel.seen / f"job-{job}.json").read_text())
        devices = run.data.tags["orchestrator.devices"]
        assert devices == f"cpu:{seen['affinity'][0]}" and len(seen["affinity"]) == 1, (devices, seen)
        assert seen["cuda"] == ""  # a CPU slot hides the GPUs
        slots.setdefault(seen["pid"], set()).add(devices)
    # one slot per worker process, a different one for each
    assert sorted(slots.values(), key=sorted) == [{"cpu:0"}, {"cpu:1"}]


@pytest.mark.slow
def test_the_closing_line_counts_the_seconds_the_sweep_ran(parallel):
    log = parallel.result.stdout + parallel.result.stderr
    seconds = float(re.search(r"Sweep \w+: 3 jobs, 0 failed or skipped, ([0-9.]+) s", log).group(1))
    assert 0 < seconds <= parallel.seconds


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trial_worse_than_the_median_is_pruned_and_tracked_as_pruned(workdir, backend):
    """Trial 0 learns (rate 3e-3); trial 1 cannot (rate 1e-9): the median rule must prune it at epoch 0,
    on every backend."""
    from orchestrator.sweep.journal import read_journal

    sweep_dir = workdir / "sweep"
    result = run_cli(
        "-m",
        "+experiment=mnist",
        "+sweep=mnist_optuna",
        f"backend={backend}",
        *SMOKE,
        "seed=0",
        "trainer.limit_batches=5",
        "trainer.epochs=3",
        "model.hidden_units=[64,64]",
        "trainer.batch_size=64",
        "optimizer.learning_rate=0.003,1e-9",  # a sweep on the command line: a categorical search
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.enqueue_trials=[{optimizer.learning_rate:0.003},{optimizer.learning_rate:1e-9}]",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "hydra.sweeper.study_name=prune",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    good, bad = load_study(sweep_dir, "prune").get_trials()
    assert (good.state.name, good.params) == ("COMPLETE", {"optimizer.learning_rate": 0.003})
    assert (bad.state.name, bad.params) == ("PRUNED", {"optimizer.learning_rate": 1e-9})
    assert sorted(good.intermediate_values) == [0, 1, 2]
    assert sorted(bad.intermediate_values) == [0]
    assert bad.intermediate_values[0] < good.intermediate_values[0]

    assert [(j["number"], j["status"]) for j in read_journal(sweep_dir)] == [(0, "FINISHED"), (1, "PRUNED")]

    parent, children = sweep_runs(workdir)
    client = mlflow_client(workdir)
    good_run, bad_run = children[good.user_attrs["mlflow.run_id"]], children[bad.user_attrs["mlflow.run_id"]]
    assert bad_run.data.tags["orchestrator.outcome"] == "PRUNED"
    assert "orchestrator.outcome" not in good_run.data.tags
    assert len(client.get_metric_history(good_run.info.run_id, ACCURACY)) == 3
    assert len(client.get_metric_history(bad_run.info.run_id, ACCURACY)) == 1  # fewer epochs than configured
    assert "objective" in bad_run.data.metrics  # the pruned run ended normally: evaluated and tracked
    assert parent.data.tags["best_run_id"] == good_run.info.run_id
    assert parent.data.metrics["jobs_pruned"] == 1
    assert "Optuna trial 1 pruned after epoch 0" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "overrides, words",
    [
        # The mnist preset's objective is test/sparse_categorical_accuracy: an evaluate stage's metric.
        (
            ["hydra/sweeper=orchestrator_optuna"],
            ["hydra.sweeper.pruning_metric", "pruning_metric=fit/val_sparse_categorical_accuracy"],
        ),
        (
            ["+sweep=mnist_optuna", "trainer.epochs=tag(log, range(1, 5))"],
            ["trainer.epochs: Optuna has no log scale"],
        ),
        (["+sweep=mnist_optuna", "hydra.sweeper.enqueue_trials=[{seed:1}]"], ["enqueue_trials", "seed"]),
        (["+sweep=mnist_optuna", "hydra.sweeper.sampler.name=cmaes"], ["sampler.name", "tpe, random"]),
    ],
)
def test_a_sweeper_mistake_is_one_message_before_any_run_is_opened(workdir, overrides, words):
    result = run_cli("-m", "+experiment=mnist", *overrides, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert all(word in result.stderr for word in words), result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "mlflow.db").exists()  # no parent run was opened


HEAVY = ("optuna", "tensorflow", "keras", "mlflow")


@pytest.mark.parametrize("flag", [["--help"], ["--cfg", "job"], ["--cfg", "hydra"]])
def test_start_up_paths_with_the_sweep_preset_import_no_optuna_or_tensorflow(workdir, flag):
    args = ["+experiment=mnist", "+sweep=mnist_optuna", *flag]
    imported, stdout = heavy_modules_imported(args, workdir, HEAVY)
    assert imported == []
    if flag == ["--cfg", "hydra"]:
        assert "_target_: hydra_plugins.orchestrator_optuna_sweeper.OrchestratorOptunaSweeper" in stdout
        assert "optimizer.learning_rate: tag(log, interval(1e-4, 1e-1))" in stdout


def test_search_space_syntax_maps_to_optuna_distributions():
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.orchestrator_optuna_sweeper import requested
    from hydra_plugins.orchestrator_optuna_sweeper._space import search_space

    overrides = OverridesParser.create().parse_overrides(
        [
            "optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))",
            "model.hidden_units=choice([32,32], [64,64])",
            "trainer.batch_size=range(16, 128, step=16)",
            "trainer.epochs=tag(log, int(interval(1, 8)))",
            "seed=1,2",
            "+experiment=mnist",
            "seed=7",  # a fixed value given later takes the key out of the search
        ]
    )
    space, fixed = search_space(overrides)
    assert fixed == ["+experiment=mnist", "seed=7"]
    assert space["optimizer.learning_rate"].distribution == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["trainer.batch_size"].distribution == IntDistribution(16, 112, step=16)  # stop is exclusive
    assert space["trainer.epochs"].distribution == IntDistribution(1, 8, log=True)
    units = space["model.hidden_units"]
    assert units.distribution == CategoricalDistribution(("[32,32]", "[64,64]"))
    assert units.override("[64,64]") == "model.hidden_units=[64,64]"
    assert units.optuna_value([32, 32]) == "[32,32]"
    assert space["optimizer.learning_rate"].override(0.00123) == "optimizer.learning_rate=0.00123"
    # hydra.sweeper.params first, then the command line; nested keys (+hydra.sweeper.params.a.b=...) joined
    assert requested({"trainer": {"epochs": "range(1, 3)"}}, ["seed=1"]) == [
        "trainer.epochs=range(1, 3)",
        "seed=1",
    ]


def test_hydra_finds_the_sweeper_by_its_own_plugin_scan():
    """Composing with Hydra's API (no orchestrator entry point) selects the sweeper and its preset."""
    from hydra import compose, initialize_config_dir

    from orchestrator.config import register_schema
    from tests.conftest import REPO

    register_schema()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["+experiment=mnist", "+sweep=mnist_optuna"],
            return_hydra_config=True,
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.orchestrator_optuna_sweeper.OrchestratorOptunaSweeper"
    assert (sweeper.pruner.name, sweeper.pruning_metric) == ("median", ACCURACY)
    assert cfg.objective.direction == "maximize"
