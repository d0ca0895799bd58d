"""Issue 18's two folds in the finding handler (docs/architecture.md §5, §22, §23), on moto's server and the Slack
stand-in: a group's later auto member is born APPROVED in its creation (no decided UpdateItem), and a batch's auto
jobs go out in one SendMessageBatch; every crash, refusal and redelivery still ends with the job sent."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops.approvals import ApprovalSigner, ApprovalVerifier
from macie_chatops.group_store import Grouping, GroupStore
from macie_chatops.handlers import intake as intake_handler
from macie_chatops.intake import IntakeDependencies, IntakeResult, handle_record, send_auto_jobs
from macie_chatops.job_queue import JobBatch, SqsJobQueue
from macie_chatops.jobs import RemediationJob
from macie_chatops.ports import Clock, utcnow
from macie_chatops.security_hub import change_of, update_for
from macie_chatops.states import State
from macie_chatops.store import (
    FindingRecord,
    FindingStore,
    IllegalTransitionError,
    RecordUpdates,
    create_state_table,
)
from macie_chatops.summary import ObjectVersion
from macie_chatops.sweeper import SweepDependencies, Verdict, sweep
from macie_chatops.vocabulary import Action
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import aws_client, create_remediation_queue, shared_session
from tests.conftest import EVENTS_DIR, AwsSandbox
from tests.functional.test_floods import (
    PAYMENTS,
    TABLE,
    Delivery,
    DiesOnceCreated,
    World,
    _config,
    _world,
    first_group,
)


def auto_event(n: int) -> Delivery:
    """credentials-auto.json (payments-prod, policy auto) about object ``n``: its own finding id, key, version."""
    event = copy.deepcopy(json.loads((EVENTS_DIR / "credentials-auto.json").read_text(encoding="utf-8")))
    detail = event["detail"]
    detail["id"] = f"{n:032x}"
    s3 = detail["resourcesAffected"]["s3Object"]
    s3["key"] = f"ci/deploy/{n:05d}.aws-credentials"
    s3["versionId"] = f"v{n:05d}"
    s3["path"] = f"{detail['resourcesAffected']['s3Bucket']['name']}/{s3['key']}"
    return Delivery(json.dumps(event))


def fid(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield _world(aws, slack, tmp_path, monkeypatch, _config(60))
    intake_handler.clear_caches()


def counted_intake(world: World, *, clock: Clock = utcnow) -> tuple[IntakeDependencies, list[str]]:
    """The finding handler's dependencies with its finding and group stores, its signer and its job queue on clients
    whose calls are noted, in order (the exemptions, the pacer and the digest queue keep their own clients)."""
    settings = intake_handler.read_settings()
    real = intake_handler.dependencies(settings, lambda: 60.0)
    assert real.groups is not None and real.signer is not None
    calls: list[str] = []

    def noted(service: str) -> Any:
        client = shared_session().client(service)
        client.meta.events.register(f"before-call.{service}", lambda model, **_: calls.append(model.name))
        return client

    dynamodb = noted("dynamodb")
    grouping = Grouping(GroupStore(dynamodb, TABLE, clock=clock), real.groups.digests)
    store = FindingStore(dynamodb, TABLE, on_state_change=grouping.state_changed)
    signer = ApprovalSigner(noted("kms"), real.signer.key_id)
    queue = SqsJobQueue(noted("sqs"), settings.queue_url)
    return replace(real, store=store, groups=grouping, signer=signer, queue=queue), calls


def take(delivery: Delivery, deps: IntakeDependencies, *, deadline_s: float = 60) -> IntakeResult:
    deadline = datetime.now(UTC) + timedelta(seconds=deadline_s)
    return handle_record(delivery.body, deps, attempt=f"attempt-{time.monotonic_ns()}", deadline=deadline).result


def jobs_of(world: World) -> list[str]:
    """The finding ids of the jobs on the remediation queue, taken off it; each body exactly as the job renders it."""
    queue_url = intake_handler.read_settings().queue_url
    found: list[str] = []
    while messages := world.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            job = RemediationJob.from_message(message["Body"])
            assert message["Body"] == job.to_message()  # byte for byte what SendMessage sent
            found.append(job.finding_id)
            world.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(found)


def handler_sqs() -> Any:
    """The SQS client the finding handler's container keeps (its job batches go through it)."""
    return intake_handler._cache.client("sqs", intake_handler.read_settings(), intake_handler.AWS_TIMEOUTS)


@pytest.fixture
def job_sends() -> Iterator[list[str]]:
    """The finding handler's calls to the remediation queue, in order."""
    queue_url = intake_handler.read_settings().queue_url
    calls: list[str] = []

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        if params.get("QueueUrl") == queue_url:
            calls.append(model.name)

    client = handler_sqs()
    client.meta.events.register("before-parameter-build.sqs", note, unique_id="test-intake-folds-job-sends")
    yield calls
    client.meta.events.unregister("before-parameter-build.sqs", unique_id="test-intake-folds-job-sends")


def born_approved(record: FindingRecord, group_id: str, seq: int) -> None:
    """``record`` is its group's member ``seq``, created APPROVED by auto: as the decided transition leaves it."""
    assert (record.state, record.group_id, record.group_seq) == (State.APPROVED, group_id, seq)
    assert record.approver == "auto" and record.approval is not None and record.approval["approver"] == "auto"
    assert record.previous_state is State.RECEIVED and record.approved_at is not None
    assert record.intake_owner is None and record.intake_until is None and record.slack_ts is None
    assert record.object_claimed_at is not None and record.job_queued_at is None
    assert [(e.actor, e.event, e.outcome) for e in record.audit] == [
        ("finding-handler", "received", "RECEIVED"),
        ("auto", "decided", "APPROVED"),
    ]


# -- 1. a later member is born decided ---------------------------------------------------------------------------


def test_a_later_auto_member_is_created_approved_with_no_write_of_its_own(world: World) -> None:
    # GIVEN grouping on, the finding handler's AWS calls noted (its group store's clock stopped: what it remembers of
    # the group cannot age on a loaded machine)
    stopped = datetime.now(UTC)
    deps, calls = counted_intake(world, clock=lambda: stopped)
    # WHEN a group's first auto finding is taken THEN its approval signed before its creation, the pointer read, one
    # transaction (group opened, record and claim created RECEIVED), the decided transition after the post (carrying
    # that approval: no second MAC), the digest recorded, the job
    assert take(auto_event(1), deps) is IntakeResult.DONE
    assert calls == ["GenerateMac", "GetItem", "TransactWriteItems", "UpdateItem", "UpdateItem", "SendMessage"]
    # WHEN a second one is taken THEN the MAC, the group read, one transaction that creates it APPROVED, the job
    calls.clear()
    assert take(auto_event(2), deps) is IntakeResult.DONE
    assert calls == ["GenerateMac", "GetItem", "TransactWriteItems", "SendMessage"]
    # WHEN a third one is taken THEN exactly TransactWriteItems + GenerateMac + SendMessage
    calls.clear()
    assert take(auto_event(3), deps) is IntakeResult.DONE
    assert calls == ["GenerateMac", "TransactWriteItems", "SendMessage"]
    # AND the first was decided as before; the others were born approved, members of its group
    first = world.record(fid(1))
    assert (first.state, first.group_seq, first.approver, first.intake_owner) == (State.APPROVED, 1, "auto", None)
    assert [e.event for e in first.audit] == ["received", "slack_posted", "decided"]
    group_id = first_group(world, fid(1))
    born_approved(world.record(fid(2)), group_id, 2)
    born_approved(world.record(fid(3)), group_id, 3)
    # AND one message, the counts as the joins counted them, each job once
    assert len(world.slack.messages(PAYMENTS)) == 1
    view = world.groups.view(group_id)
    assert view is not None and view.member_count == 3 and view.state_counts == {State.APPROVED: 3}
    assert jobs_of(world) == [fid(1), fid(2), fid(3)]


def test_the_born_approval_verifies_as_the_remediator_verifies_it(world: World) -> None:
    # GIVEN a group's second auto finding, born approved
    assert world.intake(auto_event(1), auto_event(2)) == []
    record = world.record(fid(2))
    # WHEN the remediator's verifier checks its approval (KMS VerifyMac with the configured key) THEN it verifies, by
    # auto; and the first member's approval, signed before its creation and stored in its transition, too
    signer = intake_handler.dependencies(intake_handler.read_settings(), lambda: 60.0).signer
    assert signer is not None
    verifier = ApprovalVerifier(aws_client("kms"), signer.key_id)
    assert verifier.verify(record, "quarantine").verified
    assert verifier.verify(world.record(fid(1)), "quarantine").verified


def test_a_crash_after_a_born_approved_creation_sends_the_job_on_redelivery(world: World) -> None:
    # GIVEN a group of one, and a second auto finding whose attempt died right after its creation (born APPROVED),
    # before its job was sent
    assert world.intake(auto_event(1)) == []
    assert jobs_of(world) == [fid(1)]
    deps, _ = counted_intake(world)
    with pytest.raises(RuntimeError, match="simulated crash"):
        take(auto_event(2), replace(deps, store=DiesOnceCreated(aws_client("dynamodb"), TABLE)), deadline_s=0)
    born_approved(world.record(fid(2)), first_group(world, fid(1)), 2)
    assert jobs_of(world) == []
    # WHEN SQS delivers it again
    deps, calls = counted_intake(world)
    assert take(auto_event(2), deps) is IntakeResult.DONE
    # THEN it finds it APPROVED by auto with no job's receipt and sends the job: once, nothing re-recorded or joined
    assert jobs_of(world) == [fid(2)]
    assert calls.count("SendMessage") == 1 and calls.count("TransactWriteItems") == 1
    born_approved(world.record(fid(2)), first_group(world, fid(1)), 2)
    view = world.groups.view(first_group(world, fid(1)))
    assert view is not None and view.member_count == 2 and view.state_counts == {State.APPROVED: 2}


def test_a_duplicate_delivery_of_a_born_approved_member_sends_its_job_again_and_joins_nothing(world: World) -> None:
    # GIVEN two auto findings of a group, taken and their jobs sent
    second = auto_event(2)
    assert world.intake(auto_event(1), second) == []
    assert jobs_of(world) == [fid(1), fid(2)]
    # WHEN the second is delivered again
    assert world.intake(second.again()) == []
    # THEN its job goes again (nothing marks a sent job: §5; the remediator moves the version once), and nothing else
    assert jobs_of(world) == [fid(2)]
    born_approved(world.record(fid(2)), first_group(world, fid(1)), 2)
    view = world.groups.view(first_group(world, fid(1)))
    assert view is not None and view.member_count == 2
    assert len(world.slack.messages(PAYMENTS)) == 1


def test_the_sweeper_requeues_a_born_approved_member_whose_job_was_lost(world: World) -> None:
    # GIVEN a group's second auto finding, born approved, whose job never left (its batch died before the flush)
    assert world.intake(auto_event(1)) == []
    assert jobs_of(world) == [fid(1)]
    deps, _ = counted_intake(world)
    lost = JobBatch(SqsJobQueue(aws_client("sqs"), intake_handler.read_settings().queue_url))
    assert take(auto_event(2), replace(deps, outbox=lost.outbox("lost"))) is IntakeResult.DONE
    assert jobs_of(world) == []
    # WHEN the sweeper runs once the approval is stale
    signer = deps.signer
    assert signer is not None
    later = datetime.now(UTC) + timedelta(hours=1)
    report = sweep(
        SweepDependencies(
            store=world.store,
            queue=deps.queue,
            slack=None,
            clock=lambda: later,
            verifier=ApprovalVerifier(aws_client("kms"), signer.key_id),
        )
    )
    # THEN it finds it on the approved index, verifies its approval and queues its job again
    outcomes = {outcome.finding_id: outcome.verdict for outcome in report.outcomes}
    assert outcomes[fid(2)] is Verdict.REQUEUE
    assert fid(2) in jobs_of(world)


def test_the_security_hub_updater_tells_nothing_of_a_record_inserted_approved(world: World) -> None:
    # GIVEN a group's second auto finding, born approved: the stream shows an INSERT already APPROVED (no MODIFY
    # from RECEIVED)
    assert world.intake(auto_event(1), auto_event(2)) == []
    item = aws_client("dynamodb").get_item(TableName=TABLE, Key={"finding_id": {"S": fid(2)}}, ConsistentRead=True)
    change = change_of({"eventName": "INSERT", "dynamodb": {"NewImage": item["Item"]}})
    # THEN it reads as entering APPROVED, which Security Hub is not told about (as the MODIFY into it was not)
    assert change is not None and change.previous is None and change.record.state is State.APPROVED
    assert update_for(change.record) is None


# -- the store: born decided is created then transitioned ----------------------------------------------------------


class Ticks:
    """A clock that moves one second per reading, from the same start for every instance."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


TRANSITION_UPDATES: dict[State, RecordUpdates] = {
    State.APPROVED: {
        "approver": "auto",
        "approval": {"action": "quarantine", "approver": "auto", "at": "2026-12-05T12:00:01.000000Z", "mac": "bWFj"},
        "error": None,
    },
    State.PENDING_APPROVAL: {"error": None},
    State.NOTIFIED: {"error": None},
}


@pytest.mark.parametrize("target", list(TRANSITION_UPDATES), ids=lambda state: state.value)
def test_a_record_born_decided_is_the_record_created_then_transitioned(aws: AwsSandbox, target: State) -> None:
    # GIVEN two state tables, a store on each with the same clock readings, and the same RECEIVED record (with its
    # claim, its intake lease and its group)
    dynamodb = aws_client("dynamodb")
    tables = [f"born-{target.value.lower()}-{side}" for side in ("transitioned", "born")]
    stores = []
    for table in tables:
        create_state_table(dynamodb, table)
        stores.append(FindingStore(dynamodb, table, clock=Ticks()))
    news = [
        store.new_record(
            fid(7),
            event_id="event-7",
            action=target_action(target),
            reason="the policy says so",
            actor="finding-handler",
            account_id="345678901234",
            team="payments",
            channel=PAYMENTS,
            intake_owner="attempt-1",
            intake_until=datetime(2026, 12, 5, 12, 5, tzinfo=UTC),
            claim=ObjectVersion("345678901234", "payments-prod-exports", "ci/deploy/7", "v7"),
        )
        for store in stores
    ]
    group = ("f" * 32, 2)
    decided: dict[str, Any] = {"target": target, "actor": "auto", "event": "decided", "detail": "the policy says so"}
    # WHEN one is created, then transitioned out of RECEIVED (the lease released, no message)
    dynamodb.transact_write_items(TransactItems=stores[0].creation_items(news[0], group=group))
    moved = stores[0].transition(
        fid(7),
        expected={State.RECEIVED},
        updates=TRANSITION_UPDATES[target],
        release_intake_of="attempt-1",
        **decided,
    )
    assert moved.applied
    # AND the other is born in that state
    born = stores[1].decided_at_creation(news[1], updates=TRANSITION_UPDATES[target], **decided)
    dynamodb.transact_write_items(TransactItems=stores[1].creation_items(born, group=group))
    # THEN the two items read back from moto are equal, attribute by attribute (timestamps included: same readings)
    items = [
        dynamodb.get_item(TableName=table, Key={"finding_id": {"S": fid(7)}}, ConsistentRead=True)["Item"]
        for table in tables
    ]
    assert items[0] == items[1]
    assert items[1]["state"] == {"S": target.value} and "intake_owner" not in items[1]
    # AND what the store says it wrote is what was written
    assert stores[1].created(born, group=group) == FindingRecord.from_item(items[1]) == moved.record


def target_action(target: State) -> Action:
    return {State.APPROVED: Action.AUTO, State.PENDING_APPROVAL: Action.REVIEW, State.NOTIFIED: Action.NOTIFY}[target]


def test_a_record_is_born_only_in_a_state_received_can_reach_and_only_with_its_join(aws: AwsSandbox) -> None:
    # GIVEN a store and a RECEIVED record
    dynamodb = aws_client("dynamodb")
    create_state_table(dynamodb, "born-refused")
    store = FindingStore(dynamodb, "born-refused")
    new = store.new_record(fid(8), event_id="e", action=target_action(State.APPROVED), reason="r", actor="a")
    # WHEN it would be born in a state RECEIVED cannot move to THEN nothing is built
    with pytest.raises(IllegalTransitionError):
        store.decided_at_creation(new, target=State.QUARANTINED, actor="auto", event="decided")
    # WHEN a record born decided is created alone THEN it is refused: it is written with its group's join only
    born = store.decided_at_creation(new, target=State.APPROVED, actor="auto", event="decided")
    with pytest.raises(ValueError, match="born decided"):
        store.create(born)
    assert store.get(fid(8)) is None


# -- 2. a batch's jobs in one SendMessageBatch -------------------------------------------------------------------


def test_a_batch_of_auto_findings_sends_its_jobs_in_one_call(world: World, job_sends: list[str]) -> None:
    # GIVEN grouping on WHEN a batch of 10 auto findings is taken
    assert world.intake(*[auto_event(n) for n in range(1, 11)]) == []
    # THEN their 10 jobs went to the remediation queue in one SendMessageBatch, each body as SendMessage sent it
    assert job_sends == ["SendMessageBatch"]
    assert jobs_of(world) == [fid(n) for n in range(1, 11)]


def test_an_entry_sqs_refuses_returns_exactly_its_record_and_the_redelivery_sends_its_job(
    world: World, job_sends: list[str]
) -> None:
    # GIVEN SQS refusing one entry of the batch's SendMessageBatch (moto's own refusal of an entry with a delay over
    # 900 s, which a hook gives the entry of finding 2's job)
    def delay_finding_2(params: dict[str, Any], **_: Any) -> None:
        for entry in params["Entries"]:
            if fid(2) in entry["MessageBody"]:
                entry["DelaySeconds"] = 901

    client = handler_sqs()
    client.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch", delay_finding_2, unique_id="test-intake-folds-refuse"
    )
    deliveries = [auto_event(n) for n in (1, 2, 3)]
    try:
        # WHEN the batch is taken THEN exactly finding 2's record returns to the queue; the others' jobs went
        assert world.intake(*deliveries) == [deliveries[1].message_id]
    finally:
        client.meta.events.unregister(
            "before-parameter-build.sqs.SendMessageBatch", unique_id="test-intake-folds-refuse"
        )
    assert jobs_of(world) == [fid(1), fid(3)]
    assert world.record(fid(2)).state is State.APPROVED
    # WHEN SQS redelivers it THEN its job is sent (APPROVED by auto, no job's receipt), nothing else is redone
    assert world.intake(deliveries[1].again()) == []
    assert jobs_of(world) == [fid(2)]
    assert job_sends == ["SendMessageBatch", "SendMessageBatch"]
    born_approved(world.record(fid(2)), first_group(world, fid(1)), 2)


def test_a_batch_whose_send_fails_returns_every_record_with_a_job(world: World, aws: AwsSandbox) -> None:
    # GIVEN the remediation queue gone (SQS refuses the whole SendMessageBatch: no such queue)
    queue_url = intake_handler.read_settings().queue_url
    world.sqs.delete_queue(QueueUrl=queue_url)
    deliveries = [auto_event(n) for n in (1, 2)]
    # WHEN a batch of two auto findings is taken THEN both records return to the queue, both decided
    assert sorted(world.intake(*deliveries)) == sorted(d.message_id for d in deliveries)
    assert {world.record(fid(n)).state for n in (1, 2)} == {State.APPROVED}
    # WHEN the queue is back and SQS redelivers them THEN both jobs are sent, the message posted once
    assert create_remediation_queue(aws.region) == queue_url
    assert world.intake(*(d.again() for d in deliveries)) == []
    assert jobs_of(world) == [fid(1), fid(2)]
    assert len(world.slack.messages(PAYMENTS)) == 1


def test_a_crash_before_the_flush_sends_every_job_on_the_redeliveries(world: World, job_sends: list[str]) -> None:
    # GIVEN a batch of three auto findings whose invocation died before sending its jobs (the batch returns whole)
    deps, _ = counted_intake(world)
    dead = JobBatch(SqsJobQueue(aws_client("sqs"), intake_handler.read_settings().queue_url))
    deliveries = [auto_event(n) for n in (1, 2, 3)]
    for delivery in deliveries:
        assert take(delivery, replace(deps, outbox=dead.outbox(delivery.message_id))) is IntakeResult.DONE
    assert jobs_of(world) == []
    # WHEN SQS redelivers the batch THEN every job is sent, in one call, and nothing else is redone
    assert world.intake(*(d.again() for d in deliveries)) == []
    assert job_sends == ["SendMessageBatch"]
    assert jobs_of(world) == [fid(1), fid(2), fid(3)]
    assert len(world.slack.messages(PAYMENTS)) == 1
    assert [e.event for e in world.record(fid(1)).audit] == ["received", "slack_posted", "decided"]


def test_a_job_batch_sends_ten_jobs_a_call(aws: AwsSandbox) -> None:
    # GIVEN a remediation queue and a batch of 12 jobs from 12 records, its calls noted
    queue_url = create_remediation_queue(aws.region)
    sqs = shared_session().client("sqs")
    calls: list[int] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch", lambda params, **_: calls.append(len(params["Entries"]))
    )
    batch = JobBatch(SqsJobQueue(sqs, queue_url))
    now = datetime.now(UTC)
    for n in range(12):
        batch.outbox(f"message-{n}").add(
            RemediationJob(kind="quarantine", finding_id=fid(n), requested_by="auto", requested_at=now)
        )
    # WHEN it is flushed THEN two calls (10 and 2 entries), every job sent under its record, and nothing is left
    sent = batch.flush()
    assert calls == [10, 2]
    assert [(owner, job.finding_id) for owner, job, _ in sent] == [(f"message-{n}", fid(n)) for n in range(12)]
    assert all(not isinstance(outcome, Exception) and outcome.message_id for _, _, outcome in sent)
    assert batch.flush() == [] and calls == [10, 2]
    # AND a call of no job, or of more than SQS takes, is refused before it is made
    with pytest.raises(ValueError, match="1 to 10"):
        SqsJobQueue(sqs, queue_url).send_batch([])
    assert calls == [10, 2]


class NotedCounts:
    """A metrics sink that keeps each count's name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def count(self, name: str, **dimensions: str) -> None:
        self.names.append(name)


def test_an_entry_the_response_names_neither_taken_nor_refused_is_never_reported_sent(aws: AwsSandbox) -> None:
    # GIVEN a batch of three jobs from three records, and SQS answering its SendMessageBatch with one entry in neither
    # the Successful nor the Failed list (a botocore hook takes finding 2's entry out of the parsed response)
    queue_url = create_remediation_queue(aws.region)
    sqs = shared_session().client("sqs")

    def forget_finding_2(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Successful"] = [entry for entry in parsed.get("Successful", []) if entry["Id"] != "1"]

    sqs.meta.events.register("after-call.sqs.SendMessageBatch", forget_finding_2)
    batch = JobBatch(SqsJobQueue(sqs, queue_url))
    now = datetime.now(UTC)
    for n in (1, 2, 3):
        batch.outbox(f"message-{n}").add(
            RemediationJob(kind="quarantine", finding_id=fid(n), requested_by="auto", requested_at=now)
        )
    metrics = NotedCounts()
    # WHEN the batch's jobs are sent THEN exactly finding 2's record returns to the queue (its redelivery sends the
    # job again: a job is never counted as queued on a response that does not say so)
    assert send_auto_jobs(batch, metrics) == ["message-2"]
    assert sorted(metrics.names) == ["JobsNotQueued", "JobsQueued", "JobsQueued"]
