"""approvals_required (the two-person rule): merged organisation -> team -> account, validated with located
errors, carried by the decision into the finding's summary, and shown on the review message."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config, ConfigError, Policy, PolicyOverride, Severity, parse_config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, parse_event
from macie_chatops.slack_messages import build_approved_message, build_review_message
from macie_chatops.summary import FindingSummary
from tests.conftest import load_event

TEMPLATE = """\
version: 1
organization_id: o-a1b2c3d4e5
security_account: {{id: "210987654321", region: us-east-1}}
regions: [us-east-1]
slack: {{team_id: T0EXAMPLE, secret_name: macie-chatops/slack}}
policy:
  actions: {{SensitiveData:S3Object/Personal: review}}
{organisation}
teams:
  alpha:
    channel: C0ALPHA
    approvers: [U0ALICE, U0BOB, S0SECOPS]
{team}
  beta:
    channel: C0BETA
    approvers: [U0CAROL, U0DAVE]
accounts:
  - {{id: "111111111111", name: plain, team: alpha}}
  - {{id: "222222222222", name: strict, team: alpha{account}}}
  - {{id: "333333333333", name: solo, team: beta}}
deployment: {{permission_model: SELF_MANAGED, call_as: SELF}}
"""


def config_with(organisation: str = "", team: str = "", account: str = "") -> Config:
    return parse_config(TEMPLATE.format(organisation=organisation, team=team, account=account), "accounts.yaml")


def errors_of(organisation: str = "", team: str = "", account: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_with(organisation, team, account)
    return [str(issue) for issue in caught.value.issues]


def needs(config: Config, account_id: str) -> tuple[int, int, int]:
    account = config.account(account_id)
    assert account is not None
    policy = config.policy_for(account)
    return (
        policy.approvals_for(Severity.LOW),
        policy.approvals_for(Severity.MEDIUM),
        policy.approvals_for(Severity.HIGH),
    )


# --- merging -------------------------------------------------------------------------------------------------


def test_the_default_is_one_approver_everywhere() -> None:
    # GIVEN no approvals_required anywhere WHEN the policies are merged THEN every severity needs one approver
    config = config_with()
    assert needs(config, "111111111111") == (1, 1, 1)
    assert needs(config, "222222222222") == (1, 1, 1)


def test_a_number_at_the_organisation_applies_to_every_account() -> None:
    config = config_with(organisation="  approvals_required: 2", team="", account="")
    assert needs(config, "111111111111") == (2, 2, 2)
    assert needs(config, "333333333333") == (2, 2, 2)


def test_a_team_map_overrides_the_organisation_per_severity() -> None:
    # GIVEN the organisation asks 2 everywhere, the team 3 for High and 1 for Low
    config = config_with(
        organisation="  approvals_required: 2", team="    policy: {approvals_required: {High: 3, Low: 1}}"
    )
    # THEN the unlisted severity (Medium) keeps the organisation's number
    assert needs(config, "111111111111") == (1, 2, 3)


def test_an_account_number_replaces_the_team_map() -> None:
    config = config_with(
        team="    policy: {approvals_required: {High: 3}}", account=", policy: {approvals_required: 2}"
    )
    assert needs(config, "111111111111") == (1, 1, 3)  # the team's map; unlisted severities need one
    assert needs(config, "222222222222") == (2, 2, 2)  # the account's number replaces it whole


def test_an_account_map_merges_over_the_team_map() -> None:
    config = config_with(
        team="    policy: {approvals_required: {High: 3, Medium: 2}}",
        account=", policy: {approvals_required: {Medium: 1}}",
    )
    assert needs(config, "222222222222") == (1, 1, 3)


def test_a_team_can_lower_the_organisations_number() -> None:
    config = config_with(organisation="  approvals_required: 2", team="    policy: {approvals_required: 1}")
    assert needs(config, "111111111111") == (1, 1, 1)


def test_merging_in_code_matches_merging_from_yaml() -> None:
    # GIVEN the same levels built as models
    policy = Policy(approvals_required=2).merged(PolicyOverride(approvals_required={"High": 3}))
    # THEN severity names became Severity members and the map is complete
    assert policy.approvals_required == {Severity.LOW: 2, Severity.MEDIUM: 2, Severity.HIGH: 3}


# --- validation: located errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be from 1 to 3 approvers; got 0"),
        ("4", "must be from 1 to 3 approvers; got 4"),
        ("'2'", "must be a number of approvers from 1 to 3 (unquoted)"),
        ("true", "must be a number of approvers from 1 to 3 (unquoted)"),
        ("2.0", "must be a number of approvers from 1 to 3 (unquoted)"),
        ("{}", "an empty map"),
        ("{High: 4}", "High: must be from 1 to 3 approvers; got 4"),
        ("{High: '2'}", "High: must be a number of approvers"),
        ("{Critical: 2}", "'Critical' is not one of 'Low', 'Medium' or 'High'"),
        ("[2]", "must be a number of approvers from 1 to 3 (unquoted)"),
    ],
)
def test_a_bad_value_is_one_located_error(value: str, message: str) -> None:
    # GIVEN approvals_required written wrong at the organisation level (line 8)
    errors = errors_of(organisation=f"  approvals_required: {value}")
    # THEN exactly one error, on its line, naming the field and what is wrong
    assert len(errors) == 1, errors
    assert errors[0].startswith("accounts.yaml:8: policy.approvals_required: ")
    assert message in errors[0]


def test_a_bad_value_at_the_account_level_is_located_on_the_accounts_line() -> None:
    errors = errors_of(account=", policy: {approvals_required: 5}")
    assert errors == ["accounts.yaml:19: accounts[1].policy.approvals_required: must be from 1 to 3 approvers; got 5"]


def test_a_team_with_too_few_listed_approvers_and_no_group_is_refused() -> None:
    # GIVEN team beta lists two users and no group, and the organisation asks three approvers for High
    errors = errors_of(organisation="  approvals_required: {High: 3}")
    # THEN its approvers line says which account could never be completed
    assert errors == [
        "accounts.yaml:16: teams.beta.approvers: account solo needs 3 different approvers (approvals_required) "
        "but team beta lists 2 and no user group: no review could be completed"
    ]


def test_a_team_with_a_group_may_need_more_approvers_than_it_lists() -> None:
    # GIVEN team alpha lists a user group: its members are only known when someone clicks
    config = config_with(team="    policy: {approvals_required: 3}")
    assert needs(config, "111111111111") == (3, 3, 3)


def test_severities_below_min_severity_do_not_count_towards_the_shortfall() -> None:
    # GIVEN the accounts ignore everything below High, and only Low needs three approvers
    config = config_with(organisation="  min_severity: High\n  approvals_required: {Low: 3}")
    assert needs(config, "333333333333") == (3, 1, 1)


def test_the_json_bundle_keeps_the_policy() -> None:
    from macie_chatops.config import config_from_json

    config = config_with(team="    policy: {approvals_required: {High: 2}}")
    assert config_from_json(config.to_json()) == config


# --- the decision and the summary ----------------------------------------------------------------------------


def personal(account: str, severity: str, score: int) -> Finding:
    event: dict[str, Any] = copy.deepcopy(load_event("personal-review"))
    event["detail"].update(accountId=account, severity={"score": score, "description": severity})
    finding = parse_event(event)
    assert isinstance(finding, Finding)
    return finding


def test_the_decision_carries_the_count_into_the_summary() -> None:
    # GIVEN High findings need two approvers in team alpha
    config = config_with(team="    policy: {approvals_required: {High: 2}}")
    # WHEN a High and a Low review finding are decided
    high = personal("111111111111", "High", 3)
    low = personal("111111111111", "Low", 1)
    high_decision, low_decision = decide(high, config), decide(low, config)
    # THEN the count is the severity's, and the summary stored on the record keeps it
    assert (high_decision.approvals_required, low_decision.approvals_required) == (2, 1)
    summary = FindingSummary.of(high, high_decision)
    assert summary.approvals_required == 2
    assert FindingSummary.from_dict(summary.to_dict()) == summary


def test_a_summary_stored_before_the_count_existed_needs_one_approver() -> None:
    config = config_with()
    finding = personal("111111111111", "High", 3)
    stored = FindingSummary.of(finding, decide(finding, config)).to_dict()
    del stored["approvals_required"]
    assert FindingSummary.from_dict(stored).approvals_required == 1


# --- the review message --------------------------------------------------------------------------------------


@pytest.fixture
def two_person_summary() -> FindingSummary:
    config = config_with(team="    policy: {approvals_required: 2}")
    finding = personal("111111111111", "High", 3)
    return FindingSummary.of(finding, decide(finding, config))


def status_of(message: dict[str, Any]) -> str:
    return str(message["blocks"][1]["text"]["text"])


def test_a_one_approver_review_message_is_unchanged(two_person_summary: FindingSummary) -> None:
    one = dataclasses.replace(two_person_summary, approvals_required=1)
    status = status_of(build_review_message(one, reason="r").to_dict())
    assert status.endswith("An approver of this team can quarantine the object or dismiss the finding.")
    assert "approvals" not in status


def test_the_review_message_says_how_many_approvers_and_who_so_far(two_person_summary: FindingSummary) -> None:
    # GIVEN a finding that needs two approvers
    fresh = status_of(build_review_message(two_person_summary, reason="r").to_dict())
    assert "*2 different approvers* of this team must agree" in fresh
    # WHEN one approver approved and another dismissed
    message = build_review_message(two_person_summary, reason="r", approvals=["U0ALICE"], dismissals=["U0BOB"])
    body = message.to_dict()
    status = status_of(body)
    # THEN both counts are shown with mentions, and the buttons are still there
    assert "*1 of 2 approvals* by <@U0ALICE>" in status
    assert "*1 of 2 dismissals* by <@U0BOB>" in status
    assert [e["action_id"] for e in body["blocks"][-1]["elements"]] == [names.ACTION_REMEDIATE, names.ACTION_DISMISS]


def test_an_approver_that_is_not_a_user_id_is_escaped(two_person_summary: FindingSummary) -> None:
    status = status_of(build_review_message(two_person_summary, reason="r", approvals=["<!channel> *x*"]).to_dict())
    assert "<!channel>" not in status and "&lt;!channel&gt;" in status


def test_the_approved_message_names_every_approver(two_person_summary: FindingSummary) -> None:
    body = build_approved_message(
        two_person_summary, approver="U0BOB", at="2026-01-01T00:00:00Z", earlier_approvers=["U0ALICE"]
    ).to_dict()
    assert status_of(body).startswith("Approved <@U0ALICE> and <@U0BOB> on ")
