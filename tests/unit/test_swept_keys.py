"""A sweep's check before its first job leaves a complaint about a swept key to the jobs themselves."""

from orchestrator.sweep.callback import _is_swept


def test_a_key_the_sweep_sets_is_swept():
    assert _is_swept("data.path", ["data=csv", "data.path=a.csv,b.parquet"])


def test_a_key_under_a_swept_group_is_swept():
    assert _is_swept("data.path", ["data=csv,npz"])


def test_a_key_the_sweep_does_not_set_is_not_swept():
    assert not _is_swept("data.path", ["data=csv", "seed=1,2"])
    assert not _is_swept("data.path_x", ["data.path=a,b"])
    assert not _is_swept("trainer.epoch", ["+trainer.epoch=3", "seed=1,2"])
