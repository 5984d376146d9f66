"""One job on several devices or machines: the strategy of ``trainer.strategy``.

On ``backend=jax`` the strategy is a ``keras.distribution`` (``data_parallel``); what
follows is the TensorFlow side, whose strategies are ``tf.distribute`` ones.

``trainer.strategy`` names a registered strategy (``mirrored``, ``multi_worker_mirrored``,
or one a plugin adds, such as a TPU strategy), with its arguments in a mapping::

    trainer: {strategy: mirrored}                              # every local GPU
    trainer: {strategy: {name: mirrored, cpu_devices: 2}}      # the CPU split in 2 devices
    trainer: {strategy: multi_worker_mirrored}                 # one process per machine, TF_CONFIG set

What the host does with it, as TensorFlow's distributed-training guides ask:

* the strategy is created once per process, before the run's MLflow run opens and
  before anything else uses TensorFlow (a multi-worker strategy must come first);
* the model is built and compiled inside ``strategy.scope()``;
* ``trainer.batch_size`` (and a stage's ``batch_size``) is the batch of one replica:
  in-memory data goes to Keras in global batches of ``batch_size x num_replicas_in_sync``.
  A dataset object batches itself, so its batch is the global batch;
* only the chief (``strategy.extended.should_checkpoint``) tracks the run and keeps
  files; every other worker writes its checkpoints, model and files to a temporary
  folder, removed when the run ends, as Keras's multi-worker guide recommends.

Example::

    context.distribution = distribute(context)
    with context.scope():
        context.model = build_model(context)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.quiet_import import import_keras

log = logging.getLogger("orchestrator")


@dataclass(frozen=True)
class Distribution:
    """The strategy of a run and this process's part in it.

    Args:
        strategy: the ``tf.distribute.Strategy``.
        name: its registered name (``mirrored``).
        replicas: ``strategy.num_replicas_in_sync``, over every worker.
        chief: whether this process records the run (MLflow, checkpoints, model).
        worker: this process's task in the cluster (``"worker 1"``), or ``None`` on one machine.
    """

    strategy: Any
    name: str
    replicas: int
    chief: bool
    worker: str | None = None

    def tags(self) -> dict[str, str]:
        """The run's tags: ``distribute.strategy``, ``distribute.replicas``, ``distribute.task``."""
        tags = {"distribute.strategy": self.name, "distribute.replicas": str(self.replicas)}
        if self.worker:
            tags["distribute.task"] = self.worker
        return tags


def distribute(context) -> Distribution | None:
    """Create the strategy of ``trainer.strategy``; ``None`` when it is null.

    A strategy made for an earlier run of the process (``context.session.strategies``)
    is used again: TensorFlow allows one multi-worker strategy per process, and
    logical devices cannot change once set up.
    """
    selection = context.spec.strategy
    if selection is None:
        if "TF_CONFIG" in os.environ:
            log.warning("TF_CONFIG is set but trainer.strategy is null: this process trains on its own.")
        if "keras" in sys.modules and sys.modules["keras"].backend.backend() == "jax":
            sys.modules["keras"].distribution.set_distribution(None)  # an earlier job's, in a sweep
        return None
    keras = import_keras()
    if keras.backend.backend() != "tensorflow":
        return keras_distribution(context, keras)
    import tensorflow as tf

    if os.environ.get("ORCHESTRATOR_TF_NOISE") != "1":
        # tf.distribute logs a line per variable and per all-reduce at INFO; this module logs the gist.
        logging.getLogger("tensorflow").setLevel(logging.WARNING)

    name, args = selection.name, selection.arguments()
    key = json.dumps([name, args], sort_keys=True, default=str)
    strategies = context.session.strategies
    if key not in strategies:
        strategy = context.registries["strategy"].create(name, args, "trainer.strategy", context=context)
        if not isinstance(strategy, tf.distribute.Strategy):
            raise UserError(
                "trainer.strategy",
                f"strategy '{name}' returned {type(strategy).__name__}, not a tf.distribute.Strategy.",
            )
        strategies[key] = strategy
    strategy = strategies[key]
    distribution = Distribution(
        strategy=strategy,
        name=name,
        replicas=int(strategy.num_replicas_in_sync),
        chief=bool(strategy.extended.should_checkpoint),
        worker=_task(strategy),
    )
    log.info(
        "Strategy %s: %d replica(s)%s",
        name,
        distribution.replicas,
        f", this process is {distribution.worker}" + ("" if distribution.chief else " (not the chief)")
        if distribution.worker
        else "",
    )
    return distribution


def keras_distribution(context, keras: Any) -> Distribution:
    """The ``keras.distribution.Distribution`` of ``trainer.strategy`` (JAX), made the process's own.

    Keras's JAX trainer reads the distribution when ``fit`` runs, so it is set for the
    whole run (``keras.distribution.set_distribution``), not only while the model is built.
    """
    selection = context.spec.strategy
    name, args = selection.name, selection.arguments()
    key = json.dumps([name, args], sort_keys=True, default=str)
    strategies = context.session.strategies
    if key not in strategies:
        made = context.registries["strategy"].create(name, args, "trainer.strategy", context=context)
        if not (hasattr(made, "device_mesh") and hasattr(made, "scope")):  # Keras exports no base class
            raise UserError(
                "trainer.strategy",
                f"strategy '{name}' returned {type(made).__name__}, not a keras.distribution "
                "(DataParallel, ModelParallel).",
            )
        strategies[key] = made
    made = strategies[key]
    keras.distribution.set_distribution(made)
    replicas = int(made.device_mesh.devices.size)
    log.info("Strategy %s: %d replica(s)", name, replicas)
    return Distribution(strategy=made, name=name, replicas=replicas, chief=True)


def _task(strategy: Any) -> str | None:
    """``"worker 0"`` (the cluster resolver's task type and index) in a cluster, else ``None``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return None
    return f"{task_type} {getattr(resolver, 'task_id', 0) or 0}"


def global_batch_size(context, batch_size: int) -> int:
    """The batch Keras gets for ``batch_size`` per replica: ``batch_size x num_replicas_in_sync``."""
    distribution = context.distribution
    return batch_size if distribution is None else batch_size * distribution.replicas


@contextlib.contextmanager
def worker_files(context) -> Iterator[None]:
    """On a worker that is not the chief, point ``context.output_dir`` at a temporary folder.

    Every file the run writes (checkpoints, ``model.keras``, predictions, callback
    logs) goes there, and the folder is removed when the block ends: only the
    chief's files are kept.
    """
    distribution = context.distribution
    if distribution is None or distribution.chief:
        yield
        return
    label = (distribution.worker or "worker").replace(" ", "-")
    folder = Path(tempfile.mkdtemp(prefix=f"orchestrator-{label}-"))
    context.output_dir = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
