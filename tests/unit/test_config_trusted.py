"""The Lambdas' config: the bundled document built without validation, equal to the validated one."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops.config import (
    ConfigError,
    Severity,
    config_from_json,
    load_bundled_config,
    load_config,
    parse_config,
    trusted_config,
)

ROOT = Path(__file__).resolve().parents[2]

# Every shape a field can take: severity maps of actions and approvals, overrides at team and account level,
# dates, tuples, optional sections present and absent.
EVERY_SHAPE = """\
version: 1
organization_id: o-a1b2c3d4e5
security_account: {id: "210987654321", region: us-east-1}
macie_administrator: {id: "123456789012"}
regions: [us-east-1, eu-west-1]
slack:
  team_id: T0EXAMPLE
  secret_name: macie-chatops/slack
  remind_after_hours: 12
  escalation_channel: C0ESCALATE
policy:
  min_severity: Medium
  include_samples: true
  actions:
    SensitiveData:S3Object/Credentials: auto
    SensitiveData:S3Object/Financial: {High: auto, Medium: review}
    Policy:IAMUser/S3BucketPublic: review
  approvals_required: {High: 2}
quarantine:
  retention_days: 30
  break_glass_principals: ["arn:aws:iam::210987654321:role/breakglass"]
  multipart_threshold_mb: 64
teams:
  payments:
    channel: C0PAYMENTS
    approvers: [U0ALICE, U0BOB, S0SECOPS]
    policy: {actions: {SensitiveData:S3Object/Personal: auto}, approvals_required: 2}
  analytics:
    channel: C0ANALYTIC
    approvers: [U0CAROL, S0ANALYSTS]
accounts:
  - {id: "345678901234", name: payments-prod, team: payments, regions: [us-east-1]}
  - {id: "456789012345", name: analytics-dev, team: analytics, policy: {min_severity: High, include_samples: false}}
deployment:
  permission_model: SELF_MANAGED
  call_as: SELF
reconcile: {every_minutes: 30, backfill_days: 14}
exemptions:
  - account: "456789012345"
    bucket: analytics-fixtures
    prefix: synthetic/
    types: [SensitiveData:S3Object/Personal]
    until: 2099-12-31
    reason: generated test data
security_hub: {enabled: true}
"""


def test_every_shape_is_built_equal_to_the_validated_config() -> None:
    # GIVEN a validated config using every shape, as the bundle holds it
    config = parse_config(EVERY_SHAPE, now=datetime(2099, 6, 1, tzinfo=UTC))
    document = json.loads(config.to_json())
    # WHEN it is built without validation
    built = trusted_config(document)
    # THEN it equals both the validated config and the validated reading of the same document
    assert built == config == config_from_json(config.to_json())
    # AND the types are the validated ones: enum members (map keys too), dates, tuples
    assert built.policy.min_severity is Severity.MEDIUM
    assert built.policy.approvals_required == {Severity.HIGH: 2}
    assert all(isinstance(k, Severity) for k in built.policy.actions["SensitiveData:S3Object/Financial"])
    assert built.exemptions[0].until == date(2099, 12, 31) and isinstance(built.exemptions, tuple)
    assert isinstance(built.teams["payments"].approvers, tuple)
    # AND every account's merged policy is the same
    for mine, theirs in zip(built.accounts, config.accounts, strict=True):
        assert built.policy_for(mine) == config.policy_for(theirs)
        assert built.policy_for(mine).approvals_for(Severity.HIGH) == config.policy_for(theirs).approvals_for(
            Severity.HIGH
        )


def test_the_shipped_accounts_yaml_is_built_equal() -> None:
    config = load_config(ROOT / "accounts.yaml")
    assert trusted_config(json.loads(config.to_json())) == config


def test_the_bundled_file_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the bundle written as the CDK app writes it
    config = load_config(ROOT / "accounts.yaml")
    bundle = tmp_path / names.BUNDLED_CONFIG_FILE
    bundle.write_text(config.to_json(), encoding="utf-8")
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(bundle))
    # WHEN the Lambda loads it THEN it is the config
    assert load_bundled_config() == config


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"accounts": [{"policy": 3}]}', ""])
def test_a_document_that_is_not_a_bundled_config_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    bundle = tmp_path / "config.json"
    bundle.write_text(text, encoding="utf-8")
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(bundle))
    with pytest.raises(ConfigError) as caught:
        load_bundled_config()
    assert str(caught.value).startswith(f"{bundle}: (document): not a bundled config")


def test_a_missing_bundle_is_a_located_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_bundled_config()


def test_loading_the_bundle_builds_no_validation_schema(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter (this one has validated configs already) and a bundle
    bundle = tmp_path / "config.json"
    bundle.write_text(load_config(ROOT / "accounts.yaml").to_json(), encoding="utf-8")
    script = (
        "from macie_chatops.config import Config, Policy, load_bundled_config\n"
        "config = load_bundled_config()\n"
        "config.policy_for(config.accounts[0])\n"
        "print(Config.__pydantic_complete__, Policy.__pydantic_complete__)\n"
    )
    # WHEN the Lambda's path loads it and merges a policy
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={names.ENV_CONFIG_PATH: str(bundle), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # THEN no model built its validation schema (pydantic defers it to the first validation)
    assert out.split() == ["False", "False"]
