"""accounts.yaml validation: every mistake is reported as FILE:LINE: field: message, and merge order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macie_chatops.config import (
    Config,
    ConfigError,
    Severity,
    config_from_json,
    json_schema,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
version: 1
organization_id: o-a1b2c3d4e5
security_account: {id: "210987654321", region: us-east-1}
regions: [us-east-1, eu-west-1]
slack: {team_id: T0EXAMPLE, secret_name: macie-chatops/slack}
policy:
  min_severity: Low
  include_samples: false
  actions:
    SensitiveData:S3Object/Credentials: auto
    SensitiveData:S3Object/Financial: {High: auto, Medium: review}
quarantine: {retention_days: 90, encryption: kms}
teams:
  payments:
    channel: C0PAYMENTS
    approvers: [U0ALICE, S0SECOPS]
    policy: {actions: {SensitiveData:S3Object/Personal: auto}}
  analytics:
    channel: C0ANALYTIC
    approvers: [U0CAROL]
accounts:
  - {id: "345678901234", name: payments-prod, team: payments}
  - {id: "456789012345", name: analytics-dev, team: analytics, policy: {min_severity: High}}
deployment:
  permission_model: SERVICE_MANAGED
  call_as: DELEGATED_ADMIN
  organizational_units: [ou-abcd-12345678]
"""


SECURITY_LINE = 'security_account: {id: "210987654321", region: us-east-1}\n'


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "accounts.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_valid_example_parses() -> None:
    # GIVEN a well-formed file WHEN it is parsed THEN every section is typed
    config = parse_config(VALID)
    assert config.security_account.id == "210987654321"
    assert config.teams["payments"].approver_users == {"U0ALICE"}
    assert config.teams["payments"].approver_groups == {"S0SECOPS"}
    assert [a.id for a in config.accounts] == ["345678901234", "456789012345"]


def test_shipped_accounts_yaml_is_valid() -> None:
    config = load_config(ROOT / "accounts.yaml")
    assert len(config.accounts) >= 3 and len(config.teams) >= 2


# (what is replaced, replacement, expected "FILE:LINE: field:" prefix, words expected in the message)
MISTAKES = [
    pytest.param(
        "regions: [us-east-1, eu-west-1]\n",
        "regions: [us-east-1, eu-west-1\n",
        "accounts.yaml:4: (syntax):",  # where the '[' was opened, not line 5 where the parser noticed
        "YAML syntax error",
        id="yaml-syntax",
    ),
    pytest.param(
        "  min_severity: Low\n",
        "  min_severity: Low\n  min_severty: High\n",
        "accounts.yaml:8: policy.min_severty:",
        "unknown key",
        id="typo-key",
    ),
    pytest.param(
        '- {id: "345678901234", name: payments-prod',
        "- {id: 345678901234, name: payments-prod",
        "accounts.yaml:22: accounts[0].id:",
        "must be quoted",
        id="unquoted-account-id",
    ),
    pytest.param(
        '- {id: "345678901234", name: payments-prod',
        "- {id: 012345678901, name: payments-prod",
        "accounts.yaml:22: accounts[0].id:",
        "must be quoted",
        id="unquoted-leading-zero-id",
    ),
    pytest.param(
        '- {id: "345678901234", name: payments-prod',
        '- {id: "34567890123", name: payments-prod',
        "accounts.yaml:22: accounts[0].id:",
        "expected form",
        id="short-account-id",
    ),
    pytest.param(
        '- {id: "456789012345", name: analytics-dev',
        '- {id: "345678901234", name: analytics-dev',
        "accounts.yaml:23: accounts[1].id:",
        "listed twice",
        id="duplicate-account",
    ),
    pytest.param(
        "name: analytics-dev, team: analytics,",
        "name: analytics-dev, team: data,",
        "accounts.yaml:23: accounts[1].team:",
        "team 'data' is not defined",
        id="undefined-team",
    ),
    pytest.param(
        "    SensitiveData:S3Object/Credentials: auto\n",
        "    SensitiveData:S3Object/Credential: auto\n",
        "accounts.yaml:10: policy.actions.SensitiveData:S3Object/Credential:",
        "must be 'SensitiveData:S3Object/Credentials'",
        id="unknown-finding-type",
    ),
    pytest.param(
        "    SensitiveData:S3Object/Credentials: auto\n",
        "    SensitiveData:S3Object/Credentials: quarantine\n",
        "accounts.yaml:10: policy.actions.SensitiveData:S3Object/Credentials:",
        "must be 'auto', 'review', 'notify' or 'ignore'; got 'quarantine'",
        id="unknown-action",
    ),
    pytest.param(
        "{High: auto, Medium: review}",
        "{Critical: auto, Medium: review}",
        "accounts.yaml:11: policy.actions.SensitiveData:S3Object/Financial.Critical:",
        "is not one of",
        id="unknown-severity-in-map",
    ),
    pytest.param(
        "  min_severity: Low\n",
        "  min_severity: low\n",
        "accounts.yaml:7: policy.min_severity:",
        "is not one of 'Low', 'Medium' or 'High'",
        id="lowercase-severity",
    ),
    pytest.param(
        "    channel: C0PAYMENTS\n",
        "    channel: '#payments'\n",
        "accounts.yaml:15: teams.payments.channel:",
        "not a Slack channel id",
        id="channel-name",
    ),
    pytest.param(
        "approvers: [U0ALICE, S0SECOPS]",
        "approvers: [alice@example.com, S0SECOPS]",
        "accounts.yaml:16: teams.payments.approvers:",
        "not a Slack user id",
        id="approver-email",
    ),
    pytest.param(
        "    approvers: [U0CAROL]\n",
        "    approvers: []\n",
        "accounts.yaml:20: teams.analytics.approvers:",
        "at least 1",
        id="no-approvers",
    ),
    pytest.param(
        "regions: [us-east-1, eu-west-1]",
        "regions: [us-east-1, eu-west1]",
        "accounts.yaml:4: regions:",
        "not an AWS region",
        id="bad-region",
    ),
    pytest.param(
        'security_account: {id: "210987654321", region: us-east-1}\n',
        "",
        "accounts.yaml:1: security_account:",
        "required key is missing",
        id="security-account-missing",
    ),
    pytest.param(
        "retention_days: 90",
        "retention_days: -5",
        "accounts.yaml:12: quarantine.retention_days:",
        "greater than or equal to 1",
        id="negative-retention",
    ),
    pytest.param(
        "retention_days: 90",
        'retention_days: "90 days"',
        "accounts.yaml:12: quarantine.retention_days:",
        "integer",
        id="retention-not-a-number",
    ),
    pytest.param(
        "  include_samples: false\n",
        "  include_samples: 'no'\n",
        "accounts.yaml:8: policy.include_samples:",
        "boolean",
        id="quoted-boolean",
    ),
    pytest.param(
        "  call_as: DELEGATED_ADMIN\n",
        "  call_as: ADMIN\n",
        "accounts.yaml:26: deployment.call_as:",
        "DELEGATED_ADMIN",
        id="bad-call-as",
    ),
    pytest.param(
        "organization_id: o-a1b2c3d4e5",
        "organization_id: a1b2c3d4e5",
        "accounts.yaml:2: organization_id:",
        "expected form",
        id="bad-org-id",
    ),
    pytest.param(
        "team: analytics, policy",
        "team: analytics, regions: [ap-south-1], policy",
        "accounts.yaml:23: accounts[1].regions[0]:",
        "not in the top-level regions",
        id="account-region-not-listed",
    ),
    pytest.param(
        "  payments:\n",
        "  payments:\n    channel: C0OTHER\n",
        "accounts.yaml:16: teams.payments.channel:",
        "duplicate key",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        "slack: {team_id: T0EXAMPLE, secret_name: macie-chatops/slack}",
        "slack: {team_id: my-workspace, secret_name: macie-chatops/slack}",
        "accounts.yaml:5: slack.team_id:",
        "expected form",
        id="bad-slack-team",
    ),
    pytest.param(
        SECURITY_LINE,
        SECURITY_LINE + "macie_administrator: {id: 111122223333}\n",
        "accounts.yaml:4: macie_administrator.id:",
        "must be quoted",
        id="unquoted-administrator-id",
    ),
    pytest.param(
        SECURITY_LINE,
        SECURITY_LINE + 'macie_administrator: {id: "11112222333"}\n',
        "accounts.yaml:4: macie_administrator.id:",
        "expected form",
        id="short-administrator-id",
    ),
    pytest.param(
        SECURITY_LINE,
        SECURITY_LINE + "macie_administrator: {}\n",
        "accounts.yaml:4: macie_administrator.id:",
        "required key is missing",
        id="administrator-without-id",
    ),
    pytest.param(
        SECURITY_LINE,
        SECURITY_LINE + 'macie_administrator:\n  id: "111122223333"\n  region: us-east-1\n',
        "accounts.yaml:6: macie_administrator.region:",
        "unknown key",
        id="administrator-unknown-key",
    ),
    pytest.param(
        SECURITY_LINE,
        SECURITY_LINE + 'macie_administrator: "111122223333"\n',
        "accounts.yaml:4: macie_administrator:",
        "valid dictionary",
        id="administrator-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("old", "new", "prefix", "words"), MISTAKES)
def test_each_mistake_is_located(old: str, new: str, prefix: str, words: str) -> None:
    # GIVEN the valid file with one mistake
    assert old in VALID
    broken = VALID.replace(old, new, 1)
    # WHEN it is validated
    errors = errors_of(broken)
    # THEN one message names the file, the line and the field, and says what is wrong
    matching = [e for e in errors if e.startswith(prefix)]
    assert matching, f"no error starting with {prefix!r} in {errors}"
    assert any(words in e for e in matching), f"{words!r} not in {matching}"


def test_macie_administrator_defaults_to_the_security_account() -> None:
    # GIVEN no macie_administrator WHEN parsed THEN the security account is the administrator
    config = parse_config(VALID)
    assert config.macie_administrator is None
    assert config.macie_administrator_id == "210987654321"
    assert config.administrator_is_security_account


def test_macie_administrator_names_another_account() -> None:
    # GIVEN an organisation whose Macie administrator is not the pipeline's account
    config = parse_config(VALID.replace(SECURITY_LINE, SECURITY_LINE + 'macie_administrator: {id: "111122223333"}\n'))
    # THEN that account is the administrator, and it survives the bundled JSON
    assert config.macie_administrator_id == "111122223333"
    assert not config.administrator_is_security_account
    assert config_from_json(config.to_json()) == config


def test_macie_administrator_may_be_the_security_account_or_a_member() -> None:
    # Naming the security account (the default, said out loud) or a member (it owns buckets too) is valid.
    same = parse_config(VALID.replace(SECURITY_LINE, SECURITY_LINE + 'macie_administrator: {id: "210987654321"}\n'))
    assert same.administrator_is_security_account
    member = parse_config(VALID.replace(SECURITY_LINE, SECURITY_LINE + 'macie_administrator: {id: "345678901234"}\n'))
    assert member.macie_administrator_id == "345678901234"


def test_security_account_may_be_a_member() -> None:
    # GIVEN the security account listed under accounts: (it owns buckets of its own)
    text = VALID.replace(
        '- {id: "456789012345", name: analytics-dev',
        '- {id: "210987654321", name: security-tooling, team: analytics}\n  - {id: "456789012345", name: analytics-dev',
    )
    # WHEN parsed THEN it is a member like any other, with its team and the regions it inherits
    config = parse_config(text)
    account = config.account("210987654321")
    assert account is not None and account.team == "analytics"
    assert config.regions_for(account) == ("us-east-1", "eu-west-1")
    # AND listing it twice is still reported, at the second entry
    twice = text.replace("name: analytics-dev, team", "name: x, team", 1).replace(
        '- {id: "456789012345", name: x', '- {id: "210987654321", name: x'
    )
    assert any(e.startswith("accounts.yaml:24: accounts[2].id:") and "listed twice" in e for e in errors_of(twice))


def test_administrator_forwarding_regions_skip_those_where_it_is_a_member() -> None:
    # GIVEN the administrator (the security account) not listed as a member: it forwards in every region
    assert parse_config(VALID).administrator_forwarding_regions() == ("us-east-1", "eu-west-1")
    # WHEN it is also a member in eu-west-1 only THEN its member rule forwards there, and its own rule elsewhere
    member = VALID.replace(
        '- {id: "456789012345", name: analytics-dev',
        '- {id: "210987654321", name: security-tooling, team: analytics, regions: [eu-west-1]}\n'
        '  - {id: "456789012345", name: analytics-dev',
    )
    assert parse_config(member).administrator_forwarding_regions() == ("us-east-1",)
    # AND an administrator that is a member in every region needs no rule of its own
    everywhere = VALID.replace(SECURITY_LINE, SECURITY_LINE + 'macie_administrator: {id: "345678901234"}\n')
    assert parse_config(everywhere).administrator_forwarding_regions() == ()


def test_several_mistakes_are_all_reported() -> None:
    broken = VALID.replace("channel: C0ANALYTIC", "channel: '#analytics'").replace("team: analytics,", "team: nobody,")
    errors = errors_of(broken)
    assert any("teams.analytics.channel" in e for e in errors)
    assert len(errors) >= 1


def test_empty_and_non_mapping_documents() -> None:
    assert errors_of("") == ["accounts.yaml:1: (document): the file is empty"]
    assert errors_of("- a\n- b\n") == ["accounts.yaml:1: (document): the top level must be a mapping"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml")
    assert "cannot read" in str(caught.value)


def test_service_managed_needs_ous() -> None:
    errors = errors_of(VALID.replace("  organizational_units: [ou-abcd-12345678]\n", ""))
    assert any("deployment:" in e and "organizational_units" in e for e in errors)


def test_auto_deploy_is_off_by_default_and_strict() -> None:
    # GIVEN no auto_deploy: off (accounts.yaml is the only source of StackSet targets, architecture §19)
    assert parse_config(VALID).deployment.auto_deploy is False
    on = VALID.replace(
        "  organizational_units: [ou-abcd-12345678]\n",
        "  organizational_units: [ou-abcd-12345678]\n  auto_deploy: true\n",
    )
    assert parse_config(on).deployment.auto_deploy is True
    # WHEN it is not a boolean  THEN a located error on the field, with its line
    errors = errors_of(on.replace("auto_deploy: true", "auto_deploy: 'true'"))
    line = on.splitlines().index("  auto_deploy: true") + 1
    assert len(errors) == 1 and errors[0].startswith(f"accounts.yaml:{line}: deployment.auto_deploy:"), errors


def test_auto_deploy_needs_service_managed() -> None:
    text = VALID.replace("permission_model: SERVICE_MANAGED", "permission_model: SELF_MANAGED").replace(
        "  organizational_units: [ou-abcd-12345678]\n", "  auto_deploy: true\n"
    )
    errors = errors_of(text)
    assert any("deployment:" in e and "auto_deploy applies to SERVICE_MANAGED only" in e for e in errors), errors


def test_policy_merge_order_organisation_team_account() -> None:
    # GIVEN organisation defaults, a team override and an account override
    config = parse_config(VALID)
    payments = config.account("345678901234")
    analytics = config.account("456789012345")
    assert payments is not None and analytics is not None
    # WHEN the effective policies are computed
    payments_policy = config.policy_for(payments)
    analytics_policy = config.policy_for(analytics)
    # THEN the team override wins over the organisation for that type only
    assert payments_policy.actions["SensitiveData:S3Object/Personal"] == "auto"
    assert payments_policy.actions["SensitiveData:S3Object/Credentials"] == "auto"
    assert payments_policy.min_severity is Severity.LOW
    # AND the account override wins over both, leaving the rest inherited
    assert analytics_policy.min_severity is Severity.HIGH
    assert "SensitiveData:S3Object/Personal" not in analytics_policy.actions
    assert analytics_policy.actions["SensitiveData:S3Object/Financial"] == {
        Severity.HIGH: "auto",
        Severity.MEDIUM: "review",
    }


def test_account_override_beats_team_override() -> None:
    text = VALID.replace(
        '- {id: "345678901234", name: payments-prod, team: payments}',
        '- {id: "345678901234", name: payments-prod, team: payments, '
        "policy: {actions: {SensitiveData:S3Object/Personal: notify}}}",
    )
    config = parse_config(text)
    account = config.account("345678901234")
    assert account is not None
    assert config.policy_for(account).actions["SensitiveData:S3Object/Personal"] == "notify"


def test_bundled_json_round_trip() -> None:
    # GIVEN the validated YAML WHEN it is turned into the bundled JSON and read back THEN it is equal
    config = parse_config(VALID)
    assert config_from_json(config.to_json()) == config


def test_bundled_json_errors_are_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_json('{"version": 1}', "config.json")
    assert all(str(i).startswith("config.json:") for i in caught.value.issues)
    with pytest.raises(ConfigError):
        config_from_json("not json", "config.json")


def test_committed_json_schema_is_current() -> None:
    # The schema editors use must be the one the model generates (`make schema` regenerates it).
    committed = json.loads((ROOT / "accounts.schema.json").read_text(encoding="utf-8"))
    assert committed == json_schema()


def test_accounts_yaml_points_editors_at_the_schema() -> None:
    first = (ROOT / "accounts.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./accounts.schema.json"


def test_config_is_immutable() -> None:
    config = parse_config(VALID)
    with pytest.raises(ValueError, match="frozen"):
        config.organization_id = "o-zzzzzzzzzz"  # type: ignore[misc]
    assert isinstance(config, Config)
