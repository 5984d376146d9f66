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

from orchestrator import training
from orchestrator.arrays import is_in_memory
from orchestrator.distribute import global_batch_size
from orchestrator.errors import UserError, choices_text
from orchestrator.model import compile_model, set_trainable
from orchestrator.resume.keeper import ResumeKeeper
from orchestrator.stage import SPLITS, Stage
from orchestrator.status import Status


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
        index: the command's :class:`~orchestrator.resume.index.RunIndex` entry.
        resume: where the run being continued stopped (:class:`~orchestrator.resume.point.ResumePoint`),
            or ``None`` for a new run.
        distribution: the :class:`~orchestrator.distribute.Distribution` of ``trainer.strategy``,
            else ``None``.
        spec: the checked config (:class:`~orchestrator.spec.RunSpec`); the host reads it.
        stages: the run's enabled :class:`Stage` entries, in order.
        session: what the process keeps between runs (:class:`~orchestrator.session.Session`).
        outcome: a :class:`~orchestrator.status.Status` set by :meth:`set_outcome`
            (``Status.PRUNED``), else ``None``.
        stash: per-run state of plugins, by a key of their own (``context.stash["mlflow.run_log"]``);
            nothing in it is recorded.
        keeper: the run's :class:`~orchestrator.resume.keeper.ResumeKeeper` (the host's, not the
            plugins': they read ``resume``).
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
    outcome: Status | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    watched: list[tuple[Path, str]] = field(default_factory=list)
    distribution: Any = field(default=None, repr=False)
    spec: Any = field(default=None, repr=False)
    stages: list[Stage] = field(default_factory=list, repr=False)
    session: Any = field(default=None, repr=False)
    stash: dict[str, Any] = field(default_factory=dict, repr=False)
    keeper: ResumeKeeper = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.keeper = ResumeKeeper(self)

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

    def set_outcome(self, outcome: Status | str) -> None:
        """Mark a run that ends early without failing (``Status.PRUNED``): the sweep records it so.

        The stages after it that change the model are skipped.
        """
        self.outcome = Status(outcome)
        self.set_tags(**{"orchestrator.outcome": self.outcome.value})

    def set_run_id(self, run_id: str) -> None:
        """What a tracking plugin calls once its store has created the run (from any thread).

        The run's entry in the command index gets the id at once, so that the same
        command started again after a kill continues in the same tracked run.
        """
        self.run_id = run_id
        self.keeper.run_id_known(run_id)

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
        name = self.spec.objective.metric
        if name not in self.metrics:
            raise UserError(
                "objective.metric",
                f"the run logged no metric {name!r}. Logged: {choices_text(self.metrics)}.",
            )
        return float(self.metrics[name])

    # -- What a stage kind uses --------------------------------------------------------

    def split(self, name: str | None, key: str) -> Any:
        """The data split ``name`` (``train``, ``validation``, ``test``); ``key``: the config key naming it.

        Example::

            test = context.split("test", f"stages.{stage.name}.split")
        """
        if name not in SPLITS:
            raise UserError(key, f"must be train, validation or test, got {name!r}.")
        data = self.data.split(name)
        if data is None:
            source = self.spec.data.name
            raise UserError(key, f"the data source '{source}' has no {name} split; choose another split.")
        return data

    def batch_size(self, split: Any, configured: int | None = None) -> int | None:
        """The batch size Keras gets for ``split``: ``configured`` (else ``trainer.batch_size``) per replica.

        ``None`` for a dataset object, which batches itself. Under ``trainer.strategy``
        Keras gets the global batch, the size times the replicas.
        """
        if not is_in_memory(split):
            return None
        return global_batch_size(self, self.spec.trainer.batch_size if configured is None else configured)

    def steps(self, configured: int | None, split: str | None) -> int | None:
        """The batches to read from ``split``: ``configured``, else the smaller of the data's
        one pass (``info["steps"][split]``) and ``trainer.limit_batches``; ``None``: until it ends."""
        if configured is not None:
            return configured
        one_pass = (self.data.info.get("steps") or {}).get(split) if split else None
        counts = [n for n in (one_pass, self.spec.trainer.limit_batches) if n is not None]
        return min(counts) if counts else None

    def fit(self, stage: Stage, train: Any, **arguments: Any) -> int:
        """``Model.fit`` inside the run: callbacks, checkpoints, epochs across stages and resume.

        See :func:`orchestrator.training.fit` for the arguments; returns the epochs trained.

        Example::

            context.fit(stage, context.split("train", key), epochs=2,
                        validation_data=context.split("validation", key))
        """
        return training.fit(self, stage, train, **arguments)

    def recompile(
        self, stage: Stage, trainable: dict[str, bool] | None = None, optimizer: Any = None
    ) -> None:
        """Freeze or unfreeze layers (``{layer name: bool}``) and/or change the optimizer, then compile again.

        ``optimizer`` is a spec as in the config (``{name: rmsprop, learning_rate: 1e-5}``).
        Nothing happens when both are ``None``.
        """
        key = f"stages.{stage.name}"
        if trainable:
            set_trainable(self.model, trainable, f"{key}.trainable")
        if trainable or optimizer is not None:
            with self.scope():
                compile_model(self, optimizer_node=optimizer, optimizer_key=f"{key}.optimizer")
