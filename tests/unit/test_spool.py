"""The spool: records appended by the training process, read back by the worker, and its state."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator.tracking.spool import FOLDER, RECORDS, STATE, Spool, find_spools


def metric(value: float, step: int) -> dict:
    return {"op": "metrics", "items": [["fit/loss", value, 1700000000000 + step, step]]}


def test_append_numbers_records_from_zero_and_reads_them_back_in_order(tmp_path):
    spool = Spool(tmp_path / FOLDER)

    numbers = [spool.append(metric(0.5, 0)), spool.append(metric(0.4, 1)), spool.append({"op": "end"})]

    assert numbers == [0, 1, 2]
    assert spool.records() == [
        {"seq": 0, **metric(0.5, 0)},
        {"seq": 1, **metric(0.4, 1)},
        {"seq": 2, "op": "end"},
    ]


def test_each_record_is_on_disk_when_append_returns(tmp_path):
    spool = Spool(tmp_path / FOLDER)
    spool.append(metric(0.5, 0))

    lines = (tmp_path / FOLDER / RECORDS).read_text().splitlines()

    assert [json.loads(line) for line in lines] == [{"seq": 0, **metric(0.5, 0)}]


def test_records_from_a_position_leave_out_the_ones_before_it(tmp_path):
    spool = Spool(tmp_path / FOLDER)
    for step in range(5):
        spool.append(metric(1.0 / (step + 1), step))

    assert [record["seq"] for record in spool.records(start=3)] == [3, 4]
    assert spool.records(start=5) == []


def test_a_reopened_spool_goes_on_numbering_after_the_records_on_disk(tmp_path):
    first = Spool(tmp_path / FOLDER)
    first.append(metric(0.5, 0))
    first.append(metric(0.4, 1))
    first.close()

    reopened = Spool(tmp_path / FOLDER)
    assert reopened.append(metric(0.3, 2)) == 2
    reopened.close()


def test_a_half_written_last_line_is_skipped(tmp_path):
    spool = Spool(tmp_path / FOLDER)
    spool.append(metric(0.5, 0))
    spool.close()
    with open(tmp_path / FOLDER / RECORDS, "a") as records:  # killed in the middle of a write
        records.write('{"seq": 1, "op": "metrics", "items": [["fit/lo')

    assert spool.records() == [{"seq": 0, **metric(0.5, 0)}]


def test_appending_after_a_half_written_line_keeps_every_complete_record(tmp_path):
    killed = Spool(tmp_path / FOLDER)
    killed.append(metric(0.5, 0))
    killed.close()
    with open(tmp_path / FOLDER / RECORDS, "a") as records:
        records.write('{"seq": 1, "op": "metrics", "items": [["fit/lo')

    resumed = Spool(tmp_path / FOLDER)  # the resumed run logs to the same spool
    number = resumed.append(metric(0.4, 1))

    assert number == 1
    assert resumed.records() == [{"seq": 0, **metric(0.5, 0)}, {"seq": 1, **metric(0.4, 1)}]


def test_a_spool_without_records_has_none(tmp_path):
    assert Spool(tmp_path / FOLDER).records() == []


def test_state_reads_back_what_was_saved(tmp_path):
    spool = Spool(tmp_path / FOLDER)
    spool.append({"op": "end"})
    saved = {"delivered": 1, "run_id": "abc", "experiment_id": "7", "results": {"3": "plots/x.png"}}

    spool.save_state(saved)

    assert Spool(tmp_path / FOLDER).state() == saved
    assert sorted(os.listdir(tmp_path / FOLDER)) == [RECORDS, STATE]  # no partial file left


def test_state_before_any_delivery_is_nothing_delivered(tmp_path):
    assert Spool(tmp_path / FOLDER).state() == {"delivered": 0}


def test_an_unreadable_state_counts_as_nothing_delivered(tmp_path):
    spool = Spool(tmp_path / FOLDER)
    spool.append({"op": "end"})
    (tmp_path / FOLDER / STATE).write_text('{"delivered": 3, "run')

    assert spool.state() == {"delivered": 0}


def test_remove_deletes_the_spool_folder(tmp_path):
    spool = Spool(tmp_path / FOLDER)
    spool.append({"op": "end"})
    spool.save_state({"delivered": 1})
    spool.close()

    spool.remove()

    assert not (tmp_path / FOLDER).exists()


def spool_at(folder: Path, mtime: int) -> Path:
    spool = Spool(folder / FOLDER)
    spool.append({"op": "end"})
    spool.close()
    os.utime(folder / FOLDER / RECORDS, (mtime, mtime))
    return (folder / FOLDER).resolve()


def test_find_spools_finds_every_spool_under_a_folder_oldest_first(tmp_path):
    newer = spool_at(tmp_path / "sweep" / "0", mtime=2_000_000_000)
    older = spool_at(tmp_path / "sweep" / "1", mtime=1_000_000_000)
    (tmp_path / "sweep" / "2" / FOLDER).mkdir(parents=True)  # no records: nothing to deliver

    assert find_spools([tmp_path / "sweep"]) == [older, newer]


def test_find_spools_takes_a_spool_folder_itself(tmp_path):
    spool = spool_at(tmp_path / "run", mtime=1_000_000_000)

    assert find_spools([tmp_path / "run" / FOLDER]) == [spool]


def test_find_spools_names_a_spool_once_however_it_is_reached(tmp_path):
    spool = spool_at(tmp_path / "run", mtime=1_000_000_000)

    assert find_spools([tmp_path, tmp_path / "run", tmp_path / "run" / FOLDER]) == [spool]


def test_find_spools_of_a_folder_without_spools_is_empty(tmp_path):
    assert find_spools([tmp_path, tmp_path / "missing"]) == []
