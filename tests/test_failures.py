"""What goes wrong in training, and secrets: clear endings, nothing lost, nothing leaked."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from orchestrator.config import MASK, masked
from tests.conftest import mlflow_client, only_run, run_cli

TINY = ["data.source=bundled", "trainer.limit_batches=5", "trainer.verbose=0"]


@pytest.mark.slow
def test_a_diverging_loss_fails_the_run_and_keeps_the_last_good_checkpoint(workdir):
    result = run_cli(
        "+experiment=guide_fine_tuning",
        *TINY,
        "stages.fine_tune.optimizer={name:sgd,learning_rate:1.0e12}",
        cwd=workdir,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "stages.fine_tune: the training loss became" in result.stderr
    assert "epoch-001.keras" in result.stderr and "learning_rate" in result.stderr
    run = only_run(workdir, "guide_fine_tuning")
    assert run.info.status == "FAILED"
    client = mlflow_client(workdir)
    kept = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert kept == ["checkpoints/epoch-001.keras"], "no checkpoint of the diverged epoch"
    head = [m.value for m in client.get_metric_history(run.info.run_id, "head/loss")]
    assert head and all(math.isfinite(v) for v in head)

    import keras
    import numpy as np

    local = Path(run.data.tags["orchestrator.output_dir"]) / "checkpoints" / "epoch-001.keras"
    model = keras.saving.load_model(local)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_secret_values_are_masked_at_any_depth():
    cfg = {"db": {"password": "hunter2", "host": "x"}, "api_key": "k", "tokens": [{"token": "t"}], "n": None}
    assert masked(cfg) == {
        "db": {"password": MASK, "host": "x"},
        "api_key": MASK,
        "tokens": MASK,
        "n": None,
    }


@pytest.mark.slow
def test_secrets_never_reach_mlflow_params_tags_or_artifacts(workdir):
    result = run_cli(
        "+experiment=mnist",
        *TINY,
        "trainer.epochs=1",
        "+tracking.tags.api_token=abc123",
        "+tracking.db_password=hunter2",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run(workdir, "mnist")
    assert run.data.params["tracking.db_password"] == MASK
    assert run.data.params["tracking.tags.api_token"] == MASK
    assert run.data.tags["api_token"] == MASK
    config = mlflow_client(workdir).download_artifacts(run.info.run_id, "config/config.yaml", str(workdir))
    text = Path(config).read_text()
    assert "hunter2" not in text and "abc123" not in text and MASK in text
