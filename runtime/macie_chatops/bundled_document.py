"""The bundled config's document (``config.json`` beside the package, or $MACIE_CHATOPS_CONFIG_JSON): its path, its JSON
object, and the located ``ConfigError`` of a document that is not one.

Apart from ``bundled_config`` (the reconciler's and the reminders' readings of it, with their dataclasses): the
handlers that build the whole ``Config`` (``config.load_bundled_config``) load only this (docs/architecture.md §6).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

from macie_chatops.names import BUNDLED_CONFIG_FILE, ENV_CONFIG_PATH


def bundled_config_path() -> Path:
    return Path(os.environ.get(ENV_CONFIG_PATH) or Path(__file__).resolve().parent / BUNDLED_CONFIG_FILE)


def bundled_document() -> tuple[Path, dict[str, Any]]:
    """The bundled config's path and its JSON object; a ``ConfigError`` located at the path when the file cannot be
    read or holds no JSON object."""
    path = bundled_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _config_error(path, "(file)", f"cannot read: {exc.strerror or exc}")
    try:
        document = json.loads(text)
    except ValueError as exc:
        not_a_bundled_config(path, exc)
    if not isinstance(document, dict):
        not_a_bundled_config(path, TypeError(f"a JSON {type(document).__name__}, not an object"))
    return path, document


def not_a_bundled_config(path: Path, exc: Exception) -> NoReturn:
    """Raise the located ``ConfigError`` of a document that is not what ``Config.to_json`` writes."""
    _config_error(path, "(document)", f"not a bundled config: {exc!r}")


def _config_error(path: Path, field: str, message: str) -> NoReturn:
    # The config module, and pydantic with it, loads on this failure path only.
    from macie_chatops.config import ConfigError, ConfigIssue

    raise ConfigError([ConfigIssue(str(path), None, field, message)]) from None
