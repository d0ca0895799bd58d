"""The state store's sparse approved index (the sweeper's candidates) and the state-conditional audit write,
against moto's server."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from macie_chatops.names import (
    APPROVED_INDEX_NAME,
    APPROVED_INDEX_PARTITION,
    APPROVED_INDEX_SORT,
    APPROVED_INDEX_VALUE,
)
from macie_chatops.states import State
from macie_chatops.store import FindingStore, create_state_table
from tests.conftest import AwsSandbox
from tests.functional.test_store import START, TABLE, SteppingClock, received


@pytest.fixture
def dynamodb(aws: AwsSandbox) -> Any:
    from macie_chatops_sandbox.testkit.world import aws_client

    client = aws_client("dynamodb", aws.region)
    create_state_table(client, TABLE)
    return client


@pytest.fixture
def store(dynamodb: Any) -> FindingStore:
    return FindingStore(dynamodb, TABLE, clock=SteppingClock())


def _approve(store: FindingStore, finding_id: str) -> str:
    """Received -> pending -> approved by a click; returns the approval's time as the record shows it."""
    received(store, finding_id)
    store.transition(
        finding_id, expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="finding-handler", event="posted"
    )
    result = store.transition(
        finding_id,
        expected={State.PENDING_APPROVAL},
        target=State.APPROVED,
        actor="U0ALICE",
        event="click:remediate",
        updates={"approver": "U0ALICE"},
    )
    assert result.applied and result.record.approved_at is not None
    return result.record.approved_at


def _index_ids(dynamodb: Any) -> list[str]:
    """What the index itself holds (a scan of the sparse index, not of the table)."""
    items = dynamodb.scan(TableName=TABLE, IndexName=APPROVED_INDEX_NAME)["Items"]
    return sorted(item["finding_id"]["S"] for item in items)


def test_entering_approved_puts_the_finding_in_the_index_with_its_approval_time(
    dynamodb: Any, store: FindingStore
) -> None:
    # GIVEN a finding received and pending: not in the index
    received(store, "f-1")
    store.transition("f-1", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="fh", event="posted")
    assert _index_ids(dynamodb) == []
    # WHEN it is approved
    approved_at = _approve(store, "f-2")
    # THEN that finding (only) carries the index keys, the sort key being the time of the approval's audit entry
    assert _index_ids(dynamodb) == ["f-2"]
    item = dynamodb.get_item(TableName=TABLE, Key={"finding_id": {"S": "f-2"}})["Item"]
    assert item[APPROVED_INDEX_PARTITION] == {"S": APPROVED_INDEX_VALUE}
    assert item[APPROVED_INDEX_SORT] == {"S": approved_at}
    record = store.get("f-2")
    assert record is not None and record.audit[-1].at == approved_at == record.approved_at


@pytest.mark.parametrize(
    "target",
    [
        State.QUARANTINED,
        State.BLOCKED,
        State.FAILED,
        State.PENDING_APPROVAL,  # an approval undone: its job could not be queued
    ],
)
def test_leaving_approved_removes_the_index_entry_in_the_same_write(
    dynamodb: Any, store: FindingStore, target: State
) -> None:
    # GIVEN an approved finding, in the index
    _approve(store, "f-1")
    assert _index_ids(dynamodb) == ["f-1"]
    # WHEN it leaves APPROVED
    result = store.transition("f-1", expected={State.APPROVED}, target=target, actor="remediator", event="done")
    # THEN the write that moved it also removed the index keys
    assert result.applied
    assert result.record.approved_at is None
    item = dynamodb.get_item(TableName=TABLE, Key={"finding_id": {"S": "f-1"}})["Item"]
    assert APPROVED_INDEX_PARTITION not in item and APPROVED_INDEX_SORT not in item
    assert _index_ids(dynamodb) == []
    assert store.approved_before(START + timedelta(days=1)) == []


def test_a_retried_failure_reenters_the_index_with_the_new_approval_time(dynamodb: Any, store: FindingStore) -> None:
    # GIVEN a finding that was approved, then FAILED
    first = _approve(store, "f-1")
    store.transition("f-1", expected={State.APPROVED}, target=State.FAILED, actor="remediator", event="failed")
    # WHEN an operator retries it (FAILED -> APPROVED)
    result = store.transition("f-1", expected={State.FAILED}, target=State.APPROVED, actor="cli:ops", event="retry")
    # THEN it is back in the index, approved at the retry's time
    assert _index_ids(dynamodb) == ["f-1"]
    assert result.record.approved_at is not None and result.record.approved_at > first


def test_approved_before_lists_only_approvals_older_than_the_cutoff_oldest_first(store: FindingStore) -> None:
    # GIVEN three findings approved in this order (the store's clock steps one second per write)
    times = {finding_id: _approve(store, finding_id) for finding_id in ("f-a", "f-b", "f-c")}
    # ... and one that moved on to QUARANTINED
    _approve(store, "f-done")
    store.transition("f-done", expected={State.APPROVED}, target=State.QUARANTINED, actor="remediator", event="moved")
    # WHEN the approvals before f-c's are asked for
    cutoff = datetime.fromisoformat(times["f-c"])
    # THEN only the two older ones, oldest first
    assert [r.finding_id for r in store.approved_before(cutoff)] == ["f-a", "f-b"]
    assert [r.finding_id for r in store.approved_before(cutoff, limit=1)] == ["f-a"]
    # AND every approved finding once the cutoff is later than all of them
    assert [r.finding_id for r in store.approved_before(START + timedelta(days=1))] == ["f-a", "f-b", "f-c"]
    assert store.approved_before(START) == []
    with pytest.raises(ValueError, match="limit"):
        store.approved_before(cutoff, limit=0)


def test_approved_before_pages_through_a_long_list(dynamodb: Any, store: FindingStore) -> None:
    # GIVEN more approved findings than one small page holds
    for n in range(7):
        _approve(store, f"f-{n}")
    # WHEN the query is made with a page size of 2 (DynamoDB's Limit per page)
    original_query = dynamodb.query
    pages: list[int] = []

    def small_pages(**kwargs: Any) -> Any:
        page = original_query(**{**kwargs, "Limit": 2})
        pages.append(len(page["Items"]))
        return page

    paged = FindingStore(type("Client", (), {"query": staticmethod(small_pages)})(), TABLE)
    # THEN every page is read, in order
    assert [r.finding_id for r in paged.approved_before(START + timedelta(days=1))] == [f"f-{n}" for n in range(7)]
    assert len(pages) >= 4


def test_append_audit_with_expected_states_writes_only_while_the_finding_is_in_one(store: FindingStore) -> None:
    # GIVEN an approved finding
    _approve(store, "f-1")
    # WHEN an audit entry is written on condition that it is still APPROVED
    kept = store.append_audit(
        "f-1", actor="sweeper", event="requeued_by_sweeper", outcome="requeued", expected={State.APPROVED}
    )
    # THEN it is written
    assert kept.applied and kept.record.audit[-1].event == "requeued_by_sweeper"
    # WHEN the finding has moved on and the same conditional audit is tried
    store.transition("f-1", expected={State.APPROVED}, target=State.QUARANTINED, actor="remediator", event="moved")
    refused = store.append_audit(
        "f-1", actor="sweeper", event="requeued_by_sweeper", outcome="requeued", expected={State.APPROVED}
    )
    # THEN nothing is written and the current record says why
    assert not refused.applied
    assert refused.record.state is State.QUARANTINED
    assert [e.event for e in refused.record.audit].count("requeued_by_sweeper") == 1
    with pytest.raises(ValueError, match="names no state"):
        store.append_audit("f-1", actor="sweeper", event="x", outcome="x", expected=())
