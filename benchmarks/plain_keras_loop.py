"""The in-process sweep written by hand: tiny fits in a loop, Keras's state cleared between them.

The reference for the orchestrator's in-process sweep (``seed=range(N)`` with
``trainer.limit_batches``, ``trainer.epochs=1``, ``data.source=bundled``): each
job clears the previous job's Keras state, seeds, loads the shipped MNIST split,
builds and compiles the guide's MLP, fits one epoch, evaluates, predicts 3
samples and saves the model, as a user's loop would. No tracking.

    python benchmarks/plain_keras_loop.py --result out.json --jobs 20 --limit-batches 20 --folder DIR

The result file gets one entry per job, shaped like the sweep journal's:
``{"number", "seconds", "stage_seconds": {"fit", "test", "predict"}, "max_rss_mb"}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from plain_keras import build_compiled_model, limit, load_guide_data


def main(result: Path, jobs: int, limit_batches: int, folder: Path) -> None:
    import keras

    entries = []
    for number in range(jobs):
        started = time.perf_counter()
        if number:
            keras.backend.clear_session()
        keras.utils.set_random_seed(number)
        train, validation, test = load_guide_data(bundled=True)
        x_train, y_train = limit(train, limit_batches, 64)
        x_val, y_val = limit(validation, limit_batches, 64)
        x_test, y_test = limit(test, limit_batches, 128)
        model = build_compiled_model()
        stages = {}
        mark = time.perf_counter()
        model.fit(x_train, y_train, batch_size=64, epochs=1, validation_data=(x_val, y_val))
        stages["fit"] = time.perf_counter() - mark
        mark = time.perf_counter()
        model.evaluate(x_test, y_test, batch_size=128)
        stages["test"] = time.perf_counter() - mark
        mark = time.perf_counter()
        model.predict(x_test[:3])
        stages["predict"] = time.perf_counter() - mark
        model.save(folder / f"model-{number}.keras")
        entries.append(
            {
                "number": number,
                "seconds": time.perf_counter() - started,
                "stage_seconds": stages,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    result.write_text(json.dumps(entries))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--limit-batches", type=int, default=20, help="batches per split")
    parser.add_argument("--folder", type=Path, required=True, help="where the models are saved")
    args = parser.parse_args()
    main(args.result, args.jobs, args.limit_batches, args.folder)
