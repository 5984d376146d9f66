"""The command line: ``python -m orchestrator [overrides]`` (Hydra) and its subcommands.

    python -m orchestrator +experiment=mnist            # one run
    python -m orchestrator -m +experiment=mnist seed=1,2 # a sweep
    python -m orchestrator plugins                      # what is registered, by kind
    python -m orchestrator sync outputs/                # deliver what MLflow missed
    python -m orchestrator init mine                    # a new project folder of your own
    python -m orchestrator reproduce RUN_ID             # run a recorded run again: did it match?
    python -m orchestrator compare RUN_ID RUN_ID        # what differs between runs (or a sweep's jobs)

A user error ends in one short paragraph naming the config key and what would
be right, with exit code 2 and no traceback; ``HYDRA_FULL_ERROR=1`` shows the
traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from orchestrator.config import register_schema  # noqa: E402
from orchestrator.errors import UserError, exit_on, full_error  # noqa: E402
from orchestrator.hydra_errors import short_hydra_errors  # noqa: E402
from orchestrator.job import run_job  # noqa: E402
from orchestrator.listing import print_plugins  # noqa: E402
from orchestrator.plugins import get_plugin_manager  # noqa: E402
from orchestrator.project import PROJECT_ENV  # noqa: E402
from orchestrator.records.compare import main as compare  # noqa: E402
from orchestrator.records.reproduce import main as reproduce  # noqa: E402
from orchestrator.scaffold import main as init  # noqa: E402
from orchestrator.session import Session  # noqa: E402
from orchestrator.terminal import own_lines  # noqa: E402
from orchestrator.tracking.sync import main as sync  # noqa: E402

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
EXIT_INTERRUPTED = 130

log = logging.getLogger("orchestrator")


def hydra_task(session: Session) -> Callable[[], Any]:
    """Hydra's entry point for this process: each job runs the configured stages in ``session``."""

    @hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
    def task(cfg: DictConfig) -> float | None:
        """One Hydra job: run the configured stages and return the objective."""
        try:
            with own_lines():
                return run_job(cfg, session)
        except UserError as error:
            exit_on(error)
            return None

    return task


#: The project's own Hydra plugins, as ``module:Class``.
HYDRA_PLUGINS = (
    "hydra_plugins.orchestrator_searchpath:OrchestratorSearchPathPlugin",
    "hydra_plugins.orchestrator_string_ids:StringIdsSearchPathPlugin",
    "hydra_plugins.orchestrator_string_ids:StringIdsConfigSource",
    "hydra_plugins.orchestrator_optuna_sweeper:OrchestratorOptunaSweeper",
)


def register_hydra_plugins() -> None:
    """Register the project's Hydra plugins with Hydra directly.

    Hydra finds plugins by scanning the ``hydra_plugins`` namespace package,
    which an editable install does not always expose; registering the classes
    directly works in every kind of install (Hydra ignores a second registration).
    """
    import importlib

    from hydra.core.plugins import Plugins

    for target in HYDRA_PLUGINS:
        module, _, name = target.partition(":")
        Plugins.instance().register(getattr(importlib.import_module(module), name))


def read_config_tree_once() -> None:
    """Let Hydra's ``--help`` read the config tree once instead of once per config group.

    Hydra 1.3 lists the options of each of its and the project's config groups
    (about a hundred) by rebuilding its config repository every time: over 1 s
    once the SLURM and Ray launcher plugins are installed. In a process that only
    prints help the overrides never change, so one repository serves every group
    and the text is the same.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    build = ConfigLoaderImpl._parse_overrides_and_create_caching_repo
    built: dict = {}

    def once(self, config_name, overrides):
        key = (id(self), config_name, tuple(overrides))
        if key not in built:
            built[key] = build(self, config_name, overrides)
        return built[key]

    ConfigLoaderImpl._parse_overrides_and_create_caching_repo = once  # type: ignore[method-assign]


def main() -> None:
    """Entry point of ``python -m orchestrator`` and the ``orchestrator`` command."""
    try:
        if sys.argv[1:2] == ["sync"]:
            raise SystemExit(sync(sys.argv[2:]))
        if sys.argv[1:2] == ["init"]:
            raise SystemExit(init(sys.argv[2:]))
        if sys.argv[1:2] == ["reproduce"]:
            raise SystemExit(reproduce(sys.argv[2:]))
        if sys.argv[1:2] == ["compare"]:
            raise SystemExit(compare(sys.argv[2:]))
        manager = get_plugin_manager()
        # The jobs a launcher starts in other processes use the same project, wherever they start.
        os.environ.setdefault(PROJECT_ENV, str(manager.project.root) if manager.project else "none")
        if sys.argv[1:2] == ["plugins"]:
            print_plugins(manager)
            return
    except UserError as error:
        exit_on(error)
    register_schema(manager.trusted_targets())
    register_hydra_plugins()
    short_hydra_errors()
    if {"--help", "-h", "--hydra-help"} & set(sys.argv[1:]):
        read_config_tree_once()
    try:
        hydra_task(Session())()
    except KeyboardInterrupt:
        if full_error():
            raise
        print(
            "Interrupted: the run ended KILLED; its checkpoints are in its output folder. "
            "Run the same command again to resume it (resume=false starts afresh).",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    main()
