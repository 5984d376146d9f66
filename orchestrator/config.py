"""The configuration's schema and its checks, all before TensorFlow is imported.

Hydra validates the top level against :class:`Config` (a misspelt key or a
wrong type fails at composition); :func:`validate` then checks every plugin
selection against the registries and every value against its range.

A plugin selection is a mapping with ``name`` and the factory's arguments::

    optimizer: {name: rmsprop, learning_rate: 0.001}
    callbacks: {early_stopping: {name: early_stopping, patience: 2}}
    stages:    {fit: {kind: fit, epochs: 2}, test: {kind: evaluate}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from orchestrator.errors import UserError
from orchestrator.secrets import MASK, SECRET_WORDS, is_secret, masked  # noqa: F401 (their old home)
from orchestrator.targets import DEFAULT_ALLOWED, TARGET, check_targets


@dataclass
class TrainerConfig:
    """How Keras compiles and trains; a fit stage may override ``epochs`` and ``batch_size``."""

    epochs: int = 1
    batch_size: int = 32
    verbose: Any = "auto"
    jit_compile: Any = "auto"
    steps_per_execution: int = 1
    run_eagerly: bool = False
    checkpoint_every: int = 1
    checkpoint_every_batches: int = 0
    limit_batches: int | None = None
    strategy: Any = None


@dataclass
class TrackingConfig:
    """MLflow settings; ``MLFLOW_TRACKING_URI`` wins over ``uri``."""

    enabled: bool = True
    uri: str | None = None
    experiment_name: str | None = None
    run_name: str | None = None
    log_checkpoints: bool = True
    log_model: bool = True
    register_model: str | None = None
    review_in_sweeps: bool = False
    delivery_timeout: float = 60.0
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class SecurityConfig:
    """What a config file may do: ``_target_`` entries only from these module prefixes."""

    allowed_targets: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWED))


@dataclass
class ObjectiveConfig:
    """The metric a run returns to a sweeper: its name as logged, and its direction."""

    metric: str = "fit/val_loss"
    direction: str = "minimize"


@dataclass
class Config:
    """The whole configuration (``conf/config.yaml`` composes it)."""

    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    optimizer: Any = field(default_factory=dict)
    loss: Any = None
    loss_weights: Any = None
    metrics: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    stages: dict[str, Any] = field(default_factory=dict)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    seed: int | None = None
    deterministic: bool = False
    resume: bool = True


def register_schema() -> None:
    """Store the schema in Hydra's ConfigStore as ``config_schema``."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="config_schema", node=Config)


# -- Reading plugin selections -------------------------------------------------------


def to_python(node: Any) -> Any:
    """A plain ``dict``/``list`` copy of an OmegaConf node (other values unchanged)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def split_spec(node: Any, key: str, name_field: str = "name") -> tuple[str, dict[str, Any]]:
    """``{name: x, a: 1}`` -> ``("x", {"a": 1})``; anything else is a user error at ``key``.

    ``{_target_: keras.losses.Huber, delta: 2}`` -> ``("_target_", {"_target_": ..., "delta": 2})``.
    """
    node = to_python(node)
    if isinstance(node, Mapping) and TARGET in node and name_field not in node:
        return TARGET, dict(node)
    if not isinstance(node, Mapping) or name_field not in node:
        raise UserError(
            key,
            f"expected a mapping with '{name_field}' (e.g. {{{name_field}: ...}}), got {node!r}.",
        )
    args = {k: v for k, v in node.items() if k != name_field}
    return node[name_field], args


def named_entries(node: Any) -> Iterator[tuple[str, Any]]:
    """The enabled ``(key, entry)`` pairs of a mapping such as ``callbacks``; ``null`` disables."""
    for key, entry in (to_python(node) or {}).items():
        if entry is not None:
            yield str(key), entry


def is_spec(node: Any) -> bool:
    """Whether ``node`` selects one plugin (``{name: ...}`` or ``{_target_: ...}``)."""
    return isinstance(node, Mapping) and ("name" in node or TARGET in node)


# -- Validation --------------------------------------------------------------------


def restricted(cfg: DictConfig, registries: Mapping[str, Any]) -> dict[str, Any]:
    """The registries as this config may use them: ``_target_`` limited to ``security.allowed_targets``."""
    allowed = tuple(cfg.security.allowed_targets)
    return {kind: registry.restricted(allowed) for kind, registry in registries.items()}


def validate(cfg: DictConfig, registries: Mapping[str, Any]) -> None:
    """Check plugin names, argument names and value ranges; raise :class:`UserError`.

    Nothing is changed: the registries are read through :func:`restricted` views.
    """
    allowed = tuple(cfg.security.allowed_targets)
    registries = restricted(cfg, registries)
    for name in cfg:
        check_targets(to_python(cfg[name]), str(name), allowed)
    _check_ranges(cfg)
    _check_data(to_python(cfg.data), registries["data_source"])
    _check_spec(cfg.model, "model", registries["model_builder"])
    _check_optimizer(cfg.optimizer, registries["optimizer"])
    _check_loss(to_python(cfg.loss), "loss", registries["loss"])
    for label, entry in named_entries(cfg.metrics):
        if isinstance(entry, str):
            continue
        entry = {k: v for k, v in entry.items() if k != "output"} if is_spec(entry) else entry
        _check_spec(entry, f"metrics.{label}", registries["metric"])
    for label, entry in named_entries(cfg.callbacks):
        _check_spec(entry, f"callbacks.{label}", registries["callback"])
    _check_strategy(to_python(cfg.trainer.strategy), registries["strategy"])
    stages = list(named_entries(cfg.stages))
    if not stages:
        raise UserError("stages", "no stage is enabled; add one, e.g. stages={fit: {kind: fit}}.")
    for label, entry in stages:
        kind, args = split_spec(entry, f"stages.{label}", name_field="kind")
        registries["stage"].check(kind, args, f"stages.{label}")
        _check_stage_ranges(args, f"stages.{label}")
        if args.get("optimizer") is not None:
            _check_optimizer(args["optimizer"], registries["optimizer"], f"stages.{label}.optimizer")


def _check_ranges(cfg: DictConfig) -> None:
    trainer = cfg.trainer
    if trainer.epochs < 0:
        raise UserError("trainer.epochs", f"must be 0 or more, got {trainer.epochs}.")
    if trainer.batch_size < 1:
        raise UserError("trainer.batch_size", f"must be 1 or more, got {trainer.batch_size}.")
    if trainer.steps_per_execution < 1:
        raise UserError(
            "trainer.steps_per_execution", f"must be 1 or more, got {trainer.steps_per_execution}."
        )
    if trainer.checkpoint_every < 0:
        raise UserError(
            "trainer.checkpoint_every",
            f"must be 0 (no checkpoints) or a number of epochs, got {trainer.checkpoint_every}.",
        )
    if trainer.checkpoint_every_batches < 0:
        raise UserError(
            "trainer.checkpoint_every_batches",
            f"must be 0 (epoch ends only) or a number of batches, got {trainer.checkpoint_every_batches}.",
        )
    if trainer.limit_batches is not None and trainer.limit_batches < 1:
        raise UserError("trainer.limit_batches", f"must be null or 1 or more, got {trainer.limit_batches}.")
    if cfg.deterministic and cfg.seed is None:
        raise UserError("seed", "deterministic=true needs a seed; set seed=<int> as well.")
    if cfg.objective.direction not in ("minimize", "maximize"):
        raise UserError(
            "objective.direction", f"must be minimize or maximize, got {cfg.objective.direction!r}."
        )


def _check_stage_ranges(args: Mapping[str, Any], key: str) -> None:
    """The ranges of the arguments the built-in stages share, wherever a stage takes them."""
    epochs, batch_size, fraction = (args.get(name) for name in ("epochs", "batch_size", "validation_split"))
    if epochs is not None and epochs < 0:
        raise UserError(f"{key}.epochs", f"must be 0 or more, got {epochs}.")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"{key}.batch_size", f"must be 1 or more, got {batch_size}.")
    if fraction is not None and not 0 <= fraction < 1:
        raise UserError(
            f"{key}.validation_split", f"must be at least 0 and below 1 (0.2 holds out 20%), got {fraction}."
        )


def _check_spec(node: Any, key: str, registry: Any) -> None:
    name, args = split_spec(node, key)
    registry.check(name, args, key)


def _check_data(node: Any, registry: Any) -> None:
    """A data source, and the ones it wraps (``data.source: {name: mnist}``), outermost first."""
    key = "data"
    while True:
        _check_spec(node, key, registry)
        if not is_spec(node.get("source")):
            return
        node, key = node["source"], f"{key}.source"


def _check_optimizer(node: Any, registry: Any, key: str = "optimizer") -> None:
    """An optimizer is a Keras string id (``rmsprop``) or a spec whose learning rate may be a schedule."""
    if isinstance(node, str):
        return
    name, args = split_spec(node, key)
    learning_rate = args.get("learning_rate")
    if is_spec(learning_rate):
        _check_spec(learning_rate, f"{key}.learning_rate", registry)
        args = {**args, "learning_rate": 0.0}
    registry.check(name, args, key)


def strategy_spec(node: Any) -> tuple[str, dict[str, Any]] | None:
    """``trainer.strategy`` as ``(name, args)``: a registered name or ``{name: ..., **args}``; null: none."""
    node = to_python(node)
    if node is None:
        return None
    if isinstance(node, str):
        return node, {}
    return split_spec(node, "trainer.strategy")


def _check_strategy(node: Any, registry: Any) -> None:
    spec = strategy_spec(node)
    if spec is not None:
        registry.check(*spec, "trainer.strategy")


def _check_loss(node: Any, key: str, registry: Any) -> None:
    """A loss is null, a Keras string id, a spec, or a list/mapping of them per output."""
    if node is None or isinstance(node, str):
        return
    if is_spec(node):
        _check_spec(node, key, registry)
    elif isinstance(node, Mapping):
        for output, entry in node.items():
            _check_loss(entry, f"{key}.{output}", registry)
    elif isinstance(node, list):
        for index, entry in enumerate(node):
            _check_loss(entry, f"{key}[{index}]", registry)
    else:
        raise UserError(key, f"expected a loss name, a {{name: ...}} mapping or null, got {node!r}.")


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [2]}`` -> ``{"a.b": 1, "c.0": 2}``: the config as MLflow params."""
    node = to_python(node)
    flat: dict[str, Any] = {}
    items = node.items() if isinstance(node, Mapping) else enumerate(node)
    for key, value in items:
        full = f"{prefix}{key}"
        if isinstance(value, (Mapping, list)) and value:
            flat.update(flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat
