"""The built-in distribution strategies, selected with ``trainer.strategy``.

* ``mirrored``: ``tf.distribute.MirroredStrategy``, one process, every local GPU
  (or the devices named in ``devices``). ``cpu_devices: N`` splits the CPU into N
  logical devices first, so that a laptop without GPUs can run, and check, a
  mirrored job::

      trainer: {strategy: {name: mirrored, cpu_devices: 2}}

* ``multi_worker_mirrored``: ``tf.distribute.MultiWorkerMirroredStrategy``, one
  process per machine, each told the cluster and its own task through the
  ``TF_CONFIG`` environment variable::

      TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                  "task": {"type": "worker", "index": 0}}'

* ``data_parallel``: ``keras.distribution.DataParallel`` on ``backend=jax``, one
  replica per JAX device (every GPU, or the host CPU split into devices with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before the run starts)::

      XLA_FLAGS=--xla_force_host_platform_device_count=2 \
          python -m orchestrator +experiment=mnist backend=jax trainer.strategy=data_parallel

TensorFlow and Keras are imported inside the factories only. A factory that runs on
another backend than TensorFlow names it in its ``backends`` attribute.
"""

from __future__ import annotations

from typing import Any

from orchestrator import UserError, hookimpl

#: ``mirrored``'s ``cross_device_ops`` -> the ``tf.distribute`` class that sums gradients.
CROSS_DEVICE_OPS = {
    "nccl": "NcclAllReduce",
    "hierarchical_copy": "HierarchicalCopyAllReduce",
    "reduction_to_one": "ReductionToOneDevice",
}
#: ``multi_worker_mirrored``'s ``communication`` -> ``CommunicationImplementation`` member.
COMMUNICATION = {"auto": "AUTO", "ring": "RING", "nccl": "NCCL"}


def mirrored(
    devices: list[str] | None = None, cpu_devices: int | None = None, cross_device_ops: str | None = None
):
    """``tf.distribute.MirroredStrategy``: one replica per device of this machine.

    Args:
        devices: device names (``["/gpu:0", "/gpu:1"]``); default: every GPU, else the CPU
            (or the logical CPU devices of ``cpu_devices``).
        cpu_devices: split the CPU into this many logical devices first (no GPU needed).
        cross_device_ops: how gradients are summed: ``nccl``, ``hierarchical_copy`` or
            ``reduction_to_one``; default: TensorFlow's choice for the devices.

    Example::

        trainer: {strategy: {name: mirrored, cpu_devices: 2}}
    """
    key = "trainer.strategy"
    if cpu_devices is not None and (not isinstance(cpu_devices, int) or cpu_devices < 1):
        raise UserError(f"{key}.cpu_devices", f"must be null or a number >= 1, got {cpu_devices!r}.")
    if cross_device_ops is not None and cross_device_ops not in CROSS_DEVICE_OPS:
        raise UserError(
            f"{key}.cross_device_ops",
            f"must be null or one of {', '.join(CROSS_DEVICE_OPS)}, got {cross_device_ops!r}.",
        )
    import tensorflow as tf

    if cpu_devices is not None:
        logical = split_cpu(cpu_devices, f"{key}.cpu_devices")
        devices = logical if devices is None else devices
    ops = getattr(tf.distribute, CROSS_DEVICE_OPS[cross_device_ops])() if cross_device_ops else None
    return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None, cross_device_ops=ops)


def split_cpu(count: int, key: str) -> list[str]:
    """Split the first CPU into ``count`` logical devices; return their names.

    TensorFlow fixes its devices the first time it uses them, so this works only
    before that (or when the same split is already in place).
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if (current is None and count > 1) or (current is not None and len(current) != count):
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError as error:
            have = len(tf.config.list_logical_devices("CPU"))
            raise UserError(
                key,
                f"TensorFlow already set up {have} CPU device(s) in this process, so it cannot split "
                f"the CPU into {count} now. Use the same value in every job of an in-process sweep, "
                "or run each job in its own process (hydra/launcher=joblib).",
            ) from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def multi_worker_mirrored(communication: str = "auto"):
    """``tf.distribute.MultiWorkerMirroredStrategy``: one replica per device of every worker.

    The cluster and this process's task come from ``TF_CONFIG``; without it the
    strategy runs on this machine alone. The worker that ``TF_CONFIG`` makes the
    chief (``chief`` 0, else ``worker`` 0) records the run.

    Args:
        communication: the collective implementation: ``auto``, ``ring`` (gRPC) or ``nccl`` (GPUs).

    Example::

        TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                    "task": {"type": "worker", "index": 0}}' \\
            python -m orchestrator +experiment=mnist trainer.strategy=multi_worker_mirrored
    """
    if communication not in COMMUNICATION:
        raise UserError(
            "trainer.strategy.communication",
            f"must be one of {', '.join(COMMUNICATION)}, got {communication!r}.",
        )
    import tensorflow as tf

    implementations = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=getattr(implementations, COMMUNICATION[communication])
    )
    return _keras3_multi_worker_strategy()(communication_options=options)


def _keras3_multi_worker_strategy() -> Any:
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3 hands it.

    Keras 3's TensorFlow trainer calls ``strategy.reduce`` with a nested batch
    (``(x, y)``) when it builds the model, and with ``axis=0`` on the scalar
    metrics of every step; ``MultiWorkerMirroredStrategy.reduce`` accepts one value
    and needs the axis to exist (keras-team/keras#20585, tensorflow/tensorflow#72388).
    This subclass reduces each value of a nest on its own, and a scalar over the
    replicas (``axis=None``), which is the mean Keras asks for.
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            def one(item):
                if item is None:
                    return None
                local = self.experimental_local_results(item)[0]
                item_axis = None if axis == 0 and local.shape.rank == 0 else axis
                return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, item, item_axis)

            return tf.nest.map_structure(one, value)

    return MultiWorkerMirroredStrategy


def data_parallel(devices: int | None = None):
    """``keras.distribution.DataParallel``: one replica per JAX device of this machine.

    Args:
        devices: how many of JAX's devices to use (the first ones); default: all of them.

    Example::

        trainer: {strategy: {name: data_parallel, devices: 2}}
    """
    if devices is not None and (not isinstance(devices, int) or devices < 1):
        raise UserError("trainer.strategy.devices", f"must be null or a number >= 1, got {devices!r}.")
    import keras

    found = keras.distribution.list_devices()
    if devices is not None and devices > len(found):
        raise UserError(
            "trainer.strategy.devices",
            f"JAX sees {len(found)} device(s), not {devices}; on a CPU, start the run with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={devices}.",
        )
    return keras.distribution.DataParallel(devices=found[:devices] if devices else found)


data_parallel.backends = ("jax",)  # type: ignore[attr-defined]


@hookimpl
def orchestrator_register_strategies(registry):
    registry.add("mirrored", mirrored)
    registry.add("multi_worker_mirrored", multi_worker_mirrored)
    registry.add("data_parallel", data_parallel)
