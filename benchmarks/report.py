"""``render(results) -> str``: BENCHMARKS.md from the figures ``benchmarks/run.py`` measured.

Every number in the page comes from ``results``; the prose under "What the
numbers say" is assembled from the same figures, so it cannot drift from them.
"""

from __future__ import annotations

import importlib

from harness import median, spread

#: The goals, as ratios to plain Keras measured in the same run (or absolute where stated).
GOALS = {
    "wall": 1.10,
    "throughput": 0.97,
    "memory": 1.15,
    "startup": 1.0,
    "tracking_percent": 2.0,
    "sweep_overhead": 0.5,
    "sweep_memory": 0.10,
}
TITLES = {
    "A": "A: plain Keras",
    "B": "B: orchestrator, MLflow on",
    "C": "C: plain Keras + MlflowCallback",
    "D": "D: orchestrator, tracking=off",
    "E": "E: orchestrator, MLflow on, trainer=fast",
}
KEYS = "ABCDE"
NAN = float("nan")


def verdict(passed: bool) -> str:
    return "PASS" if passed else "**MISS**"


def f(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# -- the figures -------------------------------------------------------------------------------


def figures(results: dict) -> dict:
    """The summary figures (medians and ratios) from the raw runs."""
    guide, meta = results["guide"], results["meta"]

    def med(key: str, field: str) -> float:
        return median([run[field] for run in guide[key]])

    out: dict = {"med": {k: {x: med(k, x) for x in guide[k][0]} for k in guide if guide[k]}}
    m = out["med"]
    for key in KEYS[1:]:
        out[f"wall_{key}"] = m[key]["wall"] / m["A"]["wall"]
        out[f"throughput_{key}"] = m[key]["steps_per_second"] / m["A"]["steps_per_second"]
        out[f"memory_{key}"] = m[key]["rss_mb"] / m["A"]["rss_mb"]

    worker = [run["worker_rss_mb"] for run in guide["B"] if "worker_rss_mb" in run]
    out["worker_rss_mb"] = median(worker) if worker else NAN
    out["worker_cpu"] = median([run["worker_cpu"] for run in guide["B"] if "worker_cpu" in run] or [NAN])
    out["memory_B_with_worker"] = (m["B"]["rss_mb"] + out["worker_rss_mb"]) / m["A"]["rss_mb"]

    # Tracking cost from the difference of the fit stages, with and without tracking.
    on, off = m["B"]["fit"], m["D"]["fit"]
    out["tracking_percent"] = (on - off) / off * 100
    out["tracking_ms_per_epoch"] = (on - off) / meta["epochs"] * 1000
    out["tracking_paired"] = [
        (b["fit"] - d["fit"]) / d["fit"] * 100 for b, d in zip(guide["B"], guide["D"], strict=True)
    ]
    out["fit_noise_percent"] = out["wall_noise_percent"] = NAN
    if len(guide["A"]) > 1:
        low, high = spread([run["fit"] for run in guide["A"]])
        out["fit_noise_percent"] = (high - low) / m["A"]["fit"] * 100
        low, high = spread([run["wall"] for run in guide["A"]])
        out["wall_noise_percent"] = (high - low) / m["A"]["wall"] * 100

    walls = results["startup"]["walls"]
    out["startup"] = {name: median(values) for name, values in walls.items() if values}

    jobs = results["sweep"]["jobs"]
    out["sweep_overhead"] = median([j["overhead"] for j in jobs])
    out["sweep_overhead_later"] = median([j["overhead"] for j in jobs[1:]]) if len(jobs) > 1 else NAN
    out["sweep_first"] = jobs[0]["overhead"]
    second, last = jobs[1], jobs[-1]
    out["sweep_memory_ratio"] = last["max_rss_mb"] / second["max_rss_mb"]
    out["sweep_memory_jobs"] = (second["number"] + 1, last["number"] + 1)
    out["sweep_memory_per_job"] = growth(second, last)
    out["sweep_job_seconds"] = median([j["seconds"] for j in jobs[1:]]) if len(jobs) > 1 else NAN
    loop = results["sweep"].get("loop")
    out["loop"] = None
    if loop:
        ljobs = loop["jobs"]
        out["loop"] = {
            "job_seconds": median([j["seconds"] for j in ljobs[1:]]) if len(ljobs) > 1 else NAN,
            "overhead": median([j["overhead"] for j in ljobs[1:]]) if len(ljobs) > 1 else NAN,
            "memory_ratio": ljobs[-1]["max_rss_mb"] / ljobs[1]["max_rss_mb"],
            "memory_per_job": growth(ljobs[1], ljobs[-1]),
            "wall": loop["run"]["wall"],
        }

    # Tracking cost measured directly: the time inside the MLflow tracker's per-epoch hook.
    out["direct"] = None
    profile = (results.get("profile") or {}).get("run")
    if profile:
        hooks = dict(profile["hooks"])

        def total(test) -> float:
            return sum(seconds for name, seconds in hooks.items() if test(name))

        fit = total(lambda n: n.startswith("fit (plugins/stages.py"))
        if fit:
            epochs = meta["epochs"]
            tracker = total(lambda n: "MlflowTracker.orchestrator_after_epoch" in n)
            plugins = total(lambda n: n.split(" ")[0].split(".")[-1] == "orchestrator_after_epoch")
            callback = total(lambda n: "LifecycleCallback.on_epoch_end" in n)
            out["direct"] = {
                "tracker_ms": tracker / epochs * 1000,
                "tracker_percent": tracker / fit * 100,
                "plugins_ms": plugins / epochs * 1000,
                "callback_ms": callback / epochs * 1000,
                "callback_percent": callback / fit * 100,
                "epoch_s": fit / epochs,
            }
    direct = out["direct"]
    out["tracking_verdict_percent"] = direct["tracker_percent"] if direct else out["tracking_percent"]
    return out


def growth(first: dict, last: dict) -> float:
    """Peak memory growth per job (MiB) between two journal entries."""
    return (last["max_rss_mb"] - first["max_rss_mb"]) / max(last["number"] - first["number"], 1)


# -- the page -----------------------------------------------------------------------------------


def render(results: dict) -> str:
    meta = results["meta"]
    if not results.get("guide"):
        return render_suites_only(results)
    fig = figures(results)
    lines: list[str] = [
        "# Benchmarks",
        "",
        "The orchestrator against the same work written by hand in plain Keras, measured by "
        "`benchmarks/run.py` (`nox -s bench`). This file is generated: rerun the harness rather "
        "than editing it.",
        "",
    ]
    if meta["quick"]:
        lines += [
            "> **`--quick` run**: tiny data and one repetition, to check the harness. "
            "These figures say nothing about performance.",
            "",
        ]
    git = meta["git"]
    changed = git["changed"]
    state = "clean working tree"
    if changed:
        state = "with uncommitted changes in " + ", ".join(f"`{c}`" for c in changed[:12])
        if len(changed) > 12:
            state += f" and {len(changed) - 12} more"
    lines += [
        f"- Date: {meta['date']}; the run took {meta['minutes']:.1f} min.",
        f"- Command: `{meta['invocation']}`",
        f"- Code: commit `{git['commit']}`, {state}.",
        "",
    ]
    lines += machine_section(meta)
    lines += summary_section(results, fig)
    lines += words_section(results, fig)
    lines += history_section()
    lines += guide_section(results, fig)
    lines += startup_section(results, fig)
    lines += tracking_section(results, fig)
    lines += sweep_section(results, fig)
    lines += profile_section(results, fig)
    lines += suite_sections(results)
    return "\n".join(lines).rstrip() + "\n"


def suite_rows(results: dict) -> list[tuple]:
    """The summary rows of every suite measured (section 6)."""
    rows = []
    for name, measured in (results.get("suites") or {}).items():
        rows += importlib.import_module(name).summary_rows(measured)
    return rows


def suite_sections(results: dict) -> list[str]:
    """Each suite's own section, in the order they were measured, with the date it was measured."""
    lines = []
    for name, measured in (results.get("suites") or {}).items():
        section = importlib.import_module(name).section(measured)
        lines += [section[0], "", f"Measured {measured['date']}.", "", *section[1:], ""]
    return lines


def render_suites_only(results: dict) -> str:
    """The page of a run that measured suites alone (``--only`` without an earlier full run)."""
    lines = ["# Benchmarks", "", *machine_section(results["meta"])]
    rows = suite_rows(results)
    if rows:
        lines += ["## Summary", "", *summary_table(rows), ""]
    lines += suite_sections(results)
    return "\n".join(lines).rstrip() + "\n"


def machine_section(meta: dict) -> list[str]:
    machine = meta["machine"]
    versions = machine["versions"]
    loads = [x for x in meta["loads"] if x == x]
    cores = machine["usable_cores"] or 1
    busiest = max(loads) if loads else NAN
    quietest = min(loads) if loads else NAN
    lines = [
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| CPU | {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable) |",
        f"| Memory | {machine['memory_gib']:.1f} GiB |",
        "| GPU | none (TensorFlow CPU build) |",
        f"| OS | {machine['os']} |",
        "| Versions | " + ", ".join(f"{name} {version}" for name, version in versions.items()) + " |",
        f"| Load average (1 min) | {f(meta['load_before'])} before, {f(meta['load_after'])} after; "
        f"{f(quietest)}-{f(busiest)} at the start of the measured commands |",
        "",
    ]
    if busiest > 0.5 * cores:
        lines += [
            f"> The machine was shared: the load average reached {f(busiest)} on {cores} cores while "
            "the benchmarks ran (other processes were running). The commands were interleaved, so "
            "each variant saw the same conditions on average, but single runs were slowed by "
            "unrelated work; the min-max columns and the per-run tables show by how much.",
            "",
        ]
    return lines


def summary_section(results: dict, fig: dict) -> list[str]:
    meta = results["meta"]
    s = fig["startup"]
    first, last = fig["sweep_memory_jobs"]
    direct = fig["direct"]
    if direct:
        tracking_note = (
            f"the tracker's `after_epoch` hook, {f(direct['tracker_ms'], 0)} ms per epoch, timed in "
            f"the profile; B's fit minus D's: {f(fig['tracking_percent'], 1)} %"
        )
    else:
        tracking_note = f"B's fit minus D's: {f(fig['tracking_ms_per_epoch'], 0)} ms per epoch"
    rows = [
        (
            "Wall time, B / A (MLflow on)",
            f(fig["wall_B"]),
            f"<= {GOALS['wall']:.2f}",
            fig["wall_B"] <= GOALS["wall"],
            f"C / A: {f(fig['wall_C'])}; D / A: {f(fig['wall_D'])}",
        ),
        (
            "Fit throughput (training steps/s), B / A",
            f(fig["throughput_B"]),
            f">= {GOALS['throughput']:.2f}",
            fig["throughput_B"] >= GOALS["throughput"],
            f"C / A: {f(fig['throughput_C'])}; D / A: {f(fig['throughput_D'])}",
        ),
        (
            "Peak memory, B / A",
            f(fig["memory_B"]),
            f"<= {GOALS['memory']:.2f}",
            fig["memory_B"] <= GOALS["memory"],
            f"C / A: {f(fig['memory_C'])}; D / A: {f(fig['memory_D'])}; B's tracking worker, a process of "
            f"its own: {f(fig['worker_rss_mb'], 0)} MiB more (B + worker / A: "
            f"{f(fig['memory_B_with_worker'])})",
        ),
        (
            "Fast path (`trainer=fast`, MLflow on): wall time, E / A",
            f(fig["wall_E"]),
            "< 1.00",
            fig["wall_E"] < 1.0,
            f"fit throughput E / A: {f(fig['throughput_E'])}; the same losses as B (tests/test_fast_path.py)",
        ),
        (
            "`--cfg job` wall time (s)",
            f(s["cfg_job"], 3),
            f"< {GOALS['startup']:.1f} s",
            s["cfg_job"] < GOALS["startup"],
            f"`python -c pass`: {f(s['floor'], 3)} s",
        ),
        (
            "`--help` wall time (s)",
            f(s["help"], 3),
            f"< {GOALS['startup']:.1f} s",
            s["help"] < GOALS["startup"],
            f"`python -c pass`: {f(s['floor'], 3)} s",
        ),
        (
            "Tracking cost per epoch (% of the epoch)",
            f(fig["tracking_verdict_percent"], 1),
            f"< {GOALS['tracking_percent']:.0f} %",
            fig["tracking_verdict_percent"] < GOALS["tracking_percent"],
            tracking_note,
        ),
        (
            "Sweep overhead per job beyond the stages (s, median)",
            f(fig["sweep_overhead"], 3),
            f"< {GOALS['sweep_overhead']:.1f} s",
            fig["sweep_overhead"] < GOALS["sweep_overhead"],
            f"{meta['sweep_jobs']} jobs in one process"
            + (
                f"; a job takes {f(fig['sweep_job_seconds'])} s against {f(fig['loop']['job_seconds'])} s "
                "in a plain Keras loop"
                if fig["loop"]
                else ""
            ),
        ),
        (
            f"Sweep peak memory, job {last} / job {first}",
            f(fig["sweep_memory_ratio"], 3),
            f"<= {1 + GOALS['sweep_memory']:.2f}",
            fig["sweep_memory_ratio"] <= 1 + GOALS["sweep_memory"],
            f"+{f(fig['sweep_memory_per_job'], 1)} MiB per job"
            + (
                f"; plain Keras loop: {f(fig['loop']['memory_ratio'], 3)}, "
                f"+{f(fig['loop']['memory_per_job'], 1)} MiB per job"
                if fig["loop"]
                else ""
            ),
        ),
    ]
    lines = [
        "## Summary",
        "",
        f"Medians of {plural(meta['repeats'], 'interleaved repetition')}; ratios are to plain Keras "
        "(A) measured in the same run.",
        "",
        *summary_table(rows + suite_rows(results)),
        "",
    ]
    return lines


def summary_table(rows: list[tuple]) -> list[str]:
    """``(figure, measured, goal, passed, for reference)`` rows as a table; ``passed`` None: no goal."""
    lines = ["| figure | measured | goal | result | for reference |", "| --- | ---: | --- | --- | --- |"]
    for name, value, goal, passed, note in rows:
        lines.append(f"| {name} | {value} | {goal} | {'' if passed is None else verdict(passed)} | {note} |")
    return lines


def words_section(results: dict, fig: dict) -> list[str]:
    """The prose: each sentence states measured figures and what follows from them."""
    meta, m = results["meta"], fig["med"]
    a, b, c, d, e = m["A"], m["B"], m["C"], m["D"], m["E"]
    s = fig["startup"]
    said = []
    extra = b["wall"] - a["wall"]
    stages_a = a["fit"] + a["evaluate"] + a["predict"]
    stages_b = b["fit"] + b["evaluate"] + b["predict"]
    said.append(
        f"The guide's example took {f(a['wall'], 1)} s in plain Keras and {f(b['wall'], 1)} s through "
        f"the orchestrator with MLflow on (x{f(fig['wall_B'])}); plain Keras with `MlflowCallback` "
        f"took {f(c['wall'], 1)} s (x{f(fig['wall_C'])}) and the orchestrator without tracking "
        f"{f(d['wall'], 1)} s (x{f(fig['wall_D'])})."
    )
    said.append(
        f"Of B's {f(extra, 1)} s over A, the stages themselves (fit, evaluate, predict: "
        f"{f(stages_b, 1)} s against {f(stages_a, 1)} s) account for {stages_b - stages_a:+.1f} s; "
        f"the other {extra - (stages_b - stages_a):+.1f} s are spent outside the stages: Hydra's "
        "start and config, the review's predictions for the confusion matrix and the input example, "
        "and waiting at the end of the run for the tracking worker to finish the plots and the MLflow "
        "model (section 5 splits them). MLflow's import and the store's set-up are not among them: "
        "the tracking worker does them in a process of its own while TensorFlow imports, and their "
        f"CPU time shows in B's CPU column instead (the worker's median: {f(fig['worker_cpu'], 1)} s of "
        f"CPU, peak {f(fig['worker_rss_mb'], 0)} MiB)."
    )
    said.append(
        "Against the orchestrator without tracking (D), MLflow tracking costs "
        f"{f(b['wall'] - d['wall'], 1)} s of wall time (B / D: x{f(b['wall'] / d['wall'])}): the "
        "worker's CPU time, which competes with the training process wherever the second core is busy, "
        "and the wait at the end of the run."
    )
    said.append(
        f"The opt-in fast path, `trainer=fast` (64 training steps per call into TensorFlow instead of "
        f"one; the same batches and the same losses), ran the whole example in {f(e['wall'], 1)} s "
        f"(x{f(fig['wall_E'])} of plain Keras, MLflow on) and trained at "
        f"{f(e['steps_per_second'], 0)} steps/s (x{f(fig['throughput_E'])} of A's): "
        + ("it beats plain Keras on the same work." if fig["wall_E"] < 1.0 else "it did not beat A here.")
    )
    noise = (
        f"; A's own fit time varied by {f(fig['fit_noise_percent'], 0)} % between repetitions "
        f"(its wall time by {f(fig['wall_noise_percent'], 0)} %), which bounds what this run can resolve"
        if fig["fit_noise_percent"] == fig["fit_noise_percent"]
        else " (one repetition: no estimate of the noise)"
    )
    said.append(
        f"Inside `fit`, B trained at {f(b['steps_per_second'], 0)} steps/s against A's "
        f"{f(a['steps_per_second'], 0)} (x{f(fig['throughput_B'])}) and C's "
        f"{f(c['steps_per_second'], 0)}{noise}."
    )
    said.append(
        f"Peak memory was {f(b['rss_mb'], 0)} MiB for B against {f(a['rss_mb'], 0)} MiB for A "
        f"(x{f(fig['memory_B'])}; C x{f(fig['memory_C'])}, D x{f(fig['memory_D'])})."
    )
    importtime = results["startup"]["importtime"]["cfg_job"]
    said.append(
        f"`--cfg job` answers in {f(s['cfg_job'], 2)} s and `--help` in {f(s['help'], 2)} s, "
        f"{f(s['cfg_job'] - s['floor'], 2)} s and {f(s['help'] - s['floor'], 2)} s above bare Python; "
        + (
            "neither imports TensorFlow, Keras or MLflow"
            if not importtime["heavy"]
            else f"`--cfg job` imports {', '.join(importtime['heavy'])}"
        )
        + f", and imports take {f(importtime['total_seconds'], 2)} s of `--cfg job` (largest: "
        + ", ".join(f"{name} {f(seconds, 2)} s" for name, seconds in importtime["top"][:2])
        + "), so the rest is Hydra composing the config and loading the plugins."
        + (
            " `--help` also lists the options of every config group, those of the installed Hydra "
            "plugins too (here: "
            + ", ".join(
                name
                for name in meta["machine"]["versions"]
                if name.startswith("hydra-") and name != "hydra-core"
            )
            + "), and Hydra copies its whole config repository for each group, so every installed "
            "Hydra plugin makes it slower."
            if s["help"] >= GOALS["startup"]
            else ""
        )
    )
    if "import_keras" in s:
        said.append(
            f"For scale, `import keras` alone takes {f(s['import_keras'], 1)} s and `import mlflow` "
            f"{f(s.get('import_mlflow'), 1)} s here."
        )
    direct = fig["direct"]
    tracking = (
        f"Per epoch, B's fit stage (MLflow on) differed from D's (off) by "
        f"{fig['tracking_ms_per_epoch']:+.0f} ms ({fig['tracking_percent']:+.1f} %; per repetition "
        + ", ".join(f"{x:+.1f} %" for x in fig["tracking_paired"])
        + ")"
    )
    if direct:
        tracking += (
            f"; timed directly in the profile, the MLflow tracker's `after_epoch` hook takes "
            f"{f(direct['tracker_ms'], 0)} ms per epoch, {f(direct['tracker_percent'], 1)} % of the "
            f"fit stage, and the host's per-epoch callback (checkpoint and hooks) "
            f"{f(direct['callback_ms'], 0)} ms ({f(direct['callback_percent'], 1)} %)"
        )
    said.append(tracking + ".")
    first, last = fig["sweep_memory_jobs"]
    said.append(
        f"In the {meta['sweep_jobs']}-job in-process sweep a job spends a median "
        f"{f(fig['sweep_overhead'], 2)} s outside its stages (the first, which imports TensorFlow, "
        f"{f(fig['sweep_first'], 1)} s); the process's peak memory grows by "
        f"{f(fig['sweep_memory_per_job'], 1)} MiB a job, job {last} at x{f(fig['sweep_memory_ratio'], 3)} "
        f"of job {first}."
    )
    loop = fig["loop"]
    if loop:
        said.append(
            f"The same fits in a plain Keras loop take {f(loop['job_seconds'], 2)} s a job against the "
            f"sweep's {f(fig['sweep_job_seconds'], 2)} s, and its memory grows by "
            f"{f(loop['memory_per_job'], 1)} MiB a job (x{f(loop['memory_ratio'], 3)}), "
            + (
                "so the growth is Keras's and TensorFlow's own, not the orchestrator's."
                if loop["memory_per_job"] >= 0.5 * fig["sweep_memory_per_job"]
                else "so most of the sweep's growth is the orchestrator's."
            )
        )
    profile = (results.get("profile") or {}).get("run")
    if profile:
        costs = [
            (name, seconds)
            for name, seconds in profile["calls"]
            if not any(k in name for k in ("keras: Functional.fit", "Functional.evaluate", *DISPATCH))
        ][:5]
        said.append(
            f"The profile of one run ({f(profile['total_seconds'], 1)} s) puts the largest costs "
            "outside training in "
            + "; ".join(f"`{name}` ({f(seconds, 2)} s)" for name, seconds in costs)
            + "."
        )
    return ["## What the numbers say", "", " ".join(said), ""]


#: Calls that only dispatch to the project's own code again (Hydra's entry point, Python's import
#: machinery, Keras's error-handling decorator): not costs of their own.
DISPATCH = ("hydra: ", "python: _find_and_load", "python: _handle_fromlist", "keras: error_handler")


def history_section() -> list[str]:
    """What the profile showed before the tracking worker existed, and what was changed because of it.

    Fixed text: the figures are those of the page generated at commit 565448f, on this machine.
    """
    return [
        "## What the profile showed, and what changed",
        "",
        "Before the tracking worker (this page as generated at commit `565448f`, on the same machine, "
        "5 repetitions) B took x1.40 of plain Keras's wall time. The profile of one run showed, outside "
        "training: `import mlflow` 1.65 s and `MlflowClient.__init__` on the fresh `mlflow.db` 2.39 s "
        "(every one of MLflow's schema migrations), both before TensorFlow's import; the review at the "
        "end of the run 1.72 s, of which `Model.log` with the Keras flavour 0.72 s (serialising the "
        "model a second time, and MLflow reading every installed package's files to check the "
        "requirements) and the plots 0.88 s (matplotlib's import and `savefig`); the tracker's "
        "per-epoch hook 13 ms an epoch (a synchronous `log_batch` and the checkpoint's copy). A thread "
        "cannot hide the first two: importing MLflow and migrating a store in a thread while the main "
        "thread imported TensorFlow took 6.0 s here, against 5.8-6.0 s one after the other, since "
        "Python's GIL serialises the two imports. What was changed, each step measured before it was "
        "kept:",
        "",
        "1. The training process no longer imports MLflow. Every tracking call appends a record to the "
        "run's spool (`mlflow-spool/` in its output folder) and returns; a tracking worker process "
        "(`orchestrator/tracking/worker.py`), started with the run, imports MLflow and opens the store "
        "on the other core while TensorFlow imports and the data loads, then delivers the records "
        "(consecutive ones in one `log_batch`) while training goes on. MLflow's own asynchronous "
        "logging (`synchronous=False`) was not enough: it queues in a thread of the training process, "
        "which must still import MLflow and open the store first, and loses what it queued when the "
        "server stays away.",
        "2. A new SQLite store is a copy of an empty store that MLflow migrated once per MLflow version "
        "(kept in `~/.cache/keras-orchestrator`; MLflow's own tests do the same, and MLflow checks "
        "the schema revision of the copy when it opens it): 0.03 s instead of 1.4-2.4 s.",
        "3. The review's MLflow model is built by the worker from the `model.keras` the run already "
        "saved (no second serialisation), and its requirements, which pin the installed Keras and "
        "TensorFlow, are written without MLflow's scan of every installed package (0.8 s). The worker "
        "loads matplotlib while TensorFlow imports, and draws the learning curves and the confusion "
        "matrix while the stages after the last fit run. The training process passes the model over "
        "the test sample once, calling it directly in batches of 2048 (no `predict` function to trace), "
        "for both the confusion matrix and the MLflow model's input example.",
        "4. The tracking worker ends without the interpreter's teardown of MLflow, SQLAlchemy and "
        "matplotlib (everything it delivered is committed): the training process waited 0.8 s for that "
        "teardown as it exited.",
        "5. An opt-in fast path, `trainer=fast` (section 1, E). XLA (`trainer.jit_compile=true`) was "
        "measured too and left out: on this CPU it made the fit 1.5-3x slower (compilation) and "
        "changed the losses.",
        "",
    ]


def guide_section(results: dict, fig: dict) -> list[str]:
    meta, guide, m = results["meta"], results["guide"], fig["med"]
    data = (
        f"the MNIST split the project ships, capped at {meta['limit_batches']} batches a split (`--quick`)"
        if meta["quick"]
        else "Debian's full Fashion-MNIST (50,000 train / 10,000 validation / 10,000 test)"
    )
    lines = [
        "## 1. The guide's example, three ways (and two more)",
        "",
        f"The end-to-end example of the Keras guide on {data}: the functional MLP, RMSprop(1e-3), "
        f"{meta['epochs']} epochs of batch 64 with validation, evaluate with batch 128, predict 3 "
        "samples. Each command runs in a fresh process and a fresh temporary folder, interleaved "
        f"{' '.join(KEYS)} in each of {plural(meta['repeats'], 'repetition')}"
        + ("" if meta["quick"] else ", after one untimed warm-up run of A")
        + ":",
        "",
    ]
    for key in KEYS:
        lines.append(f"- **{TITLES[key]}**: `{meta['commands'][key]}`")
    lines += [
        "",
        "B logs to a fresh `sqlite:///mlflow.db`: params, per-epoch metrics, checkpoints, the model "
        "and predictions, plus what every installed plugin adds. C logs a few params, the per-epoch "
        "metrics, the model summary, the test metrics and the saved model. D is B without tracking, "
        "run as a one-job multirun so that its journal records the stage times (its wall time "
        "includes the multirun's report). E is B with `trainer=fast`, the opt-in fast path: Keras runs "
        "64 training steps per call into TensorFlow (`steps_per_execution=64`) instead of one, which "
        "trains on the same batches in the same order and gives the same losses "
        "(`tests/test_fast_path.py` checks it); batch-level callbacks then see every 64th batch.",
        "",
        f"Wall time is the whole process; fit throughput is training steps ({meta['train_steps']} = "
        f"ceil(train samples / 64) x {meta['epochs']}) per second of `fit` (A and C time `model.fit`; "
        "B reads `time/fit_seconds` from its MLflow store with `MlflowClient`, D from its journal; "
        "the orchestrator's fit stage includes writing a checkpoint per epoch); peak memory is the "
        "child's `ru_maxrss` from `os.wait4`. B and E also run the tracking worker, a child process "
        "that imports MLflow and writes to the store: its CPU time is in theirs (the orchestrator waits "
        "for it), and `os.wait4` reports the larger of the two peaks, the training process's; the "
        "worker's own peak, which adds to it while both run, is the last column.",
        "",
        "| variant | wall s | wall min-max | CPU s | fit s | steps/s | peak MiB | wall / A "
        "| steps/s / A | memory / A | worker MiB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in KEYS:
        runs, med, base = guide[key], m[key], m["A"]
        low, high = spread([r["wall"] for r in runs])
        lines.append(
            f"| {TITLES[key]} | {f(med['wall'])} | {f(low)}-{f(high)} | {f(med['cpu'], 1)} "
            f"| {f(med['fit'])} | {f(med['steps_per_second'], 0)} | {f(med['rss_mb'], 0)} "
            f"| {f(med['wall'] / base['wall'])} | {f(med['steps_per_second'] / base['steps_per_second'])} "
            f"| {f(med['rss_mb'] / base['rss_mb'])} | {f(med.get('worker_rss_mb'), 0)} |"
        )
    lines += [
        "",
        "<details><summary>Every run</summary>",
        "",
        "| run | wall s | CPU s | fit s | evaluate s | predict s | peak MiB | load (1 min) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for repetition in range(meta["repeats"]):
        for key in KEYS:
            r = guide[key][repetition]
            lines.append(
                f"| {key}{repetition + 1} | {f(r['wall'])} | {f(r['cpu'], 1)} | {f(r['fit'])} "
                f"| {f(r['evaluate'], 3)} | {f(r['predict'], 3)} | {f(r['rss_mb'], 0)} | {f(r['load'])} |"
            )
    lines += ["", "</details>", ""]
    return lines


def startup_section(results: dict, fig: dict) -> list[str]:
    startup, meta = results["startup"], results["meta"]
    notes = {
        "floor": "floor",
        "cfg_job": f"goal < {GOALS['startup']:.1f} s",
        "help": f"goal < {GOALS['startup']:.1f} s",
        "import_keras": "reference",
        "import_mlflow": "reference",
    }
    floor = fig["startup"]["floor"]
    lines = [
        "## 2. Start-up",
        "",
        f"Median wall time of {meta['startup_repeats']} runs each, interleaved (the `import` rows: "
        "fewer runs, for scale).",
        "",
        "| command | median s | min-max | runs | above `python -c pass` | |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for name, values in startup["walls"].items():
        if not values:
            continue
        command = " ".join("python" if i == 0 else part for i, part in enumerate(startup["commands"][name]))
        low, high = spread(values)
        value = median(values)
        lines.append(
            f"| `{command}` | {f(value, 3)} | {f(low, 3)}-{f(high, 3)} | {len(values)} "
            f"| {f(value - floor, 3)} | {notes.get(name, '')} |"
        )
    lines += ["", "`python -X importtime`, the largest imports at the top level:", ""]
    for name, title in (("cfg_job", "--cfg job"), ("help", "--help")):
        report = startup["importtime"][name]
        heavy = ", ".join(report["heavy"]) or "none of TensorFlow, Keras, MLflow"
        top = ", ".join(f"{pkg} {seconds:.3f} s" for pkg, seconds in report["top"][:6])
        lines.append(
            f"- `{title}`: {report['total_seconds']:.3f} s of imports in all; heavy imports: {heavy}; "
            f"largest: {top}."
        )
    lines.append("")
    return lines


def tracking_section(results: dict, fig: dict) -> list[str]:
    m, meta = fig["med"], results["meta"]
    epochs = meta["epochs"]
    direct = fig["direct"]
    lines = [
        "## 3. Tracking cost per epoch",
        "",
        "Two measurements. (1) B (MLflow on) against D (`tracking=off`), the same command otherwise, "
        "interleaved in the same repetitions: both fit stages write a checkpoint per epoch (the host "
        "does that with or without tracking), and with tracking on every epoch also logs its metrics "
        "and the checkpoint to MLflow. The difference of two fit times is small against their noise "
        "on a busy machine, so (2) the profiled run of section 5 also times the tracker's "
        "per-epoch hook directly; the goal's verdict uses (2) when there is a profile.",
        "",
        "| (1) difference of fit times | B: MLflow on | D: tracking=off | difference |",
        "| --- | ---: | ---: | ---: |",
        f"| fit stage, median s | {f(m['B']['fit'])} | {f(m['D']['fit'])} "
        f"| {f(m['B']['fit'] - m['D']['fit'], 3)} |",
        f"| per epoch, s | {f(m['B']['fit'] / epochs, 3)} | {f(m['D']['fit'] / epochs, 3)} "
        f"| {f(fig['tracking_ms_per_epoch'] / 1000, 3)} |",
        f"| % of the epoch | | | {f(fig['tracking_percent'], 1)} |",
        "",
        "Per repetition (B against the D of the same repetition): "
        + ", ".join(f"{x:+.1f} %" for x in fig["tracking_paired"])
        + ".",
        "",
    ]
    goal = GOALS["tracking_percent"]
    if direct:
        lines += [
            "| (2) timed in the profile, per epoch | ms | % of the epoch |",
            "| --- | ---: | ---: |",
            f"| MLflow tracker, `orchestrator_after_epoch` | {f(direct['tracker_ms'], 1)} "
            f"| {f(direct['tracker_percent'], 2)} (goal < {goal:.0f} %: "
            f"{verdict(direct['tracker_percent'] < goal)}) |",
            f"| every plugin's `orchestrator_after_epoch` | {f(direct['plugins_ms'], 1)} "
            f"| {f(direct['plugins_ms'] / 10 / direct['epoch_s'], 2)} |",
            f"| the host's per-epoch callback (checkpoint + hooks) | {f(direct['callback_ms'], 1)} "
            f"| {f(direct['callback_percent'], 2)} |",
            f"| the epoch (fit stage / epochs) | {f(direct['epoch_s'] * 1000, 0)} | 100 |",
            "",
        ]
    else:
        lines += [
            f"No profile in this run: the verdict uses (1), {f(fig['tracking_percent'], 1)} % "
            f"(goal < {goal:.0f} %: {verdict(fig['tracking_percent'] < goal)}).",
            "",
        ]
    return lines


def sweep_section(results: dict, fig: dict) -> list[str]:
    sweep, meta = results["sweep"], results["meta"]
    command = " ".join(
        ("python" if i == 0 else (f"'{p}'" if "(" in p else p)) for i, p in enumerate(sweep["command"])
    )
    first, last = fig["sweep_memory_jobs"]
    overhead_goal = GOALS["sweep_overhead"]
    memory_goal = 1 + GOALS["sweep_memory"]
    lines = [
        "## 4. In-process sweep",
        "",
        f"`{command}`",
        "",
        f"{meta['sweep_jobs']} jobs in one process (Hydra's basic launcher), MLflow on, each a tiny fit "
        f"({meta['sweep_limit_batches']} batches, 1 epoch). From the sweep journal: overhead = "
        "`seconds - sum(stage_seconds)` (data, model, compile, saving, MLflow run set-up and "
        "artifacts, clearing the previous job's Keras state), and `max_rss_mb`, the process's peak "
        f"memory after each job. The whole sweep took {f(sweep['run']['wall'], 1)} s, peak "
        f"{f(sweep['run']['rss_mb'], 0)} MiB."
        + (
            " For reference, the same fits in a hand-written loop (`benchmarks/plain_keras_loop.py`: "
            "clear the Keras session, seed, load, build, compile, fit, evaluate, predict, save; no "
            f"tracking) took {f(sweep['loop']['run']['wall'], 1)} s."
            if sweep.get("loop")
            else ""
        ),
        "",
        "| figure | measured | goal | result |",
        "| --- | ---: | --- | --- |",
        f"| sweep: per-job overhead, median of all jobs (s) | {f(fig['sweep_overhead'], 3)} "
        f"| < {overhead_goal} s | {verdict(fig['sweep_overhead'] < overhead_goal)} |",
        f"| sweep: per-job overhead, median of jobs 2-{meta['sweep_jobs']} (s) "
        f"| {f(fig['sweep_overhead_later'], 3)} | | |",
        f"| sweep: job 1 overhead, imports TensorFlow (s) | {f(fig['sweep_first'], 3)} | | |",
        f"| sweep: peak memory job {last} / job {first} | {f(fig['sweep_memory_ratio'], 3)} "
        f"| <= {memory_goal:.2f} | {verdict(fig['sweep_memory_ratio'] <= memory_goal)} |",
        f"| sweep: peak memory growth per job (MiB) | {f(fig['sweep_memory_per_job'], 2)} | | |",
        f"| sweep: median seconds per job, jobs 2-{meta['sweep_jobs']} | {f(fig['sweep_job_seconds'], 3)} "
        "| | |",
    ]
    loop = fig["loop"]
    if loop:
        lines += [
            f"| reference, plain Keras loop: median seconds per job, jobs 2-{meta['sweep_jobs']} "
            f"| {f(loop['job_seconds'], 3)} | | |",
            f"| reference, plain Keras loop: overhead beyond fit, evaluate, predict (s) "
            f"| {f(loop['overhead'], 3)} | | |",
            f"| reference, plain Keras loop: peak memory job {last} / job {first} "
            f"| {f(loop['memory_ratio'], 3)} | | |",
            f"| reference, plain Keras loop: peak memory growth per job (MiB) "
            f"| {f(loop['memory_per_job'], 2)} | | |",
        ]
    lines += [
        "",
        "<details><summary>Every job</summary>",
        "",
        "| job | seconds | stages s | overhead s | peak MiB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for job in sweep["jobs"]:
        lines.append(
            f"| {job['number'] + 1} | {f(job['seconds'], 3)} | {f(sum(job['stage_seconds'].values()), 3)} "
            f"| {f(job['overhead'], 3)} | {f(job['max_rss_mb'], 1)} |"
        )
    lines += ["", "</details>", ""]
    return lines


def profile_section(results: dict, fig: dict) -> list[str]:
    profiles = results.get("profile") or {}
    lines = ["## 5. Profiles", ""]
    if not profiles:
        return lines + ["Skipped in a `--quick` run; the start-up imports are in section 2.", ""]
    lines += [
        "Times are inclusive and overlap (a function's time contains its callees'); the profiler "
        "adds some overhead, and the process's wall time also holds Python's start, the "
        "profiler's own report and the exit. The profiles cover the training process only: the "
        "tracking worker's MLflow work runs in a process of its own (section 1 has its CPU time and "
        "memory), and what the training process waits for it shows as `RunLog.wait`.",
        "",
    ]
    run = profiles.get("run")
    if run:
        lines += profile_tables("5a. One run of B", run)
    sweep = profiles.get("sweep")
    if sweep:
        lines += profile_tables(f"5b. An in-process sweep of {sweep['jobs']} tiny jobs", sweep)
    return lines


def profile_tables(title: str, profile: dict) -> list[str]:
    jobs = profile.get("jobs", 1)
    per_job = jobs > 1
    head = "| s | s per job |" if per_job else "| s |"
    rule = "| ---: | ---: |" if per_job else "| ---: |"

    def row(name: str, seconds: float) -> str:
        cells = f"{f(seconds)} | {f(seconds / jobs, 3)}" if per_job else f(seconds)
        return f"| {name} | {cells} |"

    lines = [
        f"### {title}",
        "",
        f"`{profile['command']}` ({profile['profiler']}: {f(profile['total_seconds'], 1)} s profiled, "
        f"{f(profile['wall'], 1)} s for the whole process).",
        "",
        "**Imports**, by the package first imported (what it imports in turn counts for it):",
        "",
        "| package " + head,
        "| --- " + rule,
    ]
    lines += [row(name, seconds) for name, seconds in profile["imports"][:6]]
    lines += [
        "",
        "**What the project's code calls outside itself** (`caller -> package: callee`), the largest:",
        "",
        "| call " + head,
        "| --- " + rule,
    ]
    lines += [row(f"`{name}`", seconds) for name, seconds in profile["calls"][:15]]
    lines += ["", "**The project's own functions**, the largest:", "", "| function " + head, "| --- " + rule]
    lines += [row(f"`{name}`", seconds) for name, seconds in profile["project"][:20]]
    hooks = [
        (name, seconds)
        for name, seconds in profile.get("hooks", [])
        if seconds >= 0.001 and not name.split(" ")[0].startswith(("_", "orchestrator_register_"))
    ]
    if hooks:
        lines += [
            "",
            "**Every lifecycle hook, the per-epoch callback and the stages**:",
            "",
            "| function " + head,
            "| --- " + rule,
        ]
        lines += [row(f"`{name}`", seconds) for name, seconds in hooks]
    if profile.get("tree"):
        lines += [
            "",
            "<details><summary>The call tree (pyinstrument, frames under 1 % hidden)</summary>",
            "",
            "```",
            profile["tree"].strip("\n"),
            "```",
            "",
            "</details>",
        ]
    lines.append("")
    return lines
