"""Every hook of the orchestrator: this module is their reference documentation.

A plugin is a module (or object) with functions marked ``@orchestrator.hookimpl``
whose names are the hook names below; it may implement any subset. Plugins are
found through the ``orchestrator`` entry-point group, the built-ins included.

Sections:

* Registration: one hook per plugin kind, each handed a :class:`~orchestrator.registry.Registry`.
* Configuration: where a plugin's own config-group entries live, or the entries themselves.
* Lifecycle: observe a run. Tracking (MLflow) is itself a plugin on these hooks.

The lifecycle order of a sweep (a Hydra multirun) is::

    before_sweep -> (one run per job) -> after_sweep

and of one run::

    before_run -> (before_stage -> after_epoch* -> after_stage)* -> after_run

with ``on_tags`` and ``on_artifact`` whenever the run produces a tag or a file.
``after_run`` is always called, with the error when the run failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import hookspec

if TYPE_CHECKING:  # for the annotations only: loading the hook specs imports no host module
    from orchestrator.context import RunContext
    from orchestrator.registry import Registry
    from orchestrator.stage import Stage
    from orchestrator.sweep.state import Sweep

# -- Registration ---------------------------------------------------------------
# Each hook receives a registry; call ``registry.add(name, factory)``. A factory
# takes the config entry's keyword arguments (and ``context`` when it declares a
# parameter of that name) and returns the object. Import TensorFlow and Keras
# inside the factory, never at module level: listing plugins and validating a
# config must stay fast.


@hookspec
def orchestrator_register_data_sources(registry: Registry) -> None:
    """Register data sources, selected with ``data.name``.

    A data source factory returns an :class:`orchestrator.Data` holding the
    train, validation and test splits in any form ``Model.fit`` accepts, plus an
    ``info`` dict (``input_shape``, ``num_classes``, ``source``) for model builders.
    ``info["steps"] = {"train": 94, ...}`` gives the batches of one pass over each
    split; the built-in stages use it as their step count, which a split that never
    ends (a Python generator) needs. ``info["format"]`` is tagged on the run.
    ``info["reusable"] = True`` says the same arguments always give the same
    in-memory arrays: the next job of an in-process sweep then reuses them.

    Example::

        @hookimpl
        def orchestrator_register_data_sources(registry):
            registry.add("toy", toy_data)   # data: {name: toy, size: 100}
    """


@hookspec
def orchestrator_register_model_builders(registry: Registry) -> None:
    """Register model builders, selected with ``model.name``.

    A model builder returns an uncompiled ``keras.Model``; declare a ``context``
    parameter to read ``context.data.info`` (input shape, class count).

    Example::

        registry.add("mlp", build_mlp)      # model: {name: mlp, hidden_units: [64, 64]}
    """


@hookspec
def orchestrator_register_optimizers(registry: Registry) -> None:
    """Register optimizers and learning-rate schedules, selected with ``optimizer.name``.

    An optimizer factory returns a ``keras.optimizers.Optimizer``. Schedules are
    registered in the same registry and are selected as ``optimizer.learning_rate.name``.

    Example::

        registry.add("rmsprop", lazy("keras.optimizers.RMSprop"))
    """


@hookspec
def orchestrator_register_losses(registry: Registry) -> None:
    """Register losses, selected with ``loss.name``.

    A loss factory returns a ``keras.losses.Loss`` or a function ``(y_true, y_pred)``.

    Example::

        registry.add("custom_mse", lambda: custom_mean_squared_error)
    """


@hookspec
def orchestrator_register_metrics(registry: Registry) -> None:
    """Register metrics, selected by name in the ``metrics`` mapping (``metrics.<label>.name``).

    A metric factory returns a ``keras.metrics.Metric`` or a metric function.

    Example::

        registry.add("auc", lazy("keras.metrics.AUC"))   # metrics: [{name: auc, num_thresholds: 100}]
    """


@hookspec
def orchestrator_register_callbacks(registry: Registry) -> None:
    """Register Keras callbacks, selected by name in the ``callbacks`` mapping.

    A callback factory returns a ``keras.callbacks.Callback``; declare ``context``
    to place files in the run's output folder (``context.output_dir``).

    Example::

        registry.add("early_stopping", lazy("keras.callbacks.EarlyStopping"))
    """


@hookspec
def orchestrator_register_stages(registry: Registry) -> None:
    """Register stage kinds, selected with ``stages.<stage>.kind``.

    A stage is a function ``(context, stage, **args) -> dict`` that runs one step
    of the workflow (``fit``, ``evaluate``, ``predict``, ...) on ``context.model``
    and returns its summary metrics by Keras name; the host prefixes them with the
    stage's name before they are logged.

    Example::

        registry.add("export", export_stage)   # stages: {export: {kind: export, format: tflite}}
    """


@hookspec
def orchestrator_register_strategies(registry: Registry) -> None:
    """Register distribution strategies, selected with ``trainer.strategy``.

    A strategy factory returns a ``tf.distribute.Strategy`` (or, when its ``backends``
    attribute names another backend, ``factory.backends = ("jax",)``, a
    ``keras.distribution`` such as ``DataParallel``). The host calls it once
    per process and configuration (before the run's MLflow run opens), builds and
    compiles the model inside ``strategy.scope()``, and scales in-memory batch
    sizes to the global batch (``trainer.batch_size`` x ``num_replicas_in_sync``).
    Only the worker whose ``strategy.extended.should_checkpoint`` is true tracks
    the run; the others write their files to a temporary folder.

    Example, a TPU strategy::

        def tpu(tpu: str = "local"):
            import tensorflow as tf

            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)

        registry.add("tpu", tpu)            # trainer: {strategy: {name: tpu, tpu: my-tpu}}
    """


# -- Configuration ----------------------------------------------------------------


@hookspec
def orchestrator_config_searchpath() -> str | list[str] | None:
    """Return Hydra search-path entries holding this plugin's own config-group files.

    A file ``conf/data/mydata.yaml`` in a folder named here becomes selectable as
    ``data=mydata`` with no edit to the project.

    Example::

        @hookimpl
        def orchestrator_config_searchpath():
            return ["pkg://my_package.conf"]
    """


@hookspec
def orchestrator_config_options() -> Mapping[str, Mapping[str, Any]] | None:
    """Return config-group options this plugin answers without a YAML file, by ``group/option``.

    Each value is the content a file ``conf/<group>/<option>.yaml`` would hold. A
    real YAML file of the same path wins (in the project's ``conf/`` or in a
    plugin's search-path folder). Options are not listed by Hydra's ``--help``;
    ``python -m orchestrator plugins`` counts them, and a misspelt one gets "did
    you mean" from them. Two plugins answering the same option is an error.

    Example (``optimizer=nadam``, ``metrics=[auc,precision]``)::

        @hookimpl
        def orchestrator_config_options():
            return {
                "optimizer/nadam": {"name": "nadam"},
                "metrics/auc": {"auc": {"name": "auc"}},
                "metrics/precision": {"precision": {"name": "precision"}},
            }
    """


# -- Lifecycle --------------------------------------------------------------------


@hookspec
def orchestrator_before_run(context: RunContext) -> None:
    """Called once the configuration is valid, before data is loaded or a model built.

    ``context`` is the :class:`~orchestrator.context.RunContext`: the resolved
    config, the output folder, the job's overrides.
    """


@hookspec
def orchestrator_fit_callbacks(context: RunContext, stage: Stage) -> list[Any] | None:
    """Return Keras callbacks to add to a fit stage (a list, or ``None``).

    For plugins that must act inside ``Model.fit`` (stop early, prune a trial);
    to observe epochs, ``orchestrator_after_epoch`` is simpler.

    Example::

        @hookimpl
        def orchestrator_fit_callbacks(context, stage):
            return [keras.callbacks.TerminateOnNaN()]
    """


@hookspec
def orchestrator_before_stage(context: RunContext, stage: Stage) -> None:
    """Called before each stage; ``stage`` is a :class:`~orchestrator.stage.Stage`."""


@hookspec
def orchestrator_after_epoch(
    context: RunContext, stage: Stage, epoch: int, metrics: Mapping[str, float], checkpoint: Path | None
) -> None:
    """Called after every training epoch of a fit stage.

    Args:
        epoch: the Keras epoch index (0-based, continuing across fit stages); use it as the step.
        metrics: ``{"<stage>/<keras name>": value}``, training and validation.
        checkpoint: path of the checkpoint written for this epoch, or ``None``.
    """


@hookspec
def orchestrator_after_stage(context: RunContext, stage: Stage, metrics: Mapping[str, float]) -> None:
    """Called after each stage with its summary ``metrics`` (``{"test/loss": 0.1}``)."""


@hookspec
def orchestrator_on_tags(context: RunContext, tags: Mapping[str, str]) -> None:
    """Called when the run learns facts worth tagging (``{"data_source": "keras"}``)."""


@hookspec
def orchestrator_on_artifact(context: RunContext, path: Path, artifact_path: str | None) -> None:
    """Called when the run wrote a file (or a folder of files) worth keeping.

    A watched folder (TensorBoard logs) is handed over again after every stage.

    Args:
        path: the local file or folder.
        artifact_path: the folder it belongs in among the run's artifacts (``"model"``).
    """


@hookspec
def orchestrator_after_run(context: RunContext, error: BaseException | None) -> None:
    """Called once at the end of every run that reached ``before_run``.

    The run's record is still open here: what a plugin hands over now
    (``context.log_artifact``, ``context.set_tags``) is recorded, whatever the
    plugin is named. The tracker ends
    the MLflow run after every plugin's ``after_run`` (it is a hook wrapper), so a
    plugin cannot see the run's final status or wait for MLflow here.

    Example::

        @hookimpl
        def orchestrator_after_run(context, error):
            report = context.output_dir / "report.html"
            report.write_text(render(context.metrics))
            context.log_artifact(report, "reports")
            context.set_tags(report="reports/report.html")

    Args:
        error: the exception that ended the run, or ``None`` when it succeeded.
    """


@hookspec
def orchestrator_before_sweep(sweep: Sweep) -> None:
    """Called once in the main process before the first job of a multirun.

    ``sweep`` is an :class:`~orchestrator.sweep.state.Sweep`. What a plugin puts in
    ``sweep.state`` (JSON-serialisable) reaches every job as ``context.sweep.state``,
    whatever launcher runs the jobs. Tracking opens the parent run here.

    Hydra turns an exception raised here into a warning; a plugin that must stop
    the sweep prints its message and raises ``SystemExit``.
    """


@hookspec
def orchestrator_after_sweep(sweep: Sweep, jobs: list[dict[str, Any]], report: Mapping[str, Path]) -> None:
    """Called once in the main process after the last job of a multirun.

    Args:
        jobs: one dict per job: ``number``, ``overrides``, ``status``
            (``FINISHED``, ``PRUNED``, ``FAILED``, ``KILLED``, ``SKIPPED``), ``objective``,
            ``run_id``, ``error``.
        report: the report files written in the sweep folder (``{"summary": Path, "plot": Path}``).
    """
