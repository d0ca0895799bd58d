"""The sweeper: an approved quarantine is never silently forgotten (docs/architecture.md §8).

:func:`plan_sweep` is the pure part: what to do with one record now (a :class:`SweepStep`). The re-queues of
an approval are the ``requeued_by_sweeper`` entries of its audit trail since it entered APPROVED
(``record.approved_at``) or since an operator's ``requeued_by_operator``, whichever is later; each re-queue
restarts the wait, so every attempt gets the whole ``stale_after`` before the next. :func:`sweep` acts on
every candidate of the approved index; :func:`requeue` is the operator's re-queue of one finding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.errors import MacieChatOpsError
from macie_chatops.groups import GroupViews
from macie_chatops.job_queue import AUTO_APPROVER
from macie_chatops.job_request import JobRequest, SentNote, request_job
from macie_chatops.ports import Clock, JobQueue, SlackUpdater, utcnow
from macie_chatops.states import State

if TYPE_CHECKING:
    from macie_chatops.approvals import ApprovalSigner, ApprovalVerifier
    from macie_chatops.jobs import RemediationJob
    from macie_chatops.store import AuditEntry, FindingRecord, FindingStore, RecordUpdates

# The sweeper handler's logger (same service: Powertools shares one configured logger per service).
logger = Logger(service="macie-chatops-sweeper")

ACTOR: Final = "sweeper"
EVENT_REQUEUED: Final = "requeued_by_sweeper"
EVENT_GAVE_UP: Final = "sweeper_gave_up"
EVENT_OPERATOR_REQUEUED: Final = "requeued_by_operator"
EVENT_OPERATOR_REAPPROVED: Final = "reapproved_by_operator"

# Longer than one remediator attempt can run (its Lambda timeout is 15 minutes; the stack sets this from it):
# an approval older than this with no outcome has no attempt running for it any more.
DEFAULT_STALE_AFTER: Final = timedelta(minutes=30)
DEFAULT_MAX_REQUEUES: Final = 3


def _parse(at: str) -> datetime:
    moment = datetime.fromisoformat(at)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SweepPolicy:
    """How long an approval may wait for its outcome, and how many times its job is re-queued."""

    stale_after: timedelta = DEFAULT_STALE_AFTER
    max_requeues: int = DEFAULT_MAX_REQUEUES

    def __post_init__(self) -> None:
        if self.stale_after <= timedelta(0):
            raise ValueError(f"stale_after must be positive, got {self.stale_after}")
        if self.max_requeues < 0:
            raise ValueError(f"max_requeues must be 0 or more, got {self.max_requeues}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SweepPolicy:
        """The policy the environment names (``SWEEP_STALE_AFTER_SECONDS``, ``SWEEP_MAX_REQUEUES``), else the
        defaults; a value that is not a whole number raises ValueError naming the variable."""

        def number(name: str) -> int | None:
            text = env.get(name, "").strip()
            if not text:
                return None
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {text!r}") from None

        stale = number(names.ENV_SWEEP_STALE_AFTER_S)
        requeues = number(names.ENV_SWEEP_MAX_REQUEUES)
        return cls(
            stale_after=DEFAULT_STALE_AFTER if stale is None else timedelta(seconds=stale),
            max_requeues=DEFAULT_MAX_REQUEUES if requeues is None else requeues,
        )


class Verdict(StrEnum):
    LEAVE = "leave"  # not approved (any more), or its wait is not over
    REQUEUE = "requeue"  # stale: queue its quarantine job again
    GIVE_UP = "give_up"  # stale after the last allowed re-queue: stop, record it, tell Slack and operators
    STILL_STUCK = "still_stuck"  # given up on an earlier sweep and still approved: report it again
    DEFERRED = "deferred"  # would be re-queued or given up on, but jobs wait in the remediation queue
    UNVERIFIED = "unverified"  # due a re-queue, but its approval did not verify (§23): FAILED, nothing sent


@dataclass(frozen=True)
class SweepStep:
    verdict: Verdict
    reason: str
    requeues: int = 0  # the sweeper's re-queues of this approval so far
    waiting_since: str | None = None  # the approval (or the operator's re-queue) the count starts from


def _window_start(record: FindingRecord) -> str:
    """When the current approval began: the last entry into APPROVED, or an operator's re-queue since."""
    start = record.approved_at
    if start is None:  # a record approved before the index existed: its audit trail says when
        entered = [e.at for e in record.audit if e.outcome == State.APPROVED.value]
        start = entered[-1] if entered else record.updated_at
    operator = [e.at for e in record.audit if e.event == EVENT_OPERATOR_REQUEUED and e.at >= start]
    return operator[-1] if operator else start


def sweeper_entries(record: FindingRecord) -> tuple[list[AuditEntry], list[AuditEntry]]:
    """(re-queues, give-ups) the sweeper recorded for the record's current approval."""
    start = _window_start(record)
    mine = [e for e in record.audit if e.at >= start]
    return [e for e in mine if e.event == EVENT_REQUEUED], [e for e in mine if e.event == EVENT_GAVE_UP]


def plan_sweep(record: FindingRecord, *, now: datetime, policy: SweepPolicy) -> SweepStep:
    """What the sweeper does with ``record`` at ``now`` (pure)."""
    if record.state is not State.APPROVED:
        return SweepStep(Verdict.LEAVE, f"{record.state.value}, not approved")
    start = _window_start(record)
    requeues, gave_up = sweeper_entries(record)
    if gave_up:
        return SweepStep(
            Verdict.STILL_STUCK, f"given up after {len(requeues)} re-queue(s)", len(requeues), waiting_since=start
        )
    last = max([start, *(e.at for e in requeues)])
    waited = now - _parse(last)
    if waited < policy.stale_after:
        return SweepStep(
            Verdict.LEAVE,
            f"waiting {int(waited.total_seconds() // 60)} min of {int(policy.stale_after.total_seconds() // 60)}",
            len(requeues),
            waiting_since=start,
        )
    if len(requeues) >= policy.max_requeues:
        return SweepStep(
            Verdict.GIVE_UP,
            f"no outcome after {len(requeues)} re-queue(s) since {start}",
            len(requeues),
            waiting_since=start,
        )
    return SweepStep(
        Verdict.REQUEUE,
        f"no outcome since {last}: re-queue {len(requeues) + 1} of {policy.max_requeues}",
        len(requeues),
        waiting_since=start,
    )


# --------------------------------------------------------------------------------------------------------
# Orchestration (adapters passed in)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepDependencies:
    store: FindingStore
    queue: JobQueue
    slack: SlackUpdater | None  # None: do not touch Slack (the CLI without the Slack secret)
    policy: SweepPolicy = field(default_factory=SweepPolicy)
    clock: Clock = field(default=utcnow)
    # The scheduled sweeper verifies an approval before re-queueing it (§23); the operator's `sweep` (no
    # kms:VerifyMac) re-queues without, and the remediator still verifies. ``signer``: `sweep --requeue --reapprove`.
    verifier: ApprovalVerifier | None = None
    signer: ApprovalSigner | None = None
    groups: GroupViews | None = None  # a grouped finding's message may be its group's digest (§22)


@dataclass(frozen=True)
class SweepOutcome:
    finding_id: str
    verdict: Verdict
    reason: str
    requeues: int
    waiting_since: str | None = None
    done: str = ""  # what was done ("" in a dry run, or when nothing was to be done)


@dataclass(frozen=True)
class SweepReport:
    candidates: int
    outcomes: tuple[SweepOutcome, ...]
    errors: tuple[tuple[str, str], ...] = ()  # (finding id, error) of every record whose step failed
    dry_run: bool = False
    backlog: int = 0  # jobs waiting in the remediation queue when the sweep began (read only with candidates)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for outcome in self.outcomes if outcome.verdict is verdict)

    @property
    def stuck(self) -> int:
        """Findings the sweeper has given up on and that are still approved (newly or on an earlier sweep)."""
        return self.count(Verdict.GIVE_UP) + self.count(Verdict.STILL_STUCK)


class SweepError(MacieChatOpsError):
    """A sweep step failed for one or more findings (``report.errors``); the others were swept."""

    def __init__(self, report: SweepReport) -> None:
        self.report = report
        listed = "; ".join(f"{finding_id}: {error}" for finding_id, error in report.errors[:5])
        more = f" (and {len(report.errors) - 5} more)" if len(report.errors) > 5 else ""
        super().__init__(f"the sweep failed for {len(report.errors)} finding(s): {listed}{more}")


class SweepStepError(MacieChatOpsError):
    """One finding's sweep step could not be completed (the message says what was and was not done)."""


def sweep(deps: SweepDependencies, *, dry_run: bool = False) -> SweepReport:
    """One sweep over every finding approved longer than the policy's ``stale_after``, each re-read consistently
    and acted on; while jobs wait in the remediation queue, none is re-queued or given up on (``deferred``).

    Raises what the index query raises; after trying every finding, :class:`SweepError` (carrying the report)
    when any finding's step failed."""
    now = deps.clock()
    candidates = deps.store.approved_before(now - deps.policy.stale_after)
    backlog = deps.queue.waiting() if candidates else 0
    if backlog:
        logger.warning(
            "jobs wait in the remediation queue: stale approvals are neither re-queued nor given up on this sweep",
            extra={"backlog": backlog, "stale_approvals": len(candidates)},
        )
    outcomes: list[SweepOutcome] = []
    errors: list[tuple[str, str]] = []
    for candidate in candidates:
        logger.thread_safe_append_keys(finding_id=candidate.finding_id, correlation_id=candidate.finding_id)
        try:
            outcomes.append(_sweep_one(candidate.finding_id, now, deps, dry_run=dry_run, backlog=backlog))
        except Exception as exc:  # reported below and raised after the other findings are swept
            logger.exception("sweep step failed", extra={"error_type": type(exc).__name__})
            errors.append((candidate.finding_id, f"{type(exc).__name__}: {str(exc)[:500]}"))
        finally:
            logger.thread_safe_remove_keys(["finding_id", "correlation_id"])
    report = SweepReport(len(candidates), tuple(outcomes), tuple(errors), dry_run, backlog)
    if errors:
        raise SweepError(report)
    return report


def _sweep_one(finding_id: str, now: datetime, deps: SweepDependencies, *, dry_run: bool, backlog: int) -> SweepOutcome:
    # The index is eventually consistent and may be a moment behind: act on the record as it is now.
    record = deps.store.get(finding_id)
    if record is None:
        return SweepOutcome(finding_id, Verdict.LEAVE, "no record", 0)
    step = plan_sweep(record, now=now, policy=deps.policy)
    if backlog and step.verdict in (Verdict.REQUEUE, Verdict.GIVE_UP):
        # Its job may be among those waiting: a duplicate would only lengthen the queue, "stuck" would be false.
        step = SweepStep(
            Verdict.DEFERRED,
            f"{step.reason}; deferred: {backlog} job(s) wait in the remediation queue",
            step.requeues,
            step.waiting_since,
        )
    outcome = SweepOutcome(finding_id, step.verdict, step.reason, step.requeues, step.waiting_since)
    if dry_run or step.verdict in (Verdict.LEAVE, Verdict.DEFERRED):
        return outcome
    if step.verdict is Verdict.REQUEUE:
        return _requeue(record, step, outcome, now, deps)
    if step.verdict is Verdict.GIVE_UP:
        return _give_up(record, step, outcome, deps)
    logger.error(
        "approved quarantine still stuck: no outcome and no more automatic re-queues",
        extra={"requeues": step.requeues, "approved_at": step.waiting_since, "approver": record.approver},
    )
    return outcome


def _job(record: FindingRecord, now: datetime) -> RemediationJob:
    # The record's approver, so the move's SourceIdentity stays who approved it; the audit names the sweeper.
    from macie_chatops.jobs import RemediationJob  # pydantic: loaded when a job is sent, not on a quiet sweep (§6)

    return RemediationJob(
        kind="quarantine", finding_id=record.finding_id, requested_by=record.approver or AUTO_APPROVER, requested_at=now
    )


def _requeue(
    record: FindingRecord, step: SweepStep, outcome: SweepOutcome, now: datetime, deps: SweepDependencies
) -> SweepOutcome:
    refused = _refuse_unverified(record, outcome, deps)
    if refused is not None:
        return refused
    number = step.requeues + 1
    requested = _send_counted(
        record,
        now,
        deps,
        actor=ACTOR,
        event=EVENT_REQUEUED,
        detail=lambda message_id: (
            f"re-queue {number} of {deps.policy.max_requeues}: {step.reason} (message {message_id})"
        ),
    )
    if not requested.noted:
        state = requested.record.state.value
        logger.info("the finding moved on while its job was re-queued", extra={"state": state})
        return replace(outcome, done=f"queued message {requested.message_id}; the finding is now {state}")
    logger.warning(
        "approved quarantine had no outcome: its job is re-queued",
        extra={"requeue": number, "max_requeues": deps.policy.max_requeues, "approved_at": step.waiting_since},
    )
    return replace(outcome, done=f"queued message {requested.message_id}")


def _refuse_unverified(record: FindingRecord, outcome: SweepOutcome, deps: SweepDependencies) -> SweepOutcome | None:
    """An approval due a re-queue whose MAC does not verify is not re-queued: it is recorded FAILED (approval not
    verified), so it leaves the approved index, and reported (``UnverifiedApprovals``). None: re-queue it."""
    from macie_chatops.approvals import action_for, refuse

    action = action_for(record, "quarantine")
    if deps.verifier is None or action is None:
        return None
    verification = deps.verifier.verify(record, action)
    if verification.verified:
        return None
    logger.error(
        "approval not verified: not re-queued, recorded as failed",
        extra={"reason": verification.reason, "approver": record.approver},
    )
    result = refuse(deps.store, record, verification, actor=ACTOR)
    state = result.record.state.value
    return replace(outcome, verdict=Verdict.UNVERIFIED, reason=verification.reason, done=f"not re-queued; {state}")


def _send_counted(
    record: FindingRecord,
    now: datetime,
    deps: SweepDependencies,
    *,
    actor: str,
    event: str,
    detail: Callable[[str], str],
    updates: RecordUpdates | None = None,
) -> JobRequest:
    """Queue the approval's job again, then count it in the audit trail while the finding is still APPROVED:
    the trail's re-queue entries are jobs that were really sent. A send the queue refuses raises."""
    count = SentNote(
        actor=actor, event=event, outcome="requeued", detail=detail, updates=updates, expected={State.APPROVED}
    )
    requested = request_job(deps.store, deps.queue, _job(record, now), note=count)
    if not requested.noted and requested.record.state is State.APPROVED:
        # The audit trail is full: the re-queue cannot be counted, so the bound could not hold.
        raise SweepStepError(f"job queued (message {requested.message_id}) but the re-queue could not be recorded")
    return requested


def _give_up(record: FindingRecord, step: SweepStep, outcome: SweepOutcome, deps: SweepDependencies) -> SweepOutcome:
    error = (
        f"approved, no outcome after {step.requeues} automatic re-queue(s); the sweeper has stopped re-queueing "
        "it (macie-chatops sweep --requeue re-queues it)"
    )
    result = deps.store.append_audit(
        record.finding_id,
        actor=ACTOR,
        event=EVENT_GAVE_UP,
        outcome="stuck",
        detail=step.reason,
        updates={"error": error},
        expected={State.APPROVED},
    )
    if not result.applied:
        if result.record.state is State.APPROVED:
            raise SweepStepError("the finding is stuck, and that could not be recorded (audit trail full)")
        logger.info("the finding moved on before it was reported stuck", extra={"state": result.record.state.value})
        return SweepOutcome(record.finding_id, Verdict.LEAVE, f"{result.record.state.value}, not approved", 0)
    logger.error(
        "approved quarantine stuck: no outcome after the last automatic re-queue; operators must act",
        extra={"requeues": step.requeues, "approved_at": step.waiting_since, "approver": record.approver},
    )
    shown = _show_stuck(result.record, step, deps)
    return replace(outcome, done="recorded as stuck" + ("; Slack message updated" if shown else ""))


def _show_stuck(record: FindingRecord, step: SweepStep, deps: SweepDependencies) -> bool:
    """Update the finding's Slack message to say it is stuck (raises a Slack failure: the step then fails)."""
    if deps.slack is not None and record.policy is not None and record.slack_channel and record.slack_ts:
        from macie_chatops.policy_messages import build_policy_stuck_message  # a policy finding's block (§18)

        stuck = build_policy_stuck_message(record, at=step.waiting_since or record.updated_at, requeues=step.requeues)
        if stuck is not None:
            deps.slack.update(record.slack_channel, record.slack_ts, stuck)
            return True
    if deps.slack is None or record.summary is None or not record.slack_channel or not record.slack_ts:
        return False
    if record.group_id is not None and deps.groups is not None:
        view = deps.groups.view(record.group_id)
        if view is not None and view.member_count > 1:  # the message is the group's digest: one finding's word
            return False  # must not replace it (the error log and StuckApprovals say it)
    from macie_chatops.slack_messages import build_stuck_message

    message = build_stuck_message(
        record.summary,
        approver=record.approver,
        at=step.waiting_since or record.updated_at,
        requeues=step.requeues,
    )
    deps.slack.update(record.slack_channel, record.slack_ts, message)
    return True


def requeue(finding_id: str, *, actor: str, deps: SweepDependencies, reapprove: bool = False) -> FindingRecord:
    """An operator re-queues one APPROVED finding's job (``macie-chatops sweep --requeue``): sent, then audited
    as ``requeued_by_operator``, which starts a fresh count of automatic re-queues. The job carries the approval
    the record holds; ``reapprove``: the operator signs a new one first (``deps.signer``; §23), written before
    the send. Raises :class:`SweepStepError` when the finding is not APPROVED (nothing is sent)."""
    from macie_chatops.store import FindingNotFoundError

    record = deps.store.get(finding_id)
    if record is None:
        raise FindingNotFoundError(finding_id)
    if record.state is not State.APPROVED:
        raise SweepStepError(f"finding {finding_id} is {record.state.value}, not APPROVED: nothing to re-queue")
    if reapprove:
        record = _reapprove(record, actor=actor, deps=deps)
    requested = _send_counted(
        record,
        deps.clock(),
        deps,
        actor=actor,
        event=EVENT_OPERATOR_REQUEUED,
        detail=lambda message_id: f"message {message_id}",
        updates={"error": None},
    )
    return requested.record


def _reapprove(record: FindingRecord, *, actor: str, deps: SweepDependencies) -> FindingRecord:
    """The operator's own signed approval of the record's fix, stored while it is still APPROVED."""
    from macie_chatops.approvals import action_for

    action = action_for(record, "quarantine")
    if deps.signer is None or action is None:
        raise SweepStepError(f"finding {record.finding_id} cannot be re-approved here (no signer, or nothing to fix)")
    stamp = deps.signer.stamp(record, action=action, approver=actor, at=deps.clock())
    written = deps.store.append_audit(
        record.finding_id,
        actor=actor,
        event=EVENT_OPERATOR_REAPPROVED,
        outcome="reapproved",
        detail=f"{action} approved again by {actor}",
        updates={"approval": stamp},
        expected={State.APPROVED},
    )
    if not written.applied:
        raise SweepStepError(f"finding {record.finding_id} is {written.record.state.value}: not re-approved")
    return written.record
