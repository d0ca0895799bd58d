"""The remediator's use case: one RemediationJob -> the move or the restore, recorded, then shown in Slack.

``handle_job(body, deps)`` is the whole remediator minus the Lambda plumbing. The record, never the job
message, says which object, which account and who approved, so a forged or stale job can do nothing the
record does not already allow. Quarantine jobs act on APPROVED or FAILED (a retry), restore jobs on
RESTORE_REQUESTED; a job whose outcome is already recorded only re-does the Slack update (that is how a Slack
failure after the move is retried without moving anything again); any other state is a stale or forged job,
acknowledged. The order (claim the object version, assume the role, move, record, update Slack) and why:
docs/architecture.md sections 5 ("One object version, one remediation") and 7.

Failures the mover cannot classify (throttling after botocore's retries, 5xx, network), and the FAILED
outcomes it marks retryable, are recorded as FAILED and raised: the queue retries the job, then keeps it in
the remediation DLQ. Every other FAILED is permanent; its :class:`states.Failure` says what an operator must
fix before ``macie-chatops retry FINDING_ID``. A transient Slack failure raises too (its redelivery only
retries the update); other Slack errors are audited and the job is done. Exceptions that are not AWS errors
propagate untouched (a bug, or in tests a simulated crash): nothing is recorded for them, exactly as if the
process had died there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.errors import (
    SLACK_TOKEN_ERRORS,
    MacieChatOpsError,
    SlackConfigurationError,
    SlackError,
    SlackRetryableError,
)
from macie_chatops.groups import GroupViews
from macie_chatops.jobs import AUTO_APPROVER, RemediationJob
from macie_chatops.move import MoveOutcome, MoveRequest, ObjectMover, RestoreOutcome, RestoreRequest
from macie_chatops.ports import Clock, Counter, SlackUpdater, utcnow
from macie_chatops.quarantine_plan import (
    MoveFacts,
    MoveStatus,
    MoveStep,
    RestoreStatus,
    TagPairs,
    decode_original_tags,
)
from macie_chatops.session_policy import SessionScope, for_move, for_restore
from macie_chatops.sessions import AssumeRoleDeniedError, MemberClients
from macie_chatops.states import Failure, State
from macie_chatops.store import RETENTION_DAYS, FindingRecord, FindingStore, ObjectClaim, RecordUpdates

if TYPE_CHECKING:
    from macie_chatops.approvals import ApprovalAction, ApprovalVerifier
    from macie_chatops.config import Config
    from macie_chatops.slack_messages import SlackMessage

# The remediator handler's logger (same service: Powertools shares one configured logger per service, so
# keys appended here show on the handler's lines too, and the core also works without the handler).
logger = Logger(service="macie-chatops-remediator")

ACTOR: Final = "remediator"
MB: Final = 1024 * 1024


class LostWakeUps(Protocol):
    """Re-send a group's digest wake-up an earlier attempt lost (``group_store.Grouping``, §22)."""

    def wake_if_lost(self, group_id: str) -> None: ...


class Sessions(Protocol):
    def clients(
        self, account_id: str, region: str, *, actor: str, finding_id: str, scope: SessionScope | None = None
    ) -> MemberClients: ...


@dataclass(frozen=True)
class RemediationDependencies:
    config: Config
    store: FindingStore
    sessions: Sessions
    slack: SlackUpdater
    metrics: Counter
    verifier: ApprovalVerifier  # every job's approval is verified before anything is touched (§23)
    checkpoint: Callable[[MoveStep], None] | None = None  # tests: crash between the mover's steps
    clock: Clock = field(default=utcnow)
    groups: GroupViews | None = None  # a grouped finding's message may be its group's digest (§22)
    digest_wakes: LostWakeUps | None = None  # a redelivered job's group owed a wake-up (:func:`_owed_wake_up`)
    # Asked before a job acts on its record (the handler's time guard); False: the job is not started and the
    # result is DEFERRED, nothing touched. None: every job starts.
    may_start: Callable[[FindingRecord], bool] | None = None

    def mover(self, clients: MemberClients) -> ObjectMover:
        return ObjectMover(
            clients.s3,
            multipart_threshold_bytes=self.config.quarantine.multipart_threshold_mb * MB,
            clock=self.clock,
            checkpoint=self.checkpoint,
        )


class JobResult(StrEnum):
    QUARANTINED = "quarantined"
    BLOCKED = "blocked"
    FAILED = "failed"
    RESTORED = "restored"
    RESTORE_REFUSED = "restore_refused"
    DUPLICATE = "duplicate"  # another finding holds the object version's claim: not moved (again)
    PUBLIC_ACCESS_BLOCKED = "public_access_blocked"  # a policy finding's fix (public_access.py)
    UNDONE = "undone"  # its Undo: the configuration before the fix is back
    UNDO_REFUSED = "undo_refused"  # the bucket changed since the fix, or the Undo could not run: still blocked
    UNVERIFIED = "unverified"  # the record's approval did not verify (§23): refused, nothing touched
    ALREADY_DONE = "already_done"  # outcome recorded earlier; only the Slack message was (re)updated
    DEFERRED = "deferred"  # not started: too little time left in this invocation (``may_start``); nothing touched
    STALE = "stale"  # the record is not in a state this job may act on
    UNKNOWN = "unknown"  # no record, or an unreadable job


class RemediationError(MacieChatOpsError):
    """An attempt failed in a way a retry may fix; the failure is recorded on the finding."""


def _aws_errors() -> tuple[type[BaseException], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError
    from s3transfer.exceptions import S3CopyFailedError

    return (ClientError, BotoCoreError, Boto3Error, S3CopyFailedError)


def handle_job(body: str, deps: RemediationDependencies) -> JobResult:
    """Handle one remediation queue message; raises when it must return to the queue (module docstring)."""
    from pydantic import ValidationError

    try:
        job = RemediationJob.from_message(body)
    except ValidationError as exc:
        # Retrying cannot fix it and the body may carry anything: log its size and the first error only.
        logger.error(
            "unreadable remediation job: acknowledged", extra={"body_chars": len(body), "error": str(exc)[:300]}
        )
        deps.metrics.count("Jobs", kind="unknown", result=JobResult.UNKNOWN.value)
        return JobResult.UNKNOWN
    logger.thread_safe_append_keys(finding_id=job.finding_id, correlation_id=job.finding_id, job_kind=job.kind)
    record = deps.store.get(job.finding_id)
    if record is None:
        logger.error("remediation job for a finding with no record: acknowledged")
        deps.metrics.count("Jobs", kind=job.kind, result=JobResult.UNKNOWN.value)
        return JobResult.UNKNOWN
    result = _run(job, record, deps)
    if result is not JobResult.DEFERRED:  # a deferred job is counted by the handler that re-sends it
        deps.metrics.count("Jobs", kind=job.kind, result=result.value)
    return result


def _run(job: RemediationJob, record: FindingRecord, deps: RemediationDependencies) -> JobResult:
    """The job's step for this record: the record says whether the approved fix is a move or a policy finding's
    public access block (so the sweeper's and `retry`'s quarantine jobs carry out either)."""
    if deps.may_start is not None and _acting_action(job, record) is not None and not deps.may_start(record):
        return JobResult.DEFERRED
    refused = _refuse_unverified(job, record, deps)
    if refused is not None:
        return refused
    if record.policy is not None:
        from macie_chatops import public_access

        if job.kind in ("quarantine", "block_public_access"):
            return public_access.block(job, record, deps)
        if job.kind == "undo_block_public_access":
            return public_access.undo(job, record, deps)
    elif job.kind == "quarantine":
        return _quarantine(job, record, deps)
    elif job.kind == "restore":
        return _restore(job, record, deps)
    logger.warning("job kind does not apply to this finding: acknowledged", extra={"state": record.state})
    return JobResult.STALE


def _acting_action(job: RemediationJob, record: FindingRecord) -> ApprovalAction | None:
    """The action this job carries out on this record now; None when it only updates Slack or does nothing."""
    from macie_chatops.approvals import ACTING_STATES, action_for

    action = action_for(record, job.kind)
    return action if action is not None and record.state in ACTING_STATES[action] else None


def _refuse_unverified(job: RemediationJob, record: FindingRecord, deps: RemediationDependencies) -> JobResult | None:
    """The verification step (§23): a job about to act on its record needs the record's approval of that action
    to verify, before any member role is assumed; refused (recorded, counted, shown) otherwise. None: go on."""
    from macie_chatops.approvals import refuse

    action = _acting_action(job, record)
    if action is None:
        return None  # the job does nothing to this record (done already: Slack only; stale): nothing to verify
    verification = deps.verifier.verify(record, action)
    if verification.verified:
        logger.info("approval verified", extra={"action": action, "approver": verification.approver})
        return None
    logger.error(
        "approval not verified: job refused, nothing touched",
        extra={"action": action, "state": record.state.value, "reason": verification.reason},
    )
    deps.metrics.count(names.UNVERIFIED_APPROVALS_METRIC)  # the service dimension only: the alarm reads that
    result = refuse(deps.store, record, verification, actor=ACTOR)
    if not result.applied:
        logger.warning("the record moved on before the refusal was recorded", extra={"state": result.record.state})
    if record.state is State.FAILED:  # refused before (no transition now): perhaps by this job, its wake-up lost
        _owed_wake_up(record, deps)
    update_slack(result.record, deps)
    return JobResult.UNVERIFIED


# --------------------------------------------------------------------------------------------------------
# Quarantine
# --------------------------------------------------------------------------------------------------------

QUARANTINE_DONE: Final = frozenset({State.QUARANTINED, State.BLOCKED, State.DUPLICATE})
QUARANTINE_READY: Final = frozenset({State.APPROVED, State.FAILED})


def _quarantine(job: RemediationJob, record: FindingRecord, deps: RemediationDependencies) -> JobResult:
    if record.state in QUARANTINE_DONE:
        logger.info("outcome already recorded: updating Slack only", extra={"state": record.state.value})
        _owed_wake_up(record, deps)
        update_slack(record, deps)
        return JobResult.ALREADY_DONE
    if record.state not in QUARANTINE_READY:
        logger.warning("quarantine job for a finding that is not approved: acknowledged", extra={"state": record.state})
        return JobResult.STALE
    summary = record.summary
    approver = record.approver or job.requested_by
    if summary is None or not summary.bucket:
        outcome = MoveOutcome(MoveStatus.FAILED, "", "", detail="the finding's record holds no S3 object to move")
        failure = Failure.PERMANENT
    else:
        if not holds_claim(record, deps.clock()):
            claim = deps.store.claim_object(summary.object_version, finding_id=record.finding_id)
            if claim.finding_id != record.finding_id:
                return _refuse_duplicate(job, record, claim, deps)
        outcome, failure = _run_move(job, record, approver, deps)
    record = _record_move(job, record, outcome, deps, failure=failure)
    if outcome.status is MoveStatus.FAILED and failure.retryable:
        logger.warning("quarantine attempt failed; the job will be retried", extra={"error": outcome.detail[:500]})
        _update_slack_best_effort(record, deps)
        raise RemediationError(f"quarantine of {record.finding_id} failed: {outcome.detail}")
    update_slack(record, deps)
    return {
        MoveStatus.QUARANTINED: JobResult.QUARANTINED,
        MoveStatus.BLOCKED: JobResult.BLOCKED,
        MoveStatus.FAILED: JobResult.FAILED,
    }[outcome.status]


# A claim expires RETENTION_DAYS after it was first taken and DynamoDB deletes it some time after that; one taken
# this close to its expiry is claimed again rather than trusted from the record's mark.
CLAIM_TRUST_MARGIN: Final = timedelta(days=30)


def holds_claim(record: FindingRecord, now: datetime) -> bool:
    """The intake recorded that this finding holds its object version's claim (§5), and the claim is still there:
    nothing but its TTL releases a claim. A record without the mark (older records, a decision made elsewhere) is
    claimed again by the remediator: one version, one remediation."""
    if record.object_claimed_at is None:
        return False
    claimed = datetime.fromisoformat(record.object_claimed_at.replace("Z", "+00:00"))
    return now < claimed + timedelta(days=RETENTION_DAYS) - CLAIM_TRUST_MARGIN


def _owed_wake_up(record: FindingRecord, deps: RemediationDependencies) -> None:
    """A job that finds its outcome recorded may be the redelivery of an attempt whose transition applied and whose
    group hook then failed to wake the digest writer (the send refused: the hook raised after the counts and the
    dirty mark were written, and the job came back). Nobody else may mark the group once a flood has ended, so a
    stale mark is re-armed and the writer woken here: a read, and a write and a send only when the mark is older
    than STALE_DIRTY (the queue's visibility timeout, 90 min, is longer). The path that records an outcome is
    unchanged."""
    if record.group_id is not None and deps.digest_wakes is not None:
        deps.digest_wakes.wake_if_lost(record.group_id)


def _refuse_duplicate(
    job: RemediationJob, record: FindingRecord, claim: ObjectClaim, deps: RemediationDependencies
) -> JobResult:
    """Another finding holds the object version: record DUPLICATE with what became of it there; move nothing."""
    from macie_chatops.slack_messages import already_handled

    first = deps.store.get(claim.finding_id)
    detail = already_handled(
        claim.finding_id, first.state.value if first else None, first.quarantine if first else None
    )
    logger.warning(
        "the object version is claimed by another finding: not moved",
        extra={"duplicate_of": claim.finding_id, "first_state": first.state.value if first else None},
    )
    result = deps.store.transition(
        record.finding_id,
        expected=QUARANTINE_READY,
        target=State.DUPLICATE,
        actor=ACTOR,
        event="quarantine_refused_duplicate",
        updates={
            "duplicate_of": claim.finding_id,
            "outcome": "duplicate",
            "outcome_detail": detail,
            "error": None,
            **job_receipt(job, record),
        },
        detail=f"the same object version as finding {claim.finding_id}: {detail}",
    )
    if not result.applied:
        logger.warning("the record moved on before the refusal was recorded", extra={"state": result.record.state})
    update_slack(result.record, deps)
    return JobResult.DUPLICATE


def _run_move(
    job: RemediationJob, record: FindingRecord, approver: str, deps: RemediationDependencies
) -> tuple[MoveOutcome, Failure]:
    """The move's outcome, and what kind of failure it is if it failed (raises after recording a transient one)."""
    summary = record.summary
    assert summary is not None
    request = MoveRequest.of(summary, approver=approver)
    try:
        clients = deps.sessions.clients(
            summary.account_id,
            summary.region,
            actor=approver or AUTO_APPROVER,
            finding_id=record.finding_id,
            scope=for_move(request),  # the session may touch this object and its quarantine keys only
        )
    except AssumeRoleDeniedError as exc:
        logger.error("cannot assume the member remediation role", extra={"role_arn": exc.role_arn})
        return MoveOutcome(MoveStatus.FAILED, request.quarantine_bucket, "", detail=str(exc)), Failure.ROLE_DENIED
    try:
        outcome = deps.mover(clients).quarantine(request)
    except _aws_errors() as exc:
        detail = f"{type(exc).__name__}: {exc}"
        logger.warning("quarantine attempt failed; the job will be retried", extra={"error": detail[:500]})
        failed = _record_move(
            job,
            record,
            MoveOutcome(MoveStatus.FAILED, request.quarantine_bucket, "", detail=detail),
            deps,
            failure=Failure.RETRYING,
        )
        _update_slack_best_effort(failed, deps)
        raise RemediationError(f"quarantine of {record.finding_id} failed: {detail}") from exc
    logger.info(
        "move finished",
        extra={
            "status": outcome.status.value,
            "reason": outcome.reason.value if outcome.reason else None,
            "resumed": outcome.resumed,
            "verification": outcome.verification,
            "older_versions": outcome.older_versions,
            "source_identity": clients.source_identity,
        },
    )
    return outcome, Failure.RETRYING if outcome.retryable else Failure.PERMANENT


def _update_slack_best_effort(record: FindingRecord, deps: RemediationDependencies) -> None:
    """Tell the team a failed attempt will be retried; the job is going back to the queue anyway."""
    try:
        update_slack(record, deps)
    except SlackError:
        logger.warning("Slack update of the failed attempt failed too")


def _record_move(
    job: RemediationJob, record: FindingRecord, outcome: MoveOutcome, deps: RemediationDependencies, *, failure: Failure
) -> FindingRecord:
    """Record the move's outcome; ``failure`` (ignored unless the move FAILED) becomes the record's outcome. The
    write also notes the receipt of an auto job (:func:`job_receipt`)."""
    region = record.summary.region if record.summary else ""
    if outcome.status is MoveStatus.QUARANTINED:
        updates: RecordUpdates = {
            "outcome": "quarantined",
            "outcome_detail": outcome.detail or f"verified: {outcome.verification}",
            "error": None,
            "quarantine": outcome.location(region),
        }
        target = State.QUARANTINED
    elif outcome.status is MoveStatus.BLOCKED:
        assert outcome.reason is not None
        updates = {"outcome": outcome.reason.value, "outcome_detail": outcome.detail, "error": None}
        if outcome.copy_kept or outcome.facts is not None:
            # The copy's location when one is kept, and what the mover verified (the message is written from it).
            updates["quarantine"] = outcome.location(region)
        target = State.BLOCKED
    else:
        updates = {"outcome": failure.value, "outcome_detail": outcome.detail, "error": outcome.detail}
        target = State.FAILED
    updates.update(job_receipt(job, record))
    if target is State.FAILED and record.state is State.FAILED:
        # FAILED -> FAILED is no transition: keep the state, record the new error and audit the attempt.
        result = deps.store.append_audit(
            record.finding_id, actor=ACTOR, event="quarantine_failed", outcome=State.FAILED.value,
            detail=outcome.detail, updates=updates,
        )  # fmt: skip
        return result.record
    result = deps.store.transition(
        record.finding_id,
        # FAILED -> FAILED is not a transition (handled above), so a failure is only recorded from APPROVED.
        expected={State.APPROVED} if target is State.FAILED else QUARANTINE_READY,
        target=target,
        actor=ACTOR,
        event=f"quarantine_{target.value.lower()}",
        updates=updates,
        detail=outcome.detail or (outcome.verification or ""),
    )
    if not result.applied:
        # Another delivery of the same job recorded first (the mover is idempotent, so it saw the same).
        logger.warning("the record moved on before this outcome was recorded", extra={"state": result.record.state})
    return result.record


def job_receipt(job: RemediationJob, record: FindingRecord) -> RecordUpdates:
    """``job_queued_at`` (the job's request time) for the first outcome written for an auto job: the intake sends
    that job after its last write and marks nothing (§5, issue 18), so the remediator's outcome write, made anyway,
    is where the record learns when its job was queued. Nothing for a click's job (its approval's own transition
    and audit entry record the request) nor once noted (by this or, before issue 18, by the intake)."""
    if job.requested_by != AUTO_APPROVER or record.approver != AUTO_APPROVER or record.job_queued_at is not None:
        return {}
    return {"job_queued_at": job.requested_at.astimezone(UTC).isoformat()}


# --------------------------------------------------------------------------------------------------------
# Restore
# --------------------------------------------------------------------------------------------------------


def _restore(job: RemediationJob, record: FindingRecord, deps: RemediationDependencies) -> JobResult:
    if record.state is State.RESTORED:
        logger.info("restore already recorded: updating Slack only")
        _owed_wake_up(record, deps)
        update_slack(record, deps)
        return JobResult.ALREADY_DONE
    if record.state is not State.RESTORE_REQUESTED or record.summary is None:
        logger.warning(
            "restore job for a finding with no restore requested: acknowledged", extra={"state": record.state}
        )
        _owed_wake_up(record, deps)  # back in QUARANTINED: perhaps this job's refused restore, recorded before
        return JobResult.STALE
    summary = record.summary
    requester = _entered_by(record) or job.requested_by
    quarantine = dict(record.quarantine or {})
    original_tags, tags_unknown = _original_tags(quarantine)
    request = RestoreRequest.of(summary, quarantine_key_=quarantine.get("key") or None, original_tags=original_tags)
    try:
        clients = deps.sessions.clients(
            summary.account_id, summary.region, actor=requester, finding_id=record.finding_id,
            scope=for_restore(request),  # the quarantine copy and the original key only
        )  # fmt: skip
    except AssumeRoleDeniedError as exc:
        outcome = RestoreOutcome(RestoreStatus.FAILED, str(exc))
    else:
        try:
            outcome = deps.mover(clients).restore(request)
        except _aws_errors() as exc:
            detail = f"{type(exc).__name__}: {exc}"
            logger.warning("restore attempt failed; the job will be retried", extra={"error": detail[:500]})
            deps.store.append_audit(
                record.finding_id, actor=ACTOR, event="restore_attempt_failed", outcome="retrying", detail=detail,
                updates={"error": detail},
            )  # fmt: skip
            raise RemediationError(f"restore of {record.finding_id} failed: {detail}") from exc
    logger.info(
        "restore finished",
        extra={"status": outcome.status.value, "resumed": outcome.resumed, "verification": outcome.verification},
    )
    if outcome.status is RestoreStatus.RESTORED:
        location = {**quarantine, "restored_version_id": outcome.restored_version_id or ""}
        result = deps.store.transition(
            record.finding_id,
            expected={State.RESTORE_REQUESTED},
            target=State.RESTORED,
            actor=ACTOR,
            event="restored",
            updates={
                "outcome": "restored",
                "outcome_detail": (outcome.detail or f"verified: {outcome.verification}") + tags_unknown,
                "error": None,
                "quarantine": location,
            },
            detail=f"restored as version {outcome.restored_version_id or 'null'} ({outcome.verification})"
            + tags_unknown,
        )
        job_result = JobResult.RESTORED
    else:
        logger.warning("restore not done: the object stays quarantined", extra={"detail": outcome.detail})
        result = deps.store.transition(
            record.finding_id,
            expected={State.RESTORE_REQUESTED},
            target=State.QUARANTINED,
            actor=ACTOR,
            event="restore_refused" if outcome.status is RestoreStatus.REFUSED else "restore_failed",
            updates={"error": f"restore not done: {outcome.detail}"},
            detail=outcome.detail,
        )
        job_result = JobResult.RESTORE_REFUSED
    if not result.applied:
        logger.warning("the record moved on before the restore was recorded", extra={"state": result.record.state})
    update_slack(result.record, deps)
    return job_result


def _original_tags(quarantine: Mapping[str, str]) -> tuple[TagPairs, str]:
    """The tags the quarantine read from the source version, to put back; and, when they are not known (S3
    would not show them, or the record predates them, or cannot be read), what the restore's record says."""
    text = quarantine.get("original_tags")
    if text is None:
        logger.warning("the object's own tags are not known: restoring without them")
        return (), "; restored without tags: the object's own tags were not known when it was quarantined"
    try:
        return decode_original_tags(text), ""
    except ValueError as exc:
        # The record's own field, written by the mover: a restore of the bytes must not wait on it.
        logger.error("the record's original tags are unreadable: restoring without them", extra={"error": str(exc)})
        return (), f"; restored without tags: the record's copy of them is unreadable ({exc})"


# --------------------------------------------------------------------------------------------------------
# Slack
# --------------------------------------------------------------------------------------------------------


def _entered(record: FindingRecord) -> tuple[str, str] | None:
    """(actor, at) of the audit entry that moved the finding into its current state."""
    for entry in reversed(record.audit):
        if entry.outcome == record.state.value:
            return entry.actor, entry.at
    return None


def _entered_by(record: FindingRecord) -> str | None:
    entered = _entered(record)
    return entered[0] if entered else None


def _requested_by(record: FindingRecord) -> str | None:
    for entry in reversed(record.audit):
        if entry.outcome == State.RESTORE_REQUESTED.value:
            return entry.actor
    return None


def message_for(record: FindingRecord) -> SlackMessage | None:
    """The Slack message for the record's current state (None for states the remediator does not show)."""
    from macie_chatops.slack_messages import (
        BLOCKED_REASONS,
        already_handled,
        build_blocked_message,
        build_duplicate_message,
        build_failed_message,
        build_quarantined_message,
        build_restored_message,
    )

    if record.policy is not None:
        from macie_chatops.policy_messages import policy_message

        return policy_message(record)
    summary = record.summary
    if summary is None:
        return None
    entered = _entered(record)
    at = entered[1] if entered else record.updated_at
    approver = record.approver
    quarantine = record.quarantine or {}
    if record.state is State.QUARANTINED:
        older = quarantine.get("older_versions")
        return build_quarantined_message(
            summary,
            approver=approver,
            at=_quarantined_at(record) or at,
            quarantine_bucket=quarantine.get("bucket", ""),
            quarantine_key=quarantine.get("key", ""),
            older_versions=int(older) if older and older.isdigit() else None,
            notice=_restore_notice(record),
            facts=_move_facts(quarantine),
        )
    if record.state is State.BLOCKED:
        reason = record.outcome if record.outcome in BLOCKED_REASONS else "access_denied"
        return build_blocked_message(
            summary,
            approver=approver,
            at=at,
            reason_code=reason,
            detail=record.outcome_detail or "",
            quarantine_bucket=quarantine.get("bucket"),
            quarantine_key=quarantine.get("key"),
            facts=_move_facts(quarantine),
        )
    if record.state is State.FAILED:
        failure = Failure.of(record.outcome)
        return build_failed_message(
            summary,
            approver=approver,
            at=at,
            error=record.error or "unknown error",
            retryable=failure.retryable,
            fix=_fix(failure, summary.account_id),
        )
    if record.state is State.DUPLICATE and record.duplicate_of:
        return build_duplicate_message(
            summary,
            approver=approver,
            at=at,
            first_finding_id=record.duplicate_of,
            detail=record.outcome_detail or already_handled(record.duplicate_of, None),
        )
    if record.state is State.RESTORED:
        return build_restored_message(
            summary,
            by=_requested_by(record) or ACTOR,
            at=at,
            restored_version_id=quarantine.get("restored_version_id") or None,
        )
    return None


def _move_facts(quarantine: Mapping[str, str]) -> MoveFacts | None:
    """What the mover verified, as the record keeps it (None: a record from before it kept them, or unreadable:
    the message then claims only what it can without them)."""
    text = quarantine.get("facts")
    if text is None:
        return None
    try:
        return MoveFacts.decode(text)
    except ValueError as exc:
        logger.error("the record's move facts are unreadable: the message says less", extra={"error": str(exc)})
        return None


def _fix(failure: Failure, account_id: str) -> str | None:
    """What an operator must do before ``macie-chatops retry`` can succeed (None: what the error says)."""
    if failure is Failure.UNVERIFIED:
        return (
            "find out who wrote this approval (the finding's audit trail, the state table's CloudTrail data events); "
            "only if it is genuine, re-approve it: macie-chatops retry --reapprove (docs/architecture.md §23)"
        )
    if failure is Failure.ROLE_DENIED:
        return (
            f"deploy the {names.MEMBER_ROLES_STACKSET_NAME} StackSet to account {account_id} (its remediation role "
            "must trust the remediator role and allow sts:SetSourceIdentity)"
        )
    return None


RESTORE_NOT_DONE: Final = {"restore_refused": "Restore refused", "restore_failed": "Restore failed"}


def _restore_notice(record: FindingRecord) -> str | None:
    """Why a QUARANTINED finding is still quarantined when a restore brought it back here (else None)."""
    entered = next((e for e in reversed(record.audit) if e.outcome == State.QUARANTINED.value), None)
    if entered is None or entered.actor != ACTOR or entered.event not in RESTORE_NOT_DONE:
        return None
    return f"{RESTORE_NOT_DONE[entered.event]}: {entered.detail or 'no reason recorded'}"


def _quarantined_at(record: FindingRecord) -> str | None:
    """When the object was quarantined (a refused restore returns to QUARANTINED later; keep the move's time)."""
    for entry in record.audit:
        if entry.outcome == State.QUARANTINED.value and entry.actor == ACTOR and entry.event.startswith("quarantine"):
            return entry.at
    return None


def update_slack(record: FindingRecord, deps: RemediationDependencies) -> bool:
    """chat.update the finding's message to its current state; True when Slack took it.

    Raises SlackRetryableError, and token errors (the job returns to the queue; its redelivery only
    retries this, with the secret read again). Other Slack errors (a deleted message, a channel the bot
    left) are audited and logged, and the job is done: the outcome is recorded either way."""
    if not record.slack_channel or not record.slack_ts:
        logger.info("no Slack message recorded for this finding: nothing to update")
        return False
    if _shown_by_a_digest(record, deps):
        logger.info("the finding's message is its group's digest: the digest writer shows the outcome (§22)")
        return False
    message = message_for(record)
    if message is None:
        return False
    try:
        deps.slack.update(record.slack_channel, record.slack_ts, message)
    except SlackRetryableError as exc:
        deps.metrics.count("SlackFailures", kind="retryable", error_code=exc.error_code or "unknown")
        logger.warning("Slack update failed (transient): the job returns to the queue", extra={"error": str(exc)})
        raise
    except SlackError as exc:
        code = exc.error_code or type(exc).__name__
        # A new token fixes these: raised, so the handler re-reads the secret and the job is retried.
        if isinstance(exc, SlackConfigurationError) and exc.error_code in SLACK_TOKEN_ERRORS:
            deps.metrics.count("SlackFailures", kind="token", error_code=code)
            logger.error("Slack rejected the bot token: the job returns to the queue", extra={"error": str(exc)})
            raise
        deps.metrics.count("SlackFailures", kind="permanent", error_code=code)
        logger.error(
            "Slack update failed; the outcome is recorded, the message is stale", extra={"error": str(exc)[:500]}
        )
        _audit_quietly(record, deps, event="slack_update_failed", outcome="error", detail=f"{code}: {exc}")
        return False
    deps.metrics.count("SlackUpdates", state=record.state.value)
    return True


def _shown_by_a_digest(record: FindingRecord, deps: RemediationDependencies) -> bool:
    """The first member of a group of several: its message became the group's digest, which one finding's outcome
    must not replace (the transition already moved the group's counts)."""
    if record.group_id is None or deps.groups is None:
        return False
    view = deps.groups.view(record.group_id)
    return view is not None and view.member_count > 1


def _audit_quietly(record: FindingRecord, deps: RemediationDependencies, **entry: Any) -> None:
    try:
        deps.store.append_audit(record.finding_id, actor=ACTOR, **entry)
    except Exception:  # the Slack failure is what matters; a failed audit write is logged with it
        logger.exception("could not audit the Slack failure")
