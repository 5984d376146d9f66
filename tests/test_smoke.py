"""``nox -s smoke``: every guide preset runs as one tiny job of a single Hydra multirun."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env, mlflow_client

pytestmark = pytest.mark.slow

PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("guide_*.yaml"))


def test_every_guide_preset_finishes_in_the_smoke_session(tmp_path: Path):
    nox = shutil.which("nox")
    assert nox, "nox is part of the dev extra"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = subprocess.run(
        [nox, "-s", "smoke", "--", f"hydra.sweep.dir={tmp_path / 'multirun'}"],
        cwd=REPO,
        env=cli_env(MLFLOW_TRACKING_URI=store),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    client = mlflow_client(tmp_path)
    finished = {}
    for preset in PRESETS:
        experiment = client.get_experiment_by_name(preset)
        assert experiment is not None, f"{preset} never ran"
        runs = client.search_runs([experiment.experiment_id])
        finished[preset] = [run.info.status for run in runs]
    assert finished == {preset: ["FINISHED"] for preset in PRESETS}
    assert len(PRESETS) >= 20
