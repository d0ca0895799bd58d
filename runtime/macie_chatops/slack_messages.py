"""Slack messages for every state of a finding, built with slack_sdk's Block Kit models.

Pure: no I/O (importing ``slack_sdk.models`` only defines classes). Every builder renders the same facts
from a :class:`~macie_chatops.summary.FindingSummary` in the same layout, so a message keeps its shape as
the finding moves from state to state and ``chat.update`` replaces it in place:

    header       the state, in a few words (plain_text)
    status       what happened / what is asked, by whom, when (mrkdwn)
    fields       account name + id, team, region, bucket, key, version, size, storage class, severity, type
    data         the sensitive data categories with counts and detection types ("and N more" past the budget)
    [outcome]    state specific: quarantine location, older versions, what was kept where
    context      origin (job id or automated discovery), created time, finding id, link to the Macie console
    [actions]    buttons, only in the states where someone can act

Public API (keyword-only arguments after ``summary``)::

    SlackMessage(text: str, blocks: tuple[Block, ...])          frozen
        .block_dicts() -> list[dict]         the blocks as Slack JSON (runs slack_sdk's validators)
        .to_dict() -> {"text": str, "blocks": list[dict]}       e.g. the body of a response_url reply

    build_review_message(summary, *, reason: str) -> SlackMessage                 Remediate + Dismiss
    build_auto_message(summary, *, reason: str) -> SlackMessage                   auto-quarantine started
    build_notify_message(summary, *, reason: str) -> SlackMessage                 information only
    build_approved_message(summary, *, approver: str | None, at: When) -> SlackMessage
    build_quarantined_message(summary, *, approver: str | None, at: When, quarantine_bucket: str,
                              quarantine_key: str, older_versions: int | None,
                              notice: str | None = None) -> SlackMessage                          Restore
    build_blocked_message(summary, *, approver: str | None, at: When, reason_code: str, detail: str = "",
                          quarantine_bucket: str | None = None, quarantine_key: str | None = None)
    build_failed_message(summary, *, approver: str | None, at: When, error: str, retryable: bool,
                         fix: str | None = None) -> SlackMessage
    build_stuck_message(summary, *, approver: str | None, at: When, requeues: int) -> SlackMessage
    build_dismissed_message(summary, *, by: str, at: When) -> SlackMessage
    build_duplicate_message(summary, *, approver: str | None, at: When, first_finding_id: str,
                            detail: str) -> SlackMessage                  DUPLICATE: not moved again
    build_duplicate_reply(summary, *, first_finding_id: str) -> SlackMessage      thread reply: reported again
    already_handled(first_finding_id, first_state, quarantine=None) -> str        plain text for a duplicate
    build_restoring_message(summary, *, by: str, at: When) -> SlackMessage
    build_restored_message(summary, *, by: str, at: When, restored_version_id: str | None) -> SlackMessage

    escape_mrkdwn(text: str) -> str          & -> &amp; first, then < -> &lt; and > -> &gt;
    shorten(text: str, limit: int) -> str    middle ellipsis on the raw text (shorten, then escape)
    human_size(size: int) -> str             "4.0 KiB (4,096 bytes)"

``When`` is a timezone-aware ``datetime`` or an ISO 8601 string (naive times are taken as UTC).
``approver``/``by`` is a Slack user id (``U...``/``W...``, rendered as a mention), ``None`` or
:data:`AUTO_APPROVER` for the policy (rendered as "automatically"); anything else is shown as escaped text.
``reason_code`` is one of :data:`BLOCKED_REASONS`. Every button's ``value`` is the finding id and nothing else.
``notice`` (plain text, escaped) is shown in a context block under the outcome, e.g. why a restore was refused.
``retryable`` says whether the remediator retries a failed quarantine by itself; when it does not, the message
says what an operator must do (``fix``, plain text, escaped) and then run ``macie-chatops retry FINDING_ID``.

Untrusted text (bucket, key, title, detection types, custom identifier names, reasons, error details) is
escaped for mrkdwn, with ``verbatim`` set, or sent as plain_text, so ``<!channel>`` or ``<https://x|y>`` in an
S3 key stays inert. Every message stays within Slack's limits (50 blocks, 3,000 chars per section, 10 fields
of 2,000 chars, header 150, button 75, confirm 100/300/30) and within :data:`MAX_MESSAGE_TEXT_CHARS` of text
overall, because Slack rejects messages well below the sum of the per-block limits (msg_blocks_too_long).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from macie_chatops import names
from macie_chatops.jobs import AUTO_APPROVER  # "auto": the policy approved, no person
from macie_chatops.summary import DataCategory, FindingSummary

When = datetime | str

BLOCKED_REASONS: Final = frozenset({"locked", "changed", "missing", "access_denied"})

MAX_BLOCKS: Final = 50
MAX_SECTION_TEXT: Final = 3000
MAX_FIELDS: Final = 10
MAX_FIELD_TEXT: Final = 2000
MAX_HEADER_TEXT: Final = 150
MAX_BUTTON_TEXT: Final = 75
MAX_CONFIRM_TITLE: Final = 100
MAX_CONFIRM_TEXT: Final = 300
# Slack documents per-block limits only; users report msg_blocks_too_long at ~13.2k characters in total.
MAX_MESSAGE_TEXT_CHARS: Final = 12_000
MAX_FALLBACK_TEXT: Final = 600
MAX_NOTICE_TEXT: Final = 1500  # escaped characters of a notice (a context element holds up to 3,000)

ELLIPSIS: Final = "…"
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


# --- text helpers -----------------------------------------------------------------------------------------


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's three control characters; ``&`` first, or the other escapes would be escaped twice."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shorten(text: str, limit: int) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (keeps both ends of a key: prefix and name).

    Works on the raw text, before escaping, so an escape sequence is never cut in half.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if len(text) <= limit:
        return text
    kept = limit - len(ELLIPSIS)
    if kept <= 0:
        return ELLIPSIS[:limit]
    tail = kept // 2
    head = kept - tail
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def _escaped_length(text: str) -> int:
    return len(text) + 4 * text.count("&") + 3 * (text.count("<") + text.count(">"))


def _fit(text: str, limit: int) -> str:
    """``text`` shortened (raw) and escaped so that the escaped result is at most ``limit`` characters."""
    if _escaped_length(text) <= limit:
        return escape_mrkdwn(text)
    # Keeping one more raw character never drops one already kept, so the escaped length grows with the
    # raw budget: binary search for the largest raw budget that fits.
    low, high = 1, min(len(text), limit)
    best = shorten(text, 1)
    while low <= high:
        middle = (low + high) // 2
        candidate = shorten(text, middle)
        if _escaped_length(candidate) <= limit:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return escape_mrkdwn(best)


def human_size(size: int) -> str:
    """A size people read at a glance, with the exact byte count."""
    if size < 1024:
        return f"{size:,} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit} ({size:,} bytes)"
    raise AssertionError("unreachable")  # pragma: no cover


def _code(escaped: str) -> str:
    """A code span, unless the text holds a backtick (which would end the span and show a mangled key)."""
    return escaped if "`" in escaped else f"`{escaped}`"


def _who(user: str | None) -> str:
    if user is None or user == "" or user == AUTO_APPROVER:
        return "automatically (policy)"
    if _USER_ID.match(user):
        return f"<@{user}>"
    return _fit(user, 100)


def _when(at: When) -> str:
    """Slack's date token (shown in each reader's time zone) with a UTC fallback; raw text if unparseable."""
    moment: datetime | None
    if isinstance(at, datetime):
        moment = at
    else:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            return _fit(at, 100)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def _s3_uri(bucket: str, key: str, *, limit: int = 700) -> str:
    """``s3://bucket/key`` for display: key shortened to the budget, escaped."""
    return _code(_fit(f"s3://{bucket}/{key}", limit))


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)


# --- the message ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackMessage:
    """One Slack message: fallback ``text`` (notifications, screen readers; escaped) and Block Kit blocks."""

    text: str
    blocks: tuple[Block, ...]

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a Slack message needs a fallback text")
        if len(self.blocks) > MAX_BLOCKS:
            raise ValueError(f"a Slack message holds at most {MAX_BLOCKS} blocks, got {len(self.blocks)}")

    def block_dicts(self) -> list[dict[str, Any]]:
        """The blocks as Slack JSON; slack_sdk's validators run here and raise SlackObjectFormationError."""
        return [block.to_dict() for block in self.blocks]

    def to_dict(self) -> dict[str, Any]:
        """``{"text": ..., "blocks": [...]}``, validated (see :meth:`block_dicts`)."""
        return {"text": self.text, "blocks": self.block_dicts()}


def text_chars(value: Any) -> int:
    """Characters of text in a block structure (every ``text`` string), as Slack counts toward its limits."""
    if isinstance(value, dict):
        total = 0
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                total += len(item)
            else:
                total += text_chars(item)
        return total
    if isinstance(value, list | tuple):
        return sum(text_chars(item) for item in value)
    return 0


# --- shared layout ----------------------------------------------------------------------------------------


def _header(title: str, summary: FindingSummary) -> HeaderBlock:
    where = summary.account_name or summary.account_id
    text = f"{title}: {where}"
    return HeaderBlock(text=PlainTextObject(text=shorten(text, MAX_HEADER_TEXT), emoji=True))


def _field(label: str, value: str) -> MarkdownTextObject:
    return _md(f"*{label}*\n{value}")


def _fields(summary: FindingSummary) -> SectionBlock:
    account = _code(_fit(summary.account_id, 40))
    if summary.account_name:
        account = f"{_fit(summary.account_name, 200)} ({account})"
    version = _code(_fit(summary.version_id, 300)) if summary.version_id else "unversioned"
    fields = [
        _field("Account", account),
        _field("Team", _fit(summary.team, 200) if summary.team else "none"),
        _field("Region", _fit(summary.region, 50)),
        _field("Bucket", _code(_fit(summary.bucket, 300))),
        _field("Key", _code(_fit(summary.key, 800))),
        _field("Version", version),
        _field("Size", human_size(summary.size)),
        _field("Storage class", _fit(summary.storage_class, 50)),
        _field("Severity", _fit(summary.severity, 50)),
        _field("Finding type", _fit(summary.finding_type, 200)),
    ]
    return SectionBlock(fields=fields)


def _category_line(category: DataCategory, limit: int) -> str:
    head = f"• *{_fit(category.category, 100)}*: {category.total:,}"
    parts = [f"{_fit(d.type, 200)} ×{d.count:,}" for d in category.detections]
    if not parts:
        return head
    line = f"{head} ({', '.join(parts)})"
    if len(line) <= limit:
        return line
    # Too many detection types for one line: keep as many as fit and say how many are left out.
    kept: list[str] = []
    for part in parts:
        rest = len(parts) - len(kept) - 1
        suffix = f", and {rest} more" if rest else ""
        if len(f"{head} ({', '.join([*kept, part])}{suffix})") > limit:
            break
        kept.append(part)
    omitted = len(parts) - len(kept)
    return f"{head} ({', '.join(kept)}, and {omitted} more)" if kept else f"{head} ({omitted} detection types)"


def _categories(summary: FindingSummary, budget: int) -> SectionBlock:
    title = "*Sensitive data*"
    budget = min(budget, MAX_SECTION_TEXT)
    if not summary.categories:
        return SectionBlock(text=_md(f"{title}\nno category details in the finding"))
    lines: list[str] = []
    used = len(title)
    total = len(summary.categories)
    for index, category in enumerate(summary.categories):
        remaining = total - index
        # Reserve room for the "and N more" line in case later categories do not fit.
        reserve = len(f"\n…and {remaining} more categories")
        line = _category_line(category, limit=max(80, min(600, budget - used - reserve - 1)))
        if used + 1 + len(line) + (reserve if remaining > 1 else 0) > budget:
            lines.append(f"…and {remaining} more {'category' if remaining == 1 else 'categories'}")
            break
        lines.append(line)
        used += 1 + len(line)
    return SectionBlock(text=_md(title + "\n" + "\n".join(lines)))


def _context(summary: FindingSummary) -> ContextBlock:
    console = escape_mrkdwn(summary.console_url)
    return ContextBlock(
        elements=[
            _md(f"Origin: {_fit(summary.origin, 200)}"),
            _md(f"Created: {_when(summary.created_at)}"),
            _md(f"Finding {_code(_fit(summary.finding_id, 200))}"),
            _md(f"<{console}|Open in the Macie console>"),
        ]
    )


def _render(
    summary: FindingSummary,
    *,
    title: str,
    status: str,
    outcome: Sequence[str] = (),
    notice: str | None = None,
    buttons: Sequence[ButtonElement] = (),
) -> SlackMessage:
    """The one layout every state uses; ``status`` and ``outcome`` are mrkdwn, already escaped; ``notice`` is
    raw text (escaped here) shown as a context block between the outcome and the finding's context."""
    header = _header(title, summary)
    head: list[Block] = [header, SectionBlock(text=_md(status)), _fields(summary)]
    tail: list[Block] = [SectionBlock(text=_md(text)) for text in outcome]
    if notice:
        tail.append(ContextBlock(elements=[_md(f":warning: {_fit(notice, MAX_NOTICE_TEXT)}")]))
    tail.append(_context(summary))
    if buttons:
        tail.append(ActionsBlock(elements=list(buttons)))
    fallback = _fallback(title, summary)
    used = text_chars([block.to_dict() for block in (*head, *tail)]) + len(fallback)
    categories = _categories(summary, budget=MAX_MESSAGE_TEXT_CHARS - used)
    return SlackMessage(text=fallback, blocks=(*head, categories, *tail))


def _fallback(title: str, summary: FindingSummary) -> str:
    where = summary.account_name or summary.account_id
    text = f"{title}: {summary.finding_type} ({summary.severity}) in {where}, s3://{summary.bucket}/{summary.key}"
    return _fit(text, MAX_FALLBACK_TEXT)


def _object(summary: FindingSummary) -> str:
    version = f" (version {_code(_fit(summary.version_id, 200))})" if summary.version_id else " (unversioned)"
    return f"{_s3_uri(summary.bucket, summary.key)}{version}"


def _lines(*parts: str | None) -> str:
    return "\n".join(part for part in parts if part)


# --- buttons ----------------------------------------------------------------------------------------------


def _remediate_button(summary: FindingSummary) -> ButtonElement:
    target = _code(_fit(f"s3://{summary.bucket}/{summary.key}", 200))
    return ButtonElement(
        text=PlainTextObject(text="Remediate"),
        action_id=names.ACTION_REMEDIATE,
        value=summary.finding_id,
        style="danger",
        confirm=ConfirmObject(
            title=PlainTextObject(text="Quarantine this object?"),
            text=_md(f"Move {target} into the quarantine bucket of account {_fit(summary.account_id, 20)}?"),
            confirm=PlainTextObject(text="Quarantine"),
            deny=PlainTextObject(text="Cancel"),
            style="danger",
        ),
    )


def _dismiss_button(summary: FindingSummary) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text="Dismiss"),
        action_id=names.ACTION_DISMISS,
        value=summary.finding_id,
    )


def _restore_button(summary: FindingSummary) -> ButtonElement:
    target = _code(_fit(f"s3://{summary.bucket}/{summary.key}", 200))
    return ButtonElement(
        text=PlainTextObject(text="Restore"),
        action_id=names.ACTION_RESTORE,
        value=summary.finding_id,
        confirm=ConfirmObject(
            title=PlainTextObject(text="Restore this object?"),
            text=_md(f"Copy it from quarantine back to {target}?"),
            confirm=PlainTextObject(text="Restore"),
            deny=PlainTextObject(text="Cancel"),
        ),
    )


# --- builders, one per state ------------------------------------------------------------------------------


def build_review_message(summary: FindingSummary, *, reason: str) -> SlackMessage:
    """PENDING_APPROVAL: ask the team; Remediate (danger, confirmed) or Dismiss."""
    status = _lines(
        f"Macie found sensitive data in {_object(summary)}.",
        f"*Approval needed:* {_fit(reason, 1000)}",
        "An approver of this team can quarantine the object or dismiss the finding.",
    )
    return _render(
        summary,
        title=":warning: Approval needed",
        status=status,
        buttons=(_remediate_button(summary), _dismiss_button(summary)),
    )


def build_auto_message(summary: FindingSummary, *, reason: str) -> SlackMessage:
    """APPROVED by policy: the quarantine has started; information only."""
    status = _lines(
        f"Macie found sensitive data in {_object(summary)}.",
        f"*Automatic quarantine started:* {_fit(reason, 1000)}",
        "This message will show the outcome.",
    )
    return _render(summary, title=":rotating_light: Automatic quarantine", status=status)


def build_notify_message(summary: FindingSummary, *, reason: str) -> SlackMessage:
    """NOTIFIED: information only, nothing will be moved."""
    status = _lines(
        f"Macie found sensitive data in {_object(summary)}.",
        f"*For information:* {_fit(reason, 1000)}",
        "No action will be taken on the object.",
    )
    return _render(summary, title=":information_source: Sensitive data found", status=status)


def build_approved_message(summary: FindingSummary, *, approver: str | None, at: When) -> SlackMessage:
    """APPROVED: quarantine in progress; no buttons (a second click has nothing to act on)."""
    status = _lines(
        f"Approved {_who(approver)} on {_when(at)}; quarantining {_object(summary)}…",
        "This message will show the outcome.",
    )
    return _render(summary, title=":hourglass_flowing_sand: Approved, quarantining", status=status)


def _older_versions(count: int | None) -> str:
    if count is None:
        return "Older versions of this key were not checked."
    if count == 0:
        return "No older versions of this key remain in the bucket."
    if count == 1:
        return "1 older version of this key remains in the bucket."
    return f"{count:,} older versions of this key remain in the bucket."


def build_quarantined_message(
    summary: FindingSummary,
    *,
    approver: str | None,
    at: When,
    quarantine_bucket: str,
    quarantine_key: str,
    older_versions: int | None,
    notice: str | None = None,
) -> SlackMessage:
    """QUARANTINED: where the object is now, who approved, what remains; Restore (confirmed).

    ``notice``: why the object is (still) here, e.g. "Restore refused: …" when a restore was not done."""
    status = _lines(
        f"*Quarantined* {_object(summary)}.",
        f"Approved {_who(approver)}; moved on {_when(at)}.",
    )
    outcome = _lines(
        f"*Now at:* {_s3_uri(quarantine_bucket, quarantine_key)}",
        "The copy was verified (size and checksum) before the source version was deleted.",
        _older_versions(older_versions),
    )
    return _render(
        summary,
        title=":lock: Quarantined",
        status=status,
        outcome=(outcome,),
        notice=notice,
        buttons=(_restore_button(summary),),
    )


_BLOCKED_TITLES: Final = {
    "locked": ":no_entry: Blocked: object is locked",
    "changed": ":no_entry: Blocked: object changed",
    "missing": ":no_entry: Blocked: object missing",
    "access_denied": ":no_entry: Blocked: access denied",
}


def build_blocked_message(
    summary: FindingSummary,
    *,
    approver: str | None,
    at: When,
    reason_code: str,
    detail: str = "",
    quarantine_bucket: str | None = None,
    quarantine_key: str | None = None,
) -> SlackMessage:
    """BLOCKED: the move stopped safely. Says truthfully where the data is; never claims a quarantine."""
    if reason_code not in BLOCKED_REASONS:
        raise ValueError(f"unknown blocked reason {reason_code!r}; expected one of {sorted(BLOCKED_REASONS)}")
    source = _object(summary)
    copy = (
        _s3_uri(quarantine_bucket, quarantine_key)
        if quarantine_bucket is not None and quarantine_key is not None
        else None
    )
    if reason_code == "locked":
        why = "S3 Object Lock or a legal hold prevents deleting the source version."
    elif reason_code == "changed":
        why = "The object changed since Macie scanned it (its ETag no longer matches the finding)."
    elif reason_code == "missing":
        why = "The object version named by the finding no longer exists."
    else:
        why = "Access was denied to the remediation role."
    if copy is not None:
        where = (
            f"*Both copies are kept:* the original stays at {source} and a verified copy is at {copy}. "
            "Delete the original by hand once the lock or permission allows it."
        )
    elif reason_code == "missing":
        where = f"Nothing was moved. No copy was made of {source}."
    else:
        where = f"Nothing was moved: the original stays at {source}."
    status = _lines(
        f"*Blocked:* {why}",
        f"Approved {_who(approver)}; stopped on {_when(at)}.",
    )
    outcome = _lines(where, f"*Detail:* {_fit(detail, 1000)}" if detail else None)
    return _render(summary, title=_BLOCKED_TITLES[reason_code], status=status, outcome=(outcome,))


def _retry_command(summary: FindingSummary) -> str:
    return _code(_fit(f"macie-chatops retry {summary.finding_id}", 300))


def build_failed_message(
    summary: FindingSummary,
    *,
    approver: str | None,
    at: When,
    error: str,
    retryable: bool,
    fix: str | None = None,
) -> SlackMessage:
    """FAILED: the quarantine attempt failed; the message says truthfully whether it will be retried.

    ``retryable``: the job went back to the queue and the remediator retries it by itself (transient AWS
    errors); if every retry fails, the job ends in the remediation dead-letter queue. Otherwise nothing
    retries it: an operator fixes the cause (``fix``, e.g. "deploy the member roles StackSet to account X";
    default: the error shown) and runs ``macie-chatops retry FINDING_ID``. No attempt that fails deletes the
    source, so the object is where the finding found it (the error says more when it is not)."""
    command = _retry_command(summary)
    if retryable:
        title = ":x: Quarantine attempt failed"
        status = _lines(
            f"*The quarantine attempt failed* on {_when(at)}; it will be retried automatically.",
            f"Approved {_who(approver)}. The original stays at {_object(summary)} until a retry succeeds.",
        )
        next_step = (
            "*If it keeps failing:* the job ends in the remediation dead-letter queue; once the cause is fixed, "
            f"an operator runs {command}."
        )
    else:
        title = ":x: Quarantine failed"
        status = _lines(
            f"*The quarantine failed* on {_when(at)} and will not be retried automatically.",
            f"Approved {_who(approver)}. Nothing was deleted: {_object(summary)} was not moved.",
        )
        todo = _fit(fix, 1000) if fix else "fix the cause of the error above"
        next_step = f"*To quarantine it:* {todo}, then an operator runs {command}."
    outcome = _lines(f"*Error:* {_fit(error, 1000)}", next_step)
    return _render(summary, title=title, status=status, outcome=(outcome,))


def build_stuck_message(summary: FindingSummary, *, approver: str | None, at: When, requeues: int) -> SlackMessage:
    """APPROVED with no outcome: the sweeper re-queued the job ``requeues`` times and stopped; operators are alerted.

    Nothing says where the object is (an attempt may have been cut off at any step, and every step is
    recoverable), so the message does not guess; it says who must act and how the job is re-queued."""
    command = _code(_fit(f"macie-chatops sweep --requeue {summary.finding_id}", 300))
    status = _lines(
        f"*Approved {_who(approver)} on {_when(at)}, but no outcome was recorded.* The quarantine job was "
        f"re-queued {requeues} time{'s' if requeues != 1 else ''} without one; it is no longer retried automatically.",
        f"Operators have been alerted. The object named by the finding is {_object(summary)}.",
    )
    next_step = (
        "*To quarantine it:* an operator finds the cause in the remediator's logs (search for the finding id) and the "
        f"remediation dead-letter queue, fixes it, then runs {command}."
    )
    return _render(summary, title=":warning: Quarantine stuck", status=status, outcome=(next_step,))


def build_dismissed_message(summary: FindingSummary, *, by: str, at: When) -> SlackMessage:
    """DISMISSED: someone decided not to act; the object was not moved."""
    status = _lines(
        f"*Dismissed* by {_who(by)} on {_when(at)}.",
        f"The object was not moved: {_object(summary)}.",
    )
    return _render(summary, title=":white_check_mark: Dismissed", status=status)


def build_restoring_message(summary: FindingSummary, *, by: str, at: When) -> SlackMessage:
    """RESTORE_REQUESTED: putting the object back; no buttons."""
    status = _lines(
        f"*Restore requested* by {_who(by)} on {_when(at)}; restoring {_object(summary)} from quarantine…",
        "This message will show the outcome.",
    )
    return _render(summary, title=":arrows_counterclockwise: Restoring", status=status)


def build_restored_message(
    summary: FindingSummary, *, by: str, at: When, restored_version_id: str | None
) -> SlackMessage:
    """RESTORED: the object is back in its bucket (as a new version on a versioned bucket)."""
    target = _s3_uri(summary.bucket, summary.key)
    version = f" as version {_code(_fit(restored_version_id, 200))}" if restored_version_id else " (unversioned bucket)"
    status = _lines(
        f"*Restored* by {_who(by)} on {_when(at)}.",
        f"The object is back at {target}{version}.",
    )
    return _render(summary, title=":leftwards_arrow_with_hook: Restored", status=status)


# --- one object version, one remediation (duplicates) -----------------------------------------------------

_FIRST_STATE_WORDS: Final = {
    "RECEIVED": "already being handled under finding {first}",
    "PENDING_APPROVAL": "already awaiting approval under finding {first}",
    "APPROVED": "already approved for quarantine under finding {first}",
    "QUARANTINED": "already quarantined under finding {first}",
    "DISMISSED": "already dismissed under finding {first}",
}


def already_handled(first_finding_id: str, first_state: str | None, quarantine: Mapping[str, str] | None = None) -> str:
    """Plain text (not escaped): what became of an object version under its first finding, e.g. "already
    quarantined under finding X, now at s3://quarantine-bucket/key" (``first_state`` None: its record is gone).
    The record's ``outcome_detail`` and the click answer of a duplicate say it; messages escape it."""
    template = _FIRST_STATE_WORDS.get(first_state or "")
    if template is not None:
        text = template.format(first=first_finding_id)
    elif first_state:
        text = f"already handled under finding {first_finding_id} ({first_state.lower().replace('_', ' ')})"
    else:
        text = f"already handled under finding {first_finding_id}"
    bucket, key = (quarantine or {}).get("bucket"), (quarantine or {}).get("key")
    if first_state in ("QUARANTINED", "RESTORE_REQUESTED", "BLOCKED") and bucket and key:
        text += f", now at s3://{bucket}/{key}" if first_state != "BLOCKED" else f", a copy kept at s3://{bucket}/{key}"
    return text


def build_duplicate_message(
    summary: FindingSummary, *, approver: str | None, at: When, first_finding_id: str, detail: str
) -> SlackMessage:
    """DUPLICATE (a finding that had its own message, e.g. approved before claims existed): not moved, because
    its object version is remediated under another finding; ``detail`` is :func:`already_handled`'s text."""
    status = _lines(
        f"*Not moved again:* this object version is {_fit(detail, 1500)}.",
        f"Approved {_who(approver)}; stopped on {_when(at)}. One object version is remediated once, under the "
        f"first finding that reported it ({_code(_fit(first_finding_id, 200))}).",
    )
    return _render(summary, title=":link: Duplicate: already handled", status=status)


def build_duplicate_reply(summary: FindingSummary, *, first_finding_id: str) -> SlackMessage:
    """The thread reply under the first finding's message when Macie reports its object version again
    (``summary`` is the new finding's): one short section, no fields, no buttons."""
    again = _code(_fit(summary.finding_id, 200))
    text = _lines(
        f"Macie reported this object version again: finding {again} ({_fit(summary.origin, 200)}, "
        f"created {_when(summary.created_at)}).",
        f"It is recorded as a duplicate of {_code(_fit(first_finding_id, 200))}: no new review message, and the "
        "object is never moved twice.",
    )
    console = escape_mrkdwn(summary.console_url)
    fallback = _fit(f"Macie reported this object version again: finding {summary.finding_id}", MAX_FALLBACK_TEXT)
    return SlackMessage(
        text=fallback,
        blocks=(
            SectionBlock(text=_md(text)),
            ContextBlock(elements=[_md(f"<{console}|Open in the Macie console>")]),
        ),
    )


__all__ = [
    "AUTO_APPROVER",
    "BLOCKED_REASONS",
    "MAX_MESSAGE_TEXT_CHARS",
    "SlackMessage",
    "When",
    "already_handled",
    "build_approved_message",
    "build_auto_message",
    "build_blocked_message",
    "build_dismissed_message",
    "build_duplicate_message",
    "build_duplicate_reply",
    "build_failed_message",
    "build_notify_message",
    "build_quarantined_message",
    "build_restored_message",
    "build_restoring_message",
    "build_review_message",
    "escape_mrkdwn",
    "human_size",
    "shorten",
    "text_chars",
]
