"""A Hydra sweeper on current Optuna, with pruning: ``hydra/sweeper=orchestrator_optuna``.

hydra-optuna-sweeper 1.3.0 pins ``optuna<3`` and cannot prune; this sweeper
asks Optuna (5.x) for trials, launches them as jobs of the multirun through the
configured launcher (in process, or in parallel with joblib), and tells Optuna
each job's outcome: its objective, ``PRUNED`` (the job's pruning callback
stopped it, see ``orchestrator_plugins.optuna_pruning``) or ``FAIL``.

    python -m orchestrator -m +experiment=mnist +sweep=mnist_optuna
    python -m orchestrator -m +experiment=mnist hydra/sweeper=orchestrator_optuna \\
        'optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))' trainer.batch_size=32,64 \\
        hydra.sweeper.pruning_metric=fit/val_sparse_categorical_accuracy

The search space is ``hydra.sweeper.params`` (override key -> Hydra sweep
syntax) plus any sweep override on the command line; other overrides on the
command line apply to every trial. Optuna is imported in ``sweep()``, never
when this module loads: ``--help`` and ``--cfg`` stay fast.
"""

# No ``from __future__ import annotations`` here: Hydra's plugin scan executes this
# module before it is in sys.modules, and dataclasses then cannot resolve string
# annotations.
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from orchestrator.sweep.journal import FAILURES, read_journal
from orchestrator.sweep.state import read_state

log = logging.getLogger("orchestrator.optuna")


@dataclass
class SamplerConf:
    """How trials are sampled: ``tpe`` (Optuna's default) or ``random``."""

    name: str = "tpe"
    seed: int | None = None
    n_startup_trials: int = 10  # tpe: trials sampled at random before TPE models the results


@dataclass
class PrunerConf:
    """When a trial is stopped early: ``median`` (Optuna's MedianPruner) or ``none``."""

    name: str = "median"
    n_startup_trials: int = 5  # no pruning until this many trials completed
    n_warmup_steps: int = 0  # no pruning of a trial before this epoch (0-based)
    interval_steps: int = 1  # check every this many epochs


@dataclass
class OrchestratorOptunaSweeperConf:
    """``hydra.sweeper`` of ``hydra/sweeper=orchestrator_optuna`` (see docs/sweeps.md)."""

    _target_: str = "hydra_plugins.orchestrator_optuna_sweeper.OrchestratorOptunaSweeper"
    n_trials: int = 20  # trials this sweep runs (on top of those already in a resumed study)
    n_jobs: int = 1  # trials running at once, each asked for when one ends; the launcher's parallelism
    batches: bool = False  # true: wait for n_jobs trials to end before asking for more (Hydra's way)
    direction: str | None = None  # minimize | maximize; null: the job config's objective.direction
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    pruning_metric: str | None = None  # per-epoch metric, "<fit stage>/<Keras name>"; null: objective.metric
    study_name: str | None = None  # null: "<experiment>-<sweep id>"; an existing name resumes that study
    storage: str | None = None  # database URL or journal file; null: optuna-journal.log in the sweep folder
    params: dict[str, Any] = field(
        default_factory=dict
    )  # override key -> choice(...)/range(...)/interval(...)
    enqueue_trials: list[dict[str, Any]] = field(default_factory=list)  # params of the first trials


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="orchestrator_optuna",
    node=OrchestratorOptunaSweeperConf,
    provider="orchestrator",
)


class OrchestratorOptunaSweeper(Sweeper):
    """Runs ``n_trials`` Optuna trials as jobs of one Hydra multirun, ``n_jobs`` at a time, each asked
    for as soon as a running one ends (see ``_workers``)."""

    def __init__(
        self,
        n_trials: int = 20,
        n_jobs: int = 1,
        batches: bool = False,
        direction: str | None = None,
        sampler: Any = None,
        pruner: Any = None,
        pruning_metric: str | None = None,
        study_name: str | None = None,
        storage: str | None = None,
        params: Any = None,
        enqueue_trials: Any = None,
    ) -> None:
        self.n_trials = int(n_trials)
        self.n_jobs = int(n_jobs)
        self.batches = bool(batches)
        self.direction = direction
        self.sampler_conf = _plain(sampler) or {}
        self.pruner_conf = _plain(pruner) or {}
        self.pruning_metric = pruning_metric
        self.study_name = study_name
        self.storage = storage
        self.params = _dotted(_plain(params) or {})
        self.enqueue_trials = _plain(enqueue_trials) or []
        self.config: DictConfig | None = None
        self.hydra_context: Any = None
        self.launcher: Any = None
        self.job_idx = 0

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    @staticmethod
    def dry_run_jobs(config: DictConfig) -> list[list[str]]:
        """The override lists of the trials a sweep of ``config`` starts with (``dry_run=true``)."""
        from hydra_plugins.orchestrator_optuna_sweeper._dry_run import first_trials

        return first_trials(config)

    # -- the sweep ---------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> Any:
        from hydra_plugins.orchestrator_optuna_sweeper._study import SweeperConfigError

        assert self.config is not None and self.launcher is not None
        try:
            return self._sweep(arguments)
        except SweeperConfigError as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            error.exit()

    def _sweep(self, arguments: list[str]) -> list[Any]:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from hydra_plugins.orchestrator_optuna_sweeper import _space, _study, _trials, _workers

        try:
            import optuna
        except ImportError:
            raise _study.SweeperConfigError(
                "hydra/sweeper=orchestrator_optuna", "needs Optuna: pip install 'optuna>=4'."
            ) from None
        config = self.config
        assert config is not None
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep_dir / "multirun.yaml")

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space, fixed = _space.search_space(parser.parse_overrides(requested(self.params, arguments)))
        _space.enqueued(space, self.enqueue_trials)
        if not space:
            log.warning("The search space is empty: every trial runs the same configuration.")
        direction: Any
        direction, pruning_metric = _study.check(config, warn=True)
        pruner_conf = {"name": "median", **self.pruner_conf}
        state = read_state(sweep_dir)
        experiment = config.hydra.runtime.choices.get("experiment") or "orchestrator"
        study_name = self.study_name or f"{experiment}-{state.get('sweep_id') or sweep_dir.name}"
        storage = _study.resolve_storage(self.storage, sweep_dir)

        resumed_from = Path(state["resumed_from"]) if state.get("resumed_from") else None
        if resumed_from is not None and not self.storage and resumed_from.resolve() != sweep_dir:
            _study.carry_journal(resumed_from, sweep_dir)  # the study moves on with the sweep's folder
        study = optuna.create_study(
            study_name=study_name,
            storage=_study.open_storage(storage),
            sampler=_study.make_sampler(self.sampler_conf),
            pruner=_study.make_pruner(pruner_conf),
            direction=direction,
            load_if_exists=True,
        )
        sweep_id = str(state.get("sweep_id") or sweep_dir.name)
        trials = study.get_trials(deepcopy=False)
        existing = len(trials)
        if existing and self.sampler_conf.get("seed") is not None:
            # A resumed study: the same seed would sample the first trials over again.
            seed = int(self.sampler_conf["seed"]) + existing
            study.sampler = _study.make_sampler({**self.sampler_conf, "seed": seed})
            log.info("Study '%s' resumed with %d trials; sampler seed %d", study_name, existing, seed)
        for values in _space.enqueued(space, self.enqueue_trials):
            study.enqueue_trial(values, skip_if_exists=True)
        ended, in_flight = _trials.of_sweep(trials, sweep_id, resumed=resumed_from is not None)
        mine = ended + in_flight
        info: dict[str, Any] = {
            "study_name": study_name,
            "storage": storage,
            "direction": direction,
            "pruner": pruner_conf,
            "pruning_metric": pruning_metric,
            "trials": {
                str(t.user_attrs[_trials.JOB_ATTR]): t.number
                for t in mine
                if _trials.JOB_ATTR in t.user_attrs
            },
        }
        remaining = max(0, self.n_trials - len(ended) - len(in_flight))
        if mine:
            log.info(
                "Sweep %s goes on: %d of its %d trials ended, %d continue, %d to ask for",
                sweep_id, len(ended), self.n_trials, len(in_flight), remaining,
            )  # fmt: skip
        log.info(
            "Optuna study '%s' in %s: %d trials, %d at a time%s, %s, sampler %s, pruner %s on %s",
            study_name,
            storage,
            self.n_trials,
            self.n_jobs,
            " in batches" if self.batches else "",
            direction,
            self.sampler_conf.get("name", "tpe"),
            pruner_conf["name"],
            pruning_metric or "-",
        )
        self.job_idx = _trials.next_job_number(sweep_dir, info, resumed_from)
        distributions = {key: dim.distribution for key, dim in space.items()}
        trial_of: dict[int, Any] = {}
        left = {"ask": remaining}

        def overrides_of(trial: Any) -> list[str]:
            return [dim.override(trial.params[key]) for key, dim in space.items()] + fixed

        def ask() -> Any:
            if left["ask"] <= 0:
                return None
            if self._stop_after_failure(sweep_dir):
                log.warning("Sweep stopped: a trial failed and fail_fast is on.")
                left["ask"] = 0
                return None
            left["ask"] -= 1
            trial = study.ask(distributions)
            number = self.job_idx
            self.job_idx += 1
            trial.set_user_attr(_trials.JOB_ATTR, number)
            trial.set_user_attr(_trials.SWEEP_ATTR, sweep_id)
            return self._hand_out(info, sweep_dir, trial, number, overrides_of(trial), trial_of)

        first = []
        for frozen in in_flight:
            number = int(frozen.user_attrs[_trials.JOB_ATTR])
            trial = optuna.trial.Trial(study, frozen._trial_id)
            first.append(self._hand_out(info, sweep_dir, trial, number, overrides_of(frozen), trial_of))
            log.info(
                "Trial %d (job %d) was running when the sweep stopped: it continues", frozen.number, number
            )
        returns: list[Any] = []

        def tell(item: tuple[int, list[str]], result: Any, error: BaseException | None) -> None:
            number = item[0]
            trial = trial_of.pop(number)
            if error is not None:
                log.error(
                    "Trial %d (job %d) could not run: %s: %s",
                    trial.number,
                    number,
                    type(error).__name__,
                    error,
                )
            _trials.tell(study, trial, number, result, sweep_dir, error, item[1])
            if result is not None:
                returns.append([result])

        _workers.run(
            launch=self._launch_one,
            first=first,
            ask=ask,
            tell=tell,
            workers=self.n_jobs,
            batched=self.batches,
        )
        _trials.summary(study)
        return returns

    def _hand_out(
        self,
        info: dict[str, Any],
        sweep_dir: Path,
        trial: Any,
        number: int,
        overrides: list[str],
        trial_of: dict,
    ) -> tuple[int, list[str]]:
        """Write in ``optuna-sweep.json`` which trial job ``number`` runs (its job reads it) first."""
        from hydra_plugins.orchestrator_optuna_sweeper import _study

        info["trials"][str(number)] = trial.number
        _study.write_sweep_file(sweep_dir, info)
        trial_of[number] = trial
        return number, overrides

    def _launch_one(self, item: tuple[int, list[str]]) -> Any:
        """Run one job through the launcher; its ``JobReturn``."""
        number, overrides = item
        self.validate_batch_is_legal([overrides])
        return self.launcher.launch([overrides], initial_job_idx=number)[0]

    # -- checks -----------------------------------------------------------------------------

    def _stop_after_failure(self, sweep_dir: Path) -> bool:
        """With ``hydra.callbacks.orchestrator.fail_fast``, no new trials once a job failed."""
        assert self.config is not None
        callback = self.config.hydra.callbacks.get("orchestrator") or {}
        if not callback.get("fail_fast", False):
            return False
        return any(entry["status"] in FAILURES for entry in read_journal(sweep_dir))


def _plain(node: Any) -> Any:
    """An OmegaConf node as plain Python (other values unchanged)."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def requested(params: dict[str, Any], arguments: list[str]) -> list[str]:
    """The overrides the search is made of: ``hydra.sweeper.params``, then the command line's."""
    return [f"{key}={value}" for key, value in _dotted(params).items()] + list(arguments)


def _dotted(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"trainer": {"epochs": "range(1, 5)"}}`` -> ``{"trainer.epochs": "range(1, 5)"}``.

    ``hydra.sweeper.params.trainer.epochs=...`` on the command line nests the key.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
