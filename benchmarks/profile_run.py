"""Run ``python -m orchestrator ARGS`` in this process under a profiler; summarise it as JSON.

pyinstrument (a sampling profiler, small overhead) when installed, else
cProfile. The summary says where the wall time went, in terms the next person
can act on:

* ``project``: the orchestrator's own functions (``orchestrator/``, ``plugins/``)
  by inclusive time;
* ``calls``: what the project's code calls outside itself (Keras's ``fit``, an
  MLflow client call, an ``import``), by inclusive time;
* ``hooks``: every lifecycle hook implementation (``orchestrator_*``), the fit
  stage's per-epoch callback and the built-in stages, however small;
* ``imports``: time spent importing, by top-level package;
* ``tree``: pyinstrument's call tree, frames under 1 % of the run hidden.

    python benchmarks/profile_run.py --summary out.json -- +experiment=mnist data=fashion_mnist
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT_FOLDERS = (str(REPO / "orchestrator") + "/", str(REPO / "plugins") + "/")
SELF = str(Path(__file__).resolve())
#: Frameworks that only dispatch to the project's code: looked through, not reported as calls.
GLUE_PACKAGES = {"hydra", "pluggy"}
#: Decorators' inner functions (Keras's ``error_handler``, MLflow's telemetry ``wrapper``): looked through.
GLUE_FUNCTIONS = {"error_handler", "wrapper", "decorated", "inner", "wrapped", "_wrapper", "__call__"}


def run_orchestrator(args: list[str]) -> None:
    """``python -m orchestrator ARGS``, in this process (``SystemExit(0)`` is success)."""
    sys.argv = ["orchestrator", *args]
    from orchestrator.__main__ import main

    try:
        main()
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise


def is_import_machinery(path: str | None) -> bool:
    return not path or path.startswith("<frozen") or "/importlib/" in path


def is_project(path: str | None) -> bool:
    return bool(path) and path.startswith(PROJECT_FOLDERS)


def short_path(path: str | None) -> str:
    if not path:
        return "?"
    if path.startswith(str(REPO) + "/"):
        return path[len(str(REPO)) + 1 :]
    marker = "site-packages/"
    if marker in path:
        return path.split(marker, 1)[1]
    return path.rsplit("/", 2)[-1] if "/" in path else path


def package_of(path: str | None) -> str:
    """The top-level package a file belongs to (``tensorflow``, ``mlflow``, ``orchestrator``)."""
    short = short_path(path)
    if short.startswith("<frozen") or short == "?":
        return "python"
    head = short.split("/", 1)[0]
    return head.removesuffix(".py")


def summarise_pyinstrument(session, total: float) -> dict:
    root = session.root_frame()
    project: dict[str, float] = defaultdict(float)
    calls: dict[str, float] = defaultdict(float)
    imports: dict[str, float] = defaultdict(float)

    def label(frame) -> str:
        name = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
        return f"{name} ({short_path(frame.file_path)}:{frame.line_no})"

    def walk(frame, seen_project: frozenset, in_project: bool, in_import: bool, caller: str) -> None:
        path = frame.file_path
        key = label(frame)
        here_project = is_project(path)
        machinery = is_import_machinery(path) or frame.is_synthetic
        glue = frame.function != "<module>" and (
            package_of(path) in GLUE_PACKAGES or frame.function in GLUE_FUNCTIONS
        )
        if here_project:
            caller = f"{Path(path).stem}.{label(frame).split(' ')[0]}"
            if key not in seen_project:
                project[key] += frame.time
                seen_project = seen_project | {key}
        if in_project and not here_project and not machinery and not glue:
            # the first frame outside the project under a project frame: what the project called
            if frame.function == "<module>":
                calls[f"{caller} -> import {package_of(path)}"] += frame.time
            else:
                calls[f"{caller} -> {package_of(path)}: {key}"] += frame.time
            in_project = False
        module = frame.function == "<module>" and not machinery and path != SELF
        if module and not in_import and not here_project:
            imports[package_of(path)] += frame.time
            in_import = True
        for child in frame.children:
            walk(child, seen_project, in_project or here_project, in_import, caller)

    if root is not None:
        walk(root, frozenset(), False, False, "")

    from pyinstrument.renderers import ConsoleRenderer

    renderer = ConsoleRenderer(
        unicode=False,
        color=False,
        show_all=False,
        processor_options={"filter_threshold": 0.01},
    )
    return {
        "profiler": "pyinstrument",
        "total_seconds": total,
        "sampled_seconds": root.time if root is not None else 0.0,
        "project": top(project),
        "hooks": hooks(project),
        "calls": top(calls),
        "imports": top(imports),
        "tree": renderer.render(session),
    }


def summarise_cprofile(profile, total: float) -> dict:
    import pstats

    stats = pstats.Stats(profile)
    project: dict[str, float] = {}
    calls: dict[str, float] = {}
    for (path, line, function), (_, _, _, cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{function} ({short_path(path)}:{line})"
        if is_project(path):
            project[key] = cumulative
        elif any(is_project(caller[0]) for caller in callers):
            calls[f"{package_of(path)}: {key}"] = cumulative
    return {
        "profiler": "cProfile",
        "total_seconds": total,
        "project": top(project),
        "hooks": hooks(project),
        "calls": top(calls),
        "imports": [],
        "tree": "",
    }


def hooks(times: dict[str, float]) -> list[list]:
    """Every plugin hook implementation, the per-epoch callback and the built-in stages, however
    small (not capped)."""
    wanted = [
        name
        for name in times
        if name.split(" ")[0].split(".")[-1].startswith(("orchestrator_", "on_epoch_end"))
        or "(plugins/stages.py:" in name
    ]
    return [[name, round(times[name], 4)] for name in sorted(wanted, key=lambda n: -times[n])]


def top(times: dict[str, float], count: int = 25) -> list[list]:
    return [[name, round(seconds, 3)] for name, seconds in sorted(times.items(), key=lambda i: -i[1])[:count]]


def parse_importtime(stderr: str) -> dict:
    """``python -X importtime`` output: the total, the slowest top-level imports, and whether
    TensorFlow, Keras or MLflow were imported at all."""
    top_level: dict[str, int] = {}
    every: set[str] = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        try:
            _, cumulative, name = line[len("import time:") :].split("|")
            microseconds = int(cumulative)
        except ValueError:
            continue
        package = name.strip()
        every.add(package.split(".")[0])
        if not name[1:].startswith(" "):  # no indentation: imported by the program itself
            top_level[package] = top_level.get(package, 0) + microseconds
    heavy = sorted(every & {"tensorflow", "keras", "mlflow", "torch", "jax"})
    return {
        "total_seconds": sum(top_level.values()) / 1e6,
        "top": [[name, us / 1e6] for name, us in sorted(top_level.items(), key=lambda i: -i[1])[:10]],
        "heavy": heavy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--summary", type=Path, required=True, help="where to write the JSON summary")
    parser.add_argument("args", nargs="*", help="the orchestrator's arguments (after --)")
    options = parser.parse_args()
    started = time.perf_counter()
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
        try:
            run_orchestrator(options.args)
        finally:
            profile.disable()
        summary = summarise_cprofile(profile, time.perf_counter() - started)
    else:
        profiler = Profiler(interval=0.001)
        profiler.start()
        try:
            run_orchestrator(options.args)
        finally:
            profiler.stop()
        summary = summarise_pyinstrument(profiler.last_session, time.perf_counter() - started)
    options.summary.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
