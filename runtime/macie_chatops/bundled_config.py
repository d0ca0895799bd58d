"""The bundled config document (``config.json`` beside the package, or $MACIE_CHATOPS_CONFIG_JSON), read without the
config's models.

``config.load_bundled_config`` builds the whole ``Config`` from it. The reconciler and the reminders need a few of its
values and no pydantic model otherwise (their inputs are a schedule's event, Macie's API and the state table), so they
read them here and their cold starts load no pydantic (docs/architecture.md §6). The document is our own artifact,
validated when it was written (``Config.to_json`` at synth time); like ``load_bundled_config``, this reads it without
validating it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The document's reading lives apart from the dataclasses below (what config.load_bundled_config loads); re-exported.
from macie_chatops.bundled_document import bundled_config_path as bundled_config_path
from macie_chatops.bundled_document import bundled_document as bundled_document
from macie_chatops.bundled_document import not_a_bundled_config as not_a_bundled_config


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
