"""Keras backends side by side: the guide's example on TensorFlow, JAX and PyTorch, plain and orchestrated.

The suite ``backends`` of ``benchmarks/run.py`` (``--only backends``). Each
repetition runs every variant once, interleaved, each in a fresh process and
folder; the figures are medians of the repetitions:

* plain Keras (``benchmarks/plain_keras.py --backend NAME``) on TensorFlow, JAX and PyTorch;
* ``python -m orchestrator +experiment=mnist data=fashion_mnist backend=NAME``, MLflow on,
  on TensorFlow, on JAX, on JAX with ``trainer=fast``, and on PyTorch;
* the same JAX fast run with an empty JAX compilation cache (a folder of its own per run):
  what the first run on a machine costs;
* ``import keras`` alone on each backend, plain and as the orchestrator imports it.

PyTorch's variants run where PyTorch is installed (``pip install -e '.[torch]'``).

Wall time is the whole process, fit throughput the training steps per second of
``fit``, peak memory the child's ``ru_maxrss``. ``--quick`` imports Keras on JAX once
each way and trains nothing: its verdict says only that the figures were computed.

Example::

    python benchmarks/run.py --only backends --json /tmp/backends.json --output /tmp/backends.md
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

from harness import median, spread
from run import PLAIN, PYTHON, read_mlflow_metrics

#: label -> (title, backend, how it runs); the order each repetition runs them.
VARIANTS = {
    "plain_tf": ("plain Keras, TensorFlow", "tensorflow", "plain"),
    "plain_jax": ("plain Keras, JAX", "jax", "plain"),
    "orchestrator_tf": ("orchestrator, TensorFlow", "tensorflow", "orchestrator"),
    "orchestrator_jax": ("orchestrator, `backend=jax`", "jax", "orchestrator"),
    "orchestrator_jax_fast": ("orchestrator, `backend=jax trainer=fast`", "jax", "fast"),
    "orchestrator_jax_fast_cold": (
        "orchestrator, `backend=jax trainer=fast`, empty compilation cache",
        "jax",
        "cold",
    ),
    "plain_torch": ("plain Keras, PyTorch", "torch", "plain"),
    "orchestrator_torch": ("orchestrator, `backend=torch`", "torch", "orchestrator"),
}
#: Each backend's plain Keras variant: the baseline of its orchestrated runs.
PLAIN_OF = {"tensorflow": "plain_tf", "jax": "plain_jax", "torch": "plain_torch"}
#: ``--quick``: the two imports on JAX alone (a few seconds), enough for one goal's figures.
QUICK_IMPORTS = ("import_jax", "import_orchestrator_jax")
#: label -> (title, backend, the Python code a child runs).
IMPORTS = {
    "import_tf": ("`import keras`, TensorFlow", "tensorflow", "import keras"),
    "import_jax": ("`import keras`, JAX", "jax", "import keras"),
    "import_orchestrator_tf": (
        "Keras as the orchestrator imports it, TensorFlow",
        "tensorflow",
        "from orchestrator.quiet_import import import_keras; import_keras()",
    ),
    "import_orchestrator_jax": (
        "Keras as the orchestrator imports it, JAX",
        "jax",
        "from orchestrator.quiet_import import import_keras; import_keras()",
    ),
    "import_torch": ("`import keras`, PyTorch", "torch", "import keras"),
    "import_orchestrator_torch": (
        "Keras as the orchestrator imports it, PyTorch",
        "torch",
        "from orchestrator.quiet_import import import_keras; import_keras()",
    ),
}
#: The goals of the project: (label, baseline label, at most).
GOALS = (
    ("orchestrator_jax_fast", "plain_tf", 0.60),
    ("orchestrator_jax", "plain_jax", 1.00),
)


def installed(backend: str) -> bool:
    """Whether the framework behind ``backend`` can be imported here (PyTorch is an extra)."""
    return importlib.util.find_spec(backend) is not None


def measure(bench) -> dict:
    s = bench.settings
    variants = () if s.quick else tuple(label for label, v in VARIANTS.items() if installed(v[1]))
    runs: dict[str, list[dict]] = {label: [] for label in variants}
    chosen = QUICK_IMPORTS if s.quick else tuple(label for label, i in IMPORTS.items() if installed(i[1]))
    imports: dict[str, list[dict]] = {label: [] for label in chosen}
    for repetition in range(1, s.repeats + 1):
        for label in variants:
            run = _guide_run(bench, label, repetition)
            runs[label].append(run)
            bench.say(
                f"  {label}: {run['wall']:.2f} s wall, {run['cpu']:.1f} s CPU, fit {run['fit']:.2f} s, "
                f"peak {run['rss_mb']:.0f} MiB, load {run['load']:.2f}"
            )
        for label in imports:
            _, backend, code = IMPORTS[label]
            folder = bench.folder(f"{label}-{repetition}")
            env = {**bench.env, "KERAS_BACKEND": backend}
            imports[label].append(bench.measure(f"{label}-{repetition}", [PYTHON, "-c", code], folder, env))
            shutil.rmtree(folder, ignore_errors=True)
    return {
        "quick": s.quick,
        "repeats": s.repeats,
        "train_steps": s.train_steps,
        "runs": runs,
        "imports": imports,
        "commands": {label: _shown(bench, label) for label in variants},
    }


def _shown(bench, label: str) -> str:
    """A variant's command as a user types it, with the environment the cold variant sets."""
    command = _display(_argv(bench, label, Path("<temp>")))
    if VARIANTS[label][2] == "cold":
        return f"JAX_COMPILATION_CACHE_DIR=<temp>/jax-cache {command}"
    return command


def _argv(bench, label: str, folder: Path) -> list[str]:
    s = bench.settings
    _, backend, how = VARIANTS[label]
    if how == "plain":
        return [PYTHON, PLAIN, "--result", str(folder / "result.json"), "--backend", backend, *s.plain_args()]
    argv = [PYTHON, "-m", "orchestrator", "+experiment=mnist", *s.orchestrator_data(), f"backend={backend}"]
    return argv + (["trainer=fast"] if how in ("fast", "cold") else [])


def _guide_run(bench, label: str, repetition: int) -> dict:
    _, backend, how = VARIANTS[label]
    folder = bench.folder(f"{label}-{repetition}")
    env = dict(bench.env)
    env.pop("KERAS_BACKEND", None)
    if how == "cold":
        env["JAX_COMPILATION_CACHE_DIR"] = str(folder / "jax-cache")
    run = bench.measure(f"{label}-{repetition}", _argv(bench, label, folder), folder, env)
    if how == "plain":
        result = json.loads((folder / "result.json").read_text())
        run.update(fit=result["fit_seconds"], steps=result["train_steps"])
    else:
        run.update(fit=read_mlflow_metrics(folder)["time/fit_seconds"], steps=bench.settings.train_steps)
    run["steps_per_second"] = run["steps"] / run["fit"]
    shutil.rmtree(folder, ignore_errors=True)
    return run


def _display(argv: list[str]) -> str:
    shown = [
        "python" if arg == PYTHON else arg.replace(str(Path(PLAIN).parent.parent) + "/", "") for arg in argv
    ]
    return " ".join(shown)


def _medians(runs: list[dict]) -> dict[str, float]:
    return {
        key: median([run[key] for run in runs])
        for key in ("wall", "cpu", "fit", "steps_per_second", "rss_mb")
    }


def summary_rows(results: dict) -> list[tuple]:
    runs, imports = results["runs"], results["imports"]
    quick = " (`--quick`: no verdict on the goal)" if results["quick"] else ""
    rows = []
    for label, baseline, goal in GOALS:
        if label in runs and baseline in runs:
            ratio = _medians(runs[label])["wall"] / _medians(runs[baseline])["wall"]
            figure = f"backends: {VARIANTS[label][0]} / {VARIANTS[baseline][0]}, whole process"
            rows.append(
                (figure, f"{ratio:.2f}", f"<= {goal:.2f}", ratio <= goal, "section 6, backends" + quick)
            )
    if "import_jax" in imports and "import_orchestrator_jax" in imports:
        ours, plain = (median([run["wall"] for run in imports[key]]) for key in QUICK_IMPORTS[::-1])
        figure = f"backends: {IMPORTS['import_orchestrator_jax'][0]} / `import keras`, JAX"
        rows.append((figure, f"{ours / plain:.2f}", "<= 1.00", ours <= plain, "section 6, backends" + quick))
    return rows


def section(results: dict) -> list[str]:
    runs, imports = results["runs"], results["imports"]
    medians = {label: _medians(measured) for label, measured in runs.items()}
    lines = ["## Backends: the guide's example on TensorFlow, JAX and PyTorch", ""]
    if results["quick"]:
        lines += [
            "`--quick`: Keras imported on JAX, plainly and as the orchestrator does; nothing trained.",
            "",
        ]
    else:
        lines += [
            "The guide's example on Debian's full Fashion-MNIST (2 epochs), each variant in a fresh "
            f"process, interleaved, median of {results['repeats']}; the orchestrator with MLflow on (a fresh "
            f"SQLite store). Fit throughput: the {results['train_steps']} training steps over the "
            "seconds of `fit`. "
            "The orchestrator on JAX keeps JAX's compiled programs in its compilation cache "
            "(docs/backends.md); the cold variant starts each run with an empty one.",
            "",
            "| variant | backend | wall s | min-max | CPU s | / plain TF | / plain JAX "
            "| / plain, same backend | fit steps/s | peak MiB |",
            "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    for label, med in medians.items():
        title, backend, _ = VARIANTS[label]
        low, high = spread([run["wall"] for run in runs[label]])
        ratios = [
            f"{med['wall'] / medians[base]['wall']:.2f}" if base in medians else "n/a"
            for base in ("plain_tf", "plain_jax", PLAIN_OF[backend])
        ]
        lines.append(
            f"| {title} | {backend} | {med['wall']:.2f} | {low:.2f}-{high:.2f} | {med['cpu']:.1f} "
            f"| {' | '.join(ratios)} | {med['steps_per_second']:.0f} | {med['rss_mb']:.0f} |"
        )
    if imports:
        lines += [
            "",
            "| import | backend | wall s | min-max | CPU s | peak MiB |",
            "| --- | --- | ---: | --- | ---: | ---: |",
        ]
        for label, measured in imports.items():
            title, backend, _ = IMPORTS[label]
            low, high = spread([run["wall"] for run in measured])
            wall, cpu, peak = (median([run[key] for run in measured]) for key in ("wall", "cpu", "rss_mb"))
            lines.append(
                f"| {title} | {backend} | {wall:.2f} | {low:.2f}-{high:.2f} | {cpu:.1f} | {peak:.0f} |"
            )
    loads = [run["load"] for measured in [*runs.values(), *imports.values()] for run in measured]
    lines += ["", f"Load average (1 min) during these runs: {min(loads):.1f}-{max(loads):.1f}.", ""]
    if results["commands"]:
        lines += ["Commands:", ""] + [f"- `{command}`" for command in results["commands"].values()]
    return lines


if __name__ == "__main__":
    sys.exit("run it with: python benchmarks/run.py --only backends")
