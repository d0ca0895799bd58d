"""Finding floods (docs/architecture.md §22) through the real finding handler and the real digest writer, on moto's
server and the Slack stand-in: grouping off is today's behaviour; on, one message per burst, pages in its thread."""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.digest_writer import DigestOutcome, WriterDependencies, write_digest
from macie_chatops.group_store import (
    DIGEST_PACE_S,
    MAX_DIGEST_INTERVAL_S,
    QUIET_S,
    Grouping,
    GroupStore,
    digest_interval,
)
from macie_chatops.groups import PAGE_SIZE
from macie_chatops.handlers import digests as digest_handler
from macie_chatops.handlers import intake as intake_handler
from macie_chatops.intake import IntakeDependencies, IntakeOutcome, IntakeResult, handle_record
from macie_chatops.ports import Clock, utcnow
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore, NewRecord, WriteResult
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import (
    LambdaContext,
    SqsDelivery,
    aws_client,
    create_remediation_queue,
    invoke_batch,
    provision_handler,
)
from tests.conftest import EVENTS_DIR, ROOT, AwsSandbox

TABLE = "flood-test-findings"
PAYMENTS = "C0PAYMENTS"


class Delivery(SqsDelivery):
    queue_name = names.INTAKE_QUEUE_NAME
    sender_id = "AIDAEVENTBRIDGE"


def review_event(n: int, *, bucket: str | None = None, finding: int | None = None) -> Delivery:
    """personal-review.json (payments, review) about object number ``n``: its own finding id (number ``finding``'s,
    when given: another finding of the same object version), key and version."""
    event = copy.deepcopy(json.loads((EVENTS_DIR / "personal-review.json").read_text(encoding="utf-8")))
    detail = event["detail"]
    detail["id"] = f"{n if finding is None else finding:032x}"
    s3 = detail["resourcesAffected"]["s3Object"]
    s3["key"] = f"exports/{n:05d}.csv"
    s3["versionId"] = f"v{n:05d}"
    if bucket is not None:
        detail["resourcesAffected"]["s3Bucket"]["name"] = bucket
        s3["bucketArn"] = f"arn:aws:s3:::{bucket}"
    s3["path"] = f"{detail['resourcesAffected']['s3Bucket']['name']}/{s3['key']}"
    return Delivery(json.dumps(event))


@dataclass
class World:
    store: FindingStore
    groups: GroupStore
    sqs: Any
    digest_queue_url: str
    slack: SlackStandIn

    def intake(self, *deliveries: Delivery) -> list[str]:
        context = LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60.0)
        return invoke_batch(intake_handler.lambda_handler, deliveries, context)

    def wake_ups(self) -> list[str]:
        """The digest queue's messages due within the writer's pace, taken off the queue (delayed wake-ups for a
        group's close, a minute away, stay: ``delayed`` counts them)."""
        bodies: list[str] = []
        deadline = time.monotonic() + DIGEST_PACE_S + 2
        while time.monotonic() < deadline and self._depth(_DEPTH) > 0:
            received = self.sqs.receive_message(
                QueueUrl=self.digest_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in received.get("Messages", []):
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.digest_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def delayed(self) -> int:
        return self._depth(("ApproximateNumberOfMessagesDelayed",))

    def _depth(self, names: tuple[str, ...]) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.digest_queue_url, AttributeNames=["All"])
        return sum(int(attributes["Attributes"][name]) for name in names)

    def writer(self, *, clock_offset: timedelta = timedelta(0)) -> WriterDependencies:
        real = digest_handler.dependencies(digest_handler.read_settings(), lambda: 60.0)
        return replace(real, clock=lambda: datetime.now(UTC) + clock_offset)

    def record(self, finding_id: str) -> FindingRecord:
        record = self.store.get(finding_id)
        assert record is not None
        return record


_DEPTH = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")


def _world(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Config
) -> World:
    queue_url = create_remediation_queue(aws.region)
    resources = provision_handler(
        config=config,
        config_dir=tmp_path,
        table=TABLE,
        slack=slack,
        setenv=monkeypatch.setenv,
        queue_url=queue_url,
        region=aws.region,
    )
    sqs = aws_client("sqs", aws.region)
    digest_queue_url = sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"]
    monkeypatch.setenv(names.ENV_DIGEST_QUEUE_URL, digest_queue_url)
    intake_handler.clear_caches()
    digest_handler.clear_caches()
    return World(resources.store, GroupStore(aws_client("dynamodb", aws.region), TABLE), sqs, digest_queue_url, slack)


def _config(window_s: int) -> Config:
    config = load_config(ROOT / "accounts.yaml")
    return config.model_copy(update={"slack": config.slack.model_copy(update={"group_window_seconds": window_s})})


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield _world(aws, slack, tmp_path, monkeypatch, _config(60))
    intake_handler.clear_caches()
    digest_handler.clear_caches()


@pytest.fixture
def world_without_groups(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    yield _world(aws, slack, tmp_path, monkeypatch, _config(0))
    intake_handler.clear_caches()


def test_grouping_off_posts_every_finding_as_today(world_without_groups: World) -> None:
    # GIVEN slack.group_window_seconds 0 WHEN 5 findings of one bucket arrive
    world = world_without_groups
    assert world.intake(*[review_event(n) for n in range(5)]) == []
    # THEN 5 messages, 5 records with no group, and the writer is never woken
    assert len(world.slack.messages(PAYMENTS)) == 5
    for n in range(5):
        record = world.record(f"{n:032x}")
        assert record.state is State.PENDING_APPROVAL and record.group_id is None and record.slack_ts
    assert world.wake_ups() == []


def test_a_burst_is_one_message_and_one_wake_up(world: World) -> None:
    # GIVEN grouping on WHEN 12 findings of one bucket arrive in a burst
    assert world.intake(*[review_event(n) for n in range(12)]) == []
    # THEN the first is posted as today; the 11 others join its group without a message of their own
    (message,) = world.slack.messages(PAYMENTS)
    first = world.record(f"{0:032x}")
    assert (first.slack_ts, first.group_seq) == (message.ts, 1)
    group_id = first.group_id
    assert group_id is not None
    for n in range(1, 12):
        record = world.record(f"{n:032x}")
        assert (record.state, record.group_id, record.group_seq, record.slack_ts) == (
            State.PENDING_APPROVAL,
            group_id,
            n + 1,
            None,
        )
    # AND the digest queue got one message (the clean -> dirty transition), not one per finding
    (wake_up,) = world.wake_ups()
    assert json.loads(wake_up) == {"group_id": group_id}
    item = world.groups.item(group_id)
    assert item is not None and item.dirty and item.digest_ts == message.ts
    assert item.view.state_counts == {State.PENDING_APPROVAL: 12}


def test_the_writer_updates_the_digest_once_and_lists_pages_when_the_group_closes(world: World) -> None:
    # GIVEN a burst of 105 findings (a full page and 5 more)
    assert world.intake(*[review_event(n) for n in range(105)]) == []
    (wake_up,) = world.wake_ups()
    (message,) = world.slack.messages(PAYMENTS)
    # WHEN the writer runs THEN the first message becomes the digest, page 1 is in its thread, the mark is cleared
    assert write_digest(wake_up, world.writer()) is DigestOutcome.WRITTEN
    (digest,) = world.slack.messages(PAYMENTS)
    assert digest.ts == message.ts and len(digest.updates) == 1
    assert "105" in digest.revisions[-1].text
    (page1,) = world.slack.replies(PAYMENTS, message.ts)
    assert f"{0:032x}" in json.dumps(page1.revisions[-1].blocks)
    item = world.groups.item(first_group(world))
    assert item is not None and not item.dirty and item.pages_posted == 1
    # AND it woke itself for when the group closes (the last, partial page), a minute away
    assert world.delayed() == 1 and item.close_wake_at is not None
    close_wake = json.dumps({"group_id": first_group(world)})
    # WHEN that wake-up comes before the close THEN nothing is written
    assert write_digest(close_wake, world.writer()) is DigestOutcome.CURRENT
    # WHEN it comes after THEN page 2 (5 members) is posted, once; the digest is not touched again
    closed = world.writer(clock_offset=timedelta(seconds=61))
    assert write_digest(close_wake, closed) is DigestOutcome.WRITTEN
    assert write_digest(close_wake, closed) is DigestOutcome.CURRENT
    replies = world.slack.replies(PAYMENTS, message.ts)
    assert len(replies) == 2 and len(world.slack.messages(PAYMENTS)[0].updates) == 1
    listed = {m.finding_id for n in (1, 2) for m in world.groups.page(first_group(world), n).members}  # type: ignore[union-attr]
    assert len(listed) == 105


def test_changes_during_a_write_wake_the_writer_again(world: World) -> None:
    # GIVEN a group of 3, and a writer that reads it, WHEN a member is dismissed before it clears the mark
    assert world.intake(*[review_event(n) for n in range(3)]) == []
    (wake_up,) = world.wake_ups()
    group_id = first_group(world)
    writer = world.writer()
    findings = hooked_store(world)  # as every handler's: a transition moves its group's counts

    class ChangesMidWrite(GroupStore):
        def clear_dirty(self, group_id: str, *, version: int) -> bool:
            findings.transition(
                f"{2:032x}", expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor="U0BOB", event="dismissed"
            )
            return super().clear_dirty(group_id, version=version)

    racing = replace(writer, groups=ChangesMidWrite(aws_client("dynamodb"), TABLE))
    # THEN the write is not marked clean; the writer is woken again and the next run shows the dismissal
    assert write_digest(wake_up, racing) is DigestOutcome.CHANGED
    assert world.delayed() == 2  # woken again after a quiet spell (QUIET_S, within digest_interval(1)); and the close
    # AND a run before then leaves the update to that wake-up; the one after the quiet spell shows the dismissal
    assert write_digest(wake_up, writer) is DigestOutcome.DEFERRED
    assert world.delayed() == 2  # that wake-up is on its way: no other
    assert write_digest(wake_up, world.writer(clock_offset=timedelta(seconds=QUIET_S + 1))) is DigestOutcome.WRITTEN
    item = world.groups.item(group_id)
    assert item is not None and not item.dirty
    assert item.view.state_counts == {State.PENDING_APPROVAL: 2, State.DISMISSED: 1}
    assert "2 awaiting approval" in world.slack.messages(PAYMENTS)[0].revisions[-1].text


def test_a_group_of_one_is_left_as_its_own_message(world: World) -> None:
    # GIVEN one finding WHEN it is posted THEN no wake-up; a stray one writes nothing
    assert world.intake(review_event(1)) == []
    assert world.wake_ups() == []
    group_id = first_group(world, f"{1:032x}")
    assert write_digest(json.dumps({"group_id": group_id}), world.writer()) is DigestOutcome.CURRENT
    (message,) = world.slack.messages(PAYMENTS)
    assert message.updates == ()


def test_other_buckets_are_other_groups(world: World) -> None:
    # GIVEN findings of two buckets in one burst THEN two messages, two groups, two wake-ups
    assert (
        world.intake(
            *[review_event(n, bucket="payments-prod-exports" if n % 2 else "payments-archive") for n in range(6)]
        )
        == []
    )
    assert len(world.slack.messages(PAYMENTS)) == 2
    assert len(world.wake_ups()) == 2


def test_a_wake_up_for_an_unknown_group_or_a_bad_body(world: World) -> None:
    assert write_digest(json.dumps({"group_id": "0" * 32}), world.writer()) is DigestOutcome.GONE
    with pytest.raises(ValueError, match="group_id"):
        write_digest(json.dumps({"group_id": "../../etc"}), world.writer())


def test_the_writer_handler_consumes_the_queue(world: World) -> None:
    # GIVEN a burst WHEN the real digest writer handler gets the wake-up THEN the digest is written
    assert world.intake(*[review_event(n) for n in range(4)]) == []
    (wake_up,) = world.wake_ups()

    class DigestDelivery(SqsDelivery):
        queue_name = names.DIGEST_QUEUE_NAME
        sender_id = "AIDAFINDINGHANDLER"

    context = LambdaContext(names.DIGEST_WRITER_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60.0)
    assert invoke_batch(digest_handler.lambda_handler, (DigestDelivery(wake_up),), context) == []
    (digest,) = world.slack.messages(PAYMENTS)
    assert len(digest.updates) == 1 and "4" in digest.revisions[-1].text


def first_group(world: World, finding_id: str = f"{0:032x}") -> str:
    group_id = world.record(finding_id).group_id
    assert group_id is not None
    return group_id


def hooked_store(world: World) -> FindingStore:
    grouping = digest_handler._cache.grouping(digest_handler.read_settings(), digest_handler.AWS_TIMEOUTS)
    assert grouping is not None
    return FindingStore(aws_client("dynamodb"), TABLE, on_state_change=grouping.state_changed)


@pytest.mark.parametrize("size", [PAGE_SIZE])
def test_a_full_page_is_posted_while_the_group_is_open(world: World, size: int) -> None:
    # GIVEN exactly one page of members WHEN the writer runs before the group closes THEN the page is posted
    assert world.intake(*[review_event(n) for n in range(size)]) == []
    (wake_up,) = world.wake_ups()
    assert write_digest(wake_up, world.writer()) is DigestOutcome.WRITTEN
    (message,) = world.slack.messages(PAYMENTS)
    assert len(world.slack.replies(PAYMENTS, message.ts)) == 1
    assert world.delayed() == 0  # nothing left for the close: no partial page


def test_the_remediator_leaves_a_digest_to_the_writer(world: World) -> None:
    from macie_chatops.handlers import remediation as remediator_handler
    from macie_chatops.remediation import update_slack

    # GIVEN a group of 2 (its first member's message is the digest) and a group of 1 (another bucket)
    assert world.intake(review_event(1), review_event(2), review_event(3, bucket="payments-archive")) == []
    remediator_handler.clear_caches()
    deps = remediator_handler.dependencies(remediator_handler.read_settings(), lambda: 60.0)
    assert deps.groups is not None
    digest_first, alone = world.record(f"{1:032x}"), world.record(f"{3:032x}")
    blocked = []
    for record in (digest_first, alone):
        for expected, target in ((State.PENDING_APPROVAL, State.APPROVED), (State.APPROVED, State.BLOCKED)):
            result = world.store.transition(
                record.finding_id, expected={expected}, target=target, actor="remediator", event="t"
            )
        blocked.append(result.record)
    # WHEN the outcome path updates their messages
    # THEN the digest is not replaced by one finding's outcome; the finding alone in its group gets it as before
    assert update_slack(blocked[0], deps) is False
    assert update_slack(blocked[1], deps) is True
    by_ts = {m.ts: m for m in world.slack.messages(PAYMENTS)}
    assert by_ts[str(digest_first.slack_ts)].updates == () and len(by_ts[str(alone.slack_ts)].updates) == 1
    remediator_handler.clear_caches()


def test_a_group_whose_first_member_is_never_posted_gets_a_message_of_its_own(world: World) -> None:
    from macie_chatops.config import Action
    from macie_chatops.group_store import NewMember
    from macie_chatops.groups import GroupKey

    # GIVEN a group of two whose first member's intake never got as far as posting (no message anywhere)
    key = GroupKey(PAYMENTS, "345678901234", "payments-prod-exports", "SensitiveData:S3Object/Personal", Action.REVIEW)
    for n in (1, 2):
        world.store.create_received(f"{n:032x}", event_id=f"e{n}", action=Action.REVIEW, reason="t", actor="t")
        member = NewMember(f"{n:032x}", f"exports/{n}.csv", "High", State.PENDING_APPROVAL)
        joined = world.groups.join(
            key, member, account_name="payments-prod", window=timedelta(seconds=60), max_age=timedelta(hours=1)
        )
    world.groups.mark_dirty(joined.group_id)
    body = json.dumps({"group_id": joined.group_id})
    # WHEN the writer runs within the grace THEN it waits for that message
    assert write_digest(body, world.writer()) is DigestOutcome.AWAITING_MESSAGE
    assert world.slack.messages(PAYMENTS) == []
    # WHEN it runs after the grace THEN the digest is posted as a message of its own, recorded, and kept current
    assert write_digest(body, world.writer(clock_offset=timedelta(minutes=6))) is DigestOutcome.WRITTEN
    (message,) = world.slack.messages(PAYMENTS)
    item = world.groups.item(joined.group_id)
    assert item is not None and item.digest_ts == message.ts and not item.dirty
    assert "2 findings" in message.revisions[-1].text


class SimulatedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class SimulatedDigestQueue:
    """The digest queue on simulated time: a wake-up is delivered once the clock reaches it."""

    clock: SimulatedClock
    wake_ups: list[tuple[datetime, str]]

    def wake(self, group_id: str, *, delay_s: int) -> None:
        self.wake_ups.append((self.clock.now + timedelta(seconds=delay_s), json.dumps({"group_id": group_id})))

    def due(self) -> list[str]:
        due = sorted((w for w in self.wake_ups if w[0] <= self.clock.now), key=lambda w: w[0])
        self.wake_ups = [w for w in self.wake_ups if w[0] > self.clock.now]
        return [body for _, body in due]


@dataclass
class DigestTimeline:
    updates_at: list[float]  # seconds after the start, per digest update
    most_wake_ups_pending: int
    last_change_s: float
    settled: bool  # the group was clean at the end, its digest showing its last version


def run_changes(
    world: World, monkeypatch: pytest.MonkeyPatch, *, change_every_s: int, changes_for_s: int
) -> DigestTimeline:
    """A group of 3 (the real intake), then a change every ``change_every_s`` seconds of simulated time for
    ``changes_for_s`` seconds, then a minute of quiet; the real writer runs each wake-up when it is due."""
    monkeypatch.setenv(names.ENV_SLACK_PACING, "off")  # the writer's Slack pace is not what is measured here
    assert world.intake(*[review_event(n) for n in range(3)]) == []
    (wake_up,) = world.wake_ups()
    group_id = first_group(world)
    clock = SimulatedClock(datetime.now(UTC))
    start = clock.now
    groups = GroupStore(aws_client("dynamodb"), TABLE, clock=clock)
    queue = SimulatedDigestQueue(clock, [(start + timedelta(seconds=DIGEST_PACE_S), wake_up)])
    writer = replace(world.writer(), groups=groups, digests=queue, clock=clock)
    grouping = Grouping(groups, queue)
    updates_at: list[float] = []
    most_pending = 0
    for second in range(changes_for_s + 60):
        clock.now = start + timedelta(seconds=second)
        if second < changes_for_s and second % change_every_s == 0:
            grouping.touched(group_id)
        most_pending = max(most_pending, len(queue.wake_ups))
        for body in queue.due():
            before = len(world.slack.messages(PAYMENTS)[0].updates)
            write_digest(body, writer)
            if len(world.slack.messages(PAYMENTS)[0].updates) > before:
                updates_at.append(float(second))
    item = groups.item(group_id)
    assert item is not None
    last_change = (changes_for_s - 1) // change_every_s * change_every_s
    return DigestTimeline(updates_at, most_pending, float(last_change), not item.dirty and not queue.wake_ups)


def test_a_group_that_keeps_changing_is_updated_no_more_often_than_the_back_off_allows(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a group that changes every second for 6 minutes
    duration = 360
    timeline = run_changes(world, monkeypatch, change_every_s=1, changes_for_s=duration)
    # THEN while it changes, its digest is updated at most as often as the back-off allows: the first at the pace,
    # then each digest_interval(n) after the n-th (3, 6, 12, ... s, then every MAX_DIGEST_INTERVAL_S)
    allowed, at = 1, DIGEST_PACE_S
    while at + digest_interval(allowed) < duration:
        at, allowed = at + digest_interval(allowed), allowed + 1
    during = [t for t in timeline.updates_at if t < duration]
    assert allowed - 1 <= len(during) <= allowed
    assert all(b - a >= digest_interval(n) for n, (a, b) in enumerate(itertools.pairwise(during), 1))
    # AND one more once it stops: the final counts, within the quiet spell (and a second of SQS's whole-second delay)
    (final,) = [t for t in timeline.updates_at if t >= duration]
    assert final - timeline.last_change_s <= QUIET_S + 1 and timeline.settled
    # AND wake-ups never multiply: the update's own, and the group's close
    assert timeline.most_wake_ups_pending <= 2


def test_a_group_that_goes_quiet_is_updated_within_the_quiet_spell(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a group whose digest has earned the longest back-off (changes for 5 minutes)
    timeline = run_changes(world, monkeypatch, change_every_s=2, changes_for_s=300)
    assert digest_interval(len(timeline.updates_at) - 1) == MAX_DIGEST_INTERVAL_S
    # THEN its last change shows QUIET_S after it (not up to MAX_DIGEST_INTERVAL_S later), and then nothing is left
    assert timeline.updates_at[-1] - timeline.last_change_s <= QUIET_S + 1
    assert timeline.updates_at[-1] - timeline.updates_at[-2] < MAX_DIGEST_INTERVAL_S
    assert timeline.settled


# -- the record's creation and its group's join, one transaction (issue 18) ------------------------------------------


def counted_intake(world: World, *, clock: Clock = utcnow) -> tuple[IntakeDependencies, list[str]]:
    """The finding handler's dependencies, its finding and group stores on a client whose DynamoDB calls are noted
    (the exemptions' reads are not: they have a client of their own); the group store on ``clock``."""
    real = intake_handler.dependencies(intake_handler.read_settings(), lambda: 60.0)
    assert real.groups is not None
    client = aws_client("dynamodb")
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    grouping = Grouping(GroupStore(client, TABLE, clock=clock), real.groups.digests)
    store = FindingStore(client, TABLE, on_state_change=grouping.state_changed)
    return replace(real, store=store, groups=grouping), calls


def take(delivery: Delivery, deps: IntakeDependencies, *, deadline_s: float = 60) -> IntakeOutcome:
    deadline = datetime.now(UTC) + timedelta(seconds=deadline_s)
    return handle_record(delivery.body, deps, attempt=f"attempt-{time.monotonic_ns()}", deadline=deadline)


class DiesOnceCreated(FindingStore):
    """The real store; the process dies right after the finding's record is written (once): by its creation with
    its group's join, or alone (grouping off)."""

    died = False

    def create(self, new: NewRecord, *, claiming: bool = True) -> WriteResult:
        created = super().create(new, claiming=claiming)
        self._die()
        return created

    def created(self, new: NewRecord, *, group: tuple[str, int] | None = None) -> FindingRecord:
        record = super().created(new, group=group)
        self._die()
        return record

    def _die(self) -> None:
        if not self.died:
            self.died = True
            raise RuntimeError("simulated crash after creating the record")

    def release_intake(self, finding_id: str, *, owner: str) -> None:
        return  # a crashed process releases nothing


def test_a_grouped_finding_is_created_and_joins_its_group_in_one_transaction(world: World) -> None:
    # GIVEN grouping on and the finding handler's DynamoDB calls noted (its group store's clock stopped: a loaded
    # machine cannot age what the store remembers of the group past REMEMBER_GROUP between two findings)
    stopped = datetime.now(UTC)
    deps, calls = counted_intake(world, clock=lambda: stopped)
    # WHEN the first finding of a group is taken THEN the pointer read, one transaction (the group opened, the record
    # and its claim created), the decision, the digest recorded on the group
    assert take(review_event(1), deps).result is IntakeResult.DONE
    assert calls == ["GetItem", "TransactWriteItems", "UpdateItem", "UpdateItem"]
    # WHEN a second one is taken THEN the group read (known to this store), one transaction, the decision
    calls.clear()
    assert take(review_event(2), deps).result is IntakeResult.DONE
    assert calls == ["GetItem", "TransactWriteItems", "UpdateItem"]
    # WHEN a third one is taken THEN no read: its transaction is built on the group as the second's join left it
    calls.clear()
    assert take(review_event(3), deps).result is IntakeResult.DONE
    assert calls == ["TransactWriteItems", "UpdateItem"]
    # AND each record holds its claim and is in the group with its seq, listed in the page once
    first, second, third = (world.record(f"{n:032x}") for n in (1, 2, 3))
    assert (first.group_seq, second.group_seq, second.group_id) == (1, 2, first.group_id)
    assert (third.group_seq, third.group_id) == (3, first.group_id)
    assert first.object_claimed_at and second.object_claimed_at and second.state is State.PENDING_APPROVAL
    assert third.object_claimed_at and third.state is State.PENDING_APPROVAL
    assert first.group_id is not None
    listed = [m.finding_id for m in world.groups.members(first.group_id, 10)]
    assert listed == [first.finding_id, second.finding_id, third.finding_id]
    assert len(world.slack.messages(PAYMENTS)) == 1


@pytest.mark.parametrize("grouped", [True, False], ids=["created with its group", "created alone"])
def test_a_crash_after_the_creation_resumes_and_posts_once(world: World, grouped: bool) -> None:
    # GIVEN a group of one, and a second finding's first attempt that died right after writing its record, with its
    # group and claim in one transaction (or alone: written by an attempt with grouping off, as a release before)
    assert world.intake(review_event(1)) == []
    deps, _ = counted_intake(world)
    dying = DiesOnceCreated(aws_client("dynamodb"), TABLE)
    with pytest.raises(RuntimeError, match="simulated crash"):
        take(review_event(2), replace(deps, store=dying, groups=deps.groups if grouped else None), deadline_s=0)
    born = world.record(f"{2:032x}")
    assert born.state is State.RECEIVED and born.object_claimed_at is not None
    assert born.group_seq == (2 if grouped else None)
    group_id = first_group(world, f"{1:032x}")
    # WHEN SQS delivers it again, the crashed attempt's lease expired
    deps, calls = counted_intake(world)
    assert take(review_event(2), deps).result is IntakeResult.DONE
    # THEN it resumes: a member of the group once (joined now if it was created alone), decided, no second message
    record = world.record(f"{2:032x}")
    assert (record.state, record.group_id, record.group_seq) == (State.PENDING_APPROVAL, group_id, 2)
    assert [m.seq for m in world.groups.members(group_id, 10)] == [1, 2]
    assert world.groups.view(group_id).member_count == 2  # type: ignore[union-attr]
    assert len(world.slack.messages(PAYMENTS)) == 1
    # AND its creation was refused on the record (nothing joined), then one more join only for a record without one
    assert calls.count("TransactWriteItems") == (1 if grouped else 2)


def test_a_crash_after_the_first_members_creation_posts_it_once_as_the_digest(world: World) -> None:
    # GIVEN a first finding's attempt that died right after creating its record and opening its group
    deps, _ = counted_intake(world)
    with pytest.raises(RuntimeError, match="simulated crash"):
        take(review_event(1), replace(deps, store=DiesOnceCreated(aws_client("dynamodb"), TABLE)), deadline_s=0)
    assert world.slack.messages(PAYMENTS) == []
    # WHEN it is delivered again THEN it is posted once, and its message recorded as the group's digest
    assert take(review_event(1), deps).result is IntakeResult.DONE
    (message,) = world.slack.messages(PAYMENTS)
    record = world.record(f"{1:032x}")
    assert (record.state, record.group_seq, record.slack_ts) == (State.PENDING_APPROVAL, 1, message.ts)
    item = world.groups.item(first_group(world, f"{1:032x}"))
    assert item is not None and item.digest_ts == message.ts and item.view.member_count == 1


def test_a_duplicate_delivery_of_a_grouped_finding_joins_nothing(world: World) -> None:
    # GIVEN two findings of a group, taken
    assert world.intake(review_event(1), review_event(2)) == []
    group_id = first_group(world, f"{1:032x}")
    # WHEN the second is delivered again
    deps, calls = counted_intake(world)
    outcome = take(review_event(2), deps)
    # THEN it is a duplicate: its creation's transaction was refused on the record, and nothing else was written
    assert outcome.result is IntakeResult.DUPLICATE
    assert calls.count("TransactWriteItems") == 1 and "UpdateItem" not in calls and "PutItem" not in calls
    assert world.groups.view(group_id).member_count == 2  # type: ignore[union-attr]
    assert [m.seq for m in world.groups.members(group_id, 10)] == [1, 2]


def test_a_grouped_finding_whose_version_another_finding_holds_is_a_duplicate_and_no_member(world: World) -> None:
    # GIVEN a group of two, its second member finding 1002 about object 2
    assert world.intake(review_event(1), review_event(2, finding=1002)) == []
    group_id = first_group(world, f"{1:032x}")
    # WHEN another finding about object 2 arrives
    deps, calls = counted_intake(world)
    assert take(review_event(2), deps).result is IntakeResult.DONE
    # THEN its creation with the join was refused on the claim (nothing written), the record was created alone, and it
    # is recorded as a duplicate of finding 1002, in no group
    record = world.record(f"{2:032x}")
    assert (record.state, record.duplicate_of, record.group_id) == (State.DUPLICATE, f"{1002:032x}", None)
    assert calls.count("TransactWriteItems") == 1 and "PutItem" in calls
    assert world.groups.view(group_id).member_count == 2  # type: ignore[union-attr]
    assert [m.finding_id for m in world.groups.members(group_id, 10)] == [f"{1:032x}", f"{1002:032x}"]
    assert len(world.slack.messages(PAYMENTS)) == 1


# -- a wake-up lost after a committed join (§22) ---------------------------------------------------------------------


def _join_whose_wake_up_fails(world: World) -> str:
    """A group of one (taken, its writer's wake-ups drained), then a second finding whose join committed and whose
    wake-up of the writer failed: the digest queue was gone at the send (it is back after). The group's id."""
    assert world.intake(review_event(1)) == []
    group_id = first_group(world, f"{1:032x}")
    world.wake_ups()
    deps, calls = counted_intake(world)
    world.sqs.delete_queue(QueueUrl=world.digest_queue_url)
    with pytest.raises(ClientError, match="NonExistentQueue"):
        take(review_event(2), deps, deadline_s=0)  # its lease expires at once, as an invocation's at its end
    # a first delivery's calls: the pointer and the group read, the creation with the join; nothing for the wake-up
    assert calls == ["GetItem", "GetItem", "TransactWriteItems"]
    assert world.sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"] == world.digest_queue_url
    joined = world.record(f"{2:032x}")
    assert (joined.state, joined.group_id, joined.group_seq) == (State.RECEIVED, group_id, 2)
    item = world.groups.item(group_id)
    assert item is not None and item.dirty and item.view.member_count == 2
    return group_id


def test_a_redelivery_after_a_lost_wake_up_wakes_the_writer_once_the_mark_is_stale(world: World) -> None:
    # GIVEN a join whose wake-up of the digest writer failed after its transaction: the delivery failed
    group_id = _join_whose_wake_up_fails(world)
    # WHEN the message comes back after the queue's visibility timeout (6 min: the mark is older than STALE_DIRTY)
    later = datetime.now(UTC) + timedelta(minutes=6)
    deps, calls = counted_intake(world, clock=lambda: later)
    assert take(review_event(2), deps).result is IntakeResult.DONE
    # THEN the join's reads and its creation refused on the record, the group read again, its stale mark re-armed,
    # and the writer woken; then the lease and the decision, as any resumed delivery
    assert calls == ["GetItem", "GetItem", "TransactWriteItems", "GetItem", "UpdateItem", "UpdateItem", "UpdateItem"]
    (wake_up,) = world.wake_ups()
    assert json.loads(wake_up) == {"group_id": group_id}
    # AND the record was resumed as any: decided, in its group once, no message of its own
    record = world.record(f"{2:032x}")
    assert (record.state, record.group_seq, record.slack_ts) == (State.PENDING_APPROVAL, 2, None)
    assert world.groups.view(group_id).member_count == 2  # type: ignore[union-attr]
    # WHEN the woken writer runs THEN the digest shows both members and the group is clean
    assert write_digest(wake_up, world.writer()) is DigestOutcome.WRITTEN
    (digest,) = world.slack.messages(PAYMENTS)
    assert len(digest.updates) == 1 and "2" in digest.revisions[-1].text
    item = world.groups.item(group_id)
    assert item is not None and not item.dirty


def test_a_redelivery_while_the_mark_is_fresh_wakes_nobody(world: World) -> None:
    # GIVEN a join whose wake-up failed, its message delivered again before the mark is stale (a duplicate)
    group_id = _join_whose_wake_up_fails(world)
    deps, calls = counted_intake(world)
    # WHEN it is taken
    assert take(review_event(2), deps).result is IntakeResult.DONE
    # THEN the group was read again and nothing re-armed (the lease and the decision are the only updates): no
    # wake-up (a fresh mark's is on its way, or the next delivery or mark re-arms it once stale)
    assert calls == ["GetItem", "GetItem", "TransactWriteItems", "GetItem", "UpdateItem", "UpdateItem"]
    assert world.wake_ups() == []
    item = world.groups.item(group_id)
    assert item is not None and item.dirty


def test_a_redelivery_that_finds_its_record_completed_by_a_duplicate_still_wakes_the_writer(world: World) -> None:
    # GIVEN a join whose wake-up failed, and a duplicate delivery of the finding (EventBridge's, or the
    # reconciler's) that completed the record while the mark was fresh, waking nobody
    group_id = _join_whose_wake_up_fails(world)
    deps, _ = counted_intake(world)
    assert take(review_event(2), deps).result is IntakeResult.DONE
    assert world.wake_ups() == []
    # WHEN the failed delivery's message comes back after the visibility timeout
    later = datetime.now(UTC) + timedelta(minutes=6)
    deps, calls = counted_intake(world, clock=lambda: later)
    # THEN it is a duplicate of a complete record, and it still re-armed the stale mark and woke the writer
    assert take(review_event(2), deps).result is IntakeResult.DUPLICATE
    assert calls == ["GetItem", "GetItem", "TransactWriteItems", "GetItem", "UpdateItem"]
    (wake_up,) = world.wake_ups()
    assert json.loads(wake_up) == {"group_id": group_id}
