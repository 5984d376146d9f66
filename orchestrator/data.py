"""What a data source returns: the splits and what a model builder needs to know.

Example::

    Data(
        train=(x_train, y_train),
        validation=(x_val, y_val),
        test=(x_test, y_test),
        info={"input_shape": (784,), "num_classes": 10, "source": "keras"},
    )
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UserError
from orchestrator.stage import SPLITS


@dataclass
class Data:
    """The splits of a data set.

    Each split is either a tuple ``(x, y)`` / ``(x, y, sample_weight)`` of NumPy
    arrays (or dicts or lists of them, for multi-input and multi-output models),
    or any other input ``Model.fit`` accepts as ``x`` on its own: a
    ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a generator.

    Args:
        train: the training split.
        validation: the validation split, or ``None``.
        test: the test split, or ``None``.
        info: facts for model builders and tracking: ``input_shape``,
            ``num_classes``, ``source`` (where the data came from), ...
    """

    train: Any
    validation: Any = None
    test: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Any:
        """The split called ``name`` (``"train"``, ``"validation"`` or ``"test"``)."""
        if name not in SPLITS:
            raise UserError("split", f"unknown split {name!r}; use train, validation or test.")
        return getattr(self, name)


def model_dimensions(context, input_shape=None, num_classes=None) -> tuple[tuple[int, ...], int]:
    """``(input shape, class count)`` for a model builder: its own arguments, else the data's ``info``.

    Example::

        shape, classes = model_dimensions(context, input_shape, num_classes)
    """
    info = context.data.info if context is not None and context.data is not None else {}
    shape = tuple(input_shape or info.get("input_shape") or ())
    classes = num_classes or info.get("num_classes")
    if not shape:
        raise UserError("model.input_shape", "the data source gives no input shape; set it here.")
    if not classes:
        raise UserError("model.num_classes", "the data source gives no class count; set it here.")
    return shape, int(classes)
