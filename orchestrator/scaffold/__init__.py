"""``python -m orchestrator init DIR``: a new project folder, written from the templates beside this module.

Each file under ``template/`` is written into DIR with ``.tmpl`` dropped from
its name (``gitignore`` becomes ``.gitignore``) and ``NAME`` in its path and
``{{name}}`` in its text replaced by the project's name: the folder's name
made a Python and Hydra name (lower case; ``-``, spaces and other characters
become ``_``: ``My-Exp`` -> ``my_exp``). DIR must be new or empty.

Example::

    python -m orchestrator init my-exp
    cd my-exp && python -m orchestrator +experiment=my_exp

This package imports nothing beyond the standard library until it checks the
project's name against the registered plugins.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from orchestrator.errors import UserError

TEMPLATE = Path(__file__).resolve().parent / "template"
PLACEHOLDER = "{{name}}"
#: Template files whose names start with a dot once written.
DOTFILES = ("gitignore",)


def project_name(folder: Path) -> str:
    """The name a folder's project gets: ``My-Exp`` -> ``my_exp``, ``2024 run`` -> ``project_2024_run``."""
    name = re.sub(r"[^0-9a-z]+", "_", folder.name.lower()).strip("_")
    if not name:
        raise UserError(
            "init", f"'{folder.name}' has no letter or digit to name the project by; choose another name."
        )
    return f"project_{name}" if name[0].isdigit() else name


def check_free(name: str) -> None:
    """Refuse a name the data source or model builder of another plugin already has."""
    from orchestrator.plugins import get_plugin_manager

    registries = get_plugin_manager().registries
    for kind in ("data_source", "model_builder"):
        if name in registries[kind]:
            raise UserError(
                "init",
                f"the project's name '{name}' is already the {kind} of "
                f"{registries[kind].get(name, 'init').origin}; choose another folder name.",
            )


def templates() -> list[Path]:
    return sorted(path for path in TEMPLATE.rglob("*.tmpl") if path.is_file())


def write_project(folder: Path) -> tuple[str, list[Path]]:
    """Write a new project into ``folder``; return its name and the files written."""
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise UserError("init", f"{folder} is a file; init writes a new project folder.")
    if folder.is_dir() and any(folder.iterdir()):
        found = ", ".join(sorted(path.name for path in folder.iterdir())[:3])
        raise UserError(
            "init", f"{folder} is not empty ({found}, ...); init writes only into a new or empty folder."
        )
    name = project_name(folder)
    check_free(name)
    written = []
    for template in templates():
        relative = template.relative_to(TEMPLATE).with_suffix("")
        if relative.name in DOTFILES:
            relative = relative.with_name("." + relative.name)
        target = folder / str(relative).replace("NAME", name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.read_text(encoding="utf-8").replace(PLACEHOLDER, name), encoding="utf-8")
        written.append(target)
    return name, written


def main(argv: list[str]) -> int:
    """``python -m orchestrator init DIR``; a :class:`UserError` for a folder it cannot use."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator init",
        description="Write a new project: its pyproject.toml, a plugin file with a data source and a "
        "model builder, its config folder with an experiment preset, a README and a test.",
    )
    parser.add_argument("folder", type=Path, help="the project folder to create (new or empty)")
    options = parser.parse_args(argv)
    name, written = write_project(options.folder)
    folder = options.folder
    print(f"Wrote the project '{name}' in {folder}:")
    for path in written:
        print(f"  {path.relative_to(folder.expanduser().resolve())}")
    steps = [
        (f"cd {folder}", ""),
        (f"python -m orchestrator +experiment={name}", "train, evaluate, record in MLflow"),
        ("python -m orchestrator plugins", f"lists {name}_plugin with its file"),
        ("pytest", "the project's test: a short run, checked"),
    ]
    width = max(len(command) for command, _ in steps)
    print("\nNext:")
    for command, what in steps:
        print(f"  {command.ljust(width)}   # {what}" if what else f"  {command}")
    return 0
