"""The content digest of a split: equal content, equal digest; any change, another digest."""

import numpy as np
import pandas as pd

from orchestrator.data_digest import split_digest


def test_equal_content_gives_equal_digests_and_one_changed_sample_another():
    x = np.arange(120, dtype="float32").reshape(30, 4)
    y = np.arange(30) % 3
    changed = x.copy()
    changed[29, 3] += 1.0
    assert split_digest((x, y)) == split_digest((x.copy(), y.copy()))
    assert split_digest((changed, y)) != split_digest((x, y))
    assert split_digest((x.astype("float64"), y)) != split_digest((x, y))
    assert split_digest((x.reshape(30, 2, 2), y)) != split_digest((x, y))
    assert split_digest((x, y, np.ones(30))) != split_digest((x, y))


def test_a_view_and_a_dict_in_another_order_give_the_same_digest():
    x = np.arange(64, dtype="float32").reshape(8, 8)
    assert split_digest((x[:, ::2], None)) == split_digest((np.ascontiguousarray(x[:, ::2]), None))
    assert split_digest(({"a": x, "b": x[:, :1]}, x)) == split_digest(({"b": x[:, :1], "a": x}, x))
    assert split_digest(({"a": x, "b": x[:, :1]}, x)) != split_digest(({"a": x[:, :1], "b": x}, x))


def test_frames_with_text_columns_and_dataset_objects():
    frame = pd.DataFrame({"size": [1.0, 2.0], "colour": ["red", "blue"]})
    other = frame.assign(colour=["red", "green"])
    y = np.array([0, 1])
    assert split_digest((frame, y)) == split_digest((frame.copy(), y))
    assert split_digest((other, y)) != split_digest((frame, y))
    assert split_digest(iter([(1, 2)])) is None
