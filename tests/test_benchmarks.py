"""The benchmark harness runs end to end (``benchmarks/run.py --quick``) and writes its tables.

No timing is asserted: a ``--quick`` run uses tiny data on a shared machine. The
test checks that every measured command ran, and that the page has the rows of
the ways of running the guide's example (A to E), of start-up and of the sweep,
with numbers where numbers belong.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow

TIMEOUT = 600


def cells(markdown: str, first_cell: str) -> list[str]:
    """The cells of the one table row whose first cell is ``first_cell``."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]
    found = [row for row in rows if row[0] == first_cell]
    assert len(found) == 1, f"expected one row {first_cell!r}, found {len(found)}"
    return found[0]


def numbers(row: list[str], columns: list[int]) -> list[float]:
    """The given cells as floats (``ValueError`` if one is not a number)."""
    return [float(row[column]) for column in columns]


def test_quick_benchmark_writes_every_table(tmp_path: Path):
    output = tmp_path / "B.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--output", str(output)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[bench" in done.stdout  # progress lines
    page = output.read_text()

    # 1. the guide's example: wall, CPU, fit, steps/s, peak MiB and the three ratios to A
    for variant in (
        "A: plain Keras",
        "B: orchestrator, MLflow on",
        "C: plain Keras + MlflowCallback",
        "D: orchestrator, tracking=off",
        "E: orchestrator, MLflow on, trainer=fast",
    ):
        values = numbers(cells(page, variant), [1, 3, 4, 5, 6, 7, 8, 9])
        assert all(value > 0 for value in values), (variant, values)
    assert numbers(cells(page, "A: plain Keras"), [7, 8, 9]) == [1.0, 1.0, 1.0]

    # 2. start-up, against the bare interpreter
    for command in (
        "`python -c pass`",
        "`python -m orchestrator +experiment=mnist --cfg job`",
        "`python -m orchestrator --help`",
    ):
        (median,) = numbers(cells(page, command), [1])
        assert median > 0

    # 3. tracking cost, 4. the sweep
    numbers(cells(page, "Tracking cost per epoch (% of the epoch)"), [1])
    numbers(cells(page, "sweep: per-job overhead, median of all jobs (s)"), [1])
    (memory,) = numbers(cells(page, "sweep: peak memory job 3 / job 2"), [1])
    assert memory > 0

    # every goal has a verdict
    summary = page.split("## Summary", 1)[1].split("## ", 1)[0]
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line][1:]
    suites = importlib.import_module("benchmarks.run").SUITES
    of_suites = [line for line in rows if line.split("|")[1].strip().split(":")[0] in suites]
    core = [line for line in rows if line not in of_suites]
    assert len(core) == 9 and all("PASS" in line or "MISS" in line for line in core), summary
    for suite in suites:  # each suite has its rows in the summary and a section of its own
        assert any(line.startswith(f"| {suite}:") for line in of_suites), (suite, summary)
    assert "--quick" in page
