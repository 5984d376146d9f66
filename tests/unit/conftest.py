"""Fixtures of the unit tests: one real MLflow SQLite store for the whole session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mlflow_client(tmp_path_factory):
    """An ``MlflowClient`` on a real SQLite store (created once: migrating its schema takes seconds).

    Each test uses an experiment of its own.
    """
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


@pytest.fixture
def experiment(request) -> str:
    """A name no other test's experiment has: the test's own."""
    return request.node.nodeid


@pytest.fixture
def keep_global_generators():
    """For tests that move Python's and NumPy's global generators: give them back as they were."""
    import random

    import numpy as np

    python, numpy = random.getstate(), np.random.get_state()
    yield
    random.setstate(python)
    np.random.set_state(numpy)
