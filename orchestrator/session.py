"""What lives across the jobs of one process: one :class:`Session`, created by the command line.

An in-process sweep runs many jobs in one Python process. What they share is
kept here, never in module globals, so that a test or a second command in the
same process starts clean by making a new session:

* how many runs this process has started (from the second on, Keras's state is
  cleared first);
* the data of the previous job, when its source said it may be reused;
* the ``tf.distribute`` strategies made so far (TensorFlow allows one
  multi-worker strategy per process, and logical devices cannot change once set up);
* the ``KERAS_BACKEND`` the process started with, before a run set its own.

Example::

    session = Session()
    objective = run(cfg, output_dir, session=session)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    """The state one process keeps between its runs.

    Args:
        runs: how many runs this process has started.
        reusable_data: ``(data config as JSON, Data)`` of the last run, when its source allows reuse.
        strategies: strategies by ``trainer.strategy`` as JSON.
        environment_backend: ``KERAS_BACKEND`` as the process found it (the config's ``backend`` wins).
    """

    runs: int = 0
    reusable_data: tuple[str, Any] | None = None
    strategies: dict[str, Any] = field(default_factory=dict)
    environment_backend: str | None = field(default_factory=lambda: os.environ.get("KERAS_BACKEND"))
