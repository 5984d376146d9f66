"""The run spec: the composed config checked once, before TensorFlow, into frozen, typed objects.

Hydra composes a ``DictConfig``; :func:`build_spec` turns it into a
:class:`RunSpec` and refuses, with the key and "did you mean", anything that
would not take effect:

* a key the schema does not know, anywhere in the host's own sections
  (``+trainer.epoch=3`` -> "did you mean trainer.epochs"), and at the top level;
* a value of the wrong type or out of range (a negative learning rate,
  ``trainer.verbose=loud``, ``tracking.delivery_timeout=-1``);
* an unknown plugin name, an argument its factory does not take, a value its
  annotation refuses, or one its own ``check`` refuses (see :mod:`orchestrator.registry`);
* a split name no stage can read.

Every key is consumed: by the host (the dataclasses below) or by a plugin's
declared arguments. The run reads the spec; plugin factories still receive
plain keyword arguments.

Example::

    spec = validate(cfg, manager.registries)
    spec.trainer.epochs, spec.model.name, [stage.kind for stage in spec.stages]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from omegaconf import DictConfig

from orchestrator.backend import check_backend
from orchestrator.config import (
    Config,
    ObjectiveConfig,
    SecurityConfig,
    TrackingConfig,
    TrainerConfig,
    is_spec,
    named_entries,
    restricted,
    split_spec,
    strategy_spec,
    to_python,
)
from orchestrator.errors import UserError
from orchestrator.settings import check_keys, check_tracking, check_trainer, section
from orchestrator.stage import SPLITS, Stage
from orchestrator.targets import check_targets


@dataclass(frozen=True)
class Selection:
    """One plugin the config selects: ``{name: rmsprop, learning_rate: 0.001}`` at ``optimizer``.

    Args:
        key: the config key (``optimizer``, ``callbacks.early_stopping``).
        name: the registered name (or ``_target_``).
        args: the factory's keyword arguments, as plain Python values.
    """

    key: str
    name: str
    args: Mapping[str, Any]

    def arguments(self) -> dict[str, Any]:
        """A fresh, mutable copy of :attr:`args` for the factory."""
        return to_python(dict(self.args))


@dataclass(frozen=True)
class RunSpec:
    """The checked config of one run. Sections the host reads are typed; plugin selections are
    :class:`Selection` objects; ``loss``, ``metrics`` entries and ``optimizer`` may also be Keras
    string ids, passed to ``Model.compile`` as they are."""

    data: Selection
    model: Selection
    optimizer: Selection | str
    loss: Any
    loss_weights: Any
    metrics: tuple[tuple[str, Selection | str, str | None], ...]
    callbacks: tuple[Selection, ...]
    stages: tuple[Stage, ...]
    strategy: Selection | None
    trainer: TrainerConfig
    tracking: TrackingConfig
    objective: ObjectiveConfig
    security: SecurityConfig
    backend: str
    seed: int | None
    deterministic: bool
    resume: bool
    dry_run: bool = False


def validate(cfg: DictConfig, registries: Mapping[str, Any]) -> RunSpec:
    """Check the whole config; return its run spec. The registries are read, never changed."""
    return build_spec(cfg, restricted(cfg, registries))


def build_spec(cfg: DictConfig, registries: Mapping[str, Any]) -> RunSpec:
    """Check ``cfg`` against the schema and the registries; raise :class:`UserError` at the first mistake.

    ``registries`` must already be restricted to ``security.allowed_targets``
    (:func:`orchestrator.config.restricted`); nothing is changed.
    """
    check_keys(cfg, Config, "")
    allowed = tuple(cfg.security.allowed_targets)
    for name in cfg:
        check_targets(to_python(cfg[name]), str(name), allowed)
    trainer = section(cfg.trainer, TrainerConfig, "trainer")
    tracking = section(cfg.tracking, TrackingConfig, "tracking")
    objective = section(cfg.objective, ObjectiveConfig, "objective")
    security = section(cfg.security, SecurityConfig, "security")
    check_trainer(trainer)
    check_tracking(tracking)
    strategy = strategy_spec(cfg.trainer.strategy)
    if strategy is not None:
        strategy = (strategy[0], registries["strategy"].get(strategy[0], "trainer.strategy").factory)
    backend = check_backend(cfg.backend, strategy, trainer)
    if cfg.deterministic and cfg.seed is None:
        raise UserError("seed", "deterministic=true needs a seed; set seed=<int> as well.")
    if objective.direction not in ("minimize", "maximize"):
        raise UserError("objective.direction", f"must be minimize or maximize, got {objective.direction!r}.")
    return RunSpec(
        data=_data(to_python(cfg.data), registries["data_source"]),
        model=_selection(cfg.model, "model", registries["model_builder"]),
        optimizer=_optimizer(to_python(cfg.optimizer), registries["optimizer"], "optimizer"),
        loss=_loss(to_python(cfg.loss), "loss", registries["loss"]),
        loss_weights=to_python(cfg.loss_weights),
        metrics=_metrics(cfg.metrics, registries["metric"]),
        callbacks=tuple(
            _selection(entry, f"callbacks.{label}", registries["callback"])
            for label, entry in named_entries(cfg.callbacks)
        ),
        stages=_stages(cfg, registries),
        strategy=_strategy(cfg.trainer.strategy, registries["strategy"]),
        trainer=trainer,
        tracking=tracking,
        objective=objective,
        security=security,
        backend=backend,
        seed=cfg.seed,
        deterministic=bool(cfg.deterministic),
        resume=bool(cfg.resume),
        dry_run=bool(cfg.get("dry_run", False)),
    )


# -- Plugin selections ------------------------------------------------------------------


def _selection(node: Any, key: str, registry: Any, name_field: str = "name") -> Selection:
    name, args = split_spec(node, key, name_field=name_field)
    registry.check(name, args, key)
    return Selection(key=key, name=name, args=MappingProxyType(args))


def _data(node: Any, registry: Any) -> Selection:
    """A data source, and the ones it wraps (``data.source: {name: mnist}``), outermost first."""
    selection = _selection(node, "data", registry)
    inner, key = node, "data"
    while is_spec(inner.get("source")):
        inner, key = inner["source"], f"{key}.source"
        _selection(inner, key, registry)
    return selection


def _optimizer(node: Any, registry: Any, key: str) -> Selection | str:
    """A Keras string id (``rmsprop``) or a spec whose learning rate may be a schedule."""
    if isinstance(node, str):
        return node
    name, args = split_spec(node, key)
    learning_rate = args.get("learning_rate")
    checked = dict(args)
    if is_spec(learning_rate):
        _selection(learning_rate, f"{key}.learning_rate", registry)
        checked["learning_rate"] = 0.001
    elif learning_rate is not None and not _positive_number(learning_rate):
        raise UserError(
            f"{key}.learning_rate",
            "must be a number above 0 (or a schedule, {name: exponential_decay, ...}), "
            f"got {learning_rate!r}.",
        )
    registry.check(name, checked, key)
    return Selection(key=key, name=name, args=MappingProxyType(args))


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _loss(node: Any, key: str, registry: Any) -> Any:
    """A loss is null, a Keras string id, a spec, or a list/mapping of them per output."""
    if node is None or isinstance(node, str):
        return node
    if is_spec(node):
        return _selection(node, key, registry)
    if isinstance(node, Mapping):
        return MappingProxyType(
            {output: _loss(entry, f"{key}.{output}", registry) for output, entry in node.items()}
        )
    if isinstance(node, list):
        return tuple(_loss(entry, f"{key}[{index}]", registry) for index, entry in enumerate(node))
    raise UserError(key, f"expected a loss name, a {{name: ...}} mapping or null, got {node!r}.")


def _metrics(node: Any, registry: Any) -> tuple[tuple[str, Selection | str, str | None], ...]:
    """``(label, metric, output)`` per enabled entry; a metric is a Keras string id or a spec."""
    metrics = []
    for label, entry in named_entries(node):
        key = f"metrics.{label}"
        if isinstance(entry, str):
            metrics.append((label, entry, None))
            continue
        output = entry.get("output") if is_spec(entry) else None
        entry = {k: v for k, v in entry.items() if k != "output"} if is_spec(entry) else entry
        metrics.append((label, _selection(entry, key, registry), output))
    return tuple(metrics)


def _strategy(node: Any, registry: Any) -> Selection | None:
    spec = strategy_spec(node)
    if spec is None:
        return None
    name, args = spec
    registry.check(name, args, "trainer.strategy")
    return Selection(key="trainer.strategy", name=name, args=MappingProxyType(args))


def _stages(cfg: DictConfig, registries: Mapping[str, Any]) -> tuple[Stage, ...]:
    """The enabled stages in order, each checked against its kind."""
    if cfg.stages is None:
        raise UserError("stages", "is null; give at least one stage, e.g. stages={fit: {kind: fit}}.")
    stages = []
    for index, (label, entry) in enumerate(named_entries(cfg.stages)):
        key = f"stages.{label}"
        kind, args = split_spec(entry, key, name_field="kind")
        registries["stage"].check(kind, args, key)
        _check_stage_arguments(args, key)
        if args.get("optimizer") is not None:
            _optimizer(to_python(args["optimizer"]), registries["optimizer"], f"{key}.optimizer")
        stages.append(Stage(name=label, kind=kind, args=args, index=index))
    if not stages:
        raise UserError("stages", "no stage is enabled; add one, e.g. stages={fit: {kind: fit}}.")
    return tuple(stages)


def _check_stage_arguments(args: Mapping[str, Any], key: str) -> None:
    """The arguments the built-in stages share, wherever a stage kind takes them."""
    epochs, batch_size, fraction = (args.get(name) for name in ("epochs", "batch_size", "validation_split"))
    if epochs is not None and epochs < 0:
        raise UserError(f"{key}.epochs", f"must be 0 or more, got {epochs}.")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"{key}.batch_size", f"must be 1 or more, got {batch_size}.")
    if fraction is not None and not 0 <= fraction < 1:
        raise UserError(
            f"{key}.validation_split", f"must be at least 0 and below 1 (0.2 holds out 20%), got {fraction}."
        )
    for name in ("split", "validation"):
        value = args.get(name)
        if value is not None and value not in SPLITS:
            raise UserError(f"{key}.{name}", f"must be one of {', '.join(SPLITS)}, got {value!r}.")
