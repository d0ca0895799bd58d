"""The bundled config read without its models: the reconciler's settings and the reminders' config, equal to the
Config's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops.bundled_config import ReconcilerSettings, ReminderConfig, reconciler_settings, reminder_config
from macie_chatops.config import Config, ConfigError, load_config, parse_config
from tests.unit.test_config_trusted import EVERY_SHAPE

ROOT = Path(__file__).resolve().parents[2]


def expected(config: Config) -> ReconcilerSettings:
    return ReconcilerSettings(config.macie_administrator_id, config.regions, config.reconcile.backfill_days)


CONFIGS = pytest.mark.parametrize(
    "config",
    [
        # A Macie administrator of its own, reminder settings and an escalation channel given
        parse_config(EVERY_SHAPE, now=datetime(2099, 6, 1, tzinfo=UTC)),
        # The security account is the administrator; reconcile and the reminders defaulted, no escalation channel
        load_config(ROOT / "accounts.yaml"),
    ],
    ids=["every-shape", "accounts.yaml"],
)


@CONFIGS
def test_the_reconcilers_settings_are_the_configs(config: Config) -> None:
    # GIVEN a validated config as the bundle holds it WHEN the reconciler reads its settings from the document
    settings = ReconcilerSettings.from_document(json.loads(config.to_json()))
    # THEN they are the Config's: the administrator (its own or the security account), the regions, the backfill
    assert settings == expected(config)


@CONFIGS
def test_the_reminders_config_is_the_configs(config: Config) -> None:
    # GIVEN a validated config as the bundle holds it WHEN the reminders read their part of the document
    read = ReminderConfig.from_document(json.loads(config.to_json()))
    # THEN every value the reminders use is the Config's: the reminder settings, the teams and their approvers
    for name in ("remind_after_hours", "max_reminders", "escalate_after_hours", "escalation_channel"):
        assert getattr(read.slack, name) == getattr(config.slack, name), name
    assert {team: entry.approvers for team, entry in read.teams.items()} == {
        team: entry.approvers for team, entry in config.teams.items()
    }


def test_the_bundle_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the bundle written as the CDK app writes it, named by the environment
    config = load_config(ROOT / "accounts.yaml")
    bundle = tmp_path / names.BUNDLED_CONFIG_FILE
    bundle.write_text(config.to_json(), encoding="utf-8")
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(bundle))
    # WHEN the reconciler and the reminders read it THEN they get the config's values
    assert reconciler_settings() == expected(config)
    assert reminder_config() == ReminderConfig.from_document(json.loads(config.to_json()))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"regions": ["us-east-1"]}',  # no security account, no reconcile section
        '{"security_account": {"id": 210987654321}, "regions": ["us-east-1"], "reconcile": {"backfill_days": 7}}',
        '{"security_account": {"id": "210987654321"}, "regions": "us-east-1", "reconcile": {"backfill_days": 7}}',
        '{"slack": {"remind_after_hours": "24", "max_reminders": 2, "escalate_after_hours": 72}, "teams": {}}',
        '{"slack": {"remind_after_hours": 24, "max_reminders": 2, "escalate_after_hours": 72}, "teams": []}',
        '{"slack": {"remind_after_hours": 24, "max_reminders": 2, "escalate_after_hours": 72},'
        ' "teams": {"payments": {"approvers": "U0ALICE"}}}',
    ],
)
def test_a_document_that_is_not_a_bundled_config_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    # GIVEN a file that is not what Config.to_json writes
    bundle = tmp_path / "config.json"
    bundle.write_text(text, encoding="utf-8")
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(bundle))
    # WHEN the reconciler or the reminders read it THEN the error names the file and says what it is not
    for read in (reconciler_settings, reminder_config):
        with pytest.raises(ConfigError) as caught:
            read()
        assert str(caught.value).startswith(f"{bundle}: (document): not a bundled config"), read.__name__


def test_a_missing_bundle_is_a_located_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(tmp_path / "absent.json"))
    for read in (reconciler_settings, reminder_config):
        with pytest.raises(ConfigError, match=r"absent\.json: \(file\): cannot read"):
            read()
