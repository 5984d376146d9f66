"""MLflow tracking: the tracker plugin and the path of a record from the training process to MLflow.

The training process never imports MLflow and never waits for it::

    tracker (plugin hooks) -> client.RunLog -> spool (on disk) -> worker process -> delivery -> MLflow

Modules:

* ``tracker``: the ``mlflow`` plugin on the lifecycle hooks: one run per job, a parent run per sweep.
* ``client``: what the training process uses: :class:`~orchestrator.tracking.client.RunLog`
  appends records to the spool; :class:`~orchestrator.tracking.client.WorkerProcess` starts the worker.
* ``spool``: the append-only, replay-safe record of one run on disk.
* ``worker``: ``python -m orchestrator.tracking.worker URI``, the process that imports MLflow.
* ``delivery``: turns spooled records into MLflow calls, in batches; delivering twice changes nothing.
* ``store``: opening an MLflow store (SQLite templates, retries, what counts as an outage).
* ``sync``: ``python -m orchestrator sync FOLDER`` delivers what a run left in its spool.

The host never imports this package; it is registered through the entry point
``mlflow = "orchestrator.tracking.tracker:MlflowTracker"`` like any third-party plugin.
Its modules import the host core and each other; only ``worker``, ``delivery``
(through the client it is given), ``store`` and ``sync`` touch MLflow.
"""
