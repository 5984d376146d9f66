"""What the Optuna sweeper and its jobs share: the search space, the storage, the trial file.

The sweeper (main process) parses ``hydra.sweeper.params`` into Optuna
distributions, creates the study, and before each trial's job starts writes
``optuna-sweep.json`` in the sweep folder: the study's name and storage, the
pruner, the pruning metric, and which job number runs which trial. A job (in
the main process or a launcher's worker) reads that file to find its trial and
reports to it through :func:`load_trial`.

Optuna is imported inside the functions that need it; this module is private
(Hydra's plugin scan skips ``_`` modules) and is imported only by the sweeper's
``sweep()`` and by the pruning plugin when a job is a trial.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError, exit_on

log = logging.getLogger("orchestrator.optuna")

#: The file in the sweep folder through which the sweeper tells its jobs which trial they are.
SWEEP_FILE = "optuna-sweep.json"
#: The default storage: an Optuna journal file in the sweep folder (reachable from every launcher).
JOURNAL_FILE = "optuna-journal.log"

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")


class SweeperConfigError(UserError):
    """A mistake in ``hydra.sweeper``: the key at fault and what would be right."""

    def exit(self) -> None:
        """Print the error as one paragraph and end the command with exit code 2 (a user error)."""
        exit_on(self)


# -- Checks of the sweep's config ------------------------------------------------------------

TARGET = "hydra_plugins.orchestrator_optuna_sweeper.OrchestratorOptunaSweeper"


def is_selected(cfg: Any) -> bool:
    """Whether the multirun of ``cfg`` (with its ``hydra`` node) uses this sweeper."""
    sweeper = cfg.hydra.get("sweeper") if "hydra" in cfg else None
    return sweeper is not None and sweeper.get("_target_") == TARGET


def check(cfg: Any, warn: bool = False) -> tuple[str, str | None]:
    """``(direction, pruning metric)`` of a sweep's config, or a :class:`SweeperConfigError`.

    The direction defaults to ``objective.direction``; the pruning metric (``None``
    without a pruner) to ``objective.metric``, and must be logged every epoch:
    ``<fit stage>/<Keras name>``.
    """
    from omegaconf import OmegaConf

    sweeper = cfg.hydra.sweeper
    objective = str(cfg.objective.direction)
    direction = str(sweeper.get("direction") or objective)
    if direction not in ("minimize", "maximize"):
        raise SweeperConfigError(
            "hydra.sweeper.direction", f"must be minimize or maximize, got {direction!r}."
        )
    if warn and direction != objective:
        log.warning(
            "hydra.sweeper.direction=%s but objective.direction=%s: Optuna will %s, while the sweep "
            "report ranks jobs by objective.direction.",
            direction,
            objective,
            direction,
        )
    for key in ("n_trials", "n_jobs"):
        if int(sweeper.get(key, 1)) < 1:
            raise SweeperConfigError(f"hydra.sweeper.{key}", f"must be 1 or more, got {sweeper.get(key)}.")
    check_launcher(int(sweeper.get("n_jobs", 1)), cfg.hydra.launcher)
    sampler = (sweeper.get("sampler") or {}).get("name", "tpe")
    if sampler not in SAMPLERS:
        raise SweeperConfigError(
            "hydra.sweeper.sampler.name", f"must be one of {', '.join(SAMPLERS)}, got {sampler!r}."
        )
    pruner = sweeper.get("pruner") or {}
    if pruner.get("name", "median") not in (*PRUNERS, None):
        raise SweeperConfigError(
            "hydra.sweeper.pruner.name", f"must be one of {', '.join(PRUNERS)}, got {pruner.get('name')!r}."
        )
    if pruner.get("name", "median") in ("none", None):
        return direction, None
    explicit = sweeper.get("pruning_metric")
    metric = str(explicit or cfg.objective.metric)
    source = "hydra.sweeper.pruning_metric" if explicit else "objective.metric"
    stage_name, slash, keras_name = metric.partition("/")
    stages: Any = OmegaConf.to_container(cfg.stages, resolve=True) or {}
    stage = stages.get(stage_name) if slash and keras_name else None
    kind = stage.get("kind") if isinstance(stage, dict) else None
    if stage is None or kind in ("evaluate", "predict"):
        fits = [
            str(name)
            for name, entry in stages.items()
            if isinstance(entry, dict) and entry.get("kind") == "fit"
        ]
        # test/sparse_categorical_accuracy -> fit/val_sparse_categorical_accuracy
        base = keras_name.removeprefix("val_") if slash and keras_name else "loss"
        example = f"{fits[0] if fits else 'fit'}/val_{base}"
        why = (
            f"the stage '{stage_name}' is an {kind} stage, which logs it once"
            if kind
            else f"it is not named <fit stage>/<Keras name> (fit stages: {', '.join(fits) or 'none'})"
        )
        raise SweeperConfigError(
            "hydra.sweeper.pruning_metric",
            f"pruning needs a metric logged every epoch, but {source} is '{metric}': {why}. "
            f"Set hydra.sweeper.pruning_metric={example} (or another per-epoch metric), "
            "or turn pruning off with hydra.sweeper.pruner.name=none.",
        )
    lowered = keras_name.lower()
    if warn and (
        (direction == "maximize" and lowered.endswith(("loss", "error")))
        or (direction == "minimize" and "acc" in lowered)
    ):
        log.warning(
            "The pruning metric %s looks like one to %s, but the study's direction is %s, and the "
            "pruner compares it in that direction.",
            metric,
            "minimize" if direction == "maximize" else "maximize",
            direction,
        )
    return direction, metric


#: Launchers that run a job in the calling process and thread: one job at a time.
IN_PROCESS = ("hydra._internal.core_plugins.basic_launcher.BasicLauncher",)


def check_launcher(n_jobs: int, launcher: Any) -> None:
    """``hydra.sweeper.n_jobs`` trials at once need a launcher that runs as many jobs at once, each in a
    process of its own (joblib, submitit, Ray); the basic launcher runs jobs in the sweep's process."""
    if n_jobs == 1:
        return
    target = str(launcher.get("_target_", ""))
    if target in IN_PROCESS:
        raise SweeperConfigError(
            "hydra.sweeper.n_jobs",
            f"is {n_jobs}, but the basic launcher runs one job at a time in this process. Run the trials "
            f"in parallel with hydra/launcher=joblib hydra.launcher.n_jobs={n_jobs}, or set "
            "hydra.sweeper.n_jobs=1.",
        )
    workers = launcher.get("n_jobs")
    if isinstance(workers, int) and 0 < workers < n_jobs:
        raise SweeperConfigError(
            "hydra.sweeper.n_jobs",
            f"is {n_jobs}, but hydra.launcher.n_jobs={workers} runs fewer jobs at once (with 1, joblib "
            f"would run them in this process's threads). Set hydra.launcher.n_jobs={n_jobs}.",
        )


# -- Study ------------------------------------------------------------------------------


def resolve_storage(storage: str | None, sweep_dir: Path) -> str:
    """The storage as the jobs will open it: a database URL, or a journal file's absolute path."""
    if not storage:
        return str(Path(sweep_dir) / JOURNAL_FILE)
    if "://" in storage:
        return storage
    return str(Path(storage).expanduser().resolve())


def carry_journal(previous: Path, sweep_dir: Path) -> None:
    """Copy the default journal of an interrupted sweep's folder into the folder it goes on in."""
    import shutil

    source, target = Path(previous) / JOURNAL_FILE, Path(sweep_dir) / JOURNAL_FILE
    if source.exists() and not target.exists():
        shutil.copyfile(source, target)


def open_storage(storage: str) -> Any:
    """An Optuna storage: ``sqlite:///...`` (any database URL) or a journal file path."""
    import optuna

    if "://" in storage:
        return optuna.storages.get_storage(storage)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(storage))


def make_sampler(conf: dict[str, Any]) -> Any:
    import optuna

    name = conf.get("name", "tpe")
    seed = conf.get("seed")
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(conf.get("n_startup_trials", 10)))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SweeperConfigError(
        "hydra.sweeper.sampler.name", f"must be one of {', '.join(SAMPLERS)}, got {name!r}."
    )


def make_pruner(conf: dict[str, Any]) -> Any:
    import optuna

    name = conf.get("name", "median")
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(conf.get("n_startup_trials", 5)),
            n_warmup_steps=int(conf.get("n_warmup_steps", 0)),
            interval_steps=int(conf.get("interval_steps", 1)),
        )
    if name in ("none", None):
        return optuna.pruners.NopPruner()
    raise SweeperConfigError(
        "hydra.sweeper.pruner.name", f"must be one of {', '.join(PRUNERS)}, got {name!r}."
    )


# -- The trial file ------------------------------------------------------------------------


def write_sweep_file(sweep_dir: Path, info: dict[str, Any]) -> None:
    """Write ``optuna-sweep.json`` atomically (the jobs about to start read it)."""
    path = Path(sweep_dir) / SWEEP_FILE
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(info, indent=2))
    temporary.replace(path)


def read_trial(sweep_dir: Path, job_number: int) -> dict[str, Any] | None:
    """What a job needs to reach its trial (``study_name``, ``storage``, ``trial``, ...), or ``None``."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    trial = info.get("trials", {}).get(str(job_number))
    if trial is None:
        return None
    return {**{k: v for k, v in info.items() if k != "trials"}, "trial": int(trial)}


def load_trial(info: dict[str, Any]) -> Any:
    """The running ``optuna.trial.Trial`` of a job, from the storage, in any process."""
    import optuna

    storage = open_storage(info["storage"])
    study = optuna.load_study(
        study_name=info["study_name"],
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),  # a job never samples
        pruner=make_pruner(info.get("pruner") or {}),
    )
    study_id = storage.get_study_id_from_name(info["study_name"])
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(info["trial"]))
    return optuna.trial.Trial(study, trial_id)
