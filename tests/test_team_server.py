"""A team's MLflow server: PostgreSQL for runs, a folder for artifacts, a parallel sweep writing to both.

What ``docs/team-server.md`` tells a team to run, for real: Debian's
PostgreSQL in a tmp folder on a free port (``initdb`` refuses root, so as root
it runs as the ``postgres`` user that Debian's package creates), ``mlflow
server --backend-store-uri postgresql+psycopg2://... --artifacts-destination
<tmp>/artifacts``, and a 2-job joblib sweep with ``MLFLOW_TRACKING_URI`` set to
the server. Every run (the sweep's parent and both jobs), their metrics,
artifacts and MLflow models must arrive through the server, and nothing may
land in a local ``mlflow.db``.

Skipped, with the reason, when PostgreSQL or psycopg2 is not installed (CI
installs both: ``apt-get install postgresql``, ``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_env, free_port, mlflow_process, run_cli

pytestmark = pytest.mark.slow

#: How long a server may take to answer (MLflow migrates an empty database first: ~10 s on 2 cores).
SERVER_START_SECONDS = 120
SWEEP = [
    "-m",
    "+experiment=mnist",
    "seed=1,2",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "trainer.limit_batches=3",
    "trainer.epochs=1",
    "data.source=bundled",
    "tracking.review_in_sweeps=true",  # every job also logs its MLflow model and plots
]
JOB_ARTIFACTS = {
    "config/config.yaml",
    "model/model.keras",
    "checkpoints/epoch-001.keras",
    "plots/learning_curves.png",
    "plots/confusion_matrix.png",
    "predictions/predict.csv",
}


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` (skips when there is none)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin): apt-get install postgresql")
    return found[-1].parent


@contextlib.contextmanager
def postgres(folder: Path) -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1:<free port> with an empty database ``mlflow``; yields its URI.

    As root, the cluster belongs to the ``postgres`` user (``initdb`` refuses
    root) and lives in a folder of its own under the system tmp folder, which
    that user can reach (pytest's tmp folders are private to root).
    """
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed: pip install psycopg2-binary")
    binaries = postgres_bin()
    as_user: list[str] = []
    cluster = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(cluster)
            pytest.skip("running as root, and there is no 'postgres' user to own the database cluster")
        os.chown(cluster, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data, log = cluster / "data", cluster / "postgres.log"
    settings = f"-c listen_addresses=127.0.0.1 -p {port} -k {cluster} -c fsync=off -c full_page_writes=off"

    def pg(program: str, *args: str) -> None:
        command = [*as_user, str(binaries / program), *args]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    try:
        pg("initdb", "-D", str(data), "--auth=trust", "--username=postgres", "-E", "UTF8")
        pg("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", settings, "start")
        try:
            subprocess.run(
                [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as error:
        logged = log.read_text() if log.exists() else ""
        pytest.fail(f"PostgreSQL: `{' '.join(error.cmd)}` failed:\n{error.stdout}{error.stderr}{logged}")
    finally:
        if log.exists():  # kept beside the test's other logs
            shutil.copyfile(log, folder / "postgres.log")
        shutil.rmtree(cluster, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path, folder: Path) -> Iterator[str]:
    """``mlflow server`` on PostgreSQL with an artifacts folder; yields its address."""
    args = [
        "server",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",
    ]
    with mlflow_process(args, folder, "mlflow-server.log", SERVER_START_SECONDS) as address:
        yield address


def test_a_parallel_sweep_records_every_run_on_the_team_server(tmp_path):
    from mlflow.entities import LoggedModelStatus
    from mlflow.tracking import MlflowClient

    artifacts, workdir = tmp_path / "artifacts", tmp_path / "work"
    artifacts.mkdir()
    workdir.mkdir()
    with postgres(tmp_path) as database, mlflow_server(database, artifacts, tmp_path) as server:
        result = run_cli(*SWEEP, cwd=workdir, env=cli_env(MLFLOW_TRACKING_URI=server), timeout=400)
        assert result.returncode == 0, f"the sweep failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
        client = MlflowClient(tracking_uri=server)
        experiment = client.get_experiment_by_name("mnist")
        assert experiment is not None
        assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
        runs = client.search_runs([experiment.experiment_id])
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(runs) == 3 and len(children) == 2
        assert sorted(r.data.params["seed"] for r in children) == ["1", "2"]
        for run in [parent, *children]:
            assert run.info.status == "FINISHED", run.info
        for child in children:
            run_id = child.info.run_id
            for name in ("fit/loss", "fit/val_loss", "test/loss", "test/sparse_categorical_accuracy"):
                assert math.isfinite(child.data.metrics[name]), name
            assert [m.step for m in client.get_metric_history(run_id, "fit/loss")] == [0]
            listed = {a.path for folder in ("config", "model", "checkpoints", "plots", "predictions")
                      for a in client.list_artifacts(run_id, folder)}  # fmt: skip
            assert JOB_ARTIFACTS <= listed, JOB_ARTIFACTS - listed
            model = Path(client.download_artifacts(run_id, "model/model.keras", str(tmp_path)))
            assert model.read_bytes()[:2] == b"PK"  # a .keras file is a zip
            # ...and the bytes are in the server's artifact folder, not on the client side.
            assert (artifacts / experiment.experiment_id / run_id / "artifacts/model/model.keras").is_file()
        models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        assert sorted(m.source_run_id for m in models) == sorted(r.info.run_id for r in children)
        assert all(m.status == LoggedModelStatus.READY for m in models)
        summary = client.download_artifacts(parent.info.run_id, "sweep/sweep_summary.csv", str(tmp_path))
        assert all(r.info.run_id in Path(summary).read_text() for r in children)
        assert parent.data.tags["best_run_id"] in {r.info.run_id for r in children}
    assert not (workdir / "mlflow.db").exists(), "a job wrote to a local store instead of the server"
