"""The review's predictions: every call over the test sample has the same shape."""

from __future__ import annotations

import pytest

from orchestrator.tracking.review_plots import chunks


@pytest.mark.parametrize("count", [1, 5, 2000, 2048, 2049, 4097, 6144, 9999, 10_000])
def test_the_chunks_cover_every_sample_once_and_have_one_size_at_most_the_batch(count):
    parts = chunks(count, 2048)
    kept = [index for start, stop, keep in parts for index in range(start + keep, stop)]
    assert kept == list(range(count))
    assert len({stop - start for start, stop, _ in parts}) == 1
    assert max(stop - start for start, stop, _ in parts) <= 2048


def test_ten_thousand_samples_are_five_chunks_of_two_thousand():
    assert chunks(10_000, 2048) == [(start, start + 2000, 0) for start in range(0, 10_000, 2000)]


def test_no_samples_are_no_chunks():
    assert chunks(0, 2048) == []
