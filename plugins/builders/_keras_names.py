"""Keras names and argument names checked against Keras's installed source, without importing Keras.

The model builders take Keras names from the config (``application: ResNet50``,
``layers: [{Dense: {units: 10}}]``); a misspelt one is answered before TensorFlow
loads, with the names Keras has and a "did you mean". Where the source cannot
be read, the check passes and Keras itself answers when the model is built.

Example::

    check_name("Dens", "keras.layers", "model.layers[0]", "layer", LAYER_NAMES_EXCLUDED)
    # UserError: model.layers[0]: unknown Keras layer 'Dens'. Did you mean 'Dense'? ...
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator import UserError, choices_text, closest, lazy, source_names

#: Longer lists of names are summed up in a message instead of listed.
LISTED = 50


def public_classes(module: str, excluded: tuple[str, ...] = ()) -> list[str] | None:
    """The capitalised names ``module`` exports (its classes and model functions); ``None``: unknown."""
    names = source_names(module)
    if names is None:
        return None
    return [name for name in names if name[:1].isupper() and name not in excluded]


def check_name(name: object, module: str, key: str, what: str, excluded: tuple[str, ...] = ()) -> None:
    """Refuse ``name`` unless ``module`` exports it (``what``: "application", "layer")."""
    known = public_classes(module, excluded)
    if known is None or name in known:
        return
    if not isinstance(name, str):
        raise UserError(key, f"a Keras {what} is named by a string, got {name!r}.")
    same = [k for k in known if k.lower() == name.lower()]
    hint = f" Did you mean '{same[0]}'? Keras names are case-sensitive." if same else closest(name, known)
    if len(known) > LISTED:
        listing = f"{module} has {len(known)}; `python -c 'import {module} as m; print(dir(m))'` lists them"
    else:
        listing = f"Known: {choices_text(known)}"
    raise UserError(key, f"unknown Keras {what} {name!r} in {module}.{hint} {listing}.")


def check_arguments(
    target: str,
    arguments: Mapping[str, object],
    key: str,
    what: str,
    reserved: Mapping[str, str] | None = None,
) -> None:
    """Refuse an argument name ``target`` (a dotted path) does not take, or one in ``reserved``
    (name -> what to set instead)."""
    reserved = reserved or {}
    accepted = lazy(target).parameter_names()
    for argument in arguments:
        if argument in reserved:
            raise UserError(f"{key}.{argument}", f"is set by the builder; {reserved[argument]}")
        if accepted is not None and argument not in accepted:
            usable = [name for name in accepted if name not in reserved]
            raise UserError(
                f"{key}.{argument}",
                f"{what} takes no argument '{argument}'.{closest(str(argument), usable)} "
                f"Accepted: {choices_text(usable)}.",
            )
