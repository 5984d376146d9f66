"""The search of ``benchmarks/sweep_tuner.py`` through KerasTuner's ``RandomSearch``.

The guide's MLP on the bundled MNIST split (6,000 / 2,000 / 2,000), batch 64,
the first ``--limit-batches`` batches of each split; searched: the width of both
hidden layers (32, 64, 128) and RMSprop's learning rate (log-uniform 1e-4 to
1e-1); objective ``val_loss``. The result file gets, per trial, its seconds
(``on_trial_begin`` to ``on_trial_end`` of a ``RandomSearch`` subclass) and its
fit's seconds (the whole ``model.fit`` call, timed in the hypermodel's ``fit``),
and the span from the first trial's start to the last one's end.

    python benchmarks/keras_tuner_search.py --result out.json --trials 10 --epochs 2 \
        --limit-batches 20 --folder DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from plain_keras import limit, load_guide_data

BATCH_SIZE = 64


def main(result: Path, trials: int, epochs: int, limit_batches: int, folder: Path, seed: int) -> None:
    import keras
    import keras_tuner
    from keras import layers

    train, validation, _ = load_guide_data(bundled=True)
    x_train, y_train = limit(train, limit_batches, BATCH_SIZE)
    x_val, y_val = limit(validation, limit_batches, BATCH_SIZE)
    records: dict[str, dict[str, float]] = {}

    class GuideMLP(keras_tuner.HyperModel):
        def build(self, hp):
            units = hp.Choice("units", [32, 64, 128])
            rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
            inputs = keras.Input(shape=(784,), name="digits")
            x = layers.Dense(units, activation="relu", name="dense_1")(inputs)
            x = layers.Dense(units, activation="relu", name="dense_2")(x)
            outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
            model = keras.Model(inputs=inputs, outputs=outputs)
            model.compile(
                optimizer=keras.optimizers.RMSprop(learning_rate=rate),
                loss=keras.losses.SparseCategoricalCrossentropy(),
                metrics=[keras.metrics.SparseCategoricalAccuracy()],
            )
            return model

        def fit(self, hp, model, *args, **kwargs):
            started = time.perf_counter()
            history = model.fit(*args, **kwargs)
            records[current["trial"]]["fit"] = time.perf_counter() - started
            return history

    current: dict[str, str] = {}

    class TimedSearch(keras_tuner.RandomSearch):
        def on_trial_begin(self, trial):
            current["trial"] = trial.trial_id
            records[trial.trial_id] = {"start": time.perf_counter()}
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            records[trial.trial_id]["end"] = time.perf_counter()

    tuner = TimedSearch(
        GuideMLP(),
        objective="val_loss",
        max_trials=trials,
        seed=seed,
        directory=str(folder),
        project_name="search",
        overwrite=True,
    )
    tuner.search(
        x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, validation_data=(x_val, y_val), verbose=0
    )
    entries = [
        {
            "trial": trial_id,
            "seconds": r["end"] - r["start"],
            "fit": r["fit"],
            "start": r["start"],
            "end": r["end"],
        }
        for trial_id, r in records.items()
    ]
    span = max(e["end"] for e in entries) - min(e["start"] for e in entries)
    result.write_text(json.dumps({"trials": entries, "span": span}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit-batches", type=int, default=20)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    main(options.result, options.trials, options.epochs, options.limit_batches, options.folder, options.seed)
