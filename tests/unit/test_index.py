"""The index of commands: the identity of a command, its entry, and the lock a live run holds on it."""

from __future__ import annotations

import json
import pickle

import pytest

from orchestrator.resume.index import INDEX, RunIndex, command_key, write_json
from tests.unit.holder import Holder


def test_command_key_is_the_same_for_the_same_overrides():
    assert command_key(["seed=7", "trainer.epochs=3"]) == command_key(["seed=7", "trainer.epochs=3"])


@pytest.mark.parametrize("resume", ["resume=false", "resume=true", "+resume=false", "~resume"])
def test_command_key_ignores_resume(resume):
    assert command_key(["seed=7", resume, "trainer.epochs=3"]) == command_key(["seed=7", "trainer.epochs=3"])


def test_command_key_differs_by_overrides():
    assert command_key(["seed=7"]) != command_key(["seed=8"])


def test_command_key_keeps_a_key_that_only_starts_with_resume():
    assert command_key(["resume_from=x"]) != command_key([])


def test_command_key_differs_by_sweep():
    assert command_key(["seed=7"], sweep_id="a") != command_key(["seed=7"], sweep_id="b")
    assert command_key(["seed=7"], sweep_id="a") != command_key(["seed=7"])


def test_an_entry_lives_under_the_index_folder_by_kind(tmp_path):
    assert RunIndex(tmp_path, "k").path == tmp_path / INDEX / "runs" / "k.json"
    assert RunIndex(tmp_path, "k", kind="sweeps").path == tmp_path / INDEX / "sweeps" / "k.json"


def test_an_entry_never_written_reads_as_none(tmp_path):
    assert RunIndex(tmp_path, "k").read() is None


def test_an_unreadable_entry_reads_as_none(tmp_path):
    index = RunIndex(tmp_path, "k")
    index.path.parent.mkdir(parents=True)
    index.path.write_text('{"status": "RUNN')

    assert index.read() is None


def test_write_adds_to_the_entry_and_reads_back(tmp_path):
    index = RunIndex(tmp_path, "k")

    index.write(output_dir="outputs/1", status="RUNNING", resumes=0)
    index.write(status="FINISHED", run_id="abc")

    entry = RunIndex(tmp_path, "k").read()
    assert {k: v for k, v in entry.items() if k != "updated"} == {
        "output_dir": "outputs/1",
        "status": "FINISHED",
        "resumes": 0,
        "run_id": "abc",
    }
    assert isinstance(entry["updated"], float)


def test_claim_takes_a_free_entry(tmp_path):
    index = RunIndex(tmp_path, "k")

    assert index.claim()
    assert index.claimed
    index.release()


def claimed_elsewhere(tmp_path, key: str) -> Holder:
    take = (
        "from orchestrator.resume.index import RunIndex; "
        f"index = RunIndex({str(tmp_path)!r}, {key!r}); assert index.claim()"
    )
    return Holder(take, release="index.release()")


def test_a_second_process_cannot_claim_an_entry_held_by_a_live_process(tmp_path):
    with claimed_elsewhere(tmp_path, "k"):
        index = RunIndex(tmp_path, "k")

        assert not index.claim()
        assert not index.claimed


def test_another_entry_is_free_while_one_is_held(tmp_path):
    with claimed_elsewhere(tmp_path, "k"):
        other = RunIndex(tmp_path, "other")
        assert other.claim()
        other.release()


def test_an_entry_released_by_its_process_can_be_claimed(tmp_path):
    with claimed_elsewhere(tmp_path, "k") as other:
        other.release()
        index = RunIndex(tmp_path, "k")

        assert index.claim()
        index.release()


def test_an_entry_held_by_a_killed_process_can_be_claimed(tmp_path):
    with claimed_elsewhere(tmp_path, "k") as other:
        other.kill()
        index = RunIndex(tmp_path, "k")

        assert index.claim()
        index.release()


def test_release_frees_the_entry(tmp_path):
    first = RunIndex(tmp_path, "k")
    assert first.claim()

    first.release()

    assert not first.claimed
    second = RunIndex(tmp_path, "k")
    assert second.claim()
    second.release()


def test_a_copy_sent_to_another_process_holds_no_lock(tmp_path):
    index = RunIndex(tmp_path, "k")
    assert index.claim()

    copy = pickle.loads(pickle.dumps(index))

    assert copy.path == index.path
    assert not copy.claimed
    assert index.claimed
    index.release()


def test_write_json_replaces_the_file_with_the_new_data(tmp_path):
    path = tmp_path / "a" / "state.json"
    write_json(path, {"epochs_done": 1})

    write_json(path, {"epochs_done": 2})

    assert json.loads(path.read_text()) == {"epochs_done": 2}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_reader_that_opened_the_file_before_a_write_reads_the_old_file_whole(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"epochs_done": 1, "metrics": list(range(1000))})

    with open(path) as reader:
        write_json(path, {"epochs_done": 2})
        assert json.loads(reader.read()) == {"epochs_done": 1, "metrics": list(range(1000))}


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("killed while writing")


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"epochs_done": 1})

    with pytest.raises(RuntimeError):
        write_json(path, {"epochs_done": 2, "metrics": list(range(1000)), "last": Unprintable()})

    assert json.loads(path.read_text()) == {"epochs_done": 1}


def test_command_key_differs_by_backend():
    assert command_key(["seed=7"], backend="jax") != command_key(["seed=7"], backend="tensorflow")
    assert command_key(["seed=7"]) == command_key(["seed=7"], backend="tensorflow")
