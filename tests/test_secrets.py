"""A secret given on the command line appears nowhere: not in MLflow, not in any file, not in the output."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.secrets import MASK, Secrets
from tests.conftest import TINY, mlflow_client, run_cli

TOKEN = "tok-3f9a7c1e"
PASSWORD = "pw-hunter2-x"
SECRETS = [f"+tracking.tags.api_token={TOKEN}", f"+tracking.tags.db_password={PASSWORD}"]


def leaks(text: str) -> list[str]:
    return [secret for secret in (TOKEN, PASSWORD) if secret in text]


def everything_mlflow_holds(folder: Path) -> list[tuple[str, str]]:
    """Every param, tag and downloaded artifact of every run in the store: ``(where, text)``."""
    client = mlflow_client(folder)
    found = []
    downloads = folder.parent / f"{folder.name}-artifacts"
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            run_id = run.info.run_id
            found += [(f"{run_id} param {k}", f"{k}={v}") for k, v in run.data.params.items()]
            found += [(f"{run_id} tag {k}", f"{k}={v}") for k, v in run.data.tags.items()]
            local = Path(client.download_artifacts(run_id, "", str(downloads / run_id)))
            found += [(f"{run_id} artifact {p}", p.read_bytes().decode("latin-1")) for p in files(local)]
    return found


def files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["+experiment=mnist", *TINY, *SECRETS],
        ["+experiment=mnist", *TINY, *SECRETS, "tracking.run_name=run-${tracking.tags.api_token}"],
        ["-m", "+experiment=mnist", *TINY, *SECRETS, "seed=1,2"],
    ],
    ids=["run", "run-named-with-the-secret", "sweep"],
)
def test_a_secret_appears_nowhere_the_project_or_hydra_writes(workdir, command):
    result = run_cli(*command, "trainer.verbose=0", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not leaks(result.stdout) and not leaks(result.stderr)
    assert files(workdir / ("multirun" if "-m" in command else "outputs")), "the job's folders are there"
    # every file: the output and sweep folders (Hydra's .hydra/ and multirun.yaml, logs, the journal),
    # the index, mlflow.db with its journal files, and the artifact store
    for path in files(workdir):
        assert not leaks(path.read_bytes().decode("latin-1")), path
    held = everything_mlflow_holds(workdir)
    assert any(where.endswith("overrides.yaml") for where, _ in held)
    for where, text in held:
        assert not leaks(text), where
    tags = [text for where, text in held if " tag " in where]
    assert f"api_token={MASK}" in tags and f"db_password={MASK}" in tags


def test_overrides_and_free_text_are_masked_by_key_and_by_value():
    secrets = Secrets.of({"tracking": {"tags": {"api_token": "abc123"}}, "db": {"password": "pw"}})
    assert secrets.values == ("abc123",), "values too short to look for in text are masked by key only"
    assert secrets.overrides(["+db.password=pw", "+tracking.tags={api_token: abc123}", "seed=1"]) == [
        f"+db.password={MASK}",
        f"+tracking.tags={{api_token: {MASK}}}",
        "seed=1",
    ]
    assert secrets.text("sent abc123 to the server") == f"sent {MASK} to the server"
    hydra_file = {"overrides": {"task": ["+db.password=pw"]}, "job": {"override_dirname": "x=abc123"}}
    assert secrets.node(hydra_file) == {
        "overrides": {"task": [f"+db.password={MASK}"]},
        "job": {"override_dirname": f"x={MASK}"},
    }
