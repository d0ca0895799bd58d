"""Signed approvals (docs/architecture.md §23): every approval carries a MAC from a KMS HMAC key of the security
account, over a canonical encoding of what was approved; the remediator moves nothing whose approval does not
verify, so a state-table item written by hand cannot move data.

What the MAC binds: the finding id, the exact target (account, bucket, key, version: the object version's
identity as the claims use it, ``summary.ObjectVersion``; a policy finding's bucket with an empty key and
version), the action, the approver and the time. The verifier rebuilds the finding id and the target from the
record it is about to act on, never from the stored approval, so an approval copied onto another finding (or a
record whose object was edited) does not verify. ``ApprovalSigner`` (the approving handlers: the interaction,
the intake's ``auto``, the operator CLI) and ``ApprovalVerifier`` (the remediator, the sweeper) take a KMS
client; only they may call ``kms:GenerateMac`` / ``kms:VerifyMac`` on the key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from macie_chatops.states import Failure, State
from macie_chatops.summary import ObjectVersion

if TYPE_CHECKING:
    from macie_chatops.store import FindingRecord, FindingStore, RecordUpdates, WriteResult

ApprovalAction = Literal["quarantine", "restore", "block_public_access", "undo_block_public_access"]
APPROVAL_ACTIONS: Final[frozenset[str]] = frozenset(get_args(ApprovalAction))
DOMAIN: Final = "macie-chatops/approval/v1"  # the first field: a MAC of ours for another purpose never verifies
MAC_ALGORITHM: Final = "HMAC_SHA_256"
MAX_MESSAGE_BYTES: Final = 4096  # KMS GenerateMac/VerifyMac take at most this many bytes
INVALID_MAC: Final = "KMSInvalidMacException"  # what KMS answers VerifyMac for a MAC that does not match
# The states an approval puts a finding in: a transition into one of them is only written with a signed approval.
APPROVING_STATES: Final = frozenset({State.APPROVED, State.RESTORE_REQUESTED, State.UNDO_REQUESTED})
NOT_VERIFIED: Final = "approval not verified"
OPERATOR_PREFIX: Final = "cli:"  # the operator CLI's actors (cli._operator): an operator's re-approval of a move


class ApprovalError(ValueError):
    """An approval cannot be built for this record (it names nothing to act on)."""


def iso(moment: datetime) -> str:
    """The approval's time as it is signed and stored: ISO 8601 UTC with microseconds (the store's form)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Approval:
    """What one approval approves; :meth:`message` is the canonical encoding the MAC is computed over."""

    finding_id: str
    target: ObjectVersion  # a policy finding's bucket: key "" and version ""
    action: ApprovalAction
    approver: str
    at: str  # ISO 8601 UTC (:func:`iso`)

    def message(self) -> bytes:
        """Each field as a netstring (``<byte length>:<UTF-8 bytes>,``), in a fixed order after :data:`DOMAIN`:
        no separator inside a key or a version can make two different approvals encode alike, and nothing is
        escaped, so the size is bounded (a 1,024-byte key and a 1,024-byte version id stay under KMS's 4,096)."""
        target = self.target
        fields = (DOMAIN, self.finding_id, target.account_id, target.bucket, target.key, target.version)
        encoded = b"".join(
            _netstring(field)
            for field in (*fields, self.action, self.approver, self.at)  # the last three: what, who, when
        )
        if len(encoded) > MAX_MESSAGE_BYTES:
            raise ApprovalError(f"the approval of {self.finding_id} encodes to {len(encoded)} bytes, over KMS's limit")
        return encoded


def _netstring(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate is encoded, not refused: it still binds
    return str(len(data)).encode("ascii") + b":" + data + b","


def target_of(record: FindingRecord) -> ObjectVersion:
    """The object version (an object finding) or the bucket (a policy finding) the record's approval acts on."""
    if record.summary is not None and record.summary.bucket:
        return record.summary.object_version
    if record.policy is not None:
        return ObjectVersion(record.policy.account_id, record.policy.bucket, "", "")
    raise ApprovalError(f"the record of {record.finding_id} names no object or bucket to approve an action on")


def action_for(record: FindingRecord, job_kind: str) -> ApprovalAction | None:
    """The action a job of ``job_kind`` carries out on this record, None when that kind does nothing to it (the
    sweeper's and ``retry``'s quarantine job carries out a policy finding's block: the record says which)."""
    if record.policy is not None:
        if job_kind in ("quarantine", "block_public_access"):
            return "block_public_access"
        return "undo_block_public_access" if job_kind == "undo_block_public_access" else None
    if job_kind in ("quarantine", "restore"):
        return "quarantine" if job_kind == "quarantine" else "restore"
    return None


# The states in which the remediator carries out each action (in any other it only updates Slack, or does nothing).
ACTING_STATES: Final[Mapping[str, frozenset[State]]] = {
    "quarantine": frozenset({State.APPROVED, State.FAILED}),
    "block_public_access": frozenset({State.APPROVED, State.FAILED}),
    "restore": frozenset({State.RESTORE_REQUESTED}),
    "undo_block_public_access": frozenset({State.UNDO_REQUESTED}),
}


def approval_for(record: FindingRecord, *, action: ApprovalAction, approver: str, at: str) -> Approval:
    return Approval(record.finding_id, target_of(record), action, approver, at)


# --------------------------------------------------------------------------------------------------------
# Signing and verifying (the KMS client passed in)
# --------------------------------------------------------------------------------------------------------


class ApprovalSigner:
    """Signs approvals with the HMAC key (``kms:GenerateMac``); the stamp it returns is stored on the record
    (``approval``) in the write that makes the approving transition."""

    def __init__(self, kms: Any, key_id: str) -> None:
        if not key_id:
            raise ValueError("an approval signer needs the approval key's id")
        self._kms = kms
        self.key_id = key_id

    def sign(self, approval: Approval) -> dict[str, str]:
        """The stamp to store: the approval's action, approver and time, the MAC, the key and algorithm (raises
        what KMS raises: nothing is approved without its MAC)."""
        response = self._kms.generate_mac(Message=approval.message(), KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM)
        return {
            "action": approval.action,
            "approver": approval.approver,
            "at": approval.at,
            "mac": base64.b64encode(response["Mac"]).decode("ascii"),
            "key_id": str(response.get("KeyId", self.key_id)),
            "algorithm": MAC_ALGORITHM,
        }

    def stamp(self, record: FindingRecord, *, action: ApprovalAction, approver: str, at: datetime) -> dict[str, str]:
        """Sign ``approver``'s approval of ``action`` on the record's finding and target, at ``at``."""
        return self.sign(approval_for(record, action=action, approver=approver, at=iso(at)))


def auto_stamp(signer: ApprovalSigner | None, record: FindingRecord, at: datetime) -> dict[str, str]:
    """The intake's ``auto`` approval of the record's fix (a move, or a policy finding's block), signed: stored in
    the transition to APPROVED. Raises without a signer: an auto approval is never written unsigned."""
    from macie_chatops.jobs import AUTO_APPROVER

    action = action_for(record, "quarantine")
    if signer is None or action is None:
        raise ValueError(f"the auto approval of {record.finding_id} cannot be signed (no signer, or nothing to fix)")
    return signer.stamp(record, action=action, approver=AUTO_APPROVER, at=at)


@dataclass(frozen=True)
class Verification:
    verified: bool
    reason: str  # why not ("" when verified)
    approver: str | None = None  # the verified approval's approver


class ApprovalVerifier:
    """Verifies the record's approval (``kms:VerifyMac`` with the configured key, never a key the record names)."""

    def __init__(self, kms: Any, key_id: str) -> None:
        if not key_id:
            raise ValueError("an approval verifier needs the approval key's id")
        self._kms = kms
        self.key_id = key_id

    def verify(self, record: FindingRecord, action: ApprovalAction) -> Verification:
        """Does the record carry a valid approval of ``action`` on its own finding and target? KMS errors other
        than a MAC that does not match (throttling, access denied, a missing key) are raised: undecided."""
        stamp = record.approval
        if not stamp:
            return Verification(False, "the record carries no signed approval")
        found = _read_stamp(stamp)
        if isinstance(found, str):
            return Verification(False, found)
        signed_action, approver, at, mac = found
        if signed_action != action:
            return Verification(False, f"the approval is for {signed_action}, not {action}")
        named = _attributed_to(record, action)
        if named != approver and not (action in _MOVES and approver.startswith(OPERATOR_PREFIX)):
            return Verification(False, f"the approval is {approver}'s, but the record names {named or 'nobody'}")
        try:
            message = approval_for(record, action=action, approver=approver, at=at).message()
        except ApprovalError as exc:
            return Verification(False, str(exc))
        from botocore.exceptions import ClientError

        try:
            response = self._kms.verify_mac(Message=message, KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM, Mac=mac)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == INVALID_MAC:
                return Verification(False, "the MAC does not match this finding, target, action, approver and time")
            raise
        if response.get("MacValid") is not True:
            return Verification(False, "KMS did not confirm the MAC")
        return Verification(True, "", approver)


_MOVES: Final = frozenset({"quarantine", "block_public_access"})


def _attributed_to(record: FindingRecord, action: ApprovalAction) -> str | None:
    """Who the remediator names as the SourceIdentity of ``action`` (§19): the record's approver for a move or a
    block; the actor of the entry into RESTORE_REQUESTED or UNDO_REQUESTED for a restore or an Undo. It must be the
    approval's approver, so a table writer cannot relabel whom a move is attributed to; an operator's re-approval
    (``retry --reapprove``) of a move keeps the original approver on the record (the MAC names the operator)."""
    if action in _MOVES:
        return record.approver
    entry = record.entry_into_state
    return entry.actor if entry is not None else None


def _read_stamp(stamp: Mapping[str, str]) -> tuple[str, str, str, bytes] | str:
    """(action, approver, at, MAC bytes) of a stored stamp, or why it cannot be read."""
    missing = [name for name in ("action", "approver", "at", "mac") if not stamp.get(name)]
    if missing:
        return f"the approval lacks {', '.join(missing)}"
    try:
        mac = base64.b64decode(stamp["mac"], validate=True)
    except (binascii.Error, ValueError):
        return "the approval's MAC is not base64"
    if not mac:
        return "the approval's MAC is empty"
    return stamp["action"], stamp["approver"], stamp["at"], mac


# --------------------------------------------------------------------------------------------------------
# Refusing an approval that does not verify
# --------------------------------------------------------------------------------------------------------

EVENT_NOT_VERIFIED: Final = "approval_not_verified"


def refuse(store: FindingStore, record: FindingRecord, verification: Verification, *, actor: str) -> WriteResult:
    """Record that the record's approval did not verify, in the state its action leaves when it is not carried
    out: a quarantine or a block FAILED (:attr:`Failure.UNVERIFIED`, permanent: an operator re-approves); a
    restore back to QUARANTINED, an Undo back to PUBLIC_ACCESS_BLOCKED, the approval removed with it (it can
    never be used again). Nothing else is touched."""
    error = f"{NOT_VERIFIED}: {verification.reason}"
    if record.state is State.FAILED:  # FAILED -> FAILED is no transition: record the new error
        return store.append_audit(
            record.finding_id,
            actor=actor,
            event=EVENT_NOT_VERIFIED,
            outcome=State.FAILED.value,
            detail=verification.reason,
            updates={"outcome": Failure.UNVERIFIED.value, "outcome_detail": error, "error": error},
            expected={State.FAILED},
        )
    if record.state is State.RESTORE_REQUESTED:
        target, event = State.QUARANTINED, "restore_refused"
        updates: RecordUpdates = {"error": f"restore not done: {error}", "approval": None}
    elif record.state is State.UNDO_REQUESTED:
        target, event = State.PUBLIC_ACCESS_BLOCKED, "undo_refused"
        updates = {"error": f"undo not done: {error}", "approval": None}
    else:
        target, event = State.FAILED, EVENT_NOT_VERIFIED
        updates = {"outcome": Failure.UNVERIFIED.value, "outcome_detail": error, "error": error}
    return store.transition(
        record.finding_id,
        expected={record.state},
        target=target,
        actor=actor,
        event=event,
        updates=updates,
        detail=error,
    )
