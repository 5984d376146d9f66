"""Resume: a killed run, started again with the same command, goes on where it stopped.

Every run keeps in its output folder what it needs to continue,
``resume/state.json``: the stage it is in, the epochs done, the checkpoint that
holds the model and the optimizer, the random number generators (Python,
NumPy, the model's dropout and augmentation seed generators), the state of the
callbacks (EarlyStopping's patience counter and best value,
ReduceLROnPlateau's cooldown) and the metrics so far; saved in the middle of
an epoch (``trainer.checkpoint_every_batches``), also the batches done and the
running values of the epoch's metrics. It is rewritten, file by file and
atomically, whenever a checkpoint is written and whenever a stage ends, so a
kill at any moment leaves the last complete state.

An index in the folder the command runs from, ``.orchestrator/runs/<key>.json``
(the key: a hash of the command's overrides and, in a sweep, the sweep id),
names the command's latest run: its output folder, MLflow run id and status. A
run holds a lock on its entry while it lives, so a second copy of the same
command running at the same time starts its own run.

Started again, a command whose latest run is unfinished (``RUNNING`` after a
SIGKILL, an out-of-memory kill or a lost machine; ``KILLED`` after Ctrl-C)
continues it in the same output folder and the same MLflow run; ``resume=false``
starts a new run instead. A run that ``FINISHED`` or ``FAILED`` with an error is
not continued: the command starts a new run.

Example::

    python -m orchestrator +experiment=mnist trainer.epochs=20   # killed in epoch 7
    python -m orchestrator +experiment=mnist trainer.epochs=20   # goes on after epoch 6
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

log = logging.getLogger("orchestrator")

STATE = Path("resume") / "state.json"
#: What the plugins heard already: the last epoch reported and the stages whose results were.
REPORTED = Path("resume") / "reported.json"
#: The index of commands, in the folder they run from: ``runs/`` and ``sweeps/``.
INDEX = Path(".orchestrator")
#: Statuses of an index entry that a new start of the command continues.
UNFINISHED = ("RUNNING", "KILLED")
#: Stage kinds that never change the model: no weights are saved when they end.
READ_ONLY_STAGES = ("evaluate", "predict")


def command_key(overrides: list[str], sweep_id: str | None = None) -> str:
    """The identity of a command: its overrides (less ``resume=...``) and its sweep."""
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != "resume"]
    payload = json.dumps({"overrides": kept, "sweep": sweep_id})
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that a kill leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, default=str))
    os.replace(temporary, path)


class RunIndex:
    """The index entry of one command (``kind``: ``runs`` or ``sweeps``), locked while it runs.

    Example::

        index = RunIndex(Path.cwd(), command_key(["seed=7"]))
        if index.claim():
            entry = index.read()
    """

    def __init__(self, root: Path, key: str, kind: str = "runs"):
        self.path = Path(root) / INDEX / kind / f"{key}.json"
        self._lock: Any = None

    def claim(self) -> bool:
        """Take the entry's lock; ``False`` when a live process holds it."""
        try:
            import fcntl
        except ImportError:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        return True

    def __getstate__(self) -> dict[str, Any]:
        """Copies sent to other processes (a parallel launcher's workers) hold no lock."""
        return {**self.__dict__, "_lock": None}

    @property
    def claimed(self) -> bool:
        return self._lock is not None

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def write(self, **entry: Any) -> None:
        write_json(self.path, {**(self.read() or {}), **entry, "updated": time.time()})

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


@dataclass
class ResumePoint:
    """Where an unfinished run stopped.

    Args:
        output_dir: its output folder.
        run_id: its MLflow run, or ``None`` when tracking was off.
        state: its ``resume/state.json``, or ``None`` when it was killed before
            its first checkpoint (it then starts over in the same run).
        count: how many times the run has been resumed, this time included.
    """

    output_dir: Path
    run_id: str | None
    state: dict[str, Any] | None
    count: int = 1
    restored: bool = False

    @property
    def stages_done(self) -> int:
        """How many stages ended (the ones before are skipped)."""
        if self.state is None:
            return 0
        return self.state["stage_index"] + (1 if self.state["stage_done"] else 0)

    def continues(self, stage) -> bool:
        """Whether ``stage`` is the fit stage that was interrupted between epochs."""
        return (
            self.state is not None
            and not self.state["stage_done"]
            and stage.index == self.state["stage_index"]
        )

    def describe(self) -> str:
        if self.state is None:
            return "from the start (it was stopped before its first checkpoint)"
        where = f"stage '{self.state['stage']}'"
        if self.state.get("batches_done"):
            where += f" after batch {self.state['batches_done']} of epoch {self.state['epochs_done'] + 1}"
        elif not self.state["stage_done"]:
            where += f" after epoch {self.state['epochs_done']}"
        else:
            where = f"after {where}"
        return where


def open_run(context) -> None:
    """Claim the command's index entry; find the run to continue (``context.resume``).

    Called before the plugins hear that the run starts, so that tracking reopens
    the same MLflow run and files go to the same output folder.
    """
    index = context.index
    distribution = getattr(context, "distribution", None)
    if distribution is not None and not distribution.chief:
        return  # the chief keeps the run's state; the other workers follow it
    if not index.claim():
        log.warning(
            "The same command is already running (lock %s); this one starts a run of its own.",
            index.path.with_suffix(".lock"),
        )
        return
    entry = index.read()
    if not context.cfg.resume or not entry or entry.get("status") not in UNFINISHED:
        return
    output_dir = Path(entry["output_dir"])
    state_path = output_dir / STATE
    state = None
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text())
        except ValueError as error:
            raise UserError(
                "resume",
                f"the saved state {state_path} cannot be read ({error}); start afresh with resume=false "
                "(the run's checkpoints stay in its folder).",
            ) from error
    context.resume = ResumePoint(
        output_dir=output_dir,
        run_id=entry.get("run_id") or _spooled_run_id(output_dir),
        state=state,
        count=int(entry.get("resumes", 0)) + 1,
    )
    context.output_dir = output_dir
    try:
        context.reported = json.loads((output_dir / REPORTED).read_text())
    except (OSError, ValueError):
        pass
    if state is not None:
        context.metrics.update(state["metrics"])
        context.epochs_done = state["epochs_done"]
        if state.get("checkpoint"):
            context.last_checkpoint = output_dir / state["checkpoint"]
    log.info(
        "Resuming run %s %s, in %s (resume=false starts a new run instead)",
        context.resume.run_id or "(no MLflow run)",
        context.resume.describe(),
        output_dir,
    )


def _spooled_run_id(output_dir: Path) -> str | None:
    """The MLflow run a killed run's tracking spool names (its id reached the index only at the end)."""
    from orchestrator.spool import FOLDER
    from orchestrator.spool import STATE as SPOOL_STATE

    try:
        return json.loads((output_dir / FOLDER / SPOOL_STATE).read_text()).get("run_id")
    except (OSError, ValueError):
        return None


def mark_reported(context, epoch: int | None = None, stage: int | None = None) -> None:
    """Note that the plugins heard of ``epoch`` or of ``stage``'s results (``resume/reported.json``).

    Epochs trained again after a resume (those after the last checkpoint) and a
    stage that ended just before a kill are then not reported twice: MLflow gets
    each metric step once.
    """
    reported = context.reported
    if epoch is not None:
        reported["epoch"] = max(reported["epoch"], epoch)
    if stage is not None and stage not in reported["stages"]:
        reported["stages"].append(stage)
    write_json(Path(context.output_dir) / REPORTED, reported)


def run_started(context) -> None:
    """Record the run in the index once tracking has opened it."""
    if context.index.claimed:
        context.index.write(
            output_dir=str(context.output_dir),
            run_id=context.run_id or (context.resume.run_id if context.resume else None),
            status="RUNNING",
            resumes=context.resume.count if context.resume else 0,
            pid=os.getpid(),
        )


def run_ended(context, error: BaseException | None) -> None:
    """Record how the run ended and release the index entry."""
    if not context.index.claimed:
        return
    if error is None:
        status = "FINISHED"
    elif isinstance(error, Exception):
        status = "FAILED"
    else:
        status = "KILLED"
    context.index.write(status=status, **({"run_id": context.run_id} if context.run_id else {}))
    context.index.release()


# -- Saving and restoring the state ---------------------------------------------------


def save_state(
    context,
    stage,
    *,
    stage_done: bool,
    weights: Path | None = None,
    callbacks: list | None = None,
    batches_done: int = 0,
) -> None:
    """Write ``resume/state.json``; ``weights`` is the new checkpoint (else the last one stays).

    ``batches_done`` > 0: saved in the middle of epoch ``context.epochs_done + 1``,
    after that many batches; the running values of the epoch's metrics are kept too.
    """
    folder = Path(context.output_dir)
    previous = _read_state(folder)
    if weights is not None:
        checkpoint = str(Path(weights).relative_to(folder))
    else:
        checkpoint = (previous or {}).get("checkpoint")
    callback_states = [callback_state(callback, folder, context.epochs_done) for callback in callbacks or ()]
    state = {
        "version": 1,
        "run_id": context.run_id,
        "stage": stage.name,
        "stage_index": stage.index,
        "stage_done": stage_done,
        "stage_start_epoch": context.stage_start_epoch,
        "epochs_done": context.epochs_done,
        "batches_done": batches_done,
        "metric_variables": metric_variable_values(context.model) if batches_done else None,
        "checkpoint": checkpoint,
        "callbacks": callback_states,
        "rng": rng_state(),
        "seed_generators": seed_generator_states(context.model),
        "metrics": context.metrics,
    }
    write_json(folder / STATE, state)
    _remove_stale(folder, keep={checkpoint, *(c.get("arrays") for c in callback_states)})


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return None


def restore_model(context) -> None:
    """Load the checkpoint's weights and optimizer state, and the random generators, into the model.

    Only the weights are read (``Model.load_weights``): no code stored in the
    file runs, whatever layers it names.
    """
    resume = context.resume
    if resume is None or resume.restored:
        return
    resume.restored = True
    state = resume.state
    if state is None or not state.get("checkpoint"):
        return
    path = Path(context.output_dir) / state["checkpoint"]
    model = context.model
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path)
    except Exception as error:
        raise UserError(
            "resume",
            f"the checkpoint {path} cannot be read into the model ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). If the model changed, start afresh "
            "with resume=false; the run's other checkpoints stay in its folder.",
        ) from error
    set_seed_generator_states(model, state["seed_generators"])
    set_rng_state(state["rng"])
    log.info("Restored the model and optimizer from %s", path)


#: The progress a Keras callback keeps between epochs (EarlyStopping, ReduceLROnPlateau,
#: ModelCheckpoint's best value); its settings come from the config again.
CALLBACK_PROGRESS = ("wait", "best", "best_epoch", "stopped_epoch", "cooldown_counter")


def restore_callbacks(callbacks: list, states: list[dict[str, Any]], folder: Path) -> None:
    """Give each callback the state saved for it (matched by position and class).

    A callback of its own may define ``get_state() -> dict`` (JSON values) and
    ``set_state(state)``; for the others the :data:`CALLBACK_PROGRESS` attributes
    and EarlyStopping's best weights are restored.
    """
    if len(callbacks) != len(states):
        log.warning("The callbacks changed since the checkpoint; their state starts afresh.")
        return
    for callback, saved in zip(callbacks, states, strict=True):
        if type(callback).__name__ != saved["class"]:
            log.warning("Callback %s changed since the checkpoint; its state starts afresh.", saved["class"])
            continue
        _set_values(callback, saved["values"])
        if saved.get("arrays"):
            import numpy as np

            with np.load(folder / saved["arrays"]) as arrays:
                callback.best_weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]


def _values(callback: Any) -> dict[str, Any]:
    """A callback's own ``get_state()``, else its :data:`CALLBACK_PROGRESS` attributes as numbers."""
    import numpy as np

    if hasattr(callback, "get_state"):
        return callback.get_state()
    values = {}
    for name in CALLBACK_PROGRESS:
        value = getattr(callback, name, None)
        if isinstance(value, np.generic) or (hasattr(value, "numpy") and hasattr(value, "shape")):
            value = np.asarray(value).item()
        if isinstance(value, (bool, int, float)):
            values[name] = value
    return values


def _set_values(callback: Any, values: dict[str, Any]) -> None:
    if hasattr(callback, "set_state"):
        callback.set_state(values)
        return
    for name, value in values.items():
        setattr(callback, name, value)


def progress(callbacks: list) -> list[dict[str, Any]]:
    """The callbacks' progress, in memory (for a ``fit`` call that continues another)."""
    return [{"values": _values(c), "best_weights": getattr(c, "best_weights", None)} for c in callbacks]


def set_progress(callbacks: list, snapshot: list[dict[str, Any]]) -> None:
    for callback, saved in zip(callbacks, snapshot, strict=True):
        _set_values(callback, saved["values"])
        if saved["best_weights"] is not None:
            callback.best_weights = saved["best_weights"]


def callback_state(callback: Any, folder: Path, epoch: int) -> dict[str, Any]:
    """A callback's progress (``wait``, ``best``, ``cooldown_counter``...) and its best weights."""
    import numpy as np

    state: dict[str, Any] = {"class": type(callback).__name__, "values": _values(callback)}
    best_weights = getattr(callback, "best_weights", None)
    if isinstance(best_weights, list) and best_weights and not hasattr(callback, "get_state"):
        name = Path("resume") / f"{type(callback).__name__}-best-weights-{epoch:04d}.npz"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        temporary = folder / name.with_suffix(".tmp.npz")
        np.savez(temporary, **{f"w{i}": np.asarray(w) for i, w in enumerate(best_weights)})
        os.replace(temporary, folder / name)
        state["arrays"] = str(name)
    return state


def _remove_stale(folder: Path, keep: set) -> None:
    """Delete the mid-epoch checkpoints and best-weight files the state no longer points to."""
    for pattern in ("*-best-weights-*.npz", "epoch-*-batch-*.keras"):
        for path in (folder / "resume").glob(pattern):
            if str(path.relative_to(folder)) not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()


def metric_variable_values(model: Any) -> list:
    """The running totals and counts of the model's metrics, mid-epoch."""
    import keras

    return [keras.ops.convert_to_numpy(v.value).tolist() for v in model.metrics_variables]


def set_metric_variable_values(model: Any, values: list) -> None:
    variables = model.metrics_variables
    if len(variables) != len(values):
        log.warning("The model's metrics changed since the checkpoint; this epoch's averages start afresh.")
        return
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def rng_state() -> dict[str, Any]:
    """The states of Python's and NumPy's global random generators, as JSON."""
    import numpy as np

    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))


def _seed_generator_variables(model: Any) -> list:
    """The state variables of the model's seed generators (dropout, augmentation, noise layers)."""
    if model is None:
        return []
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def seed_generator_states(model: Any) -> list:
    import keras

    return [keras.ops.convert_to_numpy(v.value).tolist() for v in _seed_generator_variables(model)]


def set_seed_generator_states(model: Any, states: list) -> None:
    variables = _seed_generator_variables(model)
    if len(variables) != len(states):
        log.warning("The model's random layers changed since the checkpoint; their seeds start afresh.")
        return
    for variable, value in zip(variables, states, strict=True):
        variable.assign(value)
