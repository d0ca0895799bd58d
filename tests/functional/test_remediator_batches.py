"""The remediator takes its queue's jobs in batches (issue 18): a batch is one receive and one delete, a job that
fails alone returns to the queue, and a job its invocation has no time for is re-sent and acknowledged.

The real handler, fed by the sandbox's SQS poller (the event source mapping's stand-in) from a remediation queue
on the moto server, as the central stack configures it (the handler's BATCH_SIZE); each invocation's remaining
time is what the test's ``remaining_s`` says.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from macie_chatops import names
from macie_chatops.handlers import remediation as handler
from macie_chatops.handlers._root import DEFERRALS_ATTRIBUTE, MAX_DEFERRALS
from macie_chatops.states import State
from macie_chatops_sandbox.lambda_runtime import Function, SqsPoller
from macie_chatops_sandbox.testkit.world import LambdaContext, emf_metrics
from tests.conftest import AwsSandbox
from tests.functional.move_world import MB, MEMBER_A, REGION
from tests.functional.remediator_world import SOURCE, RemediatorWorld, Seeded, job, remediator_world

Records = list[dict[str, Any]]


class ScriptedContext(LambdaContext):
    """The Lambda context of one invocation whose remaining time is the test's."""

    def __init__(self, remaining_s: Callable[[], float]) -> None:
        super().__init__(names.REMEDIATOR_FUNCTION_NAME, memory_limit_in_mb=1769, timeout_s=900)
        self._remaining_s = remaining_s

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int(self._remaining_s() * 1000))


class CountedSqs:
    """The poller's SQS client, its calls counted by operation (the handler's re-sends use its own client)."""

    def __init__(self, client: Any, calls: Counter[str]) -> None:
        self._client = client
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def counted(**kwargs: Any) -> Any:
            self._calls[name] += 1
            return method(**kwargs)

        return counted


@dataclass
class Batches:
    world: RemediatorWorld
    sqs: Any
    queue_url: str
    queue_arn: str
    calls: Counter[str] = field(default_factory=Counter)
    remaining_s: Callable[[], float] = lambda: 900.0
    # The order the handler sees a batch's records in (the poller's receive order otherwise).
    order: Callable[[Records], Records] = lambda records: records
    deliveries: list[Records] = field(default_factory=list)  # every batch the handler was given

    def send(self, *seeded: Seeded, attributes: dict[str, Any] | None = None) -> None:
        for finding in seeded:
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=job("quarantine", finding.finding_id).body,
                MessageAttributes=attributes or {},
            )

    def poller(self, *, sqs: Any = None) -> SqsPoller:
        def invoke(event: dict[str, Any], _context: Any) -> Any:
            event = {"Records": self.order(list(event["Records"]))}
            self.deliveries.append(event["Records"])
            return handler.lambda_handler(event, ScriptedContext(self.remaining_s))

        return SqsPoller(
            function=Function(names.REMEDIATOR_FUNCTION_NAME, invoke, 900, REGION, MEMBER_A),
            sqs=CountedSqs(sqs or self.sqs, self.calls),
            queue_url=self.queue_url,
            queue_arn=self.queue_arn,
            visibility_timeout_s=60,
            batch_size=handler.BATCH_SIZE,
            wait_time_s=1,
        )

    def invocation(self, poller: SqsPoller | None = None) -> Records:
        """One invocation, once the queue has something visible (a deferred copy is delayed 1 s); its records."""
        poller = poller or self.poller()
        deadline = time.monotonic() + 10
        while poller.poll_once() == 0:
            assert time.monotonic() < deadline, "nothing arrived in the remediation queue"
        return self.deliveries[-1]

    def waiting(self) -> int:
        """The messages waiting in the queue, visible or delayed (counted without receiving them)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesDelayed"])

    def moved(self, seeded: Seeded) -> bool:
        """Quarantined, recorded as such, exactly one copy, the source version gone."""
        return (
            self.world.record(seeded.finding_id).state is State.QUARANTINED
            and self.world.quarantine_copies(seeded) == 1
            and self.world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) is None
        )

    def untouched(self, seeded: Seeded) -> bool:
        return (
            self.world.record(seeded.finding_id).state is State.APPROVED
            and self.world.quarantine_copies(seeded) == 0
            and self.world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) == seeded.body
        )


@pytest.fixture
def batches(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Batches]:
    sqs = boto3.client("sqs", region_name=aws.region)
    url = sqs.create_queue(QueueName=names.REMEDIATION_QUEUE_NAME)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    with remediator_world(aws, slack, tmp_path, monkeypatch) as world:
        yield Batches(world, sqs, url, arn)


def _finding_id(record: dict[str, Any]) -> str:
    from macie_chatops.jobs import RemediationJob

    return RemediationJob.from_message(record["body"]).finding_id


def _after_first_outcome(batches: Batches, seeded: list[Seeded], then_s: float) -> Callable[[], float]:
    """900 s left until the first of ``seeded`` has its outcome recorded, ``then_s`` after (a slow first job)."""

    def remaining_s() -> float:
        done = any(batches.world.record(s.finding_id).state is not State.APPROVED for s in seeded)
        return then_s if done else 900.0

    return remaining_s


def _metric_names(out: str) -> list[str]:
    return [m["name"] for m in emf_metrics(out) if m["name"].startswith("Jobs") and m["name"] != "JobSeconds"]


def test_the_stack_and_the_sandbox_take_the_handlers_batch_size() -> None:
    from infra.central.remediation import REMEDIATOR_BATCH_SIZE
    from macie_chatops_sandbox.sandbox import SandboxSettings

    assert handler.BATCH_SIZE == REMEDIATOR_BATCH_SIZE == 10
    assert SandboxSettings().remediator_batch_size is None  # the sandbox's poller: the handler's BATCH_SIZE


def test_a_batch_is_one_receive_and_one_delete_and_each_job_moves_once(batches: Batches) -> None:
    # GIVEN four approved findings whose jobs wait in the remediation queue
    seeded = [batches.world.seed(f"f-batch-{n}", key=f"exports/{n}.csv") for n in range(4)]
    batches.send(*seeded)
    # WHEN the event source mapping takes one batch
    records = batches.invocation()
    # THEN all four were one batch: one ReceiveMessage, one DeleteMessageBatch, nothing else on the queue
    assert len(records) == 4
    assert batches.calls == Counter({"receive_message": 1, "delete_message_batch": 1})
    # AND every object moved once, recorded and shown; the queue is empty
    assert all(batches.moved(s) for s in seeded)
    assert all(len(batches.world.message(s).updates) == 1 for s in seeded)
    assert batches.waiting() == 0


def test_a_job_that_fails_alone_returns_to_the_queue(batches: Batches) -> None:
    # GIVEN three approved findings in one batch, and Slack failing (HTTP 500) the first chat.update
    seeded = [batches.world.seed(f"f-one-fails-{n}", key=f"exports/{n}.csv") for n in range(3)]
    batches.world.slack.fail_next("chat.update", status=500)
    batches.send(*seeded)
    poller = batches.poller()
    # WHEN the batch is handled
    records = batches.invocation(poller)
    # THEN the first job's record alone stays in the queue (in flight until its visibility timeout), the other two
    # are deleted in one call
    assert len(records) == 3
    assert (poller.stats.deleted, poller.stats.retried) == (2, 1)
    assert batches.calls == Counter({"receive_message": 1, "delete_message_batch": 1})
    first = next(s for s in seeded if s.finding_id == _finding_id(records[0]))
    assert batches.world.message(first).updates == ()
    # AND all three objects moved (the failed one retries its Slack update only)
    assert all(batches.moved(s) for s in seeded)


def test_a_job_without_time_left_is_re_sent_and_acknowledged_then_moved(
    batches: Batches, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two approved findings in one batch, and an invocation with 45 s left once its first job is done
    seeded = [batches.world.seed(f"f-late-{n}", key=f"exports/{n}.csv") for n in range(2)]
    batches.send(*seeded)
    batches.remaining_s = _after_first_outcome(batches, seeded, then_s=45)
    capsys.readouterr()
    # WHEN the batch is handled
    poller = batches.poller()
    records = batches.invocation(poller)
    # THEN the first job moved; the second was not started, nor failed: both records acknowledged in one delete
    first, second = (next(s for s in seeded if s.finding_id == _finding_id(r)) for r in records)
    assert batches.moved(first) and batches.untouched(second)
    assert (poller.stats.deleted, poller.stats.retried) == (2, 0)
    assert batches.calls == Counter({"receive_message": 1, "delete_message_batch": 1})
    assert _metric_names(capsys.readouterr().out) == ["Jobs", "JobsDeferred"]
    # AND the second job waits in the queue again, as a new message
    assert batches.waiting() == 1
    # WHEN the next invocation, with time, takes it
    batches.remaining_s = lambda: 900.0
    (copy,) = batches.invocation()
    # THEN it is the second job's copy, at its first receive (the original's is not counted), one deferral
    # counted, and the object moves
    assert _finding_id(copy) == second.finding_id and copy["messageId"] != records[1]["messageId"]
    assert copy["attributes"]["ApproximateReceiveCount"] == "1"
    assert copy["messageAttributes"][DEFERRALS_ATTRIBUTE]["stringValue"] == "1"
    assert batches.moved(second) and batches.waiting() == 0


def test_a_job_deferred_twice_is_then_moved_once(batches: Batches) -> None:
    # GIVEN an approved finding's job, and two invocations that start with 30 s left
    seeded = batches.world.seed("f-twice-late")
    batches.send(seeded)
    batches.remaining_s = lambda: 30.0
    # WHEN both take it THEN each gets it at a first receive, re-sends it and moves nothing
    for deferrals_before in ("0", "1"):
        (record,) = batches.invocation()
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["messageAttributes"].get(DEFERRALS_ATTRIBUTE, {}).get("stringValue", "0") == deferrals_before
        assert batches.untouched(seeded) and batches.waiting() == 1
    # WHEN an invocation with time takes it
    batches.remaining_s = lambda: 900.0
    (record,) = batches.invocation()
    # THEN it arrives as a first receive with two deferrals counted, and moves once
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"][DEFERRALS_ATTRIBUTE]["stringValue"] == "2"
    assert batches.moved(seeded)
    assert [e.outcome for e in batches.world.record(seeded.finding_id).audit].count("QUARANTINED") == 1


def test_a_later_job_waits_for_time_for_its_objects_size(batches: Batches) -> None:
    # GIVEN three jobs in one batch: two small objects, then one of 6 MiB (a multipart copy in this world), and
    # 60.05 s left once the first job is done: enough for a small object (60 s and its bytes), not for 6 MiB
    small = [batches.world.seed(f"f-small-{n}", key=f"exports/{n}.csv") for n in range(2)]
    large = batches.world.seed("f-large", key="exports/large.bin", body=b"x" * (6 * MB))
    batches.send(*small, large)
    batches.order = lambda records: sorted(records, key=lambda r: _finding_id(r) == large.finding_id)
    batches.remaining_s = _after_first_outcome(batches, small, then_s=60.05)
    # WHEN the batch is handled
    batches.invocation()
    # THEN the small objects moved, the large one was re-sent untouched
    assert all(batches.moved(s) for s in small)
    assert batches.untouched(large)
    # WHEN it comes first in an invocation (which has the whole timeout) THEN it moves
    batches.remaining_s = lambda: 900.0
    batches.invocation()
    assert batches.moved(large)


def test_a_deferred_job_that_cannot_be_re_sent_returns_to_the_queue_untouched(batches: Batches) -> None:
    # GIVEN an approved finding's job that was deferred as often as a record may be
    seeded = batches.world.seed("f-deferred-too-often")
    batches.send(seeded, attributes={DEFERRALS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(MAX_DEFERRALS)}})
    batches.remaining_s = lambda: 30.0
    # WHEN an invocation without time takes it
    poller = batches.poller()
    batches.invocation(poller)
    # THEN it is not re-sent but returns to the queue as a failure (its receive counts), the object untouched
    assert (poller.stats.deleted, poller.stats.retried) == (0, 1)
    assert batches.untouched(seeded)


def test_a_crash_between_the_re_send_and_the_acknowledgement_moves_the_job_once(batches: Batches) -> None:
    # GIVEN an approved finding's job deferred by an invocation without time whose acknowledgement is lost (the
    # poller's delete fails: Lambda's would reach the queue only after its crash), so two copies wait
    seeded = batches.world.seed("f-two-copies")
    batches.send(seeded)
    batches.remaining_s = lambda: 30.0
    poller = batches.poller(sqs=_DeleteFails(batches.sqs))
    with pytest.raises(RuntimeError, match="acknowledgement lost"):
        poller.poll_once()
    (original,) = batches.deliveries[-1]  # its visibility timeout ends
    batches.sqs.change_message_visibility(
        QueueUrl=batches.queue_url, ReceiptHandle=original["receiptHandle"], VisibilityTimeout=0
    )
    assert batches.waiting() == 2
    # WHEN invocations with time take both
    batches.remaining_s = lambda: 900.0
    while batches.waiting():
        batches.invocation()
    # THEN the object moved once: one copy in quarantine, one QUARANTINED in the audit
    assert batches.moved(seeded)
    assert [e.outcome for e in batches.world.record(seeded.finding_id).audit].count("QUARANTINED") == 1


class _DeleteFails:
    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name == "delete_message_batch":
            raise RuntimeError("acknowledgement lost")
        return getattr(self._client, name)


class _TimedOut(BaseException):
    """The invocation cut off by its timeout (nothing of the handler catches it, as nothing catches Lambda's)."""


def _dies_after(batches: Batches, monkeypatch: pytest.MonkeyPatch, seeded: Seeded) -> None:
    """Every invocation dies once ``seeded``'s job has run (its move done, the batch not acknowledged): Lambda
    returns a timed-out invocation's whole batch to the queue."""
    from macie_chatops import remediation

    real_handle_job = remediation.handle_job

    def handle_job(body: str, deps: Any) -> Any:
        result = real_handle_job(body, deps)
        if remediation.RemediationJob.from_message(body).finding_id == seeded.finding_id:
            raise _TimedOut
        return result

    monkeypatch.setattr(remediation, "handle_job", handle_job)
    real_handler = handler.lambda_handler

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        try:
            return real_handler(event, context)
        except _TimedOut:
            raise RuntimeError("Task timed out") from None

    monkeypatch.setattr(handler, "lambda_handler", lambda_handler)


SendHook = Callable[[Callable[..., Any]], None]


@pytest.fixture
def on_handler_send(batches: Batches) -> Iterator[SendHook]:
    """Hooks on the handler's SendMessage calls, taken off after the test: the handler's SQS client is cached for
    the process (a container's), so a hook left on it would run in every later test of this worker."""
    sqs = handler._cache.client("sqs", handler.read_settings(), handler.AWS_TIMEOUTS)
    hooks: list[Callable[..., Any]] = []

    def hook(function: Callable[..., Any]) -> None:
        sqs.meta.events.register("before-call.sqs.SendMessage", function)
        hooks.append(function)

    yield hook
    for function in hooks:
        sqs.meta.events.unregister("before-call.sqs.SendMessage", function)


def _re_sends(batches: Batches, large: Seeded, on_send: SendHook) -> list[bool]:
    """At each of the handler's SendMessage calls: whether ``large`` was still untouched then."""
    seen: list[bool] = []
    on_send(lambda **_: seen.append(batches.untouched(large)))
    return seen


def test_jobs_behind_a_first_job_too_large_for_the_time_left_are_passed_on_before_it_starts(
    batches: Batches, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], on_handler_send: SendHook
) -> None:
    # GIVEN a batch whose first job's object (6 MiB) needs more than the 60.05 s its invocation has, two small
    # jobs behind it, and an invocation that times out once the large job has run
    small = [batches.world.seed(f"f-behind-{n}", key=f"exports/{n}.csv") for n in range(2)]
    large = batches.world.seed("f-too-large", key="exports/large.bin", body=b"x" * (6 * MB))
    batches.send(large, *small)
    batches.order = lambda records: sorted(records, key=lambda r: _finding_id(r) != large.finding_id)
    batches.remaining_s = lambda: 60.05
    _dies_after(batches, monkeypatch, large)
    re_sends = _re_sends(batches, large, on_handler_send)
    capsys.readouterr()
    # WHEN the batch is handled
    poller = batches.poller()
    (original_large, *originals) = batches.invocation(poller)
    # THEN the two small jobs were re-sent before the large one was touched, and the large one still started
    assert re_sends == [True, True]
    assert batches.moved(large) and all(batches.untouched(s) for s in small)
    assert _metric_names(capsys.readouterr().out) == ["JobsDeferred", "JobsDeferred", "Jobs"]
    # AND the timeout returned the whole batch (in flight until its visibility timeout), but the copies wait now
    assert poller.stats.handler_errors == 1 and batches.waiting() == 2
    # WHEN the next invocation, with time, takes them
    batches.remaining_s = lambda: 900.0
    copies = batches.invocation()
    # THEN they are the small jobs' copies at their first receive, one deferral counted, and each moves once
    assert sorted(_finding_id(c) for c in copies) == sorted(s.finding_id for s in small)
    assert all(c["attributes"]["ApproximateReceiveCount"] == "1" for c in copies)
    assert all(c["messageAttributes"][DEFERRALS_ATTRIBUTE]["stringValue"] == "1" for c in copies)
    assert all(batches.moved(s) for s in small)
    # WHEN the originals come back after their visibility timeout THEN they find their jobs done: every object
    # was quarantined once
    for original in (original_large, *originals):
        batches.sqs.change_message_visibility(
            QueueUrl=batches.queue_url, ReceiptHandle=original["receiptHandle"], VisibilityTimeout=0
        )
    monkeypatch.undo()
    while batches.waiting():
        batches.invocation()
    for seeded in (large, *small):
        assert batches.moved(seeded)
        assert [e.outcome for e in batches.world.record(seeded.finding_id).audit].count("QUARANTINED") == 1


def _refuse_re_sends(on_send: SendHook) -> None:
    """The handler's SendMessage fails (SQS unreachable) from now on, until the test ends."""

    def refuse(**_: Any) -> None:
        raise ConnectionError("SQS unreachable")

    on_send(refuse)


@pytest.mark.parametrize("cause", ["deferred too often", "the re-send fails"])
def test_a_job_behind_a_too_large_first_one_that_cannot_be_re_sent_is_handled_in_its_turn(
    batches: Batches, cause: str, on_handler_send: SendHook
) -> None:
    # GIVEN a batch whose first job's object is too large for the time left (60.05 s; 45 s once the large job is
    # done), and a small job behind it that cannot be re-sent: it was deferred as often as a record may be, or
    # SQS refuses the send
    late = batches.world.seed("f-behind-not-passed", key="exports/late.csv")
    large = batches.world.seed("f-too-large-first", key="exports/large.bin", body=b"x" * (6 * MB))
    deferrals = MAX_DEFERRALS if cause == "deferred too often" else 0
    batches.send(large)
    batches.send(late, attributes={DEFERRALS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(deferrals)}})
    if cause == "the re-send fails":
        _refuse_re_sends(on_handler_send)
    batches.order = lambda records: sorted(records, key=lambda r: _finding_id(r) != large.finding_id)
    batches.remaining_s = lambda: 45.0 if batches.world.record(large.finding_id).state is not State.APPROVED else 60.05
    # WHEN the batch is handled
    poller = batches.poller()
    batches.invocation(poller)
    # THEN the large job moved; the small one was not passed on but handled in its turn as before: the guard
    # deferred it, it could not be re-sent, and it returned to the queue as a failure, untouched
    assert batches.moved(large) and batches.untouched(late)
    assert (poller.stats.deleted, poller.stats.retried) == (1, 1)
    assert batches.waiting() == 0


def test_a_first_job_that_fits_passes_nothing_on(batches: Batches, on_handler_send: SendHook) -> None:
    # GIVEN a batch whose first job's object (6 MiB) fits the 900 s its invocation has, and a small job behind it
    small = batches.world.seed("f-behind-fits", key="exports/small.csv")
    large = batches.world.seed("f-large-fits", key="exports/large.bin", body=b"x" * (6 * MB))
    batches.send(large, small)
    batches.order = lambda records: sorted(records, key=lambda r: _finding_id(r) != large.finding_id)
    re_sends = _re_sends(batches, large, on_handler_send)
    # WHEN the batch is handled
    poller = batches.poller()
    batches.invocation(poller)
    # THEN both moved in this invocation, nothing was re-sent, and both records were acknowledged
    assert batches.moved(large) and batches.moved(small)
    assert re_sends == []
    assert (poller.stats.deleted, poller.stats.retried) == (2, 0) and batches.waiting() == 0
