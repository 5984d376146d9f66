"""One run's record, read back from MLflow into a plain object.

What the orchestrator records for each job (see :mod:`orchestrator.tracking.tracker`):
the flattened config as params, the resolved config and the overrides as
artifacts (``config/``), versions and git commit as tags, per-epoch metrics, the
data's digests as dataset inputs, and in a sweep the parent run and the job number.

Example::

    client = open_store("sqlite:///mlflow.db", "--tracking-uri")
    record = read_record(client, "23bb5d31f6064fe39d5cf29769d7df93")
    record.overrides, record.digests, record.versions
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from orchestrator.errors import UserError

#: The tag every run the orchestrator records carries (jobs and sweep parents).
OVERRIDES_TAG = "orchestrator.overrides"
#: The tag of a run made by ``reproduce``: the id of the run it re-ran.
REPRODUCES_TAG = "orchestrator.reproduces"
#: MLflow's tag of a dataset input saying which split it is.
CONTEXT_TAG = "mlflow.data.context"
#: Metrics never compared: those that measure the machine, and ``best/`` ones, which a sweep's
#: parent adds to its jobs when the sweep ends (a job re-run alone has none).
UNCOMPARED = ("time/", "system/", "best/")


@dataclass
class RunRecord:
    """What MLflow holds of one run of the orchestrator.

    Args:
        run_id, name, status, experiment_id, experiment: the run and its experiment.
        params: the flattened config, as MLflow keeps it (strings).
        tags: every tag of the run.
        metrics: the last value of each metric.
        overrides: the command's overrides (``config/overrides.yaml``).
        config: the resolved config (``config/config.yaml``), as plain Python values.
        digests: split -> content digest, from the run's dataset inputs (empty when none was recorded).
    """

    run_id: str
    name: str
    status: str
    experiment_id: str
    experiment: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    overrides: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def versions(self) -> dict[str, str]:
        """``{"keras": "3.15.1", ...}`` from the ``version.*`` tags."""
        return {k.removeprefix("version."): v for k, v in self.tags.items() if k.startswith("version.")}

    @property
    def commit(self) -> str | None:
        return self.tags.get("git.commit") or self.tags.get("mlflow.source.git.commit")

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def is_sweep_parent(self) -> bool:
        return "orchestrator.sweep_dir" in self.tags

    @property
    def compared_metrics(self) -> dict[str, float]:
        """The metrics of the model's results: the last value of each, less timings and system metrics."""
        return {k: v for k, v in sorted(self.metrics.items()) if not k.startswith(UNCOMPARED)}


def open_store(uri: str, key: str) -> Any:
    """An ``MlflowClient`` on an existing store; a :class:`UserError` naming ``key`` when it cannot be read.

    A SQLite file that does not exist is refused rather than created: a mistyped
    ``--tracking-uri`` should not leave an empty store behind.
    """
    from orchestrator.tracking.store import sqlite_path
    from orchestrator.tracking.target import check_target

    check_target(uri, key)
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        raise UserError(
            key,
            f"no MLflow store at {database} (no such file). Give the store the run was recorded in "
            "(--tracking-uri sqlite:////path/mlflow.db or http://server:5000), or run from the folder "
            "that holds its mlflow.db.",
        )
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as error:
        raise UserError(key, f"the MLflow store at {uri} cannot be read: {_first_line(error)}") from None
    return client


def read_record(client: Any, run_id: str) -> RunRecord:
    """The record of ``run_id``; a :class:`UserError` when there is no such run or another tool made it."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise UserError(
            f"run {run_id}",
            f"no such run in the MLflow store at {client.tracking_uri} ({_first_line(error)}). "
            "Give its store with --tracking-uri; the run ids are on the MLflow UI's run pages.",
        ) from None
    tags = dict(run.data.tags)
    if OVERRIDES_TAG not in tags:
        raise UserError(
            f"run {run_id}",
            f"was not recorded by the orchestrator (it has no {OVERRIDES_TAG} tag), so there is no "
            "config to read back from it.",
        )
    experiment = client.get_experiment(run.info.experiment_id)
    record = RunRecord(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        experiment_id=run.info.experiment_id,
        experiment=experiment.name,
        params=dict(run.data.params),
        tags=tags,
        metrics=dict(run.data.metrics),
        digests=_digests(run),
    )
    if not record.is_sweep_parent:
        record.config, record.overrides = _config(client, record)
    return record


def sweep_children(client: Any, parent: RunRecord) -> list[RunRecord]:
    """The job runs of the sweep whose parent run is ``parent``, in job order."""
    runs = client.search_runs(
        [parent.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'", max_results=5000
    )
    records = [read_record(client, run.info.run_id) for run in runs]
    return sorted(records, key=lambda r: int(r.tags.get("orchestrator.job", "0")))


def metric_history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """Every ``(step, value)`` of ``key`` in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _digests(run: Any) -> dict[str, str]:
    """Split -> digest of its content; a dataset object's input (its profile says ``"digest_of": "config"``)
    has a digest of the data config instead, which the params already hold, so it is left out."""
    digests = {}
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        context = {tag.key: tag.value for tag in dataset_input.tags}.get(CONTEXT_TAG)
        dataset = dataset_input.dataset
        if context and dataset.digest and _profile(dataset.profile).get("digest_of", "content") == "content":
            digests[context] = dataset.digest
    return digests


def _profile(text: str | None) -> dict[str, Any]:
    try:
        profile = json.loads(text or "{}")
    except ValueError:
        return {}
    return profile if isinstance(profile, dict) else {}


def _config(client: Any, record: RunRecord) -> tuple[dict[str, Any], list[str]]:
    """The resolved config and the overrides from the run's ``config/`` artifacts."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = Path(client.download_artifacts(record.run_id, "config", folder))
            config = OmegaConf.to_container(OmegaConf.load(local / "config.yaml"))
            overrides = OmegaConf.to_container(OmegaConf.load(local / "overrides.yaml"))
        except Exception as error:
            raise UserError(
                f"run {record.run_id}",
                f"its config artifacts (config/config.yaml, config/overrides.yaml) cannot be read: "
                f"{_first_line(error)}",
            ) from None
    if not isinstance(config, dict) or not isinstance(overrides, list | None):
        raise UserError(
            f"run {record.run_id}", "its config artifacts are not a mapping and a list of overrides."
        )
    return {str(key): value for key, value in config.items()}, [str(o) for o in overrides or []]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
