"""The opt-in fast path (``trainer=fast``: 64 training steps per call into TensorFlow) trains the same model.

Two real runs through the CLI, seeded (7) and with op determinism, on the
shipped MNIST split: the default trainer and ``trainer=fast``. Every per-epoch
and test metric must be equal: only the per-step overhead may change, never
what is trained. BENCHMARKS.md has what it saves.
"""

from __future__ import annotations

import pytest

from tests.conftest import mlflow_client, run_cli

pytestmark = pytest.mark.slow

RUN = ["+experiment=mnist", "data.source=bundled", "seed=7", "deterministic=true", "trainer.verbose=0"]
METRICS = ("fit/loss", "fit/val_loss", "fit/sparse_categorical_accuracy", "test/loss")


def test_the_fast_trainer_gives_the_same_losses_as_the_default(workdir):
    for trainer in ("default", "fast"):
        done = run_cli(*RUN, f"trainer={trainer}", f"tracking.run_name={trainer}", cwd=workdir)
        assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    by_trainer = {run.info.run_name: run for run in runs}
    assert by_trainer["fast"].data.params["trainer.steps_per_execution"] == "64"
    assert by_trainer["default"].data.params["trainer.steps_per_execution"] == "1"
    for name in METRICS:
        default, fast = (
            [(m.step, m.value) for m in client.get_metric_history(by_trainer[t].info.run_id, name)]
            for t in ("default", "fast")
        )
        assert default and fast == default, name
