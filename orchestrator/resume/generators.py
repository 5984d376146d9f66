"""Random generators and running metric totals: read as JSON and put back.

Python's, NumPy's and (on PyTorch) torch's global generators, the model's seed
generators (dropout, augmentation, noise layers) and the running totals of its
metrics mid-epoch.

Example::

    saved = rng_state()
    set_rng_state(saved)
"""

from __future__ import annotations

import base64
import logging
import random
import sys
from typing import Any

log = logging.getLogger("orchestrator")


def metric_variable_values(model: Any) -> list:
    """The running totals and counts of the model's metrics, mid-epoch."""
    import keras

    return [keras.ops.convert_to_numpy(v.value).tolist() for v in model.metrics_variables]


def set_metric_variable_values(model: Any, values: list) -> None:
    variables = model.metrics_variables
    if len(variables) != len(values):
        log.warning("The model's metrics changed since the checkpoint; this epoch's averages start afresh.")
        return
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def rng_state() -> dict[str, Any]:
    """The states of Python's and NumPy's global random generators, as JSON; torch's too once
    it is loaded (Keras on PyTorch shuffles arrays with it: ``torch.utils.data.RandomSampler``)."""
    import numpy as np

    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }
    if "torch" in sys.modules:
        torch_state = sys.modules["torch"].get_rng_state().numpy().tobytes()
        state["torch"] = base64.b64encode(torch_state).decode("ascii")
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    if "torch" in state and "torch" in sys.modules:
        torch = sys.modules["torch"]
        saved = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
        torch.set_rng_state(torch.from_numpy(saved))


def _seed_generator_variables(model: Any) -> list:
    """The state variables of the model's seed generators (dropout, augmentation, noise layers)."""
    if model is None:
        return []
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def seed_generator_states(model: Any) -> list:
    import keras

    return [keras.ops.convert_to_numpy(v.value).tolist() for v in _seed_generator_variables(model)]


def set_seed_generator_states(model: Any, states: list) -> None:
    variables = _seed_generator_variables(model)
    if len(variables) != len(states):
        log.warning("The model's random layers changed since the checkpoint; their seeds start afresh.")
        return
    for variable, value in zip(variables, states, strict=True):
        variable.assign(value)
