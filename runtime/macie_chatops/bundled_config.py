"""The bundled config document (``config.json`` beside the package, or $MACIE_CHATOPS_CONFIG_JSON), read without the
config's models.

``config.load_bundled_config`` builds the whole ``Config`` from it. The reconciler and the reminders need a few of its
values and no pydantic model otherwise (their inputs are a schedule's event, Macie's API and the state table), so they
read them here and their cold starts load no pydantic (docs/architecture.md §6). The document is our own artifact,
validated when it was written (``Config.to_json`` at synth time); like ``load_bundled_config``, this reads it without
validating it again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ReconcilerSettings:
    """What the reconciler reads of the config: ``Config.macie_administrator_id``, ``Config.regions`` and
    ``Config.reconcile.backfill_days`` (tests/unit/test_bundled_config.py holds them equal to the Config's)."""

    administrator_id: str
    regions: tuple[str, ...]
    backfill_days: int

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ReconcilerSettings:
        # Config.to_json leaves macie_administrator out when it is None (exclude_none): the security account is it.
        administrator = document.get("macie_administrator") or document["security_account"]
        administrator_id, regions = administrator["id"], document["regions"]
        backfill_days = document["reconcile"]["backfill_days"]
        if not isinstance(administrator_id, str) or not isinstance(regions, list) or type(backfill_days) is not int:
            raise TypeError("macie_administrator/security_account id, regions or reconcile.backfill_days")
        if not all(isinstance(region, str) for region in regions):
            raise TypeError("regions: not a list of names")
        return cls(administrator_id, tuple(regions), backfill_days)


def reconciler_settings() -> ReconcilerSettings:
    """The reconciler's settings from the bundled config; a located ``ConfigError`` when it is not one."""
    path, document = bundled_document()
    try:
        return ReconcilerSettings.from_document(document)
    except (KeyError, TypeError) as exc:
        not_a_bundled_config(path, exc)


@dataclass(frozen=True)
class ReminderSlackSettings:
    """The config's ``slack`` settings the reminders read (``reminders.ReminderSlackSettings``)."""

    remind_after_hours: int
    max_reminders: int
    escalate_after_hours: int
    escalation_channel: str | None


@dataclass(frozen=True)
class TeamApprovers:
    approvers: tuple[str, ...]


@dataclass(frozen=True)
class ReminderConfig:
    """What the reminders read of the config (``reminders.ReminderConfig``; tests/unit/test_bundled_config.py holds it
    equal to the Config's)."""

    slack: ReminderSlackSettings
    teams: Mapping[str, TeamApprovers]

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ReminderConfig:
        slack = document["slack"]
        # Config.to_json leaves escalation_channel out when it is None (exclude_none), and writes every default.
        hours = (slack["remind_after_hours"], slack["max_reminders"], slack["escalate_after_hours"])
        channel = slack.get("escalation_channel")
        if any(type(value) is not int for value in hours) or not isinstance(channel, str | None):
            raise TypeError("slack: remind_after_hours, max_reminders, escalate_after_hours or escalation_channel")
        teams = {name: TeamApprovers(_names(team["approvers"])) for name, team in document["teams"].items()}
        return cls(ReminderSlackSettings(*hours, escalation_channel=channel), teams)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("approvers: not a list of ids")
    return tuple(value)


def reminder_config() -> ReminderConfig:
    """The reminders' reading of the bundled config; a located ``ConfigError`` when it is not one."""
    path, document = bundled_document()
    try:
        return ReminderConfig.from_document(document)
    except (KeyError, TypeError, AttributeError) as exc:
        not_a_bundled_config(path, exc)
