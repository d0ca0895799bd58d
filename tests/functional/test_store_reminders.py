"""The state store's side of reminders and escalation (docs/architecture.md §14): the marks are conditional
writes, and the pending index answers "received before" with a key condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from macie_chatops.config import Action
from macie_chatops.states import State
from macie_chatops.store import FindingStore, create_state_table
from tests.conftest import AwsSandbox

TABLE = "reminder-store-findings"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def dynamodb(aws: AwsSandbox) -> Any:
    client = boto3.client("dynamodb", region_name=aws.region)
    create_state_table(client, TABLE)
    return client


def _pending(dynamodb: Any, finding_id: str, *, at: datetime = START, team: str = "payments") -> None:
    store = FindingStore(dynamodb, TABLE, clock=lambda: at)
    store.create_received(
        finding_id, event_id=f"e-{finding_id}", action=Action.REVIEW, reason="review", actor="h", team=team
    )
    store.transition(finding_id, expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="p")


def test_a_reminder_is_marked_once_per_number_and_only_while_pending(dynamodb: Any) -> None:
    # GIVEN a pending review
    _pending(dynamodb, "f-1")
    store = FindingStore(dynamodb, TABLE, clock=lambda: START + timedelta(hours=25))
    # WHEN reminder 1 is marked twice (two runs) / THEN only the first mark is applied
    first = store.mark_reminder("f-1", number=1, actor="reminders")
    second = store.mark_reminder("f-1", number=1, actor="reminders")
    assert (first.applied, second.applied) == (True, False)
    assert first.record.reminders_sent == 1 and first.record.last_reminder_at == "2026-03-03T10:00:00.000000Z"
    assert second.record.reminders_sent == 1
    # AND reminder 3 cannot skip reminder 2
    assert not store.mark_reminder("f-1", number=3, actor="reminders").applied
    # WHEN the review is decided / THEN no further reminder can be marked
    store.transition("f-1", expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor="U0ALICE", event="c")
    assert not store.mark_reminder("f-1", number=2, actor="reminders").applied
    with pytest.raises(ValueError):
        store.mark_reminder("f-1", number=0, actor="reminders")


def test_a_reminder_mark_is_taken_back_only_while_it_is_the_one_made(dynamodb: Any) -> None:
    # GIVEN reminder 2 marked after reminder 1
    _pending(dynamodb, "f-2")
    store = FindingStore(dynamodb, TABLE, clock=lambda: START + timedelta(hours=25))
    one = store.mark_reminder("f-2", number=1, actor="reminders").record
    later = FindingStore(dynamodb, TABLE, clock=lambda: START + timedelta(hours=49))
    two = later.mark_reminder("f-2", number=2, actor="reminders").record
    # WHEN a run takes back a mark that is no longer the current one / THEN it is refused
    stale = later.unmark_reminder(
        "f-2", number=1, marked_at=str(one.last_reminder_at), previous_at=None, actor="reminders", detail="x"
    )
    assert not stale.applied and stale.record.reminders_sent == 2
    # WHEN the run that made reminder 2 takes it back / THEN the record is as after reminder 1, and it is audited
    back = later.unmark_reminder(
        "f-2",
        number=2,
        marked_at=str(two.last_reminder_at),
        previous_at=one.last_reminder_at,
        actor="reminders",
        detail="SlackError: down",
    )
    assert back.applied
    assert (back.record.reminders_sent, back.record.last_reminder_at) == (1, one.last_reminder_at)
    assert back.record.audit[-1].event == "reminder_failed" and "down" in back.record.audit[-1].detail


def test_an_escalation_is_marked_once_and_taken_back_only_by_its_run(dynamodb: Any) -> None:
    _pending(dynamodb, "f-3")
    store = FindingStore(dynamodb, TABLE, clock=lambda: START + timedelta(hours=80))
    marked = store.mark_escalation("f-3", actor="reminders")
    assert marked.applied and not store.mark_escalation("f-3", actor="reminders").applied
    assert not store.unmark_escalation("f-3", marked_at="2020-01-01T00:00:00.000000Z", actor="r", detail="x").applied
    at = str(marked.record.escalated_at)
    undone = store.unmark_escalation("f-3", marked_at=at, actor="reminders", detail="SlackError: down")
    assert undone.applied and undone.record.escalated_at is None
    assert store.mark_escalation("f-3", actor="reminders").applied  # the next run lists it


def test_pending_received_before_is_a_key_condition_per_team_and_a_filter_across_teams(dynamodb: Any) -> None:
    # GIVEN reviews of two teams received 0, 10, 20 and 30 hours after START
    received = [(0, "p-0", "payments"), (10, "a-10", "analytics"), (20, "p-20", "payments"), (30, "p-30", "payments")]
    for hours, finding_id, team in received:
        _pending(dynamodb, finding_id, at=START + timedelta(hours=hours), team=team)
    store = FindingStore(dynamodb, TABLE)
    cutoff = START + timedelta(hours=20)
    # THEN only those received before the cutoff, oldest first, for a team and across teams
    assert [r.finding_id for r in store.pending_approvals("payments", received_before=cutoff)] == ["p-0"]
    assert [r.finding_id for r in store.pending_approvals(received_before=cutoff)] == ["p-0", "a-10"]
    # AND the limit still holds with the key condition
    assert [
        r.finding_id for r in store.pending_approvals("payments", limit=2, received_before=START + timedelta(days=2))
    ] == [
        "p-0",
        "p-20",
    ]
