"""The data sources for users' files (plugins/data_files/): image_folder, image_files, csv (and Parquet), npz.

Every file is written here: 60 real Fashion-MNIST images (3 classes x 20, read
from Debian's IDX files and saved as PNG with Pillow), a CSV listing them, the
iris table (scikit-learn's bundled copy) as CSV and Parquet, and ``.npz`` files.

* Through the real CLI, one sweep over four data config entries the test writes
  (``--config-dir``): the image folder, the CSV, the Parquet file and the
  ``.npz``, each trained by ``model=mlp`` with no input size given; the MLflow
  records and output files are read back.
* In-process: what each source hands Keras (the image list trained with worker
  threads), against an independent recount (the IDX pixels, NumPy statistics
  of the training rows, the split rule).
* Mistakes: each answered before TensorFlow, with no MLflow run.
"""

from __future__ import annotations

import csv
import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from orchestrator import UserError
from orchestrator_plugins import data_files
from orchestrator_plugins.data_files.splits import cut
from tests.conftest import (
    assert_user_error,
    cli_env,
    heavy_modules_imported,
    mlflow_client,
    parent_and_children,
    run_cli,
)

FASHION = Path("/usr/share/datasets/fashion-mnist")
#: Fashion-MNIST label -> the class folder its images go to (classes sort as bag, sneaker, trouser).
CLASSES = {1: "trouser", 7: "sneaker", 8: "bag"}
PER_CLASS = 20
SMALL = ["trainer.epochs=1", "trainer.limit_batches=2"]
IMAGES = ["data.image_size=[28,28]", "data.color_mode=grayscale", "data.flatten=true", "data.batch_size=8"]
IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]

pytestmark = pytest.mark.skipif(
    not FASHION.exists(), reason="Debian's dataset-fashion-mnist is not installed"
)


def read_idx(name: str, offset: int) -> np.ndarray:
    """An IDX file of Fashion-MNIST's test split, read by hand (``offset``: its header's bytes)."""
    return np.frombuffer(gzip.open(FASHION / name).read(), dtype=np.uint8, offset=offset)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """The folder of every file the tests read; ``pixels.npz`` holds each PNG's source pixels by name."""
    from PIL import Image
    from sklearn.datasets import load_iris

    root = tmp_path_factory.mktemp("data_files")
    images = read_idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx("t10k-labels-idx1-ubyte.gz", 8)
    rows, pixels = [], {}
    for label, name in CLASSES.items():
        (root / "images" / name).mkdir(parents=True)
        for index in np.flatnonzero(labels == label)[:PER_CLASS]:
            relative = f"images/{name}/{index}.png"
            Image.fromarray(images[index]).save(root / relative)
            rows.append((relative, name))
            pixels[relative] = images[index]
    np.savez(root / "pixels.npz", **{key.replace("/", "|"): value for key, value in pixels.items()})
    write_csv(root / "images.csv", ["file", "label"], rows)

    iris = load_iris(as_frame=True)
    table = iris.frame.drop(columns="target")
    table["species"] = [iris.target_names[t] for t in iris.target]
    table["colour"] = np.where(np.arange(len(table)) % 3 == 0, "red", "blue")
    table["split"] = np.where(np.arange(len(table)) % 5 == 0, "validation", "train")
    table.loc[np.arange(len(table)) % 5 == 1, "split"] = "test"
    table.to_csv(root / "iris.csv", index=False)
    table.to_parquet(root / "iris.parquet")

    ids = np.arange(50, dtype="float32")
    np.savez(root / "arrays.npz", x_train=np.stack([ids, ids * 2], 1), y_train=ids % 4,
             x_val=np.ones((6, 2), "float32"), y_val=np.arange(6) % 4)  # fmt: skip
    np.savez(root / "no_labels.npz", x_train=np.zeros((5, 2)), x_test=np.zeros((3, 2)), y_test=np.zeros(3))
    np.savez(root / "mismatched.npz", x_train=np.zeros((5, 2)), y_train=np.zeros(4))

    (root / "empty_class" / "a").mkdir(parents=True)
    (root / "empty_class" / "b").mkdir()
    Image.fromarray(images[0]).save(root / "empty_class" / "a" / "0.png")
    broken = root / "broken"
    for name in ("a", "b"):
        (broken / name).mkdir(parents=True)
        for index in range(5):
            Image.fromarray(images[index]).save(broken / name / f"{index}.png")
    (broken / "b" / "garbage.png").write_bytes(b"these bytes are no image at all" * 3)
    write_csv(root / "missing_file.csv", ["file", "label"], [*rows[:5], ("images/bag/nothing.png", "bag")])

    entries = root / "conf" / "data"  # config entries of the user's own, found with --config-dir
    entries.mkdir(parents=True)
    entries.joinpath("fashion_folder.yaml").write_text(
        f"name: image_folder\npath: {root / 'images'}\nimage_size: [28, 28]\ncolor_mode: grayscale\n"
        "flatten: true\nbatch_size: 8\n"
    )
    for name in ("csv", "parquet"):
        entries.joinpath(f"iris_{name}.yaml").write_text(
            f"name: csv\npath: {root / f'iris.{name}'}\nlabel: species\nsplit_column: split\n"
        )
    entries.joinpath("arrays.yaml").write_text(f"name: npz\npath: {root / 'arrays.npz'}\n")
    return root


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def check(result) -> None:
    assert result.returncode == 0, f"the run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


# -- one sweep through the CLI: the image folder, the CSV, the Parquet file, the .npz ------------

SOURCES = ("fashion_folder", "iris_csv", "iris_parquet", "arrays")


@pytest.fixture(scope="module")
def sweep(files, tmp_path_factory):
    """``python -m orchestrator --config-dir <files>/conf -m data=<the four entries>``: one process, one
    MLflow run per source, ``model=mlp`` sized by each source."""
    folder = tmp_path_factory.mktemp("sweep")
    result = run_cli(
        "--config-dir", str(files / "conf"), "-m", f"data={','.join(SOURCES)}", *SMALL, cwd=folder
    )
    check(result)
    _, children = parent_and_children(mlflow_client(folder), "default")
    runs = {run.data.tags["orchestrator.overrides"].split()[0].removeprefix("data="): run for run in children}
    assert sorted(runs) == sorted(SOURCES)
    return folder, runs


def recorded(folder: Path, run) -> dict:
    path = mlflow_client(folder).download_artifacts(run.info.run_id, "data/data_info.json")
    return json.loads(Path(path).read_text())


def samples(run) -> dict[str, int]:
    return {name: int(run.data.tags[f"data.samples.{name}"]) for name in ("train", "validation", "test")}


@pytest.mark.slow
def test_an_image_folder_trains_end_to_end_and_records_its_class_names(sweep):
    folder, runs = sweep
    run = runs["fashion_folder"]
    assert run.info.status == "FINISHED"
    assert json.loads(run.data.tags["data.class_names"]) == ["bag", "sneaker", "trouser"]
    assert run.data.tags["data_source"].startswith("image_folder:")
    assert np.isfinite(run.data.metrics["fit/loss"]) and "test/loss" in run.data.metrics
    # 60 images: int(0.3 * 60) = 18 held out, int(0.2 * 60) = 12 of them validate, 6 test
    assert samples(run) == {"train": 42, "validation": 12, "test": 6}
    record = recorded(folder, run)
    assert record["class_names"] == ["bag", "sneaker", "trouser"] and record["samples"] == samples(run)


def test_an_image_folder_streams_each_split_from_disk_and_splits_every_image_once(files):
    import tensorflow as tf

    data = data_files.image_folder(
        "data", path=str(files / "images"), image_size=[28, 28], color_mode="grayscale", batch_size=16
    )
    assert data.info["input_shape"] == (28, 28, 1) and data.info["num_classes"] == 3
    assert data.info["reusable"] is False
    per_class = np.zeros(3, dtype=int)
    for name, size in (("train", 42), ("validation", 12), ("test", 6)):
        split = data.split(name)
        assert isinstance(split, tf.data.Dataset)
        labels = np.concatenate([y.numpy() for _, y in split])
        assert len(labels) == size
        per_class += np.bincount(labels, minlength=3)
    assert per_class.tolist() == [PER_CLASS] * 3
    # validation and test come back in the same order at every pass; a second read is the same
    first = np.concatenate([x.numpy() for x, _ in data.validation])
    np.testing.assert_array_equal(first, np.concatenate([x.numpy() for x, _ in data.validation]))


def test_a_validation_folder_replaces_the_validation_fraction(files):
    data = data_files.image_folder(
        "data", path=str(files / "images"), validation_path=str(files / "images"), test_fraction=0.5,
        image_size=[8, 8], color_mode="grayscale",
    )  # fmt: skip
    assert data.info["samples"] == {"train": 30, "validation": 60, "test": 30}


# -- image_files: the CLI with workers, and the pixels it reads -----------------------------------


@pytest.mark.slow
def test_an_image_list_trains_keras_with_worker_threads(files):
    import keras

    data = data_files.image_files(
        "data", path=str(files / "images.csv"), image_size=[28, 28], color_mode="grayscale",
        batch_size=8, workers=2, flatten=True,
    )  # fmt: skip
    assert data.train.workers == 2 and data.info["steps"] == {"train": 6, "validation": 2, "test": 1}
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(data.info["num_classes"], "softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(data.train, validation_data=data.validation, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "val_loss" in history.history
    assert model.predict(data.test, verbose=0).shape == (6, 3)


def test_an_image_list_gives_the_pixels_and_labels_of_its_files(files):
    pixels = np.load(files / "pixels.npz")
    data = data_files.image_files(
        "data", path=str(files / "images.csv"), image_size=[28, 28], color_mode="grayscale",
        batch_size=64, workers=2, shuffle=False,
    )  # fmt: skip
    assert data.info["class_names"] == ["bag", "sneaker", "trouser"]
    x, y = data.test[0]
    files_read = [str(f.relative_to(files)) for f in data.test.files]
    assert x.shape == (6, 28, 28, 1) and len(files_read) == 6
    for image, label, name in zip(x, y, files_read, strict=True):
        np.testing.assert_array_equal(image[..., 0], pixels[name.replace("/", "|")])
        assert ["bag", "sneaker", "trouser"][label] == name.split("/")[1]


def test_an_image_that_breaks_at_read_time_names_the_file(files, tmp_path):
    png = (files / "images" / "bag").glob("*.png").__next__().read_bytes()
    (tmp_path / "cut.png").write_bytes(png[:60])  # a PNG header, then nothing
    write_csv(tmp_path / "list.csv", ["file", "label"], [("cut.png", "bag")] * 10)
    data = data_files.image_files(
        "data", path=str(tmp_path / "list.csv"), image_size=[8, 8], verify_images=False
    )
    with pytest.raises(UserError, match=r"data.path: the image .*cut.png cannot be read"):
        data.train[0]


# -- csv and Parquet through the CLI ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["iris_csv", "iris_parquet"])
def test_a_table_trains_without_an_input_size_and_records_training_only_statistics(files, sweep, entry):
    import pandas as pd

    folder, runs = sweep
    run = runs[entry]
    assert run.info.status == "FINISHED" and "model.input_shape" not in run.data.params
    assert json.loads(run.data.tags["data.class_names"]) == ["setosa", "versicolor", "virginica"]
    record = recorded(folder, run)
    table = pd.read_csv(files / "iris.csv")
    train = table[table["split"] == "train"]
    assert record["samples"] == {"train": len(train), "validation": 30, "test": 30}
    for column in IRIS_FEATURES:
        values = train[column].to_numpy()
        stats = record["preprocessing"]["normalization"][column]
        assert stats["mean"] == pytest.approx(values.sum() / len(values), rel=1e-12)
        assert stats["std"] == pytest.approx(np.sqrt(((values - values.mean()) ** 2).mean()), rel=1e-12)
        assert stats["mean"] != pytest.approx(table[column].mean(), rel=1e-6)  # not the whole file's
    assert record["preprocessing"]["categorical"] == {
        "encoding": "one-hot",
        "categories": {"colour": ["blue", "red"]},
    }
    assert record["preprocessing"]["columns"] == [*IRIS_FEATURES, "colour=blue", "colour=red"]


def test_a_table_cut_by_fractions_standardises_with_the_training_rows_only(files):
    import pandas as pd

    data = data_files.csv("data", path=str(files / "iris.parquet"), label="species", features=IRIS_FEATURES,
                          validation_fraction=0.2, test_fraction=0.2, seed=3)  # fmt: skip
    x_train, y_train = data.train
    assert x_train.shape == (90, 4) and data.info["input_shape"] == (4,) and data.info["num_classes"] == 3
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-5)
    # undoing the training statistics gives back the file's own rows, 30 of them, none trained on
    stats = data.info["record"]["preprocessing"]["normalization"]
    raw = pd.read_parquet(files / "iris.parquet")[IRIS_FEATURES].to_numpy()
    x_validation, _ = data.validation
    restored = x_validation * [stats[c]["std"] for c in IRIS_FEATURES] + [
        stats[c]["mean"] for c in IRIS_FEATURES
    ]
    matches = [np.flatnonzero(np.all(np.isclose(raw, row, atol=1e-4), axis=1)) for row in restored]
    assert len(restored) == 30 and all(len(m) for m in matches)
    again = data_files.csv("data", path=str(files / "iris.csv"), label="species", features=IRIS_FEATURES,
                           validation_fraction=0.2, test_fraction=0.2, seed=3)  # fmt: skip
    np.testing.assert_allclose(again.validation[0], x_validation, rtol=1e-6)  # the same seed, the same split


# -- npz and the split rule ---------------------------------------------------------------------


@pytest.mark.slow
def test_an_npz_trains_through_the_cli_with_its_own_validation_arrays(sweep):
    _, runs = sweep
    run = runs["arrays"]
    assert run.info.status == "FINISHED" and run.data.tags["data_source"].startswith("npz:")
    assert samples(run) == {"train": 45, "validation": 6, "test": 5}
    assert json.loads(run.data.tags["data.class_names"]) == ["0", "1", "2", "3"]
    predictions = Path(run.data.tags["orchestrator.output_dir"]) / "predictions" / "predict.npy"
    assert np.load(predictions).shape == (5, 4)  # the 5 test rows, one probability per class


def test_an_npz_gives_its_arrays_and_cuts_the_missing_test_split_from_training(files):
    data = data_files.npz("data", path=str(files / "arrays.npz"))
    x_train, y_train = data.train
    x_test, y_test = data.test
    assert data.info["input_shape"] == (2,) and data.info["num_classes"] == 4
    # 50 training rows, test_fraction null -> 0.1: int(0.1 * 50) = 5 rows; validation is x_val
    assert len(x_train) == 45 and len(x_test) == 5 and len(data.validation[0]) == 6
    ids = sorted([*x_train[:, 0], *x_test[:, 0]])
    assert ids == list(range(50))  # every training row once
    np.testing.assert_array_equal(y_test, x_test[:, 0] % 4)


def test_the_split_rule_is_seeded_disjoint_and_complete():
    first, again, other = (
        cut(101, 0.2, 0.1, 7, "data"),
        cut(101, 0.2, 0.1, 7, "data"),
        cut(101, 0.2, 0.1, 8, "data"),
    )
    assert {name: len(rows) for name, rows in first.items()} == {"train": 71, "validation": 20, "test": 10}
    assert sorted(np.concatenate(list(first.values())).tolist()) == list(range(101))
    assert all(np.array_equal(first[n], again[n]) for n in first)
    assert not np.array_equal(first["validation"], other["validation"])


# -- mistakes, answered before TensorFlow --------------------------------------------------------


def mistakes(files: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    folder, table, npz = "data=image_folder", "data=csv", "data=npz"
    return [
        ([folder, f"data.path={files / 'nowhere'}"], ("data.path", "does not exist", "one subfolder")),
        ([folder, f"data.path={files / 'empty_class'}"], ("data.path", "empty_class/b has no images")),
        ([folder, f"data.path={files / 'broken'}"], ("data.path", "not readable images", "garbage.png")),
        (
            [folder, f"data.path={files / 'images'}", "data.image_size=[0,28]"],
            ("data.image_size", "[height, width]"),
        ),
        (
            [table, f"data.path={files / 'iris.csv'}"],
            ("data.label", "no column 'label'", "species, colour, split"),
        ),
        (
            [table, f"data.path={files / 'iris.parquet'}", "data.label=species", "data.features=[colur]"],
            ("data.features", "no column 'colur'", "Did you mean 'colour'?"),
        ),
        (  # a sweep over data.path: each job's own path is checked, before the first job trains
            ["-m", table, f"data.path={files / 'iris.csv'},{files / 'nowhere.csv'}", "data.label=species"],
            ("data.path", "nowhere.csv does not exist", "(job 1: data.path="),
        ),
        (
            [npz, f"data.path={files / 'no_labels.npz'}"],
            ("data.path", "y_train is missing", "x_test, x_train"),
        ),
        (
            [npz, f"data.path={files / 'mismatched.npz'}"],
            ("data.path", "x_train has 5 samples but y_train has 4"),
        ),
    ]


def test_every_mistake_is_answered_before_tensorflow_with_no_mlflow_run(files, tmp_path):
    cases = mistakes(files)

    def attempt(number: int):
        folder = tmp_path / str(number)
        folder.mkdir()
        return run_cli(*cases[number][0], cwd=folder, env=cli_env())

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, range(len(cases))))
    for number, ((args, says), result) in enumerate(zip(cases, results, strict=True)):
        assert_user_error(result, *says, lines=3)
        assert not (tmp_path / str(number) / "mlflow.db").exists(), args
    imported, _ = heavy_modules_imported(cases[2][0], tmp_path, ("tensorflow", "keras", "mlflow"))
    assert imported == []


def test_an_image_list_naming_a_missing_file_is_refused_with_the_rule_for_relative_names(files):
    with pytest.raises(
        UserError, match=r"data.path: 1 file\(s\) named in missing_file.csv do not exist .*nothing"
    ):
        data_files.checks.check_image_files({"path": str(files / "missing_file.csv")}, "data")
