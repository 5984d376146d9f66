"""The Keras backend of a run: ``backend`` (``tensorflow``, ``jax`` or ``torch``) chosen by the config.

Keras reads ``KERAS_BACKEND`` once, when it is first imported; a process trains
on one backend for as long as it lives. The host therefore:

* checks ``backend`` with the rest of the config, before anything heavy
  (:func:`check_backend`: a value outside :data:`BACKENDS`, ``torch`` not installed,
  a ``tf.distribute`` strategy on another backend, a trainer option the backend lacks);
* sets ``KERAS_BACKEND`` before Keras is first imported (:func:`use_backend`);
  a ``KERAS_BACKEND`` of the environment that says otherwise is reported and the
  config wins; a process whose Keras already runs another backend (an earlier job
  of an in-process sweep) refuses the job, naming a launcher that gives every job
  its own process;
* tags the run with the backend's version (:func:`backend_version`).

Example::

    check_backend(cfg.backend)                      # UserError at "backend" when wrong
    use_backend("jax", environment=session.environment_backend)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from orchestrator.after_import import after_import
from orchestrator.errors import UserError

log = logging.getLogger("orchestrator")

#: The backends Keras 3 trains on, the default first.
BACKENDS = ("tensorflow", "jax", "torch")
#: The module whose ``__version__`` is each backend's version.
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
#: Hydra launchers that start a new process for every job (each gets its own backend).
PROCESS_PER_JOB = ("hydra_plugins.hydra_submitit_launcher.",)
#: The most JAX's compilation cache keeps (the guide's example leaves some 300 KB there).
JAX_CACHE_BYTES = 2**30
#: What to run instead of an in-process sweep over backends.
SWEEP_HINT = (
    "hydra/launcher=slurm_local (one new process per job), or one sweep per backend "
    "(backend=tensorflow, then backend=jax)"
)


def check_backend(backend: object, strategy: tuple[str, Any] | None = None, trainer: Any = None) -> str:
    """``backend`` when Keras can use it here; a :class:`UserError` naming the key otherwise.

    ``strategy`` is ``trainer.strategy``'s ``(name, factory)``: a factory runs on the
    backends its ``backends`` attribute names, by default ``("tensorflow",)`` (a
    ``tf.distribute`` strategy); ``data_parallel`` declares ``("jax",)``. ``trainer`` is
    the checked ``trainer`` section: mid-epoch checkpoints (``checkpoint_every_batches``)
    resume on TensorFlow only (the rest of an interrupted epoch is found from TensorFlow's
    shuffle, :mod:`orchestrator.resume.epoch`, and JAX and PyTorch shuffle otherwise), and
    Keras on PyTorch runs one step per call (``steps_per_execution``, ``trainer=fast``).
    """
    if backend not in BACKENDS:
        raise UserError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "torch" and importlib.util.find_spec("torch") is None:
        raise UserError(
            "backend",
            "torch needs PyTorch, which is not installed here: pip install torch "
            "(or pip install 'keras-orchestrator[torch]').",
        )
    if trainer is not None and trainer.checkpoint_every_batches and backend != "tensorflow":
        raise UserError(
            "trainer.checkpoint_every_batches",
            f"mid-epoch checkpoints resume on backend=tensorflow only; with backend={backend} set "
            "trainer.checkpoint_every_batches=0 (a killed run resumes from its last epoch).",
        )
    if trainer is not None and trainer.steps_per_execution > 1 and backend == "torch":
        raise UserError(
            "trainer.steps_per_execution",
            f"Keras on PyTorch runs one training step per call, got {trainer.steps_per_execution}; "
            "with backend=torch set trainer.steps_per_execution=1 (trainer=default rather than "
            "trainer=fast, which runs on tensorflow and jax).",
        )
    if strategy is not None:
        name, factory = strategy
        runs_on = tuple(getattr(factory, "backends", ("tensorflow",)))
        if backend not in runs_on:
            if runs_on == ("tensorflow",):
                what = "a tf.distribute strategy"
                instead = "null or data_parallel" if backend == "jax" else "null (one process, one device)"
            elif backend == "tensorflow":
                what, instead = "a keras.distribution", "mirrored (tf.distribute), or null"
            else:
                what, instead = "a keras.distribution", "null (one process, one device)"
            raise UserError(
                "trainer.strategy",
                f"'{name}' is {what}, which runs on backend={' or '.join(runs_on)} only; "
                f"with backend={backend} set trainer.strategy={instead}.",
            )
    return str(backend)


def use_backend(
    backend: str, environment: str | None = None, deterministic: bool = False, first_run: bool = True
) -> None:
    """Make ``backend`` the one Keras loads; refuse when Keras already runs another in this process.

    ``environment`` is the ``KERAS_BACKEND`` the process started with: when it names
    another backend a warning says so, and the config wins. ``deterministic`` on
    JAX adds ``--xla_gpu_deterministic_ops=true`` to ``XLA_FLAGS`` (XLA on CPU is
    deterministic already); on PyTorch it sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8``
    unless set, which cuBLAS needs for deterministic matrix products on a GPU
    (``torch.use_deterministic_algorithms`` raises at the first one otherwise).
    ``first_run``: no earlier job of this process imported Keras, so a plugin did
    when it loaded.
    """
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != backend and first_run:
            raise UserError(
                "backend",
                f"Keras was imported on {running} before this run could choose backend={backend} "
                "(a plugin that imports Keras when it loads does that; Keras reads KERAS_BACKEND once). "
                f"Set KERAS_BACKEND={backend} in the environment as well, or import Keras inside the "
                "plugin's factories.",
            )
        if running != backend:
            raise UserError(
                "backend",
                f"Keras already runs on {running} in this process (an earlier job), so backend={backend} "
                f"cannot take effect (Keras reads KERAS_BACKEND once). Run each job in its own process: "
                f"{SWEEP_HINT}.",
            )
    if environment and environment != backend:
        log.warning(
            "KERAS_BACKEND=%s in the environment, but the config says backend=%s: the run uses %s "
            "(set backend=%s to train on %s).",
            environment,
            backend,
            backend,
            environment,
            environment,
        )
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        # JAX logs at INFO every accelerator platform it looked for and did not find.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        use_jax_compilation_cache()
        flag = "--xla_gpu_deterministic_ops=true"
        flags = os.environ.get("XLA_FLAGS", "")
        if deterministic and flag not in flags and "jax" not in sys.modules:
            os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()
    if backend == "torch" and deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def jax_cache_folder() -> Path:
    """Where JAX keeps the programs it compiled: ``$XDG_CACHE_HOME/keras-orchestrator/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras-orchestrator" / "jax"


def use_jax_compilation_cache() -> None:
    """Let JAX reuse the programs that an earlier run compiled (its persistent compilation cache).

    A run of the guide's example compiles some 25 programs (the weights' initialisers, the
    training, evaluation and prediction steps, each batch shape once), 4-6 s of CPU on 2
    cores; from the cache, the same programs load in milliseconds and compute the same numbers.
    ``JAX_COMPILATION_CACHE_DIR`` in the environment names another folder, or an empty value
    none; past :data:`JAX_CACHE_BYTES` the least recently used programs are deleted. Before
    JAX is imported the variables are set for it; after, its config is updated.
    """
    wanted = {
        "JAX_COMPILATION_CACHE_DIR": str(jax_cache_folder()),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": 0.0,  # every program, however quick to compile
        "JAX_COMPILATION_CACHE_MAX_SIZE": JAX_CACHE_BYTES,  # then the least recently used go
    }
    missing = {name: value for name, value in wanted.items() if name not in os.environ}
    if "jax" in sys.modules:
        import jax

        for name, value in missing.items():
            jax.config.update(name.lower(), value)
    os.environ.update({name: str(value) for name, value in missing.items()})


def tensorflow_on_demand() -> None:
    """On JAX or PyTorch, let Keras import TensorFlow only for a run that uses it itself.

    Keras asks whether TensorFlow is *installed* (importing it, some 3 s and 1 GB) to
    learn whether an object might be a TensorFlow one when it saves a model and when
    it seeds: none can be before anything imported TensorFlow. After this call Keras
    sees TensorFlow as available once it is in ``sys.modules`` (a ``tf.data`` source
    imported it), and as missing before. ``keras.utils.set_random_seed`` therefore
    seeds TensorFlow only when it is loaded. Keras's preprocessing layers built on
    TensorFlow (``StringLookup``, ``TextVectorization``) need it imported first: a model
    builder that uses them on JAX does ``import tensorflow`` before making them.
    """
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    if type(lazy) is not module_utils.LazyModule:
        return

    class TensorflowOnDemand(module_utils.LazyModule):
        @property
        def available(self) -> bool:
            return "tensorflow" in sys.modules

    lazy.__class__ = TensorflowOnDemand


def seed_tensorflow_when_imported(seed: int | None) -> None:
    """On JAX or PyTorch, seed TensorFlow with ``seed`` as soon as something imports it.

    ``keras.utils.set_random_seed`` seeds TensorFlow only when it is loaded (see
    :func:`tensorflow_on_demand`); a ``tf.data`` source that imports it later would
    shuffle with a new order each run. This finder seeds TensorFlow's global
    generator right after its import, before the source builds its ``Dataset``.
    A later call replaces the seed of an earlier one that has not fired yet (``None``: no seed).
    """
    after_import("tensorflow", None if seed is None else lambda tf: tf.random.set_seed(seed))


def backend_version(backend: str) -> str:
    """The version of the framework behind ``backend`` (``"0.4.30"`` for jax), once Keras loaded it."""
    module = sys.modules.get(MODULES[backend])
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(MODULES[backend])
    except PackageNotFoundError:
        return "unknown"


def searched_backends(config: Any) -> set[str]:
    """The backends a sweep's overrides and ``hydra.sweeper.params`` offer for ``backend``.

    What a sweeper that picks values as it goes (Optuna) may choose: no job config
    exists yet to read them from. Names that are not backends are left to each job's check.

    Example: ``-m 'backend=choice(tensorflow,jax)'`` -> ``{"tensorflow", "jax"}``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    texts = [f"backend={params['backend']}"] if "backend" in params else []
    texts += [str(text) for text in config.hydra.overrides.task]
    parser = OverridesParser.create()
    found: set[str] = set()
    for text in texts:
        try:
            (override,) = parser.parse_overrides([text])
            if override.key_or_group == "backend" and override.is_sweep_override():
                found.update(override.sweep_string_iterator())
        except Exception:  # not a sweep of values (or not valid): each job's own check reports it
            continue
    return found & set(BACKENDS)


def check_sweep_backends(backends: set[str], launcher_target: str) -> None:
    """A sweep whose jobs use several backends needs a launcher that starts a process per job.

    Hydra's basic launcher runs every job in the command's process, and joblib's
    (loky) and Ray's reuse their worker processes: the second backend could not load.
    """
    if len(backends) < 2 or launcher_target.startswith(PROCESS_PER_JOB):
        return
    names = sorted(backends)
    launcher = launcher_target.rsplit(".", 1)[-1]
    shared = "several jobs in each worker process"
    how = "every job in this process" if launcher == "BasicLauncher" else shared
    raise UserError(
        "backend",
        f"this sweep trains on {', '.join(names[:-1])} and {names[-1]}, but its launcher ({launcher}) "
        f"runs {how}, where Keras loads one backend only. Use {SWEEP_HINT}.",
    )
