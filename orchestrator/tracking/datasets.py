"""A run's data splits as MLflow dataset inputs: described here, logged by the tracking worker.

For each split the data source gives (train, validation, test), one MLflow
dataset input:

* ``name``: ``<data source name>-<split>`` (``mnist-train``);
* ``digest``: :func:`orchestrator.data_digest.split_digest` of the split's content;
  a dataset object (``tf.data``, ``PyDataset``, a generator) has none, so its
  digest is that of the data config instead (the source's name and arguments),
  and its profile says ``"digest_of": "config"``;
* ``source_type`` ``local`` and ``source`` ``{"uri": <data.info["source"]>}`` (a
  file path, ``bundled``, ``keras``, ...), as MLflow writes a local source;
* ``schema``: MLflow's tensor spec of the features and the targets (dtype, shape);
* ``profile``: ``{"num_rows": N, "digest_of": "content" | "config"}``;
* the input tag ``mlflow.data.context`` = the split's name.

The run list's Dataset column and the run page's Datasets section show them;
two runs on different data differ in digest. The training process computes
the digests in a thread (``hashlib`` releases the GIL while it hashes), so
training does not wait, and appends one ``inputs`` record to the spool;
:func:`log_inputs` delivers it in the worker. :func:`read_inputs` reads them back.

Example::

    records = describe(data, "mnist", {"source": "bundled"})
    records[0]["name"], records[0]["digest"]      # ('mnist-train', '1b2c...')
    read_inputs(client.get_run(run_id))["train"]["digest"]
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from orchestrator.arrays import is_in_memory, length, unpack
from orchestrator.data_digest import DIGEST_LENGTH, split_digest

log = logging.getLogger("orchestrator.tracking")

SPLITS = ("train", "validation", "test")
#: The input tag MLflow reads a dataset's role from.
CONTEXT_TAG = "mlflow.data.context"


def describe(data: Any, name: str, arguments: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dataset input (a plain dict) per split of ``data``, from source ``name`` with ``arguments``."""
    info = data.info or {}
    records = []
    for split in SPLITS:
        value = getattr(data, split, None)
        if value is None:
            continue
        digest = split_digest(value)
        profile: dict[str, Any] = {"digest_of": "content" if digest else "config"}
        rows = _rows(value, info, split)
        if rows is not None:
            profile["num_rows"] = rows
        records.append(
            {
                "name": f"{name}-{split}",
                "digest": digest or config_digest(name, arguments),
                "source_type": "local",
                "source": json.dumps({"uri": str(info.get("source", name))}),
                "schema": json.dumps(_schema(value)) if is_in_memory(value) else "",
                "profile": json.dumps(profile),
                "context": split,
            }
        )
    return records


def config_digest(name: str, arguments: Mapping[str, Any]) -> str:
    """The digest of a data config (source name and arguments), for a split with no content digest."""
    text = json.dumps({"name": name, **dict(arguments)}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_LENGTH // 2).hexdigest()


def describe_in_thread(data: Any, name: str, arguments: Mapping[str, Any], deliver) -> threading.Thread:
    """Start :func:`describe` in a thread that hands its records to ``deliver``; return the thread."""

    def work() -> None:
        try:
            records = describe(data, name, arguments)
        except Exception as error:  # the run goes on without its dataset inputs
            log.warning("No dataset inputs for the run: %s: %s", type(error).__name__, error)
            return
        deliver(records)

    thread = threading.Thread(target=work, name="dataset-digests", daemon=True)
    thread.start()
    return thread


def _rows(split: Any, info: Mapping[str, Any], name: str) -> int | None:
    if is_in_memory(split):
        return length(unpack(split)[0])
    samples = info.get("samples")
    return int(samples[name]) if isinstance(samples, Mapping) and name in samples else None


def _schema(split: Any) -> dict[str, Any]:
    """MLflow's ``mlflow_tensorspec`` schema of ``(x, y)``: each array's dtype and shape (-1 rows)."""
    x, y, _ = unpack(split)
    schema = {"features": json.dumps(_specs(x))}
    if y is not None:
        schema["targets"] = json.dumps(_specs(y))
    return {"mlflow_tensorspec": schema}


def _specs(value: Any) -> list[dict[str, Any]]:
    import numpy as np

    if isinstance(value, Mapping):
        items = [(str(key), value[key]) for key in sorted(value, key=str)]
    elif isinstance(value, (list, tuple)):
        items = [(str(index), item) for index, item in enumerate(value)]
    elif hasattr(value, "columns"):  # a pandas DataFrame
        items = [(str(column), value[column]) for column in value.columns]
    else:
        items = [(None, value)]
    specs = []
    for key, array in items:
        array = np.asarray(array)
        spec = {"type": "tensor", "tensor-spec": {"dtype": str(array.dtype), "shape": [-1, *array.shape[1:]]}}
        specs.append({"name": key, **spec} if key is not None else spec)
    return specs


# -- the tracking worker's side ---------------------------------------------------------------


def log_inputs(client: Any, run_id: str, records: list[dict[str, Any]]) -> None:
    """Log ``records`` (from :func:`describe`) as the run's dataset inputs; MLflow keeps one of each."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = [
        DatasetInput(
            dataset=Dataset(
                name=record["name"],
                digest=record["digest"],
                source_type=record["source_type"],
                source=record["source"],
                schema=record.get("schema") or None,
                profile=record.get("profile") or None,
            ),
            tags=[InputTag(CONTEXT_TAG, record["context"])],
        )
        for record in records
    ]
    client.log_inputs(run_id, datasets=inputs)


def read_inputs(run: Any) -> dict[str, dict[str, Any]]:
    """A run's dataset inputs by context (``train``, ...): name, digest, source URI, rows, digest_of.

    Example::

        read_inputs(client.get_run(run_id))["test"]
        # {'name': 'mnist-test', 'digest': '3f...', 'source': 'bundled', 'num_rows': 2000,
        #  'digest_of': 'content'}
    """
    found: dict[str, dict[str, Any]] = {}
    inputs = getattr(run, "inputs", None)
    for item in getattr(inputs, "dataset_inputs", None) or []:
        tags = {tag.key: tag.value for tag in item.tags}
        dataset = item.dataset
        profile = _json(dataset.profile)
        source = _json(dataset.source)
        found[tags.get(CONTEXT_TAG, dataset.name)] = {
            "name": dataset.name,
            "digest": dataset.digest,
            "source": source.get("uri", dataset.source) if isinstance(source, dict) else dataset.source,
            "num_rows": profile.get("num_rows") if isinstance(profile, dict) else None,
            "digest_of": profile.get("digest_of") if isinstance(profile, dict) else None,
        }
    return found


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return text
