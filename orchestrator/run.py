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
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from orchestrator.config import named_entries, split_spec, to_python, validate
from orchestrator.context import RunContext, Stage
from orchestrator.errors import UserError
from orchestrator.plugins import get_plugin_manager

log = logging.getLogger("orchestrator")


def run(
    cfg: DictConfig,
    output_dir: Path,
    experiment: str | None = None,
    overrides: list[str] | None = None,
    sweep: Any = None,
) -> float | None:
    """Run every configured stage; return ``objective.metric`` (``None`` if it was not logged)."""
    return execute(prepare(cfg, output_dir, experiment, overrides, sweep))


def prepare(
    cfg: DictConfig,
    output_dir: Path,
    experiment: str | None = None,
    overrides: list[str] | None = None,
    sweep: Any = None,
    root: Path | None = None,
) -> RunContext:
    """Check the config against the plugins and make the run's context (nothing heavy yet).

    ``root`` is the folder the command runs from; the resume index lives there.
    """
    from orchestrator.resume import RunIndex, command_key

    manager = get_plugin_manager()
    validate(cfg, manager.registries)
    overrides = list(overrides or [])
    return RunContext(
        cfg=cfg,
        hook=manager.hook,
        registries=manager.registries,
        output_dir=Path(output_dir),
        experiment=experiment,
        overrides=overrides,
        sweep=sweep,
        index=RunIndex(root or Path.cwd(), command_key(overrides, sweep.id if sweep else None)),
    )


def execute(context: RunContext) -> float | None:
    """Run the prepared job between ``before_run`` and ``after_run``; return the objective.

    A ``trainer.strategy`` is created first (a multi-worker strategy must come before
    any other use of TensorFlow); the model is built and compiled in its scope.
    """
    from orchestrator.distribute import distribute, worker_files

    context.distribution = distribute(context)
    with worker_files(context):
        return _execute(context)


def _execute(context: RunContext) -> float | None:
    global _runs_in_process
    from orchestrator import resume

    cfg = context.cfg
    error: BaseException | None = None
    try:
        resume.open_run(context)
        context.hook.orchestrator_before_run(context=context)
        resume.run_started(context)
        if context.distribution is not None:
            context.set_tags(**context.distribution.tags())
        if _runs_in_process:
            forget_previous_run()
        _runs_in_process += 1
        seed_everything(cfg.seed, cfg.deterministic)
        context.data = load_data(context)
        from orchestrator.model import build_model, compile_model

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
            resume.run_ended(context, error)


#: How many runs this process has started: from the second on, Keras state is cleared first.
_runs_in_process = 0


def forget_previous_run() -> None:
    """Free what an earlier job of an in-process sweep left behind (Keras graphs, names).

    ``clear_session`` collects garbage itself; a second ``gc.collect`` would double its cost.
    """
    import keras

    keras.backend.clear_session()


def seed_everything(seed: int | None, deterministic: bool) -> None:
    """Seed Python, NumPy and TensorFlow as ``keras.utils.set_random_seed`` does."""
    from orchestrator.quiet_import import import_keras

    keras = import_keras()

    if seed is not None:
        keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def load_data(context: RunContext):
    """Call the data source named by ``data.name``; tag the run with where the data came from.

    Data whose source declares ``info["reusable"] = True`` (the same arguments always
    give the same arrays) is kept for the next job of an in-process sweep with the
    same ``data`` config, so a sweep over learning rates reads the files once.
    """
    from orchestrator.data import Data

    global _reusable_data
    key = json.dumps(to_python(context.cfg.data), sort_keys=True, default=str)
    if _reusable_data is not None and _reusable_data[0] == key:
        data = _reusable_data[1]
        log.info("Data: reusing the %s data of the previous job", data.info.get("source"))
    else:
        name, args = split_spec(context.cfg.data, "data")
        data = context.registries["data_source"].create(name, args, "data", context=context)
        if not isinstance(data, Data):
            raise UserError(
                "data.name", f"data source '{name}' returned {type(data).__name__}, not orchestrator.Data."
            )
        _reusable_data = (key, data) if data.info.get("reusable") else None
    tags = {"data_source": data.info.get("source", context.cfg.data.get("name"))}
    if "formats" in data.info:
        tags["data.format"] = "+".join(data.info["formats"])
    context.set_tags(**tags)
    return data


#: ``(data config as JSON, Data)`` of the last job, when its source said it may be reused.
_reusable_data: tuple[str, Any] | None = None


def configured_stages(cfg: DictConfig) -> list[Stage]:
    """The enabled entries of ``stages``, in order."""
    stages = []
    for index, (name, entry) in enumerate(named_entries(cfg.stages)):
        kind, args = split_spec(entry, f"stages.{name}", name_field="kind")
        stages.append(Stage(name=name, kind=kind, args=args, index=index))
    return stages


def run_stages(context: RunContext) -> None:
    """Run the configured stages in order; a resumed run skips those that ended.

    A skipped fit stage still applies its ``trainable`` and ``optimizer``
    settings, so the model reaches the next stage as it did the first time.
    """
    from orchestrator.resume import restore_model
    from orchestrator.stages import configure_fit

    resume = context.resume
    for stage in configured_stages(context.cfg):
        if resume is not None and stage.index < resume.stages_done:
            log.info("Stage %s (%s): done before the interruption", stage.name, stage.kind)
            if stage.kind == "fit":
                configure_fit(context, stage, **stage.args)
            continue
        if resume is not None and not resume.continues(stage):
            restore_model(context)
        run_stage(context, stage)


def run_stage(context: RunContext, stage: Stage) -> None:
    """Run one stage between its ``before_stage`` and ``after_stage`` hooks, then save the resume state."""
    from orchestrator.resume import READ_ONLY_STAGES, mark_reported, save_state

    log.info("Stage %s (%s)", stage.name, stage.kind)
    context.hook.orchestrator_before_stage(context=context, stage=stage)
    registry = context.registries["stage"]
    started = time.perf_counter()
    metrics = registry.create(stage.kind, stage.args, f"stages.{stage.name}", context=context, stage=stage)
    seconds = time.perf_counter() - started
    named = {context.metric_name(stage, name): value for name, value in (metrics or {}).items()}
    if named:
        log.info("Results of %s: %s", stage.name, "  ".join(f"{n}={v:.4g}" for n, v in named.items()))
    named[f"time/{stage.name}_seconds"] = seconds
    context.record(named)
    context.log_watched_artifacts()
    if stage.index not in context.reported["stages"]:
        context.hook.orchestrator_after_stage(context=context, stage=stage, metrics=named)
        mark_reported(context, stage=stage.index)
    weights = None
    if stage.kind not in READ_ONLY_STAGES:
        weights = context.output_dir / "resume" / f"after-{stage.index}-{stage.name}.keras"
        weights.parent.mkdir(parents=True, exist_ok=True)
        context.model.save(weights)
    save_state(context, stage, stage_done=True, weights=weights)


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
    log.info("Objective %s = %.6g", context.cfg.objective.metric, value)
    return value
