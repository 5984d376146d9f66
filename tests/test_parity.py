"""Parity: the orchestrator trains exactly what the Keras guide's plain script trains.

``tests/plain_keras_guide.py`` is the guide's end-to-end example ("Training &
evaluation with the built-in methods") written by hand in plain Keras, seeded
(7) and with op determinism, on Debian's full Fashion-MNIST. The same work through
the orchestrator is::

    python -m orchestrator +experiment=mnist data=fashion_mnist seed=7 deterministic=true

Both run as real subprocesses (at the same time, to save wall time); the
orchestrator's numbers are read back from its MLflow store. Every per-epoch
metric and every test metric must be *equal*: the same float32 values, turned into
Python floats. No tolerance: the orchestrator must add no random draws, no data
reordering and nothing else that changes the training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env, mlflow_client, only_run

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
PLAIN_SCRIPT = HERE / "plain_keras_guide.py"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CLI_ARGS = ["+experiment=mnist", "data=fashion_mnist", "seed=7", "deterministic=true"]
TIMEOUT = 600

#: MLflow metric name -> key in the plain script's ``history.history``.
EPOCH_METRICS = {
    "fit/loss": "loss",
    "fit/val_loss": "val_loss",
    "fit/sparse_categorical_accuracy": "sparse_categorical_accuracy",
    "fit/val_sparse_categorical_accuracy": "val_sparse_categorical_accuracy",
}
#: MLflow metric name -> key in the plain script's ``evaluate`` results.
TEST_METRICS = {
    "test/loss": "loss",
    "test/sparse_categorical_accuracy": "sparse_categorical_accuracy",
}


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen, what: str) -> str:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{stdout}\n{stderr}"
    return stdout


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """``(plain script's JSON, orchestrator's MLflow run, MlflowClient)``, each trained once."""
    if not all((FASHION_MNIST / name).exists() for name in IDX_FILES):
        pytest.skip(f"Debian's Fashion-MNIST is not installed in {FASHION_MNIST}")
    plain_dir = tmp_path_factory.mktemp("plain")
    cli_dir = tmp_path_factory.mktemp("orchestrator")
    plain = _start([str(PLAIN_SCRIPT), str(FASHION_MNIST)], plain_dir)
    cli = _start(["-m", "orchestrator", *CLI_ARGS], cli_dir)
    plain_out = _finish(plain, "the plain Keras script")
    _finish(cli, "the orchestrator")
    expected = json.loads(plain_out.strip().splitlines()[-1])
    return expected, only_run(cli_dir, "mnist"), mlflow_client(cli_dir)


def test_the_orchestrator_used_debians_fashion_mnist(both):
    _, run, _ = both
    assert run.data.tags["data_source"] == "debian"
    assert run.data.params["data.name"] == "fashion_mnist"
    assert run.data.params["seed"] == "7"
    assert run.data.params["deterministic"] == "True"


@pytest.mark.parametrize("metric", sorted(EPOCH_METRICS))
def test_every_epoch_metric_equals_the_plain_keras_history(both, metric):
    expected, run, client = both
    history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
    assert [m.step for m in history] == [0, 1], "one value per epoch, step = epoch from 0"
    assert [m.value for m in history] == expected["history"][EPOCH_METRICS[metric]]


@pytest.mark.parametrize("metric", sorted(TEST_METRICS))
def test_every_test_metric_equals_the_plain_keras_evaluate(both, metric):
    expected, run, _ = both
    assert run.data.metrics[metric] == expected["test"][TEST_METRICS[metric]]
