"""Review in MLflow, in a real browser: ``mlflow ui`` on the store of real runs, driven by Playwright.

One tiny run of ``+experiment=mnist`` (3 epochs of 20 batches, registered as a
model) in a fresh git checkout and, beside it, a one-job sweep with the review
on and a smaller validation split (other data); then ``mlflow ui --host
127.0.0.1`` on a free port over that folder's store, and Debian's Chromium
(headless, through Playwright) opens the address the run printed at its end.
The run's page must show its name, the logged (and registered) MLflow model,
who ran it, from which command, on which data, a chart per metric on the model
metrics tab and per system metric on the system metrics tab, and the ``model``
and ``plots`` artifacts, with the learning curves previewed. The experiment
opens on its training runs (not on GenAI traces), with each run's datasets and
their digests, its source and its model, the sweep's job included; the sweep's
parent run lists its job.

Screenshots go to the test's tmp folder; with ``UPDATE_SCREENSHOT=1`` the
artifacts view and the run list are also copied to ``docs/images/mlflow-run.png``
and ``docs/images/mlflow-runs.png`` (the README's).
Skipped, with the reason, when Chromium or Playwright is not installed (CI
installs both: ``apt-get install chromium``, ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.tracking.run_info import TRAINING_VIEW
from tests.conftest import (
    REPO,
    cli_env,
    mlflow_client,
    mlflow_process,
    run_cli,
    store_uri,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_NAME = "mnist-ui-review"
REGISTERED = "mnist-mlp-ui"
SCREENSHOT = REPO / "docs" / "images" / "mlflow-run.png"
RUNS_SCREENSHOT = REPO / "docs" / "images" / "mlflow-runs.png"
#: How long the UI server may take to answer (a cold start on 2 cores takes ~10 s).
SERVER_START_SECONDS = 90
#: The longest wait for one element of the page.
PAGE_TIMEOUT_MS = 30_000
#: How long a page waits for the UI's assistant panel, to close it (an older UI has none).
ASSISTANT_TIMEOUT_MS = 5_000

pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    pytest.skip(f"Chromium is not installed ({CHROMIUM}): apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed: pip install playwright"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow_ui")


@pytest.fixture(scope="module")
def commit(folder) -> str:
    """The folder is a git checkout with one commit, which the runs record."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], cwd=folder, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def results(folder, commit) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """One tiny, registered run and, at the same time, a one-job sweep on other data (its
    validation split smaller) with the review on: the store the UI shows. System metrics
    are sampled every second (MLflow's own setting)."""
    env = cli_env(MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1")
    single = [
        "+experiment=mnist",
        "data.source=bundled",
        "trainer.epochs=3",
        "trainer.limit_batches=20",
        f"tracking.run_name={RUN_NAME}",
        f"tracking.register_model={REGISTERED}",
    ]
    sweep = [
        "-m", "+experiment=mnist", "data.source=bundled", "trainer.epochs=1", "trainer.limit_batches=2",
        "trainer.verbose=0", "tracking.review_in_sweeps=true", "data.validation_size=1000",
    ]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(run_cli, *args, cwd=folder, env=env) for args in (single, sweep)]
        found = tuple(future.result() for future in done)
    for result in found:
        assert result.returncode == 0, f"the CLI failed:\n{result.stdout}\n{result.stderr[-5000:]}"
    return found


@pytest.fixture(scope="module")
def result(results) -> subprocess.CompletedProcess:
    return results[0]


@pytest.fixture(scope="module")
def runs(results, folder) -> dict:
    """The store's runs: ``run`` (the single one), ``parent`` and ``job`` (the sweep's)."""
    client = mlflow_client(folder)
    found = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    by_kind = {
        "run": [r for r in found if "orchestrator.sweep_id" not in r.data.tags],
        "parent": [r for r in found if "orchestrator.sweep_dir" in r.data.tags],
        "job": [r for r in found if "mlflow.parentRunId" in r.data.tags],
    }
    assert {kind: len(found) for kind, found in by_kind.items()} == {"run": 1, "parent": 1, "job": 1}
    return {kind: found[0] for kind, found in by_kind.items()}


@pytest.fixture(scope="module")
def run(runs):
    return runs["run"]


@pytest.fixture(scope="module")
def ui(result, folder):
    """The base address of ``mlflow ui`` serving the run's store."""
    args = ["ui", "--backend-store-uri", store_uri(folder), "--workers", "1"]
    with mlflow_process(args, folder, "mlflow-ui.log", SERVER_START_SECONDS) as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser, ui, result, run):
    """The run's page, at the address the run printed (port changed to the test server's)."""
    address = re.search(r"open (http://127\.0\.0\.1:5000/\S+)", result.stderr + result.stdout)
    assert address, f"the run printed no UI address:\n{result.stderr[-3000:]}"
    url = address[1].replace("http://127.0.0.1:5000", ui)
    assert url.endswith(f"/runs/{run.info.run_id}{TRAINING_VIEW}")
    page = open_page(browser, url)
    page.get_by_role("heading", level=2).first.wait_for()
    try:
        yield page
    finally:
        page.close()


def open_page(browser, url: str):
    """A new page at ``url``, with the UI's assistant panel closed."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading").first.wait_for()
    close = page.get_by_role("button", name="Close").first
    try:  # the UI's assistant panel opens a moment after the page
        close.wait_for(timeout=ASSISTANT_TIMEOUT_MS)
    except sync_api.TimeoutError:
        return page
    close.click()
    return page


@pytest.fixture(scope="module")
def experiment_page(browser, ui, run):
    """The experiment's page, as the run's printed address opens it (in the model-training view)."""
    page = open_page(browser, f"{ui}/#/experiments/{run.info.experiment_id}{TRAINING_VIEW}")
    try:
        yield page
    finally:
        page.close()


def test_the_run_ends_with_a_compact_summary(result, run):
    lines = (result.stderr + result.stdout).rstrip().splitlines()
    tail = "\n".join(lines[-3:])
    assert f"Run {RUN_NAME} finished in" in tail and "test/sparse_categorical_accuracy=" in tail
    assert f"MLflow run {run.info.run_id}: model models:/m-" in tail
    assert f"(registered as {REGISTERED} version 1)" in tail
    assert "plots/learning_curves.png, plots/confusion_matrix.png" in tail
    page = f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}{TRAINING_VIEW}"
    assert f"http://127.0.0.1:5000/{page}" in tail


def test_the_run_page_shows_the_run_and_its_registered_model(page, folder):
    assert page.get_by_role("heading", level=2).first.inner_text().strip() == RUN_NAME
    page.get_by_role("heading", name="Logged models (1)").wait_for()
    page.get_by_text(REGISTERED, exact=True).first.wait_for()
    page.screenshot(path=folder / "run-overview.png")


def test_the_model_metrics_tab_draws_a_chart_per_metric(page, folder):
    page.get_by_role("tab", name="Model metrics").click()
    for title in ("loss", "val_loss", "sparse_categorical_accuracy"):
        page.get_by_text(title, exact=True).first.wait_for()
    charts = page.locator(".js-plotly-plot")
    charts.first.wait_for()
    assert charts.count() >= 5  # fit: loss, accuracy, their val_ twins, learning_rate
    page.screenshot(path=folder / "run-metrics.png")


def test_the_artifacts_tab_lists_the_model_and_previews_the_plots(page, folder):
    page.get_by_role("tab", name="Artifacts").click()
    for name in ("model", "plots", "config", "checkpoints"):
        page.get_by_text(name, exact=True).first.wait_for()
    page.get_by_text("plots", exact=True).first.click()
    page.get_by_text("confusion_matrix.png", exact=True).wait_for()
    page.get_by_text("learning_curves.png", exact=True).click()
    page.get_by_text("plots/learning_curves.png").first.wait_for()
    preview = page.locator("img[src^='blob:']").first
    preview.wait_for()
    assert preview.evaluate("image => image.complete && image.naturalWidth") > 500
    shot = folder / "run-artifacts.png"
    page.wait_for_timeout(1000)  # let the tree finish re-rendering: the picture is the README's
    page.screenshot(path=shot, clip={"x": 0, "y": 0, "width": 1400, "height": 560})
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def digests(run) -> dict[str, str]:
    """The run's dataset inputs as the UI names them: ``{'train': 'mnist-train (1b2c...)', ...}``."""
    from orchestrator.tracking.datasets import read_inputs

    return {split: f"{found['name']} ({found['digest']})" for split, found in read_inputs(run).items()}


def test_the_experiment_opens_on_its_training_runs_not_on_traces(experiment_page):
    page = experiment_page
    page.get_by_role("heading", name="Runs").first.wait_for()
    for column in ("Dataset", "Source", "Models"):
        page.get_by_role("columnheader", name=column).first.wait_for()
    assert page.get_by_text("Token Usage").count() == 0 and page.get_by_text("Latency").count() == 0


def test_the_run_list_shows_each_runs_data_digest_source_and_model(experiment_page, runs, folder):
    from orchestrator.data_digest import split_digest
    from orchestrator_plugins.mnist import mnist

    page = experiment_page
    single, job = digests(runs["run"]), digests(runs["job"])
    assert single["train"] == f"mnist-train ({split_digest(mnist(source='bundled').train)})"
    assert single["train"] != job["train"] and single["test"] == job["test"]  # 1000 validation samples
    page.get_by_role("row").filter(has_text="sweep").locator("button[data-component-id*=runnamecell]").click()
    for text in (single["train"], job["train"]):
        page.get_by_text(text, exact=True).first.wait_for()
    page.get_by_text(runs["run"].data.tags["mlflow.source.name"], exact=True).wait_for()
    page.get_by_text("keras_model", exact=True).first.wait_for()  # the sweep job's model
    page.get_by_text(REGISTERED, exact=False).first.wait_for()  # the run's, under its registered name
    shot = folder / "experiment-runs.png"
    page.wait_for_timeout(1000)  # let the table finish re-rendering: the picture is the README's
    page.screenshot(path=shot, clip={"x": 0, "y": 0, "width": 1400, "height": 390})
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, RUNS_SCREENSHOT)


def test_the_run_page_says_who_ran_it_from_which_command_on_which_data(page, run, commit):
    page.get_by_role("tab", name="Overview").click()
    page.get_by_text("Created by", exact=True).wait_for()
    page.get_by_text(getpass.getuser(), exact=True).first.wait_for()
    command = "python -m orchestrator +experiment=mnist data.source=bundled trainer.epochs=3"
    assert run.data.tags["mlflow.source.name"].startswith(command)
    assert run.data.tags["mlflow.source.git.commit"] == commit
    page.get_by_text(command).first.wait_for()
    page.get_by_text(digests(run)["train"], exact=True).first.wait_for()


def test_the_system_metrics_tab_draws_a_chart_per_system_metric(page, run, folder):
    sampled = [key for key in run.data.metrics if key.startswith("system/")]
    assert (
        "system/cpu_utilization_percentage" in sampled and "system/system_memory_usage_megabytes" in sampled
    )
    page.get_by_role("tab", name="System metrics").click()
    page.get_by_text(f"({len(sampled)})", exact=True).first.wait_for()  # the section's chart count
    for title in ("cpu_utilization_percentage", "disk_available_megabytes"):  # the first row of charts
        page.get_by_text(title, exact=True).first.wait_for()
    charts = page.locator(".js-plotly-plot")
    charts.first.wait_for()
    assert charts.count() >= 2
    page.screenshot(path=folder / "run-system-metrics.png")


def test_the_sweeps_parent_run_lists_its_job(browser, ui, runs):
    parent, job = runs["parent"], runs["job"]
    page = open_page(
        browser, f"{ui}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}{TRAINING_VIEW}"
    )
    try:
        page.get_by_text("Child runs", exact=True).wait_for()
        page.get_by_text(job.info.run_name).first.wait_for()
    finally:
        page.close()
