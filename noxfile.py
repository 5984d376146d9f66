"""Task sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``smoke``, ``bench``.

The sessions run in the current environment (``pip install -e '.[dev]'`` first)
instead of building a virtualenv each: TensorFlow alone is over 500 MB, and
reinstalling it per session would cost more than the sessions themselves. Pass
``--force-venv-backend venv`` for isolated environments.
"""

import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent

#: Overrides that make any preset tiny: one epoch of two batches.
SMOKE_OVERRIDES = ["trainer.epochs=1", "trainer.limit_batches=2"]


@nox.session
def tests(session):
    """The test suite (what CI runs), on two worker processes: most tests wait on a CLI subprocess,
    so two at a time keep both cores busy. ``--dist loadfile`` keeps each file on one worker, so a
    module's shared fixture (a trained model, the bad-input corpus) runs once."""
    session.run("python", "-m", "pytest", "-n", "2", "--dist", "loadfile", *session.posargs)


@nox.session
def lint(session):
    """ruff: lint and formatting."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session):
    """mypy on the host package and the built-in plugins."""
    session.run("mypy", "orchestrator", "plugins", *session.posargs)


@nox.session
def smoke(session):
    """Every guide preset, one tiny job each, as one Hydra multirun."""
    with tempfile.TemporaryDirectory() as folder:
        session.chdir(folder)
        session.run(
            "python",
            "-m",
            "orchestrator",
            "-m",
            "+experiment=glob(guide_*)",
            *SMOKE_OVERRIDES,
            *session.posargs,
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        )


@nox.session
def bench(session):
    """Benchmarks against plain Keras; writes BENCHMARKS.md."""
    session.run("python", str(ROOT / "benchmarks" / "run.py"), *session.posargs)
