"""Shared fixtures: run the real CLI in a subprocess and read the real MLflow store."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Overrides that keep a plumbing test's training tiny: one epoch of a few steps.
TINY = ["trainer.epochs=1", "trainer.limit_batches=5"]
#: The MNIST split shipped with the project (never the Keras loader), no progress bar.
QUIET = ["data.source=bundled", "trainer.verbose=0"]
#: PyTorch is an extra (``[torch]``; ``[dev]`` installs it): its tests run where it is installed.
TORCH = importlib.util.find_spec("torch") is not None
NEEDS_TORCH = pytest.mark.skipif(not TORCH, reason="PyTorch is not installed")
#: Every Keras backend, as a test parameter.
BACKENDS = ["tensorflow", "jax", pytest.param("torch", marks=NEEDS_TORCH)]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: quiet TensorFlow, no inherited tracking URI."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def offline_env(folder: Path) -> dict[str, str]:
    """The CLI's environment with no Keras dataset cache (``folder/keras_home``) and no way out
    (proxies on a closed port), so that ``mnist`` falls back to the split shipped with the project."""
    env = cli_env(KERAS_HOME=str(folder / "keras_home"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"
    for name in ("NO_PROXY", "no_proxy"):
        env.pop(name, None)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m orchestrator *args`` in ``cwd``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: Fixture plugins put on ``PYTHONPATH`` as they are (``tests/fixtures/site``).
FIXTURE_SITE = REPO / "tests" / "fixtures" / "site"


def fixture_env() -> dict[str, str]:
    """The CLI's environment with the fixture plugins importable (the ``interrupt_once`` callback)."""
    path = os.pathsep.join(filter(None, [str(FIXTURE_SITE), os.environ.get("PYTHONPATH")]))
    return cli_env(PYTHONPATH=path)


def interrupt(name: str, epoch: int, batch: int, signal_name: str, marker: Path, after: int = 0) -> str:
    """An override adding the fixture callback that sends the run SIGINT (as Ctrl-C does) or
    SIGKILL once, at the end of batch ``batch`` of epoch ``epoch`` (see tests/fixtures/site)."""
    return (
        f"+callbacks.{name}={{name: interrupt_once, epoch: {epoch}, batch: {batch}, "
        f"signal: {signal_name}, marker: '{marker}', after: {after}}}"
    )


def store_uri(folder: Path) -> str:
    """The tracking URI the CLI uses by default when run in ``folder``."""
    return f"sqlite:///{folder / 'mlflow.db'}"


def mlflow_client(folder: Path):
    """An ``MlflowClient`` on the default store of ``folder``."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store_uri(folder))


def only_run(folder: Path, experiment: str):
    """The single run of ``experiment`` in the store of ``folder`` (fails if not exactly one)."""
    client = mlflow_client(folder)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {folder}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, f"expected one run, found {len(runs)}"
    return runs[0]


def assert_user_error(
    result: subprocess.CompletedProcess, *words: str, code: int = 2, lines: int = 10
) -> str:
    """The CLI answered a user's mistake: exit ``code``, no traceback, at most ``lines`` lines on
    stderr, each of ``words`` in them. Returns the message.

    Example: ``assert_user_error(run_cli("data.name=mnsit", cwd=folder), "data.name", "mnist")``
    """
    message = result.stderr.strip()
    assert result.returncode == code, f"exit {result.returncode}, not {code}:\n{message[-3000:]}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, message[-3000:]
    assert len(message.splitlines()) <= lines, message
    for word in words:
        assert word in message, f"{word!r} not in:\n{message}"
    return message


def metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    """Every ``(step, value)`` MLflow holds for ``key`` of a run, in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def parent_and_children(client, experiment: str) -> tuple[list, list]:
    """The runs of ``experiment`` split into sweep parents and the children under them."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return parents, children


def assert_image(data: bytes | Path, min_side: int = 100) -> tuple[int, int]:
    """``data`` (or the file) is a PNG that Pillow decodes whole, at least ``min_side`` pixels a side,
    with something drawn: not one flat colour, and under 99% background. Returns ``(width, height)``."""
    import io

    import numpy as np
    from PIL import Image

    raw = data.read_bytes() if isinstance(data, Path) else data
    with Image.open(io.BytesIO(raw)) as image:
        assert image.format == "PNG", image.format
        image.load()  # decodes every byte: a truncated file fails here
        width, height = image.size
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert min(width, height) >= min_side, (width, height)
    assert pixels.var() > 0, "one flat colour"
    _, counts = np.unique(pixels, return_counts=True)
    assert counts.max() < 0.99 * pixels.size, "all background"
    return width, height


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty folder to run the CLI in (its mlflow.db and outputs/ land here)."""
    return tmp_path


def heavy_modules_imported(args: list[str], folder: Path, heavy: tuple[str, ...]) -> tuple[list[str], str]:
    """Run the CLI's ``main`` with ``args`` in a fresh interpreter.

    Returns which of ``heavy`` it imported, and what it printed.
    """
    script = (
        "import json, sys\n"
        f"sys.argv = ['orchestrator', *{args!r}]\n"
        "from orchestrator.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, env=cli_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("HEAVY "))
    return json.loads(line.removeprefix("HEAVY ")), result.stdout


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 (never through a proxy)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def mlflow_process(
    args: list[str], folder: Path, log_name: str, start_seconds: float = 120, port: int | None = None
) -> Iterator[str]:
    """``mlflow <args>`` on ``port`` (default: a free one) of 127.0.0.1, in its own process group; yields
    its address.

    The server runs lean for 2 cores (no background job runner); it is stopped,
    with every process it started, when the block ends.
    """
    import os
    import signal
    import time

    port = port or free_port()
    command = [sys.executable, "-m", "mlflow", *args, "--host", "127.0.0.1", "--port", str(port)]
    log = folder / log_name
    env = cli_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with open(log, "a") as output:
        server = subprocess.Popen(
            command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + start_seconds
        while not answers(f"http://127.0.0.1:{port}/health"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`{' '.join(command)}` did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``16m``) mounted at ``folder`` for a full-disk test (root only; skipped
    where mounting is not allowed, which fails the test in CI: see ``pytest_runtest_makereport``)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``CI=true``) a skipped test fails: a missing package or a moved path must not silently
    turn a test off there. Locally a skip stays a skip, with its reason."""
    outcome = yield
    report = outcome.get_result()
    if (
        os.environ.get("CI", "").lower() in ("1", "true", "yes")
        and report.skipped
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, which must run every test: {reason}"
