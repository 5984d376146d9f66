"""The progress Keras callbacks keep between epochs, saved with the resume state and put back.

Example::

    saved = callback_state(early_stopping, output_dir, epoch=3)
    restore_callbacks([early_stopping], [saved], output_dir)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("orchestrator")


#: The progress a Keras callback keeps between epochs (EarlyStopping, ReduceLROnPlateau,
#: ModelCheckpoint's best value); its settings come from the config again.
CALLBACK_PROGRESS = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")


def restore_callbacks(callbacks: list, states: list[dict[str, Any]], folder: Path) -> None:
    """Give each callback the state saved for it (matched by position and class).

    A callback of its own may define ``get_state() -> dict`` (JSON values) and
    ``set_state(state)``; for the others the :data:`CALLBACK_PROGRESS` attributes
    and EarlyStopping's best weights are restored.
    """
    if len(callbacks) != len(states):
        log.warning("The callbacks changed since the checkpoint; their state starts afresh.")
        return
    for callback, saved in zip(callbacks, states, strict=True):
        if type(callback).__name__ != saved["class"]:
            log.warning("Callback %s changed since the checkpoint; its state starts afresh.", saved["class"])
            continue
        _set_values(callback, saved["values"])
        if saved.get("arrays"):
            import numpy as np

            with np.load(folder / saved["arrays"]) as arrays:
                callback.best_weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]


def _values(callback: Any) -> dict[str, Any]:
    """A callback's own ``get_state()``, else its :data:`CALLBACK_PROGRESS` attributes as numbers."""
    import numpy as np

    if hasattr(callback, "get_state"):
        return callback.get_state()
    values = {}
    for name in CALLBACK_PROGRESS:
        value = getattr(callback, name, None)
        if isinstance(value, np.generic) or (hasattr(value, "numpy") and hasattr(value, "shape")):
            value = np.asarray(value).item()
        if isinstance(value, (bool, int, float)):
            values[name] = value
    return values


def _set_values(callback: Any, values: dict[str, Any]) -> None:
    if hasattr(callback, "set_state"):
        callback.set_state(values)
        return
    for name, value in values.items():
        setattr(callback, name, value)


def progress(callbacks: list) -> list[dict[str, Any]]:
    """The callbacks' progress, in memory (for a ``fit`` call that continues another)."""
    return [{"values": _values(c), "best_weights": getattr(c, "best_weights", None)} for c in callbacks]


def set_progress(callbacks: list, snapshot: list[dict[str, Any]]) -> None:
    for callback, saved in zip(callbacks, snapshot, strict=True):
        _set_values(callback, saved["values"])
        if saved["best_weights"] is not None:
            callback.best_weights = saved["best_weights"]


def callback_state(callback: Any, folder: Path, epoch: int) -> dict[str, Any]:
    """A callback's progress (``wait``, ``best``, ``cooldown_counter``...) and its best weights."""
    import numpy as np

    state: dict[str, Any] = {"class": type(callback).__name__, "values": _values(callback)}
    best_weights = getattr(callback, "best_weights", None)
    if isinstance(best_weights, list) and best_weights and not hasattr(callback, "get_state"):
        name = Path("resume") / f"{type(callback).__name__}-best-weights-{epoch:04d}.npz"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        temporary = folder / name.with_suffix(".tmp.npz")
        np.savez(temporary, **{f"w{i}": np.asarray(w) for i, w in enumerate(best_weights)})
        os.replace(temporary, folder / name)
        state["arrays"] = str(name)
    return state
