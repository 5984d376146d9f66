"""A sweep's parent run says which job is best and why, for real.

One small Optuna sweep (Hydra's basic launcher, 3 seeded random trials over the
optimizer preset and its learning rate, 2 epochs of 2 batches on the bundled
MNIST split, ``tracking.register_model``) is shared by every test here; they
read its summary CSV, its Optuna files and the MLflow store, and count again
from the children's own metric histories and params. The last test opens the
parent run's page in the MLflow UI with headless Chromium.
"""

from __future__ import annotations

import csv
import getpass
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_image, metric_history, mlflow_client, mlflow_process, run_cli, store_uri

pytestmark = pytest.mark.slow

EXPERIMENT = "review"
REGISTERED = "sweep-champion"
OBJECTIVE = "fit/val_loss"
PRUNING = "fit/loss"
SEARCH = [
    "-m",
    "hydra/sweeper=orchestrator_optuna",
    "optimizer=choice(rmsprop,sgd)",
    "optimizer.learning_rate=tag(log, interval(1e-3, 1e-1))",
    "hydra.sweeper.n_trials=3",
    "hydra.sweeper.sampler.name=random",
    "hydra.sweeper.sampler.seed=1",  # sgd, rmsprop, sgd: a preset chosen per trial
    f"hydra.sweeper.pruning_metric={PRUNING}",
    "hydra.sweeper.study_name=review",
    "data.source=bundled",
    "trainer.verbose=0",
    "trainer.epochs=2",
    "trainer.limit_batches=2",
    "stages.test=null",
    "stages.predict=null",
    "tracking.log_checkpoints=false",
    f"tracking.experiment_name={EXPERIMENT}",
    f"tracking.register_model={REGISTERED}",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sweep_parent")


@pytest.fixture(scope="module")
def sweep(folder) -> subprocess.CompletedProcess:
    result = run_cli(*SEARCH, f"hydra.sweep.dir={folder / 'sweep'}", cwd=folder)
    assert result.returncode == 0, result.stderr[-5000:]
    return result


@pytest.fixture(scope="module")
def runs(sweep, folder):
    """``(client, parent, children by job number)``."""
    client = mlflow_client(folder)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    found = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = {int(r.data.tags["orchestrator.job"]): r for r in found if "mlflow.parentRunId" in r.data.tags}
    assert sorted(children) == [0, 1, 2]
    return client, parent, children


@pytest.fixture(scope="module")
def summary(runs, folder) -> list[dict[str, str]]:
    client, parent, _ = runs
    path = client.download_artifacts(parent.info.run_id, "sweep/sweep_summary.csv", str(folder))
    with open(path) as stream:
        return list(csv.DictReader(stream))


def best_of(history: list[tuple[int, float]]) -> tuple[float, int]:
    """The lowest value of a per-epoch history and its step (both metrics here are minimized)."""
    step, value = min(history, key=lambda item: item[1])
    return value, step


def test_every_child_has_the_best_epoch_of_the_objective_and_of_the_pruning_metric(runs, summary):
    client, _, children = runs
    for row in summary:
        run = children[int(row["job"])]
        assert row["run_id"] == run.info.run_id
        for metric in (OBJECTIVE, PRUNING):
            history = metric_history(client, run.info.run_id, metric)
            assert [step for step, _ in history] == [0, 1]
            value, epoch = best_of(history)
            assert float(row[f"best {metric}"]) == pytest.approx(value, rel=1e-9)
            assert int(row[f"best {metric} epoch"]) == epoch
            # ... and on the child run itself, at the step of that epoch, for MLflow's comparison
            logged = metric_history(client, run.info.run_id, f"best/{metric}")
            assert logged == [(epoch, pytest.approx(value))]
        # The objective the sweeper was told is the last epoch's, which need not be the best one.
        last = metric_history(client, run.info.run_id, OBJECTIVE)[-1][1]
        assert float(row["objective"]) == pytest.approx(last, rel=1e-9)


def test_the_summary_shows_only_the_settings_that_differ_across_every_childs_config(runs, summary):
    _, _, children = runs
    params = {number: run.data.params for number, run in children.items()}
    keys = set().union(*(p.keys() for p in params.values()))
    differing = {key for key in keys if len({p.get(key) for p in params.values()}) > 1}
    assert "optimizer.momentum" in differing  # only sgd has it: the preset chosen per trial set it
    columns = list(summary[0])
    shown = columns[columns.index("overrides") + 1 : columns.index("error")]
    assert set(shown) == differing
    for row in summary:
        child = params[int(row["job"])]
        assert {key: row[key] for key in shown} == {key: child.get(key, "") for key in shown}


def test_the_parent_keeps_the_study_its_importances_and_parallel_coordinates(runs, folder):
    client, parent, children = runs
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {
        "sweep/optuna_trials.json",
        "sweep/optuna-journal.log",
        "sweep/optuna_importances.json",
        "sweep/optuna_importances.png",
        "sweep/optuna_parallel_coordinate.png",
    } <= names
    get = lambda name: Path(client.download_artifacts(parent.info.run_id, f"sweep/{name}", str(folder)))  # noqa: E731
    trials = json.loads(get("optuna_trials.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    assert {t["user_attrs"]["mlflow.run_id"] for t in trials} == {r.info.run_id for r in children.values()}
    for trial in trials:
        run = children[trial["user_attrs"]["orchestrator.job"]]
        assert trial["value"] == pytest.approx(run.data.metrics["objective"])
        reported = dict(metric_history(client, run.info.run_id, PRUNING))
        assert {int(k): v for k, v in trial["intermediate_values"].items()} == pytest.approx(reported)
    importances = json.loads(get("optuna_importances.json").read_text())
    assert set(importances) == {"optimizer", "optimizer.learning_rate"}
    assert sum(importances.values()) == pytest.approx(1.0)
    assert_image(get("optuna_importances.png"))
    assert_image(get("optuna_parallel_coordinate.png"))


def test_the_best_childs_model_is_registered_with_the_alias_champion(runs):
    client, parent, children = runs
    objectives = {number: run.data.metrics["objective"] for number, run in children.items()}
    best = min(objectives, key=objectives.get)  # fit/val_loss, minimized
    assert parent.data.tags["best_run_id"] == children[best].info.run_id
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert version.run_id == children[best].info.run_id
    assert version.tags["orchestrator.job"] == str(best)
    assert len(client.search_model_versions(f"name='{REGISTERED}'")) == 1  # the jobs registered none
    model_id = version.source.removeprefix("models:/")
    assert client.get_logged_model(model_id).source_run_id == children[best].info.run_id
    assert parent.data.tags["champion"] == f"{REGISTERED} version {version.version}"


def test_the_parent_description_names_the_best_job_and_what_sets_it_apart(runs):
    _, parent, children = runs
    best = int(parent.data.tags["best_job"])
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith(f"**Best: job {best}** (run `{children[best].info.run_id}`): {OBJECTIVE} = ")
    assert f"* best epoch of {OBJECTIVE}: " in note and f"* best epoch of {PRUNING}: " in note
    rows = [line for line in note.splitlines() if line.startswith("| ") and not line.startswith("| job")]
    assert len(rows) == 3 and rows[0].startswith(f"| **{best}** |")


def test_the_parent_names_the_sweep_command_as_its_source_and_its_user(runs):
    _, parent, _ = runs
    command = parent.data.tags["mlflow.source.name"]
    assert command.startswith("python -m orchestrator -m ")
    assert " hydra/sweeper=orchestrator_optuna " in command
    assert "'optimizer=choice(rmsprop,sgd)'" in command and f"tracking.register_model={REGISTERED}" in command
    assert parent.data.tags["mlflow.user"] == getpass.getuser()


def test_a_dry_run_of_the_same_sweep_lists_the_trials_it_ran(sweep, folder, tmp_path):
    result = run_cli(*SEARCH, "dry_run=true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = [line.split()[2:-1] for line in result.stdout.splitlines() if line.startswith("  job ")]
    journal = [
        json.loads(line) for line in (folder / "sweep" / "orchestrator-jobs.jsonl").read_text().splitlines()
    ]
    ran = [[o for o in job["overrides"] if o.startswith("optimizer")] for job in journal]
    assert listed == ran


def test_the_mlflow_ui_shows_the_parent_with_its_children_and_report(runs, folder):
    from tests.test_mlflow_ui import CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS, SERVER_START_SECONDS, sync_api

    _, parent, children = runs
    url_path = f"/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
    args = ["ui", "--backend-store-uri", store_uri(folder), "--workers", "1"]
    with mlflow_process(args, folder, "mlflow-ui.log", SERVER_START_SECONDS) as address:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                open_run_page(page, address + url_path)
                best = parent.data.tags["best_job"]
                page.get_by_text(f"Best: job {best}", exact=True).first.wait_for()
                page.get_by_text("Child runs").first.wait_for()
                for child in children.values():
                    page.get_by_text(child.info.run_name[:20]).first.wait_for()
                page.screenshot(path=folder / "parent-overview.png", full_page=True)
                page.get_by_role("tab", name="Artifacts").click()
                page.get_by_text("sweep", exact=True).first.click()
                for name in ("sweep_summary.csv", "optuna_importances.png", "optuna_trials.json"):
                    page.get_by_text(name, exact=True).wait_for()
                page.get_by_text("optuna_parallel_coordinate.png", exact=True).click()
                preview = page.locator("img[src^='blob:']").first
                preview.wait_for()
                assert preview.evaluate("image => image.complete && image.naturalWidth") > 300
                page.screenshot(path=folder / "parent-artifacts.png")
            finally:
                browser.close()


def open_run_page(page, url: str) -> None:
    """Open a run's page in the UI's model-training mode, the assistant panel closed."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", level=2).first.wait_for()
    if page.get_by_role("button", name="Close").count():
        page.get_by_role("button", name="Close").first.click()
    if page.get_by_role("button", name="Model training").count():
        page.get_by_role("button", name="Model training").click()
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("heading", level=2).first.wait_for()
    assert re.search(r"/runs/[0-9a-f]{32}$", url)
