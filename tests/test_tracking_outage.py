"""When the tracking server goes away: training goes on, and nothing the run logged is lost.

A real ``mlflow server`` on 127.0.0.1 (SQLite behind it, an artifacts folder), a
real run of the CLI with ``MLFLOW_TRACKING_URI`` pointing at it, and the server
stopped once the run exists, before training starts, so that every epoch is
logged while it is down. Then either:

* the server comes back while the run still waits at its end: the run's
  tracking worker delivers everything, and no spool is left; or
* it stays away past ``tracking.delivery_timeout``: the run ends anyway, says
  what is kept where and names ``python -m orchestrator sync``, which delivers it
  once the server is back; or
* the training process is killed: what it had written to its spool is
  delivered by ``python -m orchestrator sync``, and the run stays ``RUNNING``.

Everything is read back through the server with ``MlflowClient``: every epoch's
metrics exactly once, with step = epoch, the test metrics, the checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_env, free_port, mlflow_process, run_cli

pytestmark = pytest.mark.slow

EPOCHS = 4
RUN = [
    "+experiment=mnist",
    "data.source=bundled",
    f"trainer.epochs={EPOCHS}",
    "trainer.verbose=0",
    "tracking.log_model=false",
    "+callbacks.csv={name: csv_logger}",  # the run's own record of each epoch: history.csv
]
PER_EPOCH = ("fit/loss", "fit/val_loss", "fit/sparse_categorical_accuracy", "fit/learning_rate")


class Server:
    """``mlflow server`` on one fixed port, stopped and started again by the test."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.args = [
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ]
        self.stack: contextlib.ExitStack | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(mlflow_process(self.args, self.folder, "mlflow-server.log", port=self.port))

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.close()
            self.stack = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Cli:
    """The CLI in the background, its output collected line by line."""

    def __init__(self, args: list[str], cwd: Path, uri: str):
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=cwd,
            env=cli_env(MLFLOW_TRACKING_URI=uri),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.process.poll() is not None and not re.search(pattern, self.output):
                pytest.fail(f"the run ended without {pattern!r}:\n{self.output[-4000:]}")
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} within {timeout} s:\n{self.output[-4000:]}")

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=60)  # the reader ends at the end of the output
        assert not self.reader.is_alive(), "something the run started still holds its output open"
        return code


def epochs_spooled(spool: Path) -> int:
    """How many epochs' metrics the run has written to its spool so far."""
    records = spool / "records.jsonl"
    text = records.read_text() if records.exists() else ""
    return len(re.findall(r'"op": "metrics", "items": \[\["fit/loss"', text))


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_run_then_stop_the_server(server: Server, cwd: Path, *extra: str) -> tuple[Cli, str, Path]:
    """Start the CLI; once its MLflow run exists, stop the server. Returns the CLI, run id, output folder."""
    cli = Cli([*RUN, *extra], cwd, server.uri)
    run_id = cli.wait_for(r"MLflow run ([0-9a-f]{32}) in experiment").group(1)
    server.stop()
    outputs = list((cwd / "outputs").glob("*/*"))
    assert len(outputs) == 1, outputs
    return cli, run_id, outputs[0]


def history_csv(output_dir: Path) -> list[dict[str, str]]:
    """The epochs the run's own Keras ``CSVLogger`` wrote (``history.csv`` in its output folder)."""
    with open(output_dir / "history.csv", newline="") as rows:
        return list(csv.DictReader(rows))


def assert_metrics_are_what_the_run_logged(client, run_id: str, rows: list[dict[str, str]]) -> None:
    """Every epoch in ``rows`` has the same values in MLflow as in the run's own ``history.csv``."""
    columns = [column for column in rows[0] if column != "epoch"]
    assert {"loss", "val_loss", "sparse_categorical_accuracy"} <= set(columns), columns
    for column in columns:
        logged = {metric.step: metric.value for metric in client.get_metric_history(run_id, f"fit/{column}")}
        assert {step: logged[step] for step in range(len(rows))} == {
            int(row["epoch"]): float(row[column]) for row in rows
        }, column


def assert_everything_arrived(uri: str, run_id: str, output_dir: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for name in PER_EPOCH:
        steps = [metric.step for metric in client.get_metric_history(run_id, name)]
        assert steps == list(range(EPOCHS)), (name, steps)
    rows = history_csv(output_dir)
    assert len(rows) == EPOCHS
    assert_metrics_are_what_the_run_logged(client, run_id, rows)
    assert {"test/loss", "test/sparse_categorical_accuracy", "objective"} <= set(run.data.metrics)
    assert run.data.params["trainer.epochs"] == str(EPOCHS)
    checkpoints = {artifact.path for artifact in client.list_artifacts(run_id, "checkpoints")}
    assert checkpoints == {f"checkpoints/epoch-{epoch:03d}.keras" for epoch in range(1, EPOCHS + 1)}
    client.search_runs([run.info.experiment_id])  # one run only: nothing was created twice
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_run_keeps_training_while_the_server_is_down_and_delivers_when_it_is_back(server, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    cli, run_id, output_dir = start_run_then_stop_the_server(server, workdir)
    wait_until(lambda: epochs_spooled(output_dir / "mlflow-spool") >= 2, 240, "two epochs logged while down")
    assert "does not answer" in cli.output  # the outage is reported, and training went on meanwhile
    server.start()
    assert cli.finish() == 0, cli.output[-4000:]
    assert "answers again" in cli.output
    assert not (output_dir / "mlflow-spool").exists()  # everything delivered
    assert_everything_arrived(server.uri, run_id, output_dir)


def test_a_run_that_outlasts_the_outage_wait_is_delivered_later_by_sync(server, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    cli, run_id, output_dir = start_run_then_stop_the_server(server, workdir, "tracking.delivery_timeout=2")
    assert cli.finish() == 0, cli.output[-4000:]
    spool = output_dir / "mlflow-spool"
    assert f"python -m orchestrator sync {output_dir}" in cli.output
    assert epochs_spooled(spool) == EPOCHS

    server.start()
    synced = run_cli("sync", str(workdir), cwd=workdir, env=cli_env())
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert f"to run {run_id}" in synced.stdout and "the run is complete" in synced.stdout
    assert not spool.exists()
    assert_everything_arrived(server.uri, run_id, output_dir)

    again = run_cli("sync", str(workdir), cwd=workdir, env=cli_env())
    assert again.returncode == 0 and "Nothing to deliver" in again.stdout


def test_what_a_killed_run_logged_while_the_server_was_down_is_delivered_by_sync(server, tmp_path):
    from mlflow.tracking import MlflowClient

    workdir = tmp_path / "work"
    workdir.mkdir()
    cli, run_id, output_dir = start_run_then_stop_the_server(server, workdir)
    spool = output_dir / "mlflow-spool"
    wait_until(lambda: epochs_spooled(spool) >= 2, 240, "two epochs logged while down")
    cli.process.kill()  # no chance to clean up: only what is on disk survives
    cli.finish()
    kept = epochs_spooled(spool)

    server.start()
    synced = run_cli("sync", str(output_dir), cwd=workdir, env=cli_env())
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "the run has not ended" in synced.stdout
    client = MlflowClient(tracking_uri=server.uri)
    steps = [metric.step for metric in client.get_metric_history(run_id, "fit/loss")]
    assert steps == list(range(kept))
    rows = history_csv(output_dir)[:kept]  # the CSV may have one epoch more or less than the spool
    assert rows, "the run's history.csv has no epoch"
    assert_metrics_are_what_the_run_logged(client, run_id, rows)
    assert client.get_run(run_id).info.status == "RUNNING"
