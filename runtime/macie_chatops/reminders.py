"""Reminders and the daily escalation summary for reviews left PENDING_APPROVAL (docs/architecture.md §14).

:func:`reminder_due` and :func:`escalation_due` are the pure part. Every step is marked on the finding by a
conditional write *before* Slack is told, so of two runs only the one whose mark was applied posts; a post that
fails takes its mark back (the next run tries again), and a dying run between the mark and the post loses that
one step rather than posting it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from aws_lambda_powertools import Logger

from macie_chatops.errors import MacieChatOpsError, SlackMessageNotFoundError
from macie_chatops.ports import Clock, utcnow
from macie_chatops.states import State

if TYPE_CHECKING:
    from collections.abc import Mapping

    from macie_chatops.slack_messages import SlackMessage
    from macie_chatops.store import FindingRecord, FindingStore

logger = Logger(service="macie-chatops-reminders")

ACTOR: Final = "reminders"
EVENT_REMINDED: Final = "reminded"
EVENT_ESCALATED: Final = "escalated"
EVENT_REMINDER_FAILED: Final = "reminder_failed"
NO_MESSAGE: Final = "no message"  # the outcome of a reminder whose review message was deleted: none is due any more
MAX_REMINDERS_PER_RUN: Final = 100  # Slack posts about one message a second per channel; the next run goes on
MAX_PENDING_READ: Final = 10_000  # per team and run: every open review, oldest first
SUMMARY_LINES: Final = 30  # findings per summary message (Slack's text and block limits); more: more messages


def _parse(at: str) -> datetime:
    moment = datetime.fromisoformat(at)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age_text(seconds: float) -> str:
    """``3d4h``, ``2h5m``, ``7m``: how long a finding has waited, at a glance."""
    minutes = max(0, int(seconds)) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m"


def mention(approver: str) -> str:
    """Slack's mention syntax for an approver id: a user group (S...) or a user (U.../W...)."""
    return f"<!subteam^{approver}>" if approver.startswith("S") else f"<@{approver}>"


def permalink(workspace_url: str, channel: str, ts: str) -> str:
    """The link to a message, in Slack's permalink format (``workspace_url`` as auth.test gives it)."""
    return f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


class ReminderSlackSettings(Protocol):
    """What the reminders read of the config's ``slack`` section."""

    @property
    def remind_after_hours(self) -> int: ...
    @property
    def max_reminders(self) -> int: ...
    @property
    def escalate_after_hours(self) -> int: ...
    @property
    def escalation_channel(self) -> str | None: ...


class TeamApprovers(Protocol):
    @property
    def approvers(self) -> tuple[str, ...]: ...


class ReminderConfig(Protocol):
    """What the reminders read of the config: the ``Config``, or the Lambda's reading of the bundled document without
    the config's models (``bundled_config.reminder_config``: the reminders' cold start loads no pydantic, §6)."""

    @property
    def slack(self) -> ReminderSlackSettings: ...
    @property
    def teams(self) -> Mapping[str, TeamApprovers]: ...


@dataclass(frozen=True)
class ReminderPolicy:
    remind_after: timedelta = timedelta(hours=24)
    max_reminders: int = 2
    escalate_after: timedelta = timedelta(hours=72)
    escalation_channel: str | None = None

    @classmethod
    def from_settings(cls, slack: ReminderSlackSettings) -> ReminderPolicy:
        return cls(
            remind_after=timedelta(hours=slack.remind_after_hours),
            max_reminders=slack.max_reminders,
            escalate_after=timedelta(hours=slack.escalate_after_hours),
            escalation_channel=slack.escalation_channel,
        )


def reminder_due(record: FindingRecord, *, now: datetime, policy: ReminderPolicy) -> int | None:
    """The number of the reminder due for ``record`` at ``now`` (1-based), or None: not pending, no message to
    reply under, all reminders sent, or the interval since the message (or the last reminder) not over."""
    if record.state is not State.PENDING_APPROVAL or not record.slack_channel or not record.slack_ts:
        return None
    if record.reminders_sent >= policy.max_reminders:
        return None
    if any(entry.event == EVENT_REMINDER_FAILED and entry.outcome == NO_MESSAGE for entry in record.audit):
        return None
    since = record.last_reminder_at if record.reminders_sent and record.last_reminder_at else record.received_at
    if now - _parse(since) < policy.remind_after:
        return None
    return record.reminders_sent + 1


def escalation_due(record: FindingRecord, *, now: datetime, policy: ReminderPolicy) -> bool:
    """True when ``record`` has waited past ``escalate_after`` and was never listed in a summary."""
    return (
        policy.escalation_channel is not None
        and record.state is State.PENDING_APPROVAL
        and record.escalated_at is None
        and now - _parse(record.received_at) >= policy.escalate_after
    )


# --- messages -------------------------------------------------------------------------------------------------


def build_reminder(
    record: FindingRecord, *, number: int, of: int, approvers: Sequence[str], now: datetime
) -> SlackMessage:
    """The thread reply: which reminder, how long the review has waited, who is asked (their mentions)."""
    from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

    from macie_chatops.slack_messages import SlackMessage, escape_mrkdwn

    waited = age_text((now - _parse(record.received_at)).total_seconds())
    who = " ".join(mention(approver) for approver in approvers) or f"approvers of team {escape_mrkdwn(record.team)}"
    text = (
        f":alarm_clock: *Reminder {number} of {of}:* this review has waited {waited}. {who}: please approve "
        "the quarantine or dismiss the finding with the buttons above."
    )
    return SlackMessage(
        text=f"Reminder {number} of {of}: this review has waited {waited}. {who}",
        blocks=(SectionBlock(text=MarkdownTextObject(text=text, verbatim=True)),),
    )


def _summary_line(record: FindingRecord, *, now: datetime, workspace_url: str | None) -> str:
    from macie_chatops.slack_messages import code_span, escape_mrkdwn, escape_url

    summary = record.summary
    where = code_span(f"s3://{summary.bucket}/{summary.key}", 300) if summary else "(no object)"
    waited = age_text((now - _parse(record.received_at)).total_seconds())
    if workspace_url and record.slack_channel and record.slack_ts:
        link = f"<{escape_url(permalink(workspace_url, record.slack_channel, record.slack_ts))}|message>"
    else:
        link = "no message link"
    return (
        f"• *{escape_mrkdwn(record.team)}*, account {escape_mrkdwn(record.account_id)}: {where}, "
        f"waiting {waited} ({link})"
    )


def build_escalation_summary(
    records: Sequence[FindingRecord], *, now: datetime, policy: ReminderPolicy, workspace_url: str | None
) -> SlackMessage:
    """The daily summary: one line per review pending past ``escalate_after`` (team, account, object, age, link)."""
    from slack_sdk.models.blocks import HeaderBlock, MarkdownTextObject, SectionBlock

    from macie_chatops.slack_messages import SlackMessage

    hours = int(policy.escalate_after.total_seconds() // 3600)
    intro = f"{len(records)} review(s) have waited more than {hours}h for a decision; each is listed once."
    sections = [SectionBlock(text=MarkdownTextObject(text=intro, verbatim=True))]
    lines = [_summary_line(record, now=now, workspace_url=workspace_url) for record in records]
    for start in range(0, len(lines), 10):  # a section holds 3,000 characters: ten lines of at most ~300
        sections.append(SectionBlock(text=MarkdownTextObject(text="\n".join(lines[start : start + 10]), verbatim=True)))
    return SlackMessage(
        text=f"Escalation: {intro}", blocks=(HeaderBlock(text=":rotating_light: Reviews waiting too long"), *sections)
    )


# --- orchestration (adapters passed in) ---------------------------------------------------------------------------


class ReminderSlack(Protocol):
    """Post a message, or reply in a message's thread (its ts; raises SlackError); the workspace's URL
    (auth.test's ``url``) for message links, None when Slack does not say."""

    def post(self, channel: str, message: SlackMessage) -> str: ...

    def reply(self, channel: str, thread_ts: str, message: SlackMessage) -> str: ...

    def workspace_url(self) -> str | None: ...


@dataclass(frozen=True)
class ReminderDependencies:
    store: FindingStore  # built on the same clock: the marks' times are what the next run compares with
    slack: ReminderSlack
    config: ReminderConfig
    clock: Clock = field(default=utcnow)

    @property
    def policy(self) -> ReminderPolicy:
        return ReminderPolicy.from_settings(self.config.slack)


@dataclass(frozen=True)
class StepOutcome:
    finding_id: str
    step: str  # "reminder 1", "escalation"
    done: str  # what was done: "posted <ts>", "taken by another run", "message deleted", "failed: ..."


@dataclass(frozen=True)
class ReminderReport:
    reminded: tuple[StepOutcome, ...] = ()
    escalated: tuple[StepOutcome, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()  # (finding id, error) of every step that failed
    summaries: tuple[str, ...] = ()  # the ts of each escalation summary posted

    def posted(self, outcomes: tuple[StepOutcome, ...]) -> int:
        return sum(1 for outcome in outcomes if outcome.done.startswith("posted"))


class RemindersError(MacieChatOpsError):
    """Some reminder or escalation steps failed (``report.errors``); the others were done."""

    def __init__(self, report: ReminderReport) -> None:
        self.report = report
        listed = "; ".join(f"{finding_id}: {error}" for finding_id, error in report.errors[:5])
        super().__init__(f"{len(report.errors)} reminder/escalation step(s) failed: {listed}")


def one_per_group(records: Sequence[FindingRecord]) -> list[FindingRecord]:
    """A group of findings (docs/architecture.md §22) is listed once, by its oldest member here: a flood of 10,000
    is one line, not 334 summary messages. The others are not marked, so the group stays listed while any waits.
    (Reminders are once per group already: only a message is reminded, and a group has one, its first member's.)"""
    seen: set[str] = set()
    kept = []
    for record in records:
        if record.group_id is not None:
            if record.group_id in seen:
                continue
            seen.add(record.group_id)
        kept.append(record)
    return kept


def _pending(deps: ReminderDependencies, older_than: timedelta, now: datetime) -> list[FindingRecord]:
    records: list[FindingRecord] = []
    for team in sorted(deps.config.teams):
        records.extend(deps.store.pending_approvals(team, limit=MAX_PENDING_READ, received_before=now - older_than))
    return sorted(records, key=lambda r: (r.received_at, r.finding_id))


def run(deps: ReminderDependencies, *, escalate: bool) -> ReminderReport:
    """Post every reminder due (at most :data:`MAX_REMINDERS_PER_RUN`, oldest reviews first), then, when
    ``escalate``, the escalation summary. Raises :class:`RemindersError` after trying every step when any failed."""
    now = deps.clock()
    policy = deps.policy
    errors: list[tuple[str, str]] = []
    reminded: list[StepOutcome] = []
    for record in _pending(deps, policy.remind_after, now) if policy.max_reminders else ():
        number = reminder_due(record, now=now, policy=policy)
        if number is None:
            continue
        if len(reminded) >= MAX_REMINDERS_PER_RUN:
            logger.warning("more reminders are due than one run posts: the next run goes on")
            break
        outcome = _remind(record, number, now, deps, errors)
        reminded.append(outcome)
    escalated: list[StepOutcome] = []
    summaries: list[str] = []
    if escalate and policy.escalation_channel is not None:
        due = [r for r in _pending(deps, policy.escalate_after, now) if escalation_due(r, now=now, policy=policy)]
        due = one_per_group(due)
        for start in range(0, len(due), SUMMARY_LINES):
            ts = _escalate(due[start : start + SUMMARY_LINES], policy.escalation_channel, now, deps, escalated, errors)
            if ts is not None:
                summaries.append(ts)
    report = ReminderReport(tuple(reminded), tuple(escalated), tuple(errors), tuple(summaries))
    if errors:
        raise RemindersError(report)
    return report


def _remind(
    record: FindingRecord, number: int, now: datetime, deps: ReminderDependencies, errors: list[tuple[str, str]]
) -> StepOutcome:
    policy = deps.policy
    step = f"reminder {number}"
    team = deps.config.teams.get(record.team)
    approvers = team.approvers if team is not None else ()
    marked = deps.store.mark_reminder(
        record.finding_id, number=number, actor=ACTOR, detail=f"{step} of {policy.max_reminders}"
    )
    if not marked.applied:
        return StepOutcome(record.finding_id, step, f"not sent: {_why_not(marked.record)}")
    assert record.slack_channel is not None and record.slack_ts is not None  # reminder_due checked both
    message = build_reminder(record, number=number, of=policy.max_reminders, approvers=approvers, now=now)
    try:
        ts = deps.slack.reply(record.slack_channel, record.slack_ts, message)
    except SlackMessageNotFoundError:
        # The review message was deleted: no thread to remind in; the mark stays, so no run tries again.
        deps.store.append_audit(
            record.finding_id, actor=ACTOR, event=EVENT_REMINDER_FAILED, outcome=NO_MESSAGE, detail=f"{step}: deleted"
        )
        return StepOutcome(record.finding_id, step, "message deleted")
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        logger.exception("reminder not posted: its mark is taken back", extra={"finding_id": record.finding_id})
        deps.store.unmark_reminder(
            record.finding_id,
            number=number,
            marked_at=str(marked.record.last_reminder_at),
            previous_at=record.last_reminder_at,
            actor=ACTOR,
            detail=f"{step}: {error}",
        )
        errors.append((record.finding_id, error))
        return StepOutcome(record.finding_id, step, f"failed: {error}")
    deps.store.append_audit(
        record.finding_id,
        actor=ACTOR,
        event=EVENT_REMINDED,
        outcome="posted",
        detail=f"{step}: {record.slack_channel} {ts}",
    )
    return StepOutcome(record.finding_id, step, f"posted {ts}")


def _why_not(current: FindingRecord) -> str:
    if current.state is not State.PENDING_APPROVAL:
        return f"now {current.state.value}"
    return "marked by another run"


def _escalate(
    due: list[FindingRecord],
    channel: str,
    now: datetime,
    deps: ReminderDependencies,
    escalated: list[StepOutcome],
    errors: list[tuple[str, str]],
) -> str | None:
    """Mark each finding, post one summary of those marked; on a failed post take the marks back."""
    marked: list[tuple[FindingRecord, str]] = []
    for record in due:
        result = deps.store.mark_escalation(record.finding_id, actor=ACTOR, detail=f"summary to {channel}")
        if result.applied:
            marked.append((record, str(result.record.escalated_at)))
        else:
            escalated.append(StepOutcome(record.finding_id, "escalation", f"not listed: {_why_not(result.record)}"))
    if not marked:
        return None
    workspace = deps.slack.workspace_url()
    message = build_escalation_summary([r for r, _ in marked], now=now, policy=deps.policy, workspace_url=workspace)
    try:
        ts = deps.slack.post(channel, message)
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        logger.exception("escalation summary not posted: its marks are taken back", extra={"channel": channel})
        for record, at in marked:
            deps.store.unmark_escalation(record.finding_id, marked_at=at, actor=ACTOR, detail=error)
            errors.append((record.finding_id, error))
            escalated.append(StepOutcome(record.finding_id, "escalation", f"failed: {error}"))
        return None
    for record, _ in marked:
        deps.store.append_audit(
            record.finding_id, actor=ACTOR, event=EVENT_ESCALATED, outcome="listed", detail=f"summary {channel} {ts}"
        )
        escalated.append(StepOutcome(record.finding_id, "escalation", f"posted {ts}"))
    return ts


def link_for(record: FindingRecord, workspace_url: str | None) -> str | None:
    """The permalink of the finding's message, or None (no message, or no workspace URL known)."""
    if not workspace_url or not record.slack_channel or not record.slack_ts:
        return None
    return permalink(workspace_url, record.slack_channel, record.slack_ts)
