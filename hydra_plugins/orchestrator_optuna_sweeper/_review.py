"""What an Optuna sweep leaves for review: the study, its parameter importances and plots.

At the end of a sweep of ``hydra/sweeper=orchestrator_optuna`` (the pruning
plugin's ``orchestrator_after_sweep``, before tracking logs the report on the
parent run), in the sweep folder:

* ``optuna_trials.json``: the study exported: each trial's number, state, value,
  params, user attributes (its job and MLflow run) and reported values per epoch;
* the study's storage itself when it is a file (the default journal
  ``optuna-journal.log``, or an SQLite database), to load with ``optuna.load_study``;
* ``optuna_importances.json`` and ``optuna_importances.png``: Optuna's parameter
  importances (fANOVA) over the completed trials;
* ``optuna_parallel_coordinate.png``: Optuna's parallel-coordinate plot.

The importances and plots need two completed trials; each part that cannot be
made is left out with a log line, never failing the sweep.

Example::

    review_study(sweep_dir)   # {"optuna_trials": Path(...), "optuna_importances": Path(...), ...}
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("orchestrator.optuna")


def review_study(sweep_dir: Path) -> dict[str, Path]:
    """Write the study's review files into ``sweep_dir``; return them by report name."""
    from hydra_plugins.orchestrator_optuna_sweeper._study import SWEEP_FILE, open_storage

    info_file = Path(sweep_dir) / SWEEP_FILE
    if not info_file.exists():
        return {}
    info = json.loads(info_file.read_text())
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=info["study_name"], storage=open_storage(info["storage"]))
    except Exception as error:
        log.warning("The Optuna study is not in the report: %s: %s", type(error).__name__, error)
        return {}
    files = {"optuna_trials": _export(study, Path(sweep_dir) / "optuna_trials.json")}
    stored = _storage_file(info["storage"])
    if stored is not None:
        files["optuna_storage"] = stored
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < 2 or not study.best_trial.params:
        log.info("Optuna importances and plots need two completed trials over searched parameters.")
        return files
    for name, make in (
        ("optuna_importances", _importances),
        ("optuna_parallel_coordinate", _parallel_coordinate),
    ):
        try:
            files.update(make(study, Path(sweep_dir)))
        except Exception as error:  # a plot never fails a sweep
            log.warning("%s skipped: %s: %s", name, type(error).__name__, error)
    return files


def _export(study: Any, path: Path) -> Path:
    trials = [
        {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "params": trial.params,
            "user_attrs": trial.user_attrs,
            "intermediate_values": {str(step): value for step, value in trial.intermediate_values.items()},
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "completed": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        }
        for trial in study.get_trials(deepcopy=False)
    ]
    study_info = {"study_name": study.study_name, "direction": study.direction.name, "trials": trials}
    path.write_text(json.dumps(study_info, indent=2, default=str) + "\n")
    return path


def _storage_file(storage: str) -> Path | None:
    """The storage's file: a journal file path or ``sqlite:///<file>``; ``None`` for a server."""
    if storage.startswith("sqlite:///"):
        path = Path(storage.removeprefix("sqlite:///"))
    elif "://" in storage:
        return None
    else:
        path = Path(storage)
    return path if path.is_file() else None


def _importances(study: Any, folder: Path) -> dict[str, Path]:
    import optuna

    plots = _plots()
    fanova = optuna.importance.FanovaImportanceEvaluator(seed=0)
    importances = {
        name: float(value)
        for name, value in optuna.importance.get_param_importances(study, evaluator=fanova).items()
    }
    numbers = folder / "optuna_importances.json"
    numbers.write_text(json.dumps(importances, indent=2) + "\n")

    class Computed(optuna.importance.BaseImportanceEvaluator):
        """The importances computed above, so that the plot does not fit fANOVA again."""

        def evaluate(self, study, params=None, *, target=None):
            return importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are marked experimental
        axes = plots.plot_param_importances(study, evaluator=Computed())
    plot = _save(axes, folder, "optuna_importances")
    return {"optuna_importances": numbers, "optuna_importances_plot": plot}


def _parallel_coordinate(study: Any, folder: Path) -> dict[str, Path]:
    plots = _plots()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = plots.plot_parallel_coordinate(study)
    return {"optuna_parallel_coordinate": _save(axes, folder, "optuna_parallel_coordinate")}


def _plots() -> Any:
    """``optuna.visualization.matplotlib``, drawing off screen."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    return plots


def _save(axes: Any, folder: Path, name: str) -> Path:
    import matplotlib.pyplot as plt

    figure = axes.figure
    figure.set_size_inches(8, 4.5)
    figure.tight_layout()
    path = folder / f"{name}.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
