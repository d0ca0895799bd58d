"""request_job on moto's DynamoDB and SQS: the state change, the send, the undo when the queue refuses the job,
the note of a sent job; every outcome of the typed result."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from macie_chatops.approvals import Approval, ApprovalSigner, iso
from macie_chatops.config import Action
from macie_chatops.job_request import Requested, SentNote, StateChange, UnsignedApprovalError, request_job
from macie_chatops.jobs import RemediationJob, SqsJobQueue
from macie_chatops.states import State
from macie_chatops.store import (
    FindingNotFoundError,
    FindingStore,
    StateChangeHookError,
    WriteResult,
    create_state_table,
)
from macie_chatops.summary import ObjectVersion
from macie_chatops_sandbox.testkit.world import aws_client, create_approval_key, create_remediation_queue, drain_jobs
from tests.conftest import AwsSandbox

TABLE = "job-request-findings"
FID = "f-job-1"
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(aws: AwsSandbox) -> FindingStore:
    client = aws_client("dynamodb")
    create_state_table(client, TABLE)
    return FindingStore(client, TABLE)


@pytest.fixture
def queue(aws: AwsSandbox) -> SqsJobQueue:
    return SqsJobQueue(aws_client("sqs"), create_remediation_queue())


@pytest.fixture
def missing_queue(queue: SqsJobQueue) -> SqsJobQueue:
    """A queue URL SQS does not know: every send is refused (NonExistentQueue)."""
    return SqsJobQueue(queue.sqs, queue.queue_url.rsplit("/", 1)[0] + "/no-such-queue")


def pending(store: FindingStore, finding_id: str = FID) -> None:
    store.create_received(finding_id, event_id=f"e-{finding_id}", action=Action.REVIEW, reason="review", actor="test")
    store.transition(finding_id, expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="test", event="posted")


@pytest.fixture
def signer(aws: AwsSandbox) -> ApprovalSigner:
    return ApprovalSigner(aws_client("kms"), create_approval_key())


def approval(finding_id: str = FID, **overrides: Any) -> StateChange:
    """A Remediate click's change, with its approval of the finding's object version (§23)."""
    target = ObjectVersion("123456789012", "payments-prod-exports", "exports/customers.csv", "v1")
    values: dict[str, Any] = {
        "approval": Approval(finding_id, target, "quarantine", "U0ALICE", iso(AT)),
        "expected": State.PENDING_APPROVAL,
        "target": State.APPROVED,
        "actor": "U0ALICE",
        "event": "click:remediate",
        "updates": {"approver": "U0ALICE"},
        "undo_updates": {"approver": None},
        "undo_event": "click:remediate:undone",
        "undo_detail": lambda exc: f"not queued ({type(exc).__name__})",
    }
    values.update(overrides)
    return StateChange(**values)


def quarantine_job(finding_id: str = FID) -> RemediationJob:
    return RemediationJob(kind="quarantine", finding_id=finding_id, requested_by="U0ALICE", requested_at=AT)


def jobs(queue: SqsJobQueue) -> list[RemediationJob]:
    return drain_jobs(queue.sqs, queue.queue_url)


class SendingFails:
    """The real queue, refusing the first ``failures`` sends; ``before_refusal`` runs as each one is refused."""

    def __init__(self, queue: SqsJobQueue, failures: int, before_refusal: Any = None) -> None:
        self.queue, self.failures, self.before_refusal, self.attempts = queue, failures, before_refusal, 0

    def send(self, job: RemediationJob) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            if self.before_refusal is not None:
                self.before_refusal()
            raise ConnectionError("sqs endpoint reset the connection")
        return self.queue.send(job)

    def waiting(self) -> int:
        return self.queue.waiting()


# -- with a state change ----------------------------------------------------------------------------------------


def test_the_change_is_made_and_the_job_queued(store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner) -> None:
    # GIVEN a finding awaiting approval
    pending(store)
    # WHEN its approval requests the quarantine job
    requested = request_job(store, queue, quarantine_job(), change=approval(), signer=signer)
    # THEN it is APPROVED by the approver, and exactly that job is on the queue
    assert requested.status is Requested.QUEUED and requested.message_id
    assert (requested.record.state, requested.record.approver) == (State.APPROVED, "U0ALICE")
    assert jobs(queue) == [quarantine_job()]


def test_a_finding_not_in_the_expected_state_gets_no_job(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN a finding someone dismissed
    pending(store)
    store.transition(FID, expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor="U0BOB", event="dismiss")
    # WHEN an approval requests its job
    requested = request_job(store, queue, quarantine_job(), change=approval(), signer=signer)
    # THEN nothing is changed or sent, and the result shows the finding as it is
    assert requested.status is Requested.NOT_IN_EXPECTED_STATE
    assert requested.record.state is State.DISMISSED and requested.message_id is None
    assert jobs(queue) == []


def test_an_unknown_finding_raises_and_sends_nothing(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    with pytest.raises(FindingNotFoundError):
        request_job(store, queue, quarantine_job("f-nobody"), change=approval("f-nobody"), signer=signer)
    assert jobs(queue) == []


def test_a_refused_job_undoes_the_change(
    store: FindingStore, missing_queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN a finding awaiting approval and a queue that refuses every job
    pending(store)
    # WHEN its approval requests the job
    requested = request_job(store, missing_queue, quarantine_job(), change=approval(), attempts=2, signer=signer)
    # THEN the approval is undone (approver removed), audited with the queue's error, and the error is returned
    assert requested.status is Requested.REFUSED_UNDONE
    assert (requested.record.state, requested.record.approver) == (State.PENDING_APPROVAL, None)
    undone = requested.record.audit[-1]
    assert (undone.actor, undone.event, undone.outcome) == ("U0ALICE", "click:remediate:undone", "PENDING_APPROVAL")
    assert undone.detail == f"not queued ({type(requested.error).__name__})"
    assert "NonExistentQueue" in requested.reason or "does not exist" in requested.reason


def test_a_send_refused_once_is_tried_again(store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner) -> None:
    pending(store)
    flaky = SendingFails(queue, failures=1)
    requested = request_job(store, flaky, quarantine_job(), change=approval(), attempts=2, signer=signer)
    assert requested.status is Requested.QUEUED and flaky.attempts == 2
    assert jobs(queue) == [quarantine_job()]


def test_a_finding_that_moved_on_before_the_undo_is_left_as_it_is(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN a queue refusing the job while a remediator (with an earlier job) quarantines the finding
    pending(store)

    def quarantined() -> None:
        store.transition(FID, expected={State.APPROVED}, target=State.QUARANTINED, actor="remediator", event="moved")

    # WHEN the approval requests its job
    requested = request_job(
        store, SendingFails(queue, 1, quarantined), quarantine_job(), change=approval(), signer=signer
    )
    # THEN the undo does not pull the finding back: it is QUARANTINED, and the result says so
    assert requested.status is Requested.REFUSED_MOVED_ON
    assert requested.record.state is State.QUARANTINED
    assert isinstance(requested.error, ConnectionError)


class UndoFails(FindingStore):
    """The real store, whose write back to PENDING_APPROVAL fails (DynamoDB unavailable at the worst moment)."""

    def transition(self, finding_id: str, **kwargs: Any) -> WriteResult:
        if kwargs.get("target") is State.PENDING_APPROVAL:
            raise ConnectionError("dynamodb unavailable")
        return super().transition(finding_id, **kwargs)


def test_a_failed_undo_is_reported_and_logged(
    store: FindingStore, missing_queue: SqsJobQueue, caplog: pytest.LogCaptureFixture, signer: ApprovalSigner
) -> None:
    pending(store)
    failing = UndoFails(aws_client("dynamodb"), TABLE)
    requested = request_job(failing, missing_queue, quarantine_job(), change=approval(), signer=signer)
    # THEN the finding is APPROVED with no job (the sweeper's case), both errors are returned, and it is logged
    assert requested.status is Requested.REFUSED_UNDO_FAILED
    assert requested.record.state is State.APPROVED
    assert isinstance(requested.undo_error, ConnectionError) and requested.error is not None
    assert f"finding {FID} is APPROVED with no job queued and could not be reverted" in caplog.text
    stored = store.get(FID)
    assert stored is not None and stored.state is State.APPROVED


class AppliedTwice(FindingStore):
    """The real store seen through an SDK retry: the write is applied, its response lost, the retry refused."""

    def transition(self, finding_id: str, **kwargs: Any) -> WriteResult:
        super().transition(finding_id, **kwargs)
        return super().transition(finding_id, **kwargs)


def test_a_retried_change_that_was_applied_counts_when_its_token_matches(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    pending(store)
    pending(store, "f-job-2")
    retried = AppliedTwice(aws_client("dynamodb"), TABLE)
    # WHEN the change carries a token ending its detail  THEN the refused retry is recognised: the job is queued
    mine = approval(detail="in C0PAY, click 0123abcd", token="click 0123abcd")
    assert request_job(retried, queue, quarantine_job(), change=mine, signer=signer).status is Requested.QUEUED
    # WHEN it carries none  THEN the refusal stands and nothing is sent
    assert request_job(retried, queue, quarantine_job("f-job-2"), change=approval("f-job-2"), signer=signer).status is (
        Requested.NOT_IN_EXPECTED_STATE
    )
    assert jobs(queue) == [quarantine_job()]


# -- the approval a change carries (docs/architecture.md §23) -----------------------------------------------------


def test_an_approving_change_stores_its_signed_approval_in_the_same_write(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN a finding awaiting approval
    pending(store)
    # WHEN its approval requests the job
    requested = request_job(store, queue, quarantine_job(), change=approval(), signer=signer)
    # THEN the APPROVED record carries the approval (action, approver, time) and a MAC KMS confirms for it
    stamp = requested.record.approval
    assert stamp is not None
    assert (stamp["action"], stamp["approver"], stamp["at"], stamp["algorithm"]) == (
        "quarantine",
        "U0ALICE",
        iso(AT),
        "HMAC_SHA_256",
    )
    message = approval().approval.message()  # type: ignore[union-attr]
    kms = aws_client("kms")
    verified = kms.verify_mac(
        Message=message, KeyId=signer.key_id, MacAlgorithm="HMAC_SHA_256", Mac=base64.b64decode(stamp["mac"])
    )
    assert verified["MacValid"] is True


@pytest.mark.parametrize("missing", ["approval", "signer"])
def test_an_approving_change_without_its_approval_or_a_signer_writes_and_sends_nothing(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner, missing: str
) -> None:
    # GIVEN a finding awaiting approval
    pending(store)
    change = approval(approval=None) if missing == "approval" else approval()
    # WHEN a change into APPROVED comes without its approval, or without a signer
    with pytest.raises(UnsignedApprovalError, match="needs its approval and a signer"):
        request_job(store, queue, quarantine_job(), change=change, signer=None if missing == "signer" else signer)
    # THEN the finding is still pending, with no approval, and no job was sent
    record = store.get(FID)
    assert record is not None and record.state is State.PENDING_APPROVAL and record.approval is None
    assert jobs(queue) == []


def test_an_approval_of_another_finding_is_refused(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    pending(store)
    with pytest.raises(UnsignedApprovalError, match=f"cannot approve {FID}"):
        request_job(
            store, queue, quarantine_job(), change=approval(approval=approval("f-other").approval), signer=signer
        )
    record = store.get(FID)
    assert record is not None and record.state is State.PENDING_APPROVAL and jobs(queue) == []


def test_the_undo_removes_the_approval_with_the_approver(
    store: FindingStore, missing_queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN a queue that refuses every job
    pending(store)
    # WHEN an approval's job is refused
    requested = request_job(store, missing_queue, quarantine_job(), change=approval(), signer=signer)
    # THEN the finding is pending again with neither approver nor approval: nothing is left to replay
    assert requested.status is Requested.REFUSED_UNDONE
    assert (requested.record.approver, requested.record.approval) == (None, None)


def test_a_retry_keeps_the_approval_the_record_carries(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN an approved finding whose move failed
    pending(store)
    first = request_job(store, queue, quarantine_job(), change=approval(), signer=signer)
    store.transition(FID, expected={State.APPROVED}, target=State.FAILED, actor="remediator", event="failed")
    # WHEN an operator retries it without re-approving (a change that keeps the approval, no signer)
    retry = approval(expected=State.FAILED, approval=None, keeps_approval=True)
    requested = request_job(store, queue, quarantine_job(), change=retry)
    # THEN it is APPROVED again with the very approval it had
    assert requested.status is Requested.QUEUED and requested.record.state is State.APPROVED
    assert requested.record.approval == first.record.approval


# -- with a note of the sent job ----------------------------------------------------------------------------------


def requeued_note() -> SentNote:
    return SentNote(
        actor="sweeper",
        event="requeued_by_sweeper",
        outcome="requeued",
        detail=lambda message_id: f"message {message_id}",
        expected={State.APPROVED},
    )


def approved(store: FindingStore) -> None:
    pending(store)
    store.transition(FID, expected={State.PENDING_APPROVAL}, target=State.APPROVED, actor="U0ALICE", event="ok")


def test_a_sent_job_is_noted_with_its_message_id(store: FindingStore, queue: SqsJobQueue) -> None:
    approved(store)
    requested = request_job(store, queue, quarantine_job(), note=requeued_note())
    assert requested.status is Requested.QUEUED and requested.noted
    entry = requested.record.audit[-1]
    assert (entry.actor, entry.event, entry.detail) == (
        "sweeper",
        "requeued_by_sweeper",
        f"message {requested.message_id}",
    )
    assert jobs(queue) == [quarantine_job()]


def test_a_note_the_record_no_longer_allows_is_not_written(store: FindingStore, queue: SqsJobQueue) -> None:
    # GIVEN a finding that is no longer APPROVED
    approved(store)
    store.transition(FID, expected={State.APPROVED}, target=State.QUARANTINED, actor="remediator", event="moved")
    # WHEN a job is requested with a note that holds only while APPROVED
    requested = request_job(store, queue, quarantine_job(), note=requeued_note())
    # THEN the job was sent (the note comes after the send), and the note is refused
    assert requested.status is Requested.QUEUED and not requested.noted and requested.message_id
    assert requested.record.state is State.QUARANTINED
    assert requested.record.audit[-1].event == "moved"


def test_without_a_change_a_refused_job_raises_and_notes_nothing(
    store: FindingStore, missing_queue: SqsJobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    approved(store)
    caplog.set_level(logging.WARNING)
    with pytest.raises(Exception, match=r"does not exist|NonExistentQueue"):
        request_job(store, missing_queue, quarantine_job(), note=requeued_note())
    record = store.get(FID)
    assert record is not None and record.audit[-1].event == "ok"
    assert f"queueing the quarantine job for {FID} failed (attempt 1 of 1)" in caplog.text


def test_a_request_must_change_or_note_the_finding(store: FindingStore, queue: SqsJobQueue) -> None:
    with pytest.raises(ValueError, match="changes the finding's state or notes"):
        request_job(store, queue, quarantine_job())
    assert jobs(queue) == []


def test_a_request_with_no_attempt_to_send_changes_nothing(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    pending(store)
    with pytest.raises(ValueError, match="attempts must be 1 or more"):
        request_job(store, queue, quarantine_job(), change=approval(), attempts=0, signer=signer)
    record = store.get(FID)
    assert record is not None and record.state is State.PENDING_APPROVAL
    assert jobs(queue) == []


# -- the state change's hook (a group's counts, §22) fails after the change was written ---------------------------


class CountsDown:
    """A FindingStore hook whose group store is unreachable: every call fails after the transition was written."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, record: Any) -> None:
        self.calls.append(record.finding_id)
        raise ConnectionError("dynamodb endpoint reset the connection (the group item)")


def test_a_failing_hook_still_sends_the_job_then_raises(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN a finding awaiting approval, in a store whose state-change hook (its group's counts) fails
    pending(store)
    counts_down = CountsDown()
    hooked = FindingStore(aws_client("dynamodb"), TABLE, on_state_change=counts_down)
    # WHEN its approval requests the quarantine job, with a note of the sent job
    note = SentNote(actor="U0ALICE", event="job_queued", outcome="queued", detail=lambda message_id: message_id)
    with pytest.raises(StateChangeHookError) as raised:
        request_job(hooked, queue, quarantine_job(), change=approval(), note=note, signer=signer)
    # THEN the change was written and the job the state promises was sent and noted all the same, and the hook's
    # failure surfaces after them, naming the finding and carrying its cause
    assert counts_down.calls == [FID]
    assert jobs(queue) == [quarantine_job()]
    record = store.get(FID)
    assert record is not None and (record.state, record.approver) == (State.APPROVED, "U0ALICE")
    assert record.audit[-1].event == "job_queued"
    assert raised.value.result.applied and raised.value.result.record.state is State.APPROVED
    assert FID in str(raised.value) and isinstance(raised.value.__cause__, ConnectionError)


def test_a_failing_hook_on_a_refused_change_is_not_called(
    store: FindingStore, queue: SqsJobQueue, signer: ApprovalSigner
) -> None:
    # GIVEN a finding someone already dismissed, in a store whose hook fails
    pending(store)
    store.transition(FID, expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor="U0BOB", event="dismiss")
    counts_down = CountsDown()
    hooked = FindingStore(aws_client("dynamodb"), TABLE, on_state_change=counts_down)
    # WHEN an approval requests its job
    requested = request_job(hooked, queue, quarantine_job(), change=approval(), signer=signer)
    # THEN nothing moved, so the hook was not called and no job was sent
    assert requested.status is Requested.NOT_IN_EXPECTED_STATE
    assert counts_down.calls == [] and jobs(queue) == []
