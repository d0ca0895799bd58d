"""The DynamoDB state store against moto's server: conditional writes, races, audit, the pending index."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from macie_chatops.config import Action
from macie_chatops.names import (
    APPROVED_INDEX_PARTITION,
    APPROVED_INDEX_SORT,
    PENDING_INDEX_PARTITION,
    STATE_TABLE_TTL_ATTRIBUTE,
)
from macie_chatops.states import State
from macie_chatops.store import (
    CLAIM_ITEM_TYPE,
    MAX_AUDIT_ENTRIES,
    RETENTION_DAYS,
    FindingNotFoundError,
    FindingStore,
    IllegalTransitionError,
    PostedMessage,
    WriteResult,
    create_state_table,
)
from macie_chatops.summary import FindingSummary, ObjectVersion
from tests.conftest import AwsSandbox

TABLE = "test-findings"
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class SteppingClock:
    """Each reading is one second after the previous: distinct, ordered timestamps without sleeping."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=1)
            return self._now


@pytest.fixture
def dynamodb(aws: AwsSandbox) -> Any:
    client = boto3.client("dynamodb", region_name=aws.region)
    create_state_table(client, TABLE)
    return client


@pytest.fixture
def store(dynamodb: Any) -> FindingStore:
    return FindingStore(dynamodb, TABLE, clock=SteppingClock())


def summary(finding_id: str, team: str = "payments") -> FindingSummary:
    return FindingSummary(
        finding_id=finding_id,
        finding_type="SensitiveData:S3Object/Personal",
        severity="High",
        account_id="345678901234",
        region="us-east-1",
        bucket="payments-data",
        key="exports/ünïcode key+%20.csv",
        version_id="",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=6 * 1024**3,
        storage_class="STANDARD",
        created_at="2026-11-27T11:00:00Z",
        origin="automated sensitive data discovery",
        account_name="payments-prod",
        team=team,
        channel="C0PAYMENTS",
        title="Personal data in an object",
    )


def received(store: FindingStore, finding_id: str, *, team: str = "payments", action: Action = Action.REVIEW) -> None:
    result = store.create_received(
        finding_id,
        event_id=f"event-{finding_id}",
        action=action,
        reason="SensitiveData:S3Object/Personal -> review",
        actor="finding-handler",
        account_id="345678901234",
        team=team,
        channel="C0PAYMENTS",
        summary=summary(finding_id, team),
    )
    assert result.applied


def test_create_received_stores_the_finding_essentials_and_a_first_audit_entry(store: FindingStore) -> None:
    # GIVEN a new finding WHEN it is recorded
    received(store, "f-1")
    # THEN the record reads back typed, with the summary intact (Decimal sizes become ints)
    record = store.get("f-1")
    assert record is not None
    assert record.state is State.RECEIVED
    assert record.action is Action.REVIEW
    assert record.summary == summary("f-1")
    assert record.summary is not None and record.summary.size == 6 * 1024**3
    assert [(e.actor, e.event, e.outcome) for e in record.audit] == [("finding-handler", "received", "RECEIVED")]
    assert record.expires_at is None


def test_a_duplicate_create_keeps_one_record_and_returns_the_existing_one(store: FindingStore) -> None:
    # GIVEN a recorded finding that has moved on
    received(store, "f-1")
    store.transition("f-1", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="x", event="posted")
    # WHEN the same finding id is recorded again (a redelivered event)
    result = store.create_received(
        "f-1", event_id="event-2", action=Action.AUTO, reason="other", actor="finding-handler"
    )
    # THEN nothing is written, and the caller sees the current record
    assert not result.applied
    assert result.record.state is State.PENDING_APPROVAL
    assert result.record.event_id == "event-f-1"
    assert result.record.action is Action.REVIEW


def test_a_transition_applies_updates_and_audits_it(store: FindingStore) -> None:
    received(store, "f-1")
    store.transition("f-1", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="posted")
    # WHEN an approver approves
    result = store.transition(
        "f-1",
        expected={State.PENDING_APPROVAL},
        target=State.APPROVED,
        actor="U0ALICE",
        event="remediate_clicked",
        updates={"approver": "U0ALICE"},
        detail="approved in C0PAYMENTS",
    )
    # THEN the new record is returned, with who and what in the audit trail
    assert result.applied
    assert result.record.state is State.APPROVED
    assert result.record.approver == "U0ALICE"
    last = result.record.last_audit
    assert last is not None
    assert (last.actor, last.event, last.outcome, last.detail) == (
        "U0ALICE",
        "remediate_clicked",
        "APPROVED",
        "approved in C0PAYMENTS",
    )
    assert len(result.record.audit) == 3


def test_a_transition_from_an_unexpected_state_is_refused_and_shows_the_current_state(store: FindingStore) -> None:
    # GIVEN a finding already dismissed by Carol
    received(store, "f-1")
    store.transition("f-1", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="posted")
    store.transition(
        "f-1",
        expected={State.PENDING_APPROVAL},
        target=State.DISMISSED,
        actor="U0CAROL",
        event="dismiss_clicked",
        updates={"approver": "U0CAROL"},
    )
    # WHEN Alice's late click tries to approve it
    result = store.transition(
        "f-1", expected={State.PENDING_APPROVAL}, target=State.APPROVED, actor="U0ALICE", event="remediate_clicked"
    )
    # THEN nothing changes, and Alice can be told who did what
    assert not result.applied
    assert result.record.state is State.DISMISSED
    assert result.record.approver == "U0CAROL"
    assert store.get("f-1") == result.record


def test_an_illegal_transition_raises_before_writing(store: FindingStore) -> None:
    received(store, "f-1")
    before = store.get("f-1")
    # WHEN a caller asks for a transition the state machine forbids
    with pytest.raises(IllegalTransitionError, match="RECEIVED -> QUARANTINED"):
        store.transition("f-1", expected={State.RECEIVED}, target=State.QUARANTINED, actor="x", event="bad")
    with pytest.raises(IllegalTransitionError):
        store.transition("f-1", expected=set(), target=State.IGNORED, actor="x", event="bad")
    # THEN the record is untouched
    assert store.get("f-1") == before


def test_writes_to_an_unknown_finding_raise_not_found(store: FindingStore) -> None:
    with pytest.raises(FindingNotFoundError):
        store.transition("nope", expected={State.RECEIVED}, target=State.IGNORED, actor="x", event="e")
    with pytest.raises(FindingNotFoundError):
        store.append_audit("nope", actor="x", event="e", outcome="o")
    assert store.get("nope") is None


def race_to_approve(store: FindingStore, finding_id: str, users: tuple[str, ...]) -> dict[str, WriteResult]:
    """Every user clicks Remediate at the same moment (a barrier releases the threads together)."""
    barrier = threading.Barrier(len(users))
    results: dict[str, WriteResult] = {}

    def click(user: str) -> None:
        barrier.wait()
        results[user] = store.transition(
            finding_id,
            expected={State.PENDING_APPROVAL},
            target=State.APPROVED,
            actor=user,
            event="remediate_clicked",
            updates={"approver": user},
        )

    threads = [threading.Thread(target=click, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_threads_racing_the_same_transition_produce_exactly_one(
    store: FindingStore,
    atomic_moto: None,
) -> None:
    for round_ in range(8):
        # GIVEN a pending finding
        finding_id = f"race-{round_}"
        received(store, finding_id)
        store.transition(finding_id, expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="p")
        # WHEN two approvers click at the same moment
        results = race_to_approve(store, finding_id, ("U0ALICE", "U0BOB"))
        # THEN exactly one wins, and the loser sees the winner's record
        winners = [user for user, result in results.items() if result.applied]
        assert len(winners) == 1
        loser = next(result for result in results.values() if not result.applied)
        assert loser.record.state is State.APPROVED
        assert loser.record.approver == winners[0]
        record = store.get(finding_id)
        assert record is not None
        assert [e.actor for e in record.audit if e.outcome == "APPROVED"] == winners


def test_append_audit_changes_no_state_and_records_a_refusal(store: FindingStore) -> None:
    received(store, "f-1")
    store.transition("f-1", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="p")
    # WHEN a non-approver clicks
    result = store.append_audit(
        "f-1", actor="U0MALLORY", event="remediate_clicked", outcome="refused", detail="not an approver of payments"
    )
    # THEN the click is audited, and the finding is still pending
    assert result.applied
    assert result.record.state is State.PENDING_APPROVAL
    assert [(e.actor, e.outcome) for e in result.record.audit][-1] == ("U0MALLORY", "refused")
    assert len(result.record.audit) == 3


def test_append_audit_may_set_and_clear_the_error(store: FindingStore) -> None:
    received(store, "f-1")
    failed = store.append_audit(
        "f-1", actor="h", event="slack_post_failed", outcome="retry", updates={"error": "ratelimited"}
    )
    assert failed.record.error == "ratelimited"
    cleared = store.append_audit("f-1", actor="h", event="slack_posted", outcome="posted", updates={"error": None})
    assert cleared.record.error is None
    with pytest.raises(ValueError, match="not an updatable"):
        store.append_audit("f-1", actor="h", event="e", outcome="o", updates={"state": "APPROVED"})  # type: ignore[arg-type]


def test_the_audit_trail_is_capped_for_refusals_but_never_for_transitions(
    dynamodb: Any, store: FindingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a small cap (the real one is large) and a finding whose trail is full
    monkeypatch.setattr("macie_chatops.store.MAX_AUDIT_ENTRIES", 3)
    received(store, "f-1")
    store.append_audit("f-1", actor="U0MALLORY", event="click", outcome="refused")
    store.append_audit("f-1", actor="U0MALLORY", event="click", outcome="refused")
    # WHEN more refusals come
    refused = store.append_audit("f-1", actor="U0MALLORY", event="click", outcome="refused")
    # THEN they are not stored, but a transition still is
    assert not refused.applied
    assert len(refused.record.audit) == 3
    moved = store.transition("f-1", expected={State.RECEIVED}, target=State.IGNORED, actor="h", event="decided")
    assert moved.applied and len(moved.record.audit) == 4
    assert MAX_AUDIT_ENTRIES >= 100


def test_slack_message_is_written_once(store: FindingStore) -> None:
    received(store, "f-1")
    first = store.set_slack_message("f-1", channel="C0PAYMENTS", ts="1700000000.000100", actor="h")
    again = store.set_slack_message("f-1", channel="C0PAYMENTS", ts="1700000000.000100", actor="h")
    other = store.set_slack_message("f-1", channel="C0PAYMENTS", ts="1700000000.000200", actor="h")
    assert first.applied and again.applied
    assert not other.applied
    assert (other.record.slack_channel, other.record.slack_ts) == ("C0PAYMENTS", "1700000000.000100")


def test_final_states_get_a_long_ttl_and_others_none(dynamodb: Any, store: FindingStore) -> None:
    received(store, "f-ignored")
    ignored = store.transition("f-ignored", expected={State.RECEIVED}, target=State.IGNORED, actor="h", event="d")
    received(store, "f-approved")
    approved = store.transition("f-approved", expected={State.RECEIVED}, target=State.APPROVED, actor="auto", event="d")
    assert ignored.record.expires_at is not None
    updated = datetime.fromisoformat(ignored.record.updated_at)
    assert ignored.record.expires_at == int((updated + timedelta(days=RETENTION_DAYS)).timestamp())
    assert approved.record.expires_at is None
    ttl = dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == STATE_TABLE_TTL_ATTRIBUTE


def test_pending_approvals_are_per_team_oldest_first_and_only_while_pending(dynamodb: Any, store: FindingStore) -> None:
    # GIVEN findings of two teams, received in this order, all pending
    for finding_id, team in [("p-1", "payments"), ("a-1", "analytics"), ("p-2", "payments"), ("p-3", "payments")]:
        received(store, finding_id, team=team)
        store.transition(finding_id, expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="p")
    # ... and one that is not pending at all
    received(store, "n-1", action=Action.NOTIFY)
    store.transition("n-1", expected={State.RECEIVED}, target=State.NOTIFIED, actor="h", event="p")
    # WHEN p-2 is approved (it leaves the index)
    store.transition("p-2", expected={State.PENDING_APPROVAL}, target=State.APPROVED, actor="U0ALICE", event="c")
    # THEN each team sees its own pending findings, oldest first
    assert [r.finding_id for r in store.pending_approvals("payments")] == ["p-1", "p-3"]
    assert [r.finding_id for r in store.pending_approvals("analytics")] == ["a-1"]
    assert [r.finding_id for r in store.pending_approvals()] == ["p-1", "a-1", "p-3"]
    assert [r.finding_id for r in store.pending_approvals(limit=1)] == ["p-1"]
    assert store.pending_approvals("nobody") == []
    # AND the index is sparse: only the pending items carry its partition key
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert sorted(i["finding_id"]["S"] for i in items if PENDING_INDEX_PARTITION in i) == ["a-1", "p-1", "p-3"]
    with pytest.raises(ValueError):
        store.pending_approvals(limit=0)


def test_pending_approvals_pages_through_a_long_queue(store: FindingStore) -> None:
    for n in range(7):
        received(store, f"p-{n}")
        store.transition(f"p-{n}", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="p")
    assert [r.finding_id for r in store.pending_approvals("payments", limit=5)] == [f"p-{n}" for n in range(5)]
    assert len(store.pending_approvals("payments", limit=100)) == 7


def test_the_intake_lease_excludes_a_second_holder_until_it_expires_or_is_released(store: FindingStore) -> None:
    # GIVEN a finding whose intake lease is held by invocation A until 10:00
    deadline = START + timedelta(hours=1)
    store.create_received(
        "f-1",
        event_id="e",
        action=Action.REVIEW,
        reason="r",
        actor="h",
        intake_owner="A",
        intake_until=deadline,
    )
    # WHEN invocation B tries to claim it, THEN it cannot, and A can re-claim its own
    assert not store.claim_intake("f-1", owner="B", until=deadline).applied
    assert store.claim_intake("f-1", owner="A", until=deadline).applied
    # WHEN B releases (not its lease) nothing happens; WHEN A releases, B can claim
    store.release_intake("f-1", owner="B")
    assert not store.claim_intake("f-1", owner="B", until=deadline).applied
    store.release_intake("f-1", owner="A")
    claimed = store.claim_intake("f-1", owner="B", until=deadline)
    assert claimed.applied and claimed.record.intake_owner == "B"


def test_an_expired_intake_lease_can_be_taken_over(dynamodb: Any) -> None:
    # GIVEN a lease that expired (its holder's Lambda deadline has passed)
    store = FindingStore(dynamodb, TABLE, clock=SteppingClock(START))
    store.create_received(
        "f-1",
        event_id="e",
        action=Action.REVIEW,
        reason="r",
        actor="h",
        intake_owner="crashed",
        intake_until=START - timedelta(seconds=1),
    )
    # WHEN another delivery claims it THEN it gets it
    assert store.claim_intake("f-1", owner="next", until=START + timedelta(minutes=5)).applied


# -- combined writes (the finding handler's post -> ts + transition -> release in fewer round trips) ---------


def leased(store: FindingStore, finding_id: str, owner: str = "A") -> None:
    created = store.create_received(
        finding_id,
        event_id="e",
        action=Action.REVIEW,
        reason="r",
        actor="finding-handler",
        team="payments",
        channel="C0PAYMENTS",
        intake_owner=owner,
        intake_until=START + timedelta(hours=1),
    )
    assert created.applied


def test_a_transition_can_record_the_message_and_give_the_lease_back_in_the_same_write(store: FindingStore) -> None:
    # GIVEN a RECEIVED finding whose intake lease A holds
    leased(store, "f-1")
    # WHEN A makes the transition with the posted message and its lease
    result = store.transition(
        "f-1",
        expected={State.RECEIVED},
        target=State.PENDING_APPROVAL,
        actor="finding-handler",
        event="decided",
        slack_message=PostedMessage("C0PAYMENTS", "1700000000.000100", "finding-handler"),
        release_intake_of="A",
    )
    # THEN all three happened at once: message, state, lease given back, and both steps audited in order
    assert result.applied
    record = store.get("f-1")
    assert record == result.record
    assert (record.slack_channel, record.slack_ts) == ("C0PAYMENTS", "1700000000.000100")
    assert record.state is State.PENDING_APPROVAL
    assert record.intake_owner is None and record.intake_until is None
    assert [(e.event, e.outcome, e.detail) for e in record.audit[1:]] == [
        ("slack_posted", "posted", "C0PAYMENTS 1700000000.000100"),
        ("decided", "PENDING_APPROVAL", ""),
    ]


def test_a_combined_transition_keeps_a_lease_that_is_no_longer_its_own(store: FindingStore) -> None:
    # GIVEN a RECEIVED finding whose lease B took over (A's deadline passed)
    leased(store, "f-1", owner="B")
    # WHEN A, late, makes the transition and offers to give back "its" lease
    result = store.transition(
        "f-1", expected={State.RECEIVED}, target=State.IGNORED, actor="h", event="decided", release_intake_of="A"
    )
    # THEN the transition is made (as the plain transition would be) and B's lease is left alone
    assert result.applied and result.record.state is State.IGNORED
    assert result.record.intake_owner == "B"


def test_a_combined_transition_keeps_the_first_message_recorded(store: FindingStore) -> None:
    # GIVEN a finding that already shows message .100
    leased(store, "f-1")
    store.set_slack_message("f-1", channel="C0PAYMENTS", ts="1700000000.000100", actor="h")
    # WHEN a transition offers another message
    result = store.transition(
        "f-1",
        expected={State.RECEIVED},
        target=State.PENDING_APPROVAL,
        actor="h",
        event="decided",
        slack_message=PostedMessage("C0PAYMENTS", "1700000000.000200", "h"),
        release_intake_of="A",
    )
    # THEN the transition and the release are made, the first message is kept and the second is not audited
    assert result.applied and result.record.state is State.PENDING_APPROVAL
    assert result.record.slack_ts == "1700000000.000100"
    assert result.record.intake_owner is None
    assert [e.event for e in result.record.audit].count("slack_posted") == 1


def test_a_combined_transition_from_the_wrong_state_writes_nothing(store: FindingStore) -> None:
    # GIVEN a finding that moved on (the lease is still A's)
    leased(store, "f-1")
    store.transition("f-1", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="h", event="d")
    before = store.get("f-1")
    # WHEN a combined transition from RECEIVED comes
    result = store.transition(
        "f-1",
        expected={State.RECEIVED},
        target=State.NOTIFIED,
        actor="h",
        event="decided",
        slack_message=PostedMessage("C0PAYMENTS", "1700000000.000300", "h"),
        release_intake_of="A",
    )
    # THEN none of its parts is written, and the caller sees the record as it is
    assert not result.applied
    assert result.record == before == store.get("f-1")
    assert result.record.slack_ts is None and result.record.intake_owner == "A"


def test_append_audit_can_give_the_lease_back_and_keeps_another_owners(
    store: FindingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    leased(store, "f-1")
    leased(store, "f-2", owner="B")
    # WHEN A marks its job queued and gives back its lease, on its own finding and on one B holds
    mine = store.append_audit(
        "f-1", actor="auto", event="job_queued", outcome="queued", updates={"job_queued_at": "t"}, release_intake_of="A"
    )
    theirs = store.append_audit(
        "f-2", actor="auto", event="job_queued", outcome="queued", updates={"job_queued_at": "t"}, release_intake_of="A"
    )
    # THEN both are audited; only A's lease is given back
    assert mine.applied and mine.record.job_queued_at == "t" and mine.record.intake_owner is None
    assert theirs.applied and theirs.record.job_queued_at == "t" and theirs.record.intake_owner == "B"
    # AND a full audit trail still refuses the entry, lease included (the caller releases it on its own)
    monkeypatch.setattr("macie_chatops.store.MAX_AUDIT_ENTRIES", 1)
    leased(store, "f-3")
    full = store.append_audit("f-3", actor="auto", event="e", outcome="o", release_intake_of="A")
    assert not full.applied and full.record.intake_owner == "A" and len(full.record.audit) == 1


# -- object-version claims -------------------------------------------------------------------------------------

VERSION = ObjectVersion("345678901234", "payments-data", "exports/ünïcode key+%20.csv", "3HL4kqtJlcpXroDTDmJ")


def test_the_first_claim_of_an_object_version_wins_and_is_idempotent_for_its_holder(
    store: FindingStore, dynamodb: Any
) -> None:
    # GIVEN no claim WHEN a finding claims the version THEN it holds it, with the final records' TTL
    assert store.object_claim(VERSION) is None
    first = store.claim_object(VERSION, finding_id="f-1")
    assert (first.key, first.finding_id, first.version) == (VERSION.claim_key, "f-1", VERSION)
    # WHEN the holder claims again (a redelivery, the remediator) THEN nothing changes, its first time kept
    assert store.claim_object(VERSION, finding_id="f-1") == first
    # WHEN another finding claims it THEN it is refused and learns the holder
    assert store.claim_object(VERSION, finding_id="f-2") == first
    assert store.object_claim(VERSION) == first
    # AND the claim item carries the TTL and none of the indexes' keys; it is no finding record
    (item,) = dynamodb.scan(TableName=TABLE)["Items"]
    claimed_at = datetime.fromisoformat(first.claimed_at.replace("Z", "+00:00"))
    assert int(item[STATE_TABLE_TTL_ATTRIBUTE]["N"]) == int((claimed_at + timedelta(days=RETENTION_DAYS)).timestamp())
    assert not set(item) & {PENDING_INDEX_PARTITION, APPROVED_INDEX_PARTITION, APPROVED_INDEX_SORT, "state"}
    assert item["item_type"] == {"S": CLAIM_ITEM_TYPE}
    assert store.get(VERSION.claim_key) is None
    assert store.pending_approvals() == [] and store.approved_before(START + timedelta(days=1)) == []


def test_concurrent_claims_of_one_version_have_one_winner(store: FindingStore, atomic_moto: None) -> None:
    # GIVEN eight findings claiming one object version at the same moment
    barrier = threading.Barrier(8)
    holders: list[str] = []

    def claim(finding_id: str) -> None:
        barrier.wait()
        holders.append(store.claim_object(VERSION, finding_id=finding_id).finding_id)

    threads = [threading.Thread(target=claim, args=(f"f-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN every one of them was told the same holder, the one the table keeps
    claim_now = store.object_claim(VERSION)
    assert claim_now is not None
    assert holders == [claim_now.finding_id] * 8


def test_other_object_versions_are_claimed_apart(store: FindingStore) -> None:
    others = [
        dataclasses.replace(VERSION, version="another-version"),
        dataclasses.replace(VERSION, account_id="111111111111"),
        dataclasses.replace(VERSION, key="exports/other.csv"),
    ]
    assert [store.claim_object(v, finding_id=f"f-{n}").finding_id for n, v in enumerate([VERSION, *others])] == [
        "f-0",
        "f-1",
        "f-2",
        "f-3",
    ]
