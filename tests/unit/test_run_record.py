"""What a run's record holds for the MLflow UI, delivered to a real SQLite store: the experiment's
kind, the dataset inputs with their digests, system metrics."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from orchestrator.data import Data
from orchestrator.data_digest import split_digest
from orchestrator.tracking.datasets import config_digest, describe, read_inputs
from orchestrator.tracking.delivery import EXPERIMENT_KIND, MODEL_TRAINING, Delivery, experiment_by_name
from orchestrator.tracking.spool import FOLDER, Spool

T0 = 1_700_000_000_000


@pytest.fixture
def spool(tmp_path) -> Spool:
    return Spool(tmp_path / FOLDER)


def start(spool: Spool, experiment: str) -> None:
    record = {"op": "start_run", "experiment": experiment, "tags": {}, "run_id": None, "time": T0}
    spool.append({**record, "run_key": uuid.uuid4().hex})


def end(spool: Spool) -> None:
    spool.append({"op": "end", "status": "FINISHED", "time": T0 + 1000})


def only_run(client, experiment: str):
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def arrays(rows: int, seed: int = 0) -> tuple:
    generator = np.random.default_rng(seed)
    return generator.random((rows, 4), dtype=np.float32), generator.integers(0, 3, rows)


def test_a_new_experiment_is_a_model_training_one(mlflow_client, experiment):
    experiment_id = experiment_by_name(mlflow_client, experiment)
    assert mlflow_client.get_experiment(experiment_id).tags[EXPERIMENT_KIND] == MODEL_TRAINING


def test_an_experiment_without_a_kind_gets_one_and_a_chosen_kind_stays(mlflow_client, experiment):
    plain = mlflow_client.create_experiment(f"{experiment}-plain")
    chosen = mlflow_client.create_experiment(
        f"{experiment}-genai", tags={EXPERIMENT_KIND: "genai_development"}
    )

    experiment_by_name(mlflow_client, f"{experiment}-plain")
    experiment_by_name(mlflow_client, f"{experiment}-genai")

    assert mlflow_client.get_experiment(plain).tags[EXPERIMENT_KIND] == MODEL_TRAINING
    assert mlflow_client.get_experiment(chosen).tags[EXPERIMENT_KIND] == "genai_development"


def test_each_split_is_a_dataset_input_with_its_digest_context_and_rows(mlflow_client, experiment, spool):
    train, test = arrays(30), arrays(7, seed=1)
    data = Data(train=train, validation=None, test=test, info={"source": "/data/points.npz"})
    start(spool, experiment)
    spool.append({"op": "inputs", "datasets": describe(data, "points", {"path": "/data/points.npz"})})
    end(spool)

    Delivery(spool, mlflow_client).deliver()

    found = read_inputs(only_run(mlflow_client, experiment))
    assert found == {
        "train": {
            "name": "points-train",
            "digest": split_digest(train),
            "source": "/data/points.npz",
            "num_rows": 30,
            "digest_of": "content",
        },
        "test": {
            "name": "points-test",
            "digest": split_digest(test),
            "source": "/data/points.npz",
            "num_rows": 7,
            "digest_of": "content",
        },
    }


def test_delivering_the_inputs_again_keeps_one_input_per_split(mlflow_client, experiment, spool):
    data = Data(train=arrays(10), validation=arrays(5), info={"source": "random"})
    start(spool, experiment)
    spool.append({"op": "inputs", "datasets": describe(data, "points", {})})
    Delivery(spool, mlflow_client).deliver()
    spool.save_state({**spool.state(), "delivered": 1})  # as if the inputs had not been confirmed

    Delivery(spool, mlflow_client).deliver()

    run = only_run(mlflow_client, experiment)
    assert sorted(i.dataset.name for i in run.inputs.dataset_inputs) == ["points-train", "points-validation"]


def test_the_schema_gives_each_arrays_dtype_and_shape():
    (train,) = describe(Data(train=({"a": np.zeros((3, 2, 2)), "b": np.zeros(3, "int64")}, None)), "d", {})
    features = json.loads(json.loads(train["schema"])["mlflow_tensorspec"]["features"])
    assert features == [
        {"name": "a", "type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2, 2]}},
        {"name": "b", "type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}},
    ]


def test_a_dataset_object_is_digested_by_its_data_config():
    def batches():
        yield arrays(4)

    info = {"source": "generator", "samples": {"train": 40}}
    (train,) = describe(Data(train=batches(), info=info), "gen", {"size": 40})
    (other,) = describe(Data(train=batches(), info=info), "gen", {"size": 41})

    assert train["digest"] == config_digest("gen", {"size": 40}) != other["digest"]
    assert json.loads(train["profile"]) == {"digest_of": "config", "num_rows": 40}


def test_the_worker_samples_system_metrics_until_the_run_ends(mlflow_client, experiment, spool):
    start(spool, experiment)
    spool.append({"op": "system_metrics"})
    delivery = Delivery(spool, mlflow_client, live=True)
    delivery.deliver()
    assert delivery.sampler is not None
    end(spool)

    delivery.deliver()  # the end stops the sampler, after a last sample

    assert delivery.sampler is None
    run = only_run(mlflow_client, experiment)
    history = mlflow_client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert [m.step for m in history] == list(range(len(history))) and history
    assert 0 <= history[-1].value <= 100


def test_a_spool_delivered_after_its_run_ended_samples_nothing(mlflow_client, experiment, spool):
    start(spool, experiment)
    spool.append({"op": "system_metrics"})
    end(spool)

    Delivery(spool, mlflow_client, live=True).deliver()

    assert not [key for key in only_run(mlflow_client, experiment).data.metrics if key.startswith("system/")]
