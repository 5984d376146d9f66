"""Each job's best epoch on its own MLflow run, so that MLflow's comparison can rank by it.

When a sweep ends, the parent run's tracking worker runs :func:`log_best_epochs`:
every job's run gets, for each metric the sweep followed epoch by epoch (the
objective, a pruning metric: :mod:`orchestrator.sweep.best`), the metric
``best/<name>`` with the best value, logged at the step of its epoch. MLflow's
run table and comparison then show the best epoch beside the last one.

Example::

    parent.call("orchestrator.tracking.best_epochs:log_best_epochs",
                bests={"<run id>": {"fit/val_loss": {"value": 0.31, "epoch": 1}}})
"""

from __future__ import annotations

import time
from typing import Any

#: The prefix of the metrics that hold a job's best epoch: ``best/fit/val_loss``.
PREFIX = "best/"


def log_best_epochs(client, run: dict[str, Any], bests: dict[str, dict[str, dict[str, Any]]]) -> int:
    """Log ``best/<metric>`` on each job's run (``bests``: run id -> metric -> value and epoch)."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    for run_id, metrics in bests.items():
        found = [
            Metric(f"{PREFIX}{name}", float(best["value"]), stamp, int(best["epoch"]))
            for name, best in metrics.items()
        ]
        client.log_batch(run_id, metrics=found)
    return len(bests)
