"""The host's own config sections: ``trainer``, ``tracking``, ``objective``, ``security`` and the top level.

A key the schema (:mod:`orchestrator.config`) does not declare is refused with
"did you mean", also when Hydra's ``+`` added it (``+trainer.epoch=3``); values
are checked for range and kind; the run spec gets a read-only copy of each section.

Example::

    trainer = section(cfg.trainer, TrainerConfig, "trainer")   # frozen
    check_trainer(trainer)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import field, fields, make_dataclass
from types import MappingProxyType
from typing import Any

from orchestrator.config import ObjectiveConfig, SecurityConfig, TrackingConfig, TrainerConfig, to_python
from orchestrator.errors import UserError, choices_text, closest

#: ``trainer.verbose`` as ``Model.fit`` takes it.
VERBOSE = ("auto", 0, 1, 2)


def check_keys(node: Any, schema: type, prefix: str) -> None:
    """Refuse a key the dataclass ``schema`` does not declare (``+trainer.epoch=3``)."""
    known = [f.name for f in fields(schema)]
    for key in node:
        if key not in known:
            full = [f"{prefix}{name}" for name in known]
            where = f"the settings of {prefix.rstrip('.')}" if prefix else "the top-level keys"
            raise UserError(
                f"{prefix}{key}",
                f"is not a setting.{closest(f'{prefix}{key}', full)} "
                f"These are {where}: {choices_text(known)}.",
            )


def frozen_copy(schema: type) -> type:
    """A frozen dataclass with the fields of ``schema`` (the Hydra schema itself must stay writable)."""
    return make_dataclass(
        schema.__name__,
        [(f.name, f.type, field(default=None)) for f in fields(schema)],
        frozen=True,
    )


def section(node: Any, schema: type, key: str) -> Any:
    """A host section (``trainer``, ``tracking``, ...) as an instance of its frozen copy."""
    check_keys(node, schema, f"{key}.")
    return FROZEN[schema](**to_python(node))


def check_trainer(trainer: Any) -> None:
    counts = {
        "epochs": (trainer.epochs, 0, "0 or more"),
        "batch_size": (trainer.batch_size, 1, "1 or more"),
        "steps_per_execution": (trainer.steps_per_execution, 1, "1 or more"),
        "checkpoint_every": (trainer.checkpoint_every, 0, "0 (no checkpoints) or a number of epochs"),
        "checkpoint_every_batches": (
            trainer.checkpoint_every_batches,
            0,
            "0 (epoch ends only) or a number of batches",
        ),
    }
    for name, (value, low, words) in counts.items():
        if value < low:
            raise UserError(f"trainer.{name}", f"must be {words}, got {value}.")
    if trainer.limit_batches is not None and trainer.limit_batches < 1:
        raise UserError("trainer.limit_batches", f"must be null or 1 or more, got {trainer.limit_batches}.")
    verbose, jit = trainer.verbose, trainer.jit_compile
    if isinstance(verbose, bool) or verbose not in VERBOSE:
        raise UserError(
            "trainer.verbose", f"must be auto, 0, 1 or 2 (as Model.fit takes it), got {verbose!r}."
        )
    if not (jit == "auto" or isinstance(jit, bool)):
        raise UserError("trainer.jit_compile", f"must be auto, true or false, got {jit!r}.")


def check_tracking(tracking: Any) -> None:
    timeout = tracking.delivery_timeout
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout >= 0):
        raise UserError(
            "tracking.delivery_timeout",
            "must be a number of seconds, 0 or more (how long a run waits for MLflow at its end), "
            f"got {timeout}.",
        )


#: The run spec's read-only copies of the host's config sections.
FROZEN: Mapping[type, type] = MappingProxyType(
    {
        schema: frozen_copy(schema)
        for schema in (TrainerConfig, TrackingConfig, ObjectiveConfig, SecurityConfig)
    }
)
