"""Review in MLflow, in a real browser: ``mlflow ui`` on the store of a real run, driven by Playwright.

One tiny run of ``+experiment=mnist`` (3 epochs of 20 batches, registered as a
model) in a fresh folder; then ``mlflow ui --host 127.0.0.1`` on a free port
over that folder's store, and Debian's Chromium (headless, through Playwright)
opens the address the run printed at its end. The page must show the run's
name, the logged (and registered) MLflow model, a chart per metric on the
model metrics tab, and the ``model`` and ``plots`` artifacts, with the learning
curves previewed.

Screenshots go to the test's tmp folder; with ``UPDATE_SCREENSHOT=1`` the
artifacts view is also copied to ``docs/images/mlflow-run.png`` (the README's).
Skipped, with the reason, when Chromium or Playwright is not installed (CI
installs both: ``apt-get install chromium``, ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
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
#: How long the UI server may take to answer (a cold start on 2 cores takes ~10 s).
SERVER_START_SECONDS = 90
#: The longest wait for one element of the page.
PAGE_TIMEOUT_MS = 30_000

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
def result(folder) -> subprocess.CompletedProcess:
    """One tiny, registered run whose store the UI shows."""
    result = run_cli(
        "+experiment=mnist",
        "data.source=bundled",
        "trainer.epochs=3",
        "trainer.limit_batches=20",
        f"tracking.run_name={RUN_NAME}",
        f"tracking.register_model={REGISTERED}",
        cwd=folder,
    )
    assert result.returncode == 0, f"the CLI failed:\n{result.stdout}\n{result.stderr[-5000:]}"
    return result


@pytest.fixture(scope="module")
def run(result, folder):
    client = mlflow_client(folder)
    (found,) = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    return found


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
    assert url.endswith(f"/runs/{run.info.run_id}")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", level=2).first.wait_for()
    # The UI opens in its GenAI mode with an assistant panel: switch to model training, close the panel.
    if page.get_by_role("button", name="Close").count():
        page.get_by_role("button", name="Close").first.click()
    if page.get_by_role("button", name="Model training").count():
        page.get_by_role("button", name="Model training").click()
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("heading", level=2).first.wait_for()
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
    assert f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in tail


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
