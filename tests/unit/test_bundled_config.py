"""The bundled config read without its models: the reconciler's settings, equal to the Config's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops.bundled_config import ReconcilerSettings, reconciler_settings
from macie_chatops.config import Config, ConfigError, load_config, parse_config
from tests.unit.test_config_trusted import EVERY_SHAPE

ROOT = Path(__file__).resolve().parents[2]


def expected(config: Config) -> ReconcilerSettings:
    return ReconcilerSettings(config.macie_administrator_id, config.regions, config.reconcile.backfill_days)


@pytest.mark.parametrize(
    "config",
    [
        parse_config(EVERY_SHAPE, now=datetime(2099, 6, 1, tzinfo=UTC)),  # a Macie administrator of its own
        load_config(ROOT / "accounts.yaml"),  # the security account is the administrator; reconcile defaulted
    ],
    ids=["every-shape", "accounts.yaml"],
)
def test_the_reconcilers_settings_are_the_configs(config: Config) -> None:
    # GIVEN a validated config as the bundle holds it WHEN the reconciler reads its settings from the document
    settings = ReconcilerSettings.from_document(json.loads(config.to_json()))
    # THEN they are the Config's: the administrator (its own or the security account), the regions, the backfill
    assert settings == expected(config)


def test_the_bundle_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the bundle written as the CDK app writes it, named by the environment
    config = load_config(ROOT / "accounts.yaml")
    bundle = tmp_path / names.BUNDLED_CONFIG_FILE
    bundle.write_text(config.to_json(), encoding="utf-8")
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(bundle))
    # WHEN the reconciler reads it THEN it gets the config's settings
    assert reconciler_settings() == expected(config)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"regions": ["us-east-1"]}',  # no security account, no reconcile section
        '{"security_account": {"id": 210987654321}, "regions": ["us-east-1"], "reconcile": {"backfill_days": 7}}',
        '{"security_account": {"id": "210987654321"}, "regions": "us-east-1", "reconcile": {"backfill_days": 7}}',
    ],
)
def test_a_document_that_is_not_a_bundled_config_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    # GIVEN a file that is not what Config.to_json writes
    bundle = tmp_path / "config.json"
    bundle.write_text(text, encoding="utf-8")
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(bundle))
    # WHEN the reconciler reads it THEN the error names the file and says what it is not
    with pytest.raises(ConfigError) as caught:
        reconciler_settings()
    assert str(caught.value).startswith(f"{bundle}: (document): not a bundled config")


def test_a_missing_bundle_is_a_located_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match=r"absent\.json: \(file\): cannot read"):
        reconciler_settings()
