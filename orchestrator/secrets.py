"""Secrets: the values of secret-looking config keys, masked wherever the project or Hydra writes.

A key whose last part contains one of :data:`SECRET_WORDS` (``tracking.tags.api_token``,
``db_password``) is a secret. Its value shows as :data:`MASK` in MLflow (params, tags,
run names, artifacts), in the output and sweep folders (the project's and Hydra's
files) and in the log (terminal and log files).

Example::

    masked({"db": {"password": "hunter2", "host": "x"}})   # {"db": {"password": "****", "host": "x"}}
    secrets = Secrets.of(cfg)                               # the secret values of a config
    secrets.overrides(["+tracking.tags.api_token=abc123"])  # ["+tracking.tags.api_token=****"]
    secrets.text("token abc123 sent")                       # "token **** sent"
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

#: Key words whose values never reach MLflow, files or the log: they show as ``MASK``.
SECRET_WORDS = ("password", "passwd", "token", "secret", "api_key", "apikey", "credential", "private_key")
MASK = "****"
#: Values shorter than this are masked where their key is known, but not looked for in free text.
MIN_LENGTH = 4


def is_secret(key: str) -> bool:
    """Whether a config key (``tracking.tags.api_token``) names a secret."""
    name = str(key).rsplit(".", 1)[-1].lower()
    return any(word in name for word in SECRET_WORDS)


def _plain(node: Any, resolve: bool = True) -> Any:
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=resolve)
    return node


def masked(node: Any) -> Any:
    """A plain copy of ``node`` with the value of every secret key replaced by ``MASK``."""
    node = _plain(node)
    if isinstance(node, Mapping):
        return {k: MASK if is_secret(k) and v is not None else masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [masked(value) for value in node]
    return node


def masked_override(override: str) -> str:
    """``+tracking.tags.api_token=abc`` -> ``+tracking.tags.api_token=****``; others unchanged."""
    key, sep, _ = override.partition("=")
    return f"{key}={MASK}" if sep and is_secret(key.lstrip("+~")) else override


def _leaves(node: Any) -> Iterable[Any]:
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield node


def _secret_values(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if is_secret(key):
                yield from (str(leaf) for leaf in _leaves(value) if leaf is not None)
            else:
                yield from _secret_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _secret_values(value)


@dataclass(frozen=True)
class Secrets:
    """The secret values of one config, and the masking of text, overrides and configs with them.

    Example::

        secrets = Secrets.of(cfg)
        secrets.node(OmegaConf.to_container(cfg, resolve=False))   # every secret masked
    """

    values: tuple[str, ...] = ()

    @classmethod
    def of(cls, cfg: Any) -> Secrets:
        """The values under secret keys in ``cfg`` (its ``hydra`` node left out), longest first."""
        if isinstance(cfg, DictConfig):
            cfg = {k: cfg._get_node(k) for k in cfg if k != "hydra"}
        found: set[str] = set()
        for key, value in (cfg or {}).items():
            try:
                plain = _plain(value)
            except Exception:  # an interpolation that cannot be resolved here: read as written
                plain = _plain(value, resolve=False)
            found.update(_secret_values({key: plain}))
        return cls(tuple(sorted((v for v in found if len(v) >= MIN_LENGTH), key=len, reverse=True)))

    def __or__(self, other: Secrets) -> Secrets:
        return Secrets(tuple(sorted(set(self.values) | set(other.values), key=len, reverse=True)))

    def text(self, text: str) -> str:
        """``text`` with every secret value in it replaced by ``MASK``."""
        for value in self.values:
            text = text.replace(value, MASK)
        return text

    def overrides(self, overrides: Iterable[str]) -> list[str]:
        """Command-line overrides with secret values masked (by key, and by value)."""
        return [self.text(masked_override(str(o))) for o in overrides]

    def node(self, node: Any) -> Any:
        """A plain copy of a config (or Hydra's config) with every secret masked, strings included."""
        node = masked(node)
        if isinstance(node, Mapping):
            return {k: self.node(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.node(v) for v in node]
        if isinstance(node, str):
            return self.text(masked_override(node))
        return node


class MaskingRecords:
    """A log record factory that masks secret values in every message, whichever handler writes it.

    Example::

        mask_log(Secrets.of(cfg))   # from now on no log line of this process shows them
    """

    def __init__(self, base: Any, secrets: Secrets):
        self.base = base
        self.secrets = secrets

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        if self.secrets.values:
            try:
                message = record.getMessage()
            except Exception:  # a malformed call: logging reports it itself
                return record
            clean = self.secrets.text(message)
            if clean != message:
                record.msg, record.args = clean, ()
        return record


def mask_log(secrets: Secrets) -> None:
    """Mask ``secrets`` in every log record of this process from now on (adding to those already masked)."""
    current = logging.getLogRecordFactory()
    if isinstance(current, MaskingRecords):
        current.secrets = current.secrets | secrets
    else:
        logging.setLogRecordFactory(MaskingRecords(current, secrets))


def mask_yaml(path: Path, secrets: Secrets) -> None:
    """Rewrite a YAML file Hydra wrote (``.hydra/config.yaml``, ``multirun.yaml``) with secrets masked.

    The file is replaced at once (never half written) and only when a secret is in it.
    """
    try:
        written = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:  # absent, or not Hydra's YAML: nothing of ours to mask
        return
    clean = secrets.node(written)
    if clean != written:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        OmegaConf.save(OmegaConf.create(clean), temporary)
        os.replace(temporary, path)
