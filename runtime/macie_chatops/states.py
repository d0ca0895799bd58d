"""The finding state machine: which transitions are legal (each one is a conditional write in the store)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class State(StrEnum):
    RECEIVED = "RECEIVED"
    IGNORED = "IGNORED"
    REJECTED = "REJECTED"
    NOTIFIED = "NOTIFIED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    DISMISSED = "DISMISSED"
    QUARANTINED = "QUARANTINED"
    BLOCKED = "BLOCKED"
    FAILED = "FAILED"
    RESTORE_REQUESTED = "RESTORE_REQUESTED"
    RESTORED = "RESTORED"
    # Another finding holds the claim of the same object version (store.claim_object): recorded, pointing at
    # that first finding (``duplicate_of``), never posted for review nor moved (docs/architecture.md §5).
    DUPLICATE = "DUPLICATE"
    # A policy finding's fix (docs/architecture.md §18): the bucket's public access block put, the configuration
    # before it recorded; an Undo puts that configuration back exactly.
    PUBLIC_ACCESS_BLOCKED = "PUBLIC_ACCESS_BLOCKED"
    UNDO_REQUESTED = "UNDO_REQUESTED"
    UNDONE = "UNDONE"


TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.RECEIVED: frozenset(
        {State.IGNORED, State.REJECTED, State.NOTIFIED, State.PENDING_APPROVAL, State.APPROVED, State.DUPLICATE}
    ),
    State.PENDING_APPROVAL: frozenset({State.APPROVED, State.DISMISSED}),
    # FAILED is retryable: a redelivered job moves APPROVED -> (FAILED ->) APPROVED again.
    # APPROVED -> PENDING_APPROVAL only undoes a click whose job could not be queued (the interaction
    # endpoint), so no finding is left APPROVED with no job; the approver is asked to click again.
    # -> DUPLICATE: the remediator found the object version claimed by another finding (a record from before
    # claims existed, approved alongside that one) and refused to move it a second time.
    State.APPROVED: frozenset(
        {
            State.QUARANTINED,
            State.BLOCKED,
            State.FAILED,
            State.PENDING_APPROVAL,
            State.DUPLICATE,
            State.PUBLIC_ACCESS_BLOCKED,
        }
    ),
    State.FAILED: frozenset(
        {State.APPROVED, State.QUARANTINED, State.BLOCKED, State.DUPLICATE, State.PUBLIC_ACCESS_BLOCKED}
    ),
    State.QUARANTINED: frozenset({State.RESTORE_REQUESTED}),
    State.RESTORE_REQUESTED: frozenset({State.RESTORED, State.QUARANTINED}),
    # An Undo that could not be done (the configuration changed since the fix) leaves the block in place.
    State.PUBLIC_ACCESS_BLOCKED: frozenset({State.UNDO_REQUESTED}),
    State.UNDO_REQUESTED: frozenset({State.UNDONE, State.PUBLIC_ACCESS_BLOCKED}),
}

FINAL_STATES: Final = frozenset(
    {
        State.IGNORED,
        State.REJECTED,
        State.NOTIFIED,
        State.DISMISSED,
        State.BLOCKED,
        State.RESTORED,
        State.DUPLICATE,
        State.UNDONE,
    }
)


class Failure(StrEnum):
    """A FAILED record's ``outcome``: will the remediator retry it by itself, and if not, what must be fixed.

    Written by the remediator; read by it and by the interaction endpoint (which tells a late clicker)."""

    RETRYING = "failed_retrying"  # the job went back to the queue (a transient error): SQS redelivers it
    ROLE_DENIED = "assume_role_denied"  # the member remediation role could not be assumed: deploy it, then retry
    PERMANENT = "failed"  # acknowledged: fix what the error names, then `macie-chatops retry`
    UNVERIFIED = "approval_not_verified"  # the approval's MAC did not verify (§23): nothing touched; re-approve

    @classmethod
    def of(cls, outcome: str | None) -> Failure:
        """The failure a record's ``outcome`` names (records written before these codes: permanent)."""
        try:
            return cls(outcome or cls.PERMANENT)
        except ValueError:
            return cls.PERMANENT

    @property
    def retryable(self) -> bool:
        return self is Failure.RETRYING


def can_transition(current: State, target: State) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
