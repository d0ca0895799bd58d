"""What Security Hub is told for each state (security_hub.update_for) and which stream records are state changes
(security_hub.change_of): pure, no network."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from macie_chatops.policy_summary import PolicySummary
from macie_chatops.security_hub import NOTE_LIMIT, Workflow, change_of, macie_product_arn, update_for
from macie_chatops.states import State
from macie_chatops.store import AuditEntry, FindingRecord
from macie_chatops.summary import FindingSummary

SUMMARY = FindingSummary(
    finding_id="6a1b2c3d4e5f60718293a4b5c6d70005",
    finding_type="SensitiveData:S3Object/Personal",
    severity="High",
    account_id="345678901234",
    region="eu-west-1",
    bucket="payments-prod-exports",
    key="exports/customers.csv",
    version_id="v1",
    etag="abc",
    size=10,
    storage_class="STANDARD",
    created_at="2026-01-01T00:00:00Z",
    origin="job 1",
    team="payments",
)


def record(state: State, **fields: Any) -> FindingRecord:
    entry = AuditEntry(at="2026-01-02T03:04:05.000000Z", actor="U0ALICE", event="click", outcome=state.value)
    base = FindingRecord(
        finding_id=SUMMARY.finding_id,
        state=state,
        received_at="2026-01-01T00:00:00.000000Z",
        updated_at="2026-01-02T03:04:05.000000Z",
        account_id=SUMMARY.account_id,
        team="payments",
        summary=SUMMARY,
        audit=(entry,),
    )
    return replace(base, **fields)


def test_a_quarantine_resolves_the_finding_in_its_region_naming_approver_and_location() -> None:
    # GIVEN a finding quarantined on U0ALICE's approval
    quarantined = record(
        State.QUARANTINED, approver="U0ALICE", quarantine={"bucket": "q-bucket", "key": "f/k", "version_id": "v2"}
    )

    # WHEN its update is built
    update = update_for(quarantined)

    # THEN it is RESOLVED, for the same Macie finding in eu-west-1, with who approved and where it is now
    assert update is not None
    assert update.status is Workflow.RESOLVED
    assert update.request()["FindingIdentifiers"] == [
        {"Id": SUMMARY.finding_id, "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/macie"}
    ]
    assert update.region == "eu-west-1"
    assert "U0ALICE" in update.note and "s3://q-bucket/f/k (version v2)" in update.note


def test_a_dismissal_says_who_and_why_without_the_click_token() -> None:
    entry = AuditEntry(
        at="2026-01-02T03:04:05.000000Z",
        actor="U0CAROL",
        event="form:dismiss",
        outcome="DISMISSED",
        detail="reason: synthetic panel data; exemption x, form 0123456789abcdef",
    )
    update = update_for(record(State.DISMISSED, audit=(entry,)))
    assert update is not None and update.status is Workflow.SUPPRESSED
    assert update.note == (
        "Dismissed by U0CAROL (team payments) at 2026-01-02T03:04:05.000000Z, no quarantine: "
        "reason: synthetic panel data; exemption x."
    )


def test_an_auto_quarantine_says_it_was_the_policy() -> None:
    update = update_for(record(State.QUARANTINED, approver="auto", quarantine={"bucket": "q", "key": "k"}))
    assert update is not None and "by policy (auto)" in update.note


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (State.DISMISSED, Workflow.SUPPRESSED),
        (State.NOTIFIED, Workflow.NOTIFIED),
        (State.PENDING_APPROVAL, Workflow.NOTIFIED),
        (State.BLOCKED, Workflow.NEW),
        (State.FAILED, Workflow.NEW),
        (State.RESTORED, Workflow.NOTIFIED),
    ],
)
def test_each_outcome_has_its_workflow_status(state: State, status: Workflow) -> None:
    update = update_for(record(state, outcome="locked", outcome_detail="why", error="boom"))
    assert update is not None and update.status is status and update.state is state


@pytest.mark.parametrize(
    "state",
    [
        State.RECEIVED,
        State.IGNORED,
        State.REJECTED,
        State.APPROVED,
        State.RESTORE_REQUESTED,
        State.DUPLICATE,
        State.UNDO_REQUESTED,
    ],
)
def test_states_that_are_no_outcome_for_security_hub_send_nothing(state: State) -> None:
    assert update_for(record(state)) is None


def test_a_record_without_a_region_sends_nothing() -> None:
    assert update_for(record(State.NOTIFIED, summary=None)) is None


def test_the_note_fits_security_hub_and_stays_on_one_line() -> None:
    update = update_for(record(State.BLOCKED, outcome="changed", outcome_detail="line\n" * 400))
    assert update is not None and len(update.note) == NOTE_LIMIT and "\n" not in update.note


def test_the_product_arn_has_no_account_and_the_regions_partition() -> None:
    assert macie_product_arn("us-east-1") == "arn:aws:securityhub:us-east-1::product/aws/macie"
    assert macie_product_arn("us-gov-west-1") == "arn:aws-us-gov:securityhub:us-gov-west-1::product/aws/macie"


def test_a_restore_names_who_asked_for_it() -> None:
    asked = AuditEntry(at="2026-01-03T00:00:00.000000Z", actor="U0BOB", event="click", outcome="RESTORE_REQUESTED")
    done = AuditEntry(at="2026-01-03T00:01:00.000000Z", actor="remediator", event="restored", outcome="RESTORED")
    update = update_for(record(State.RESTORED, audit=(asked, done)))
    assert update is not None and update.status is Workflow.NOTIFIED
    assert "at 2026-01-03T00:01:00.000000Z (requested by U0BOB)" in update.note


def _image(state: str, key: str = "f1") -> dict[str, Any]:
    return {
        "finding_id": {"S": key},
        "state": {"S": state},
        "received_at": {"S": "2026-01-01T00:00:00.000000Z"},
        "updated_at": {"S": "2026-01-01T00:00:00.000000Z"},
    }


def test_a_stream_record_that_changes_the_state_is_a_change() -> None:
    change = change_of({"dynamodb": {"OldImage": _image("APPROVED"), "NewImage": _image("QUARANTINED")}})
    assert change is not None and change.previous is State.APPROVED and change.record.state is State.QUARANTINED


def test_a_new_record_is_a_change_from_nothing() -> None:
    change = change_of({"dynamodb": {"NewImage": _image("RECEIVED")}})
    assert change is not None and change.previous is None


@pytest.mark.parametrize(
    "stream_record",
    [
        {"dynamodb": {"OldImage": _image("QUARANTINED"), "NewImage": _image("QUARANTINED")}},  # an audit entry
        {"dynamodb": {"OldImage": _image("QUARANTINED")}},  # a deletion (TTL)
        {"dynamodb": {"NewImage": {"finding_id": {"S": "object#abc"}, "item_type": {"S": "object_claim"}}}},
        {"dynamodb": {"NewImage": {"finding_id": {"S": "pace#C0PAYMENTS"}, "item_type": {"S": "slack_pace"}}}},
        {"dynamodb": {"NewImage": {"finding_id": {"S": "group#0123abcd"}, "item_type": {"S": "finding_group"}}}},
    ],
    ids=["same-state", "removed", "object-claim", "slack-pace", "finding-group"],
)
def test_writes_that_change_no_state_are_not_changes(stream_record: dict[str, Any]) -> None:
    assert change_of(stream_record) is None


POLICY = PolicySummary(
    finding_id="7b2c3d4e5f60718293a4b5c6d70005aa",
    finding_type="Policy:IAMUser/S3BucketPublic",
    severity="High",
    account_id="345678901234",
    region="ap-southeast-2",
    bucket="payments-public-site",
    count=3,
    created_at="2026-01-01T00:00:00Z",
    updated_at="2026-01-02T00:00:00Z",
    team="payments",
)


def test_a_policy_findings_fix_resolves_it_in_the_buckets_region() -> None:
    # GIVEN a public bucket's finding whose public access the pipeline blocked on U0ALICE's approval
    blocked = record(
        State.PUBLIC_ACCESS_BLOCKED,
        finding_id=POLICY.finding_id,
        summary=None,
        policy=POLICY,
        approver="U0ALICE",
        outcome_detail="before: BlockPublicAcls off, others on",
    )
    # WHEN its update is built
    update = update_for(blocked)
    # THEN it is RESOLVED in the bucket's region, saying what was done, by whose approval, and that Undo exists
    assert update is not None and update.status is Workflow.RESOLVED and update.region == "ap-southeast-2"
    assert "s3://payments-public-site" in update.note and "U0ALICE" in update.note
    assert "before: BlockPublicAcls off, others on" in update.note and "Undo" in update.note


def test_an_undone_fix_opens_the_policy_finding_again() -> None:
    asked = AuditEntry(at="2026-01-03T00:00:00.000000Z", actor="U0BOB", event="click", outcome="UNDO_REQUESTED")
    done = AuditEntry(at="2026-01-03T00:01:00.000000Z", actor="remediator", event="undone", outcome="UNDONE")
    undone = record(State.UNDONE, summary=None, policy=POLICY, audit=(asked, done), outcome_detail="restored: none")
    update = update_for(undone)
    assert update is not None and update.status is Workflow.NOTIFIED
    assert "requested by U0BOB" in update.note and "open again" in update.note


def test_a_failed_fix_of_a_policy_finding_stays_new_saying_which_fix() -> None:
    failed = record(State.FAILED, summary=None, policy=POLICY, outcome="failed", error="AccessDenied")
    update = update_for(failed)
    assert update is not None and update.status is Workflow.NEW
    assert update.note.startswith("Blocking the bucket's public access by macie-chatops failed")
