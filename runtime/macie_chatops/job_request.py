"""Requesting a remediation job: change the finding's state, send the job, undo the change when the queue
refuses it, or note the sent job on the record. The way every producer of jobs that approves or re-queues (the
interaction, the CLI, the sweeper) puts one on the remediation queue; the intake's auto job is sent on its own,
after the intake's last write (docs/architecture.md §5).

The order is the point: a finding never waits in a state that promises a job (APPROVED, RESTORE_REQUESTED)
while no job is coming, unless the undo itself fails, which is reported and leaves an APPROVED finding to
the sweeper (docs/architecture.md §8). A note is written only after the send, so a noted job was really sent.

Every change into an approving state (APPROVED, RESTORE_REQUESTED, UNDO_REQUESTED) carries its approval, signed
here and stored in the transition's own write (docs/architecture.md §23): a change without one, or without a
signer, raises before anything is written. The undo removes it with the approver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from macie_chatops.approvals import Approval, ApprovalSigner
    from macie_chatops.jobs import RemediationJob
    from macie_chatops.ports import JobQueue
    from macie_chatops.states import State
    from macie_chatops.store import FindingRecord, FindingStore, RecordUpdates, WriteResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateChange:
    """The transition made before the job is sent, and the one that undoes it when the job is refused.

    ``token``: unique to this request and the end of ``detail``; a transition refused because an earlier try
    of this very write was applied (an SDK retry whose response was lost) then counts as this request's."""

    expected: State
    target: State
    actor: str
    event: str
    undo_event: str
    undo_detail: Callable[[Exception], str]  # the queue's error -> the undo's audit detail
    detail: str = ""
    updates: RecordUpdates | None = None
    undo_updates: RecordUpdates | None = None
    token: str | None = None
    approval: Approval | None = None  # what the change approves (approvals.approval_for): signed on the way in
    # A retry (FAILED -> APPROVED) re-enters the approval the record carries: nothing is signed, and the
    # remediator verifies that approval as it would have the first time.
    keeps_approval: bool = False


class UnsignedApprovalError(ValueError):
    """A change into an approving state without its approval or a signer: a programming error, nothing written."""


@dataclass(frozen=True)
class SentNote:
    """The audit entry that records the sent job on the finding (``detail`` is given the message id)."""

    actor: str
    event: str
    outcome: str
    detail: Callable[[str], str]
    updates: RecordUpdates | None = None
    expected: Collection[State] | None = None  # only while the finding is in one of these states


class Requested(StrEnum):
    QUEUED = "queued"  # the job is on the queue (after the change; noted, if a note was asked for and it held)
    NOT_IN_EXPECTED_STATE = "not_in_expected_state"  # the change was refused: nothing sent, ``record`` says why
    REFUSED_UNDONE = "refused_undone"  # the queue refused the job; the change was undone
    REFUSED_MOVED_ON = "refused_moved_on"  # refused, and the finding had moved on before the undo (not undone)
    REFUSED_UNDO_FAILED = "refused_undo_failed"  # refused, and the undo failed: the finding waits for no job


@dataclass(frozen=True)
class JobRequest:
    """What :func:`request_job` did; ``record`` is the finding as the last write left it."""

    status: Requested
    record: FindingRecord
    message_id: str | None = None
    noted: bool = False  # the note was written (False: no note asked for, or its condition refused it)
    error: Exception | None = None  # the queue's refusal
    undo_error: Exception | None = None

    @property
    def reason(self) -> str:
        """The queue's refusal in a line ("" when it was queued)."""
        return "" if self.error is None else describe(self.error)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"


def request_job(
    store: FindingStore,
    queue: JobQueue,
    job: RemediationJob,
    *,
    change: StateChange | None = None,
    note: SentNote | None = None,
    attempts: int = 1,
    signer: ApprovalSigner | None = None,
) -> JobRequest:
    """Change the finding's state (``change``, its approval signed by ``signer``), send ``job`` (up to
    ``attempts`` tries), then note it (``note``).

    A refused send undoes the change. Without a change there is nothing to undo: the queue's last error is
    raised, for the caller's own retry (the intake's redelivery, the sweep's error report). Raises what the
    change's write raises (``FindingNotFoundError``, DynamoDB errors) and what signing raises: nothing was sent
    then. A :class:`~macie_chatops.store.StateChangeHookError` (the change written, its group's counts not moved)
    is raised only after the job was sent and noted."""
    if change is None and note is None:
        raise ValueError("a job request changes the finding's state or notes the job on it")
    if attempts < 1:
        raise ValueError(f"attempts must be 1 or more, got {attempts}")
    from macie_chatops.store import StateChangeHookError  # loaded already: the caller's store is one

    changed: WriteResult | None = None
    hook_failed: StateChangeHookError | None = None
    if change is not None:
        try:
            changed = apply_change(store, job.finding_id, change, signer=signer)
        except StateChangeHookError as exc:
            # Written, only the group's counts were not moved: the job the state promises is sent all the same
            # (a RESTORE_REQUESTED has no sweeper to send it later), then the hook's failure is raised.
            changed, hook_failed = exc.result, exc
        if not changed.applied:
            return JobRequest(Requested.NOT_IN_EXPECTED_STATE, changed.record)
    try:
        message_id = _send(queue, job, attempts)
    except Exception as exc:
        if change is None or changed is None:  # nothing to undo
            raise
        return _undo(store, job, change, changed.record, exc)
    if note is None:
        assert changed is not None  # a request without a note has a change
        request = JobRequest(Requested.QUEUED, changed.record, message_id)
    else:
        written = store.append_audit(
            job.finding_id,
            actor=note.actor,
            event=note.event,
            outcome=note.outcome,
            detail=note.detail(message_id),
            updates=note.updates,
            expected=note.expected,
        )
        request = JobRequest(Requested.QUEUED, written.record, message_id, noted=written.applied)
    if hook_failed is not None:
        raise hook_failed
    return request


def apply_change(
    store: FindingStore, finding_id: str, change: StateChange, *, signer: ApprovalSigner | None = None
) -> WriteResult:
    """The change's conditional transition, with its approval signed (an approving change: raises
    :class:`UnsignedApprovalError` without one); ``applied`` also when an earlier try of it (same token) was."""
    result = store.transition(
        finding_id,
        expected={change.expected},
        target=change.target,
        actor=change.actor,
        event=change.event,
        updates=_with_approval(finding_id, change, signer),
        detail=change.detail,
    )
    if result.applied or change.token is None:
        return result
    entry = result.record.entry_into_state
    ours = result.record.state is change.target and entry is not None and entry.detail.endswith(change.token)
    return replace(result, applied=True) if ours else result


def _with_approval(finding_id: str, change: StateChange, signer: ApprovalSigner | None) -> RecordUpdates | None:
    """The change's updates, with its signed approval when it approves (the MAC is written in the same write)."""
    from macie_chatops.approvals import APPROVING_STATES

    if change.approval is None and (change.keeps_approval or change.target not in APPROVING_STATES):
        return change.updates
    if change.approval is None or signer is None:
        raise UnsignedApprovalError(
            f"the change of {finding_id} to {change.target.value} approves: it needs its approval and a signer"
        )
    if change.approval.finding_id != finding_id:
        raise UnsignedApprovalError(f"the approval of {change.approval.finding_id} cannot approve {finding_id}")
    updates: RecordUpdates = {**(change.updates or {}), "approval": signer.sign(change.approval)}
    return updates


def _send(queue: JobQueue, job: RemediationJob, attempts: int) -> str:
    attempt = 1
    while True:
        try:
            return queue.send(job)
        except Exception as exc:
            logger.warning(
                "queueing the %s job for %s failed (attempt %d of %d): %s",
                job.kind,
                job.finding_id,
                attempt,
                attempts,
                describe(exc),
            )
            if attempt >= attempts:
                raise
            attempt += 1


def _undo(
    store: FindingStore, job: RemediationJob, change: StateChange, changed: FindingRecord, error: Exception
) -> JobRequest:
    try:
        undone = store.transition(
            job.finding_id,
            expected={change.target},
            target=change.expected,
            actor=change.actor,
            event=change.undo_event,
            # The approval goes with the change it signed: never left behind on a finding it no longer approves.
            updates=change.undo_updates
            if change.approval is None
            else {**(change.undo_updates or {}), "approval": None},
            detail=change.undo_detail(error),
        )
    except Exception as exc:
        logger.exception(
            "finding %s is %s with no job queued and could not be reverted", job.finding_id, change.target.value
        )
        return JobRequest(Requested.REFUSED_UNDO_FAILED, changed, error=error, undo_error=exc)
    status = Requested.REFUSED_UNDONE if undone.applied else Requested.REFUSED_MOVED_ON
    return JobRequest(status, undone.record, error=error)
