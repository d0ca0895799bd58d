"""The finding handler end to end in one process: the real ``lambda_handler`` fed SQS batch events built from
tests/events/*.json, against moto (state table, remediation queue, Slack secret) and the Slack stand-in.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from macie_chatops import names
from macie_chatops.config import Action, load_config
from macie_chatops.handlers import intake as handler
from macie_chatops.intake import IntakeDependencies, IntakeResult, handle_record
from macie_chatops.job_queue import BatchEntrySent
from macie_chatops.jobs import RemediationJob, SqsJobQueue
from macie_chatops.ports import JobQueue
from macie_chatops.states import State
from macie_chatops.store import CLAIM_ITEM_TYPE, FindingRecord, FindingStore, NewRecord, ObjectClaim, WriteResult
from macie_chatops.summary import ObjectVersion
from macie_chatops_sandbox.slack_standin import EXAMPLE_BOT_TOKEN, SlackStandIn
from macie_chatops_sandbox.testkit.world import (
    LambdaContext,
    SqsDelivery,
    approval_verifier,
    aws_client,
    create_remediation_queue,
    drain_jobs,
    emf_metrics,
    invoke_batch,
    provision_handler,
)
from tests.conftest import EVENTS_DIR, ROOT, AwsSandbox

TABLE = "intake-test-findings"
PAYMENTS = "C0PAYMENTS"
REVIEW = "personal-review"  # payments, review
AUTO = "credentials-auto"  # payments, auto
NOTIFY = "financial-low"  # payments, notify
IGNORE = "archived-finding"  # payments, ignore
MALFORMED = "severity-string"  # has a finding id, fails validation -> REJECTED
REVIEW_AGAIN = "automated-discovery-null-job"  # payments, review: REVIEW's object version, from automated discovery
AUTO_AGAIN = "credentials-auto-rediscovered"  # payments, auto: AUTO's object version, from automated discovery


def finding_id_of(name: str) -> str:
    return str(json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))["detail"]["id"])


class Delivery(SqsDelivery):
    """One intake queue message as Lambda sees it (the body is the EventBridge event's JSON text)."""

    queue_name = names.INTAKE_QUEUE_NAME
    sender_id = "AIDAEVENTBRIDGE"


def delivery(name: str) -> Delivery:
    """A fixture event, as EventBridge puts it on the intake queue (the body is the event JSON text)."""
    return Delivery((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class World:
    store: FindingStore
    sqs: Any
    queue_url: str
    slack: SlackStandIn

    def invoke(self, *deliveries: Delivery, timeout_s: float = 60.0) -> list[str]:
        """Run the real handler on one batch; return the message ids it reported as failed."""
        context = LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=timeout_s)
        return invoke_batch(handler.lambda_handler, deliveries, context)

    def record(self, finding_id: str) -> FindingRecord:
        record = self.store.get(finding_id)
        assert record is not None, f"no record for {finding_id}"
        return record

    def jobs(self) -> list[RemediationJob]:
        return drain_jobs(self.sqs, self.queue_url)

    def posts(self, channel: str = PAYMENTS) -> list[Any]:
        return self.slack.messages(channel)

    def table_size(self) -> int:
        """Finding records in the table (object-version claims are counted by ``claims``)."""
        items = aws_client("dynamodb").scan(TableName=TABLE)["Items"]
        return len([item for item in items if "item_type" not in item])

    def claims(self) -> list[ObjectClaim]:
        items = aws_client("dynamodb").scan(TableName=TABLE)["Items"]
        return [ObjectClaim.from_item(item) for item in items if item.get("item_type") == {"S": CLAIM_ITEM_TYPE}]

    def replies(self, ts: str, channel: str = PAYMENTS) -> list[Any]:
        return self.slack.replies(channel, ts)


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    queue_url = create_remediation_queue(aws.region)
    resources = provision_handler(
        config=load_config(ROOT / "accounts.yaml"),
        config_dir=tmp_path,
        table=TABLE,
        slack=slack,
        setenv=monkeypatch.setenv,
        queue_url=queue_url,
        region=aws.region,
    )
    handler.clear_caches()
    try:
        yield World(resources.store, aws_client("sqs", aws.region), queue_url, slack)
    finally:
        handler.clear_caches()


class Logs:
    """The handler's JSON log lines, as Lambda would ship them (Powertools' stream redirected here)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Logs:
    captured = Logs()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", captured.stream)
    return captured


# -- each action ---------------------------------------------------------------------------------------------


def test_review_posts_the_approval_message_and_waits_for_approval(world: World) -> None:
    # GIVEN a Personal finding in payments-prod (policy: review) WHEN the handler gets it
    assert world.invoke(delivery(REVIEW)) == []
    # THEN one approval message with Remediate/Dismiss is in the team's channel, and the record points at it
    record = world.record(finding_id_of(REVIEW))
    assert record.state is State.PENDING_APPROVAL
    (message,) = world.posts()
    assert (record.slack_channel, record.slack_ts) == (PAYMENTS, message.ts)
    action_ids = [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert action_ids == [names.ACTION_REMEDIATE, names.ACTION_DISMISS]
    assert record.summary is not None and record.summary.team == "payments"
    assert [e.event for e in record.audit] == ["received", "slack_posted", "decided"]
    assert [r.finding_id for r in world.store.pending_approvals("payments")] == [record.finding_id]
    assert world.jobs() == []
    assert record.intake_owner is None  # the lease was released


def test_auto_approves_queues_one_job_and_posts_an_information_message(world: World) -> None:
    assert world.invoke(delivery(AUTO)) == []
    record = world.record(finding_id_of(AUTO))
    # THEN APPROVED by auto, one quarantine job, one message without buttons whose ts the remediator can update
    assert record.state is State.APPROVED
    assert record.approver == "auto"
    assert record.job_queued_at is None  # no write after the send: the remediator notes the job's receipt
    assert record.intake_owner is None  # the approving transition gave the lease back
    (job,) = world.jobs()
    assert (job.kind, job.finding_id, job.requested_by) == ("quarantine", record.finding_id, "auto")
    (message,) = world.posts()
    assert record.slack_ts == message.ts
    assert not [b for b in message.blocks if b["type"] == "actions"]
    assert [e.event for e in record.audit] == ["received", "slack_posted", "decided"]


def test_notify_posts_an_information_message(world: World) -> None:
    assert world.invoke(delivery(NOTIFY)) == []
    record = world.record(finding_id_of(NOTIFY))
    assert record.state is State.NOTIFIED
    assert record.expires_at is not None  # final state
    (message,) = world.posts()
    assert record.slack_ts == message.ts
    assert world.jobs() == []


@pytest.mark.parametrize(
    ("name", "state", "reason"),
    [
        (IGNORE, State.IGNORED, "archived (suppressed) finding"),
        ("unknown-account", State.REJECTED, "account 999999999999 is not listed in accounts.yaml"),
        ("missing-resources-affected", State.REJECTED, "sensitive-data finding without resourcesAffected.s3Object"),
    ],
)
def test_ignore_and_reject_are_recorded_with_their_reason_and_post_nothing(
    world: World, name: str, state: State, reason: str
) -> None:
    assert world.invoke(delivery(name)) == []
    record = world.record(finding_id_of(name))
    assert (record.state, record.reason) == (state, reason)
    assert record.expires_at is not None
    assert world.slack.request_count("chat.postMessage") == 0
    assert world.jobs() == []


def test_a_malformed_event_is_rejected_by_finding_id_and_posts_nothing(world: World) -> None:
    # GIVEN a finding whose severity is a string WHEN it arrives
    assert world.invoke(delivery(MALFORMED)) == []
    # THEN it is recorded as REJECTED under its finding id, with the validation error, and nothing is posted
    record = world.record(finding_id_of(MALFORMED))
    assert record.state is State.REJECTED
    assert record.action is Action.REJECT
    assert record.reason.startswith("detail.severity.score")
    assert record.summary is None
    assert world.slack.request_count("chat.postMessage") == 0


def test_a_rejection_without_a_finding_id_is_recorded_by_event_id(world: World) -> None:
    assert world.invoke(delivery("legacy-macie-alert")) == []
    event_id = json.loads((EVENTS_DIR / "legacy-macie-alert.json").read_text(encoding="utf-8"))["id"]
    record = world.record(f"event:{event_id}")
    assert record.state is State.REJECTED
    assert "Macie Alert" in record.reason


def test_input_without_any_id_is_acknowledged_counted_and_logged_without_its_payload(
    world: World, logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN bytes that are not JSON, and JSON that is not an object
    secret_marker = "AKIA-THIS-MUST-NOT-BE-LOGGED"
    garbage = [delivery("not-json"), delivery("not-an-object"), Delivery(f"{{not json {secret_marker}")]
    # WHEN they arrive THEN they are acknowledged (retrying cannot fix them), nothing is recorded or posted
    assert world.invoke(*garbage) == []
    assert world.table_size() == 0
    assert world.slack.request_count("chat.postMessage") == 0
    assert secret_marker not in logs.text()
    assert [line["message"] for line in logs.lines()].count(
        "rejected input without any id: acknowledged, not recorded"
    ) == 3
    assert sum(1 for m in emf_metrics(capsys.readouterr().out) if m["name"] == "RejectedWithoutId") == 3


# -- duplicates ----------------------------------------------------------------------------------------------


def test_a_duplicate_delivery_posts_nothing_and_queues_nothing(world: World) -> None:
    # GIVEN a review finding, and an auto finding whose job has been carried out (no longer APPROVED)
    review, auto = delivery(REVIEW), delivery(AUTO)
    assert world.invoke(review, auto) == []
    assert len(world.jobs()) == 1
    world.store.transition(
        finding_id_of(AUTO), expected={State.APPROVED}, target=State.QUARANTINED, actor="remediator", event="moved"
    )
    before = {name: world.record(finding_id_of(name)).audit for name in (REVIEW, AUTO)}
    # WHEN the same messages are redelivered, and the same events arrive again as other messages
    assert world.invoke(review.again(), auto.again(), delivery(REVIEW), delivery(AUTO)) == []
    # THEN one record and one message each, no job, nothing written
    assert world.table_size() == 2
    assert len(world.posts()) == 2
    assert world.jobs() == []
    assert {name: world.record(finding_id_of(name)).audit for name in (REVIEW, AUTO)} == before


def test_a_duplicate_delivery_of_an_auto_finding_still_approved_sends_its_job_again(world: World) -> None:
    # GIVEN an auto finding approved and its job sent, not carried out yet
    first = delivery(AUTO)
    assert world.invoke(first) == []
    before = world.record(finding_id_of(AUTO))
    # WHEN the message is redelivered THEN the intake cannot tell a sent job from a lost one (nothing marks the
    # send, §5): the job is sent again, and nothing is posted or recorded (the remediator moves the version once:
    # test_remediator's duplicate jobs)
    assert world.invoke(first.again()) == []
    assert len(world.jobs()) == 2
    assert len(world.posts()) == 1
    after = world.record(finding_id_of(AUTO))
    assert after.audit == before.audit and after.intake_owner is None


def test_concurrent_duplicates_produce_one_record_one_message_one_decision(
    world: World,
    atomic_moto: None,
) -> None:
    # GIVEN the same auto finding delivered twice (two SQS messages), handled by two invocations at once
    results: list[list[str]] = []
    barrier = threading.Barrier(2)

    def invoke() -> None:
        barrier.wait()
        results.append(world.invoke(delivery(AUTO)))

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN both are acknowledged, and the finding is recorded, posted and decided once; its job is sent once, or
    # twice when the second delivery read the record after the first had approved it (§5: the remediator moves once)
    assert results == [[], []]
    assert world.table_size() == 1
    assert len(world.posts()) == 1
    assert 1 <= len(world.jobs()) <= 2
    record = world.record(finding_id_of(AUTO))
    assert record.state is State.APPROVED and record.intake_owner is None
    assert [e.event for e in record.audit] == ["received", "slack_posted", "decided"]


# -- Slack failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(429, "ratelimited"), (500, "http_500")])
def test_a_transient_slack_failure_fails_the_item_and_the_redelivery_posts_exactly_once(
    world: World, status: int, code: str
) -> None:
    # GIVEN Slack answering 429 (with a Retry-After that does not fit the invocation) or 500
    world.slack.fail_next("chat.postMessage", status=status, retry_after=600)
    first = delivery(REVIEW)
    # WHEN the finding arrives THEN the item fails (back to the queue), nothing is posted, the record says why
    assert world.invoke(first) == [first.message_id]
    assert world.posts() == []
    record = world.record(finding_id_of(REVIEW))
    assert record.state is State.RECEIVED
    assert record.slack_ts is None
    assert record.error == f"slack retryable: {code}"
    assert [(e.event, e.outcome) for e in record.audit][-1] == ("slack_post_failed", "retryable")
    # WHEN Slack has recovered and SQS redelivers the message THEN it is posted, once
    assert world.invoke(first.again()) == []
    # AND further redeliveries change nothing
    assert world.invoke(first.again().again()) == []
    (message,) = world.posts()
    record = world.record(finding_id_of(REVIEW))
    assert (record.state, record.slack_ts, record.error) == (State.PENDING_APPROVAL, message.ts, None)


def test_channel_not_found_is_a_clear_configuration_error_kept_for_retry(
    world: World, logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN Slack does not know the team's channel
    world.slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    first = delivery(AUTO)
    # WHEN an auto finding arrives
    assert world.invoke(first) == [first.message_id]
    # THEN nothing is quarantined behind the team's back: no job, still RECEIVED, the error on the record
    record = world.record(finding_id_of(AUTO))
    assert record.state is State.RECEIVED
    assert record.error == "slack configuration: channel_not_found"
    assert record.audit[-1].outcome == "configuration"
    assert "C0PAYMENTS" in record.audit[-1].detail
    assert world.jobs() == []
    # AND the log says what to fix, and the failure is counted by kind and code
    (error,) = [line for line in logs.lines() if line["level"] == "ERROR"]
    assert error["message"].startswith("Slack post failed (configuration): an operator must fix it")
    assert error["error_code"] == "channel_not_found"
    assert "accounts.yaml" in error["slack_error"]
    assert error["correlation_id"] == finding_id_of(AUTO)
    failures = [m for m in emf_metrics(capsys.readouterr().out) if m["name"] == "SlackFailures"]
    assert [(m["kind"], m["error_code"]) for m in failures] == [("configuration", "channel_not_found")]
    # WHEN the operator fixes it and the message comes back (retry, or DLQ redrive) THEN it completes, once
    assert world.invoke(first.again()) == []
    assert len(world.posts()) == 1
    assert len(world.jobs()) == 1
    assert world.record(finding_id_of(AUTO)).state is State.APPROVED


def test_a_rotated_token_is_read_again_after_slack_rejects_the_cached_one(world: World, aws: AwsSandbox) -> None:
    # GIVEN a container that has cached the bot token
    assert world.invoke(delivery(NOTIFY)) == []
    # WHEN the token is rotated (Slack now accepts only the new one, which is in the secret)
    world.slack.bot_token = "xoxb-rotated-token"
    boto3.client("secretsmanager", region_name=aws.region).put_secret_value(
        SecretId="macie-chatops/slack",
        SecretString=json.dumps({"bot_token": "xoxb-rotated-token", "signing_secret": "test-signing-secret"}),
    )
    first = delivery(REVIEW)
    # THEN the post with the stale token fails as a configuration error (invalid_auth) ...
    assert world.invoke(first) == [first.message_id]
    assert world.record(finding_id_of(REVIEW)).error == "slack configuration: invalid_auth"
    # ... and the next batch reads the secret again and posts
    assert world.invoke(first.again()) == []
    assert world.record(finding_id_of(REVIEW)).state is State.PENDING_APPROVAL
    assert len(world.posts()) == 2


# -- partial batches -----------------------------------------------------------------------------------------


def test_a_partial_batch_failure_reports_only_the_failed_item(world: World) -> None:
    # GIVEN a batch of three findings, and Slack failing exactly one post
    world.slack.fail_next("chat.postMessage", status=500)
    review, notify, ignore = delivery(REVIEW), delivery(NOTIFY), delivery(IGNORE)
    # WHEN the batch is handled THEN only the first post's item is reported as failed
    assert world.invoke(review, notify, ignore) == [review.message_id]
    assert world.record(finding_id_of(NOTIFY)).state is State.NOTIFIED
    assert world.record(finding_id_of(IGNORE)).state is State.IGNORED
    assert world.record(finding_id_of(REVIEW)).state is State.RECEIVED
    # AND the redelivered item completes
    assert world.invoke(review.again()) == []
    assert world.record(finding_id_of(REVIEW)).state is State.PENDING_APPROVAL
    assert len(world.posts()) == 2


def test_metrics_count_findings_by_action_and_type_posts_and_duplicates(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first = delivery(REVIEW)
    world.invoke(delivery(AUTO), first)
    world.invoke(first.again())
    found = [m for m in emf_metrics(capsys.readouterr().out) if m["namespace"] == "MacieChatOps"]
    findings = sorted((m["action"], m["finding_type"]) for m in found if m["name"] == "Findings")
    assert findings == [("auto", "SensitiveData:S3Object/Credentials"), ("review", "SensitiveData:S3Object/Personal")]
    assert sorted(m["action"] for m in found if m["name"] == "SlackPosts") == ["auto", "review"]
    assert [m["kind"] for m in found if m["name"] == "Duplicates"] == ["complete"]
    assert [m["name"] for m in found].count("JobsQueued") == 1


def test_logs_carry_the_finding_id_as_correlation_id_and_never_the_token_or_payload(world: World, logs: Logs) -> None:
    world.slack.fail_next("chat.postMessage", status=500)
    first = delivery(REVIEW)
    world.invoke(first)
    world.invoke(first.again())
    lines = logs.lines()
    received = next(line for line in lines if line["message"] == "finding received")
    assert received["correlation_id"] == finding_id_of(REVIEW)
    assert received["action"] == "review"
    assert all(line["correlation_id"] == finding_id_of(REVIEW) for line in lines if "correlation_id" in line)
    assert EXAMPLE_BOT_TOKEN not in logs.text()
    key = json.loads(first.body)["detail"]["resourcesAffected"]["s3Object"]["key"]
    assert key not in logs.text()


# -- resuming after a crash (the core, with a store that fails where a crash would happen) -------------------


class CrashingStore(FindingStore):
    """The real store, except that one chosen write raises once, as if the process died right before it."""

    def __init__(self, crash_on: str) -> None:
        super().__init__(aws_client("dynamodb"), TABLE)
        self.crash_on = crash_on

    def _crash(self, name: str) -> None:
        if self.crash_on == name:
            self.crash_on = ""
            raise RuntimeError(f"simulated crash before {name}")

    def set_slack_message(self, finding_id: str, **kwargs: Any) -> WriteResult:
        self._crash("set_slack_message")
        return super().set_slack_message(finding_id, **kwargs)

    def transition(self, finding_id: str, **kwargs: Any) -> WriteResult:
        # The intake records the posted message's ts in this same write: a crash here is after the post.
        self._crash("transition")
        return super().transition(finding_id, **kwargs)

    def release_intake(self, finding_id: str, *, owner: str) -> None:
        if self.crash_on == "":  # a crashed process releases nothing: only the lease's expiry frees it
            return
        super().release_intake(finding_id, owner=owner)


def core_deps(world: World, store: FindingStore, queue: JobQueue | None = None) -> IntakeDependencies:
    settings = handler.read_settings()
    real = handler.dependencies(settings, lambda: 60.0)
    return IntakeDependencies(
        config=real.config,
        store=store,
        slack=real.slack,
        queue=queue or real.queue,
        metrics=real.metrics,
        signer=real.signer,
    )


class CrashingQueue:
    """The real remediation queue, except that the process dies once, right ``before`` or after sending a job."""

    def __init__(self, real: JobQueue, *, before: bool) -> None:
        self.real, self.before, self.crashed = real, before, False

    def send(self, job: RemediationJob) -> str:
        if self.crashed:
            return self.real.send(job)
        self.crashed = True
        if self.before:
            raise RuntimeError("simulated crash before the job is sent")
        self.real.send(job)
        raise RuntimeError("simulated crash after the job was sent")

    def waiting(self) -> int:
        return self.real.waiting()


class StoresTheTsAloneThenCrashes(FindingStore):
    """The ts written in a write of its own, then a crash before the transition: how the previous version
    (which stored the ts and made the transition in two writes) can leave a record during a deployment."""

    def transition(self, finding_id: str, **kwargs: Any) -> WriteResult:
        posted = kwargs.get("slack_message")
        if posted is not None:
            self.set_slack_message(finding_id, channel=posted.channel, ts=posted.ts, actor=posted.actor)
        raise RuntimeError("simulated crash before transition")

    def release_intake(self, finding_id: str, *, owner: str) -> None:
        return  # a crashed process releases nothing


def crash_then_redeliver(
    world: World,
    name: str,
    crash_on: str,
    crashing: FindingStore | None = None,
    *,
    queue: JobQueue | None = None,
) -> FindingRecord:
    body = delivery(name).body
    crashing = crashing or CrashingStore(crash_on)
    # The crashed attempt's lease ends at its deadline, which has passed by the time SQS redelivers.
    with pytest.raises(RuntimeError, match="simulated crash"):
        handle_record(body, core_deps(world, crashing, queue), attempt="crashed", deadline=datetime.now(UTC))
    outcome = handle_record(
        body, core_deps(world, world.store), attempt="redelivery", deadline=datetime.now(UTC) + timedelta(minutes=1)
    )
    assert outcome.result is IntakeResult.DONE
    return world.record(finding_id_of(name))


def test_a_record_with_a_stored_ts_resumes_without_posting_again(world: World) -> None:
    # GIVEN a first attempt that posted and stored the ts on its own, then died before the transition (the
    # previous version's write order)
    crashing = StoresTheTsAloneThenCrashes(aws_client("dynamodb"), TABLE)
    record = crash_then_redeliver(world, REVIEW, "transition", crashing)
    # THEN the redelivery only makes the transition
    assert record.state is State.PENDING_APPROVAL
    assert len(world.posts()) == 1
    assert record.intake_owner is None


def test_intake_stores_the_ts_with_the_transition_and_gives_the_lease_back_in_the_last_write(world: World) -> None:
    # GIVEN a review and an auto finding WHEN they are handled
    assert world.invoke(delivery(REVIEW), delivery(AUTO)) == []
    # THEN each record holds its message, the whole audit trail in order, and no lease
    review, auto = world.record(finding_id_of(REVIEW)), world.record(finding_id_of(AUTO))
    assert {review.slack_ts, auto.slack_ts} == {post.ts for post in world.posts()}
    assert [(e.event, e.outcome) for e in review.audit] == [
        ("received", "RECEIVED"),
        ("slack_posted", "posted"),
        ("decided", "PENDING_APPROVAL"),
    ]
    assert [(e.actor, e.event, e.outcome) for e in auto.audit] == [
        ("finding-handler", "received", "RECEIVED"),
        ("finding-handler", "slack_posted", "posted"),
        ("auto", "decided", "APPROVED"),
    ]
    assert review.intake_owner is None and auto.intake_owner is None
    assert auto.job_queued_at is None and len(world.jobs()) == 1


def test_a_crash_between_approving_and_queueing_still_queues_the_job(world: World) -> None:
    # GIVEN an auto finding whose first attempt died after the approving transition (which gave the lease back),
    # before its job was sent
    queue = CrashingQueue(handler.dependencies(handler.read_settings(), lambda: 60.0).queue, before=True)
    record = crash_then_redeliver(world, AUTO, "", queue=queue)
    # THEN the redelivery sends it: the job is never lost, the message is not posted again, nothing is re-recorded
    assert record.state is State.APPROVED and record.intake_owner is None
    assert [e.event for e in record.audit] == ["received", "slack_posted", "decided"]
    assert len(world.jobs()) == 1
    assert len(world.posts()) == 1


def test_a_crash_right_after_queueing_sends_the_job_twice_the_documented_residual_risk(world: World) -> None:
    # GIVEN an auto finding whose first attempt sent its job, then died before SQS heard the message was done
    queue = CrashingQueue(handler.dependencies(handler.read_settings(), lambda: 60.0).queue, before=False)
    record = crash_then_redeliver(world, AUTO, "", queue=queue)
    # THEN the redelivery cannot tell (nothing marks the send): the job goes twice, which the remediator moves
    # once (test_remediator's duplicate jobs); one message, one decision
    assert record.state is State.APPROVED and record.intake_owner is None
    assert [e.event for e in record.audit] == ["received", "slack_posted", "decided"]
    assert len(world.jobs()) == 2
    assert len(world.posts()) == 1


def test_a_queue_that_refuses_the_auto_job_fails_the_item_and_the_redelivery_sends_it(world: World) -> None:
    # GIVEN the remediation queue refusing the first send (SQS down): the handler sends its batch's jobs together
    first = delivery(AUTO)
    real_send = SqsJobQueue.send_batch
    refused: list[str] = []

    def refuse_once(queue: SqsJobQueue, jobs: Sequence[RemediationJob]) -> list[BatchEntrySent]:
        if not refused:
            refused.extend(job.finding_id for job in jobs)
            raise RuntimeError("SQS refused the job")
        return real_send(queue, jobs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SqsJobQueue, "send_batch", refuse_once)
        # WHEN the finding arrives THEN the item fails (back to the queue), the finding approved, no job yet
        assert world.invoke(first) == [first.message_id]
        record = world.record(finding_id_of(AUTO))
        assert record.state is State.APPROVED and world.jobs() == [] and record.intake_owner is None
        # WHEN SQS redelivers it THEN the job is sent, once, and nothing is posted again
        assert world.invoke(first.again()) == []
    assert len(world.jobs()) == 1
    assert len(world.posts()) == 1


def test_a_crash_between_posting_and_storing_the_ts_posts_twice_the_documented_residual_risk(
    world: World,
) -> None:
    # GIVEN the first attempt's post reached Slack but the process died before the write that stores the ts
    # (and makes the transition)
    record = crash_then_redeliver(world, REVIEW, "transition")
    # THEN the redelivery cannot know about the first message: it posts again and records the second one
    first, second = world.posts()
    assert record.slack_ts == second.ts != first.ts
    assert record.state is State.PENDING_APPROVAL


def test_a_live_lease_leaves_the_finding_to_its_holder(world: World) -> None:
    # GIVEN a delivery that holds the intake lease and is still running (its deadline is ahead)
    store = world.store
    body = delivery(REVIEW).body
    crashing = CrashingStore("transition")
    with pytest.raises(RuntimeError):
        handle_record(
            body, core_deps(world, crashing), attempt="holder", deadline=datetime.now(UTC) + timedelta(minutes=5)
        )
    # WHEN a duplicate arrives meanwhile THEN it leaves the finding alone (the holder's message is in flight)
    outcome = handle_record(
        body, core_deps(world, store), attempt="other", deadline=datetime.now(UTC) + timedelta(minutes=5)
    )
    assert outcome.result is IntakeResult.IN_PROGRESS
    assert len(world.posts()) == 1


class HolderFinishesFirst(FindingStore):
    """The real store; right before a claim, the previous holder completes the intake (a narrow race)."""

    def claim_intake(self, finding_id: str, *, owner: str, until: datetime) -> WriteResult:
        self.transition(
            finding_id, expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="holder", event="decided"
        )
        return super().claim_intake(finding_id, owner=owner, until=until)


def test_a_claim_won_after_the_holder_finished_is_a_duplicate(world: World) -> None:
    # GIVEN an unfinished intake (posted, not yet recorded nor moved on)
    body = delivery(REVIEW).body
    with pytest.raises(RuntimeError):
        handle_record(body, core_deps(world, CrashingStore("transition")), attempt="a", deadline=datetime.now(UTC))
    # WHEN a duplicate reads it, and the first holder completes it just before the duplicate's claim
    racing = HolderFinishesFirst(aws_client("dynamodb"), TABLE)
    outcome = handle_record(
        body, core_deps(world, racing), attempt="b", deadline=datetime.now(UTC) + timedelta(minutes=1)
    )
    # THEN the duplicate sees a finished intake and does nothing
    assert outcome.result is IntakeResult.DUPLICATE
    assert len(world.posts()) == 1
    assert world.record(finding_id_of(REVIEW)).intake_owner is None


def test_metrics_can_be_switched_off_like_powertools_metrics(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN POWERTOOLS_METRICS_DISABLED (the sandbox's CLI keeps stdout for its own output)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    # WHEN findings are handled THEN no metric line is printed
    world.invoke(delivery(REVIEW), delivery("not-json"))
    assert emf_metrics(capsys.readouterr().out) == []


# -- one object version, one remediation -----------------------------------------------------------------------


def first_and_again(world: World, first: str, again: str) -> tuple[FindingRecord, FindingRecord]:
    return world.record(finding_id_of(first)), world.record(finding_id_of(again))


def test_a_second_finding_for_a_pending_version_is_recorded_as_a_duplicate_with_one_thread_reply(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a review finding awaiting approval
    assert world.invoke(delivery(REVIEW)) == []
    # WHEN automated discovery reports the same object version under another finding id
    again = delivery(REVIEW_AGAIN)
    assert world.invoke(again) == []
    # THEN the second is DUPLICATE (final), pointing at the first, with what became of the version there
    first, duplicate = first_and_again(world, REVIEW, REVIEW_AGAIN)
    assert first.state is State.PENDING_APPROVAL
    assert duplicate.state is State.DUPLICATE
    assert duplicate.duplicate_of == first.finding_id
    assert (duplicate.outcome, duplicate.outcome_detail) == (
        "duplicate",
        f"already awaiting approval under finding {first.finding_id}",
    )
    assert duplicate.expires_at is not None
    assert [(e.event, e.outcome) for e in duplicate.audit] == [
        ("received", "RECEIVED"),
        ("duplicate", "DUPLICATE"),
        ("duplicate_reply_posted", "posted"),
    ]
    # AND no review message of its own and no job: one reply in the first message's thread, recorded
    (message,) = world.posts()
    assert message.ts == first.slack_ts
    (reply,) = world.replies(message.ts)
    assert duplicate.duplicate_thread == {"channel": PAYMENTS, "ts": first.slack_ts}
    assert duplicate.duplicate_reply_ts == reply.ts
    assert duplicate.slack_ts is None and duplicate.intake_owner is None
    assert (
        f"Macie reported this object version again: finding `{duplicate.finding_id}`" in reply.blocks[0]["text"]["text"]
    )
    assert "automated sensitive data discovery" in reply.blocks[0]["text"]["text"]
    assert world.jobs() == []
    assert [r.finding_id for r in world.store.pending_approvals()] == [first.finding_id]
    # AND one claim, the first finding's, counted duplicates by action
    (claim,) = world.claims()
    assert claim.finding_id == first.finding_id
    assert first.summary is not None and claim.key == first.summary.object_version.claim_key
    found = emf_metrics(capsys.readouterr().out)
    assert [m["action"] for m in found if m["name"] == "DuplicateFindings"] == ["review"]
    # WHEN the duplicate is delivered again THEN nothing more is posted
    assert world.invoke(again.again(), delivery(REVIEW_AGAIN)) == []
    assert len(world.replies(message.ts)) == 1
    assert world.record(duplicate.finding_id).audit == duplicate.audit


@pytest.mark.parametrize(
    ("first_state", "detail"),
    [
        (State.APPROVED, "already approved for quarantine under finding {first}"),
        (State.QUARANTINED, "already quarantined under finding {first}, now at s3://quarantine-bucket/{first}/key"),
        (State.DISMISSED, "already dismissed under finding {first}"),
        (State.BLOCKED, "already handled under finding {first} (blocked)"),
    ],
)
def test_a_second_finding_for_a_version_already_acted_on_points_at_the_first(
    world: World, first_state: State, detail: str
) -> None:
    # GIVEN the first finding of an object version moved on to approved / quarantined / dismissed / blocked
    assert world.invoke(delivery(REVIEW)) == []
    first_id = finding_id_of(REVIEW)
    path = {
        State.APPROVED: [State.APPROVED],
        State.QUARANTINED: [State.APPROVED, State.QUARANTINED],
        State.DISMISSED: [State.DISMISSED],
        State.BLOCKED: [State.APPROVED, State.BLOCKED],
    }[first_state]
    for step in path:
        current = world.record(first_id).state
        quarantine = {
            "bucket": "quarantine-bucket",
            "key": f"{first_id}/key",
            "version_id": "v1",
            "region": "us-east-1",
        }
        world.store.transition(
            first_id,
            expected={current},
            target=step,
            actor="U0ALICE",
            event="test",
            updates={"quarantine": quarantine} if step is State.QUARANTINED else None,
        )
    # WHEN the same version is reported again THEN it is a duplicate that says what became of it
    assert world.invoke(delivery(REVIEW_AGAIN)) == []
    duplicate = world.record(finding_id_of(REVIEW_AGAIN))
    assert (duplicate.state, duplicate.duplicate_of) == (State.DUPLICATE, first_id)
    assert duplicate.outcome_detail == detail.format(first=first_id)
    # AND nothing new is posted to the channel, one reply goes under the first message, nothing is queued
    (message,) = world.posts()
    assert len(world.replies(message.ts)) == 1
    assert world.jobs() == []
    assert world.record(first_id).state is first_state  # the first finding is untouched


def test_two_auto_findings_for_one_version_queue_one_job(world: World) -> None:
    # GIVEN an auto finding, approved and its job queued
    assert world.invoke(delivery(AUTO)) == []
    # WHEN automated discovery reports the same version
    assert world.invoke(delivery(AUTO_AGAIN)) == []
    # THEN one job, for the first; the second is a duplicate with no job and no message of its own
    first, duplicate = first_and_again(world, AUTO, AUTO_AGAIN)
    assert (first.state, duplicate.state) == (State.APPROVED, State.DUPLICATE)
    assert duplicate.duplicate_of == first.finding_id
    assert duplicate.outcome_detail == f"already approved for quarantine under finding {first.finding_id}"
    assert duplicate.approver is None and duplicate.job_queued_at is None
    assert [job.finding_id for job in world.jobs()] == [first.finding_id]
    (message,) = world.posts()
    assert len(world.replies(message.ts)) == 1
    # AND the sweeper's index lists the first only (claims and duplicates carry none of its keys)
    assert [r.finding_id for r in world.store.approved_before(datetime.now(UTC) + timedelta(minutes=1))] == [
        first.finding_id
    ]


@pytest.mark.parametrize(("first", "again"), [(REVIEW, REVIEW_AGAIN), (AUTO, AUTO_AGAIN)])
def test_two_findings_for_one_version_arriving_at_once_give_one_claim_and_one_duplicate(
    world: World, atomic_moto: None, first: str, again: str
) -> None:
    # GIVEN two findings for one object version, handled by two invocations at the same moment
    results: list[list[str]] = []
    barrier = threading.Barrier(2)

    def invoke(name: str) -> None:
        barrier.wait()
        results.append(world.invoke(delivery(name)))

    threads = [threading.Thread(target=invoke, args=(name,)) for name in (first, again)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN both are acknowledged; one claim, one finding posted and moved on, the other its duplicate
    assert results == [[], []]
    (claim,) = world.claims()
    records = {r.finding_id: r for r in first_and_again(world, first, again)}
    winner = records.pop(claim.finding_id)
    (loser,) = records.values()
    assert winner.state is (State.PENDING_APPROVAL if first == REVIEW else State.APPROVED)
    assert (loser.state, loser.duplicate_of) == (State.DUPLICATE, winner.finding_id)
    (message,) = world.posts()
    assert message.ts == winner.slack_ts
    # at most one reply: none when the duplicate was recorded before the winner's message existed
    assert len(world.replies(message.ts)) <= 1
    assert len(world.replies(message.ts)) == (1 if loser.duplicate_thread else 0)
    assert [job.finding_id for job in world.jobs()] == ([winner.finding_id] if first == AUTO else [])


def test_a_failed_thread_reply_keeps_the_duplicate_and_the_redelivery_replies_once(world: World) -> None:
    # GIVEN a pending finding, and Slack failing the next post (the duplicate's thread reply)
    assert world.invoke(delivery(REVIEW)) == []
    world.slack.fail_next("chat.postMessage", status=500)
    again = delivery(REVIEW_AGAIN)
    # WHEN the same version is reported again THEN the item fails, but the duplicate is recorded already
    assert world.invoke(again) == [again.message_id]
    duplicate = world.record(finding_id_of(REVIEW_AGAIN))
    assert (duplicate.state, duplicate.duplicate_reply_ts) == (State.DUPLICATE, None)
    assert duplicate.error == "slack retryable: http_500"
    assert duplicate.audit[-1].event == "slack_post_failed"
    (message,) = world.posts()
    assert world.replies(message.ts) == []
    # WHEN SQS redelivers it THEN the reply is posted, once, and recorded; later deliveries post nothing
    assert world.invoke(again.again()) == []
    assert world.invoke(again.again().again()) == []
    (reply,) = world.replies(message.ts)
    duplicate = world.record(duplicate.finding_id)
    assert (duplicate.duplicate_reply_ts, duplicate.error, duplicate.intake_owner) == (reply.ts, None, None)
    assert world.jobs() == []


def test_a_duplicate_of_a_deleted_message_is_recorded_without_a_reply(world: World) -> None:
    # GIVEN a pending finding whose message was deleted in Slack
    assert world.invoke(delivery(REVIEW)) == []
    first = world.record(finding_id_of(REVIEW))
    assert first.slack_ts is not None
    request = urllib.request.Request(
        world.slack.response_url(PAYMENTS, first.slack_ts),
        data=json.dumps({"delete_original": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200
    # WHEN the same version is reported again
    assert world.invoke(delivery(REVIEW_AGAIN)) == []
    # THEN it is a duplicate; no thread to reply in: audited, no reply due any more, intake complete
    duplicate = world.record(finding_id_of(REVIEW_AGAIN))
    assert duplicate.state is State.DUPLICATE
    assert duplicate.duplicate_thread is None and duplicate.duplicate_reply_ts is None
    assert (duplicate.audit[-1].event, duplicate.audit[-1].outcome) == ("duplicate_reply_failed", "thread_gone")
    assert duplicate.intake_owner is None
    assert world.posts() == []


def test_notify_and_ignore_take_no_claim_and_a_review_after_them_is_posted(world: World) -> None:
    # GIVEN the finding of an object version decided notify (financial-low) and one ignored (archived)
    assert world.invoke(delivery(NOTIFY), delivery(IGNORE)) == []
    # THEN neither took a claim: they never lead to a move
    assert world.claims() == []
    # AND a review finding's claim is taken, and is no finding record: get() and the listings never show it
    assert world.invoke(delivery(REVIEW)) == []
    (claim,) = world.claims()
    assert claim.finding_id == finding_id_of(REVIEW)
    assert world.store.get(claim.key) is None
    assert [r.finding_id for r in world.store.pending_approvals()] == [finding_id_of(REVIEW)]
    assert [r.finding_id for r in world.store.pending_approvals("payments")] == [finding_id_of(REVIEW)]
    assert world.store.approved_before(datetime.now(UTC) + timedelta(minutes=1)) == []


class CrashesAfterClaiming(FindingStore):
    """The real store; the process dies right after the object version's claim is written (once): with the record
    (a claim that was free), or on its own (``alone``: a claim the record could not be created with)."""

    crashed = False

    def __init__(self, *args: Any, alone: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alone = alone

    def create(self, new: NewRecord, *, claiming: bool = True) -> WriteResult:
        # alone: the record is created without the claim, which claim_object then takes
        created = super().create(new, claiming=claiming and not self.alone)
        if not self.alone and created.record.object_claimed_at is not None:
            self._crash_once()
        return created

    def claim_object(self, version: ObjectVersion, *, finding_id: str) -> ObjectClaim:
        claim = super().claim_object(version, finding_id=finding_id)
        self._crash_once()
        return claim

    def _crash_once(self) -> None:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("simulated crash after claiming")

    def release_intake(self, finding_id: str, *, owner: str) -> None:
        return  # a crashed process releases nothing


@pytest.mark.parametrize("alone", [False, True], ids=["claimed with the record", "claimed on its own"])
def test_a_crash_after_claiming_resumes_as_the_holder_and_posts_once(world: World, alone: bool) -> None:
    # GIVEN a first attempt that claimed the object version and died before posting
    crashing = CrashesAfterClaiming(aws_client("dynamodb"), TABLE, alone=alone)
    record = crash_then_redeliver(world, REVIEW, "claim", crashing)
    # THEN the redelivery resumes as the holder (claiming again only if the record does not say it holds the claim),
    # posts once and waits for approval, its record marked as the claim's holder
    assert crashing.crashed
    assert record.state is State.PENDING_APPROVAL
    assert len(world.posts()) == 1
    (claim,) = world.claims()
    assert claim.finding_id == record.finding_id
    assert record.object_claimed_at == claim.claimed_at


def test_a_finding_is_created_with_its_claim_in_one_call(world: World) -> None:
    # GIVEN the finding handler's DynamoDB calls noted
    calls: list[str] = []
    client = aws_client("dynamodb")
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    store = FindingStore(client, TABLE)
    # WHEN a review finding whose object version nobody claimed is taken
    outcome = handle_record(
        delivery(REVIEW).body, core_deps(world, store), attempt="a", deadline=datetime.now(UTC) + timedelta(minutes=1)
    )
    # THEN one transaction created the record and took the claim, and the decision is the only other write
    assert outcome.result is IntakeResult.DONE
    assert calls == ["TransactWriteItems", "UpdateItem"]
    (claim,) = world.claims()
    record = world.record(finding_id_of(REVIEW))
    assert claim.finding_id == record.finding_id and record.object_claimed_at == claim.claimed_at


# -- the auto approval is signed (docs/architecture.md §23) ---------------------------------------------------------


def test_an_auto_approval_is_signed_in_the_write_that_approves_it(world: World) -> None:
    # GIVEN an auto finding  WHEN the finding handler takes it
    outcome = handle_record(
        delivery(AUTO).body,
        core_deps(world, world.store),
        attempt="a",
        deadline=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert outcome.result is IntakeResult.DONE
    # THEN the APPROVED record carries the auto approval of its quarantine, and it verifies
    record = world.record(finding_id_of(AUTO))
    assert record.state is State.APPROVED and record.approval is not None
    assert (record.approval["action"], record.approval["approver"]) == ("quarantine", "auto")
    assert approval_verifier().verify(record, "quarantine").verified


def test_without_a_signer_an_auto_finding_is_not_approved(world: World) -> None:
    # GIVEN a finding handler with no signer (a deployment without the approval key)
    unsigned = dataclasses.replace(core_deps(world, world.store), signer=None)
    # WHEN it takes an auto finding  THEN it raises (the queue retries it), before approving or queueing anything
    with pytest.raises(ValueError, match="cannot be signed"):
        handle_record(delivery(AUTO).body, unsigned, attempt="a", deadline=datetime.now(UTC) + timedelta(minutes=1))
    record = world.record(finding_id_of(AUTO))
    assert record.state is State.RECEIVED and record.approval is None
    assert world.jobs() == []


def test_a_batch_reads_an_accounts_recorded_exemptions_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a batch of three findings of one account (review, notify, auto), and the exemptions store's reads noted
    from macie_chatops.exemption_store import ExemptionStore

    reads: list[str] = []
    read = ExemptionStore.for_account

    def noted(store: ExemptionStore, account_id: str) -> Any:
        reads.append(account_id)
        return read(store, account_id)

    monkeypatch.setattr(ExemptionStore, "for_account", noted)
    # WHEN the batch is handled
    assert world.invoke(delivery(REVIEW), delivery(NOTIFY), delivery(AUTO)) == []
    # THEN each finding is decided as usual, and the account's exemptions were read once for the batch
    states = [world.record(finding_id_of(name)).state for name in (REVIEW, NOTIFY, AUTO)]
    assert states == [State.PENDING_APPROVAL, State.NOTIFIED, State.APPROVED]
    assert reads == ["345678901234"]
    # AND the next invocation reads them again (an exemption recorded since applies to its findings)
    assert world.invoke(delivery(REVIEW_AGAIN)) == []
    assert reads == ["345678901234", "345678901234"]
