"""What the tracker calls a run and what it tells the user: the URI, names, tags, end-of-run messages.

Example::

    run_name("mnist", ["+experiment=mnist", "seed=7"])      # 'mnist[seed=7]'
    tracking_uri(None)                                      # 'sqlite:////here/mlflow.db'
"""

from __future__ import annotations

import getpass
import logging
import os
import shlex
import subprocess
from importlib import metadata
from pathlib import Path

from orchestrator.tracking.client import RunLog

log = logging.getLogger("orchestrator.tracking")

#: The part of the end-of-run wait that passes without a word: most runs are delivered by then.
QUIET_WAIT = 2.0


def tracking_uri(configured: str | None) -> str:
    """``MLFLOW_TRACKING_URI``, else the configured URI, else ``mlflow.db`` in the current folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    return uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def run_name(experiment: str | None, overrides: list[str], job: int | None = None) -> str:
    """``mnist[seed=7,data=fashion_mnist]``, or ``mnist#3[...]`` for job 3 of a sweep."""
    shown = [o for o in overrides if not o.startswith("+experiment=")]
    base = (experiment or "run") + (f"#{job}" if job is not None else "")
    return (f"{base}[{','.join(shown)}]" if shown else base)[:250]


#: The MLflow UI's query that opens its model-training view (its GenAI view is the default).
TRAINING_VIEW = "?workflowType=machine_learning"


def review_hint(uri: str, experiment_id: str | None, run_id: str) -> str:
    """Where to open a run in the MLflow UI (and how to start the UI on a local store).

    The address opens the UI's model-training view: MLflow 3's UI opens its GenAI view
    unless the address (or the user's last choice) says otherwise.
    """
    page = f"#/experiments/{experiment_id}/runs/{run_id}{TRAINING_VIEW}" if experiment_id else ""
    if uri.startswith(("http://", "https://")):
        return f"Review: {uri.rstrip('/')}/{page}"
    command = "mlflow ui --host 127.0.0.1"
    if uri != tracking_uri(None) or "MLFLOW_TRACKING_URI" in os.environ:
        command += f" --backend-store-uri {uri}"
    return f"Review: `{command}` in {Path.cwd()}, then open http://127.0.0.1:5000/{page}"


def experiment_name(configured: str | None, preset: str | None) -> str:
    return configured or preset or "default"


def undelivered_message(run_log: RunLog, timeout: float) -> str:
    """What to tell the user when MLflow did not take a run's records before the end of the wait."""
    folder = run_log.spool.folder
    why = run_log.worker.problem or "no answer"
    return (
        f"MLflow at {run_log.worker.uri} did not take all of this run's records within {timeout:.0f} s "
        f"({why}): {run_log.pending} of them are kept in {folder}. Nothing is lost; deliver them when "
        f"MLflow is back with:\n    python -m orchestrator sync {folder.parent}"
    )


def version_tags() -> dict[str, str]:
    tags = {}
    for dist in ("tensorflow", "keras", "mlflow", "keras-orchestrator"):
        try:
            tags[f"version.{dist}"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return tags


def source_tags(overrides: list[str]) -> dict[str, str]:
    """What the MLflow UI shows as a run's Source and Created by: the command and the user.

    Example::

        source_tags(["+experiment=mnist", "seed=7"])
        # {'mlflow.source.name': 'python -m orchestrator +experiment=mnist seed=7',
        #  'mlflow.source.type': 'LOCAL', 'mlflow.user': 'ada'}
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    command = shlex.join(["python", "-m", "orchestrator", *overrides])
    return {"mlflow.source.name": command[:5000], "mlflow.source.type": "LOCAL", "mlflow.user": user}


def git_tags() -> dict[str, str]:
    """The commit of the git checkout the command ran in, if any (also as MLflow's own source tag)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git.commit": commit, "mlflow.source.git.commit": commit} if commit else {}


def wait_for_delivery(run_log: RunLog, timeout: float) -> bool:
    """Wait up to ``timeout`` s for MLflow to take every record of ``run_log``; whether it did.

    After ``QUIET_WAIT`` s a line says what the run still waits for, and how long it will wait.
    """
    if run_log.wait(timeout=min(timeout, QUIET_WAIT)):
        return True
    left = timeout - QUIET_WAIT
    if left <= 0 or not run_log.worker.alive:
        return False
    why = f": {run_log.worker.problem}" if run_log.worker.problem else ""
    log.info(
        "Waiting up to %.0f s for MLflow at %s to take this run's last %d records%s "
        "(tracking.delivery_timeout; what is left then is kept on disk).",
        left,
        run_log.worker.uri,
        run_log.pending,
        why,
    )
    return run_log.wait(timeout=left)


def disk_full_message(context, run_log: RunLog, status: str, ended: bool) -> str:
    """What to tell the user when the disk filled up under the run."""
    run = f"The MLflow run {run_log.run_id or '(not created yet)'}"
    record = f"{run} ends {status}" if ended else f"{run} stays RUNNING (its end could not be written)"
    return (
        f"the disk of {context.output_dir} is full (No space left on device). {record}; what the run wrote "
        f"before is kept, and MLflow gets it once there is space. Free some space, then run the same "
        f"command again to resume from the last checkpoint, or deliver what is kept with "
        f"`python -m orchestrator sync {context.output_dir}`."
    )
