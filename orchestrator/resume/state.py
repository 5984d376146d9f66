"""The resume state of a run, ``resume/state.json``: written at every checkpoint, read back on resume.

Example::

    save_state(context, stage, stage_done=False, weights=checkpoint, callbacks=others)
    restore_model(context)
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.resume.callback_state import callback_state
from orchestrator.resume.generators import (
    metric_variable_values,
    rng_state,
    seed_generator_states,
    set_rng_state,
    set_seed_generator_states,
)
from orchestrator.resume.index import write_json

log = logging.getLogger("orchestrator")

STATE = Path("resume") / "state.json"


def save_state(
    context,
    stage,
    *,
    stage_done: bool,
    weights: Path | None = None,
    callbacks: list | None = None,
    batches_done: int = 0,
    seconds: float = 0.0,
) -> None:
    """Write ``resume/state.json``; ``weights`` is the new checkpoint (else the last one stays).
    ``seconds``: the stage's time so far, carried into ``time/<stage>_seconds`` by a resumed run.

    ``batches_done`` > 0: saved in the middle of epoch ``context.epochs_done + 1``,
    after that many batches; the running values of the epoch's metrics are kept too.
    """
    folder = Path(context.output_dir)
    previous = _read_state(folder)
    if weights is not None:
        checkpoint = str(Path(weights).relative_to(folder))
    else:
        checkpoint = (previous or {}).get("checkpoint")
    callback_states = [callback_state(callback, folder, context.epochs_done) for callback in callbacks or ()]
    state = {
        "version": 1,
        "run_id": context.run_id,
        "stage": stage.name,
        "stage_index": stage.index,
        "stage_done": stage_done,
        "stage_start_epoch": context.stage_start_epoch,
        "epochs_done": context.epochs_done,
        "batches_done": batches_done,
        "stage_seconds": round(seconds, 6),
        "metric_variables": metric_variable_values(context.model) if batches_done else None,
        "checkpoint": checkpoint,
        "callbacks": callback_states,
        "rng": rng_state(),
        "seed_generators": seed_generator_states(context.model),
        "metrics": context.metrics,
    }
    write_json(folder / STATE, state)
    _remove_stale(folder, keep={checkpoint, *(c.get("arrays") for c in callback_states)})


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return None


def restore_model(context) -> None:
    """Load the checkpoint's weights and optimizer state, and the random generators, into the model.

    Only the weights are read (``Model.load_weights``): no code stored in the
    file runs, whatever layers it names.
    """
    resume = context.resume
    if resume is None or resume.restored:
        return
    resume.restored = True
    state = resume.state
    if state is None or not state.get("checkpoint"):
        return
    path = Path(context.output_dir) / state["checkpoint"]
    model = context.model
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path)
    except Exception as error:
        raise UserError(
            "resume",
            f"the checkpoint {path} cannot be read into the model ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). If the model changed, start afresh "
            "with resume=false; the run's other checkpoints stay in its folder.",
        ) from error
    set_seed_generator_states(model, state["seed_generators"])
    set_rng_state(state["rng"])
    log.info("Restored the model and optimizer from %s", path)


def _remove_stale(folder: Path, keep: set) -> None:
    """Delete the mid-epoch checkpoints and best-weight files the state no longer points to."""
    for pattern in ("*-best-weights-*.npz", "epoch-*-batch-*.keras"):
        for path in (folder / "resume").glob(pattern):
            if str(path.relative_to(folder)) not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()
