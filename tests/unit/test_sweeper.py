"""The sweeper's pure decisions: which approved findings get their job re-queued, when it gives up, and the
policy read from the environment."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from macie_chatops import names
from macie_chatops.slack_messages import build_stuck_message
from macie_chatops.states import State
from macie_chatops.store import AuditEntry, FindingRecord
from macie_chatops.summary import FindingSummary
from macie_chatops.sweeper import (
    DEFAULT_MAX_REQUEUES,
    DEFAULT_STALE_AFTER,
    EVENT_GAVE_UP,
    EVENT_OPERATOR_REQUEUED,
    EVENT_REQUEUED,
    SweepPolicy,
    Verdict,
    plan_sweep,
)

RECORDS = Path(__file__).resolve().parents[1] / "records"
POLICY = SweepPolicy(stale_after=timedelta(minutes=30), max_requeues=3)
APPROVED_AT = datetime(2026, 11, 27, 10, 0, 30, tzinfo=UTC)


def load_record(name: str) -> FindingRecord:
    """A record fixture (tests/records/NAME.json, plain JSON) as the store reads it from DynamoDB."""
    data = json.loads((RECORDS / f"{name}.json").read_text(encoding="utf-8"))
    serializer = TypeSerializer()
    return FindingRecord.from_item({key: serializer.serialize(value) for key, value in data.items()})


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def approved(*audit: AuditEntry, approved_at: datetime | None = APPROVED_AT) -> FindingRecord:
    """A finding approved at ``approved_at`` by U0ALICE, then ``audit``."""
    at = _iso(approved_at or APPROVED_AT)
    return FindingRecord(
        finding_id="f-1",
        state=State.APPROVED,
        received_at="2026-11-27T10:00:00.000000Z",
        updated_at=at,
        approver="U0ALICE",
        approved_at=_iso(approved_at) if approved_at else None,
        audit=(AuditEntry(at=at, actor="U0ALICE", event="click:remediate", outcome="APPROVED"), *audit),
    )


def entry(event: str, after: timedelta, actor: str = "sweeper") -> AuditEntry:
    return AuditEntry(at=_iso(APPROVED_AT + after), actor=actor, event=event, outcome="requeued")


@pytest.mark.parametrize("state", [s for s in State if s is not State.APPROVED])
def test_a_finding_in_any_other_state_is_left_alone(state: State) -> None:
    # GIVEN a finding long past the threshold, but not APPROVED
    record = dataclasses.replace(approved(), state=state)
    # WHEN the sweeper decides  THEN it leaves it
    step = plan_sweep(record, now=APPROVED_AT + timedelta(days=3), policy=POLICY)
    assert step.verdict is Verdict.LEAVE
    assert state.value in step.reason


def test_a_fresh_approval_is_left_to_its_job() -> None:
    # GIVEN a finding approved 29 minutes ago  WHEN the sweeper decides  THEN it waits
    step = plan_sweep(approved(), now=APPROVED_AT + timedelta(minutes=29), policy=POLICY)
    assert step.verdict is Verdict.LEAVE
    assert step.reason == "waiting 29 min of 30"


def test_a_stale_approval_gets_its_first_requeue() -> None:
    # GIVEN a finding approved 31 minutes ago with no outcome  WHEN the sweeper decides  THEN it re-queues it
    step = plan_sweep(approved(), now=APPROVED_AT + timedelta(minutes=31), policy=POLICY)
    assert step.verdict is Verdict.REQUEUE
    assert step.requeues == 0
    assert step.waiting_since == _iso(APPROVED_AT)
    assert "re-queue 1 of 3" in step.reason


def test_each_requeue_gets_the_whole_wait_before_the_next() -> None:
    # GIVEN a stale approval re-queued once, 10 minutes ago
    record = approved(entry(EVENT_REQUEUED, timedelta(minutes=40)))
    # WHEN the sweeper decides  THEN it waits for that job
    assert plan_sweep(record, now=APPROVED_AT + timedelta(minutes=50), policy=POLICY).verdict is Verdict.LEAVE
    # AND once that wait is over too, re-queues it a second time
    later = plan_sweep(record, now=APPROVED_AT + timedelta(minutes=71), policy=POLICY)
    assert (later.verdict, later.requeues) == (Verdict.REQUEUE, 1)
    assert "re-queue 2 of 3" in later.reason


def test_after_the_last_allowed_requeue_it_gives_up() -> None:
    # GIVEN the fixture: approved, re-queued 3 times by the sweeper, the last one 30 minutes ago
    record = load_record("approved-requeued-three-times")
    last = datetime(2026, 11, 27, 11, 31, tzinfo=UTC)
    # WHEN the sweeper decides before that last job's wait is over  THEN it still waits
    assert plan_sweep(record, now=last + timedelta(minutes=29), policy=POLICY).verdict is Verdict.LEAVE
    # WHEN it decides after  THEN it gives up (no fourth re-queue)
    step = plan_sweep(record, now=last + timedelta(minutes=31), policy=POLICY)
    assert step.verdict is Verdict.GIVE_UP
    assert step.requeues == 3
    assert step.waiting_since == "2026-11-27T10:00:30.000000Z"


def test_a_finding_given_up_on_stays_reported_as_stuck() -> None:
    # GIVEN the fixture, with the sweeper's give-up recorded
    record = load_record("approved-requeued-three-times")
    record = dataclasses.replace(record, audit=(*record.audit, entry(EVENT_GAVE_UP, timedelta(hours=2))))
    # WHEN later sweeps plan it  THEN it is still stuck, every time (nothing re-queued)
    for hours in (3, 30):
        step = plan_sweep(record, now=APPROVED_AT + timedelta(hours=hours), policy=POLICY)
        assert (step.verdict, step.requeues) == (Verdict.STILL_STUCK, 3)


def test_a_new_approval_starts_a_new_count() -> None:
    # GIVEN a finding re-queued three times, then FAILED and retried by an operator (a new approval)
    old = [entry(EVENT_REQUEUED, timedelta(minutes=m)) for m in (31, 61, 91)] + [
        entry(EVENT_GAVE_UP, timedelta(hours=2))
    ]
    reapproved = APPROVED_AT + timedelta(hours=5)
    record = approved(*old, approved_at=reapproved)
    # WHEN the new approval is stale  THEN its first re-queue comes, the old ones do not count
    step = plan_sweep(record, now=reapproved + timedelta(minutes=31), policy=POLICY)
    assert (step.verdict, step.requeues) == (Verdict.REQUEUE, 0)


def test_an_operator_requeue_gives_a_stuck_finding_a_fresh_set_of_sweeps() -> None:
    # GIVEN a stuck finding an operator re-queued at 3h
    old = [entry(EVENT_REQUEUED, timedelta(minutes=m)) for m in (31, 61, 91)] + [
        entry(EVENT_GAVE_UP, timedelta(hours=2))
    ]
    record = approved(*old, entry(EVENT_OPERATOR_REQUEUED, timedelta(hours=3), actor="cli:ops"))
    # WHEN the sweeper decides within that job's wait  THEN it waits
    assert plan_sweep(record, now=APPROVED_AT + timedelta(hours=3, minutes=10), policy=POLICY).verdict is Verdict.LEAVE
    # AND after it, it re-queues with a fresh count
    step = plan_sweep(record, now=APPROVED_AT + timedelta(hours=3, minutes=31), policy=POLICY)
    assert (step.verdict, step.requeues) == (Verdict.REQUEUE, 0)


def test_a_record_approved_before_the_index_existed_counts_from_its_audit() -> None:
    # GIVEN an approved record without approved_at (written by an earlier version)
    record = approved(entry(EVENT_REQUEUED, timedelta(minutes=31)), approved_at=None)
    # WHEN the sweeper decides  THEN the approval's audit entry dates it
    step = plan_sweep(record, now=APPROVED_AT + timedelta(minutes=62), policy=POLICY)
    assert (step.verdict, step.requeues, step.waiting_since) == (Verdict.REQUEUE, 1, _iso(APPROVED_AT))


def test_with_no_requeues_allowed_a_stale_approval_is_reported_at_once() -> None:
    policy = SweepPolicy(stale_after=timedelta(minutes=30), max_requeues=0)
    assert plan_sweep(approved(), now=APPROVED_AT + timedelta(hours=1), policy=policy).verdict is Verdict.GIVE_UP


def test_the_policy_comes_from_the_environment_or_the_defaults() -> None:
    # GIVEN no setting  THEN the defaults
    assert SweepPolicy.from_env({}) == SweepPolicy(DEFAULT_STALE_AFTER, DEFAULT_MAX_REQUEUES)
    # GIVEN both settings  THEN those
    env = {names.ENV_SWEEP_STALE_AFTER_S: "2700", names.ENV_SWEEP_MAX_REQUEUES: "5"}
    assert SweepPolicy.from_env(env) == SweepPolicy(timedelta(minutes=45), 5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({names.ENV_SWEEP_STALE_AFTER_S: "half an hour"}, "SWEEP_STALE_AFTER_SECONDS must be a whole number"),
        ({names.ENV_SWEEP_MAX_REQUEUES: "3.5"}, "SWEEP_MAX_REQUEUES must be a whole number"),
        ({names.ENV_SWEEP_STALE_AFTER_S: "0"}, "stale_after must be positive"),
        ({names.ENV_SWEEP_MAX_REQUEUES: "-1"}, "max_requeues must be 0 or more"),
    ],
)
def test_a_bad_policy_setting_is_refused_with_its_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SweepPolicy.from_env(env)


def _text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_the_stuck_message_says_who_approved_how_often_it_was_retried_and_what_to_run() -> None:
    # GIVEN a stuck finding whose key carries Slack markup
    summary = FindingSummary(
        finding_id="f-stuck-1",
        finding_type="SensitiveData:S3Object/Personal",
        severity="High",
        account_id="345678901234",
        region="us-east-1",
        bucket="payments-data",
        key="exports/<!channel> customers.csv",
        version_id="v1",
        etag="abc",
        size=42,
        storage_class="STANDARD",
        created_at="2026-11-27T09:00:00Z",
        origin="job 1234",
        team="payments",
        channel="C0PAYMENTS",
    )
    # WHEN its stuck message is built
    message = build_stuck_message(summary, approver="U0ALICE", at=_iso(APPROVED_AT), requeues=3)
    # THEN it validates as Slack blocks, names the approver, the count and the operator's command, no buttons
    blocks = message.block_dicts()
    text = _text(blocks)
    assert "Quarantine stuck" in message.text
    assert "<@U0ALICE>" in text and "re-queued 3 times" in text
    assert "macie-chatops sweep --requeue f-stuck-1" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert not [b for b in blocks if b["type"] == "actions"]
