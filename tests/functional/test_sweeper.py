"""The sweeper end to end in one process: the real ``lambda_handler`` (invoked as its schedule invokes it) and
the sweep core against moto (state table with its approved index, remediation queue, member accounts) and the
Slack stand-in; re-queued jobs are run by the real remediator handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from macie_chatops import names
from macie_chatops.config import Action
from macie_chatops.handlers import sweeper as sweeper_handler
from macie_chatops.jobs import RemediationJob, SqsJobQueue
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore
from macie_chatops.sweeper import (
    EVENT_GAVE_UP,
    EVENT_REQUEUED,
    SweepDependencies,
    SweepError,
    SweepPolicy,
    Verdict,
    sweep,
)
from macie_chatops_sandbox.testkit.world import aws_client, create_remediation_queue, emf_metrics, slack_client
from tests.conftest import AwsSandbox
from tests.functional.move_world import MEMBER_A
from tests.functional.remediator_world import (
    SOURCE,
    TABLE,
    RemediatorWorld,
    message_text,
    remediator_world,
)
from tests.functional.sweeper_world import (
    LONG_AGO,
    approved_since,
    queued,
    run_sweeper,
    store_at,
    sweeper_metrics,
)


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        sweeper_handler.clear_caches()
        try:
            yield built
        finally:
            sweeper_handler.clear_caches()


@pytest.fixture
def queue_url(world: RemediatorWorld, monkeypatch: pytest.MonkeyPatch) -> str:
    url = create_remediation_queue()
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, url)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    return url


def test_a_stale_approval_gets_its_job_requeued_and_the_job_quarantines_the_object(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a finding approved two hours ago whose job never arrived (the record says APPROVED, the queue is empty)
    seeded = approved_since(world, "f-lost-job", LONG_AGO)
    # WHEN the schedule runs the sweeper
    answer = run_sweeper()
    # THEN one quarantine job is queued for it, in the approver's name, and the re-queue is on the audit trail
    deliveries = queued(queue_url)
    assert [json.loads(d.body)["finding_id"] for d in deliveries] == ["f-lost-job"]
    assert json.loads(deliveries[0].body)["requested_by"] == "U0ALICE"
    record = world.record("f-lost-job")
    assert record.state is State.APPROVED
    assert (record.audit[-1].actor, record.audit[-1].event) == ("sweeper", EVENT_REQUEUED)
    assert "re-queue 1 of 3" in record.audit[-1].detail
    # AND the sweep is counted: one stale approval, one re-queued, none stuck
    assert answer == {
        "StaleApprovals": 1,
        "ApprovalsRequeued": 1,
        "ApprovalsDeferred": 0,
        "StuckApprovals": 0,
        "SweepErrors": 0,
        "UnverifiedApprovals": 0,
    }
    assert sweeper_metrics(capsys.readouterr().out) == answer
    # WHEN the remediator takes the re-queued job
    assert world.invoke(*deliveries) == []
    # THEN the object is quarantined, the finding has left APPROVED, and with it the sweeper's index
    record = world.record("f-lost-job")
    assert record.state is State.QUARANTINED and record.approved_at is None
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) is None
    assert record.quarantine is not None and world.moves.quarantined(MEMBER_A, record.quarantine["key"]) == seeded.body
    assert world.store.approved_before(datetime.now(UTC) + timedelta(days=1)) == []
    # AND the next sweep finds nothing to do
    assert run_sweeper()["StaleApprovals"] == 0
    assert queued(queue_url) == []


def test_a_fresh_approval_is_left_alone(world: RemediatorWorld, queue_url: str) -> None:
    # GIVEN a finding approved 10 minutes ago (its job may well be running)
    approved_since(world, "f-fresh", timedelta(minutes=10))
    before = world.record("f-fresh")
    # WHEN the sweeper runs
    answer = run_sweeper()
    # THEN nothing is queued and the record is untouched
    assert answer["StaleApprovals"] == 0 and answer["ApprovalsRequeued"] == 0
    assert queued(queue_url) == []
    assert world.record("f-fresh") == before


def test_after_the_last_requeue_the_sweeper_stops_and_is_loud(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a finding approved 3 hours ago whose jobs never produce an outcome (they are lost each time)
    seeded = approved_since(world, "f-stuck", timedelta(hours=3))
    start = datetime.now(UTC) - timedelta(hours=3)
    now = [start]
    clock = store_at(lambda: now[0])
    deps = SweepDependencies(
        store=clock,
        queue=SqsJobQueue(aws_client("sqs"), queue_url),
        slack=slack_client(world.slack),
        policy=SweepPolicy(stale_after=timedelta(minutes=30), max_requeues=3),
        clock=lambda: now[0],
    )
    # WHEN sweeps run every 31 minutes (the store writing at the same moments), each job taken off the queue
    # in between and lost again
    verdicts = []
    lost = 0
    for _ in range(5):
        now[0] += timedelta(minutes=31)
        report = sweep(deps)
        verdicts.append([outcome.verdict for outcome in report.outcomes])
        lost += len(queued(queue_url))
    # THEN it re-queued the job three times, then gave up, then kept it reported as stuck
    assert verdicts == [[Verdict.REQUEUE]] * 3 + [[Verdict.GIVE_UP], [Verdict.STILL_STUCK]]
    assert lost == 3
    record = world.record("f-stuck")
    assert record.state is State.APPROVED
    events = [entry.event for entry in record.audit]
    assert events.count(EVENT_REQUEUED) == 3 and events.count(EVENT_GAVE_UP) == 1
    assert record.error is not None and "no outcome after 3 automatic re-queue(s)" in record.error
    # AND the team's Slack message now says the quarantine is stuck, and how an operator re-queues it
    text = message_text(world.message(seeded))
    assert "Quarantine stuck" in text and "re-queued 3 times" in text
    assert "macie-chatops sweep --requeue f-stuck" in text
    capsys.readouterr()
    caplog.clear()
    # WHEN the scheduled sweeper runs now
    answer = run_sweeper()
    # THEN it queues nothing more, publishes StuckApprovals (what the stack alarms on) and logs an error
    assert queued(queue_url) == []
    assert answer == {
        "StaleApprovals": 1,
        "ApprovalsRequeued": 0,
        "ApprovalsDeferred": 0,
        "StuckApprovals": 1,
        "SweepErrors": 0,
        "UnverifiedApprovals": 0,
    }
    out = capsys.readouterr().out
    assert sweeper_metrics(out)["StuckApprovals"] == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and r.name == sweeper_handler.SERVICE]
    assert any("still stuck" in message for message in errors)
    assert any("operators must act" in message for message in errors)


def test_findings_in_other_states_are_not_touched(world: RemediatorWorld, queue_url: str) -> None:
    # GIVEN findings in every other state, each approved (where the path goes through APPROVED) long ago
    others = [s for s in State if s not in {State.APPROVED, State.RECEIVED, State.REJECTED}]
    old = store_at(lambda: datetime.now(UTC) - LONG_AGO)
    for n, state in enumerate(others):
        world.seed(f"f-{state.value.lower()}", key=f"k{n}.csv", state=state)
    old.create_received(
        "f-received", event_id="e", action=Action.REVIEW, reason="r",
        actor="finding-handler",
    )  # fmt: skip
    before = {r.finding_id: r for r in map(world.record, [f"f-{s.value.lower()}" for s in others] + ["f-received"])}
    # WHEN the sweeper runs
    answer = run_sweeper()
    # THEN none of them is a candidate, nothing is queued, no record changed
    assert answer["StaleApprovals"] == 0
    assert queued(queue_url) == []
    assert {finding_id: world.record(finding_id) for finding_id in before} == before


def test_a_record_that_left_approved_after_the_index_listed_it_is_left_alone(
    world: RemediatorWorld, queue_url: str
) -> None:
    # GIVEN a stale approval the (eventually consistent) index still lists after it was quarantined
    approved_since(world, "f-moved-on", LONG_AGO)
    snapshot = world.store.approved_before(datetime.now(UTC))
    world.store.transition(
        "f-moved-on", expected={State.APPROVED}, target=State.QUARANTINED, actor="remediator", event="moved"
    )

    class LaggingIndex(FindingStore):
        def approved_before(self, cutoff: datetime, *, limit: int | None = None) -> list[FindingRecord]:
            return snapshot

    deps = SweepDependencies(
        store=LaggingIndex(aws_client("dynamodb"), TABLE), queue=SqsJobQueue(aws_client("sqs"), queue_url), slack=None
    )
    # WHEN the sweep runs
    report = sweep(deps)
    # THEN it re-read the record, saw it QUARANTINED and queued nothing
    assert [(o.verdict, o.reason) for o in report.outcomes] == [(Verdict.LEAVE, "QUARANTINED, not approved")]
    assert queued(queue_url) == []


def test_a_dynamodb_error_raises_instead_of_reading_as_nothing_stuck(
    world: RemediatorWorld, queue_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stale approval, and the sweeper pointed at a table that does not exist (wrong name, no access)
    approved_since(world, "f-1", LONG_AGO)
    monkeypatch.setenv(names.ENV_STATE_TABLE, "no-such-table")
    capsys.readouterr()
    # WHEN the sweeper runs  THEN it raises DynamoDB's error (the function's Errors alarm fires)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        run_sweeper()
    assert queued(queue_url) == []
    # AND it counts the failed sweep, and publishes no StuckApprovals value it does not know
    assert sweeper_metrics(capsys.readouterr().out) == {"SweepErrors": 1}


def test_a_failed_send_raises_after_sweeping_the_others_and_counts_nothing_it_did_not_do(
    world: RemediatorWorld, queue_url: str
) -> None:
    # GIVEN two stale approvals, and a queue adapter whose send for the first one goes to a queue that is gone
    approved_since(world, "f-a", LONG_AGO, key="a.csv")
    approved_since(world, "f-b", LONG_AGO, key="b.csv")
    sqs = aws_client("sqs")
    gone = sqs.create_queue(QueueName="gone")["QueueUrl"]
    sqs.delete_queue(QueueUrl=gone)
    live, dead = SqsJobQueue(sqs, queue_url), SqsJobQueue(sqs, gone)

    class OneSendFails:
        def send(self, job: RemediationJob) -> str:
            return (dead if job.finding_id == "f-a" else live).send(job)

        def waiting(self) -> int:
            return live.waiting()

    deps = SweepDependencies(store=world.store, queue=OneSendFails(), slack=None)
    # WHEN the sweep runs
    with pytest.raises(SweepError) as raised:
        sweep(deps)
    # THEN it raised naming f-a's SQS error, after re-queueing f-b
    report = raised.value.report
    assert [finding_id for finding_id, _ in report.errors] == ["f-a"]
    assert "QueueDoesNotExist" in report.errors[0][1] or "NonExistentQueue" in report.errors[0][1]
    assert [(o.finding_id, o.verdict) for o in report.outcomes] == [("f-b", Verdict.REQUEUE)]
    assert [json.loads(d.body)["finding_id"] for d in queued(queue_url)] == ["f-b"]
    # AND only the job really sent is counted on the audit trail
    assert EVENT_REQUEUED not in [entry.event for entry in world.record("f-a").audit]
    assert EVENT_REQUEUED in [entry.event for entry in world.record("f-b").audit]


def test_a_missing_remediation_queue_raises_before_anything_is_done(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stale approval, and a remediation queue that no longer exists
    approved_since(world, "f-a", LONG_AGO)
    aws_client("sqs").delete_queue(QueueUrl=queue_url)
    capsys.readouterr()
    # WHEN the sweeper runs  THEN it raises SQS's error (the function's Errors alarm fires)
    with pytest.raises(ClientError, match=r"NonExistentQueue|QueueDoesNotExist"):
        run_sweeper()
    # AND it counts the failed sweep, and records nothing
    assert sweeper_metrics(capsys.readouterr().out) == {"SweepErrors": 1}
    assert EVENT_REQUEUED not in [entry.event for entry in world.record("f-a").audit]


def test_while_jobs_wait_in_the_queue_stale_approvals_are_deferred_not_multiplied(
    world: RemediatorWorld, queue_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a stale approval, and a backlog: other jobs still wait in the remediation queue (a mass of
    # auto-quarantines being worked through)
    approved_since(world, "f-behind", LONG_AGO)
    sqs = aws_client("sqs")
    for n in range(3):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"backlog": n}))
    before = world.record("f-behind")
    # WHEN the sweeper runs
    answer = run_sweeper()
    # THEN it queues no duplicate and records nothing: the finding's job may be among those waiting
    assert answer == {
        "StaleApprovals": 1,
        "ApprovalsRequeued": 0,
        "ApprovalsDeferred": 1,
        "StuckApprovals": 0,
        "SweepErrors": 0,
        "UnverifiedApprovals": 0,
    }
    assert world.record("f-behind") == before
    assert any("jobs wait in the remediation queue" in r.getMessage() for r in caplog.records)
    # WHEN the queue has drained and the sweeper runs again
    assert len(queued(queue_url)) == 3
    answer = run_sweeper()
    # THEN the job is re-queued
    assert (answer["ApprovalsRequeued"], answer["ApprovalsDeferred"]) == (1, 0)
    assert [json.loads(d.body)["finding_id"] for d in queued(queue_url)] == ["f-behind"]


def test_a_job_in_flight_behind_its_batch_defers_stale_approvals_like_a_waiting_one(
    world: RemediatorWorld, queue_url: str
) -> None:
    # GIVEN a stale approval, and one job received by a remediator and not yet acknowledged (in flight: with batches
    # of ten it may wait up to the function's timeout behind the others of its batch)
    approved_since(world, "f-in-flight", LONG_AGO)
    sqs = aws_client("sqs")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"in_flight": 1}))
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"]
    before = world.record("f-in-flight")
    # WHEN the sweeper runs
    answer = run_sweeper()
    # THEN it queues no duplicate: the finding's job may be the one in flight
    assert (answer["ApprovalsRequeued"], answer["ApprovalsDeferred"]) == (0, 1)
    assert world.record("f-in-flight") == before
    # WHEN the remediator acknowledges it and the sweeper runs again
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=received[0]["ReceiptHandle"])
    answer = run_sweeper()
    # THEN the stale approval's job is re-queued
    assert (answer["ApprovalsRequeued"], answer["ApprovalsDeferred"]) == (1, 0)
    assert [json.loads(d.body)["finding_id"] for d in queued(queue_url)] == ["f-in-flight"]


def test_an_empty_sweep_still_publishes_its_metrics_at_zero(
    world: RemediatorWorld, queue_url: str, capsys: Any
) -> None:
    # GIVEN nothing approved  WHEN the sweeper runs  THEN it still publishes its metrics, every one 0
    assert run_sweeper() == {
        "StaleApprovals": 0,
        "ApprovalsRequeued": 0,
        "ApprovalsDeferred": 0,
        "StuckApprovals": 0,
        "SweepErrors": 0,
        "UnverifiedApprovals": 0,
    }
    metrics = [m for m in emf_metrics(capsys.readouterr().out) if m["name"] == "StuckApprovals"]
    assert metrics == [
        {"name": "StuckApprovals", "namespace": names.METRICS_NAMESPACE, "service": "macie-chatops-sweeper"}
    ]


def test_sweeps_with_metrics_disabled_leave_nothing_behind_for_a_later_flush(
    world: RemediatorWorld, queue_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN sweeps run while metrics are disabled (the sandbox's default), one of them re-queueing a job
    approved_since(world, "f-quiet", LONG_AGO)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    run_sweeper()
    run_sweeper()
    assert sweeper_metrics(capsys.readouterr().out) == {}
    queued(queue_url)
    # WHEN metrics are enabled and the sweeper runs again
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    answer = run_sweeper()
    # THEN only this sweep's values are published: nothing piled up in the container meanwhile
    assert sweeper_metrics(capsys.readouterr().out) == answer
