"""The run context: everything a stage, a factory or a lifecycle hook may need.

Example, a stage reading it::

    def fit(context, stage, epochs=1):
        history = context.model.fit(*context.data.train, epochs=epochs)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from orchestrator.errors import UserError, choices_text


@dataclass(frozen=True)
class Stage:
    """One entry of the ``stages`` mapping.

    Args:
        name: its key in ``stages``; the prefix of its metrics (``fit/loss``).
        kind: the registered stage kind (``fit``, ``evaluate``, ``predict``).
        args: the entry's other keys, passed to the stage function.
        index: its position in the run, from 0.
    """

    name: str
    kind: str
    args: dict[str, Any]
    index: int


@dataclass
class RunContext:
    """The state of one run (one Hydra job).

    Args:
        cfg: the resolved configuration.
        hook: pluggy's hook relay, to call lifecycle hooks.
        registries: one :class:`~orchestrator.registry.Registry` per plugin kind.
        output_dir: the job's output folder (Hydra's run folder); checkpoints and files go here.
        experiment: the preset's name (``+experiment=mnist``), or ``None``.
        overrides: the job's command-line overrides (``["seed=7"]``).
        sweep: the job's :class:`~orchestrator.sweep.SweepJob` in a multirun, else ``None``.
        index: the command's :class:`~orchestrator.resume.RunIndex` entry.
        resume: where the run being continued stopped (:class:`~orchestrator.resume.ResumePoint`),
            or ``None`` for a new run.
        distribution: the :class:`~orchestrator.distribute.Distribution` of ``trainer.strategy``,
            else ``None``.
    """

    cfg: DictConfig = field(repr=False)
    hook: Any = field(repr=False)
    registries: dict[str, Any] = field(repr=False)
    output_dir: Path
    experiment: str | None = None
    overrides: list[str] = field(default_factory=list)
    sweep: Any = None
    index: Any = field(default=None, repr=False)
    resume: Any = None
    data: Any = field(default=None, repr=False)
    model: Any = field(default=None, repr=False)
    metrics: dict[str, float] = field(default_factory=dict, repr=False)
    results: dict[str, Any] = field(default_factory=dict, repr=False)
    epochs_done: int = 0
    stage_start_epoch: int = 0
    reported: dict[str, Any] = field(default_factory=lambda: {"epoch": -1, "stages": []}, repr=False)
    last_checkpoint: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    objective_value: float | None = None
    outcome: str | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    watched: list[tuple[Path, str]] = field(default_factory=list)
    distribution: Any = field(default=None, repr=False)

    @property
    def chief(self) -> bool:
        """Whether this process records the run: always, unless it is a worker other than the chief."""
        return self.distribution is None or self.distribution.chief

    def scope(self) -> Any:
        """``strategy.scope()`` of ``trainer.strategy``; a no-op context without one.

        Build and compile models inside it::

            with context.scope():
                context.model.compile(...)
        """
        return contextlib.nullcontext() if self.distribution is None else self.distribution.strategy.scope()

    def set_outcome(self, outcome: str) -> None:
        """Mark a run that ends early without failing (``"PRUNED"``): the sweep records it so."""
        self.outcome = outcome
        self.set_tags(**{"orchestrator.outcome": outcome})

    def metric_name(self, stage: Stage, keras_name: str) -> str:
        """The name a Keras metric is logged under: ``"<stage>/<keras name>"``."""
        return f"{stage.name}/{keras_name}"

    def record(self, metrics: dict[str, float]) -> None:
        """Remember the latest value of each metric (the objective is read from here)."""
        self.metrics.update(metrics)

    def set_tags(self, **tags: Any) -> None:
        """Tag the run (``context.set_tags(data_source="keras")``)."""
        tags = {key: str(value) for key, value in tags.items()}
        self.tags.update(tags)
        self.hook.orchestrator_on_tags(context=self, tags=tags)

    def log_artifact(self, path: Path | str, artifact_path: str) -> None:
        """Hand a file or folder the run wrote to the plugins that keep artifacts."""
        self.hook.orchestrator_on_artifact(context=self, path=Path(path), artifact_path=artifact_path)

    def watch_artifact(self, path: Path | str, artifact_path: str) -> None:
        """A file or folder that grows during the run (TensorBoard logs, a CSV log).

        It is handed to :meth:`log_artifact` after every stage and when the run
        ends, failed or not.
        """
        if (Path(path), artifact_path) not in self.watched:
            self.watched.append((Path(path), artifact_path))

    def log_watched_artifacts(self) -> None:
        """Hand every watched file or folder that exists to the plugins."""
        for path, artifact_path in self.watched:
            if path.exists():
                self.log_artifact(path, artifact_path)

    def objective(self) -> float:
        """The value of ``objective.metric``, the number a sweeper optimises."""
        name = self.cfg.objective.metric
        if name not in self.metrics:
            raise UserError(
                "objective.metric",
                f"the run logged no metric {name!r}. Logged: {choices_text(self.metrics)}.",
            )
        return float(self.metrics[name])
