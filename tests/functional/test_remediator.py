"""The remediator end to end in one process: the real ``lambda_handler`` fed remediation-queue batches,
against moto (member accounts, state table, Slack secret) and the Slack stand-in.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops.jobs import RemediationJob
from macie_chatops.move import MoveRequest
from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import MoveStep
from macie_chatops.remediation import JobResult, RemediationError, handle_job
from macie_chatops.session_policy import JobScope, for_move
from macie_chatops.states import State
from macie_chatops_sandbox.testkit.world import emf_metrics, seed_review
from tests.conftest import AwsSandbox
from tests.functional.move_world import MB, MEMBER_A, REGION, Crash, crash_at, next_second, sha256
from tests.functional.remediator_world import (
    PAYMENTS,
    SOURCE,
    Delivery,
    RemediatorWorld,
    Seeded,
    job,
    message_text,
    remediator_world,
)

QUARANTINE = quarantine_bucket_name(MEMBER_A, REGION)


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


def _actions(world: RemediatorWorld, seeded: Any) -> list[str]:
    blocks = world.message(seeded).blocks
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_an_approved_finding_is_quarantined_recorded_and_shown(world: RemediatorWorld) -> None:
    # GIVEN an approved finding, its object in a versioned bucket with one older version
    world.moves.bucket(MEMBER_A, SOURCE)
    world.moves.put(MEMBER_A, SOURCE, "exports/customers.csv", b"older")
    next_second()  # S3 keeps whole seconds: the older version must be older by time too
    seeded = world.seed("f-quarantine")
    # WHEN its quarantine job arrives
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    # THEN the record says QUARANTINED, where the copy is, and how many versions remain
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED
    assert record.outcome == "quarantined" and record.error is None
    assert record.quarantine is not None
    assert record.quarantine["bucket"] == QUARANTINE
    assert record.quarantine["key"] == f"f-quarantine/{SOURCE}/exports/customers.csv"
    assert record.quarantine["older_versions"] == "1"
    assert record.audit[-1].actor == "remediator" and record.audit[-1].outcome == "QUARANTINED"
    # AND the object moved
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) is None
    assert world.moves.quarantined(MEMBER_A, record.quarantine["key"]) == seeded.body
    # AND the original Slack message shows the outcome, the approver, the location and a Restore button
    message = world.message(seeded)
    assert len(message.updates) == 1
    text = message_text(message)
    assert "Quarantined" in text and "<@U0ALICE>" in text and "f-quarantine/" in text
    assert "1 older version of this key remains" in text
    assert _actions(world, seeded) == ["macie_chatops.restore"]


def test_a_batch_with_one_failing_job_reports_only_that_one(world: RemediatorWorld) -> None:
    # GIVEN two approved findings, and Slack failing (HTTP 500) on the first chat.update
    failing = world.seed("f-slack-down", key="a.csv")
    good = world.seed("f-good", key="b.csv")
    world.slack.fail_next("chat.update", status=500)
    bad_delivery, good_delivery = job("quarantine", failing.finding_id), job("quarantine", good.finding_id)
    # WHEN both arrive in one batch
    failed = world.invoke(bad_delivery, good_delivery)
    # THEN only the failing one returns to the queue; both objects are quarantined and recorded
    assert failed == [bad_delivery.message_id]
    assert world.record(failing.finding_id).state is State.QUARANTINED
    assert world.record(good.finding_id).state is State.QUARANTINED
    assert len(world.message(good).updates) == 1
    assert world.message(failing).updates == ()


def test_slack_failure_after_the_move_retries_the_update_only(world: RemediatorWorld) -> None:
    # GIVEN an approved finding and Slack down for the first update
    seeded = world.seed("f-retry-slack")
    world.slack.fail_next("chat.update", status=503)
    delivery = job("quarantine", seeded.finding_id)
    # WHEN the job runs
    assert world.invoke(delivery) == [delivery.message_id]
    # THEN the move is done and recorded, and the message is not updated yet
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED
    audit_after_move = len(record.audit)
    assert world.message(seeded).updates == ()
    # WHEN SQS redelivers it
    assert world.invoke(delivery.again()) == []
    # THEN the message is updated, and nothing was moved or recorded a second time
    assert len(world.message(seeded).updates) == 1
    assert "Quarantined" in message_text(world.message(seeded))
    assert world.quarantine_copies(seeded) == 1
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED and len(record.audit) == audit_after_move
    assert [e.outcome for e in record.audit].count("QUARANTINED") == 1


def test_a_multipart_object_through_the_handler(world: RemediatorWorld) -> None:
    # GIVEN a 6 MiB object and the config's multipart threshold at 5 MiB
    body = os.urandom(6 * MB)
    seeded = world.seed("f-big", key="big.bin", body=body, ContentType="application/octet-stream")
    # WHEN quarantined
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    # THEN the bytes arrived whole through a multipart copy
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED and record.quarantine is not None
    head = world.moves.head(MEMBER_A, QUARANTINE, record.quarantine["key"])
    assert head["ETag"].strip('"').endswith("-2")
    assert sha256(world.moves.quarantined(MEMBER_A, record.quarantine["key"])) == sha256(body)


@pytest.mark.parametrize(
    "step",
    [MoveStep.COPIED, MoveStep.VERIFIED, MoveStep.DELETED, MoveStep.COUNTED],
    ids=["after-copy", "after-verify", "after-delete", "before-recording"],
)
def test_crash_at_any_step_then_redelivery_records_the_truth(world: RemediatorWorld, step: MoveStep) -> None:
    # GIVEN the remediator dying right after `step` (nothing is recorded for a crash)
    seeded = world.seed("f-crash")
    with pytest.raises(Crash):
        handle_job(job("quarantine", seeded.finding_id).body, world.deps(checkpoint=crash_at(step)))
    assert world.record(seeded.finding_id).state is State.APPROVED
    in_source = world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id)
    record_key = f"f-crash/{SOURCE}/{seeded.key}"
    in_quarantine = world.moves.quarantined(MEMBER_A, record_key)
    assert seeded.body in (in_source, in_quarantine), "the object must be somewhere"
    # WHEN the job is redelivered (the real handler)
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    # THEN QUARANTINED, one copy, the source version gone, the message updated once
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED
    assert world.moves.quarantined(MEMBER_A, record_key) == seeded.body
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) is None
    assert world.quarantine_copies(seeded) == 1
    assert len(world.message(seeded).updates) == 1


def test_an_auto_jobs_request_time_is_noted_in_the_outcome_write(world: RemediatorWorld) -> None:
    # GIVEN a finding approved by auto (the intake sends its job after its last write and marks nothing)
    seeded = world.seed("f-auto", approver="auto")
    delivery = job("quarantine", seeded.finding_id, by="auto")
    assert world.record(seeded.finding_id).job_queued_at is None
    # WHEN its job runs
    assert world.invoke(delivery) == []
    # THEN the outcome's own write notes when the job was queued; no write of its own, no audit entry of its own
    record = world.record(seeded.finding_id)
    requested = RemediationJob.from_message(delivery.body).requested_at
    assert record.state is State.QUARANTINED
    assert record.job_queued_at is not None
    assert datetime.fromisoformat(record.job_queued_at) == requested
    assert [e.event for e in record.audit][-1] == "quarantine_quarantined"


def test_a_clicks_job_notes_no_receipt(world: RemediatorWorld) -> None:
    # GIVEN a finding approved in Slack (its approving transition recorded the request) WHEN its job runs
    seeded = world.seed("f-click")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    # THEN nothing is noted as an auto job's receipt
    assert world.record(seeded.finding_id).job_queued_at is None


def test_two_jobs_of_one_auto_finding_at_once_move_it_once(world: RemediatorWorld, atomic_moto: None) -> None:
    # GIVEN an auto finding whose job was sent twice (the intake redelivered after the send: §5), both handled
    # at the same moment
    seeded = world.seed("f-twice", approver="auto")
    body = job("quarantine", seeded.finding_id, by="auto").body
    results: list[JobResult] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        deps = world.deps()
        barrier.wait()
        results.append(handle_job(body, deps))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN one copy, the source version gone, one outcome recorded, and the message says Quarantined
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED
    assert set(results) <= {JobResult.QUARANTINED, JobResult.ALREADY_DONE} and len(results) == 2
    assert world.quarantine_copies(seeded) == 1
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) is None
    assert record.quarantine is not None
    assert world.moves.quarantined(MEMBER_A, record.quarantine["key"]) == seeded.body
    assert [e.outcome for e in record.audit].count("QUARANTINED") == 1
    assert "Quarantined" in message_text(world.message(seeded))


def _move_scope(world: RemediatorWorld, finding_id: str) -> JobScope:
    """The scope the remediator's session for this finding's move carries (the session cache is keyed by it)."""
    summary = world.record(finding_id).summary
    assert summary is not None
    return for_move(MoveRequest.of(summary, approver=""))


def test_a_transient_aws_failure_is_recorded_failed_and_retried(world: RemediatorWorld) -> None:
    # GIVEN an approved finding and S3 unreachable for copies (every one of botocore's retries fails)
    from botocore.exceptions import EndpointConnectionError

    from macie_chatops.sessions import MemberSessions
    from macie_chatops_sandbox.testkit.world import shared_session

    seeded = world.seed("f-transient")
    sessions = MemberSessions(role_name="macie-chatops-remediation", base_session=shared_session())
    clients = sessions.clients(
        MEMBER_A, REGION, actor="U0ALICE", finding_id=seeded.finding_id, scope=_move_scope(world, seeded.finding_id)
    )
    down = [True]

    def drop_connection(**_: Any) -> None:
        if down[0]:
            raise EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com")

    clients.s3.meta.events.register("before-send.s3.CopyObject", drop_connection, unique_id="drop")
    deps = world.deps(sessions=sessions)
    # WHEN the job runs
    with pytest.raises(Exception, match="Could not connect"):
        handle_job(job("quarantine", seeded.finding_id).body, deps)
    # THEN FAILED is recorded with the error, the source is untouched, and Slack says it will be retried
    record = world.record(seeded.finding_id)
    assert record.state is State.FAILED and record.error and "EndpointConnectionError" in record.error
    assert record.outcome == "failed_retrying"
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) == seeded.body
    text = message_text(world.message(seeded))
    assert "it will be retried automatically" in text and "dead-letter queue" in text
    # AND a second failed attempt keeps FAILED and audits the new error
    with pytest.raises(Exception, match="Could not connect"):
        handle_job(job("quarantine", seeded.finding_id).body, deps)
    record = world.record(seeded.finding_id)
    assert record.state is State.FAILED
    assert [e.event for e in record.audit][-2:] == ["quarantine_failed", "quarantine_failed"]
    # WHEN S3 is reachable again and the job is retried
    down[0] = False
    assert handle_job(job("quarantine", seeded.finding_id).body, deps) is JobResult.QUARANTINED
    # THEN FAILED -> QUARANTINED, error cleared
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED and record.error is None
    assert "Quarantined" in message_text(world.message(seeded))


def test_object_lock_is_blocked_and_the_message_says_both_copies_are_kept(world: RemediatorWorld) -> None:
    # GIVEN an approved finding on an object under COMPLIANCE retention
    seeded = world.seed(
        "f-locked",
        bucket="payments-locked",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=7),
    )
    # WHEN its job runs
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    # THEN BLOCKED(locked), the copy's location recorded, and the message tells the truth
    record = world.record(seeded.finding_id)
    assert record.state is State.BLOCKED and record.outcome == "locked"
    assert record.quarantine is not None and record.quarantine["bucket"] == QUARANTINE
    text = message_text(world.message(seeded))
    assert "Both copies are kept" in text and "Quarantined" not in text
    assert world.moves.read(MEMBER_A, "payments-locked", seeded.key, seeded.version_id) == seeded.body


def test_a_missing_object_is_blocked_missing(world: RemediatorWorld) -> None:
    seeded = world.seed("f-missing")
    world.moves.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key=seeded.key, VersionId=seeded.version_id)
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    record = world.record(seeded.finding_id)
    assert (record.state, record.outcome) == (State.BLOCKED, "missing")
    assert "Blocked" in message_text(world.message(seeded))


def test_assume_role_denied_is_failed_naming_account_and_role(world: RemediatorWorld) -> None:
    # GIVEN a remediator whose policy denies it the member account's role (moto's IAM enforcement)
    from macie_chatops.sessions import MemberSessions
    from macie_chatops.store import FindingStore
    from tests.functional.move_world import iam_enforced, remediator_user
    from tests.functional.remediator_world import TABLE

    seeded = world.seed("f-denied")
    user = remediator_user(
        world.moves.aws,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"},
                {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::{MEMBER_A}:role/*"},
            ],
        },
    )
    session = user.session()
    deps = world.deps(
        sessions=MemberSessions(role_name="macie-chatops-remediation", base_session=session),
        store=FindingStore(session.client("dynamodb"), TABLE),
        kms_session=session,
    )
    # WHEN its job runs under IAM enforcement
    with iam_enforced(world.moves.aws):
        result = handle_job(job("quarantine", seeded.finding_id).body, deps)
    # THEN FAILED (acknowledged, not retried forever), naming the account and the role; nothing moved
    assert result is JobResult.FAILED
    record = world.record(seeded.finding_id)
    assert record.state is State.FAILED and record.error is not None
    assert MEMBER_A in record.error and "macie-chatops-remediation" in record.error and "AccessDenied" in record.error
    assert record.outcome == "assume_role_denied"
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) == seeded.body
    # AND the message does not promise a retry: it says what to deploy where, and which command to run after
    text = message_text(world.message(seeded))
    assert "will not be retried automatically" in text and "will be retried automatically" not in text
    assert f"deploy the macie-chatops-member-roles StackSet to account {MEMBER_A}" in text
    assert "`macie-chatops retry f-denied`" in text


def test_a_copy_that_does_not_verify_is_left_untrusted_and_the_retry_replaces_it(world: RemediatorWorld) -> None:
    # GIVEN an approved finding, and S3 writing a corrupt quarantine copy: its CopyObject response and its HEAD
    # report a checksum that is not the source's (the single-part copy is verified from CopyObject's own response)
    from macie_chatops.sessions import MemberSessions
    from macie_chatops_sandbox.testkit.faults import CorruptCopies
    from macie_chatops_sandbox.testkit.world import shared_session

    seeded = world.seed("f-unverified")
    sessions = MemberSessions(role_name="macie-chatops-remediation", base_session=shared_session())
    clients = sessions.clients(
        MEMBER_A, REGION, actor="U0ALICE", finding_id=seeded.finding_id, scope=_move_scope(world, seeded.finding_id)
    )
    s3_faults = CorruptCopies()
    s3_faults.attach(clients.s3)
    deps = world.deps(sessions=sessions)
    # WHEN the job runs
    with pytest.raises(RemediationError, match="did not verify"):
        handle_job(job("quarantine", seeded.finding_id).body, deps)
    # THEN FAILED (retrying), the copy left in quarantine (nothing deleted: the role may not), the source untouched,
    # and the record and Slack say so
    record = world.record(seeded.finding_id)
    assert (record.state, record.outcome) == (State.FAILED, "failed_retrying")
    assert record.error is not None and "left unverified in quarantine, and the retry replaces it" in record.error
    assert world.quarantine_copies(seeded) == 1
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) == seeded.body
    assert "it will be retried automatically" in message_text(world.message(seeded))
    # WHEN the redelivered job finds S3 honest again
    s3_faults.writing = False
    assert handle_job(job("quarantine", seeded.finding_id).body, deps) is JobResult.QUARANTINED
    # THEN the object is quarantined in a new copy over the untrusted one (now noncurrent), and the source is gone
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED
    assert record.quarantine is not None and record.quarantine["version_id"] not in s3_faults.corrupt
    assert world.quarantine_copies(seeded) == 2
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) is None


def test_stale_unknown_and_unreadable_jobs_are_acknowledged_without_effect(world: RemediatorWorld) -> None:
    # GIVEN a finding still awaiting approval, a job for an unknown finding, and garbage
    pending = world.seed("f-pending", state=State.PENDING_APPROVAL)
    deliveries = [
        job("quarantine", pending.finding_id),
        job("quarantine", "f-nobody"),
        job("restore", pending.finding_id),
        Delivery('{"kind": "delete-everything", "finding_id": "x"}'),
        Delivery("not json"),
    ]
    # WHEN they arrive
    assert world.invoke(*deliveries) == []
    # THEN nothing moved, nothing recorded, no message changed
    assert world.record(pending.finding_id).state is State.PENDING_APPROVAL
    assert world.moves.read(MEMBER_A, SOURCE, pending.key, pending.version_id) == pending.body
    assert world.message(pending).updates == ()


def _jobs_metrics(out: str) -> list[tuple[str, str]]:
    """The Jobs metrics printed, as (kind, result); each checked for namespace and service."""
    found = [m for m in emf_metrics(out) if m["name"] == "Jobs"]
    assert all(m["namespace"] == "MacieChatOps" and m["service"] == "macie-chatops-remediator" for m in found)
    return [(m["kind"], m["result"]) for m in found]


def test_every_job_is_counted_by_kind_and_outcome(world: RemediatorWorld, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an approved finding, a finding still awaiting approval, and an unreadable job
    approved = world.seed("f-counted", key="a.csv")
    pending = world.seed("f-counted-pending", key="b.csv", state=State.PENDING_APPROVAL)
    capsys.readouterr()
    # WHEN their jobs arrive, one at a time
    world.invoke(job("quarantine", approved.finding_id))
    world.invoke(job("quarantine", pending.finding_id))
    world.invoke(Delivery("not json"))
    # THEN each job is one Jobs metric, by kind and outcome
    assert _jobs_metrics(capsys.readouterr().out) == [
        ("quarantine", "quarantined"),
        ("quarantine", "stale"),
        ("unknown", "unknown"),
    ]


def test_job_metrics_can_be_switched_off_like_powertools_metrics(
    world: RemediatorWorld, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN POWERTOOLS_METRICS_DISABLED (the sandbox's CLI keeps stdout for its own output)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    seeded = world.seed("f-quiet")
    capsys.readouterr()
    # WHEN a job is done THEN no metric line is printed
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    assert emf_metrics(capsys.readouterr().out) == []


def test_a_job_without_time_left_that_cannot_be_re_sent_returns_to_the_queue_untouched(
    world: RemediatorWorld,
) -> None:
    # GIVEN an approved finding's job, delivered from a queue the handler cannot send to (none exists here), and
    # 30 s left in the invocation. WHEN it is handled THEN it is not started; the failed re-send returns it to
    # the queue (test_remediator_batches.py: the re-send)
    seeded = world.seed("f-late")
    delivery = job("quarantine", seeded.finding_id)
    assert world.invoke(delivery, timeout_s=30) == [delivery.message_id]
    assert world.record(seeded.finding_id).state is State.APPROVED
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) == seeded.body


# --- restore -----------------------------------------------------------------------------------------------


def test_restore_round_trip_through_the_handler(world: RemediatorWorld) -> None:
    # GIVEN a quarantined finding whose Restore button was clicked by an approver
    seeded = world.seed(
        "f-restore", ContentType="text/csv", Metadata={"owner": "payments"}, Tagging="team=payments&retention=7y"
    )
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    world.request_restore(seeded.finding_id, by="U0BOB")
    # WHEN the restore job arrives
    assert world.invoke(job("restore", seeded.finding_id, by="U0BOB")) == []
    # THEN RESTORED, the same bytes and metadata back at the original key as a new version
    record = world.record(seeded.finding_id)
    assert record.state is State.RESTORED
    assert record.quarantine is not None
    restored_version = record.quarantine["restored_version_id"]
    assert restored_version and restored_version != seeded.version_id
    head = world.moves.head(MEMBER_A, SOURCE, seeded.key)
    assert head["VersionId"] == restored_version
    assert (head["ContentType"], head["Metadata"]) == ("text/csv", {"owner": "payments"})
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key) == seeded.body
    # AND the object's own tags are back on it (the record kept them; the quarantine copy carries ours)
    assert world.moves.tags(MEMBER_A, SOURCE, seeded.key) == {"team": "payments", "retention": "7y"}
    # AND the message says who restored it, with no buttons left
    text = message_text(world.message(seeded))
    assert "Restored" in text and "<@U0BOB>" in text and restored_version in text
    assert _actions(world, seeded) == []
    # AND a redelivered restore job changes nothing
    assert world.invoke(job("restore", seeded.finding_id, by="U0BOB")) == []
    assert world.moves.versions(MEMBER_A, SOURCE, seeded.key)[0]["VersionId"] == restored_version
    assert len(world.moves.versions(MEMBER_A, SOURCE, seeded.key)) == 1


@pytest.mark.parametrize(
    ("kept", "said"),
    [(None, "were not known when it was quarantined"), ("not json", "the record's copy of them is unreadable")],
    ids=["tags-unknown", "tags-unreadable"],
)
def test_a_restore_without_the_objects_tags_says_so(world: RemediatorWorld, kept: str | None, said: str) -> None:
    # GIVEN a quarantined tagged object whose record does not hold its tags in a usable form (they could not
    # be read at quarantine, or the record predates them, or the field was damaged)
    seeded = world.seed("f-untold", Tagging="team=payments")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    location = dict(world.record(seeded.finding_id).quarantine or {})
    location.pop("original_tags")
    if kept is not None:
        location["original_tags"] = kept
    world.store.append_audit(
        seeded.finding_id, actor="test", event="edited", outcome="edited", updates={"quarantine": location}
    )
    world.request_restore(seeded.finding_id, by="U0BOB")
    # WHEN the restore job arrives
    assert world.invoke(job("restore", seeded.finding_id, by="U0BOB")) == []
    # THEN the bytes are back, untagged, and the record says why the tags are missing
    record = world.record(seeded.finding_id)
    assert record.state is State.RESTORED
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key) == seeded.body
    assert world.moves.tags(MEMBER_A, SOURCE, seeded.key) == {}
    assert record.outcome_detail is not None and said in record.outcome_detail
    assert said in record.audit[-1].detail


def test_a_refused_restore_returns_to_quarantined_with_the_reason(world: RemediatorWorld) -> None:
    # GIVEN a quarantined finding whose key has been written again since
    seeded = world.seed("f-occupied", versioned=False)
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    world.moves.put(MEMBER_A, SOURCE, seeded.key, b"new data")
    world.request_restore(seeded.finding_id)
    # WHEN the restore job arrives
    assert world.invoke(job("restore", seeded.finding_id)) == []
    # THEN back to QUARANTINED with the reason, the new data untouched, the Restore button back
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED
    assert record.error is not None and "different object" in record.error
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key) == b"new data"
    assert _actions(world, seeded) == ["macie_chatops.restore"]
    # AND the message explains the refusal in a context block of its own (the key escaped as Slack text)
    message = world.message(seeded)
    notices = [
        element["text"]
        for block in message.blocks
        if block["type"] == "context"
        for element in block["elements"]
        if "Restore refused" in element["text"]
    ]
    assert notices == [
        f":warning: Restore refused: s3://{SOURCE}/{seeded.key} now holds a different object (ETag "
        f"{world.moves.head(MEMBER_A, SOURCE, seeded.key)['ETag'].strip(chr(34))}); restoring would replace it. "
        "The object stays in quarantine."
    ]
    assert "Quarantined" in message_text(message)
    # AND a redelivered quarantine job (the outcome already recorded) renders the same notice again
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    assert world.message(seeded).blocks == message.blocks


def test_a_restore_that_cannot_assume_the_role_says_so_and_stays_quarantined(world: RemediatorWorld) -> None:
    # GIVEN a quarantined finding, and a restore requested when the remediator may not assume the member role
    from macie_chatops.sessions import AssumeRoleDeniedError, MemberClients

    class DeniedSessions:
        def clients(
            self, account_id: str, region: str, *, actor: str, finding_id: str, scope: object = None
        ) -> MemberClients:
            raise AssumeRoleDeniedError(
                account_id=account_id, role_arn=f"arn:aws:iam::{account_id}:role/gone", message="not authorized"
            )

    seeded = world.seed("f-restore-denied")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    world.request_restore(seeded.finding_id, by="U0BOB")
    # WHEN the restore job runs
    result = handle_job(job("restore", seeded.finding_id, by="U0BOB").body, world.deps(sessions=DeniedSessions()))
    # THEN the finding is QUARANTINED again and the message says the restore failed, and why
    assert result is JobResult.RESTORE_REFUSED
    assert world.record(seeded.finding_id).state is State.QUARANTINED
    text = message_text(world.message(seeded))
    assert ":warning: Restore failed: AccessDenied assuming arn:aws:iam::" in text
    assert _actions(world, seeded) == ["macie_chatops.restore"]


def test_restore_crash_then_redelivery_restores_once(world: RemediatorWorld) -> None:
    seeded = world.seed("f-restore-crash")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    world.request_restore(seeded.finding_id)
    with pytest.raises(Crash):
        handle_job(job("restore", seeded.finding_id).body, world.deps(checkpoint=crash_at(MoveStep.RESTORE_COPIED)))
    assert world.record(seeded.finding_id).state is State.RESTORE_REQUESTED
    assert world.invoke(job("restore", seeded.finding_id)) == []
    assert world.record(seeded.finding_id).state is State.RESTORED
    versions = world.moves.versions(MEMBER_A, SOURCE, seeded.key)
    assert len(versions) == 1  # the finding's version was moved; exactly one restored version
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key) == seeded.body
    assert PAYMENTS in {m.channel for m in world.slack.messages(PAYMENTS)}


# -- one object version, one remediation ---------------------------------------------------------------------


def same_version(world: RemediatorWorld, first: Seeded, finding_id: str, state: State = State.APPROVED) -> Seeded:
    """A second finding for ``first``'s object version, moved to ``state`` without the intake (so without its
    claim): what a record from before claims existed looks like, e.g. both findings approved."""
    summary = dataclasses.replace(first.summary, finding_id=finding_id)
    _, ts = seed_review(world.store, world.slack, summary, state=state)
    return dataclasses.replace(first, finding_id=finding_id, ts=ts, summary=summary)


def test_approving_the_second_finding_after_the_first_was_quarantined_says_where_the_version_is(
    world: RemediatorWorld,
) -> None:
    # GIVEN two approved findings for one object version (records from before claims), the first quarantined
    first = world.seed("f-first")
    second = same_version(world, first, "f-second")
    assert world.invoke(job("quarantine", first.finding_id)) == []
    location = world.record(first.finding_id).quarantine
    assert location is not None
    # WHEN the second one's job arrives
    assert world.invoke(job("quarantine", second.finding_id)) == []
    # THEN nothing is moved again: the second is DUPLICATE, and its outcome says where the version is
    record = world.record(second.finding_id)
    assert (record.state, record.duplicate_of, record.outcome) == (State.DUPLICATE, first.finding_id, "duplicate")
    assert record.outcome_detail == (
        f"already quarantined under finding {first.finding_id}, now at s3://{QUARANTINE}/{location['key']}"
    )
    assert record.expires_at is not None and record.approved_at is None
    assert (record.audit[-1].event, record.audit[-1].actor) == ("quarantine_refused_duplicate", "remediator")
    assert world.quarantine_copies(first) == 1 and world.quarantine_copies(second) == 0
    # AND its Slack message says so, never that the object is in neither bucket
    text = message_text(world.message(second))
    assert f"already quarantined under finding {first.finding_id}" in text
    assert "neither the source bucket nor the quarantine bucket" not in text
    assert _actions(world, second) == []
    # WHEN the job is redelivered THEN only the message is updated again
    assert handle_job(job("quarantine", second.finding_id).body, world.deps()) is JobResult.ALREADY_DONE
    assert world.record(second.finding_id).audit == record.audit


def test_two_findings_for_one_version_approved_at_once_give_one_copy(world: RemediatorWorld, atomic_moto: None) -> None:
    # GIVEN two approved findings for one object version, their jobs handled at the same moment
    first = world.seed("f-one")
    second = same_version(world, first, "f-two")
    results: dict[str, JobResult] = {}
    barrier = threading.Barrier(2)

    def run(seeded: Seeded) -> None:
        deps = world.deps()
        barrier.wait()
        results[seeded.finding_id] = handle_job(job("quarantine", seeded.finding_id).body, deps)

    threads = [threading.Thread(target=run, args=(seeded,)) for seeded in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one copy in quarantine, made by the claim's holder; the other is its duplicate
    claim = world.store.object_claim(first.summary.object_version)
    assert claim is not None
    winner, loser = (first, second) if claim.finding_id == first.finding_id else (second, first)
    assert results == {winner.finding_id: JobResult.QUARANTINED, loser.finding_id: JobResult.DUPLICATE}
    assert world.quarantine_copies(winner) == 1 and world.quarantine_copies(loser) == 0
    assert world.record(loser.finding_id).duplicate_of == winner.finding_id
    assert world.moves.read(MEMBER_A, SOURCE, first.key, first.version_id) is None


def test_a_legacy_approval_of_a_version_dismissed_under_its_first_finding_moves_nothing(
    world: RemediatorWorld,
) -> None:
    # GIVEN a version whose first finding (the claim holder) was dismissed, and a second finding approved
    first = world.seed("f-dismissed", state=State.DISMISSED)
    world.store.claim_object(first.summary.object_version, finding_id=first.finding_id)
    second = same_version(world, first, "f-approved")
    # WHEN the second one's job runs
    assert handle_job(job("quarantine", second.finding_id).body, world.deps()) is JobResult.DUPLICATE
    # THEN the object stays where it is and the record says why
    assert world.moves.read(MEMBER_A, SOURCE, first.key, first.version_id) == first.body
    record = world.record(second.finding_id)
    assert record.outcome_detail == f"already dismissed under finding {first.finding_id}"
    assert f"already dismissed under finding {first.finding_id}" in message_text(world.message(second))


def test_the_claims_holder_is_quarantined_as_before(world: RemediatorWorld) -> None:
    # GIVEN a finding whose intake claimed its object version
    seeded = world.seed("f-holder")
    world.store.claim_object(seeded.summary.object_version, finding_id=seeded.finding_id)
    # WHEN its job runs (and runs again) THEN it is quarantined once, the claim unchanged
    before = world.store.object_claim(seeded.summary.object_version)
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    assert world.record(seeded.finding_id).state is State.QUARANTINED
    assert world.quarantine_copies(seeded) == 1
    assert world.store.object_claim(seeded.summary.object_version) == before


def _mark_claimed(world: RemediatorWorld, seeded: Seeded, at: datetime) -> None:
    """What the intake writes with its transition when the finding holds its object version's claim (§5)."""
    world.store.append_audit(
        seeded.finding_id,
        actor="finding-handler",
        event="test:claim_mark",
        outcome="marked",
        updates={"object_claimed_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    )


def test_a_finding_whose_record_says_it_holds_the_claim_is_moved_without_claiming_again(
    world: RemediatorWorld,
) -> None:
    # GIVEN an approved finding whose record carries the intake's mark (it holds the claim), and no claim item: the
    # mark alone must be what the remediator goes by
    seeded = world.seed("f-marked")
    _mark_claimed(world, seeded, datetime.now(UTC))
    # WHEN its job runs
    assert handle_job(job("quarantine", seeded.finding_id).body, world.deps()) is JobResult.QUARANTINED
    # THEN it is quarantined, and no claim was written: the remediator's second claim is skipped
    assert world.record(seeded.finding_id).state is State.QUARANTINED
    assert world.store.object_claim(seeded.summary.object_version) is None


def test_a_mark_near_its_claims_expiry_and_a_record_without_the_mark_are_claimed_again(
    world: RemediatorWorld,
) -> None:
    from macie_chatops.remediation import CLAIM_TRUST_MARGIN
    from macie_chatops.store import RETENTION_DAYS

    # GIVEN one finding marked as claimed long ago (its claim may expire before long) and one without the mark
    old = world.seed("f-old-mark", key="exports/old.csv")
    _mark_claimed(world, old, datetime.now(UTC) - timedelta(days=RETENTION_DAYS) + CLAIM_TRUST_MARGIN)
    unmarked = world.seed("f-unmarked", key="exports/unmarked.csv")
    # WHEN their jobs run
    for seeded in (old, unmarked):
        assert handle_job(job("quarantine", seeded.finding_id).body, world.deps()) is JobResult.QUARANTINED
    # THEN each claimed its object version before moving it (defence in depth for records without a live mark)
    for seeded in (old, unmarked):
        claim = world.store.object_claim(seeded.summary.object_version)
        assert claim is not None and claim.finding_id == seeded.finding_id
