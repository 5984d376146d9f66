"""``reproduce RUN_ID`` and ``compare RUN_ID ...`` through the CLI against a real MLflow store.

One seeded, deterministic two-job sweep over two tiny ``.npz`` files (module
fixture) is the record every test reads:

* its jobs compared by the parent's id and by their own ids, as text, CSV and
  JSON, each checked against what ``MlflowClient`` holds (and the best epoch
  recounted from the metric history), started at once with the bad input below
  (they only read the store);
* job 1 reproduced alone, from another folder, into a new run of the same
  experiment: identical, metric by metric; at the same time, job 0 reproduced
  after its data file changed: the data's digest and the results differ, exit 1,
  the metrics named;
* bad input: an unknown run, a run another tool made, a sweep's parent, a store
  that cannot be read, a missing data file under ``--strict``.

The digest assertions need the record's dataset inputs (issue 17, item 1: each
split logged as an MLflow dataset input with its digest); where they are
missing the test fails and says so.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import assert_user_error, cli_env, metric_history, parent_and_children, run_cli, store_uri

#: A re-run without the review's model and plots (sweep jobs have none either): what is compared is the same.
ENV = cli_env(ORCHESTRATOR_DISABLE_PLUGINS="mlflow_review")
#: Metrics that measure the machine, not the model, and the best epochs a sweep's parent adds to its jobs.
UNCOMPARED = ("time/", "system/", "best/")
UNKNOWN = "0123456789abcdef0123456789abcdef"
NEEDS_INPUTS = (
    "the run has no MLflow dataset inputs: the record does not log each split's digest yet "
    "(issue 17, item 1, the record's dataset inputs)"
)


def write_arrays(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype("float32")
    np.savez(path, x_train=x, y_train=(x[:, 0] + x[:, 1] > 0).astype("int64"))


def model_metrics(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if not k.startswith(UNCOMPARED)}


def digests_of(run) -> dict[str, str]:
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return {
        {t.key: t.value for t in item.tags}.get("mlflow.data.context"): item.dataset.digest for item in inputs
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A two-job sweep over the files a.npz and b.npz, seeded and deterministic, and its MLflow record."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("first")
    files = [folder / "a.npz", folder / "b.npz"]
    for seed, path in enumerate(files):
        write_arrays(path, seed)
    args = ["data=npz", "seed=1", "deterministic=true", "trainer.epochs=2", "trainer.limit_batches=2"]
    args += ["trainer.verbose=0", "tracking.log_checkpoints=false", f"data.path={files[0]},{files[1]}"]
    result = run_cli("-m", *args, cwd=folder, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=store_uri(folder))
    parents, children = parent_and_children(client, "default")
    assert len(parents) == 1 and len(children) == 2
    children.sort(key=lambda run: int(run.data.tags["orchestrator.job"]))
    return SimpleNamespace(
        folder=folder, uri=store_uri(folder), client=client, parent=parents[0], jobs=children
    )


def start(sweep, *args: str, cwd: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "orchestrator", *args, "--tracking-uri", sweep.uri]
    return subprocess.Popen(
        command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="module")
def answers(sweep, tmp_path_factory) -> SimpleNamespace:
    """Seven commands that only read the store, started at once from a folder of their own while b.npz
    (job 1's data) is away: compare in each format, and bad input."""
    folder = tmp_path_factory.mktemp("answers")
    other = sweep.client.create_run(sweep.jobs[0].info.experiment_id).info.run_id  # not the orchestrator's
    sweep.client.set_terminated(other)
    parent, (first, second) = sweep.parent.info.run_id, [run.info.run_id for run in sweep.jobs]
    commands = {
        "text": ["compare", parent],
        "csv": ["compare", first, second, "--format", "csv"],
        "json": ["compare", parent, "--format", "json"],
        "unknown": ["reproduce", UNKNOWN],
        "foreign": ["compare", first, other],
        "parent": ["reproduce", parent],
        "strict": ["reproduce", second, "--strict"],
    }
    data = sweep.folder / "b.npz"
    data.rename(folder / "b.npz")
    try:
        processes = {name: start(sweep, *args, cwd=folder) for name, args in commands.items()}
        results = {name: finished(process) for name, process in processes.items()}
    finally:
        (folder / "b.npz").rename(data)
    return SimpleNamespace(results=results, foreign=other, folder=folder, data=data)


# -- compare ---------------------------------------------------------------------------------------


def test_compare_by_the_sweep_parent_shows_the_config_key_and_the_metrics_that_differ(sweep, answers):
    result = answers.results["text"]
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    first, second = (run.info.run_id for run in sweep.jobs)
    assert first in text and second in text
    assert "config: 1 of" in text
    row = next(line.split() for line in text.splitlines() if line.strip().startswith("data.path"))
    assert row == ["data.path", str(sweep.folder / "a.npz"), str(sweep.folder / "b.npz")]
    assert "versions: the same" in text and "fit/loss" in text


def test_compare_as_csv_gives_mlflows_own_values(sweep, answers):
    first, second = sweep.jobs
    ids = [first.info.run_id, second.info.run_id]
    result = answers.results["csv"]
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["section", "key", *ids]
    table = {(section, key): values for section, key, *values in rows[1:]}
    assert [key for section, key in table if section == "config"] == ["data.path"]
    assert table["data", "data_source"] == [first.data.tags["data_source"], second.data.tags["data_source"]]
    one, two = model_metrics(first), model_metrics(second)
    differing = {name for name in one.keys() | two.keys() if one.get(name) != two.get(name)}
    finals = {key for section, key in table if section == "metrics" and "best epoch" not in key}
    assert finals == differing and "fit/loss" in differing
    for name in finals:
        assert [float(v) for v in table["metrics", name]] == [one[name], two[name]]


@pytest.fixture(scope="module")
def compared(answers) -> dict:
    """``compare PARENT --format json``, parsed."""
    result = answers.results["json"]
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_compare_as_json_gives_the_best_epoch_recounted_from_the_metric_history(sweep, compared):
    ids = [run.info.run_id for run in sweep.jobs]
    document = compared
    assert [run["run_id"] for run in document["runs"]] == ids
    assert [run["job"] for run in document["runs"]] == ["0", "1"]
    assert document["config"] == {
        "data.path": {run.info.run_id: run.data.params["data.path"] for run in sweep.jobs}
    }
    for run in sweep.jobs:
        history = metric_history(sweep.client, run.info.run_id, "fit/val_loss")
        assert len(history) == 2
        best = min(history, key=lambda point: point[1])[0]
        at_best = dict(metric_history(sweep.client, run.info.run_id, "fit/loss"))[best]
        assert document["metrics"]["fit/loss at best epoch"][run.info.run_id] == at_best
        for name, values in document["metrics"].items():
            if "best epoch" not in name:
                assert values[run.info.run_id] == run.data.metrics[name]
    assert document["versions"] == {} and document["commit"] == {}
    assert set(document["compared"]) == {"config", "metrics", "data", "versions", "commit"}


def test_compare_tells_the_two_data_files_apart_by_digest(sweep, compared):
    first, second = sweep.jobs
    assert digests_of(first) and digests_of(second), NEEDS_INPUTS
    assert compared["data"]["digest of train"] == {
        first.info.run_id: digests_of(first)["train"],
        second.info.run_id: digests_of(second)["train"],
    }


# -- reproduce ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reproduced(sweep, tmp_path_factory):
    """Side by side, from other folders knowing only run ids and the store: job 1 reproduced as it was, and
    job 0 reproduced after its data file a.npz was rewritten with other values of the same shapes."""
    write_arrays(sweep.folder / "a.npz", seed=7)
    same, changed = tmp_path_factory.mktemp("elsewhere"), tmp_path_factory.mktemp("later")
    processes = [
        start(sweep, "reproduce", sweep.jobs[1].info.run_id, cwd=same),
        start(sweep, "reproduce", sweep.jobs[0].info.run_id, cwd=changed),
    ]
    results = [finished(process) for process in processes]
    found = []
    for original in (sweep.jobs[1], sweep.jobs[0]):
        runs = sweep.client.search_runs(
            [original.info.experiment_id],
            filter_string=f"tags.`orchestrator.reproduces` = '{original.info.run_id}'",
        )
        found.append(runs)
    same_data = SimpleNamespace(result=results[0], original=sweep.jobs[1], runs=found[0], folder=same)
    other_data = SimpleNamespace(result=results[1], original=sweep.jobs[0], runs=found[1], folder=changed)
    return same_data, other_data


@pytest.mark.slow
def test_a_sweep_job_reproduced_alone_from_another_folder_is_identical(reproduced):
    same = reproduced[0]
    result, original = same.result, same.original
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Verdict: identical" in result.stdout
    assert len(same.runs) == 1
    new = same.runs[0]
    assert new.info.run_id != original.info.run_id and new.info.status == "FINISHED"
    assert new.info.experiment_id == original.info.experiment_id
    for tag in ("mlflow.parentRunId", "orchestrator.sweep_id", "orchestrator.job"):
        assert tag not in new.data.tags, tag  # a single run, not a job of the sweep
    assert Path(new.data.tags["orchestrator.output_dir"]).is_relative_to(same.folder)
    params, before = new.data.params, original.data.params
    changed = {key for key in params.keys() | before.keys() if params.get(key) != before.get(key)}
    assert changed == {"resume", "tracking.tags", "tracking.tags.orchestrator.reproduces"}
    assert (
        params["resume"] == "False"
        and params["tracking.tags.orchestrator.reproduces"] == original.info.run_id
    )
    assert model_metrics(new) == model_metrics(original) and len(model_metrics(new)) >= 6
    for name, value in model_metrics(original).items():
        row = next(line.split() for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert float(row[1]) == pytest.approx(value, rel=1e-5) and float(row[3]) == 0, row


@pytest.mark.slow
def test_after_a_change_to_the_data_file_the_results_differ_and_the_metrics_are_named(reproduced):
    other = reproduced[1]
    result = other.result
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(other.runs) == 1
    then, now = model_metrics(other.original), model_metrics(other.runs[0])
    differing = sorted(name for name in then if then[name] != now[name])
    assert "fit/loss" in differing
    verdict = next(line for line in result.stdout.splitlines() if line.startswith("Verdict:"))
    assert verdict.startswith("Verdict: differs")
    assert all(name in verdict for name in differing), verdict


@pytest.mark.slow
def test_reproduce_says_which_data_digest_changed_and_which_did_not(sweep, reproduced):
    from orchestrator.data_digest import split_digest
    from orchestrator_plugins import data_files

    same, other = reproduced
    recorded = digests_of(other.original)
    assert recorded and digests_of(same.original), NEEDS_INPUTS
    now = data_files.npz("data", path=str(sweep.folder / "a.npz"))
    line = next(line for line in other.result.stdout.splitlines() if "data digest of train" in line)
    assert recorded["train"] in line and split_digest(now.train) in line
    assert digests_of(other.runs[0])["train"] == split_digest(now.train) != recorded["train"]
    assert "The same as then" in same.result.stdout and "data digest" not in same.result.stdout
    assert digests_of(same.runs[0]) == digests_of(same.original)


# -- bad input ----------------------------------------------------------------------------------------


def test_reproduce_answers_an_unknown_run_id_in_one_message(sweep, answers):
    assert_user_error(answers.results["unknown"], f"run {UNKNOWN}", "no such run", sweep.uri)


def test_compare_refuses_a_run_another_tool_made(answers):
    assert_user_error(answers.results["foreign"], answers.foreign, "not recorded by the orchestrator")


def test_reproduce_refuses_a_sweeps_parent_run_and_points_to_its_jobs(answers):
    assert_user_error(answers.results["parent"], "parent run of sweep", "compare")


@pytest.mark.parametrize("store", ["missing", "not a database"])
def test_a_store_that_cannot_be_read_is_one_message_and_no_new_file(store, tmp_path):
    path = tmp_path / "mlflow.db"
    if store == "not a database":
        path.write_bytes(b"these are not the bytes of an SQLite file\n" * 10)
    for command in (["reproduce", "0123"], ["compare", "0123", "4567"]):
        result = run_cli(*command, "--tracking-uri", f"sqlite:///{path}", cwd=tmp_path, env=ENV)
        assert_user_error(result, "--tracking-uri", str(path))
    assert path.exists() == (store == "not a database")


def test_strict_refuses_when_the_data_file_is_gone_and_runs_nothing(answers):
    result = answers.results["strict"]
    assert_user_error(result, "--strict", "nothing was run")
    assert f"data.path: {answers.data} then, no such file or folder now" in result.stdout
    assert not (answers.folder / "outputs").exists()


# -- the verdict ------------------------------------------------------------------------------------


def record_with(metrics: dict[str, float]):
    from orchestrator.records.record import RunRecord

    return RunRecord("id", "run", "FINISHED", "1", "default", {}, {"orchestrator.overrides": ""}, metrics)


@pytest.mark.parametrize(
    ("new", "tolerance", "verdict", "matched"),
    [
        ({"fit/loss": 0.5, "test/loss": 0.25, "time/fit_seconds": 9.0}, 0.0, "identical (2 metrics)", True),
        ({"fit/loss": 0.5001, "test/loss": 0.25}, 1e-3, "within tolerance 0.001 (largest difference", True),
        (
            {"fit/loss": 0.5001, "test/loss": 0.25},
            1e-5,
            "differs, beyond a tolerance of 1e-05: fit/loss",
            False,
        ),
        ({"fit/loss": 0.5}, 1.0, "differs, beyond a tolerance of 1: test/loss", False),
    ],
)
def test_the_verdict_weighs_each_metric_against_the_tolerance_and_ignores_timings(
    new, tolerance, verdict, matched
):
    from orchestrator.records.reproduce import compare_metrics

    original = record_with({"fit/loss": 0.5, "test/loss": 0.25, "time/fit_seconds": 2.0})
    comparison = compare_metrics(original, record_with(new), tolerance)
    assert comparison.verdict.startswith(f"Verdict: {verdict}"), comparison.verdict
    assert comparison.matched is matched
    assert [row[0] for row in comparison.rows] == ["fit/loss", "test/loss"]


def test_compare_renders_runs_outside_a_sweep_and_what_their_records_lack():
    from orchestrator.records.compare import compare_runs, render_csv, render_text
    from orchestrator.records.record import RunRecord

    tags = {"orchestrator.overrides": "seed=1", "version.keras": "3.15.1"}
    first = RunRecord("a" * 32, "run", "FINISHED", "1", "default", {"seed": "1"}, tags, {"fit/loss": 0.5})
    again = RunRecord(
        "b" * 32,
        "run",
        "FINISHED",
        "1",
        "default",
        {"seed": "2"},
        {**tags, "orchestrator.reproduces": "a" * 32},
        {},
    )
    comparison = compare_runs(None, [first, again])
    text = render_text(comparison)
    assert f"{'b' * 32}  run (FINISHED, reproduces aaaaaaaa)" in text
    assert "versions: the same (keras 3.15.1)" in text
    assert "(no data digest recorded)" in text and "(no git commit recorded)" in text
    assert render_csv(comparison).splitlines()[1:] == ["config,seed,1,2", "metrics,fit/loss,0.5,"]
