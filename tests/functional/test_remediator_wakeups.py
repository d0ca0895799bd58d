"""A digest wake-up lost after a remediator's transition (docs/architecture.md §22): the job's outcome is recorded,
its group's counts moved and marked dirty, then the send to the digest queue fails and the job returns. Its
redelivery finds the outcome recorded (ALREADY_DONE) and re-sends the wake-up once the mark is stale. On moto (the
digest queue deleted at the send), the real mover, the Slack stand-in and the real digest writer."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from macie_chatops import names
from macie_chatops.approvals import ApprovalAction
from macie_chatops.config import Action
from macie_chatops.digest_writer import DigestOutcome, write_digest
from macie_chatops.group_store import (
    DIGEST_PACE_S,
    Grouping,
    GroupStore,
    NewMember,
    SqsDigestQueue,
    group_item_key,
)
from macie_chatops.groups import GroupKey
from macie_chatops.handlers import digests as digest_handler
from macie_chatops.handlers import remediation as handler
from macie_chatops.ports import Clock, utcnow
from macie_chatops.remediation import JobResult, RemediationDependencies, handle_job
from macie_chatops.states import State
from macie_chatops.store import FindingStore, StateChangeHookError
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import approval_signer, aws_client, shared_session
from tests.conftest import AwsSandbox
from tests.functional.remediator_world import PAYMENTS, TABLE, RemediatorWorld, Seeded, job, remediator_world

# The remediation queue's visibility timeout (6 x the function's 15 min): when a job that raised comes back.
REDELIVERED_AFTER = timedelta(minutes=90)
DIGEST_TAIL = (
    "SensitiveData:S3Object/Personal in s3://payments-prod-exports/ (payments-prod): 1 being quarantined, 1 quarantined"
)


@dataclasses.dataclass
class Flood:
    world: RemediatorWorld
    sqs: Any
    digest_queue_url: str
    group_id: str
    first: Seeded
    second: Seeded

    def deps(self, *, clock: Clock = utcnow) -> tuple[RemediationDependencies, list[str]]:
        """The remediator handler's dependencies, its finding and group stores and the digest queue on clients whose
        DynamoDB and SQS calls are noted (the member sessions' and KMS's are not); the group store on ``clock``."""
        real = handler.dependencies(handler.read_settings(), lambda: 900.0)
        calls: list[str] = []
        # clients of their own: the shared ones serve the test's setup and checks, which are not the job's calls
        dynamodb, sqs = (shared_session().client(service) for service in ("dynamodb", "sqs"))
        for client, service in ((dynamodb, "dynamodb"), (sqs, "sqs")):
            client.meta.events.register(f"before-call.{service}", lambda model, **_: calls.append(model.name))
        grouping = Grouping(GroupStore(dynamodb, TABLE, clock=clock), SqsDigestQueue(sqs, self.digest_queue_url))
        store = FindingStore(dynamodb, TABLE, on_state_change=grouping.state_changed)
        return dataclasses.replace(real, store=store, groups=grouping.store, digest_wakes=grouping), calls

    def wake_ups(self) -> list[str]:
        """The digest queue's messages due within the writer's pace (a lost wake-up's re-send), taken off the queue."""
        bodies: list[str] = []
        deadline = time.monotonic() + DIGEST_PACE_S + 2
        while time.monotonic() < deadline and self.queued() > 0:
            received = self.sqs.receive_message(
                QueueUrl=self.digest_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in received.get("Messages", []):
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.digest_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def empty_queue(self) -> None:
        """The digest queue without its messages (deleted and created again: SQS purges a queue once a minute)."""
        self.sqs.delete_queue(QueueUrl=self.digest_queue_url)
        assert self.sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"] == self.digest_queue_url

    def queued(self) -> int:
        """The digest queue's messages, delayed ones included (a clean group's wake-up waits for its next update)."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.digest_queue_url, AttributeNames=["All"])["Attributes"]
        depth = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        return sum(int(attributes[name]) for name in (*depth, "ApproximateNumberOfMessagesDelayed"))

    def write_digest(self, wake_up: str, *, clock_offset: timedelta) -> DigestOutcome:
        real = digest_handler.dependencies(digest_handler.read_settings(), lambda: 60.0)
        writer = dataclasses.replace(real, clock=lambda: datetime.now(UTC) + clock_offset)
        return write_digest(wake_up, writer)


@pytest.fixture
def flood(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flood]:
    """Two approved findings of one bucket in a group whose digest is the first one's message, rendered by the writer
    (the group is clean): the remediator's move of the second one is what marks it dirty next."""
    sqs = aws_client("sqs", aws.region)
    digest_queue_url = sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"]
    monkeypatch.setenv(names.ENV_DIGEST_QUEUE_URL, digest_queue_url)
    with remediator_world(aws, slack, tmp_path, monkeypatch) as world:
        digest_handler.clear_caches()
        first, second = world.seed("f-first", key="exports/a.csv"), world.seed("f-second", key="exports/b.csv")
        summary = first.summary
        key = GroupKey(PAYMENTS, summary.account_id, summary.bucket, summary.finding_type, Action.REVIEW)
        groups = GroupStore(aws_client("dynamodb", aws.region), TABLE)
        for seeded in (first, second):
            member = NewMember(seeded.finding_id, seeded.key, summary.severity, State.APPROVED)
            joined = groups.join(
                key, member, account_name="payments-prod", window=timedelta(seconds=60), max_age=timedelta(hours=1)
            )
        groups.record_digest(joined.group_id, channel=PAYMENTS, ts=first.ts)
        built = Flood(world, sqs, digest_queue_url, joined.group_id, first, second)
        rendered = built.write_digest(json.dumps({"group_id": joined.group_id}), clock_offset=timedelta(0))
        assert rendered is DigestOutcome.WRITTEN
        item = groups.item(joined.group_id)
        assert item is not None and not item.dirty and item.view.state_counts == {State.APPROVED: 2}
        built.empty_queue()  # the writer's wake-up for the group's close, a minute away
        yield built
        digest_handler.clear_caches()


def _move_whose_wake_up_fails(flood: Flood) -> None:
    """The second finding's quarantine job: moved and recorded, its group's counts moved and marked dirty, then the
    wake-up's send fails (the digest queue is gone; it is back after) and the job raises: it returns to the queue."""
    deps, calls = flood.deps()
    flood.sqs.delete_queue(QueueUrl=flood.digest_queue_url)
    with pytest.raises(StateChangeHookError) as raised:
        handle_job(job("quarantine", flood.second.finding_id).body, deps)
    assert isinstance(raised.value.__cause__, ClientError) and "NonExistentQueue" in str(raised.value.__cause__)
    # a first run's calls: the record, the object's claim, the outcome, the group's count and mark, the wake-up
    assert calls == ["GetItem", "UpdateItem", "UpdateItem", "UpdateItem", "SendMessage"]
    created = flood.sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"]
    assert created == flood.digest_queue_url and flood.queued() == 0
    assert flood.world.record(flood.second.finding_id).state is State.QUARANTINED
    # the hook raised at the send, after its one write: the counts were moved with the dirty mark, not lost
    item = GroupStore(aws_client("dynamodb"), TABLE).item(flood.group_id)
    assert item is not None and item.dirty
    assert item.view.state_counts == {State.APPROVED: 1, State.QUARANTINED: 1}


def test_a_first_run_wakes_the_writer_with_no_call_of_the_redelivery_check(flood: Flood) -> None:
    # GIVEN the digest queue is up WHEN the second finding's quarantine job runs for the first time
    deps, calls = flood.deps()
    assert handle_job(job("quarantine", flood.second.finding_id).body, deps) is JobResult.QUARANTINED
    # THEN its calls are the move's as before: the record, the claim, the outcome, the group's count and mark, the
    # wake-up, and the group read that leaves the digest to the writer; no read for a lost wake-up
    assert calls == ["GetItem", "UpdateItem", "UpdateItem", "UpdateItem", "SendMessage", "GetItem"]
    assert flood.queued() == 1  # the wake-up, delayed until the digest's next update is due


def test_a_redelivery_after_a_lost_wake_up_wakes_the_writer_once_the_mark_is_stale(flood: Flood) -> None:
    # GIVEN a move whose wake-up of the digest writer failed after its transition: the job returned
    _move_whose_wake_up_fails(flood)
    # WHEN the job comes back after the queue's visibility timeout (the mark is older than STALE_DIRTY)
    later = datetime.now(UTC) + REDELIVERED_AFTER
    deps, calls = flood.deps(clock=lambda: later)
    assert handle_job(job("quarantine", flood.second.finding_id).body, deps) is JobResult.ALREADY_DONE
    # THEN the record read, the group read, its stale mark re-armed, one wake-up sent; then the group read that
    # leaves the digest to the writer (no Slack update of the finding's own)
    assert calls == ["GetItem", "GetItem", "UpdateItem", "SendMessage", "GetItem"]
    (wake_up,) = flood.wake_ups()
    assert json.loads(wake_up) == {"group_id": flood.group_id} and flood.queued() == 0
    assert flood.world.slack.message(PAYMENTS, flood.second.ts).updates == ()
    # WHEN the woken writer runs THEN the digest shows the move and the group is clean
    assert flood.write_digest(wake_up, clock_offset=REDELIVERED_AFTER) is DigestOutcome.WRITTEN
    digest = flood.world.slack.message(PAYMENTS, flood.first.ts)
    assert len(digest.updates) == 2  # the render before the move, and this one
    assert digest.revisions[-1].text.endswith("2 findings: " + DIGEST_TAIL)
    item = GroupStore(aws_client("dynamodb"), TABLE).item(flood.group_id)
    assert item is not None and not item.dirty


def test_a_redelivery_while_the_mark_is_fresh_wakes_nobody(flood: Flood) -> None:
    # GIVEN a move whose wake-up failed, its job delivered again before the mark is stale (a duplicate job)
    _move_whose_wake_up_fails(flood)
    deps, calls = flood.deps()
    # WHEN it runs
    assert handle_job(job("quarantine", flood.second.finding_id).body, deps) is JobResult.ALREADY_DONE
    # THEN the group was read and nothing re-armed or sent: a fresh mark's wake-up is on its way, or the next
    # delivery or mark re-arms it once stale
    assert calls == ["GetItem", "GetItem", "GetItem"]
    assert flood.queued() == 0
    item = GroupStore(aws_client("dynamodb"), TABLE).item(flood.group_id)
    assert item is not None and item.dirty


def test_the_real_handler_re_sends_a_lost_wake_up(flood: Flood) -> None:
    # GIVEN a move whose wake-up failed, and its mark aged past STALE_DIRTY in the table (the redelivery's time)
    _move_whose_wake_up_fails(flood)
    aged = (datetime.now(UTC) - REDELIVERED_AFTER).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    aws_client("dynamodb").update_item(
        TableName=TABLE,
        Key={names.STATE_TABLE_KEY: {"S": group_item_key(flood.group_id)}},
        UpdateExpression="SET dirty_at = :aged",
        ExpressionAttributeValues={":aged": {"S": aged}},
    )
    handler.clear_caches()
    # WHEN the Lambda handler takes the job again THEN it is acknowledged and the writer is woken once
    assert flood.world.invoke(job("quarantine", flood.second.finding_id)) == []
    (wake_up,) = flood.wake_ups()
    assert json.loads(wake_up) == {"group_id": flood.group_id}


# -- a restore job: its outcome (RESTORED, or back in QUARANTINED when refused) is found by the redelivery -----------


def _clean(flood: Flood) -> None:
    """The writer rendered the group: its mark cleaned at the version it showed, its wake-ups gone."""
    groups = GroupStore(aws_client("dynamodb"), TABLE)
    item = groups.item(flood.group_id)
    assert item is not None and groups.clear_dirty(flood.group_id, version=item.view.version)
    flood.empty_queue()


def _restore_requested(flood: Flood, *, approved_action: ApprovalAction) -> None:
    """The second finding quarantined, then its restore requested by a click whose approval is signed for
    ``approved_action`` (not "restore": the remediator refuses it); the group clean after each."""
    deps, _ = flood.deps()
    assert handle_job(job("quarantine", flood.second.finding_id).body, deps) is JobResult.QUARANTINED
    _clean(flood)
    signer = approval_signer()
    assert signer is not None
    record = flood.world.record(flood.second.finding_id)
    stamp = signer.stamp(record, action=approved_action, approver="U0ALICE", at=datetime.now(UTC))
    requested = deps.store.transition(
        record.finding_id,
        expected={State.QUARANTINED},
        target=State.RESTORE_REQUESTED,
        actor="U0ALICE",
        event="click:restore",
        updates={"approval": stamp},
    )
    assert requested.applied
    _clean(flood)


@pytest.mark.parametrize(
    ("approved_action", "outcome", "result", "redelivered"),
    [
        # restored: the redelivery finds RESTORED (a Slack update only: the group read that leaves it to the writer)
        (
            "restore",
            State.RESTORED,
            JobResult.ALREADY_DONE,
            ["GetItem", "GetItem", "UpdateItem", "SendMessage", "GetItem"],
        ),
        # refused (the approval does not verify for a restore): back in QUARANTINED, the redelivery is stale
        ("quarantine", State.QUARANTINED, JobResult.STALE, ["GetItem", "GetItem", "UpdateItem", "SendMessage"]),
    ],
)
def test_a_restore_jobs_redelivery_after_a_lost_wake_up_wakes_the_writer(
    flood: Flood, approved_action: ApprovalAction, outcome: State, result: JobResult, redelivered: list[str]
) -> None:
    # GIVEN a quarantined grouped finding whose restore was requested, the group clean
    _restore_requested(flood, approved_action=approved_action)
    # WHEN its restore job records the outcome and the wake-up's send fails (the digest queue is gone)
    deps, _ = flood.deps()
    flood.sqs.delete_queue(QueueUrl=flood.digest_queue_url)
    with pytest.raises(StateChangeHookError):
        handle_job(job("restore", flood.second.finding_id).body, deps)
    assert flood.sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"] == flood.digest_queue_url
    # THEN the outcome is recorded and counted, the group dirty, and nobody was woken
    assert flood.world.record(flood.second.finding_id).state is outcome
    item = GroupStore(aws_client("dynamodb"), TABLE).item(flood.group_id)
    assert item is not None and item.dirty and item.view.state_counts == {State.APPROVED: 1, outcome: 1}
    assert flood.queued() == 0
    # WHEN the job comes back after the queue's visibility timeout
    later = datetime.now(UTC) + REDELIVERED_AFTER
    deps, calls = flood.deps(clock=lambda: later)
    assert handle_job(job("restore", flood.second.finding_id).body, deps) is result
    # THEN the stale mark is re-armed and the writer woken once
    assert calls == redelivered
    (wake_up,) = flood.wake_ups()
    assert json.loads(wake_up) == {"group_id": flood.group_id} and flood.queued() == 0


def test_a_refused_jobs_redelivery_after_a_lost_wake_up_wakes_the_writer(flood: Flood) -> None:
    # GIVEN the second finding's approval signed for another action (it does not verify for a quarantine)
    signer = approval_signer()
    assert signer is not None
    record = flood.world.record(flood.second.finding_id)
    stamp = signer.stamp(record, action="restore", approver="U0ALICE", at=datetime.now(UTC))
    flood.world.store.append_audit(record.finding_id, actor="t", event="t", outcome="t", updates={"approval": stamp})
    # WHEN its quarantine job refuses it (FAILED, counted) and the wake-up's send fails: the job returns
    deps, _ = flood.deps()
    flood.sqs.delete_queue(QueueUrl=flood.digest_queue_url)
    with pytest.raises(StateChangeHookError):
        handle_job(job("quarantine", flood.second.finding_id).body, deps)
    assert flood.sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"] == flood.digest_queue_url
    assert flood.world.record(flood.second.finding_id).state is State.FAILED
    item = GroupStore(aws_client("dynamodb"), TABLE).item(flood.group_id)
    assert item is not None and item.dirty and item.view.state_counts == {State.APPROVED: 1, State.FAILED: 1}
    # WHEN the job comes back after the queue's visibility timeout
    later = datetime.now(UTC) + REDELIVERED_AFTER
    deps, calls = flood.deps(clock=lambda: later)
    assert handle_job(job("quarantine", flood.second.finding_id).body, deps) is JobResult.UNVERIFIED
    # THEN refused again (an audit entry, no transition), the stale mark re-armed and the writer woken once; then the
    # group read that leaves the digest to the writer
    assert calls == ["GetItem", "UpdateItem", "GetItem", "UpdateItem", "SendMessage", "GetItem"]
    (wake_up,) = flood.wake_ups()
    assert json.loads(wake_up) == {"group_id": flood.group_id} and flood.queued() == 0
