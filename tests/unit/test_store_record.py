"""The store's pure parts: raw DynamoDB items <-> typed records, the table definition, the intake rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from macie_chatops import names
from macie_chatops.config import Action
from macie_chatops.finding import Rejection
from macie_chatops.intake import intake_complete, record_id_of
from macie_chatops.states import State
from macie_chatops.store import TABLE_DEFINITION, TTL_SPECIFICATION, FindingRecord
from macie_chatops.summary import DataCategory, DetectionCount, FindingSummary

SUMMARY = FindingSummary(
    finding_id="f-1",
    finding_type="SensitiveData:S3Object/Credentials",
    severity="High",
    account_id="345678901234",
    region="us-east-1",
    bucket="payments-data",
    key="a/b c+d%20.txt",
    version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
    etag="abc",
    size=7 * 1024**3,
    storage_class="STANDARD",
    created_at="2026-11-27T11:00:00Z",
    origin="job 1234",
    team="payments",
    channel="C0PAYMENTS",
    categories=(DataCategory("CREDENTIALS", 2, (DetectionCount("AWS_CREDENTIALS", 2),)),),
)


def raw(**values: Any) -> dict[str, Any]:
    """A raw item as DynamoDB returns it (numbers become Decimal on the way back)."""
    base: dict[str, Any] = {
        names.STATE_TABLE_KEY: "f-1",
        "state": "RECEIVED",
        names.PENDING_INDEX_SORT: "2026-11-27T12:00:00.000000Z",
        "updated_at": "2026-11-27T12:00:00.000000Z",
    }
    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in {**base, **values}.items()}


def test_a_full_item_parses_into_a_typed_record_with_ints_not_decimals() -> None:
    # GIVEN an item holding every field, numbers as DynamoDB returns them
    item = raw(
        action="auto",
        summary=SUMMARY.to_dict(),
        slack_channel="C0PAYMENTS",
        slack_ts="1700000000.000100",
        approver="auto",
        quarantine={"bucket": "q", "key": "f-1/a", "version_id": "v"},
        audit=[{"at": "t", "actor": "auto", "event": "decided", "outcome": "APPROVED", "detail": ""}],
        expires_at=Decimal(1830000000),
        some_future_attribute="ignored",
    )
    # WHEN it is parsed
    record = FindingRecord.from_item(item)
    # THEN every field is typed, the summary round-trips, and unknown attributes are ignored
    assert record.state is State.RECEIVED
    assert record.action is Action.AUTO
    assert record.summary == SUMMARY
    assert isinstance(record.summary.size, int)
    assert record.expires_at == 1830000000 and isinstance(record.expires_at, int)
    assert record.quarantine == {"bucket": "q", "key": "f-1/a", "version_id": "v"}
    assert record.last_audit is not None and record.last_audit.outcome == "APPROVED"


def test_a_minimal_item_parses_with_empty_optional_fields() -> None:
    record = FindingRecord.from_item(raw())
    assert (record.action, record.summary, record.slack_ts, record.audit, record.last_audit) == (
        None,
        None,
        None,
        (),
        None,
    )


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError):
        FindingRecord.from_item(raw(state="EXPLODED"))


def test_the_table_definition_has_the_key_the_sparse_indexes_and_on_demand_billing() -> None:
    assert TABLE_DEFINITION["KeySchema"] == [{"AttributeName": names.STATE_TABLE_KEY, "KeyType": "HASH"}]
    pending, approved = TABLE_DEFINITION["GlobalSecondaryIndexes"]
    assert pending["IndexName"] == names.PENDING_INDEX_NAME
    assert [k["AttributeName"] for k in pending["KeySchema"]] == [
        names.PENDING_INDEX_PARTITION,
        names.PENDING_INDEX_SORT,
    ]
    assert approved["IndexName"] == names.APPROVED_INDEX_NAME
    assert [k["AttributeName"] for k in approved["KeySchema"]] == [
        names.APPROVED_INDEX_PARTITION,
        names.APPROVED_INDEX_SORT,
    ]
    defined = {a["AttributeName"] for a in TABLE_DEFINITION["AttributeDefinitions"]}
    assert defined == {
        names.STATE_TABLE_KEY,
        names.PENDING_INDEX_PARTITION,
        names.PENDING_INDEX_SORT,
        names.APPROVED_INDEX_PARTITION,
        names.APPROVED_INDEX_SORT,
    }
    assert TABLE_DEFINITION["BillingMode"] == "PAY_PER_REQUEST"
    assert TTL_SPECIFICATION == {"Enabled": True, "AttributeName": names.STATE_TABLE_TTL_ATTRIBUTE}


@pytest.mark.parametrize(
    ("rejection", "expected"),
    [
        (Rejection("bad", event_id="e-1", finding_id="6a1b2c3d"), "6a1b2c3d"),
        (Rejection("bad", event_id="4d7e4a4c-2f0f", finding_id=None), "event:4d7e4a4c-2f0f"),
        (Rejection("bad", event_id="4d7e4a4c-2f0f", finding_id="has spaces/and slashes"), "event:4d7e4a4c-2f0f"),
        (Rejection("bad", event_id="e-1", finding_id="x" * 129), "event:e-1"),
        (Rejection("bad", event_id="x" * 500, finding_id=None), None),
        (Rejection("bad", event_id="", finding_id=""), None),
        (Rejection("not JSON"), None),
    ],
)
def test_a_rejection_is_keyed_by_a_sane_finding_id_else_its_event_id_else_not_at_all(
    rejection: Rejection, expected: str | None
) -> None:
    assert record_id_of(rejection) == expected


def record(state: State, **fields: Any) -> FindingRecord:
    return FindingRecord(finding_id="f-1", state=state, received_at="t", updated_at="t", **fields)


@pytest.mark.parametrize(
    ("candidate", "complete"),
    [
        (record(State.RECEIVED, action=Action.REVIEW), False),
        (record(State.RECEIVED, action=Action.REVIEW, slack_ts="1.2"), False),
        (record(State.PENDING_APPROVAL, action=Action.REVIEW), True),
        # the job may not have been sent (nothing marks the send): a delivery sends it again
        (record(State.APPROVED, action=Action.AUTO, approver="auto"), False),
        (record(State.APPROVED, action=Action.AUTO, approver="auto", job_queued_at="t"), True),  # marked (old release)
        (record(State.APPROVED, action=Action.REVIEW, approver="U0ALICE"), True),  # the interaction's job
        (record(State.QUARANTINED, action=Action.AUTO, approver="auto"), True),
        (record(State.REJECTED, action=Action.REJECT), True),
    ],
)
def test_intake_is_complete_once_the_record_left_received_and_an_auto_job_is_queued(
    candidate: FindingRecord, complete: bool
) -> None:
    assert intake_complete(candidate) is complete
