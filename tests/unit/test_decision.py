"""decide(): the whole decision table, every finding type x severity x override, and the special rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from macie_chatops.config import Action, Config, parse_config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, Rejection, parse_event
from tests.conftest import load_event

CONFIG = parse_config(
    """\
version: 1
organization_id: o-a1b2c3d4e5
security_account: {id: "210987654321", region: us-east-1}
regions: [us-east-1, eu-west-1]
slack: {team_id: T0EXAMPLE, secret_name: macie-chatops/slack}
policy:
  actions:
    SensitiveData:S3Object/Credentials: auto
    SensitiveData:S3Object/Financial: {High: auto, Medium: review}
    SensitiveData:S3Object/Personal: review
    SensitiveData:S3Object/Multiple: review
    SensitiveData:S3Object/CustomIdentifier: review
teams:
  alpha: {channel: C0ALPHA, approvers: [U0ALICE]}
  beta:
    channel: C0BETA
    approvers: [S0BETA]
    policy:
      include_samples: true
      actions:
        SensitiveData:S3Object/Personal: notify
        SensitiveData:S3Object/Multiple: {High: auto}
accounts:
  - {id: "111111111111", name: plain, team: alpha}
  - {id: "222222222222", name: team-override, team: beta}
  - id: "333333333333"
    name: account-override
    team: alpha
    regions: [us-east-1]
    policy: {min_severity: Medium, actions: {SensitiveData:S3Object/CustomIdentifier: ignore}}
deployment: {permission_model: SELF_MANAGED, call_as: SELF}
""",
    "decision-test.yaml",
)

TYPES = ("Credentials", "Financial", "Personal", "Multiple", "CustomIdentifier")
SEVERITIES = ((1, "Low"), (2, "Medium"), (3, "High"))

# Expected actions, written out by hand from the policy above: (Low, Medium, High) per type.
EXPECTED: dict[str, dict[str, tuple[str, str, str]]] = {
    "111111111111": {  # organisation defaults only
        "Credentials": ("auto", "auto", "auto"),
        "Financial": ("ignore", "review", "auto"),
        "Personal": ("review", "review", "review"),
        "Multiple": ("review", "review", "review"),
        "CustomIdentifier": ("review", "review", "review"),
    },
    "222222222222": {  # team override: Personal notify, Multiple only High -> auto
        "Credentials": ("auto", "auto", "auto"),
        "Financial": ("ignore", "review", "auto"),
        "Personal": ("notify", "notify", "notify"),
        "Multiple": ("ignore", "ignore", "auto"),
        "CustomIdentifier": ("review", "review", "review"),
    },
    "333333333333": {  # account override: min Medium, CustomIdentifier ignore
        "Credentials": ("ignore", "auto", "auto"),
        "Financial": ("ignore", "review", "auto"),
        "Personal": ("ignore", "review", "review"),
        "Multiple": ("ignore", "review", "review"),
        "CustomIdentifier": ("ignore", "ignore", "ignore"),
    },
}
CHANNELS = {"111111111111": "C0ALPHA", "222222222222": "C0BETA", "333333333333": "C0ALPHA"}


def finding_event(account: str, finding_type: str, score: int, severity: str, **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event("personal-review"))
    event["detail"].update(
        accountId=account,
        type=f"SensitiveData:S3Object/{finding_type}",
        severity={"score": score, "description": severity},
        **detail,
    )
    return event


def decide_event(event: dict[str, Any], config: Config = CONFIG) -> Any:
    return decide(parse_event(event), config)


TABLE = [
    pytest.param(
        account,
        finding_type,
        score,
        severity,
        EXPECTED[account][finding_type][score - 1],
        id=f"{account[:1]}-{finding_type}-{severity}",
    )
    for account in EXPECTED
    for finding_type in TYPES
    for score, severity in SEVERITIES
]


@pytest.mark.parametrize(("account", "finding_type", "score", "severity", "expected"), TABLE)
def test_decision_table(account: str, finding_type: str, score: int, severity: str, expected: str) -> None:
    # GIVEN a finding of this type and severity in this account
    event = finding_event(account, finding_type, score, severity)
    # WHEN it is decided
    decision = decide_event(event)
    # THEN the action is the table's, routed to the account's team channel, with a reason
    assert decision.action == Action(expected)
    assert decision.channel == CHANNELS[account]
    assert decision.reason


def test_review_carries_the_team_approvers() -> None:
    decision = decide_event(finding_event("222222222222", "Credentials", 3, "High"))
    assert decision.team == "beta" and decision.approvers == ("S0BETA",)


def test_unknown_account_is_rejected() -> None:
    decision = decide_event(finding_event("999999999999", "Personal", 3, "High"))
    assert decision.action is Action.REJECT and "999999999999" in decision.reason
    assert decision.channel is None


def test_routing_uses_detail_account_not_envelope_account() -> None:
    event = finding_event("111111111111", "Personal", 3, "High")
    event["account"] = "222222222222"  # the bus that delivered it, not the bucket owner
    assert decide_event(event).channel == "C0ALPHA"


@pytest.mark.parametrize("name", ["wrong-source", "legacy-macie-alert", "not-an-object", "severity-string"])
def test_bad_input_is_rejected(name: str) -> None:
    assert decide_event(load_event(name)).action is Action.REJECT


def test_rejection_passes_through_with_its_reason() -> None:
    decision = decide(Rejection("not JSON: boom"), CONFIG)
    assert decision.action is Action.REJECT and decision.reason == "not JSON: boom"


def test_policy_findings_are_ignored_with_or_without_s3object() -> None:
    for name in ("policy-s3object-null", "policy-s3object-absent"):
        event = load_event(name)
        event["detail"]["accountId"] = "111111111111"
        decision = decide_event(event)
        assert decision.action is Action.IGNORE and "policy finding" in decision.reason


def test_sample_is_ignored_unless_include_samples_then_notify_never_moved() -> None:
    assert decide_event(finding_event("111111111111", "Credentials", 3, "High", sample=True)).action is Action.IGNORE
    decision = decide_event(finding_event("222222222222", "Credentials", 3, "High", sample=True))
    assert decision.action is Action.NOTIFY and "never moved" in decision.reason


def test_archived_is_ignored() -> None:
    decision = decide_event(finding_event("111111111111", "Credentials", 3, "High", archived=True))
    assert decision.action is Action.IGNORE and "archived" in decision.reason


def test_unknown_finding_type_is_ignored_and_named() -> None:
    decision = decide_event(finding_event("111111111111", "Biometric", 3, "High"))
    assert decision.action is Action.IGNORE and "Biometric" in decision.reason


def test_sensitive_finding_without_object_is_rejected() -> None:
    event = finding_event("111111111111", "Credentials", 3, "High")
    del event["detail"]["resourcesAffected"]["s3Object"]
    assert decide_event(event).action is Action.REJECT


def test_region_outside_the_accounts_regions_is_rejected() -> None:
    event = finding_event("333333333333", "Credentials", 3, "High", region="eu-west-1")
    decision = decide_event(event)
    assert decision.action is Action.REJECT and "eu-west-1" in decision.reason


def test_unlisted_type_in_policy_is_ignored() -> None:
    config = parse_config(
        (
            "version: 1\norganization_id: o-a1b2c3d4e5\n"
            'security_account: {id: "210987654321", region: us-east-1}\nregions: [us-east-1]\n'
            "slack: {team_id: T0EXAMPLE, secret_name: s}\n"
            "policy: {actions: {SensitiveData:S3Object/Credentials: auto}}\n"
            "teams: {alpha: {channel: C0ALPHA, approvers: [U0ALICE]}}\n"
            'accounts: [{id: "111111111111", name: plain, team: alpha}]\n'
            "deployment: {permission_model: SELF_MANAGED, call_as: SELF}\n"
        ),
        "x.yaml",
    )
    # An organisation that writes its own actions map replaces the built-in defaults: unlisted types are
    # ignored (team and account overrides, by contrast, merge per type).
    decision = decide_event(finding_event("111111111111", "Personal", 3, "High"), config)
    assert decision.action is Action.IGNORE and "no action configured" in decision.reason


def test_decide_is_pure() -> None:
    event = finding_event("111111111111", "Financial", 2, "Medium")
    parsed = parse_event(event)
    assert isinstance(parsed, Finding)
    assert decide(parsed, CONFIG) == decide(parsed, CONFIG)
