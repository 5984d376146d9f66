"""Sweeps: what a Hydra multirun shares between its jobs, and the callback around it.

``python -m orchestrator -m ...`` runs one job per combination; the orchestrator
adds, through the Hydra callback :class:`~orchestrator.sweep.callback.SweepCallback`
(in ``conf/config.yaml``):

* before the first job, the plugins' ``orchestrator_before_sweep`` hook: tracking
  opens one MLflow parent run for the sweep (once, in the main process);
* a journal, ``orchestrator-jobs.jsonl`` in the sweep folder: one line per
  finished job (number, overrides, status, objective, run id). Jobs read it for
  the running best and for ``fail_fast``, whatever launcher runs them;
* after the last job, a report (table, CSV, plots) and ``orchestrator_after_sweep``;
  the command exits 1 if any job failed.

Modules: ``state`` (the :class:`Sweep` plugins see and what one job knows of it),
``journal`` (the jobs' record, the best job), ``report`` (table, CSV, plot),
``callback`` (the Hydra callback). They import the host core (``orchestrator.*``
modules outside subpackages) and ``orchestrator.resume.index``; nothing imports
``callback`` but Hydra.

Example::

    python -m orchestrator -m +experiment=mnist optimizer.learning_rate=1e-3,1e-2
    python -m orchestrator -m ... hydra.callbacks.orchestrator.fail_fast=true
"""
