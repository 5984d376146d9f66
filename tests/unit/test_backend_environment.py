"""What ``use_backend`` puts in the environment before Keras loads: the backend, and its
deterministic switches."""

from __future__ import annotations

import os
import sys

import pytest

from orchestrator.backend import use_backend


@pytest.fixture
def before_keras(monkeypatch):
    """The process as a run finds it before Keras is imported; the environment given back after."""
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    return monkeypatch


def test_the_config_s_backend_is_what_keras_will_load(before_keras):
    use_backend("torch", environment="tensorflow")
    assert os.environ["KERAS_BACKEND"] == "torch"


def test_deterministic_torch_gives_cublas_the_fixed_workspace_it_needs(before_keras):
    use_backend("torch", deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_a_cublas_workspace_the_user_set_is_kept(before_keras):
    before_keras.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    use_backend("torch", deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_torch_without_deterministic_leaves_cublas_alone(before_keras):
    use_backend("torch")
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
