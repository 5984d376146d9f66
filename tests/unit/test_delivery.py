"""Delivery: a spool's records become MLflow calls on a real SQLite store, in batches, safe to repeat."""

from __future__ import annotations

import importlib.util
import socket
import uuid
from collections.abc import Iterator

import pytest

from orchestrator.tracking.delivery import MOVED, Delivery, Outage
from orchestrator.tracking.spool import FOLDER, Spool

T0 = 1_700_000_000_000


class Recording:
    """The real client, with every call it passes on noted (name, args, kwargs)."""

    def __init__(self, client, fail_after: dict[str, BaseException] | None = None):
        self.client = client
        self.calls: list[tuple[str, tuple, dict]] = []
        self.fail_after = dict(fail_after or {})

    def __getattr__(self, name):
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            result = attribute(*args, **kwargs)
            if name in self.fail_after:  # the call reached the store; its answer is lost
                raise self.fail_after.pop(name)
            return result

        return call

    def named(self, name: str) -> list[tuple[tuple, dict]]:
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


def start(spool: Spool, experiment: str, run_id: str | None = None) -> None:
    spool.append(
        {
            "op": "start_run",
            "experiment": experiment,
            "tags": {"mlflow.runName": "unit"},
            "run_id": run_id,
            "run_key": uuid.uuid4().hex,
            "time": T0,
        }
    )


def params(**values) -> dict:
    return {"op": "params", "items": [[key, str(value)] for key, value in values.items()]}


def metrics(step: int, **values) -> dict:
    return {"op": "metrics", "items": [[key, value, T0 + step, step] for key, value in values.items()]}


def tags(**values) -> dict:
    return {"op": "tags", "items": [[key, str(value)] for key, value in values.items()]}


def end(status: str = "FINISHED") -> dict:
    return {"op": "end", "status": status, "time": T0 + 1000}


@pytest.fixture
def spool(tmp_path) -> Iterator[Spool]:
    spool = Spool(tmp_path / FOLDER)
    yield spool
    spool.close()


def a_run(spool: Spool, experiment: str) -> None:
    start(spool, experiment)
    spool.append(params(lr=0.01, batch_size=32))
    spool.append(metrics(0, **{"fit/loss": 0.5}))
    spool.append(metrics(1, **{"fit/loss": 0.25}))
    spool.append(tags(data_source="keras"))
    spool.append(end())


def only_run(client, experiment: str):
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, f"{len(runs)} runs"
    return runs[0]


def snapshot(client, experiment: str) -> dict:
    """Everything the store holds of the experiment's runs."""
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {
        run.info.run_id: {
            "status": run.info.status,
            "start": run.info.start_time,
            "end": run.info.end_time,
            "params": run.data.params,
            "tags": {k: v for k, v in run.data.tags.items()},
            "metrics": {
                key: [(m.value, m.step, m.timestamp) for m in client.get_metric_history(run.info.run_id, key)]
                for key in run.data.metrics
            },
        }
        for run in found
    }


def test_a_spool_becomes_one_run_with_its_params_metrics_tags_and_end(mlflow_client, experiment, spool):
    a_run(spool, experiment)

    delivery = Delivery(spool, mlflow_client)
    assert delivery.deliver() == 6

    run = only_run(mlflow_client, experiment)
    assert run.data.params == {"lr": "0.01", "batch_size": "32"}
    history = mlflow_client.get_metric_history(run.info.run_id, "fit/loss")
    assert [(m.value, m.step, m.timestamp) for m in history] == [(0.5, 0, T0), (0.25, 1, T0 + 1)]
    assert run.data.tags["data_source"] == "keras"
    assert run.info.run_name == "unit"
    assert (run.info.status, run.info.start_time, run.info.end_time) == ("FINISHED", T0, T0 + 1000)
    assert delivery.finished
    assert spool.state()["delivered"] == 6
    assert spool.state()["run_id"] == run.info.run_id


def test_consecutive_params_metrics_and_tags_go_in_one_log_batch(mlflow_client, experiment, spool):
    start(spool, experiment)
    spool.append(params(a=1, b=2))
    spool.append(metrics(0, x=1.0, y=2.0, z=3.0))
    spool.append(tags(t="v"))
    client = Recording(mlflow_client)

    Delivery(spool, client).deliver()

    [(args, kwargs)] = client.named("log_batch")
    assert (len(kwargs["params"]), len(kwargs["metrics"]), len(kwargs["tags"])) == (2, 3, 1)


def test_another_kind_of_record_ends_a_batch(mlflow_client, experiment, spool, tmp_path):
    start(spool, experiment)
    spool.append(params(a=1))
    (tmp_path / "config.yaml").write_text("a: 1\n")
    spool.append({"op": "artifact", "path": str(tmp_path / "config.yaml"), "artifact_path": None})
    spool.append(params(b=2))
    client = Recording(mlflow_client)

    Delivery(spool, client).deliver()

    assert [[p.key for p in kwargs["params"]] for _, kwargs in client.named("log_batch")] == [["a"], ["b"]]
    run = only_run(mlflow_client, experiment)
    assert [f.path for f in mlflow_client.list_artifacts(run.info.run_id)] == ["config.yaml"]


def test_a_batch_holds_at_most_100_params(mlflow_client, experiment, spool):
    start(spool, experiment)
    for record in range(3):
        spool.append(params(**{f"p{record}_{i}": i for i in range(40)}))
    client = Recording(mlflow_client)

    Delivery(spool, client).deliver()

    assert [len(kwargs["params"]) for _, kwargs in client.named("log_batch")] == [80, 40]
    assert len(only_run(mlflow_client, experiment).data.params) == 120


def test_a_batch_holds_at_most_1000_entities(mlflow_client, experiment, spool):
    start(spool, experiment)
    spool.append(params(**{f"p{i}": i for i in range(100)}))
    spool.append(tags(**{f"t{i}": i for i in range(100)}))
    spool.append(metrics(0, **{f"m{i}": float(i) for i in range(900)}))
    client = Recording(mlflow_client)

    Delivery(spool, client).deliver()

    sizes = [(len(k["params"]), len(k["tags"]), len(k["metrics"])) for _, k in client.named("log_batch")]
    assert sizes == [(100, 100, 0), (0, 0, 900)]


def test_delivering_the_same_spool_again_changes_nothing_in_the_store(mlflow_client, experiment, spool):
    a_run(spool, experiment)
    Delivery(spool, mlflow_client).deliver()
    before = snapshot(mlflow_client, experiment)
    spool.save_state({**spool.state(), "delivered": 0})  # as if no delivery had been confirmed

    assert Delivery(spool, mlflow_client).deliver() == 6

    assert snapshot(mlflow_client, experiment) == before


def test_a_delivered_spool_has_nothing_left_to_deliver(mlflow_client, experiment, spool):
    a_run(spool, experiment)
    Delivery(spool, mlflow_client).deliver()
    client = Recording(mlflow_client)

    assert Delivery(spool, client).deliver() == 0
    assert client.calls == []


def test_records_another_delivery_sent_meanwhile_are_not_sent_again(mlflow_client, experiment, spool):
    a_run(spool, experiment)
    client = Recording(mlflow_client)
    worker = Delivery(spool, client)  # the worker, created before ``sync`` delivered everything

    Delivery(spool, mlflow_client).deliver()

    assert worker.deliver() == 0
    assert client.calls == []


def unreachable_client(monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")


def test_an_unreachable_server_is_an_outage_that_leaves_the_records_pending(
    mlflow_client, experiment, spool, monkeypatch
):
    a_run(spool, experiment)

    with pytest.raises(Outage):
        Delivery(spool, unreachable_client(monkeypatch)).deliver()

    assert spool.state()["delivered"] == 0
    assert mlflow_client.get_experiment_by_name(experiment) is None


def test_records_left_by_an_outage_are_delivered_by_the_next_attempt(
    mlflow_client, experiment, spool, monkeypatch
):
    a_run(spool, experiment)
    with pytest.raises(Outage):
        Delivery(spool, unreachable_client(monkeypatch)).deliver()

    assert Delivery(spool, mlflow_client).deliver() == 6

    assert only_run(mlflow_client, experiment).data.params == {"lr": "0.01", "batch_size": "32"}


def test_a_run_created_just_before_the_connection_broke_is_not_created_twice(
    mlflow_client, experiment, spool
):
    a_run(spool, experiment)
    client = Recording(mlflow_client, fail_after={"create_run": ConnectionResetError("connection reset")})
    delivery = Delivery(spool, client)
    with pytest.raises(Outage):
        delivery.deliver()

    delivery.deliver()

    run = only_run(mlflow_client, experiment)
    assert run.data.params == {"lr": "0.01", "batch_size": "32"}
    assert len(client.named("create_run")) == 1


def test_a_record_mlflow_refuses_is_rejected_and_the_others_are_delivered(mlflow_client, experiment, spool):
    start(spool, experiment)
    spool.append(params(lr=0.01))
    spool.append(params(lr=0.1))  # MLflow refuses to change a param
    spool.append(metrics(0, loss=0.5))

    delivery = Delivery(spool, mlflow_client)
    delivery.deliver()

    run = only_run(mlflow_client, experiment)
    assert run.data.params == {"lr": "0.01"}
    assert run.data.metrics == {"loss": 0.5}
    assert [rejected["seq"] for rejected in spool.state()["rejected"]] == [2]
    assert spool.state()["delivered"] == 4


def test_a_reopened_run_is_running_again_and_gets_the_new_records(mlflow_client, experiment, spool):
    experiment_id = mlflow_client.create_experiment(experiment)
    killed = mlflow_client.create_run(experiment_id)
    mlflow_client.set_terminated(killed.info.run_id, status="KILLED")
    start(spool, experiment, run_id=killed.info.run_id)
    spool.append(metrics(3, loss=0.1))

    Delivery(spool, mlflow_client).deliver()

    run = only_run(mlflow_client, experiment)
    assert run.info.run_id == killed.info.run_id
    assert run.info.status == "RUNNING"
    assert run.data.metrics == {"loss": 0.1}


def test_a_call_record_keeps_the_target_s_result(mlflow_client, experiment, spool, tmp_path):
    start(spool, experiment)
    history = {"fit/loss": {"0": 0.5, "1": 0.25}}
    seq = spool.append(
        {
            "op": "call",
            "target": "orchestrator.tracking.review_worker:learning_curves",
            "kwargs": {"output_dir": str(tmp_path), "history": history},
        }
    )

    Delivery(spool, mlflow_client).deliver()

    assert spool.state()["results"] == {str(seq): "plots/learning_curves.png"}
    run = only_run(mlflow_client, experiment)
    assert [f.path for f in mlflow_client.list_artifacts(run.info.run_id, "plots")] == [
        "plots/learning_curves.png"
    ]


def test_a_call_target_named_by_its_old_import_path_is_found_at_the_new_one(mlflow_client, experiment, spool):
    old = "orchestrator_plugins.mlflow_review_worker"
    assert importlib.util.find_spec(old) is None  # gone: only the alias can find it
    assert MOVED[old] == "orchestrator.tracking.review_worker"
    start(spool, experiment)
    seq = spool.append(
        {"op": "call", "target": f"{old}:learning_curves", "kwargs": {"output_dir": ".", "history": {}}}
    )

    Delivery(spool, mlflow_client).deliver()

    assert spool.state()["results"] == {str(seq): None}  # learning_curves ran: nothing to draw
    assert "rejected" not in spool.state()


def test_a_call_that_fails_is_rejected_with_its_error_as_its_result(mlflow_client, experiment, spool):
    start(spool, experiment)
    seq = spool.append({"op": "call", "target": "json:loads", "kwargs": {}})
    spool.append(end())

    delivery = Delivery(spool, mlflow_client)
    delivery.deliver()

    assert spool.state()["results"][str(seq)]["error"].startswith("TypeError: ")
    assert only_run(mlflow_client, experiment).info.status == "FINISHED"
