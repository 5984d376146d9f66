"""Review in MLflow: the trained model as an MLflow model, plots, and a summary at the end.

At the end of every successful run:

* the model is logged with MLflow's Keras flavour (an MLflow 3 *logged model*
  named ``keras_model``, linked to the run and to its final metrics), with an input
  example (the first test samples) and the signature inferred from it;
  ``tracking.register_model=NAME`` also registers it in the Model Registry as a
  new version of ``NAME``. ``tracking.log_model=false`` turns this off;
* ``plots/learning_curves.png``: one panel per per-epoch metric, training
  beside validation, read from the MLflow store (so a resumed run shows every
  epoch) or, without tracking, from the epochs of this process;
* ``plots/confusion_matrix.png`` for a classifier whose test split is in-memory
  arrays (skipped with a log line otherwise);
* a compact summary: the test metrics, the run id and where to open the run in
  the MLflow UI. It comes last, after the tracker has ended the run.

In a sweep, jobs get neither (their metrics, checkpoints and ``model.keras`` are
logged as always), since they would cost about a second a job;
``tracking.review_in_sweeps=true`` gives every job the model and plots too.

The model and plots go in before the tracker ends the run: this plugin's
``orchestrator_after_run`` is ``tryfirst``, the summary ``trylast``. Keras,
MLflow and matplotlib are imported inside the hooks only. Block the plugin with
``ORCHESTRATOR_DISABLE_PLUGINS=mlflow_review``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import types
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator import hookimpl
from orchestrator.arrays import is_in_memory, take, unpack
from orchestrator.mlflow_store import retry
from orchestrator.tracking import review_hint

log = logging.getLogger("orchestrator.review")

#: The MLflow 3 logged model's name. Not ``model``: MLflow resolves ``runs:/<run>/<name>/...`` to
#: a logged model of that name first, which would hide the run's own ``model/model.keras``.
MODEL_NAME = "keras_model"
#: Test samples saved as the model's input example.
EXAMPLE_SAMPLES = 5


@dataclass
class _Review:
    started: float = field(default_factory=time.monotonic)
    history: dict[str, dict[int, float]] = field(default_factory=dict)
    results: dict[str, float] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    model: str | None = None
    run_name: str | None = None
    experiment_id: str | None = None


#: The run being reviewed, per context (one at a time per process, but keyed to be safe).
_reviews: dict[int, _Review] = {}


def _review(context) -> _Review:
    return _reviews.setdefault(id(context), _Review())


@hookimpl
def orchestrator_before_run(context):
    _reviews[id(context)] = _Review()


@hookimpl
def orchestrator_after_epoch(context, stage, epoch, metrics, checkpoint):
    history = _review(context).history
    for name, value in metrics.items():
        history.setdefault(name, {})[int(epoch)] = float(value)


@hookimpl
def orchestrator_after_stage(context, stage, metrics):
    if stage.kind == "evaluate":
        _review(context).results.update({k: v for k, v in metrics.items() if not k.startswith("time/")})


@hookimpl(tryfirst=True)
def orchestrator_after_run(context, error):
    """Plots and the MLflow model, while the run is still open (before the tracker ends it).

    Nothing here may raise: an exception would keep the tracker from ending the run.
    """
    if error is not None or context.model is None or not context.chief:
        return
    if context.sweep is not None and not context.cfg.tracking.review_in_sweeps:
        return  # a sweep's jobs keep their metrics and model.keras; tracking.review_in_sweeps adds the rest
    review = _review(context)
    trained = context.model
    try:
        if context.run_id is not None:
            _read_run(context, review)
        context.model = _local_model(context)
        from orchestrator_plugins.review_plots import confusion_matrix, learning_curves

        for name, draw in (("learning_curves", learning_curves), ("confusion_matrix", confusion_matrix)):
            _save_plot(context, review, name, draw)
        if context.run_id is not None:
            _log_mlflow_model(context, review)
    except Exception as failure:  # the trained run is kept; what failed here is reported
        log.error("Review in MLflow incomplete: %s: %s", type(failure).__name__, failure)
    finally:
        context.model = trained


def _local_model(context) -> Any:
    """The model to predict with here: the trained one, or, when it was trained by several
    workers (which have stopped by now), the saved ``model.keras`` loaded in this process alone.

    A multi-worker model's ``predict`` is a collective step that every worker must join.
    """
    distribution = context.distribution
    if distribution is None or distribution.worker is None:
        return context.model
    import keras

    return keras.saving.load_model(Path(context.output_dir) / "model.keras")


def _read_run(context, review: _Review) -> None:
    from mlflow.tracking import MlflowClient

    run = retry(MlflowClient(tracking_uri=context.tracking_uri).get_run, context.run_id)
    review.run_name = run.info.run_name
    review.experiment_id = run.info.experiment_id


def _save_plot(context, review: _Review, name: str, draw) -> None:
    """Draw one figure into ``plots/<name>.png`` and hand it over as an artifact."""
    try:
        figure = draw(context, review)
    except Exception as failure:  # a plot never fails a trained run
        log.warning("Plot %s skipped: %s: %s", name, type(failure).__name__, failure)
        return
    if figure is None:
        return
    folder = Path(context.output_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / f"{name}.png", dpi=100)
    context.log_artifact(folder / f"{name}.png", "plots")
    review.plots.append(f"plots/{name}.png")


@hookimpl(specname="orchestrator_after_run", trylast=True)
def summarize(context, error):
    """The last lines of a run: test metrics, run id, and where to review it."""
    review = _reviews.pop(id(context), None)
    if error is not None or review is None or context.sweep is not None or not context.chief:
        return
    seconds = time.monotonic() - review.started
    results = review.results or (
        {context.cfg.objective.metric: context.objective_value} if context.objective_value is not None else {}
    )
    metrics = "  ".join(f"{name}={value:.4g}" for name, value in results.items()) or "no test metrics"
    name = f"Run {review.run_name}" if review.run_name else "The run"
    lines = [f"{name} finished in {seconds:.0f} s: {metrics}"]
    if context.run_id is None:
        lines.append(f"  Files: {context.output_dir} (MLflow tracking is off)")
    else:
        kept = [*([f"model {review.model}"] if review.model else []), *review.plots]
        lines.append(f"  MLflow run {context.run_id}" + (f": {', '.join(kept)}" if kept else ""))
        lines.append("  " + review_hint(context.tracking_uri, review.experiment_id, context.run_id))
    log.info("%s", "\n".join(lines))


# -- The MLflow model ----------------------------------------------------------------


def _log_mlflow_model(context, review: _Review) -> None:
    """Log ``context.model`` with the Keras flavour on the job's run, without an active run."""
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    settings = context.cfg.tracking
    register = settings.get("register_model") or None
    if not settings.log_model:
        if register:
            log.warning("tracking.register_model=%s is ignored: tracking.log_model is false.", register)
        return
    client = MlflowClient(tracking_uri=context.tracking_uri)
    if not hasattr(client, "create_logged_model"):
        log.warning(
            "MLflow %s is too old to log the model with its Keras flavour (3.0+).", _version("mlflow")
        )
        return
    run = retry(client.get_run, context.run_id)
    example, signature = _example_and_signature(context)
    # The logged model is created here, in the run's own experiment: MLflow would
    # otherwise put it in the active (or default) experiment of this process.
    logged = retry(
        client.create_logged_model,
        run.info.experiment_id,
        name=MODEL_NAME,
        source_run_id=context.run_id,
        params=dict(run.data.params),
        model_type="keras",
    )
    with _tracking_uri(context.tracking_uri):
        info = Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=_keras_flavour(),
            model=context.model,
            run_id=context.run_id,
            model_id=logged.model_id,
            input_example=example,
            signature=signature,
            pip_requirements=_requirements(),
            registered_model_name=register,
            step=context.epochs_done,
            validate_serving_input=False,
        )
    review.model = info.model_uri
    if register:
        review.model += f" (registered as {register} version {info.registered_model_version})"
    # Outside a sweep the summary names the model; a sweep job has no summary.
    (log.info if context.sweep is not None else log.debug)("Logged the MLflow model %s", review.model)


def _keras_flavour() -> Any:
    """``mlflow.keras``, but its ``save_model`` creates the model folder before the input example
    goes in (MLflow's does not: https://github.com/mlflow/mlflow/issues/16183)."""
    import mlflow.keras

    def save_model(path, validate_serving_input=None, **kwargs):
        Path(path).mkdir(parents=True, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)

    return types.SimpleNamespace(__name__=mlflow.keras.__name__, save_model=save_model)


@contextlib.contextmanager
def _tracking_uri(uri: str):
    """MLflow's flavour API reads the process-wide tracking URI: point it at the run's store meanwhile."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it, as MLflow's own code does


def _example_and_signature(context) -> tuple[Any, Any]:
    """The first test (else validation, else train) samples and the signature inferred from them."""
    import numpy as np
    from mlflow.models import infer_signature

    data = context.data
    split = next((s for s in (data.test, data.validation, data.train) if is_in_memory(s)), None)
    x = unpack(split)[0] if split is not None else None
    if isinstance(x, dict) and all(isinstance(v, np.ndarray) for v in x.values()):
        example = take(x, EXAMPLE_SAMPLES)
    elif isinstance(x, np.ndarray):
        example = x[:EXAMPLE_SAMPLES]
    else:
        log.info("MLflow model: no input example or signature (the inputs are not in-memory arrays).")
        return None, None
    try:
        output = context.model.predict(example, verbose=0)
        if isinstance(output, (list, tuple)):
            output = dict(zip(context.model.output_names, output, strict=True))
        return example, infer_signature(example, output)
    except Exception as failure:
        log.warning("MLflow model: no signature (%s: %s).", type(failure).__name__, failure)
        return example, None


def _requirements() -> list[str]:
    """Keras and its backend, pinned: MLflow would otherwise infer them in a subprocess (seconds)."""
    import keras

    backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(keras.backend.backend())
    return [f"{dist}=={_version(dist)}" for dist in ("keras", backend) if dist and _version(dist)]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
