"""The sweeper's workers: ``n_jobs`` trials in flight, a new one asked for as soon as one ends.

:func:`run` keeps ``workers`` launches going, each in a thread of its own that
waits for the launcher to run one job; the main thread asks for trials, hands
them out and tells their outcome, so that Optuna's study is used from one
thread only. ``batched=True`` waits for every trial in flight before asking for
more (the way Hydra's sweepers work); it is kept as the baseline of the idle-time
benchmark. One worker launches in the main thread (the basic launcher runs the
job in the calling thread, and only the main thread receives signals).

Example::

    run(launch=lambda item: launcher.launch([item.overrides], item.number),
        first=in_flight, ask=next_trial, tell=tell_trial, workers=2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any


def run(
    launch: Callable[[Any], Any],
    first: Iterable[Any],
    ask: Callable[[], Any],
    tell: Callable[[Any, Any, BaseException | None], None],
    workers: int,
    batched: bool = False,
) -> None:
    """Launch ``first``, then what ``ask()`` returns until it returns ``None``; ``tell(item, result,
    error)`` for each launch that ended, in the order they end. An error that is not an ``Exception``
    (Ctrl-C) ends the run at once."""
    queue = list(first)

    def next_item() -> Any:
        return queue.pop(0) if queue else ask()

    if workers == 1:
        while (item := next_item()) is not None:
            try:
                result = launch(item)
            except Exception as error:
                tell(item, None, error)
            else:
                tell(item, result, None)
        return
    pending: dict[Future, Any] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trial") as pool:
        exhausted = False
        filled = False  # batched: the batch in flight is complete
        while True:
            while not exhausted and len(pending) < workers and not (batched and pending and filled):
                item = next_item()
                if item is None:
                    exhausted = True
                    break
                pending[pool.submit(launch, item)] = item
            filled = True
            if not pending:
                return
            done, _ = wait(pending, return_when="ALL_COMPLETED" if batched else FIRST_COMPLETED)
            filled = False
            for future in done:
                item = pending.pop(future)
                error = future.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error
                tell(item, None if error else future.result(), error)
