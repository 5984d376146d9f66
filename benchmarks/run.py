"""Benchmarks: the orchestrator against the same work written by hand in plain Keras.

    python benchmarks/run.py                  # full run (~6 min on 2 cores), writes BENCHMARKS.md
    python benchmarks/run.py --repeats 5      # more repetitions (~8 min)
    python benchmarks/run.py --quick --output /tmp/B.md   # tiny data, 1 repetition: checks the harness
    python benchmarks/run.py --json raw.json  # also keep the raw figures ...
    python benchmarks/run.py --render raw.json --output B.md   # ... and write the page again from them

What it measures, each command in a fresh subprocess:

1. The Keras guide's end-to-end example on Debian's full Fashion-MNIST (2 epochs,
   batch 64, validation on the last 10,000, evaluate with batch 128, predict 3),
   interleaved A B C D E per repetition:
   A. plain Keras by hand (``benchmarks/plain_keras.py``);
   B. ``python -m orchestrator +experiment=mnist data=fashion_mnist`` (MLflow on, fresh store);
   C. plain Keras + ``mlflow.keras.MlflowCallback`` (fresh SQLite store);
   D. B with ``tracking=off``, as a one-job multirun whose journal records the stage times;
   E. B with the opt-in fast path, ``trainer=fast`` (64 steps per call into TensorFlow).
   Wall time, CPU time, peak memory (``ru_maxrss`` from ``os.wait4``), fit time
   and training steps per second; for B and E also the tracking worker's peak
   memory and CPU time (``ORCHESTRATOR_WORKER_STATS``).
2. Start-up: ``--cfg job`` and ``--help`` against ``python -c pass``; ``-X importtime``.
3. Tracking cost per epoch: B's fit time against D's, and the MLflow tracker's
   per-epoch hook timed directly in the profile of section 5.
4. An in-process 20-job grid sweep: per-job overhead and peak memory, from its journal;
   and the same fits in a plain Keras loop (``benchmarks/plain_keras_loop.py``) for reference.
5. Profiles of one run of B and of a 5-job sweep (``benchmarks/profile_run.py``:
   pyinstrument if installed, else cProfile), summarised for whoever optimises next.
6. The suites of ``SUITES``, each a module of ``benchmarks/`` that measures one more
   subject against its own baseline, interleaved in the same run.

``--only NAME`` measures one suite alone; with ``--json FILE`` the other figures
already in FILE are kept and the page is written from all of them::

    python benchmarks/run.py --json raw.json              # everything
    python benchmarks/run.py --only NAME --json raw.json  # one suite again, the rest kept

The results go to ``--output`` (default ``BENCHMARKS.md`` at the repository root).
``benchmarks/results.json`` holds the raw figures of the BENCHMARKS.md in the
repository: ``--only NAME --json benchmarks/results.json`` measures one suite again
and keeps the rest.
A command that fails prints the tail of its stderr and the harness exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from harness import ChildFailed, child_env, load_1min, median, run_child  # noqa: E402
from profile_run import parse_importtime  # noqa: E402
from report import render  # noqa: E402

PYTHON = sys.executable
PLAIN = str(HERE / "plain_keras.py")
PROFILE = str(HERE / "profile_run.py")
LOOP = str(HERE / "plain_keras_loop.py")
BATCH_SIZE = 64
#: The variants of section 1, in the order each repetition runs them.
KEYS = "ABCDE"
#: Jobs of the profiled sweep (section 5): enough to see the per-job costs repeat.
PROFILED_SWEEP_JOBS = 5
#: The suites of section 6: module names in benchmarks/, each with ``measure(bench) -> dict``,
#: ``summary_rows(results) -> list[tuple]`` (figure, measured, goal, passed or None, for reference)
#: and ``section(results) -> list[str]`` (its markdown lines), ``results`` being what it measured.
SUITES: tuple[str, ...] = ("backends", "system_metrics", "sweep_tuner", "sweep_idle")


class Settings:
    """What a full run and a ``--quick`` run do differently."""

    def __init__(self, quick: bool, repeats: int | None, timeout: float | None, profile: bool | None = None):
        self.quick = quick
        self.repeats = repeats or (1 if quick else 3)
        self.timeout = timeout or (300 if quick else 900)
        self.epochs = 2
        # The guide's data: full Fashion-MNIST, or (quick) the bundled MNIST split, 5 batches a split.
        self.limit_batches = 5 if quick else None
        self.train_samples = 6000 if quick else 50000
        self.startup_repeats = 2 if quick else 7
        self.reference_repeats = 0 if quick else 3
        self.sweep_jobs = 3 if quick else 20
        self.sweep_limit_batches = 5 if quick else 20
        self.profile = (not quick) if profile is None else profile
        self.warm_up = not quick

    @property
    def train_steps(self) -> int:
        per_epoch = math.ceil(self.train_samples / BATCH_SIZE)
        if self.limit_batches is not None:
            per_epoch = min(per_epoch, self.limit_batches)
        return per_epoch * self.epochs

    def plain_args(self) -> list[str]:
        if self.quick:
            return ["--bundled", "--limit-batches", str(self.limit_batches)]
        return []

    def orchestrator_data(self) -> list[str]:
        if self.quick:
            return ["data.source=bundled", f"trainer.limit_batches={self.limit_batches}"]
        return ["data=fashion_mnist"]


class Bench:
    def __init__(self, settings: Settings, root: Path):
        self.settings = settings
        self.root = root
        self.started = time.monotonic()
        self.env = child_env()
        self.loads: list[float] = []
        self._count = 0

    def say(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.started:6.0f} s] {message}", flush=True)

    def folder(self, name: str) -> Path:
        self._count += 1
        path = self.root / f"{self._count:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def measure(self, label: str, argv: list[str], cwd: Path, env: dict | None = None) -> dict:
        measured = run_child(label, argv, cwd=cwd, env=env or self.env, timeout=self.settings.timeout)
        self.loads.append(measured.load_1min)
        return {
            "wall": measured.wall_seconds,
            "cpu": measured.cpu_seconds,
            "rss_mb": measured.max_rss_mb,
            "load": measured.load_1min,
            "stderr": str(measured.stderr),
        }

    # -- 1. the guide's example, four ways -------------------------------------------

    def commands(self, key: str, folder: Path) -> list[str]:
        s = self.settings
        if key == "A":
            return [PYTHON, PLAIN, "--result", str(folder / "result.json"), *s.plain_args()]
        if key == "B":
            return [PYTHON, "-m", "orchestrator", "+experiment=mnist", *s.orchestrator_data()]
        if key == "C":
            return [
                PYTHON,
                PLAIN,
                "--result",
                str(folder / "result.json"),
                "--mlflow",
                str(folder),
                *s.plain_args(),
            ]
        if key == "E":
            return [PYTHON, "-m", "orchestrator", "+experiment=mnist", *s.orchestrator_data(), "trainer=fast"]
        if key == "D":
            return [
                PYTHON,
                "-m",
                "orchestrator",
                "-m",
                "+experiment=mnist",
                *s.orchestrator_data(),
                "tracking=off",
                f"hydra.sweep.dir={folder / 'sweep'}",
            ]
        raise KeyError(key)

    def guide_run(self, key: str, repetition: int) -> dict:
        folder = self.folder(f"{key}-{repetition}")
        argv = self.commands(key, folder)
        stats = folder / "worker-stats.jsonl"
        env = {**self.env, "ORCHESTRATOR_WORKER_STATS": str(stats)}
        run = self.measure(f"{key}-{repetition}", argv, folder, env)
        if stats.exists():
            workers = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
            run["worker_rss_mb"] = max(w["max_rss_mb"] for w in workers)
            run["worker_cpu"] = sum(w["cpu_seconds"] for w in workers)
        if key in ("A", "C"):
            result = json.loads((folder / "result.json").read_text())
            run.update(
                fit=result["fit_seconds"],
                evaluate=result["evaluate_seconds"],
                predict=result["predict_seconds"],
                steps=result["train_steps"],
            )
        elif key in ("B", "E"):
            metrics = read_mlflow_metrics(folder)
            run.update(
                fit=metrics["time/fit_seconds"],
                evaluate=metrics["time/test_seconds"],
                predict=metrics["time/predict_seconds"],
                steps=self.settings.train_steps,
            )
        else:
            (job,) = read_journal(folder / "sweep")
            stages = job["stage_seconds"]
            run.update(
                fit=stages["fit"],
                evaluate=stages["test"],
                predict=stages["predict"],
                steps=self.settings.train_steps,
            )
        run["steps_per_second"] = run["steps"] / run["fit"]
        shutil.rmtree(folder, ignore_errors=True)
        return run

    def guide(self) -> dict[str, list[dict]]:
        s = self.settings
        runs: dict[str, list[dict]] = {key: [] for key in KEYS}
        if s.warm_up:
            self.say("warm-up: one untimed run of A (fills the file cache)")
            self.guide_run("A", 0)
        for repetition in range(1, s.repeats + 1):
            for key in KEYS:
                self.say(f"guide example {key}, repetition {repetition}/{s.repeats} ...")
                run = self.guide_run(key, repetition)
                runs[key].append(run)
                self.say(
                    f"  {key}: {run['wall']:.2f} s wall, fit {run['fit']:.2f} s "
                    f"({run['steps_per_second']:.0f} steps/s), peak {run['rss_mb']:.0f} MiB, "
                    f"load {run['load']:.2f}"
                )
        return runs

    # -- 2. start-up ----------------------------------------------------------------------

    def startup(self) -> dict:
        s = self.settings
        commands = {
            "floor": [PYTHON, "-c", "pass"],
            "cfg_job": [PYTHON, "-m", "orchestrator", "+experiment=mnist", "--cfg", "job"],
            "help": [PYTHON, "-m", "orchestrator", "--help"],
        }
        references = {
            "import_keras": [PYTHON, "-c", "import keras"],
            "import_mlflow": [PYTHON, "-c", "import mlflow"],
        }
        folder = self.folder("startup")
        walls: dict[str, list[float]] = {name: [] for name in [*commands, *references]}
        self.say(f"start-up: {', '.join(commands)} x {s.startup_repeats}, interleaved ...")
        for repetition in range(s.startup_repeats):
            for name, argv in commands.items():
                walls[name].append(self.measure(f"{name}-{repetition}", argv, folder)["wall"])
        for repetition in range(s.reference_repeats):
            for name, argv in references.items():
                walls[name].append(self.measure(f"{name}-{repetition}", argv, folder)["wall"])
        importtime = {}
        for name in ("cfg_job", "help"):
            argv = [PYTHON, "-X", "importtime", *commands[name][1:]]
            measured = run_child(f"importtime-{name}", argv, folder, self.env, self.settings.timeout)
            importtime[name] = parse_importtime(measured.stderr.read_text(errors="replace"))
        for name, values in walls.items():
            if values:
                self.say(f"  {name}: median {median(values):.3f} s")
        return {"walls": walls, "commands": {**commands, **references}, "importtime": importtime}

    # -- 4. in-process sweep ------------------------------------------------------------

    def sweep(self) -> dict:
        s = self.settings
        folder = self.folder("sweep")
        argv = [
            PYTHON,
            "-m",
            "orchestrator",
            "-m",
            "+experiment=mnist",
            f"seed=range({s.sweep_jobs})",
            f"trainer.limit_batches={s.sweep_limit_batches}",
            "trainer.epochs=1",
            "data.source=bundled",
            f"hydra.sweep.dir={folder / 'sweep'}",
        ]
        self.say(f"sweep: {s.sweep_jobs} jobs in one process ...")
        run = self.measure("sweep", argv, folder)
        jobs = read_journal(folder / "sweep")
        if len(jobs) != s.sweep_jobs or any(j["status"] != "FINISHED" for j in jobs):
            statuses = ", ".join(f"{j['number']}:{j['status']}" for j in jobs)
            raise ChildFailed(f"the sweep journal has {len(jobs)} jobs ({statuses}), not {s.sweep_jobs}")
        for job in jobs:
            job["overhead"] = job["seconds"] - sum(job["stage_seconds"].values())
        self.say(
            f"  {run['wall']:.1f} s wall, median job overhead "
            f"{median([j['overhead'] for j in jobs]):.3f} s, peak {run['rss_mb']:.0f} MiB"
        )
        loop = self.plain_loop()
        shutil.rmtree(folder, ignore_errors=True)
        return {
            "command": argv[:-1] + ["hydra.sweep.dir=<temp>/sweep"],
            "run": run,
            "jobs": jobs,
            "loop": loop,
        }

    def plain_loop(self) -> dict:
        """The same tiny fits in a hand-written loop: what Keras itself costs per job."""
        s = self.settings
        folder = self.folder("loop")
        argv = [
            PYTHON,
            LOOP,
            "--result",
            str(folder / "result.json"),
            "--jobs",
            str(s.sweep_jobs),
            "--limit-batches",
            str(s.sweep_limit_batches),
            "--folder",
            str(folder),
        ]
        self.say(f"reference: the same {s.sweep_jobs} fits in a plain Keras loop ...")
        run = self.measure("loop", argv, folder)
        jobs = json.loads((folder / "result.json").read_text())
        for job in jobs:
            job["overhead"] = job["seconds"] - sum(job["stage_seconds"].values())
        self.say(
            f"  {run['wall']:.1f} s wall, median job {median([j['seconds'] for j in jobs]):.3f} s, "
            f"peak {run['rss_mb']:.0f} MiB"
        )
        shutil.rmtree(folder, ignore_errors=True)
        return {"command": display(argv).replace(str(folder), "<temp>"), "run": run, "jobs": jobs}

    # -- 5. profile ---------------------------------------------------------------------

    def profile(self) -> dict | None:
        """Profiles of one run of B and of a short sweep (full runs only)."""
        s = self.settings
        if not s.profile:
            return None
        sweep = [
            "-m",
            "+experiment=mnist",
            f"seed=range({PROFILED_SWEEP_JOBS})",
            f"trainer.limit_batches={s.sweep_limit_batches}",
            "trainer.epochs=1",
            "data.source=bundled",
        ]
        return {
            "run": self.profile_one("run", ["+experiment=mnist", *s.orchestrator_data()]),
            "sweep": self.profile_one("sweep", sweep, jobs=PROFILED_SWEEP_JOBS),
        }

    def profile_one(self, name: str, args: list[str], jobs: int = 1) -> dict:
        folder = self.folder(f"profile-{name}")
        extra = [f"hydra.sweep.dir={folder / 'sweep'}"] if jobs > 1 else []
        argv = [PYTHON, PROFILE, "--summary", str(folder / "profile.json"), "--", *args, *extra]
        self.say(f"profile: {display(args)} under the profiler ...")
        run = self.measure(f"profile-{name}", argv, folder)
        summary = json.loads((folder / "profile.json").read_text())
        summary["command"] = display(
            [PYTHON, "benchmarks/profile_run.py", "--summary", "out.json", "--", *args]
        )
        summary["wall"] = run["wall"]
        summary["jobs"] = jobs
        shutil.rmtree(folder, ignore_errors=True)
        return summary


def read_mlflow_metrics(folder: Path) -> dict[str, float]:
    """The metrics of the one run in the store of ``folder`` (B's ``time/<stage>_seconds``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mnist")
    if experiment is None:
        raise ChildFailed(f"no MLflow experiment 'mnist' in {folder / 'mlflow.db'}")
    runs = client.search_runs([experiment.experiment_id])
    if len(runs) != 1 or runs[0].info.status != "FINISHED":
        raise ChildFailed(f"expected one FINISHED run in {folder / 'mlflow.db'}, found {len(runs)}")
    return dict(runs[0].data.metrics)


def read_journal(sweep_dir: Path) -> list[dict]:
    path = sweep_dir / "orchestrator-jobs.jsonl"
    if not path.exists():
        raise ChildFailed(f"no sweep journal at {path}")
    jobs: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            jobs[int(entry["number"])] = entry
    return [jobs[number] for number in sorted(jobs)]


# -- the machine ---------------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {"Python": platform.python_version()}
    dists = ("tensorflow", "keras", "mlflow", "hydra-core", "omegaconf", "pluggy", "numpy", "pyinstrument")
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    hydra_plugins = sorted(
        {d.metadata["Name"].lower() for d in metadata.distributions() if d.metadata["Name"]}
        & {
            "hydra-joblib-launcher",
            "hydra-ray-launcher",
            "hydra-submitit-launcher",
            "hydra-optuna-sweeper",
            "hydra-ax-sweeper",
            "hydra-nevergrad-sweeper",
            "hydra-rq-launcher",
            "hydra-colorlog",
        }
    )
    for dist in hydra_plugins:
        versions[dist] = metadata.version(dist)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "versions": versions,
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "none visible to TensorFlow (CPU build)"),
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:]]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "changed": changed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="repetitions of A B C D (default 3)")
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 repetition, a 3-job sweep")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="the markdown to write")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per command (900; quick 300)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile a run and a sweep (default: on, off with --quick)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also save the raw results as JSON")
    parser.add_argument(
        "--render", type=Path, default=None, help="measure nothing: write --output from a saved --json"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SUITES,
        default=None,
        help="measure only this suite (repeatable); the rest of --json FILE is kept",
    )
    options = parser.parse_args(argv)
    if options.repeats is not None and options.repeats < 1:
        parser.error("--repeats must be 1 or more")
    if options.render is not None:
        options.output.write_text(render(json.loads(options.render.read_text())))
        print(f"[bench] wrote {options.output} from {options.render}")
        return 0

    settings = Settings(options.quick, options.repeats, options.timeout, options.profile)
    invocation = " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    root = Path(tempfile.mkdtemp(prefix="orchestrator-bench-"))
    bench = Bench(settings, root)
    bench.say(f"{'quick' if settings.quick else 'full'} run, {settings.repeats} repetition(s), in {root}")
    started_at = datetime.now(UTC)
    load_before = load_1min()
    earlier = options.only and options.json is not None and options.json.exists()
    kept = json.loads(options.json.read_text()) if earlier else {}
    try:
        if options.only:
            core = {key: kept.get(key) for key in ("guide", "startup", "sweep", "profile")}
        else:
            core = {"guide": bench.guide(), "startup": bench.startup(), "sweep": bench.sweep()}
            core["profile"] = bench.profile()
        suites = dict(kept.get("suites") or {})
        for name in options.only or SUITES:
            bench.say(f"suite {name}")
            suites[name] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
            suites[name].update(importlib.import_module(name).measure(bench))
    except ChildFailed as error:
        print(f"\n[bench] FAILED: {error}", file=sys.stderr, flush=True)
        print(f"[bench] its folder is kept: {root}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"\n[bench] interrupted; folders kept in {root}", file=sys.stderr)
        return 130
    results = {
        "meta": {
            "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
            "minutes": (time.monotonic() - bench.started) / 60,
            "invocation": invocation,
            "quick": settings.quick,
            "repeats": settings.repeats,
            "startup_repeats": settings.startup_repeats,
            "train_steps": settings.train_steps,
            "epochs": settings.epochs,
            "limit_batches": settings.limit_batches,
            "sweep_jobs": settings.sweep_jobs,
            "sweep_limit_batches": settings.sweep_limit_batches,
            "load_before": load_before,
            "load_after": load_1min(),
            "loads": bench.loads,
            "machine": machine(),
            "git": git_state(),
            "commands": {key: display(bench.commands(key, Path("<temp>"))) for key in KEYS},
        },
        **core,
        "suites": suites,
    }
    if options.only and kept.get("meta"):
        results["meta"] = {**kept["meta"], "loads": kept["meta"]["loads"] + bench.loads}
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=1))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(render(results))
    bench.say(f"wrote {options.output}")
    if not options.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def display(argv: list[str]) -> str:
    """A command as a user types it: ``python`` for the interpreter, paths relative to the repo."""
    shown = []
    for arg in argv:
        if arg == PYTHON:
            arg = "python"
        arg = arg.replace(str(REPO) + "/", "")
        shown.append(f"'{arg}'" if any(c in arg for c in "()<>") else arg)
    return " ".join(shown)


if __name__ == "__main__":
    sys.exit(main())
