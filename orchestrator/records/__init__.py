"""Reading runs back from MLflow: ``reproduce RUN_ID`` re-runs a run and says whether it matched,
``compare RUN_ID RUN_ID ...`` shows what differs between runs.

Owns the review commands that start from a run's record rather than from a config:
``record`` (one run's record as a plain object), ``environment`` (what differs
between a record and the machine now), ``reproduce``, ``compare`` and ``table``
(text and CSV tables). It may import MLflow (inside functions), the host core
and, of tracking, :mod:`~orchestrator.tracking.run_info`, :mod:`~orchestrator.tracking.target` and
:mod:`~orchestrator.tracking.store` (the URI, its check, the SQLite path);
TensorFlow only where a data source needs it to load the data whose digests are compared;
the re-run is a process of its own.
"""
