"""``run(cfg)``: one job from a valid config to its objective.

The whole workflow, top to bottom: check the config, tell the plugins the run
starts, seed, load the data, build and compile the model, run each stage in
order, save the model, and return the metric a sweeper optimises. The plugins
hear about every step through the lifecycle hooks, and ``after_run`` always
runs, with the error when there is one.

Example::

    objective = run(cfg, output_dir=Path("outputs/now"), experiment="mnist")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from orchestrator.backend import backend_version, seed_tensorflow_when_imported, use_backend
from orchestrator.config import restricted
from orchestrator.context import RunContext
from orchestrator.data import Data
from orchestrator.distribute import distribute, worker_files
from orchestrator.errors import UserError
from orchestrator.model import build_model, compile_model
from orchestrator.plugins import get_plugin_manager
from orchestrator.quiet_import import import_keras
from orchestrator.resume.index import RunIndex, command_key
from orchestrator.session import Session
from orchestrator.spec import validate
from orchestrator.stage import Stage
from orchestrator.status import Status

log = logging.getLogger("orchestrator")


def run(
    cfg: DictConfig,
    output_dir: Path,
    experiment: str | None = None,
    overrides: list[str] | None = None,
    sweep: Any = None,
    session: Session | None = None,
) -> float | None:
    """Run every configured stage; return ``objective.metric`` (``None`` if it was not logged)."""
    return execute(prepare(cfg, output_dir, experiment, overrides, sweep, session=session))


def prepare(
    cfg: DictConfig,
    output_dir: Path,
    experiment: str | None = None,
    overrides: list[str] | None = None,
    sweep: Any = None,
    root: Path | None = None,
    session: Session | None = None,
) -> RunContext:
    """Check the config against the plugins and make the run's context (nothing heavy yet).

    ``root`` is the folder the command runs from; the resume index lives there.
    ``session`` is what the process keeps between runs (a new one when not given).
    """
    manager = get_plugin_manager()
    spec = validate(cfg, manager.registries)
    overrides = list(overrides or [])
    return RunContext(
        cfg=cfg,
        hook=manager.hook,
        registries=restricted(cfg, manager.registries),
        output_dir=Path(output_dir),
        experiment=experiment,
        overrides=overrides,
        sweep=sweep,
        index=RunIndex(root or Path.cwd(), command_key(overrides, sweep.id if sweep else None, spec.backend)),
        spec=spec,
        stages=list(spec.stages),
        session=session or Session(),
    )


def execute(context: RunContext) -> float | None:
    """Run the prepared job between ``before_run`` and ``after_run``; return the objective.

    The config's Keras backend is set before Keras is first imported; a ``trainer.strategy``
    is created next (a multi-worker strategy must come before any other use of TensorFlow);
    the model is built and compiled in its scope.
    """
    spec = context.spec
    session = context.session
    use_backend(spec.backend, session.environment_backend, spec.deterministic, first_run=not session.runs)
    context.distribution = distribute(context)
    with worker_files(context):
        return _execute(context)


def _execute(context: RunContext) -> float | None:
    spec = context.spec
    keeper = context.keeper
    error: BaseException | None = None
    try:
        keeper.open()
        context.hook.orchestrator_before_run(context=context)
        keeper.started()
        if context.distribution is not None:
            context.set_tags(**context.distribution.tags())
        if context.sweep is not None and context.sweep.tags():
            context.set_tags(**context.sweep.tags())
        if context.session.runs:
            forget_previous_run()
        context.session.runs += 1
        seed_everything(spec.seed, spec.deterministic)
        context.set_tags(**{"orchestrator.backend_version": backend_version(spec.backend)})
        context.data = load_data(context)
        with context.scope():
            context.model = build_model(context)
            compile_model(context)
        run_stages(context)
        save_model(context)
        context.objective_value = objective(context)
        return context.objective_value
    except BaseException as caught:
        error = caught
        raise
    finally:
        context.log_watched_artifacts()
        try:
            context.hook.orchestrator_after_run(context=context, error=error)
        finally:
            keeper.close(error)


def forget_previous_run() -> None:
    """Free what an earlier job of an in-process sweep left behind (Keras graphs, names).

    ``clear_session`` collects garbage itself; a second ``gc.collect`` would double its cost.
    """
    import keras

    keras.backend.clear_session()


def seed_everything(seed: int | None, deterministic: bool) -> None:
    """Seed Python, NumPy and the backend as ``keras.utils.set_random_seed`` does; with
    ``deterministic``, ask the backend for deterministic ops.

    On JAX and PyTorch, TensorFlow is seeded when something imports it, a ``tf.data``
    source say (:func:`orchestrator.backend.seed_tensorflow_when_imported`). JAX's ops are
    deterministic on CPU; on GPU ``deterministic`` sets XLA's deterministic-ops flag
    before JAX starts (:func:`orchestrator.backend.use_backend`).
    """
    keras = import_keras()
    backend = keras.backend.backend()

    if seed is not None:
        keras.utils.set_random_seed(seed)
    if backend != "tensorflow":
        seed_tensorflow_when_imported(seed)
    if not deterministic:
        return
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)


def load_data(context: RunContext):
    """Call the data source named by ``data.name``; tag the run with where the data came from.

    Data whose source declares ``info["reusable"] = True`` (the same arguments always
    give the same arrays) is kept for the next job of an in-process sweep with the
    same ``data`` config, so a sweep over learning rates reads the files once.
    """
    session, selection = context.session, context.spec.data
    name = selection.name
    key = json.dumps(dict(selection.args, name=name), sort_keys=True, default=str)
    if session.reusable_data is not None and session.reusable_data[0] == key:
        data = session.reusable_data[1]
        log.info("Data: reusing the %s data of the previous job", data.info.get("source"))
    else:
        data = context.registries["data_source"].create(name, selection.arguments(), "data", context=context)
        if not isinstance(data, Data):
            raise UserError(
                "data.name", f"data source '{name}' returned {type(data).__name__}, not orchestrator.Data."
            )
        session.reusable_data = (key, data) if data.info.get("reusable") else None
    tags = {"data_source": data.info.get("source", name)}
    if "formats" in data.info:
        tags["data.format"] = "+".join(data.info["formats"])
    context.set_tags(**tags)
    return data


def run_stages(context: RunContext) -> None:
    """Run the configured stages in order.

    A resumed run skips the stages that ended before the interruption (calling
    their kind's ``when_skipped``, so the model reaches the next stage as it did
    the first time); a pruned run skips the stages that would change the model.
    """
    stages = context.registries["stage"]
    keeper = context.keeper
    for stage in context.stages:
        entry = stages.get(stage.kind, f"stages.{stage.name}")
        if keeper.skips(stage):
            log.info("Stage %s (%s): done before the interruption", stage.name, stage.kind)
            if entry.when_skipped is not None:
                entry.when_skipped(context, stage, **stage.args)
            continue
        if context.outcome == Status.PRUNED and entry.changes_model:
            log.info("Stage %s skipped: the run was pruned", stage.name)
            continue
        keeper.before_stage(stage)
        run_stage(context, stage, saves_weights=entry.changes_model)


def run_stage(context: RunContext, stage: Stage, saves_weights: bool = True) -> None:
    """Run one stage between its ``before_stage`` and ``after_stage`` hooks, then save the resume state.

    A stage that can change the model leaves its weights in ``resume/`` for a resumed run.
    """
    log.info("Stage %s (%s)", stage.name, stage.kind)
    context.hook.orchestrator_before_stage(context=context, stage=stage)
    registry = context.registries["stage"]
    metrics = registry.create(stage.kind, stage.args, f"stages.{stage.name}", context=context, stage=stage)
    seconds = context.keeper.stage_seconds()
    named = {context.metric_name(stage, name): value for name, value in (metrics or {}).items()}
    if named:
        log.info("Results of %s: %s", stage.name, "  ".join(f"{n}={v:.4g}" for n, v in named.items()))
    named[f"time/{stage.name}_seconds"] = seconds
    context.record(named)
    context.log_watched_artifacts()
    if context.keeper.reports_stage(stage):
        context.hook.orchestrator_after_stage(context=context, stage=stage, metrics=named)
        context.keeper.stage_reported(stage)
    weights = None
    if saves_weights:
        weights = context.output_dir / "resume" / f"after-{stage.index}-{stage.name}.keras"
        weights.parent.mkdir(parents=True, exist_ok=True)
        context.model.save(weights)
    context.keeper.stage_ended(stage, weights)


def save_model(context: RunContext) -> Path:
    """Save the trained model as ``model.keras`` in the output folder and hand it to the plugins."""
    path = context.output_dir / "model.keras"
    context.model.save(path)
    context.log_artifact(path, "model")
    return path


def objective(context: RunContext) -> float | None:
    """The value of ``objective.metric``, or ``None`` (with a warning) when it was not logged."""
    try:
        value = context.objective()
    except UserError as error:
        log.warning("%s", error)
        return None
    log.info("Objective %s = %.6g", context.spec.objective.metric, value)
    return value
