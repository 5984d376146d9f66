"""A user's project folder: its own config folder and plugin modules, declared in its ``pyproject.toml``.

Run from a folder (or any folder below it) whose ``pyproject.toml`` has a
``[tool.orchestrator]`` table, the orchestrator composes the project's config
folder in front of its own and loads the project's plugin modules like
installed plugins::

    [tool.orchestrator]
    config_dir = "conf"              # conf/experiment/mine.yaml -> +experiment=mine
    plugins = ["mine_plugin"]        # module names, or .py files, relative to the project root

The nearest such ``pyproject.toml`` upwards from the current folder wins, as
pytest and tox find theirs. ``ORCHESTRATOR_PROJECT=DIR`` names the project
folder instead of searching; ``ORCHESTRATOR_PROJECT=none`` turns projects off.
Every mistake in the table is a :class:`UserError` naming the key and the file.

Example::

    project = find_project()
    if project is not None:
        module = import_plugin(project, project.plugins[0])
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from orchestrator.errors import UserError, choices_text, closest

PROJECT_ENV = "ORCHESTRATOR_PROJECT"
PYPROJECT = "pyproject.toml"
#: The orchestrator's primary config, which a project's config folder must not replace.
PRIMARY = "config.yaml"
#: The keys of ``[tool.orchestrator]``.
KEYS = ("config_dir", "plugins")


@dataclass(frozen=True)
class ProjectPlugin:
    """One entry of ``plugins``: ``module`` is also the plugin's name; ``entry`` as written."""

    module: str
    entry: str

    @property
    def package(self) -> str:
        """The top-level package (``mylab`` of ``mylab.plugin``), whose ``_target_`` entries are trusted."""
        return self.module.split(".")[0]


@dataclass(frozen=True)
class Project:
    """A folder with a ``[tool.orchestrator]`` table in its ``pyproject.toml``."""

    root: Path
    pyproject: Path
    config_dir: Path | None
    plugins: tuple[ProjectPlugin, ...]

    @property
    def name(self) -> str:
        return self.root.name

    def key(self, name: str) -> str:
        """``tool.orchestrator.plugins (/path/pyproject.toml)``: where a message points."""
        return f"tool.orchestrator.{name} ({self.pyproject})"


def find_project(start: Path | None = None) -> Project | None:
    """The project of ``start`` (default: the current folder), or ``None``.

    ``ORCHESTRATOR_PROJECT`` names the project's folder (``none``: no project) instead.
    """
    chosen = os.environ.get(PROJECT_ENV, "").strip()
    if chosen.lower() == "none":
        return None
    if chosen:
        pyproject = Path(chosen).expanduser().resolve() / PYPROJECT
        table = _table(pyproject) if pyproject.is_file() else None
        if table is None:
            raise UserError(PROJECT_ENV, f"{pyproject} does not exist or has no [tool.orchestrator] table.")
        return read_project(pyproject, table)
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        pyproject = candidate / PYPROJECT
        table = _table(pyproject) if pyproject.is_file() else None
        if table is not None:
            return read_project(pyproject, table)
    return None


def _table(pyproject: Path) -> dict[str, Any] | None:
    """The ``[tool.orchestrator]`` table of a ``pyproject.toml``, or ``None`` when it has none."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if "orchestrator" not in text:
        return None  # most files: no need to parse them
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        if "tool.orchestrator" not in text:
            return None  # not ours to judge
        raise UserError(str(pyproject), f"is not valid TOML: {error}.") from None
    table = data.get("tool", {}).get("orchestrator")
    if table is not None and not isinstance(table, dict):
        raise UserError(f"tool.orchestrator ({pyproject})", "must be a table: [tool.orchestrator].")
    return table


def read_project(pyproject: Path, table: dict[str, Any]) -> Project:
    """Check the table's keys and values; the folders and files it names must exist."""
    project = Project(pyproject.parent, pyproject, None, ())
    for key in table:
        if key not in KEYS:
            raise UserError(
                project.key(key),
                f"is not a key of [tool.orchestrator].{closest(key, KEYS)} Keys: {choices_text(KEYS)}.",
            )
    config_dir = table.get("config_dir")
    if config_dir is not None:
        if not isinstance(config_dir, str) or not config_dir:
            raise UserError(project.key("config_dir"), f"must be a folder name, got {config_dir!r}.")
        folder = (project.root / config_dir).resolve()
        if not folder.is_dir():
            raise UserError(project.key("config_dir"), f"'{config_dir}' is not a folder: {folder}.")
        if (folder / PRIMARY).exists():
            raise UserError(
                project.key("config_dir"),
                f"{folder / PRIMARY} would replace the orchestrator's primary config (its defaults and "
                "Hydra settings). Rename it; choose groups in a preset (conf/experiment/NAME.yaml) instead.",
            )
        config_dir = folder
    entries = table.get("plugins", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise UserError(
            project.key("plugins"),
            f'must be a list of module names or .py files, like ["mine_plugin"], got {entries!r}.',
        )
    plugins = [_plugin(project, entry) for entry in entries]
    modules = [plugin.module for plugin in plugins]
    twice = sorted({module for module in modules if modules.count(module) > 1})
    if twice:
        raise UserError(project.key("plugins"), f"lists the module '{twice[0]}' twice.")
    return Project(project.root, pyproject, config_dir, tuple(plugins))


def _plugin(project: Project, entry: str) -> ProjectPlugin:
    """``"mylab.plugin"`` as it is; ``"tools/plugin.py"`` as the module ``tools.plugin``."""
    key = project.key("plugins")
    if entry.endswith(".py") or "/" in entry or os.sep in entry:
        path = (project.root / entry).resolve()
        if not path.is_relative_to(project.root):
            raise UserError(key, f"'{entry}' is outside the project folder {project.root}.")
        if path.suffix != ".py" or not path.is_file():
            raise UserError(key, f"'{entry}' is not a .py file: {path} does not exist.")
        parts = path.relative_to(project.root).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    else:
        module = entry
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise UserError(key, f"'{entry}' is not a module name (letters, digits, _ and dots).")
    return ProjectPlugin(module, entry)


def import_plugin(project: Project, plugin: ProjectPlugin) -> ModuleType:
    """Import a plugin module of ``project`` with the project's root first on ``sys.path``."""
    put_on_path(project)
    importlib.invalidate_caches()
    key = project.key("plugins")
    try:
        module = importlib.import_module(plugin.module)
    except ModuleNotFoundError as error:
        if error.name and (plugin.module + ".").startswith(error.name + "."):
            path = plugin.module.replace(".", "/")
            raise UserError(
                key, f"'{plugin.entry}': there is no {path}.py or {path}/__init__.py in {project.root}."
            ) from error
        raise _import_error(key, plugin, error) from error
    except Exception as error:
        raise _import_error(key, plugin, error) from error
    where = getattr(module, "__file__", None)
    if where is None or not Path(where).resolve().is_relative_to(project.root):
        raise UserError(
            key,
            f"'{plugin.entry}' is {where or 'a module'}, outside the project folder: Python finds another "
            f"module called '{plugin.module}' first. Name the project's module differently.",
        )
    return module


def _import_error(key: str, plugin: ProjectPlugin, error: BaseException) -> UserError:
    return UserError(
        key,
        f"'{plugin.entry}' could not be imported: {type(error).__name__}: {error}. Fix it, or block it "
        f"with ORCHESTRATOR_DISABLE_PLUGINS={plugin.module}.",
    )


def put_on_path(project: Project) -> None:
    """Put the project's root first on ``sys.path`` (once), so its own modules import."""
    root = str(project.root)
    if root not in sys.path:
        sys.path.insert(0, root)


def plugin_file(module: ModuleType) -> str:
    """The file a plugin module was loaded from, for listings."""
    return str(getattr(module, "__file__", None) or module.__name__)
