"""System metrics of a run (CPU, memory, disk, network, GPU where present), sampled in the tracking worker.

MLflow's own sampler (``mlflow.system_metrics``) runs in a thread of the
tracking worker, which already holds the run: the training process neither
imports MLflow nor spends a cycle on it. It samples the whole machine, as MLflow
does for any run (``psutil``; NVIDIA GPUs through ``pynvml`` when installed),
so the figures are what the run ran beside, not the training process alone.
The metrics are ``system/cpu_utilization_percentage``,
``system/system_memory_usage_megabytes``, ``system/gpu_0_utilization_percentage``, ...
and fill the run page's System metrics tab.

It starts when the worker delivers the run's ``system_metrics`` record (skipped
when the run's end is already in the spool: a spool delivered after the fact,
by ``python -m orchestrator sync``) and stops when it delivers the end, after a
last sample of what it collected since its last one. MLflow's environment
variables set the pace: ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` (10 s) and
``MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING`` (1). ``tracking.system_metrics=false``
turns it off.

Example::

    sampler = Sampler.start(client.tracking_uri, run_id)   # None when psutil is missing
    ...
    sampler.stop()
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("orchestrator.tracking")


class Sampler:
    """MLflow's system-metrics monitor for one run, with a last sample when it stops."""

    def __init__(self, monitor: Any):
        self.monitor = monitor

    @classmethod
    def start(cls, tracking_uri: str, run_id: str) -> Sampler | None:
        """Start sampling for ``run_id`` (a resumed run goes on from its last step); ``None`` if it cannot."""
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start and stop lines
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(run_id, resume_logging=True, tracking_uri=tracking_uri)
        except Exception as error:  # psutil missing, or the monitor's own check failed: the run goes on
            log.warning("No system metrics for run %s: %s: %s", run_id, type(error).__name__, error)
            return None
        monitor.start()
        return cls(monitor)

    def stop(self) -> None:
        """Stop the sampler and log what it collected since its last sample."""
        monitor = self.monitor
        monitor.finish()
        try:
            last = monitor.aggregate_metrics()
            if last:
                monitor.publish_metrics(last)
                monitor.mlflow_logger.flush()
        except Exception as error:  # the samples logged before are kept
            log.warning("The last system-metrics sample was not logged: %s: %s", type(error).__name__, error)
