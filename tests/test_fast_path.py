"""The opt-in fast path (``trainer=fast``: 64 training steps per call into TensorFlow) trains the same model.

Two real runs through the CLI, seeded (7) and with op determinism, on the
shipped MNIST split: the default trainer and ``trainer=fast``. Every per-epoch
and test metric must be equal: only the per-step overhead may change, never
what is trained. BENCHMARKS.md has what it saves.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.conftest import mlflow_client, run_cli

pytestmark = pytest.mark.slow

RUN = ["+experiment=mnist", "data.source=bundled", "seed=7", "deterministic=true", "trainer.verbose=0"]
METRICS = ("fit/loss", "fit/val_loss", "fit/sparse_categorical_accuracy", "test/loss")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The two runs, default and fast, in one store: ``(folder, {trainer: run})``."""
    folder = tmp_path_factory.mktemp("fast_path")
    for trainer in ("default", "fast"):
        done = run_cli(*RUN, f"trainer={trainer}", f"tracking.run_name={trainer}", cwd=folder)
        assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow_client(folder)
    found = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    return folder, {run.info.run_name: run for run in found}


def saved_compile_config(run) -> dict:
    """The compile config recorded in the run's saved ``model.keras`` (read from the file itself)."""
    path = Path(run.data.tags["orchestrator.output_dir"]) / "model.keras"
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))["compile_config"]


def test_the_fast_trainer_gives_the_same_losses_as_the_default(runs):
    folder, by_trainer = runs
    client = mlflow_client(folder)
    for name in METRICS:
        default, fast = (
            [(m.step, m.value) for m in client.get_metric_history(by_trainer[t].info.run_id, name)]
            for t in ("default", "fast")
        )
        assert default and fast == default, name


@pytest.mark.parametrize(("trainer", "steps"), [("default", 1), ("fast", 64)])
def test_steps_per_execution_reaches_model_compile(runs, trainer, steps):
    _, by_trainer = runs
    assert by_trainer[trainer].data.params["trainer.steps_per_execution"] == str(steps)
    assert saved_compile_config(by_trainer[trainer])["steps_per_execution"] == steps
