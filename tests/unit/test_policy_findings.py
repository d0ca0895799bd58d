"""Policy findings without I/O (docs/architecture.md §18): their actions in accounts.yaml, decide(), the record's
encoding of a public access block, and their Slack messages."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Action, ConfigError, Severity, parse_config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, Rejection, parse_event
from macie_chatops.policy_messages import policy_message
from macie_chatops.policy_summary import PolicySummary
from macie_chatops.public_access import ALL_BLOCKED, NO_CONFIGURATION, SETTINGS, decode, describe, encode
from macie_chatops.states import State
from macie_chatops.store import AuditEntry, FindingRecord
from tests.conftest import load_event

YAML = """\
version: 1
organization_id: o-a1b2c3d4e5
security_account: {{id: "210987654321", region: us-east-1}}
regions: [us-east-1]
slack: {{team_id: T0EXAMPLE, secret_name: macie-chatops/slack}}
policy:
  actions:
{actions}
teams:
  payments: {{channel: C0PAYMENTS, approvers: [U0ALICE]}}
accounts:
  - {{id: "345678901234", name: payments-prod, team: payments}}
deployment: {{permission_model: SELF_MANAGED, call_as: SELF}}
"""


def config_with(*lines: str) -> Any:
    return parse_config(YAML.format(actions="\n".join(f"    {line}" for line in lines)), "policy-test.yaml")


def public_bucket(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(load_event("policy-bucket-public"))
    event["detail"].update(detail)
    return event


# -- accounts.yaml --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Policy:IAMUser/S3BucketPublic: review", "review"),
        ("Policy:IAMUser/S3BlockPublicAccessDisabled: auto", "auto"),
        ("Policy:IAMUser/S3BucketEncryptionDisabled: notify", "notify"),
        ("Policy:IAMUser/S3BucketSharedExternally: {High: notify}", {Severity.HIGH: "notify"}),
        ("Policy:IAMUser/S3BucketReplicatedExternally: ignore", "ignore"),
    ],
)
def test_policy_types_take_the_actions_their_fix_allows(line: str, expected: Any) -> None:
    # GIVEN a policy action for a policy type WHEN it is loaded THEN it is kept as written
    config = config_with(line)
    assert config.policy.actions[line.partition(": ")[0]] == expected


@pytest.mark.parametrize(
    "line",
    [
        "Policy:IAMUser/S3BucketEncryptionDisabled: review",
        "Policy:IAMUser/S3BucketSharedExternally: auto",
        "Policy:IAMUser/S3BucketSharedWithCloudFront: {High: notify, Medium: review}",
    ],
)
def test_review_or_auto_for_a_type_the_fix_does_not_close_is_a_located_error(line: str) -> None:
    # GIVEN review/auto for a policy type the public access block does not close
    with pytest.raises(ConfigError) as raised:
        config_with(line)
    # THEN the error names the line, the field and why
    (issue,) = raised.value.issues
    assert issue.line == 7 and issue.field == "policy.actions"
    assert "can only be notify or ignore" in issue.message


# -- decide() -------------------------------------------------------------------------------------------------


def test_a_policy_finding_is_ignored_unless_its_type_is_listed() -> None:
    decision = decide(parse_event(public_bucket()), config_with("SensitiveData:S3Object/Credentials: auto"))
    assert decision.action is Action.IGNORE
    assert decision.reason == "policy finding Policy:IAMUser/S3BucketPublic: no action configured (ignored by default)"


@pytest.mark.parametrize("action", ["review", "auto", "notify"])
def test_a_listed_policy_type_gets_its_action(action: str) -> None:
    decision = decide(parse_event(public_bucket()), config_with(f"Policy:IAMUser/S3BucketPublic: {action}"))
    assert decision.action is Action(action)
    assert decision.team == "payments" and decision.channel == "C0PAYMENTS"


def test_policy_findings_follow_the_rules_before_the_action() -> None:
    config = config_with("Policy:IAMUser/S3BucketPublic: review")
    # an unknown policy type, an archived one, a sample: ignored; no bucket at all: rejected
    unknown = decide(parse_event(public_bucket(type="Policy:IAMUser/S3BucketMadeOfCheese")), config)
    assert unknown.action is Action.IGNORE and "unknown finding type" in unknown.reason
    assert decide(parse_event(public_bucket(archived=True)), config).action is Action.IGNORE
    assert decide(parse_event(public_bucket(sample=True)), config).action is Action.IGNORE
    no_bucket = decide(parse_event(public_bucket(resourcesAffected=None)), config)
    assert no_bucket.action is Action.REJECT and "without resourcesAffected.s3Bucket" in no_bucket.reason


@pytest.mark.parametrize("count", [0, -1, "3", 2**53])
def test_a_count_that_is_not_a_positive_integer_is_rejected(count: Any) -> None:
    parsed = parse_event(public_bucket(count=count))
    assert isinstance(parsed, Rejection), parsed
    assert "detail.count" in parsed.reason


# -- the record's public access block ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "configuration",
    [
        None,
        dict(ALL_BLOCKED),
        dict.fromkeys(SETTINGS, False),
        {**dict.fromkeys(SETTINGS, False), "BlockPublicAcls": True},
    ],
)
def test_a_configuration_round_trips_through_the_record_exactly(configuration: dict[str, bool] | None) -> None:
    assert decode(encode(configuration)) == configuration


def test_none_and_all_off_are_different_configurations() -> None:
    assert encode(None) == NO_CONFIGURATION
    assert encode(dict.fromkeys(SETTINGS, False)) != NO_CONFIGURATION
    assert describe(None) == "no public access block (none of the four settings)"
    assert describe(dict.fromkeys(SETTINGS, False)) == "a public access block with all four settings off"
    partial = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False,
    }
    assert (
        describe(partial) == "BlockPublicAcls on, IgnorePublicAcls off, BlockPublicPolicy on, RestrictPublicBuckets off"
    )


@pytest.mark.parametrize(
    "text", ["", "null", "[]", '{"BlockPublicAcls": true}', json.dumps(dict.fromkeys(SETTINGS, 1))]
)
def test_text_the_record_never_holds_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode(text)


# -- messages ---------------------------------------------------------------------------------------------------


def _record(
    state: State, *, count: int = 1, finding_type: str = "Policy:IAMUser/S3BucketPublic", **fields: Any
) -> FindingRecord:
    parsed = parse_event(public_bucket(count=count, type=finding_type))
    assert isinstance(parsed, Finding)
    policy = PolicySummary.of(parsed, decide(parsed, config_with("Policy:IAMUser/S3BucketPublic: review")))
    entry = AuditEntry(at="2026-11-20T10:20:00.000000Z", actor="U0ALICE", event="click", outcome=state.value)
    return FindingRecord(
        finding_id=policy.finding_id,
        state=state,
        received_at="2026-11-20T10:15:05.000000Z",
        updated_at="2026-11-20T10:20:00.000000Z",
        reason="Policy:IAMUser/S3BucketPublic -> review",
        team="payments",
        channel="C0PAYMENTS",
        policy=policy,
        audit=(entry,),
        **fields,
    )


def _buttons(record: FindingRecord) -> list[str]:
    message = policy_message(record)
    assert message is not None
    return [e["action_id"] for b in message.block_dicts() if b["type"] == "actions" for e in b["elements"]]


def test_each_state_offers_only_what_can_be_done_from_it() -> None:
    assert _buttons(_record(State.PENDING_APPROVAL)) == [names.ACTION_BLOCK_PUBLIC_ACCESS, names.ACTION_DISMISS]
    assert _buttons(_record(State.PUBLIC_ACCESS_BLOCKED, approver="U0ALICE")) == [names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS]
    for state in (State.NOTIFIED, State.APPROVED, State.UNDO_REQUESTED, State.UNDONE, State.DISMISSED, State.FAILED):
        assert _buttons(_record(state)) == [], state
    assert policy_message(_record(State.IGNORED)) is None


def test_the_message_shows_the_count_and_the_configuration_before_the_fix() -> None:
    previous = {"previous": encode({**dict.fromkeys(SETTINGS, False), "IgnorePublicAcls": True})}
    record = _record(State.PUBLIC_ACCESS_BLOCKED, count=3, approver="U0ALICE", public_access=previous)
    message = policy_message(record)
    assert message is not None
    text = json.dumps(message.to_dict())
    assert "reported 3 times" in text and "3 times" in text
    assert "Before the block: BlockPublicAcls off, IgnorePublicAcls on" in text
    assert "`payments-prod-exports`" in text


def test_an_undo_that_was_refused_is_said_on_the_blocked_message() -> None:
    record = _record(
        State.PUBLIC_ACCESS_BLOCKED, approver="U0ALICE", error="undo not done: the bucket's configuration changed"
    )
    message = policy_message(dataclasses.replace(record))
    assert message is not None
    assert "undo not done: the bucket" in json.dumps(message.to_dict())
