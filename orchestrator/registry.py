"""One registry per plugin kind: names mapped to factories, with clear errors.

A registry rejects a name registered twice (naming both plugins) and answers an
unknown name with the registered ones. It checks argument names against the
factory's signature, before TensorFlow is imported where the factory allows it.

Example::

    losses = Registry("loss")
    with losses.registering("my_plugin", "my-dist"):
        losses.add("scaled_mse", scaled_mse)
    losses.create("scaled_mse", {"scale": 2.0}, key="loss")
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import UserError, choices_text, closest, summarize
from orchestrator.factories import LazyFactory
from orchestrator.source_signature import source_parameters
from orchestrator.targets import DEFAULT_ALLOWED, TARGET, check_targets, instantiate_target
from orchestrator.value_types import annotations_of, mismatch

#: The plugin kinds, in the order they are listed: registry kind -> registration hook.
KINDS: dict[str, str] = {
    "data_source": "orchestrator_register_data_sources",
    "model_builder": "orchestrator_register_model_builders",
    "optimizer": "orchestrator_register_optimizers",
    "loss": "orchestrator_register_losses",
    "metric": "orchestrator_register_metrics",
    "callback": "orchestrator_register_callbacks",
    "stage": "orchestrator_register_stages",
    "strategy": "orchestrator_register_strategies",
}


#: Parameters the host passes to a factory that declares them; never config arguments:
#: the run's context, the stage (stage kinds), and the config key of the entry (``data.source``).
INJECTED = ("context", "stage", "key")


class DuplicatePluginError(UserError):
    """Two plugins registered the same name in one registry."""


class UnknownPluginError(UserError):
    """The config names something no plugin registered."""


@dataclass(frozen=True)
class Entry:
    """A registered factory and where it came from."""

    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None
    #: Stage kinds: whether the stage can change the model (its weights are saved when it ends,
    #: and a pruned run skips it). ``evaluate`` and ``predict`` say ``False``.
    changes_model: bool = True
    #: Stage kinds: what a resumed run calls, as ``(context, stage, **args)``, for a stage that
    #: ended before the interruption and is skipped (``fit`` re-applies ``trainable`` and ``optimizer``).
    when_skipped: Callable[..., Any] | None = None
    #: Checks of the plugin's own, ``check(args, key)``, run with the config's other checks before
    #: TensorFlow is imported; raise :class:`UserError` for a wrong value.
    check: Callable[[Mapping[str, Any], str], None] | None = None

    @property
    def origin(self) -> str:
        """``"plugin 'mnist' (keras-orchestrator)"``, for messages and listings."""
        dist = f" ({self.distribution})" if self.distribution else ""
        return f"plugin '{self.plugin}'{dist}"


class Registry:
    """Names of one plugin kind mapped to their factories.

    The config field that selects an entry (``name``) is not an argument; a factory's own
    parameter of that name (Keras objects take ``name``) is set with ``_name_``::

        metrics: {pr: {name: auc, curve: PR, _name_: auc_pr}}  # AUC(curve="PR", name="auc_pr")

    Args:
        kind: the kind in words, as messages use it (``"loss"``, ``"data_source"``).
        name_field: the config field that selects an entry (``name``; ``kind`` for stages).
    """

    def __init__(self, kind: str, name_field: str = "name", blocked: tuple[str, ...] = ()):
        self.kind = kind
        self.name_field = name_field
        #: Plugins ``ORCHESTRATOR_DISABLE_PLUGINS`` blocked: an unknown name's message says so.
        self.blocked = tuple(blocked)
        self._entries: dict[str, Entry] = {}
        #: Module prefixes a ``_target_`` entry may name (``security.allowed_targets``).
        self.allowed_targets: tuple[str, ...] = DEFAULT_ALLOWED
        self._plugin = "<direct>"
        self._distribution: str | None = None

    @property
    def own_name(self) -> str:
        """The config key that sets a factory's parameter called like the selecting field: ``_name_``."""
        return f"_{self.name_field}_"

    def _config_key(self, parameter: str) -> str:
        """A factory parameter as the config spells it (``name`` -> ``_name_``)."""
        return self.own_name if parameter == self.name_field else parameter

    def _factory_arguments(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Config arguments as the factory takes them (``_name_`` -> ``name``)."""
        return {(self.name_field if arg == self.own_name else arg): value for arg, value in args.items()}

    @contextlib.contextmanager
    def registering(self, plugin: str, distribution: str | None = None) -> Iterator[Registry]:
        """Attribute the names added inside the block to ``plugin``."""
        previous = self._plugin, self._distribution
        self._plugin, self._distribution = plugin, distribution
        try:
            yield self
        finally:
            self._plugin, self._distribution = previous

    def add(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        changes_model: bool = True,
        when_skipped: Callable[..., Any] | None = None,
        check: Callable[[Mapping[str, Any], str], None] | None = None,
    ) -> None:
        """Register ``factory`` under ``name``; a name already taken is an error.

        ``changes_model`` and ``when_skipped`` describe a stage kind; ``check`` is the plugin's
        own check of its arguments (see :class:`Entry`)::

            registry.add("evaluate", evaluate, changes_model=False)
            registry.add("toy", toy_data, check=check_toy_arguments)
        """
        if not callable(factory):
            raise UserError(
                f"plugin '{self._plugin}'",
                f"registered {self.kind} '{name}' with {factory!r}, which is not callable",
            )
        new = Entry(name, factory, self._plugin, self._distribution, changes_model, when_skipped, check)
        if name in self._entries:
            old = self._entries[name]
            raise DuplicatePluginError(
                f"plugin '{self._plugin}'",
                f"{self.kind} '{name}' is registered twice: by {old.origin} and by {new.origin}. "
                "Rename one, or block one with ORCHESTRATOR_DISABLE_PLUGINS=<plugin>.",
            )
        self._entries[name] = new

    def restricted(self, allowed_targets: tuple[str, ...]) -> Registry:
        """This registry's entries, with ``_target_`` entries limited to ``allowed_targets``.

        The copy shares the entries; the registry itself is left as it is, so checking
        one config never changes what the next one may do.
        """
        view = copy.copy(self)
        view.allowed_targets = tuple(allowed_targets)
        return view

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, key: str) -> Entry:
        """The entry for ``name``; ``key`` is the config node that named it (``"data"``)."""
        if not isinstance(name, str) or name not in self._entries:
            blocked = (
                f" ORCHESTRATOR_DISABLE_PLUGINS blocks the plugin(s) {', '.join(self.blocked)}, "
                "which may be the one that registers it."
                if self.blocked
                else ""
            )
            raise UnknownPluginError(
                f"{key}.{self.name_field}",
                f"unknown {self.kind} {name!r}.{closest(name, self._entries)} "
                f"Registered: {choices_text(self._entries)}.{blocked}",
            )
        return self._entries[name]

    def check(self, name: str, args: Mapping[str, Any], key: str) -> None:
        """Check the name, the argument names and types, and the plugin's own checks.

        Nothing is imported: a :func:`~orchestrator.factories.lazy` factory's argument
        names are read from its target's source (:mod:`orchestrator.source_signature`).
        """
        if name == TARGET:
            check_targets(args, key, self.allowed_targets)
            return
        entry = self.get(name, key)
        factory = entry.factory
        if isinstance(factory, LazyFactory):
            accepted = factory.parameter_names()
            if accepted is not None:
                self._check_names(entry, [self._config_key(n) for n in accepted], args, key)
        else:
            signature = _signature(factory)
            if signature is not None:
                self._check_arguments(entry, signature, args, key)
                self._check_types(entry, args, key)
        if entry.check is not None:
            entry.check(args, key)

    def _check_types(self, entry: Entry, args: Mapping[str, Any], key: str) -> None:
        hints = annotations_of(entry.factory)
        for arg, value in args.items():
            parameter = self.name_field if arg == self.own_name else arg
            if parameter in hints:
                problem = mismatch(value, hints[parameter])
                if problem:
                    raise UserError(f"{key}.{arg}", f"{self.kind} '{entry.name}': {problem}.")

    def _check_names(self, entry: Entry, accepted: list[str], args: Mapping[str, Any], key: str) -> None:
        for arg in args:
            if arg not in accepted:
                raise UserError(
                    f"{key}.{arg}",
                    f"{self.kind} '{entry.name}' takes no argument '{arg}'."
                    f"{closest(arg, accepted)} Accepted: {choices_text(accepted)}.",
                )

    def _check_arguments(
        self, entry: Entry, signature: inspect.Signature, args: Mapping[str, Any], key: str
    ) -> None:
        params = signature.parameters
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        accepted = [self._config_key(n) for n, p in params.items() if n not in INJECTED and p.kind in named]
        missing = [
            n
            for n, p in params.items()
            if n in accepted and p.default is inspect.Parameter.empty and n not in args
        ]
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            target = getattr(entry.factory, "forwards_to", None)
            onward = source_parameters(target) if target else None
            if onward is None:
                return  # **kwargs that go somewhere unknown: the factory itself will say
            accepted += [self._config_key(n) for n in onward if self._config_key(n) not in accepted]
        self._check_names(entry, accepted, args, key)
        if missing:
            raise UserError(key, f"{self.kind} '{entry.name}' needs the argument(s): {', '.join(missing)}.")

    def _explain_refused_arguments(
        self, entry: Entry, factory: LazyFactory, args: Mapping[str, Any], key: str
    ) -> None:
        """After a Keras class refused its arguments: name the one it does not know, with a hint."""
        accepted = [self._config_key(n) for n in _class_parameters(factory.resolve())]
        for arg in args:
            if accepted and arg not in accepted:
                raise UserError(
                    f"{key}.{arg}",
                    f"{self.kind} '{entry.name}' takes no argument '{arg}'."
                    f"{closest(arg, accepted)} Accepted: {choices_text(accepted)}.",
                )

    def create(self, name: str, args: Mapping[str, Any], key: str, **injected: Any) -> Any:
        """Call the factory registered as ``name`` with ``args``.

        ``injected`` values (``context``, ``stage``) and ``key`` are passed only to a
        factory that declares a parameter of that name.

        Wrong argument names and errors raised by the factory become a
        :class:`UserError` naming ``key`` and the plugin. ``name`` ``_target_``
        instantiates ``args["_target_"]`` (see :mod:`orchestrator.targets`).
        """
        if name == TARGET:
            return instantiate_target(args, key, self.allowed_targets)
        entry = self.get(name, key)
        factory = entry.factory
        signature = factory.signature() if isinstance(factory, LazyFactory) else _signature(factory)
        if signature is not None:
            self._check_arguments(entry, signature, args, key)
        kwargs = self._factory_arguments(args)
        if signature is not None:
            given = {**injected, "key": key}
            kwargs.update({n: v for n, v in given.items() if n in signature.parameters})
        try:
            return factory(**kwargs)
        except UserError:
            raise
        except Exception as error:
            if isinstance(factory, LazyFactory) and isinstance(error, (TypeError, ValueError)):
                self._explain_refused_arguments(entry, factory, args, key)
            raise UserError(
                key,
                f"{self.kind} '{name}' from {entry.origin} failed with the arguments "
                f"{dict(args)}: {summarize(error)}",
            ) from error


def _class_parameters(target: Any) -> list[str]:
    """The named ``__init__`` parameters of a class and of the bases its ``**kwargs`` reach."""
    names: list[str] = []
    for cls in getattr(target, "__mro__", ()):
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        signature = _signature(init)
        if signature is None:
            break
        names += [n for n, p in signature.parameters.items() if n != "self" and p.kind in _NAMED]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return list(dict.fromkeys(names))


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):
        return None
