"""MLflow tracking: the tracker plugin and the path of a record from the training process to MLflow.

The training process never imports MLflow and never waits for it::

    tracker (plugin hooks) -> client.RunLog -> spool (on disk) -> worker process -> delivery -> MLflow

Modules:

* ``tracker``: the ``mlflow`` plugin on the lifecycle hooks: one run per job, a parent run per sweep;
  it ends a run after every other plugin's ``after_run`` (a hook wrapper).
* ``run_info``: what the tracker calls a run (names, tags, the URI) and tells the user at its end.
* ``target``: whether a tracking URI is a place MLflow keeps runs, checked before training
  (a bad target is a user error; an unreachable server is an outage).
* ``client``: what the training process uses: :class:`~orchestrator.tracking.client.RunLog`
  appends records to the spool; :class:`~orchestrator.tracking.client.WorkerProcess` starts the
  worker, and starts it again if it dies.
* ``spool``: the append-only, replay-safe record of one run on disk.
* ``worker``: ``python -m orchestrator.tracking.worker URI``, the process that imports MLflow.
* ``delivery``: turns spooled records into MLflow calls, in batches; delivering twice changes nothing.
* ``store``: opening an MLflow store (SQLite templates, retries, what counts as an outage: a busy
  or unreachable store, a full disk).
* ``sync``: ``python -m orchestrator sync FOLDER`` delivers what a run left in its spool.

The host never imports this package; it is registered through the entry point
``mlflow = "orchestrator.tracking.tracker:MlflowTracker"`` like any third-party plugin.
Its modules import the host core and each other; only ``worker``, ``delivery``
(through the client it is given), ``store`` and ``sync`` touch MLflow.
"""
