"""A corpus of user mistakes, each answered the same way through the real CLI.

Every case asserts: the exit code, no traceback, a short message (10 lines at
most) naming the key (or file, or variable) and what would be right. All of
them run in a folder with an MLflow store, an earlier run's checkpoint and the
resume index, hashed before and after: nothing that existed is touched, and no
MLflow run is added.
Config mistakes are answered before TensorFlow is imported, so each case takes
well under a second.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import cli_env, mlflow_client, run_cli


@dataclass(frozen=True)
class Case:
    """One mistake: the command-line arguments and what the message must contain."""

    args: tuple[str, ...]
    says: tuple[str, ...]
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return " ".join(self.args)[:80] or "(no arguments)"


def case(*args: str, says: str | tuple[str, ...], code: int = 2, **env: str) -> Case:
    return Case(tuple(args), (says,) if isinstance(says, str) else says, code, env)


M = "+experiment=mnist"

HOST_SETTINGS = [
    case(M, "+trainer.epoch=3", says=("trainer.epoch", "Did you mean 'trainer.epochs'?")),
    case(M, "+trainer.batchsize=3", says=("trainer.batchsize", "trainer.batch_size")),
    case(M, "+foo=1", says=("foo: is not a setting", "top-level keys")),
    case(M, "+sed=1", says=("sed", "Did you mean 'seed'?")),
    case(M, "trainer.verbose=loud", says=("trainer.verbose", "auto, 0, 1 or 2")),
    case(M, "trainer.verbose=7", says="trainer.verbose"),
    case(M, "trainer.jit_compile=maybe", says=("trainer.jit_compile", "auto, true or false")),
    case(M, "trainer.epochs=-1", says=("trainer.epochs", "0 or more")),
    case(M, "trainer.batch_size=0", says=("trainer.batch_size", "1 or more")),
    case(M, "trainer.steps_per_execution=0", says="trainer.steps_per_execution"),
    case(M, "trainer.checkpoint_every=-1", says="trainer.checkpoint_every"),
    case(M, "trainer.checkpoint_every_batches=-2", says="trainer.checkpoint_every_batches"),
    case(M, "trainer.limit_batches=0", says="trainer.limit_batches"),
    case(M, "tracking.delivery_timeout=-1", says=("tracking.delivery_timeout", "0 or more")),
    case(M, "+tracking.delivery_timout=5", says=("tracking.delivery_timout", "tracking.delivery_timeout")),
    case(M, "+tracking.experiment=x", says=("tracking.experiment", "tracking.experiment_name")),
    case(M, "objective.direction=up", says=("objective.direction", "minimize or maximize")),
    case(M, "+objective.metrc=x", says=("objective.metrc", "objective.metric")),
    case(M, "deterministic=true", says=("seed", "deterministic=true needs a seed")),
    case(M, "+security.allowed_target=[x]", says=("security.allowed_target", "security.allowed_targets")),
]

OPTIMIZERS = [
    case(M, "optimizer.learning_rate=-1", says=("optimizer.learning_rate", "above 0")),
    case(M, "optimizer.learning_rate=0", says="optimizer.learning_rate"),
    case(M, "optimizer.learning_rate=nan", says="optimizer.learning_rate"),
    case(M, "optimizer.learning_rate=inf", says="optimizer.learning_rate"),
    case(M, "optimizer.learning_rate=fast", says="optimizer.learning_rate"),
    case(M, "+optimizer.learning_rat=0.1", says=("optimizer.learning_rat", "Did you mean 'learning_rate'?")),
    case(M, "optimizer.name=rmsprp", says=("optimizer.name", "Did you mean 'rmsprop'?")),
    case(M, "optimizer=adam", "+optimizer.beta_one=0.9", says=("optimizer.beta_one", "beta_1")),
    case(M, "optimizer=sgd", "+optimizer.momentm=0.9", says=("optimizer.momentm", "momentum")),
    case(
        M,
        "+optimizer.learning_rate={name: exponential_decay, initial_learning_rate: 0.1, decay_step: 10}",
        says=("optimizer.learning_rate.decay_step", "decay_steps"),
    ),
    case(
        M,
        "+optimizer.learning_rate={name: exponential_decy, initial_learning_rate: 0.1}",
        says=("optimizer.learning_rate.name", "exponential_decay"),
    ),
]

PLUGIN_SELECTIONS = [
    case(
        M, "loss.name=sparse_categorical_crossentropi", says=("loss.name", "sparse_categorical_crossentropy")
    ),
    case(M, "+loss.from_logit=true", says=("loss.from_logit", "from_logits")),
    case(
        M,
        "+metrics.top3={name: sparse_top_k_categorical_accuracy, nmae: t}",
        says=("metrics.top3.nmae", "_name_"),
    ),
    case(M, "+loss.reducton=sum", says=("loss.reducton", "reduction")),
    case(
        M,
        "metrics.sparse_categorical_accuracy.name=sparse_categorical_acuracy",
        says="metrics.sparse_categorical_accuracy.name",
    ),
    case(
        M, "+metrics.auc={name: auc, num_treshold: 10}", says=("metrics.auc.num_treshold", "num_thresholds")
    ),
    case(M, "+metrics.top={name: top_k_categorical_acuracy}", says="metrics.top.name"),
    case(M, "+callbacks.es={name: early_stopping, patince: 2}", says=("callbacks.es.patince", "patience")),
    case(M, "+callbacks.es={name: early_stoping}", says=("callbacks.es.name", "early_stopping")),
    case(M, "+callbacks.lr={name: reduce_lr_on_plateau, factr: 0.5}", says=("callbacks.lr.factr", "factor")),
    case(M, "+callbacks.csv={name: csv_logger, file_name: x.csv}", says="callbacks.csv.file_name"),
    case(M, "model.name=mpl", says=("model.name", "Did you mean 'mlp'?")),
    case(M, "model.hidden_units=64", says=("model.hidden_units", "a list of int")),
    case(M, "model.hidden_units=[a,b]", says="model.hidden_units"),
    case(M, "+model.hiden_units=[1]", says=("model.hiden_units", "hidden_units")),
    case(M, "model.dropout=high", says=("model.dropout", "a number")),
    case(M, "data.name=mnsit", says=("data.name", "Did you mean 'mnist'?")),
    case(M, "data.source=internet", says="data.source"),
    case(M, "+data.vaildation_size=3", says=("data.vaildation_size", "validation_size")),
    case(M, "data.validation_size=-5", says="data.validation_size"),
    case(M, "data.validation_size=many", says="data.validation_size"),
    case(M, "data.one_hot=maybe", says=("data.one_hot", "true or false")),
    case(M, "trainer.strategy=mirrord", says=("trainer.strategy", "mirrored")),
    case(M, "+trainer.strategy.name=mirrored", "+trainer.strategy.cpu_device=2", says="trainer.strategy"),
]

STAGES = [
    case(M, "stages.test.split=tset", says=("stages.test.split", "train, validation, test")),
    case(M, "stages.fit.validation=valid", says=("stages.fit.validation", "train, validation, test")),
    case(M, "stages.predict.split=training", says="stages.predict.split"),
    case(M, "+stages.fit.epochs=-1", says="stages.fit.epochs"),
    case(M, "+stages.fit.batch_size=0", says="stages.fit.batch_size"),
    case(M, "+stages.fit.validation_split=1.5", says="stages.fit.validation_split"),
    case(M, "stages.predict.samples=-1", says="stages.predict.samples"),
    case(M, "stages.predict.samples=0", says="stages.predict.samples"),
    case(M, "stages.fit.kind=fitt", says=("stages.fit.kind", "Did you mean 'fit'?")),
    case(M, "+stages.fit.epoch=2", says=("stages.fit.epoch", "epochs")),
    case(M, "+stages.test.batchsize=2", says=("stages.test.batchsize", "batch_size")),
    case(M, "+stages.x.kind=plot_mdel", says=("stages.x.kind", "plot_model")),
    case(M, "+stages.fit.trainable=yes", says="stages.fit.trainable"),
    case(M, "+stages.fit.optimizer={name: rmsprp}", says=("stages.fit.optimizer.name", "rmsprop")),
    case(
        M,
        "+stages.fit.optimizer={name: rmsprop, learning_rate: -1}",
        says="stages.fit.optimizer.learning_rate",
    ),
    case(M, "+stages.fit.class_weight=heavy", says="stages.fit.class_weight"),
]

SECURITY = [
    case(
        M,
        "+callbacks.evil={_target_: os.system, command: touch pwned}",
        says=("callbacks.evil._target_", "allowed"),
    ),
    case(M, "+model._target_=os.system", says="model"),
    case(
        M,
        "+data.source={_target_: subprocess.run}",
        says=("data.source._target_", "security.allowed_targets"),
    ),
]

SWEEPS = [
    case("-m", M, "+trainer.epoch=3", "seed=1,2", says=("trainer.epoch", "trainer.epochs")),
    case("-m", M, "optimizer.learning_rate=-1", "seed=1,2", says="optimizer.learning_rate"),
    case(
        "-m", M, "+callbacks.es={name: early_stopping, patince: 2}", "seed=1,2", says="callbacks.es.patince"
    ),
    case("-m", M, "trainer.verbose=loud", "seed=1,2", says="trainer.verbose"),
    case("-m", M, "model.name=mpl", "seed=1,2", says="model.name"),
    case("-m", M, "stages.test.split=tset", "seed=1,2", says="stages.test.split"),
    # a mistake in one job's swept value: found before the first job trains
    case("-m", M, "trainer.epochs=1,-1", says=("trainer.epochs", "0 or more", "(job 1: trainer.epochs=-1)")),
    case("-m", M, "optimizer=adam,sgdd", says=("optimizer", "'sgd'?", "(job 1: optimizer=sgdd)")),
    case(
        "-m",
        "+experiment=mnist,guide_compile_strings",
        "optimizer=adam",
        says=("optimizer=adam does not take effect", "(job 1: +experiment=guide_compile_strings)"),
    ),  # fmt: skip
    case("-m", M, "seed=1,2", "+hydra.sweeper.params.epochs='1,2'", says=("overrides", "cannot be composed")),
    # values an Optuna sweep may draw: the ends of each range, every choice
    case(
        "-m",
        M,
        "hydra/sweeper=orchestrator_optuna",
        "hydra.sweeper.pruner.name=none",
        "optimizer.learning_rate=interval(-0.1, 0.1)",
        says=("optimizer.learning_rate", "(a trial with optimizer.learning_rate=-0.1)"),
    ),  # fmt: skip
    case(
        "-m",
        M,
        "hydra/sweeper=orchestrator_optuna",
        "hydra.sweeper.pruner.name=none",
        "optimizer=choice(adam,sgdd)",
        says=("optimizer", "'sgd'?", "(a trial with optimizer=sgdd)"),
    ),  # fmt: skip
]

PRECEDENCE = [
    case(
        "+experiment=guide_compile_strings",
        "optimizer=adam",
        says=("optimizer=adam does not take effect", "+experiment=guide_compile_strings"),
    ),
    case("+experiment=guide_compile_strings", "loss=mean_squared_error", says="loss=mean_squared_error"),
    case(
        "+experiment=guide_endpoint", "data=fashion_mnist", says=("data=fashion_mnist", "'endpoint_random'")
    ),
    case("-m", "+experiment=guide_compile_strings", "optimizer=adam", "seed=1,2", says="optimizer=adam"),
]

HYDRA = [
    case(M, "+experiment=nonexistent", says=("experiment: no option 'nonexistent'", "Available:")),
    case("+experiment=mnst", says=("experiment: no option 'mnst'", "Did you mean 'mnist'?")),
    case(M, "optimizer=adm", says=("optimizer: no option 'adm'", "Did you mean 'adam'?")),
    case(M, "data=fashion_mnst", says=("data: no option 'fashion_mnst'", "fashion_mnist")),
    case(M, "callbacks=early_stoping", says=("callbacks: no option", "early_stopping")),
    case(M, "stages=null", says=("stages: is a config group", "stages.<entry>=null")),
    case(M, "trainer.epochs=abc", says=("trainer.epochs", "could not be converted to Integer")),
    case(M, "seed=abc", says=("seed", "could not be converted to Integer")),
    case(M, "trainer.epoch=3", says=("trainer.epoch: is not a setting", "Did you mean 'trainer.epochs'?")),
    case(M, "data.vaildation_size=3", says=("data.vaildation_size", "+data.vaildation_size")),
    case(M, "+trainer.epochs=3", says=("trainer.epochs", "remove + prefix")),
    case(M, "~trainer.epochz", says="trainer.epochz"),
    case(M, "trainer.epochs", says=("trainer.epochs", "key=value")),
    case("plugin", says=("plugin", "Did you mean the subcommand 'plugins'?")),
    case(M, "hydra/launcher=joblb", says=("hydra.launcher: no option 'joblb'", "joblib")),
    case(M, "hydra.run.dir=/proc/orchestrator-test", says=("hydra.run.dir", "cannot be created")),
    case(
        "-m", M, "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=1,2", says="hydra.launcher.n_jobs"
    ),
    case(
        "-m",
        M,
        "hydra/sweeper=orchestrator_optuna",
        "hydra.sweeper.n_trials=-1",
        says="hydra.sweeper.n_trials",
    ),
    case(
        "-m",
        M,
        "hydra/sweeper=orchestrator_optuna",
        "hydra.sweeper.direction=up",
        says="hydra.sweeper.direction",
    ),
    case(
        "-m", M, "hydra/sweeper=orchestrator_optuna", "hydra.sweeper.sampler.name=grid", says="sampler.name"
    ),
    case(
        "-m",
        M,
        "seed=1,2",
        "+hydra.callbacks.orchestrator.fail_fst=true",
        says="hydra.callbacks.orchestrator.fail_fst",
    ),
]

KERAS_IDS = [
    case(M, "optimizer=nadm", says=("optimizer: no option 'nadm'", "Did you mean 'nadam'?", "more from")),
    case(M, "loss=mse_", says=("loss: no option 'mse_'", "Did you mean 'mse'?")),
    case(M, "metrics=[accuracy,acuracy]", says=("metrics: no option 'acuracy'", "Did you mean 'accuracy'?")),
    case(M, "callbacks=[early_stopping,terminate_on_nam]", says=("callbacks: no option", "terminate_on_nan")),
    case(M, "optimizer=RMSprop", says=("optimizer: no option 'RMSprop'", "write 'rmsprop'")),
    case(M, "optimizer=Nadam", says=("optimizer: no option 'Nadam'", "write 'nadam'")),
    case(M, "loss=MeanSquaredError", says=("loss: no option", "write 'mean_squared_error'")),
    case(M, "loss=MSE", says=("loss: no option 'MSE'", "write 'mse'")),
    case(M, "metrics=[accuracy,AUC]", says=("metrics: no option 'AUC'", "write 'auc'")),
    case(M, "optimizer=exponential_decay", says="optimizer: no option 'exponential_decay'"),
    case(M, "optimizer=adamw", "optimizer.weight_decay=0.1", says=("optimizer.weight_decay", "+optimizer.")),
    case(
        M,
        "optimizer=nadam",
        says=("optimizer: no option 'nadam'", "blocks keras_builtins"),
        ORCHESTRATOR_DISABLE_PLUGINS="keras_builtins",
    ),
]

COMMANDS = [
    case("sync", "no/such/folder", says="no/such/folder", code=2),
]

ENVIRONMENT = [
    case(M, says="ORCHESTRATOR_DISABLE_PLUGINS", ORCHESTRATOR_DISABLE_PLUGINS="mlfow"),
    case(M, says="ORCHESTRATOR_DISABLE_PLUGINS", ORCHESTRATOR_DISABLE_PLUGINS="stages"),
]

CASES = [
    *HOST_SETTINGS,
    *OPTIMIZERS,
    *PLUGIN_SELECTIONS,
    *STAGES,
    *SECURITY,
    *SWEEPS,
    *PRECEDENCE,
    *HYDRA,
    *KERAS_IDS,
    *COMMANDS,
    *ENVIRONMENT,
]


def test_a_yaml_mistake_in_the_users_own_config_folder_names_the_file_and_line(tmp_path):
    preset = tmp_path / "conf" / "experiment" / "mine.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text("# @package _global_\ntrainer: {epochs: [1, 2\n")
    result = run_cli(f"--config-dir={tmp_path / 'conf'}", "+experiment=mine", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{preset}, line 3: is not valid YAML" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_the_corpus_covers_at_least_a_hundred_mistakes_over_every_group():
    assert len(CASES) >= 100
    keys = {case.says[0].split(".")[0].split(":")[0] for case in CASES}
    for group in (
        "trainer",
        "tracking",
        "objective",
        "security",
        "optimizer",
        "loss",
        "metrics",
        "callbacks",
    ):
        assert group in keys or any(group in s for c in CASES for s in c.says), group
    for group in ("model", "data", "stages", "seed"):
        assert any(c.says[0].startswith(group) for c in CASES), group


def _snapshot(folder: Path) -> dict[str, str]:
    """A hash of every file under ``folder`` (the Hydra output folders of the cases left out)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).parts[0] not in ("outputs", "multirun")
    }


@pytest.fixture(scope="module")
def earlier_work(tmp_path_factory) -> Path:
    """A folder holding what a user already has: an MLflow store with a run, a checkpoint, the index."""
    folder = tmp_path_factory.mktemp("earlier-work")
    client = mlflow_client(folder)
    experiment = client.create_experiment("mnist")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "fit/loss", 0.5, step=0)
    client.set_terminated(run.info.run_id)
    checkpoint = folder / "earlier" / "checkpoints" / "epoch-001.keras"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"an earlier run's checkpoint")
    index = folder / ".orchestrator" / "runs" / "0123456789abcdef0123.json"
    index.parent.mkdir(parents=True)
    index.write_text('{"status": "FINISHED", "output_dir": "earlier"}')
    return folder


@pytest.fixture(scope="module")
def answers(earlier_work: Path) -> dict:
    """Every case through the CLI in the folder of earlier work, two at a time (each is one short
    process, and the machine has two cores), with the folder hashed before and after them all."""
    before = _snapshot(earlier_work)

    def answer(mistake: Case):
        return run_cli(*mistake.args, cwd=earlier_work, env=cli_env(**mistake.env), timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(answer, CASES))
    return {"before": before, "after": _snapshot(earlier_work), "results": results}


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_a_mistake_gets_one_short_message_naming_the_key(index: int, answers: dict):
    mistake, result = CASES[index], answers["results"][index]
    message = result.stderr.strip()
    assert result.returncode == mistake.code, message[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert len(message.splitlines()) <= 10, message
    for words in mistake.says:
        assert words in message, f"{words!r} not in:\n{message}"


def test_no_mistake_touched_what_existed_before_or_added_a_run(answers: dict, earlier_work: Path):
    before, after = answers["before"], answers["after"]
    assert {path: after.get(path) for path in before} == before, "a file that existed before was changed"
    client = mlflow_client(earlier_work)
    runs = client.search_runs([exp.experiment_id for exp in client.search_experiments()])
    assert len(runs) == 1, [run.info.run_name for run in runs]
