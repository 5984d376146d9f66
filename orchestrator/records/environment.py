"""What differs between a run's record and the machine now: versions, git commit, data.

``reproduce`` says these before it re-runs (and ``--strict`` refuses on any of
them). The data's digests now are those of the splits the run's data source
gives today, built from the recorded config through the plugin registry, the
way a run loads its data, and digested by :func:`orchestrator.data_digest.split_digest`.

Example::

    differences, notes = environment_differences(record)
    for difference in differences:
        print(difference.line())       # 'version of keras: 3.15.1 then, 3.16.0 now'
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.records.record import RunRecord

#: Config values the recorded config gives as ``None``.
UNSET = ("None", "null", "")


@dataclass(frozen=True)
class Difference:
    """One thing that is not as it was when the run ran."""

    what: str
    then: str
    now: str

    def line(self) -> str:
        return f"{self.what}: {self.then} then, {self.now} now"


def environment_differences(record: RunRecord) -> tuple[list[Difference], list[str]]:
    """What differs from the run's record now, and notes on what the record does not say."""
    from orchestrator.tracking.run_info import git_tags, version_tags

    differences, notes = [], []
    now = {k.removeprefix("version."): v for k, v in version_tags().items()}
    for dist in sorted(set(record.versions) | set(now)):
        then_version, now_version = record.versions.get(dist), now.get(dist)
        if then_version != now_version:
            differences.append(
                Difference(
                    f"version of {dist}", then_version or "not installed", now_version or "not installed"
                )
            )
    commit_now = git_tags().get("git.commit")
    if record.commit is None:
        notes.append("no git commit recorded")
    elif record.commit != commit_now:
        differences.append(Difference("git commit", record.commit, commit_now or "no git checkout"))
    missing = missing_paths(record)
    differences.extend(missing)
    if not record.digests:
        notes.append("no data digest recorded")
    elif not missing:
        differences.extend(digest_differences(record.digests, current_digests(record.config)))
    return differences, notes


def missing_paths(record: RunRecord) -> list[Difference]:
    """The data source's paths (``data.path``, ``data.test_path``, ...) that no longer exist here (a
    relative path is read from the current folder, as the re-run reads it)."""
    return [
        Difference(
            key, value, "no such file or folder" + ("" if Path(value).is_absolute() else f" in {Path.cwd()}")
        )
        for key, value in sorted(record.params.items())
        if key.startswith("data.")
        and key.endswith("path")
        and value not in UNSET
        and not Path(value).exists()
    ]


def digest_differences(then: dict[str, str], now: dict[str, str | None] | str) -> list[Difference]:
    """One :class:`Difference` per split whose digest changed (``now`` may be why no digest could be made)."""
    if isinstance(now, str):
        return [Difference("data", "loaded", f"cannot be loaded ({now})")]
    return [
        Difference(f"data digest of {split}", digest, now.get(split) or _no_digest(split, now))
        for split, digest in sorted(then.items())
        if now.get(split) != digest
    ]


def _no_digest(split: str, now: dict[str, str | None]) -> str:
    return "not in memory, no digest" if split in now else "no such split"


def current_digests(config: dict[str, Any]) -> dict[str, str | None] | str:
    """Split -> digest of what the recorded config's data source gives now (``None`` for a split that is
    not in memory), or why the data cannot be loaded."""
    from omegaconf import OmegaConf

    from orchestrator.data_digest import split_digest
    from orchestrator.run import load_data, prepare
    from orchestrator.stage import SPLITS

    try:
        with tempfile.TemporaryDirectory() as folder:
            context = prepare(OmegaConf.create(config), Path(folder), root=Path(folder))
            data = load_data(context)
    except UserError as error:
        return str(error)
    except Exception as error:  # the user's data source: whatever it raises is the answer
        return f"{type(error).__name__}: {error}"[:300]
    splits = {split: data.split(split) for split in SPLITS}
    return {split: split_digest(value) for split, value in splits.items() if value is not None}
