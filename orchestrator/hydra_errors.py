"""Hydra's own errors, answered as the orchestrator answers its own: one short paragraph, exit 2.

Hydra reports a mistake it finds while composing the config in its own words,
often with its config search path (30 lines for ``+experiment=nonexistent``) or a
traceback (``stages=null``, an output folder that cannot be created, invalid
YAML in a user's config file). :func:`short_hydra_errors` puts a thin wrapper
around Hydra's ``run_and_report`` that turns those into a
:class:`~orchestrator.errors.UserError` naming the key, the option or the file;
every other exception is left to Hydra, and ``HYDRA_FULL_ERROR=1`` shows
Hydra's full report as before.

Example::

    short_hydra_errors()   # before hydra.main runs
    # python -m orchestrator +experiment=mnst
    # Error: experiment: no option 'mnst'. Did you mean 'mnist'? Available: guide_callbacks, ...
    # python -m orchestrator optimizer=RMSprop   (the hint comes from the files and plugins' options)
    # Error: optimizer: no option 'RMSprop'. Options are spelt in lower-case snake_case: write 'rmsprop'. ...
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from orchestrator import config
from orchestrator.errors import UserError, choices_text, closest, exit_on, full_error
from orchestrator.plugins import disabled_plugins, get_plugin_manager

#: Hydra's schema class names -> the config key they stand for (``Key 'epoch' not in 'TrainerConfig'``).
SECTIONS = {
    "TrainerConfig": "trainer",
    "TrackingConfig": "tracking",
    "ObjectiveConfig": "objective",
    "SecurityConfig": "security",
}
#: How Hydra's messages about an override that cannot be applied begin.
COMPOSITION = ("Error merging override", "Could not append to config", "Could not delete from config")
#: Where Hydra's message ends and its reference lines begin.
TRAILERS = ("full_key:", "reference_type=", "object_type=", "Set the environment", "Config search")
#: The subcommands, for a hint when one is misspelt (``plugin``).
SUBCOMMANDS = ("plugins", "sync", "init")


def short_hydra_errors() -> None:
    """Wrap Hydra's ``run_and_report`` (once per process; a second call changes nothing)."""
    from hydra._internal import utils

    original = utils.run_and_report
    if getattr(original, "orchestrator_wrapper", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        if full_error():
            return original(func)
        try:
            return func()
        except Exception as error:
            explained = explain(error)
            if explained is None:
                return original(lambda error=error: _raise(error))
            exit_on(explained)

    run_and_report.orchestrator_wrapper = True  # type: ignore[attr-defined]
    utils.run_and_report = run_and_report


def _raise(error: BaseException) -> Any:
    raise error


def explain(error: BaseException) -> UserError | None:
    """The :class:`UserError` for one of Hydra's composition errors; ``None`` for anything else."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(error, MissingConfigException):
        return _missing_option(error)
    if isinstance(error, OverrideParseException):
        return _unparsable(str(error))
    text = str(error) + (f"\n{error.__cause__}" if error.__cause__ is not None else "")
    if "Config group override must be a string or a list" in text:
        return _null_group()
    if "Could not override '" in text:
        return _unknown_key(text)
    if text.startswith(
        ("Error merging override", "Could not append to config", "Could not delete from config")
    ):
        return UserError(_quoted_key(text) or "overrides", _first_lines(text))
    if text.startswith("Error in call to target"):
        return _refused_arguments(text)
    yaml_error = _yaml_error(error)
    if yaml_error is not None:
        return yaml_error
    if isinstance(error, OSError) and error.filename and "hydra" in _frames(error):
        return UserError(
            "hydra.run.dir",
            f"the output folder {error.filename} cannot be created or written ({error.strerror}). "
            "Choose a folder you can write to: hydra.run.dir=... (hydra.sweep.dir=... for a sweep).",
        )
    if "config_loader_impl.py" in _frames(error):  # anything else that failed while composing
        return UserError(
            "overrides",
            f"the config cannot be composed from the command line: {type(error).__name__}: "
            f"{_first_lines(str(error)) or 'no message'}. Hydra cannot merge a mapping into a node "
            "that is null (such as hydra.sweeper.params) from the command line: set it in a config file.",
        )
    return None


def _missing_option(error: Any) -> UserError:
    missing = str(error.missing_cfg_file or "")
    group, _, option = missing.rpartition("/")
    if not group:
        return UserError("config", _first_lines(str(error)))
    files = sorted(error.options or _group_files(group))
    answered = get_plugin_manager().group_options(group)
    known = [*files, *answered]
    blocked = disabled_plugins()
    note = (
        f" ORCHESTRATOR_DISABLE_PLUGINS blocks {', '.join(sorted(blocked))}, whose config entries go with it."
        if blocked
        else ""
    )
    return UserError(
        group.replace("/", "."),
        f"no option '{option}'.{_spelling(option, known) or closest(option, known)} "
        f"Available: {choices_text(files)}{_answered_text(answered, files)}.{note}",
    )


def _group_files(group: str) -> list[str]:
    """The options of ``group`` in the config tree, where Hydra's error leaves them out (a list choice)."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return []
    return list(GlobalHydra.instance().config_loader().get_group_options(group))


def _spelling(option: str, known: list[str]) -> str:
    """``RMSprop`` -> "write 'rmsprop'": an option Keras spells otherwise (a class name, upper case)."""
    if option == option.lower():
        return ""
    same = [name for name in known if _letters(name) == _letters(option)]
    return f" Options are spelt in lower-case snake_case: write '{same[0]}'." if same else ""


def _letters(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _answered_text(answered: dict[str, str], files: list[str]) -> str:
    """``, and 11 more from plugin 'keras_builtins' (...)``: the options no file holds, counted."""
    counts: dict[str, int] = {}
    for option, plugin in answered.items():
        if option not in files:
            counts[plugin] = counts.get(plugin, 0) + 1
    if not counts:
        return ""
    plugins = ", ".join(f"{count} more from plugin '{plugin}'" for plugin, count in sorted(counts.items()))
    return f", and {plugins} (python -m orchestrator plugins says which)"


def _unparsable(text: str) -> UserError:
    match = re.search(r"Error parsing override '([^']*)'", text)
    override = match.group(1) if match else ""
    hint = closest(override, SUBCOMMANDS).replace("Did you mean", "Did you mean the subcommand")
    if hint:
        subcommand = hint.split("'")[1]
        return UserError(
            override, f"is not an override (key=value).{hint} (python -m orchestrator {subcommand} ...)."
        )
    return UserError(
        override or "overrides",
        "is not an override: write key=value (trainer.epochs=3), +key=value to add a key, "
        "~key to remove one.",
    )


def _null_group() -> UserError:
    """``stages=null``: a config group is chosen by an option name, never null."""
    nulls = [arg.split("=", 1)[0] for arg in sys.argv[1:] if re.fullmatch(r"[\w/]+=(null|None|~)", arg)]
    key = nulls[0] if nulls else "overrides"
    return UserError(
        key,
        f"is a config group: choose one of its options ({key}=<option>), or turn one entry off "
        f"with {key}.<entry>=null.",
    )


def _unknown_key(text: str) -> UserError:
    """``trainer.epoch=3``: Hydra's hint says ``+trainer.epoch=3``; a typo deserves "did you mean"."""
    key = _quoted_key(text) or "overrides"
    section, _, name = key.rpartition(".")
    schema = re.search(r"not in '(\w+)'", text)
    known = _schema_fields(schema.group(1)) if schema else []
    hint = closest(name, known).replace("'", f"'{section}.", 1) if known else ""
    if hint:
        return UserError(key, f"is not a setting.{hint} The settings of {section}: {choices_text(known)}.")
    return UserError(
        key,
        f"is not in the config. To add it, write +{key}=... (a plugin's arguments are checked "
        "against what the plugin declares).",
    )


def _refused_arguments(text: str) -> UserError:
    """A Hydra ``_target_`` (a callback, a launcher) refused its arguments: name the key and the argument."""
    key = re.search(r"full_key: (\S+)", text)
    where = key.group(1) if key else "hydra"
    argument = re.search(r"unexpected keyword argument '(\w+)'", text)
    if argument:
        return UserError(
            f"{where}.{argument.group(1)}", f"is not an argument of {where}. {_first_lines(text)}"
        )
    return UserError(where, _first_lines(text))


def _schema_fields(schema: str) -> list[str]:
    cls = getattr(config, schema, None)
    return [f.name for f in fields(cls)] if cls is not None and schema in SECTIONS else []


def _quoted_key(text: str) -> str | None:
    """The key a Hydra message is about: ``Could not override 'trainer.epoch'``, ``override seed=abc``."""
    for pattern in (r"override '([^']+)'", r"at '([^']+)'", r"override ([\w.\[\]/+~]+)=", r"full_key: (\S+)"):
        match = re.search(pattern, text)
        if match:
            return match.group(1).lstrip("+~")
    return None


def _first_lines(text: str) -> str:
    """Hydra's message without its reference-type lines, search path and trailer, as one paragraph."""
    kept = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(
            ("full_key:", "reference_type=", "object_type=", "Set the environment", "Config search")
        ):
            break
        if stripped:
            kept.append(stripped)
    return " ".join(kept[:4])


def _yaml_error(error: BaseException) -> UserError | None:
    """Invalid YAML in a config file: the file, the line and what the parser expected."""
    import yaml

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, yaml.YAMLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    mark = getattr(cause, "problem_mark", None) or getattr(cause, "context_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
    problem = getattr(cause, "problem", None) or str(cause).splitlines()[0]
    return UserError(where, f"is not valid YAML: {problem}. Fix the file (see its line), then run again.")


def _frames(error: BaseException) -> str:
    """The module paths of a traceback's frames, to tell Hydra's own file operations from others."""
    names = []
    tb = error.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return " ".join(names)
