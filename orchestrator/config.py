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
from orchestrator.targets import DEFAULT_ALLOWED, TARGET


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
    backend: str = "tensorflow"
    seed: int | None = None
    deterministic: bool = False
    resume: bool = True
    dry_run: bool = False


def register_schema(trusted_targets: tuple[str, ...] = ()) -> None:
    """Store the schema in Hydra's ConfigStore as ``config_schema``.

    ``trusted_targets`` (the project's own plugin packages, ``("mine_plugin.",)``) join the
    default ``security.allowed_targets``, so the config and the run's params show them.
    """
    from hydra.core.config_store import ConfigStore

    allowed = list(dict.fromkeys([*DEFAULT_ALLOWED, *trusted_targets]))
    ConfigStore.instance().store(name="config_schema", node=Config(security=SecurityConfig(allowed)))


# -- Reading plugin selections -------------------------------------------------------


def to_python(node: Any) -> Any:
    """A plain ``dict``/``list`` copy of an OmegaConf node (other values unchanged)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def split_spec(node: Any, key: str, name_field: str = "name") -> tuple[str, dict[str, Any]]:
    """``{name: x, a: 1}`` -> ``("x", {"a": 1})``; anything else is a user error at ``key``.

    ``{_target_: keras.losses.Huber, delta: 2}`` -> ``("_target_", {"_target_": ..., "delta": 2})``:
    as in Hydra, every other key of a ``_target_`` node is an argument, ``name`` included.
    """
    node = to_python(node)
    if isinstance(node, Mapping) and TARGET in node:
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


def strategy_spec(node: Any) -> tuple[str, dict[str, Any]] | None:
    """``trainer.strategy`` as ``(name, args)``: a registered name or ``{name: ..., **args}``; null: none."""
    node = to_python(node)
    if node is None:
        return None
    if isinstance(node, str):
        return node, {}
    return split_spec(node, "trainer.strategy")


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
