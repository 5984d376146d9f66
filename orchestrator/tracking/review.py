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

This process does only what needs Keras: the predicted test labels and the
model's output on the input example, saved next to the run's spool. The
drawing and the MLflow model are the tracking worker's
(:mod:`orchestrator.tracking.review_worker`), which builds the model from
the ``model.keras`` the run already saved. Without tracking, the plots are drawn
here. The work is handed over before the tracker ends the run (the tracker ends
it after every plugin's ``orchestrator_after_run``); the summary is a hook
wrapper around the tracker's, so it comes after the end. Keras and
matplotlib are imported inside the hooks only. Block the plugin with
``ORCHESTRATOR_DISABLE_PLUGINS=mlflow_review``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from orchestrator import hookimpl
from orchestrator.tracking.review_model import Review, model_payload, test_sample_of
from orchestrator.tracking.review_plots import confusion_labels, confusion_matrix, learning_curves
from orchestrator.tracking.tracker import review_hint, run_log_of

log = logging.getLogger("orchestrator.review")

#: The module whose functions the tracking worker runs for this plugin.
WORKER = "orchestrator.tracking.review_worker"


#: Where the run's review is kept: ``context.stash``.
REVIEW = "mlflow_review"


def _review(context) -> Review:
    return context.stash.setdefault(REVIEW, Review())


@hookimpl(trylast=True)
def orchestrator_before_run(context):
    context.stash[REVIEW] = Review()
    run_log = run_log_of(context)
    if run_log is not None and (context.sweep is None or context.cfg.tracking.review_in_sweeps):
        run_log.worker.preload(WORKER)


@hookimpl
def orchestrator_after_epoch(context, stage, epoch, metrics, checkpoint):
    history = _review(context).history
    for name, value in metrics.items():
        history.setdefault(name, {})[int(epoch)] = float(value)


@hookimpl
def orchestrator_after_stage(context, stage, metrics):
    review = _review(context)
    if stage.kind == "evaluate":
        review.results.update({k: v for k, v in metrics.items() if not k.startswith("time/")})
    if stage.kind == "fit" and _reviewed(context) and not _fit_stages_after(context, stage):
        # The last fit stage: the model is final, and the worker draws while the later stages run.
        if run_log_of(context) is None:
            return
        try:
            _hand_over(context, review, "learning_curves", history=_history(review))
            _hand_over_confusion(context, review)
        except Exception as failure:  # the trained run is kept; what failed here is reported
            log.error("Review in MLflow incomplete: %s: %s", type(failure).__name__, failure)


@hookimpl
def orchestrator_on_artifact(context, path, artifact_path):
    """The run's ``model.keras`` is saved: the worker makes the MLflow model of it meanwhile."""
    if artifact_path != "model" or Path(path).name != "model.keras" or not _reviewed(context):
        return
    review = _review(context)
    run_log = run_log_of(context)
    if run_log is None:
        return
    try:
        payload = model_payload(context, review, run_log.spool.folder)
        if payload is not None:
            _hand_over(context, review, "mlflow_model", **payload)
    except Exception as failure:  # the trained run is kept; what failed here is reported
        log.error("Review in MLflow incomplete: %s: %s", type(failure).__name__, failure)


@hookimpl(tryfirst=True)
def orchestrator_after_run(context, error):
    """The confusion matrix (and the curves, if no fit stage handed them over), before the tracker
    ends the run; without tracking, the plots are drawn here.

    Nothing here may raise: an exception would keep the tracker from ending the run.
    """
    if error is not None or context.model is None or not _reviewed(context):
        return
    review = _review(context)
    try:
        run_log = run_log_of(context)
        if run_log is None:
            _draw_here(context, review, confusion_labels(context, test_sample_of(context, review)))
            return
        if "learning_curves" not in review.calls:
            _hand_over(context, review, "learning_curves", history=_history(review))
        if "confusion_matrix" not in review.calls:
            _hand_over_confusion(context, review)
    except Exception as failure:  # the trained run is kept; what failed here is reported
        log.error("Review in MLflow incomplete: %s: %s", type(failure).__name__, failure)


def _hand_over_confusion(context, review: Review) -> None:
    """Predict the test sample's labels here; the worker draws the matrix."""
    confusion = confusion_labels(context, test_sample_of(context, review))
    review.calls.setdefault("confusion_matrix", -1)  # tried once, drawn or not
    run_log = run_log_of(context)
    if confusion is None or run_log is None:
        return
    import numpy as np

    truth, predicted, classes, names = confusion
    run_log.spool.folder.mkdir(parents=True, exist_ok=True)
    labels = run_log.spool.folder / "review-labels.npz"
    np.savez(labels, truth=truth, predicted=predicted)
    arguments = {"file": str(labels), "classes": int(classes), "names": names}
    _hand_over(context, review, "confusion_matrix", **arguments)


def _reviewed(context) -> bool:
    """Whether this run gets the review (a sweep's jobs only with ``tracking.review_in_sweeps``)."""
    return context.chief and (context.sweep is None or bool(context.cfg.tracking.review_in_sweeps))


def _fit_stages_after(context, stage) -> bool:
    return any(later.kind == "fit" for later in context.stages[stage.index + 1 :])


def _history(review: Review) -> dict[str, dict[str, float]]:
    return {
        name: {str(epoch): value for epoch, value in steps.items()} for name, steps in review.history.items()
    }


def _hand_over(context, review: Review, what: str, **kwargs) -> None:
    """Ask the tracking worker to run ``mlflow_review_worker.<what>`` on the run; note the call."""
    run_log = run_log_of(context)
    if run_log is None:
        return
    review.run_log = run_log
    run_log.spool.folder.mkdir(parents=True, exist_ok=True)
    output_dir = str(Path(context.output_dir).resolve())
    review.calls[what] = run_log.call(f"{WORKER}:{what}", output_dir=output_dir, **kwargs)


def _draw_here(context, review: Review, confusion) -> None:
    """Without tracking: the plots, drawn in this process, in the output folder."""
    title = context.experiment or "run"
    figures = {
        "learning_curves": lambda: learning_curves(review.history, title),
        "confusion_matrix": lambda: confusion_matrix(*confusion) if confusion is not None else None,
    }
    for name, draw in figures.items():
        try:
            figure = draw()
        except Exception as failure:  # a plot never fails a trained run
            log.warning("Plot %s skipped: %s: %s", name, type(failure).__name__, failure)
            continue
        if figure is None:
            continue
        folder = Path(context.output_dir) / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(folder / f"{name}.png", dpi=100)
        context.log_artifact(folder / f"{name}.png", "plots")
        review.plots.append(f"plots/{name}.png")


@hookimpl(specname="orchestrator_after_run", wrapper=True, tryfirst=True)
def summarize(context, error):
    """The last lines of a run: test metrics, run id, and where to review it.

    The outermost wrapper of ``after_run``: it prints after every plugin's
    ``after_run`` and after the tracker (an inner wrapper) has ended the run.
    """
    result = yield
    print_summary(context, error)
    return result


def print_summary(context, error) -> None:
    """Log the summary of a run that ended (nothing for a failed run or a sweep's job)."""
    review = context.stash.pop(REVIEW, None)
    if error is not None or review is None or context.sweep is not None or not context.chief:
        return
    seconds = time.monotonic() - review.started
    results = review.results or (
        {context.cfg.objective.metric: context.objective_value} if context.objective_value is not None else {}
    )
    metrics = "  ".join(f"{name}={value:.4g}" for name, value in results.items()) or "no test metrics"
    model, plots = review_results(review)
    run_name = review.run_log.run_name if review.run_log is not None else None
    name = f"Run {run_name}" if run_name else "The run"
    lines = [f"{name} finished in {seconds:.0f} s: {metrics}"]
    if context.run_id is None and review.run_log is None:
        lines.append(f"  Files: {context.output_dir} (MLflow tracking is off)")
    elif context.run_id is None:
        lines.append(f"  Files: {context.output_dir} (MLflow has not taken the run yet: see above)")
    else:
        kept = [*([f"model {model}"] if model else []), *plots]
        lines.append(f"  MLflow run {context.run_id}" + (f": {', '.join(kept)}" if kept else ""))
        experiment_id = review.run_log.experiment_id if review.run_log is not None else None
        lines.append("  " + review_hint(context.tracking_uri, experiment_id, context.run_id))
    log.info("%s", "\n".join(lines))


def review_results(review: Review) -> tuple[str | None, list[str]]:
    """What the worker's calls returned: the MLflow model's URI, and the plots' artifact paths."""
    if review.run_log is None:
        return None, []
    results = {what: review.run_log.result(seq) for what, seq in review.calls.items()}
    plots = [
        results[name]
        for name in ("learning_curves", "confusion_matrix")
        if isinstance(results.get(name), str)
    ]
    model = results.get("mlflow_model")
    return (model if isinstance(model, str) else None), plots
