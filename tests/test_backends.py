"""Keras backends from the config: ``backend=jax`` and ``backend=torch`` beside TensorFlow.

The config's mistakes are answered before TensorFlow loads. On JAX and on
PyTorch (each test runs on both; PyTorch's where it is installed), a run of the
guide's example (Debian's Fashion-MNIST, seeded, deterministic) never imports
TensorFlow, is recorded with its backend, and gives, epoch for epoch, exactly the
numbers of the same script in plain Keras on that backend. A run killed with
SIGKILL and started again ends with the weights and metrics of a run never
interrupted. The MLflow model is a Keras model on the run's backend whose pyfunc
predicts what the run predicted, the plots are drawn, ``trainer=fast`` gives the
default trainer's losses, ``tf.data`` and ``PyDataset`` sources train and
TensorBoard writes its logs, and a seed reaches TensorFlow when a source imports
it after seeding. ``data_parallel`` trains on two host CPU devices on JAX, and a
sweep over backends on submitit's processes trains each job on its own backend.
Keras loads without pandas and knows DataFrames once a source imports it, and a
JAX run compiles the programs plain Keras compiles and one predict program for
each of the predict stage and the review.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    BACKENDS,
    FIXTURE_SITE,
    NEEDS_TORCH,
    QUIET,
    REPO,
    TINY,
    TORCH,
    assert_image,
    assert_user_error,
    cli_env,
    fixture_env,
    heavy_modules_imported,
    interrupt,
    metric_history,
    mlflow_client,
    only_run,
    parent_and_children,
    run_cli,
)
from tests.test_parity import EPOCH_METRICS, FASHION_MNIST, IDX_FILES, PLAIN_SCRIPT, TEST_METRICS

REPORTER = REPO / "tests" / "fixtures" / "modules_report"
WITHOUT_TORCH = REPO / "tests" / "fixtures" / "without-torch"
HEAVY = ("tensorflow", "keras", "jax", "torch", "mlflow")
PARITY = ["+experiment=mnist", "data=fashion_mnist", "seed=7", "deterministic=true"]
#: The backends besides TensorFlow: each test of them runs on both (PyTorch's where it is installed).
OTHERS = BACKENDS[1:]


# -- The config, checked before anything heavy ----------------------------------------


def test_a_backend_keras_does_not_have_is_refused_with_the_choices(workdir):
    assert_user_error(run_cli("backend=theano", cwd=workdir), "backend", "tensorflow, jax, torch", "'theano'")


def test_torch_when_it_is_not_installed_says_how_to_install_it(workdir):
    path = os.pathsep.join(filter(None, [str(WITHOUT_TORCH), os.environ.get("PYTHONPATH")]))
    result = run_cli("backend=torch", cwd=workdir, env=cli_env(PYTHONPATH=path))
    assert_user_error(result, "backend", "pip install torch", "[torch]")


@pytest.mark.parametrize("backend", OTHERS)
def test_a_tf_distribute_strategy_off_tensorflow_is_refused_before_any_framework_loads(workdir, backend):
    args = [f"backend={backend}", "trainer.strategy=mirrored"]
    result = run_cli(*args, cwd=workdir)
    message = assert_user_error(result, "trainer.strategy", "tf.distribute", "backend=tensorflow")
    # data_parallel (keras.distribution) is suggested only where it runs
    assert ("data_parallel" in message) == (backend == "jax")
    imported, _ = heavy_modules_imported(args, workdir, HEAVY)
    assert imported == []


@pytest.mark.parametrize("backend", OTHERS)
def test_mid_epoch_checkpoints_off_tensorflow_are_refused_before_anything_trains(workdir, backend):
    result = run_cli(f"backend={backend}", "trainer.checkpoint_every_batches=20", cwd=workdir)
    assert_user_error(result, "trainer.checkpoint_every_batches", "backend=tensorflow", "=0")


def test_data_parallel_on_tensorflow_is_refused_with_the_tf_distribute_strategy(workdir):
    result = run_cli("trainer.strategy=data_parallel", cwd=workdir)
    assert_user_error(result, "trainer.strategy", "keras.distribution", "backend=jax", "mirrored")


@NEEDS_TORCH
def test_data_parallel_on_torch_is_refused_with_what_works_there(workdir):
    args = ["backend=torch", "trainer.strategy=data_parallel"]
    message = assert_user_error(run_cli(*args, cwd=workdir), "trainer.strategy", "backend=jax", "null")
    assert "mirrored" not in message  # a tf.distribute strategy is refused on PyTorch too
    imported, _ = heavy_modules_imported(args, workdir, HEAVY)
    assert imported == []


@pytest.mark.parametrize("launcher", [None, "joblib"])
def test_a_sweep_over_backends_in_reused_processes_is_refused_before_any_run(workdir, launcher):
    args = ["-m", "+experiment=mnist", "backend=tensorflow,jax", *TINY]
    if launcher:
        args.append(f"hydra/launcher={launcher}")
    message = assert_user_error(run_cli(*args, cwd=workdir), "backend", "jax and tensorflow")
    assert "hydra/launcher=slurm_local" in message
    assert not (workdir / "multirun").exists() and not (workdir / "mlflow.db").exists()


def test_a_sweep_over_backends_on_ray_is_refused_before_tensorflow(workdir):
    args = ["-m", "+experiment=mnist", "backend=tensorflow,jax", "hydra/launcher=ray_local", *TINY]
    message = assert_user_error(run_cli(*args, cwd=workdir), "backend", "jax and tensorflow", "Ray")
    assert "hydra/launcher=slurm_local" in message
    imported, _ = heavy_modules_imported(args, workdir, (*HEAVY, "ray"))
    assert imported == []


OPTUNA = ["hydra/sweeper=orchestrator_optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner.name=none"]


@pytest.mark.parametrize(
    "search",
    [
        ["backend=choice(tensorflow,jax)"],
        ["+sweep=mnist_optuna", '+hydra.sweeper.params.backend="choice(tensorflow,jax)"'],
    ],
    ids=["command line", "sweeper params"],
)
def test_an_optuna_search_over_backends_in_one_process_is_refused_before_any_trial(workdir, search):
    # Optuna picks each trial's backend as it goes: the search space alone must be enough to refuse
    args = ["-m", "+experiment=mnist", *OPTUNA, *search, *TINY]
    message = assert_user_error(run_cli(*args, cwd=workdir), "backend", "trains on jax and tensorflow,")
    assert "hydra/launcher=slurm_local" in message
    assert not (workdir / "multirun").exists() and not (workdir / "mlflow.db").exists()
    result = run_cli(*args, "dry_run=true", cwd=workdir)
    assert result.returncode != 0
    assert "the sweep's config  FAILED  backend: this sweep trains on jax and tensorflow," in result.stdout


@NEEDS_TORCH
def test_a_refused_sweep_over_backends_names_the_ones_it_sweeps(workdir):
    result = run_cli("-m", "+experiment=mnist", "backend=jax,torch", *TINY, cwd=workdir)
    assert_user_error(result, "backend", "this sweep trains on jax and torch, but")


def test_the_composed_config_shows_the_backend(workdir):
    result = run_cli("--cfg", "job", "backend=jax", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "backend: jax" in result.stdout.splitlines()
    default = run_cli("--cfg", "job", cwd=workdir)
    assert "backend: tensorflow" in default.stdout.splitlines()


def test_keras_loads_without_jax_on_tensorflow_and_a_plugin_can_import_it_afterwards():
    script = (
        "import sys\n"
        "from orchestrator.quiet_import import import_keras\n"
        "keras = import_keras()\n"
        "print(keras.backend.backend(), 'jax' in sys.modules)\n"
        "import jax\n"
        "print(jax.numpy.add(1, 2))\n"
    )
    env = cli_env(KERAS_BACKEND="tensorflow")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["tensorflow", "False", "3"]


# -- The guide's example on JAX and PyTorch, against plain Keras on the same backend -------


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen, what: str) -> tuple[str, str]:
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{stdout}\n{stderr[-3000:]}"
    return stdout, stderr


@pytest.fixture(scope="module", params=OTHERS)
def on_backend(request, tmp_path_factory):
    """The plain script and the orchestrator, both on the backend, each run once (at the same time).

    The orchestrator's environment says ``KERAS_BACKEND=tensorflow``: the config must win,
    and say so. Both log the programs JAX compiles (``JAX_LOG_COMPILES``). Returns ``(plain JSON,
    MLflow run, client, output, imported frameworks, folder, backend, plain script's log)``.
    """
    if not all((FASHION_MNIST / name).exists() for name in IDX_FILES):
        pytest.skip(f"Debian's Fashion-MNIST is not installed in {FASHION_MNIST}")
    backend = request.param
    # The two processes train side by side: one thread each, where PyTorch would start one per core.
    threads = {"OMP_NUM_THREADS": "1"} if backend == "torch" else {}
    plain_dir = tmp_path_factory.mktemp(f"plain_{backend}")
    cli_dir = tmp_path_factory.mktemp(f"orchestrator_{backend}")
    report = cli_dir / "modules.json"
    cli = cli_env(
        **threads,
        KERAS_BACKEND="tensorflow",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPORTER), os.environ.get("PYTHONPATH")])),
        ORCHESTRATOR_MODULES_REPORT=str(report),
        JAX_LOG_COMPILES="1",
    )
    plain_env = cli_env(**threads, KERAS_BACKEND=backend, JAX_LOG_COMPILES="1")
    plain = _start([str(PLAIN_SCRIPT), str(FASHION_MNIST)], plain_dir, plain_env)
    orchestrator = _start(["-m", "orchestrator", *PARITY, f"backend={backend}"], cli_dir, cli)
    plain_out, plain_log = _finish(plain, f"the plain Keras script on {backend}")
    stdout, stderr = _finish(orchestrator, f"the orchestrator on {backend}")
    expected = json.loads(plain_out.strip().splitlines()[-1])
    run = only_run(cli_dir, "mnist")
    imported = json.loads(report.read_text())
    return expected, run, mlflow_client(cli_dir), stdout + stderr, imported, cli_dir, backend, plain_log


def _programs(log: str) -> Counter:
    """The programs a process compiled, from its ``JAX_LOG_COMPILES`` lines: ``(jit(name), shapes)``."""
    return Counter(re.findall(r"Compiling (jit\(\w+\)) with global shapes and types (.*?)\. Argument", log))


@pytest.mark.slow
def test_a_run_off_tensorflow_never_imports_tensorflow(on_backend):
    imported, backend = on_backend[4], on_backend[6]
    assert imported[backend] and imported["keras"]
    others = {"jax", "torch"} - {backend}
    assert not imported["tensorflow"] and not any(imported[name] for name in others)


@pytest.mark.slow
@pytest.mark.parametrize("on_backend", ["jax"], indirect=True)
def test_a_jax_run_compiles_the_programs_of_plain_keras_and_a_predict_program_for_each_use(on_backend):
    ours, plain = _programs(on_backend[3]), _programs(on_backend[7])
    assert plain - ours == Counter()
    extra = ours - plain
    assert [name for name, _ in extra.elements()] == ["jit(predict_step)"] * 2
    # The predict stage's 3 samples, and the review's 10,000 test samples in chunks of one size.
    assert sorted(int(re.findall(r"float32\[(\d+),784\]", shapes)[-1]) for _, shapes in extra) == [3, 2000]


@pytest.mark.slow
def test_a_run_records_its_backend_and_its_version(on_backend):
    run, backend = on_backend[1], on_backend[6]
    assert run.data.params["backend"] == backend
    assert run.data.tags["orchestrator.backend_version"] == importlib.import_module(backend).__version__


@pytest.mark.slow
def test_keras_backend_in_the_environment_is_reported_and_the_config_wins(on_backend):
    output, backend = on_backend[3], on_backend[6]
    assert f"KERAS_BACKEND=tensorflow in the environment, but the config says backend={backend}" in output


@pytest.mark.slow
@pytest.mark.parametrize("metric", sorted(EPOCH_METRICS))
def test_every_epoch_metric_equals_plain_keras_on_the_same_backend(on_backend, metric):
    expected, run, client = on_backend[:3]
    history = metric_history(client, run.info.run_id, metric)
    assert [step for step, _ in history] == [0, 1]
    assert [value for _, value in history] == expected["history"][EPOCH_METRICS[metric]]


@pytest.mark.slow
@pytest.mark.parametrize("metric", sorted(TEST_METRICS))
def test_every_test_metric_equals_plain_keras_on_the_same_backend(on_backend, metric):
    expected, run = on_backend[:2]
    assert run.data.metrics[metric] == expected["test"][TEST_METRICS[metric]]


@pytest.mark.slow
def test_the_saved_model_loads_and_predicts_what_the_run_predicted(on_backend):
    import keras

    folder = on_backend[5]
    (saved,) = folder.glob("outputs/*/*/model.keras")
    (predictions,) = folder.glob("outputs/*/*/predictions/predict.npy")

    predicted = np.load(predictions)
    model = keras.saving.load_model(saved)
    again = model.predict(_test_images()[: len(predicted)], verbose=0)
    np.testing.assert_allclose(again, predicted, rtol=1e-5, atol=1e-6)


def _mlflow_model_uri(on_backend) -> str:
    """The ``models:/m-...`` URI of the run's MLflow model, as the run's last lines name it."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{on_backend[5] / 'mlflow.db'}")
    return re.search(r"model (models:/m-[0-9a-f]+)", on_backend[3]).group(1)


@pytest.mark.slow
def test_the_mlflow_model_is_a_keras_model_on_the_run_backend_with_a_signature(on_backend):
    import mlflow

    info = mlflow.models.get_model_info(_mlflow_model_uri(on_backend))
    assert info.flavors["keras"]["keras_backend"] == on_backend[6]
    assert info.flavors["python_function"]["loader_module"] == "mlflow.keras"
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 784]
    assert info.saved_input_example_info is not None


@pytest.mark.slow
def test_the_mlflow_model_predicts_what_the_run_predicted(on_backend):
    import mlflow

    (predictions,) = on_backend[5].glob("outputs/*/*/predictions/predict.npy")
    predicted = np.load(predictions)
    pyfunc = mlflow.pyfunc.load_model(_mlflow_model_uri(on_backend))
    again = np.asarray(pyfunc.predict(_test_images()[: len(predicted)]))
    np.testing.assert_allclose(again, predicted, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["plots/learning_curves.png", "plots/confusion_matrix.png"])
def test_each_plot_is_an_image_that_is_not_blank(on_backend, tmp_path, name):
    run, client = on_backend[1], on_backend[2]
    assert_image(Path(client.download_artifacts(run.info.run_id, name, str(tmp_path))))


def _test_images() -> np.ndarray:
    """Fashion-MNIST's test images as the ``fashion_mnist`` source gives them to ``predict``."""
    from tests.plain_keras_guide import read_idx

    images = read_idx(FASHION_MNIST / "t10k-images-idx3-ubyte.gz")
    return images.reshape(len(images), 784).astype("float32") / 255


#: Counts the programs JAX compiles while the review predicts 4,097 samples (2,048 at most a call).
REVIEW_PROGRAMS = """
import jax, keras, numpy as np
from orchestrator.tracking.review_plots import model_outputs
keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
x = np.random.default_rng(0).random((4097, 8), dtype=np.float32)
compiled = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kwargs: compiled.append(event)
    if event == "/jax/core/compile/backend_compile_duration" else None
)
outputs = model_outputs(model, x)
programs = len(compiled)
np.testing.assert_allclose(outputs, model.predict(x, batch_size=4097, verbose=0), rtol=1e-6)
import pandas as pd
np.testing.assert_array_equal(model_outputs(model, pd.DataFrame(x)), outputs)  # columns as arrays
print(programs)
"""


def test_the_review_predicts_the_test_split_with_one_program_on_jax_dataframes_too():
    done = subprocess.run(
        [sys.executable, "-c", REVIEW_PROGRAMS],
        cwd=REPO,
        env=cli_env(KERAS_BACKEND="jax", JAX_COMPILATION_CACHE_DIR=""),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["1"]


# -- trainer=fast, tf.data, PyDataset, TensorBoard and seeds on JAX and PyTorch ----------


@pytest.fixture(scope="module")
def fast_sweep(tmp_path_factory) -> Path:
    """A two-job sweep on JAX, one process: the default trainer, then ``trainer=fast``; JAX's
    compilation cache in the folder's ``cache/`` (``XDG_CACHE_HOME``)."""
    folder = tmp_path_factory.mktemp("fast_sweep")
    args = ["-m", "+experiment=mnist", "backend=jax", "seed=7", "trainer=default,fast", "trainer.epochs=2"]
    args += ["trainer.limit_batches=5", *QUIET, "stages.predict=null", "tracking.log_model=false"]
    result = run_cli(*args, cwd=folder, env=cli_env(XDG_CACHE_HOME=str(folder / "cache")))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.slow
def test_trainer_fast_on_jax_gives_the_losses_of_the_default_trainer(fast_sweep):
    client = mlflow_client(fast_sweep)
    _, children = parent_and_children(client, "mnist")
    runs = {run.data.params["trainer.steps_per_execution"]: run for run in children}
    assert set(runs) == {"1", "64"}
    for key in ("fit/loss", "fit/val_loss", "test/loss"):
        fast = metric_history(client, runs["64"].info.run_id, key)
        assert len(fast) == (2 if key.startswith("fit/") else 1), key
        assert fast == metric_history(client, runs["1"].info.run_id, key), key


@pytest.mark.slow
def test_a_jax_run_keeps_its_compiled_programs_in_the_user_cache_folder(fast_sweep):
    programs = list((fast_sweep / "cache" / "keras-orchestrator" / "jax").iterdir())
    assert len(programs) >= 4  # the initialisers, a training, an evaluation step at least


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHERS)
def test_eager_and_uncompiled_training_give_the_losses_of_compiled_training(workdir, backend):
    # One sweep, one process: compiled (the default), run_eagerly, and on JAX jit_compile=false
    swept = [
        "trainer.run_eagerly=false,true",
        *(["trainer.jit_compile=auto,false"] if backend == "jax" else []),
    ]
    args = ["-m", "+experiment=mnist", f"backend={backend}", "seed=7", "deterministic=true", *swept]
    args += ["trainer.limit_batches=5", *QUIET, "stages.predict=null", "tracking.log_model=false"]
    result = run_cli(*args, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow_client(workdir)
    _, children = parent_and_children(client, "mnist")
    runs = {(r.data.params["trainer.run_eagerly"], r.data.params["trainer.jit_compile"]): r for r in children}
    assert len(runs) == (4 if backend == "jax" else 2)
    compiled = runs.pop(("False", "auto"))
    for settings, run in runs.items():
        for key in ("fit/loss", "fit/val_loss", "test/loss"):
            want = [value for _, value in metric_history(client, compiled.info.run_id, key)]
            got = [value for _, value in metric_history(client, run.info.run_id, key)]
            assert len(want) == (2 if key.startswith("fit/") else 1), key
            np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=f"{key} with {settings}")


@NEEDS_TORCH
def test_trainer_fast_on_torch_is_refused_before_anything_trains(workdir):
    args = ["backend=torch", "trainer=fast"]
    message = assert_user_error(run_cli(*args, cwd=workdir), "trainer.steps_per_execution", "=1", "64")
    assert "trainer=default" in message
    imported, _ = heavy_modules_imported(args, workdir, HEAVY)
    assert imported == []


@pytest.fixture(scope="module", params=OTHERS)
def sources(request, tmp_path_factory) -> Path:
    """A sweep on the backend, one process: the ``tf_data``, ``py_dataset``, ``generator`` and
    ``pandas`` sources, TensorBoard on."""
    folder = tmp_path_factory.mktemp(f"sources_{request.param}")
    args = ["-m", "+experiment=mnist", f"backend={request.param}", "data=tf_data,py_dataset,generator,pandas"]
    args.append("callbacks=tensorboard")
    args += [*TINY, "+data.source.source=bundled", "trainer.verbose=0", "stages.predict=null", "tracking=off"]
    result = run_cli(*args, cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


@pytest.mark.slow
def test_tf_data_py_dataset_generator_and_pandas_sources_train_off_tensorflow(sources):
    (journal,) = sources.glob("multirun/*/*/orchestrator-jobs.jsonl")
    jobs = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    statuses = {next(o for o in job["overrides"] if o.startswith("data=")): job["status"] for job in jobs}
    kinds = ("tf_data", "py_dataset", "generator", "pandas")
    assert statuses == {f"data={kind}": "FINISHED" for kind in kinds}


@pytest.mark.slow
def test_a_dataframe_run_on_jax_draws_its_confusion_matrix(workdir, tmp_path):
    """The review predicts a pandas test split on JAX (whose ``predict_on_batch`` takes no DataFrame)
    and reads its labels from a Series."""
    args = ["+experiment=guide_pandas", "backend=jax", *TINY, "+data.source.source=bundled"]
    args += ["trainer.verbose=0", "stages.predict=null", "tracking.log_model=false"]
    result = run_cli(*args, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "confusion_matrix skipped" not in result.stdout + result.stderr
    run = only_run(workdir, "guide_pandas")
    plot = "plots/confusion_matrix.png"
    assert_image(Path(mlflow_client(workdir).download_artifacts(run.info.run_id, plot, str(tmp_path))))


@pytest.mark.slow
@pytest.mark.parametrize("job", ["0", "1", "2", "3"])
def test_tensorboard_writes_its_epoch_losses_off_tensorflow(sources, job):
    (logs,) = sources.glob(f"multirun/*/*/{job}/tensorboard")
    for split in ("train", "validation"):
        (events,) = (logs / split).glob("events.out.tfevents.*")
        assert b"epoch_loss" in events.read_bytes(), split


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHERS)
def test_a_seed_off_tensorflow_reaches_tensorflow_when_a_tf_data_source_imports_it_later(backend):
    script = (
        "import sys\n"
        "from orchestrator.run import seed_everything\n"
        "seed_everything(7, deterministic=False)\n"
        "assert 'tensorflow' not in sys.modules\n"
        "import tensorflow as tf\n"
        "def order():\n"
        "    return [int(i) for i in tf.data.Dataset.range(50).shuffle(50)]\n"
        "first = order()\n"
        "tf.random.set_seed(7)\n"
        "print('SAME' if first == order() else 'OTHER')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=cli_env(KERAS_BACKEND=backend),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["SAME"]


#: Keras loads without pandas; a source that imports pandas afterwards trains on DataFrames as on arrays.
PANDAS_LATER = """
import sys
import numpy as np
from orchestrator.quiet_import import import_keras
keras = import_keras()
print("pandas" in sys.modules)
import pandas as pd
from keras.src.trainers.data_adapters import array_slicing
print(array_slicing.pandas is pd and pd.DataFrame in array_slicing.ARRAY_TYPES)
x = np.random.default_rng(0).random((64, 3), dtype=np.float32)
def losses(features, targets):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    fitted = model.fit(features, targets, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    return fitted.history
print(losses(pd.DataFrame(x, columns=list("abc")), pd.Series(x.sum(axis=1))) == losses(x, x.sum(axis=1)))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_keras_loads_without_pandas_and_knows_dataframes_once_a_source_imports_it(backend):
    done = subprocess.run(
        [sys.executable, "-c", PANDAS_LATER],
        cwd=REPO,
        env=cli_env(KERAS_BACKEND=backend),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True", "True"]


# -- Kill and resume on JAX and PyTorch --------------------------------------------------

#: Two whole epochs of the bundled MNIST (94 batches each) with dropout (a seed generator to restore).
RESUMED = [
    "+experiment=mnist",
    "seed=7",
    "deterministic=true",
    "trainer.epochs=2",
    "stages.predict=null",
    "model.dropout=0.2",
    "tracking.log_model=false",
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHERS)
def test_a_run_killed_by_sigkill_resumes_to_the_result_of_a_run_never_killed(tmp_path, backend):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    done = reference / "done"
    done.write_text("1")
    # The fixture plugin imports Keras when it loads, before the config is read: the environment
    # names the backend as well.
    path = os.pathsep.join(filter(None, [str(FIXTURE_SITE), os.environ.get("PYTHONPATH")]))
    threads = {"OMP_NUM_THREADS": "1"} if backend == "torch" else {}  # two runs side by side
    env = cli_env(**threads, PYTHONPATH=path, KERAS_BACKEND=backend)
    resumed = [*RESUMED, f"backend={backend}"]
    through = _start(["-m", "orchestrator", *resumed, interrupt("kill", 1, 30, "KILL", done)], reference, env)
    args = [*resumed, interrupt("kill", 1, 30, "KILL", killed / "kill")]
    first = run_cli(*args, cwd=killed, env=env)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    second = run_cli(*args, cwd=killed, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming run" in second.stdout and "after epoch 1" in second.stdout
    _finish(through, "the run never interrupted")

    run, expected = only_run(killed, "mnist"), only_run(reference, "mnist")
    assert run.data.tags["orchestrator.resumed"] == "1"
    client, reference_client = mlflow_client(killed), mlflow_client(reference)
    for key in ("fit/loss", "fit/val_loss", "test/loss"):
        assert metric_history(client, run.info.run_id, key) == metric_history(
            reference_client, expected.info.run_id, key
        ), key
    import keras

    (got,) = killed.glob("outputs/*/*/model.keras")
    (want,) = reference.glob("outputs/*/*/model.keras")
    for mine, theirs in zip(
        keras.saving.load_model(got).get_weights(), keras.saving.load_model(want).get_weights(), strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow
def test_a_killed_run_resumes_on_its_own_backend_only(workdir):
    # The same command, its preset edited to another backend: a new run, not the other backend's resumed
    (workdir / "pyproject.toml").write_text('[tool.orchestrator]\nconfig_dir = "conf"\n')
    preset = workdir / "conf" / "experiment" / "mine.yaml"
    preset.parent.mkdir(parents=True)

    def run_on(backend: str) -> subprocess.CompletedProcess:
        preset.write_text(f"# @package _global_\ndefaults:\n  - mnist\nbackend: {backend}\n")
        env = {**fixture_env(), "KERAS_BACKEND": backend}  # the fixture plugin imports Keras as it loads
        return run_cli(*args, cwd=workdir, env=env)

    args = ["+experiment=mine", "trainer.limit_batches=5", "stages.predict=null"]
    args.append(interrupt("kill", 1, 2, "KILL", workdir / "kill"))
    assert run_on("tensorflow").returncode == -signal.SIGKILL
    other = run_on("jax")
    assert other.returncode == 0, other.stderr[-3000:]
    assert "Resuming" not in other.stdout
    client = mlflow_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    by_backend = {r.data.params["backend"]: r for r in runs}
    assert {b: r.info.status for b, r in by_backend.items()} == {"tensorflow": "RUNNING", "jax": "FINISHED"}
    again = run_on("tensorflow")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resuming run {by_backend['tensorflow'].info.run_id} stage 'fit' after epoch 1" in again.stdout
    assert client.get_run(by_backend["tensorflow"].info.run_id).info.status == "FINISHED"


# -- Data parallel on JAX ---------------------------------------------------------------


@pytest.mark.slow
def test_data_parallel_on_jax_trains_on_two_host_devices(workdir):
    env = cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    args = ["+experiment=mnist", "backend=jax", "trainer.strategy=data_parallel", *TINY]
    # A batch splits evenly over the devices: predict's samples too.
    result = run_cli(*args, "stages.predict.samples=4", "tracking.log_model=false", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Global batch 128: 64 per replica x 2 replicas" in result.stdout
    run = only_run(workdir, "mnist")
    assert run.data.tags["distribute.strategy"] == "data_parallel"
    assert run.data.tags["distribute.replicas"] == "2"
    assert [step for step, _ in metric_history(mlflow_client(workdir), run.info.run_id, "fit/loss")] == [0]


# -- A sweep over backends, one process per job -------------------------------------------


@pytest.mark.slow
def test_a_sweep_over_backends_on_submitit_processes_trains_each_job_on_its_backend(workdir):
    backends = ["tensorflow", "jax", *(["torch"] if TORCH else [])]
    args = ["-m", "+experiment=mnist", f"backend={','.join(backends)}", "hydra/launcher=slurm_local", *TINY]
    result = run_cli(*args, "stages.predict=null", "tracking.log_model=false", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    _, children = parent_and_children(mlflow_client(workdir), "mnist")
    versions = {run.data.params["backend"]: run.data.tags["orchestrator.backend_version"] for run in children}
    assert sorted(versions) == sorted(backends)
    assert all(run.info.status == "FINISHED" for run in children)
    assert versions["tensorflow"] == metadata.version("tensorflow")
    for backend in backends[1:]:
        assert versions[backend] == importlib.import_module(backend).__version__, backend
