"""The Optuna sweeper's search space: ``hydra.sweeper.params`` and the sweep's overrides as distributions.

Example::

    overrides = parser.parse_overrides(["optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))"])
    space, fixed = search_space(overrides)
    space["optimizer.learning_rate"].distribution
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra_plugins.orchestrator_optuna_sweeper._study import SweeperConfigError


@dataclass
class Dimension:
    """One searched override key: its Optuna distribution and how a value is written back."""

    key: str
    distribution: Any
    #: For a categorical dimension: the override text of each choice (``[64,64]``, ``a\\ b``).
    texts: list[str] | None = None

    def text(self, value: Any) -> str:
        """The override text of a value Optuna picked (``"0.0031"``, ``"[64,64]"``)."""
        if self.texts is not None:
            return self.texts[self.distribution.choices.index(value)]
        if isinstance(value, float):
            return repr(value)
        return str(value)

    def override(self, value: Any) -> str:
        return f"{self.key}={self.text(value)}"

    def optuna_value(self, value: Any) -> Any:
        """A value as written in ``enqueue_trials`` -> the value Optuna stores for this dimension."""
        if self.texts is None:
            return value
        if value in self.distribution.choices:
            return value
        text = hydra_text(value)
        for choice, choice_text in zip(self.distribution.choices, self.texts, strict=True):
            if text in (choice_text, hydra_text(choice)):
                return choice
        raise SweeperConfigError(
            "hydra.sweeper.enqueue_trials",
            f"{value!r} is not one of the choices of {self.key}: {', '.join(self.texts)}.",
        )


def hydra_text(value: Any) -> str:
    """A Python value as Hydra override text: ``[64,64]``, ``true``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def search_space(overrides: list[Any]) -> tuple[dict[str, Dimension], list[str]]:
    """Parsed overrides -> (searched dimensions by key, fixed overrides applied to every trial).

    A later override of a key replaces an earlier one (command line over
    ``hydra.sweeper.params``); a fixed value on the command line removes the key
    from the search.
    """
    dimensions: dict[str, Dimension] = {}
    fixed: dict[str, str] = {}
    for override in overrides:
        key = override.get_key_element()
        dimensions.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            dimensions[key] = dimension(override)
        else:
            fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
    return dimensions, list(fixed.values())


def corners(space: dict[str, Dimension], fixed: list[str]) -> list[list[str]]:
    """Override lists that between them give every dimension its extreme values: each end of a range
    or interval and each choice, the other dimensions at their first value.

    Example: ``{lr: interval(1e-4, 0.1), units: choice(32, 64)}`` -> lr=1e-4 units=32,
    lr=0.1 units=32, lr=1e-4 units=64.
    """

    def values(dimension: Dimension) -> list[Any]:
        distribution = dimension.distribution
        if hasattr(distribution, "choices"):
            return list(distribution.choices)
        return [distribution.low, distribution.high]

    first = {key: values(dimension)[0] for key, dimension in space.items()}
    jobs = [[*fixed, *(space[key].override(value) for key, value in first.items())]]
    for key, dimension in space.items():
        for value in values(dimension)[1:]:
            chosen = {**first, key: value}
            jobs.append([*fixed, *(space[k].override(v) for k, v in chosen.items())])
    return jobs


def enqueued(space: dict[str, Dimension], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``hydra.sweeper.enqueue_trials`` as the params Optuna stores (checked against the search)."""
    result = []
    for params in trials:
        unknown = sorted(set(params) - set(space))
        if unknown:
            raise SweeperConfigError(
                "hydra.sweeper.enqueue_trials",
                f"{', '.join(unknown)} not in the search space ({', '.join(space) or 'empty'}).",
            )
        result.append({key: space[key].optuna_value(value) for key, value in params.items()})
    return result


def dimension(override: Any) -> Dimension:
    """One sweep override (``choice``, ``range``, ``interval``, with ``tag(log, ...)``) as a distribution."""
    from hydra.core.override_parser.types import (
        ChoiceSweep,
        IntervalSweep,
        RangeSweep,
        Transformer,
    )
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    where = key  # the searched override key, from hydra.sweeper.params or the command line
    sweep = override.value()
    log_scale = "log" in getattr(sweep, "tags", set())
    try:
        if isinstance(sweep, ChoiceSweep) or (isinstance(sweep, RangeSweep) and sweep.shuffle):
            if log_scale:
                raise SweeperConfigError(
                    where, "tag(log, ...) applies to interval() and range(), not choice()."
                )
            raw = list(override.sweep_iterator(transformer=Transformer.identity))
            if not raw:
                raise SweeperConfigError(where, "the choice is empty.")
            choices: tuple[Any, ...] = tuple(Transformer.encode(x) for x in raw)
            return Dimension(key, CategoricalDistribution(choices), [Transformer.str(x) for x in raw])
        if isinstance(sweep, RangeSweep):
            if log_scale:
                raise SweeperConfigError(
                    where, "Optuna has no log scale with a step; use tag(log, int(interval(a, b)))."
                )
            values = list(override.sweep_iterator(transformer=Transformer.identity))
            if not values:
                raise SweeperConfigError(where, f"{override.input_line} is empty (the stop is exclusive).")
            step = abs(sweep.step)
            if all(isinstance(v, int) for v in values) and isinstance(step, int):
                return Dimension(key, IntDistribution(min(values), max(values), step=step))
            low, high = round(min(values), 12), round(max(values), 12)
            return Dimension(key, FloatDistribution(low, high, step=float(step)))
        if isinstance(sweep, IntervalSweep):
            low, high = sweep.start, sweep.end
            assert low is not None and high is not None
            if isinstance(low, int) and isinstance(high, int):
                return Dimension(key, IntDistribution(low, high, log=log_scale))
            return Dimension(key, FloatDistribution(float(low), float(high), log=log_scale))
    except ValueError as error:  # Optuna's checks: low > high, log scale from 0, ...
        raise SweeperConfigError(where, str(error)) from None
    raise SweeperConfigError(where, f"{override.input_line}: not a sweep Optuna can sample.")
