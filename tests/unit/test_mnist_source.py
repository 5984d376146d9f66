"""The bundled MNIST split honours data.validation_size, and the source's checks run before loading."""

import pytest

from orchestrator import UserError
from orchestrator.plugins import get_plugin_manager
from orchestrator_plugins.mnist import mnist


def test_the_bundled_split_holds_out_the_asked_validation_size_of_its_8000_images():
    data = mnist(source="bundled", validation_size=1500)
    assert len(data.train[0]) == 6500 and len(data.validation[0]) == 1500 and len(data.test[0]) == 2000
    default = mnist(source="bundled")
    assert len(default.train[0]) == 6000 and len(default.validation[0]) == 2000
    # the validation split is the last images of the 8,000: the same images, whatever the size
    assert (data.validation[0][-1] == default.validation[0][-1]).all()


def test_a_bundled_validation_size_beyond_its_8000_images_is_refused():
    with pytest.raises(UserError) as caught:
        mnist(source="bundled", validation_size=8000)
    assert caught.value.key == "data.validation_size" and "8000 images" in str(caught.value)


@pytest.mark.parametrize(
    ("args", "key"),
    [({"source": "internet"}, "data.source"), ({"validation_size": -1}, "data.validation_size")],
)
def test_the_source_and_the_size_are_checked_with_the_config(args, key):
    registry = get_plugin_manager().registries["data_source"]
    with pytest.raises(UserError) as caught:
        registry.check("mnist", args, "data")
    assert caught.value.key == key
