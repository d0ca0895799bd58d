"""Finding intake: one Macie event from the intake queue -> recorded, decided, acted on, exactly once.

The order of the writes, the intake lease, the duplicate rules and the residual risks are
docs/architecture.md §5. What the code adds to it: a step that fails raises, so the SQS message returns to
the queue with every step before it recorded and none after it done; a Slack failure is audited on the
record (``slack_post_failed``, with Slack's error code) before it is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from aws_lambda_powertools import Logger

from macie_chatops import policy_intake
from macie_chatops.approvals import ApprovalSigner, auto_stamp
from macie_chatops.config import Action, Config
from macie_chatops.decision import Decision, decide
from macie_chatops.errors import (
    PACED,
    SlackConfigurationError,
    SlackError,
    SlackMessageNotFoundError,
    SlackRetryableError,
    SlackRetryLaterError,
)
from macie_chatops.exemptions import ExemptionSource, exempted, from_config, target_of
from macie_chatops.finding import ACCOUNT_ID, EVENT_ID, FINDING_ID, Finding, Rejection, parse_event
from macie_chatops.group_store import Grouping, Joined, NewMember, Refused
from macie_chatops.groups import GroupKey
from macie_chatops.job_queue import BatchEntrySent, JobBatch, JobOutbox
from macie_chatops.jobs import AUTO_APPROVER, RemediationJob
from macie_chatops.ports import Clock, Counter, JobQueue, SlackPoster, utcnow
from macie_chatops.slack_messages import (
    SlackMessage,
    already_handled,
    build_auto_message,
    build_duplicate_reply,
    build_notify_message,
    build_review_message,
)
from macie_chatops.states import State
from macie_chatops.store import (
    FindingRecord,
    FindingStore,
    NewRecord,
    ObjectClaim,
    PostedMessage,
    RecordUpdates,
    WriteResult,
)
from macie_chatops.summary import FindingSummary

logger = Logger(service="macie-chatops-finding", child=True)  # the finding handler's logger

ACTOR: Final = "finding-handler"
DECIDED: Final = "decided"  # the decided transition's audit event

_BUILDERS: Final[Mapping[Action, Callable[..., SlackMessage]]] = {
    Action.REVIEW: build_review_message,
    Action.AUTO: build_auto_message,
    Action.NOTIFY: build_notify_message,
}
# The decisions that can lead to a move take their object version's claim (one version, one remediation).
_CLAIMING: Final = frozenset({Action.REVIEW, Action.AUTO})
_TARGETS: Final[Mapping[Action, State]] = {
    Action.REVIEW: State.PENDING_APPROVAL,
    Action.AUTO: State.APPROVED,
    Action.NOTIFY: State.NOTIFIED,
    Action.IGNORE: State.IGNORED,
    Action.REJECT: State.REJECTED,
}


@dataclass(frozen=True)
class IntakeDependencies:
    config: Config
    store: FindingStore
    slack: SlackPoster
    queue: JobQueue
    metrics: Counter
    clock: Clock = utcnow
    exemptions: ExemptionSource | None = None  # those recorded from Slack; accounts.yaml's come with the config
    groups: Grouping | None = None  # finding floods (§22): None, or slack.group_window_seconds 0, groups nothing
    signer: ApprovalSigner | None = None  # signs the auto approvals (§23); an auto finding cannot complete without
    # The auto job, sent with the batch's others when its records are done (the finding handler's JobBatch); None:
    # sent at once, on ``queue``
    outbox: JobOutbox | None = None


class IntakeResult(StrEnum):
    DONE = "done"  # this delivery completed the finding's intake
    DUPLICATE = "duplicate"  # the finding's intake was already complete: nothing done
    IN_PROGRESS = "in_progress"  # another live delivery holds the intake lease: left to it
    NO_ID = "no_id"  # unidentifiable input: logged, counted, acknowledged


@dataclass(frozen=True)
class IntakeOutcome:
    result: IntakeResult
    finding_id: str | None = None
    state: State | None = None
    action: Action | None = None


def record_id_of(parsed: Finding | Rejection) -> str | None:
    """The state-table key for an event: its finding id, else ``event:<event id>``, else None."""
    if isinstance(parsed, Finding):
        return parsed.id
    if parsed.finding_id and FINDING_ID.fullmatch(parsed.finding_id):
        return parsed.finding_id
    if parsed.event_id and EVENT_ID.fullmatch(parsed.event_id):
        # Finding ids never contain ':', so an event-keyed rejection can never collide with a finding.
        return f"event:{parsed.event_id}"
    return None


def intake_complete(record: FindingRecord) -> bool:
    """True when a delivery finds nothing left for the finding handler to do for this record. Never for a record
    APPROVED by auto (:func:`auto_job_due`): nothing marks its job as sent, so a delivery sends it (again, §5)."""
    if record.state is State.RECEIVED:
        return False
    if record.state is State.DUPLICATE:
        return not _reply_due(record)
    if policy_intake.update_due(record):  # a policy finding reported again: its message shows an older count
        return False
    return not auto_job_due(record)


def handle_record(body: str, deps: IntakeDependencies, *, attempt: str, deadline: datetime) -> IntakeOutcome:
    """Handle one intake message; raises when the message must return to the queue. ``attempt`` is unique to this
    delivery attempt (the intake lease owner); ``deadline`` is when this Lambda invocation ends (the lease expiry)."""
    parsed = parse_event(body)
    decision = _exempt(parsed, decide(parsed, deps.config), deps)
    record_id = record_id_of(parsed)
    if record_id is None:
        # The payload is never logged: it is unidentifiable and may carry anything.
        logger.error(
            "rejected input without any id: acknowledged, not recorded",
            extra={"reason": decision.reason[:500], "body_chars": len(body)},
        )
        deps.metrics.count("RejectedWithoutId")
        return IntakeOutcome(IntakeResult.NO_ID, action=Action.REJECT)

    logger.thread_safe_append_keys(finding_id=record_id, correlation_id=record_id)
    event_id, account_id, summary = _essentials(parsed, decision)
    policy = policy_intake.summary_of(parsed, decision)
    new = deps.store.new_record(
        record_id,
        event_id=event_id,
        action=decision.action,
        reason=decision.reason,
        actor=ACTOR,
        account_id=account_id,
        team=decision.team or "",
        channel=decision.channel or "",
        summary=summary,
        intake_owner=attempt,
        intake_until=deadline,
        policy=policy,
        # The claim a move needs, taken with the record in one transaction when it is free (§5)
        claim=summary.object_version if decision.action in _CLAIMING and summary is not None else None,
    )
    created, approval = _create(new, decision, summary, deps, grouped=_grouping_on(deps) and policy is None)
    record = _owed_wake_up(created, deps)
    if not created.applied and policy is not None:  # the same policy finding again, perhaps with a higher count
        record = policy_intake.occurred_again(record, policy, deps)
    if created.applied:
        finding_type = parsed.type if isinstance(parsed, Finding) else "unparsed"
        deps.metrics.count("Findings", action=decision.action.value, finding_type=finding_type)
        logger.info(
            "finding received",
            extra={"action": decision.action.value, "reason": decision.reason, "team": decision.team},
        )
    elif intake_complete(record):
        logger.info("duplicate delivery: finding already handled", extra={"state": record.state.value})
        deps.metrics.count("Duplicates", kind="complete")
        return IntakeOutcome(IntakeResult.DUPLICATE, record_id, record.state, record.action)
    else:
        claim = deps.store.claim_intake(record_id, owner=attempt, until=deadline)
        if not claim.applied:
            logger.info(
                "duplicate delivery: another delivery is handling this finding",
                extra={"state": claim.record.state.value, "lease_until": claim.record.intake_until},
            )
            deps.metrics.count("Duplicates", kind="in_progress")
            return IntakeOutcome(IntakeResult.IN_PROGRESS, record_id, claim.record.state, claim.record.action)
        record = claim.record
        if intake_complete(record):  # the holder finished between our read and our claim
            _release(deps.store, record_id, attempt)
            logger.info("duplicate delivery: finding already handled", extra={"state": record.state.value})
            deps.metrics.count("Duplicates", kind="complete")
            return IntakeOutcome(IntakeResult.DUPLICATE, record_id, record.state, record.action)
        logger.info(
            "resuming an unfinished intake",
            extra={"state": record.state.value, "slack_ts": record.slack_ts, "error": record.error},
        )

    try:
        record = _complete(record, deps, attempt, approval=_signed_for(record, approval, summary))
    except BaseException:
        _release(deps.store, record_id, attempt)
        raise
    if record.intake_owner == attempt:  # the last write could not give the lease back with it
        _release(deps.store, record_id, attempt)
    logger.info("intake complete", extra={"state": record.state.value, "action": _action_name(record)})
    return IntakeOutcome(IntakeResult.DONE, record_id, record.state, record.action)


def _owed_wake_up(created: WriteResult, deps: IntakeDependencies) -> FindingRecord:
    """The created record, or the one an earlier delivery created. That one may be in a group whose digest writer
    it never woke: its join's transaction committed, then the wake-up's send failed and the message came back
    (§22). Nobody else may mark the group after a flood ends, so its stale mark is re-armed here (a read, and a
    write only when the mark is older than STALE_DIRTY: the queue's visibility timeout is longer than that)."""
    record = created.record
    if not created.applied and record.group_id is not None and deps.groups is not None:
        deps.groups.wake_if_lost(record.group_id)
    return record


def _exempt(parsed: Finding | Rejection, decision: Decision, deps: IntakeDependencies) -> Decision:
    """The decision, or IGNORED when an active exemption covers the finding (docs/architecture.md §16): checked
    after the pure ``decide``, before anything is recorded or posted; counted as ``Exempted``."""
    if not isinstance(parsed, Finding) or not decision.posts_to_slack:
        return decision
    target = target_of(parsed)
    if target is None:
        return decision
    recorded = deps.exemptions.for_account(target.account_id) if deps.exemptions is not None else ()
    result = exempted(decision, target, (*from_config(deps.config), *recorded), deps.clock())
    if result is not decision:
        deps.metrics.count("Exempted", action=decision.action.value, finding_type=target.finding_type)
        logger.info("finding covered by an exemption: ignored", extra={"reason": result.reason})
    return result


def _essentials(parsed: Finding | Rejection, decision: Decision) -> tuple[str, str, FindingSummary | None]:
    """Event id, account id and summary, as far as the input has them (a rejection may have none)."""
    if isinstance(parsed, Finding):
        summary = FindingSummary.of(parsed, decision) if parsed.s3_object is not None else None
        return parsed.event_id[:128], parsed.account_id, summary
    account_id = parsed.account_id if parsed.account_id and ACCOUNT_ID.fullmatch(parsed.account_id) else ""
    return (parsed.event_id or "")[:128], account_id, None


def _complete(
    record: FindingRecord, deps: IntakeDependencies, attempt: str, *, approval: dict[str, str] | None = None
) -> FindingRecord:
    """Steps 3-5; the last write also gives the lease back when ``attempt`` still holds it. ``approval``: the auto
    approval of this record, signed already (before its creation: ``_create``)."""
    claimed_at, summary = None, record.summary
    # A record created with its claim holds it (only the claim's TTL releases it): nothing to claim again.
    unclaimed = record.action in _CLAIMING and summary is not None and record.object_claimed_at is None
    if record.state is State.RECEIVED and unclaimed and summary is not None:
        claim = deps.store.claim_object(summary.object_version, finding_id=record.finding_id)
        if claim.finding_id != record.finding_id:
            record = _record_duplicate(record, claim, deps, attempt)
        else:
            claimed_at = claim.claimed_at
    if record.state is State.RECEIVED:
        action = record.action or Action.REJECT
        posted = None
        joined = _join_group(record, action, deps) if action in _BUILDERS else None
        if action in _BUILDERS and record.slack_ts is None and (joined is None or joined.first):
            # A later member has no message
            posted = PostedMessage(record.channel, _post(record, action, deps), ACTOR)
        if action is Action.AUTO and approval is None:
            approval = auto_stamp(deps.signer, record, deps.clock())  # signed: §23
        decided = _decided(record, action, claimed_at=claimed_at, approval=approval, shown=posted is not None)
        result = deps.store.transition(
            record.finding_id,
            expected={State.RECEIVED},
            target=decided.target,
            actor=decided.actor,
            event=DECIDED,
            updates=decided.updates,
            detail=decided.detail,
            slack_message=posted,
            # auto too: the job is sent after this write, and a delivery that finds the record APPROVED without
            # a job's receipt sends it again (intake_complete), so the lease need not cover the send (§5)
            release_intake_of=attempt,
        )
        if joined is not None and joined.first and deps.groups is not None and result.record.slack_ts:
            # The first member's message is the group's digest once a second member joins.
            channel = result.record.slack_channel or record.channel
            deps.groups.store.record_digest(joined.group_id, channel=channel, ts=result.record.slack_ts)
        if posted is not None and result.record.slack_ts != posted.ts:
            logger.error(
                "a different Slack message was already recorded for this finding; keeping the first",
                extra={"kept_ts": result.record.slack_ts, "extra_ts": posted.ts, "channel": posted.channel},
            )
        if not result.applied:
            # Only the lease holder moves a RECEIVED record, so this means the lease was lost (a
            # deadline passed): say so, and carry on from whatever state the record is in now.
            logger.warning("the record moved on under this attempt", extra={"state": result.record.state.value})
        record = result.record
    if record.state is State.DUPLICATE:
        return _reply_to_first(record, deps, attempt) if _reply_due(record) else record
    if auto_job_due(record):
        record = _queue_auto_job(record, deps)
    if policy_intake.update_due(record):
        record = policy_intake.show_count(record, deps, attempt)
    return record


def _create(
    new: NewRecord, decision: Decision, summary: FindingSummary | None, deps: IntakeDependencies, *, grouped: bool
) -> tuple[WriteResult, dict[str, str] | None]:
    """The record's creation, and the auto approval when it was signed for it; a grouped finding's joins its group in
    the same transaction (§22, issue 18): the record is born with its group and seq. Refused on the record (a
    duplicate delivery): the record as it is, which the delivery resumes (joining in ``_complete`` if it has no group
    yet). Refused on the claim (another finding holds it): the record alone, as an ungrouped finding's creation falls
    back; ``_complete`` records the duplicate, which joins nothing.

    A grouped auto finding's approval is signed before the join, and a member that joins at seq > 1 is born APPROVED
    with it (``FindingStore.decided_at_creation``: the record the decided transition would leave): it posts nothing,
    so nothing has to happen between its creation and its decision (§5). The opener (seq 1) is created RECEIVED and
    posted as before, its transition carrying the same approval. The seq is known per attempt of the join only."""
    action = decision.action
    key = _group_key(action, decision.channel or "", summary, grouped=grouped)
    if key is None or deps.groups is None or summary is None:
        return deps.store.create(new), None
    approval, born = None, None
    if action is Action.AUTO:
        received = deps.store.record_of(new)
        approval = auto_stamp(deps.signer, received, deps.clock())  # signed: §23
        decided = _decided(received, action, approval=approval)
        born = deps.store.decided_at_creation(
            new,
            target=decided.target,
            actor=decided.actor,
            event=DECIDED,
            updates=decided.updates,
            detail=decided.detail,
        )

    def creation(group_id: str, seq: int) -> list[Any]:
        return deps.store.creation_items(new if born is None or seq == 1 else born, group=(group_id, seq))

    slack = deps.config.slack
    joined = deps.groups.join_with(
        key,
        NewMember(new.finding_id, summary.key, summary.severity, _TARGETS[action]),
        creation,
        account_name=summary.account_name,
        window=timedelta(seconds=slack.group_window_seconds),
        max_age=timedelta(seconds=slack.group_max_age_seconds),
    )
    if isinstance(joined, Refused):
        refused = deps.store.creation_refused(new, joined.reasons)
        return (refused if refused is not None else deps.store.create(new, claiming=False)), approval
    _joined(joined, action, deps)
    written = new if born is None or joined.first else born
    return WriteResult(True, deps.store.created(written, group=(joined.group_id, joined.seq))), approval


@dataclass(frozen=True)
class _Decided:
    """The decided transition (RECEIVED -> the action's target, event :data:`DECIDED`) but its message and lease:
    what ``FindingStore.transition`` writes after the post, and what a record born decided is created with."""

    target: State
    actor: str
    updates: RecordUpdates
    detail: str


def _decided(
    record: FindingRecord,
    action: Action,
    *,
    claimed_at: str | None = None,
    approval: dict[str, str] | None = None,
    shown: bool = False,
) -> _Decided:
    """The record's decided transition. ``claimed_at``: the claim taken after the creation (holding it is recorded
    in this write, so the remediator need not claim again); ``approval``: an auto decision's, signed (§23);
    ``shown``: the transition records the message just posted."""
    updates: RecordUpdates = {} if claimed_at is None else {"object_claimed_at": claimed_at}
    if action in _BUILDERS:
        if shown and record.policy is not None:
            updates["policy_shown_count"] = record.policy.count
        updates["error"] = None  # a Slack error from an earlier attempt is resolved now
    if action is Action.AUTO:
        if approval is None:
            raise ValueError(f"finding {record.finding_id}: an auto decision needs its signed approval")
        updates["approver"] = AUTO_APPROVER
        updates["approval"] = approval
    actor = AUTO_APPROVER if action is Action.AUTO else ACTOR
    return _Decided(_TARGETS[action], actor, updates, record.reason)


def _signed_for(
    record: FindingRecord, approval: dict[str, str] | None, summary: FindingSummary | None
) -> dict[str, str] | None:
    """The approval signed before the creation, over ``summary``'s object version, when it approves ``record``'s (the
    record this delivery built, or the same finding's from an earlier attempt): its decided transition carries it."""
    same = (
        record.summary is not None and summary is not None and record.summary.object_version == summary.object_version
    )
    return approval if same else None


def _join_group(record: FindingRecord, action: Action, deps: IntakeDependencies) -> Joined | None:
    """The finding's group (docs/architecture.md §22), joined now unless it already is (as a rule with its record's
    creation: ``_create``; here a record created alone: its claim was taken on its own, or by a release before
    issue 18's fold); None when it is not grouped (``_group_key``)."""
    summary = record.summary
    key = _group_key(action, record.channel, summary, grouped=_grouping_on(deps) and record.policy is None)
    if key is None or deps.groups is None or summary is None:
        return None
    if record.group_id is not None and record.group_seq is not None:  # joined by an earlier attempt
        return Joined(record.group_id, record.group_seq)
    joined = deps.groups.join(
        key,
        NewMember(record.finding_id, summary.key, summary.severity, _TARGETS[action]),
        account_name=summary.account_name,
        window=timedelta(seconds=deps.config.slack.group_window_seconds),
        max_age=timedelta(seconds=deps.config.slack.group_max_age_seconds),
    )
    _joined(joined, action, deps)
    return joined


def _grouping_on(deps: IntakeDependencies) -> bool:
    return deps.groups is not None and deps.config.slack.group_window_seconds > 0


def _group_key(action: Action, channel: str, summary: FindingSummary | None, *, grouped: bool) -> GroupKey | None:
    """The group a finding with these fields joins; None when it joins none (``grouped`` False: grouping off, or a
    policy finding: one per bucket, no flood; a decision that posts nothing; no object or no channel)."""
    if not grouped or action not in _BUILDERS or summary is None or not channel:
        return None
    return GroupKey(channel, summary.account_id, summary.bucket, summary.finding_type, action)


def _joined(joined: Joined, action: Action, deps: IntakeDependencies) -> None:
    logger.thread_safe_append_keys(group_id=joined.group_id, group_seq=joined.seq)
    deps.metrics.count("GroupedFindings", action=action.value, first="yes" if joined.first else "no")


def auto_job_due(record: FindingRecord) -> bool:
    """APPROVED by auto, its job perhaps not sent: the intake's last write comes before the send, and nothing marks
    the send (§5). Only records of the release before issue 18's fourth round carry the intake's ``job_queued_at``:
    their job was sent. The remediator moving the record on ends it."""
    return (
        record.state is State.APPROVED
        and record.action is Action.AUTO
        and record.approver == AUTO_APPROVER
        and record.job_queued_at is None
    )


def _reply_due(record: FindingRecord) -> bool:
    """A DUPLICATE owes the first finding's message one thread reply, not yet posted."""
    return record.duplicate_thread is not None and record.duplicate_reply_ts is None


def _record_duplicate(
    record: FindingRecord, claim: ObjectClaim, deps: IntakeDependencies, attempt: str
) -> FindingRecord:
    """RECEIVED -> DUPLICATE of the claim's holder; keeps the lease when a thread reply is due (the next step)."""
    first = deps.store.get(claim.finding_id)
    detail = already_handled(
        claim.finding_id, first.state.value if first else None, first.quarantine if first else None
    )
    updates: RecordUpdates = {"duplicate_of": claim.finding_id, "outcome": "duplicate", "outcome_detail": detail}
    if first is not None and first.slack_channel and first.slack_ts:
        updates["duplicate_thread"] = {"channel": first.slack_channel, "ts": first.slack_ts}
    result = deps.store.transition(
        record.finding_id,
        expected={State.RECEIVED},
        target=State.DUPLICATE,
        actor=ACTOR,
        event="duplicate",
        updates=updates,
        detail=f"the same object version as finding {claim.finding_id}: {detail}",
        release_intake_of=None if "duplicate_thread" in updates else attempt,
    )
    if not result.applied:
        logger.warning("the record moved on under this attempt", extra={"state": result.record.state.value})
        return result.record
    deps.metrics.count("DuplicateFindings", action=_action_name(record))
    logger.info(
        "the object version is claimed by another finding: recorded as a duplicate",
        extra={
            "duplicate_of": claim.finding_id,
            "first_state": first.state.value if first else None,
            "thread_reply_due": "duplicate_thread" in updates,
        },
    )
    return result.record


def _reply_to_first(record: FindingRecord, deps: IntakeDependencies, attempt: str) -> FindingRecord:
    """The one thread reply under the first finding's message; its ts recorded with the lease's release."""
    thread, summary = record.duplicate_thread, record.summary
    if thread is None or summary is None or record.duplicate_of is None:
        raise ValueError(f"finding {record.finding_id}: a duplicate's reply needs its thread, summary and first")
    message = build_duplicate_reply(summary, first_finding_id=record.duplicate_of)
    try:
        ts = deps.slack.reply(thread["channel"], thread["ts"], message)
    except SlackMessageNotFoundError as exc:
        # The first finding's message is gone (deleted in Slack): no thread to reply in, and never will be.
        logger.warning("the first finding's message is gone: no thread reply", extra={"error_code": exc.error_code})
        deps.metrics.count("SlackFailures", kind="thread_gone", error_code=exc.error_code or "unknown")
        return deps.store.append_audit(
            record.finding_id,
            actor=ACTOR,
            event="duplicate_reply_failed",
            outcome="thread_gone",
            detail=f"{exc.error_code}: {exc}",
            updates={"duplicate_thread": None},
            release_intake_of=attempt,
        ).record
    except SlackError as exc:
        _slack_failed(record, exc, deps)
        raise
    deps.metrics.count("SlackPosts", action="duplicate_reply")
    return deps.store.append_audit(
        record.finding_id,
        actor=ACTOR,
        event="duplicate_reply_posted",
        outcome="posted",
        detail=f"{thread['channel']} {thread['ts']} -> {ts}",
        updates={"duplicate_reply_ts": ts, "error": None},
        release_intake_of=attempt,
    ).record


def _post(record: FindingRecord, action: Action, deps: IntakeDependencies) -> str:
    """Post the finding's message; its ts (recorded by the caller, with the transition)."""
    if record.policy is not None:
        message = policy_intake.message_to_post(record, action, _TARGETS[action])
    elif record.summary is None or not record.channel:
        # decide() only chooses review/auto/notify for a finding with an object (or a bucket) and a team.
        raise ValueError(f"finding {record.finding_id}: {action} needs a summary and a channel")
    else:
        message = _BUILDERS[action](record.summary, reason=record.reason)
    try:
        ts = deps.slack.post(record.channel, message)
    except SlackError as exc:
        _slack_failed(record, exc, deps)
        raise
    deps.metrics.count("SlackPosts", action=action.value)
    return ts


def _slack_failed(record: FindingRecord, exc: SlackError, deps: IntakeDependencies) -> None:
    if isinstance(exc, SlackRetryLaterError) and exc.error_code == PACED:
        # Our own pace held the post back, nothing failed: the handler re-sends the record with the delay
        # (docs/architecture.md §22, Pacing); in a flood an audit entry per deferral would only fill the record.
        deps.metrics.count("SlackDeferred", method=exc.method or "unknown")
        logger.info(
            "Slack cannot take the post yet: the record is re-sent with a delay",
            extra={"channel": record.channel, "retry_after_s": exc.retry_after_s, "error_code": exc.error_code},
        )
        return
    if isinstance(exc, SlackConfigurationError):
        kind = "configuration"
    elif isinstance(exc, SlackRetryableError):
        kind = "retryable"
    else:
        kind = "error"
    code = exc.error_code or type(exc).__name__
    deps.metrics.count("SlackFailures", kind=kind, error_code=code)
    details = {"channel": record.channel, "team": record.team, "error_code": code, "slack_error": str(exc)}
    if kind == "retryable":
        logger.warning("Slack post failed (transient): the message returns to the queue", extra=details)
    else:
        logger.error(
            f"Slack post failed ({kind}): an operator must fix it (channel id in accounts.yaml, the bot's "
            "channel membership, or the bot token); the message is retried and then kept in the intake DLQ, "
            "and redriving it after the fix posts it",
            extra=details,
        )
    try:
        deps.store.append_audit(
            record.finding_id,
            actor=ACTOR,
            event="slack_post_failed",
            outcome=kind,
            detail=f"{code}: {exc}",
            updates={"error": f"slack {kind}: {code}"},
        )
    except Exception:  # the Slack error is the one to report; the audit write failing too is logged
        logger.exception("could not audit the Slack failure")


def _queue_auto_job(record: FindingRecord, deps: IntakeDependencies) -> FindingRecord:
    """Send the APPROVED auto finding's job, after the transition that approved it (and gave the lease back).

    No write follows the send (§5, issue 18): no state change to undo (a refused send raises, and the redelivery
    sends the job: ``intake_complete``), and no mark that it was sent. So every delivery that finds the record
    still APPROVED by auto sends the job again (a crash after the transition, a duplicate delivery): the remediator
    moves the version once and records one outcome (exclusive copy, conditional transitions), and notes the job's
    request time (``job_queued_at``) in the outcome write it makes anyway.

    With an outbox (the finding handler's), the job is sent with the batch's others once its records are done
    (:func:`send_auto_jobs`): nothing is written after the send either way, and a job SQS does not take returns its
    record to the queue, whose redelivery sends it."""
    job = RemediationJob(
        kind="quarantine" if record.policy is None else "block_public_access",
        finding_id=record.finding_id,
        requested_by=AUTO_APPROVER,
        requested_at=deps.clock(),
    )
    if deps.outbox is not None:
        deps.outbox.add(job)
        logger.info("auto job due: sent with the batch's", extra={"job_kind": job.kind})
        return record
    message_id = deps.queue.send(job)
    deps.metrics.count("JobsQueued", kind=job.kind)
    logger.info("auto job queued", extra={"job_kind": job.kind, "message_id": message_id})
    return record


def send_auto_jobs(batch: JobBatch, metrics: Counter) -> list[str]:
    """Send the batch's auto jobs (``JobBatch.flush``: SendMessageBatch, ten a call); the owners (intake message
    ids) of those SQS did not take, an entry refused or its whole call failed, each once: those records return to
    the intake queue, and their redelivery finds them APPROVED by auto and sends the job (``auto_job_due``)."""
    failed: list[str] = []
    for owner, job, sent in batch.flush():
        fields = {"finding_id": job.finding_id, "job_kind": job.kind, "message_id": owner}
        if isinstance(sent, BatchEntrySent) and sent.message_id is not None:
            metrics.count("JobsQueued", kind=job.kind)
            logger.info("auto job queued", extra={**fields, "job_message_id": sent.message_id})
            continue
        error = sent.refused if isinstance(sent, BatchEntrySent) else f"{type(sent).__name__}: {sent}"
        metrics.count("JobsNotQueued", kind=job.kind)
        logger.error(
            "the queue did not take the auto job: the record returns to the queue", extra={**fields, "error": error}
        )
        if owner not in failed:
            failed.append(owner)
    return failed


def _release(store: FindingStore, record_id: str, attempt: str) -> None:
    try:
        store.release_intake(record_id, owner=attempt)
    except Exception:  # the lease expires at the deadline anyway
        logger.exception("could not release the intake lease")


def _action_name(record: FindingRecord) -> str:
    return record.action.value if record.action else ""
