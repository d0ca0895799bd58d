"""Slack messages for every state of a finding, built with slack_sdk's Block Kit models (pure: no I/O).

Every ``build_*`` renders the same facts from a :class:`~macie_chatops.summary.FindingSummary` in the same
layout, so a message keeps its shape as the finding moves from state to state and ``chat.update`` replaces it
in place:

    header       the state, in a few words (plain_text)
    status       what happened / what is asked, by whom, when (mrkdwn)
    fields       account name + id, team, region, bucket, key, version, size, storage class, severity, type
    data         the sensitive data categories with counts and detection types ("and N more" past the budget)
    [outcome]    state specific: quarantine location, older versions, what was kept where
    context      origin (job id or automated discovery), created time, finding id, link to the Macie console
    [actions]    buttons, only in the states where someone can act

``approver``/``by`` is a Slack user id (rendered as a mention), ``None`` or :data:`AUTO_APPROVER` for the
policy (rendered as "automatically"); anything else is shown as escaped text. Every button's ``value`` is the
finding id and nothing else. Untrusted text goes through :func:`escape_mrkdwn` or :func:`code_span`, in the
blocks and the fallback ``text`` alike (docs/architecture.md §7, "Untrusted text in Slack").

Every message stays within Slack's limits (50 blocks, 3,000 chars per section, 10 fields of 2,000 chars,
header 150, button 75, confirm 100/300/30) and within :data:`MAX_MESSAGE_TEXT_CHARS` of text overall, because
Slack rejects messages well below the sum of the per-block limits (msg_blocks_too_long).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

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
from macie_chatops.job_queue import AUTO_APPROVER  # "auto": the policy approved, no person
from macie_chatops.summary import DataCategory, FindingSummary

if TYPE_CHECKING:  # the mover's facts: imported where an outcome is rendered, not by every handler that posts (§6)
    from macie_chatops.quarantine_plan import MoveFacts

When = datetime | str  # a timezone-aware datetime, or ISO 8601 text (a naive time is taken as UTC)

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


_CONTROL_CHARACTERS: Final = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}
# Slack offers no escape for its formatting characters: look-alikes that never format (∗ ˍ ∼ ˋ).
_PROSE: Final = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"} | _CONTROL_CHARACTERS)
_IN_CODE: Final = str.maketrans({"`": "\u02cb"} | _CONTROL_CHARACTERS)
_BARE_MENTION = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)


def escape_url(url: str) -> str:
    """Slack's three control characters, ``&`` first (or the other escapes would be escaped twice)."""
    return url.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_mrkdwn(text: str) -> str:
    """Untrusted prose made inert in mrkdwn: Slack's escapes for ``&<>`` (so ``<!here>`` is text), look-alikes
    for the formatting characters ``*_~``` (Slack has no escape for them), a full-width ＠ for bare
    ``@here``/``@channel``/``@everyone``, and visible symbols for control characters (a newline could start a
    quote or a list). Names that must stay exact go in :func:`code_span` instead."""
    return _BARE_MENTION.sub("\uff20", escape_url(text).translate(_PROSE))


def _escape_code(text: str) -> str:
    return escape_url(text).translate(_IN_CODE)


def code_span(text: str, limit: int) -> str:
    """``text`` (raw, untrusted) as a code span of at most ``limit`` characters inside the backticks: shortened
    in the middle, ``&<>`` escaped, a backtick (which would end the span early and let the rest format)
    replaced by ˋ, control characters by their symbols. Everything else shows exactly as it is."""
    return f"`{_fit(text, limit, escape=_escape_code) or ELLIPSIS}`"


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


def _fit(text: str, limit: int, *, escape: Callable[[str], str] = escape_mrkdwn) -> str:
    """``text`` shortened (raw) and escaped so that the escaped result is at most ``limit`` characters."""
    if len(escape(text)) <= limit:
        return escape(text)
    # Keeping one more raw character never drops one already kept, so the escaped length grows with the
    # raw budget: binary search for the largest raw budget that fits.
    low, high = 1, min(len(text), limit)
    best = shorten(text, 1)
    while low <= high:
        middle = (low + high) // 2
        candidate = shorten(text, middle)
        if len(escape(candidate)) <= limit:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return escape(best)


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
    """Text already escaped by :func:`escape_mrkdwn` (no backtick left in it) as a code span; names that must
    show exactly (``*``, ``_`` and ``~`` included) use :func:`code_span` on the raw text instead."""
    return f"`{escaped}`"


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
    """``s3://bucket/key`` for display: a code span, key shortened to the budget."""
    return code_span(f"s3://{bucket}/{key}", limit)


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
    account = code_span(summary.account_id, 40)
    if summary.account_name:
        account = f"{_fit(summary.account_name, 200)} ({account})"
    version = code_span(summary.version_id, 300) if summary.version_id else "unversioned"
    fields = [
        _field("Account", account),
        _field("Team", code_span(summary.team, 200) if summary.team else "none"),
        _field("Region", code_span(summary.region, 50)),
        _field("Bucket", code_span(summary.bucket, 300)),
        _field("Key", code_span(summary.key, 800)),
        _field("Version", version),
        _field("Size", human_size(summary.size)),
        _field("Storage class", code_span(summary.storage_class, 50)),
        _field("Severity", _fit(summary.severity, 50)),
        _field("Finding type", _fit(summary.finding_type, 200)),
    ]
    return SectionBlock(fields=fields)


def _category_line(category: DataCategory, limit: int) -> str:
    head = f"• {code_span(category.category, 100)}: {category.total:,}"
    parts = [f"{code_span(d.type, 200)} ×{d.count:,}" for d in category.detections]
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
    console = escape_url(summary.console_url)
    return ContextBlock(
        elements=[
            _md(f"Origin: {_fit(summary.origin, 200)}"),
            _md(f"Created: {_when(summary.created_at)}"),
            _md(f"Finding {code_span(summary.finding_id, 200)}"),
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
    """Notifications and screen readers: the same escaping as the blocks (``title`` is ours, emoji codes and all)."""
    where = _fit(summary.account_name or summary.account_id, 100)
    head = f"{title}: {_fit(summary.finding_type, 100)} ({_fit(summary.severity, 20)}) in {where}, "
    return head + _s3_uri(summary.bucket, summary.key, limit=max(40, MAX_FALLBACK_TEXT - len(head) - 2))


def _object(summary: FindingSummary) -> str:
    version = f" (version {code_span(summary.version_id, 200)})" if summary.version_id else " (unversioned)"
    return f"{_s3_uri(summary.bucket, summary.key)}{version}"


def _lines(*parts: str | None) -> str:
    return "\n".join(part for part in parts if part)


# --- buttons ----------------------------------------------------------------------------------------------


def _remediate_button(summary: FindingSummary) -> ButtonElement:
    target = _s3_uri(summary.bucket, summary.key, limit=200)
    return ButtonElement(
        text=PlainTextObject(text="Remediate"),
        action_id=names.ACTION_REMEDIATE,
        value=summary.finding_id,
        style="danger",
        confirm=ConfirmObject(
            title=PlainTextObject(text="Quarantine this object?"),
            text=_md(f"Move {target} into the quarantine bucket of account {code_span(summary.account_id, 20)}?"),
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
    target = _s3_uri(summary.bucket, summary.key, limit=200)
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


def build_review_message(
    summary: FindingSummary, *, reason: str, approvals: Sequence[str] = (), dismissals: Sequence[str] = ()
) -> SlackMessage:
    """PENDING_APPROVAL: ask the team; Remediate (danger, confirmed) or Dismiss. ``approvals``/``dismissals``:
    who has clicked each so far, when the finding needs more than one approver (``summary.approvals_required``)."""
    required = summary.approvals_required
    status = _lines(
        f"Macie found sensitive data in {_object(summary)}.",
        f"*Approval needed:* {_fit(reason, 1000)}",
        (
            "An approver of this team can quarantine the object or dismiss the finding."
            if required <= 1
            else f"*{required} different approvers* of this team must agree to quarantine the object, "
            "or to dismiss the finding."
        ),
        _approvals_so_far(approvals, required, "approval"),
        _approvals_so_far(dismissals, required, "dismissal"),
    )
    return _render(
        summary,
        title=":warning: Approval needed",
        status=status,
        buttons=(_remediate_button(summary), _dismiss_button(summary)),
    )


def _approvals_so_far(users: Sequence[str], required: int, word: str) -> str | None:
    """``*1 of 2 approvals* by <@U…>``, or None before the first."""
    if not users:
        return None
    return f"*{len(users)} of {required} {word}s* by {_all_of(users)}"


def _all_of(users: Sequence[str]) -> str:
    whos = [_who(user) for user in users]
    return whos[0] if len(whos) == 1 else f"{', '.join(whos[:-1])} and {whos[-1]}"


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


def build_approved_message(
    summary: FindingSummary, *, approver: str | None, at: When, earlier_approvers: Sequence[str] = ()
) -> SlackMessage:
    """APPROVED: quarantine in progress; no buttons (a second click has nothing to act on). ``earlier_approvers``:
    those who approved before ``approver`` completed it (two-person approval)."""
    who = _all_of([*earlier_approvers, approver or ""]) if earlier_approvers else _who(approver)
    status = _lines(
        f"Approved {who} on {_when(at)}; quarantining {_object(summary)}…",
        "This message will show the outcome.",
    )
    return _render(summary, title=":hourglass_flowing_sand: Approved, quarantining", status=status)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _versions_left(facts: MoveFacts) -> str:
    """How many versions of the key besides the finding's remain, each said as older or newer than it."""
    parts = []
    if facts.newer:
        parts.append(_plural(facts.newer, "newer version"))
    if facts.older:
        parts.append(_plural(facts.older, "older version"))
    if facts.other:
        parts.append(f"{_plural(facts.other, 'other version')} (older or newer: not known)")
    total = facts.newer + facts.older + facts.other
    if not parts:
        return "No other version of this key remains in the bucket."
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed} of this key {'remains' if total == 1 else 'remain'} in the bucket."


def key_sentences(facts: MoveFacts) -> tuple[str, ...]:
    """What the finding's key holds after the move, as the mover listed it (the exact sentences users see)."""
    from macie_chatops.quarantine_plan import AtKey

    current_object = {
        AtKey.FINDING: "The key's current object is still the finding's version.",
        AtKey.NEWER: "The key's current object is a newer version, written after the finding's: it was left untouched.",
        AtKey.OLDER: "The key's current object is an older version, written before the finding's: it was not moved "
        "and may hold the same data.",
        AtKey.OTHER: "The key's current object is a version whose order is not known: it was not moved.",
    }
    if not facts.listed:
        return ("What remains at this key was not checked (S3 would not list its versions).",)
    left = _versions_left(facts)
    total = facts.newer + facts.older + facts.other
    if facts.at_key is AtKey.NOTHING:
        return (left,) if total == 0 else (f"{left} None of them is current: the key shows no object.",)
    current = current_object.get(facts.at_key)
    return tuple(text for text in (left, current) if text)


def _copy_sentence(facts: MoveFacts) -> str:
    """QUARANTINED: how the copy was checked and what became of the source version, as verified."""
    from macie_chatops.quarantine_plan import CopyCheck, SourceFate

    checked = (
        "The copy was checked by its size only (it carries no checksum record)"
        if facts.copy is CopyCheck.SIZE_ONLY
        else "The copy was verified (size and checksum)"
    )
    if facts.source is SourceFate.DELETED:
        return f"{checked} before the source version was deleted."
    if facts.source is SourceFate.KEPT:
        kept = code_span(facts.kept_version, 200)
        return f"{checked}, but the finding's version is still listed in its bucket (version {kept})."
    if facts.source is SourceFate.GONE:
        return f"{checked}; the source version was already gone from its bucket."
    return f"{checked}; whether the source version is gone was not checked."


def build_quarantined_message(
    summary: FindingSummary,
    *,
    approver: str | None,
    at: When,
    quarantine_bucket: str,
    quarantine_key: str,
    older_versions: int | None,
    notice: str | None = None,
    facts: MoveFacts | None = None,
) -> SlackMessage:
    """QUARANTINED: where the object is now, who approved, what remains; Restore (confirmed).

    ``facts``: what the mover verified (the sentences are written from them); None for a record from before
    the mover kept them, whose ``older_versions`` counted every other version of the key.
    ``notice``: why the object is (still) here, e.g. "Restore refused: …" when a restore was not done."""
    status = _lines(
        f"*Quarantined* {_object(summary)}.",
        f"Approved {_who(approver)}; moved on {_when(at)}.",
    )
    if facts is None:
        left = (
            "Other versions of this key were not checked."
            if older_versions is None
            else f"{_plural(older_versions, 'other version')} of this key "
            f"{'remains' if older_versions == 1 else 'remain'} in the bucket."
        )
        told: tuple[str, ...] = ("The copy was verified.", left)
    else:
        told = (_copy_sentence(facts), *key_sentences(facts))
    outcome = _lines(f"*Now at:* {_s3_uri(quarantine_bucket, quarantine_key)}", *told)
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


def _kept_version(summary: FindingSummary, facts: MoveFacts) -> str:
    return f"{_s3_uri(summary.bucket, summary.key)} (version {code_span(facts.kept_version or 'null', 200)})"


def blocked_where(summary: FindingSummary, *, reason_code: str, facts: MoveFacts, copy: str | None) -> tuple[str, ...]:
    """BLOCKED: where the finding's bytes are and what an operator may do, from what the mover verified
    (``copy``: the quarantine copy as displayed, when one is kept). Never tells anyone to delete an object
    that is not the finding's version."""
    from macie_chatops.quarantine_plan import AtKey, SourceFate

    if copy is not None:
        if facts.source is SourceFate.KEPT:
            when = "Once the lock or permission allows it, delete" if reason_code == "locked" else "To finish, delete"
            only = "" if facts.at_key is AtKey.FINDING else ", never the key's current object"
            return (
                f"*Both copies are kept:* the finding's version is still at {_kept_version(summary, facts)} and "
                f"a verified copy is at {copy}.",
                f"{when} that version by hand, by its version id{only}.",
            )
        if facts.source in (SourceFate.GONE, SourceFate.DELETED):
            return (
                f"*The finding's object is only in quarantine now:* a verified copy is at {copy}; it is no longer "
                "in its bucket.",
                "Do not delete anything at the key by hand for this finding: what the key holds now is not the "
                "object Macie scanned.",
            )
        return (
            f"A verified copy is at {copy}. Whether the finding's version is still in its bucket was not checked: "
            f"delete nothing by hand but a version whose ETag is {code_span(summary.etag, 100)}.",
        )
    if facts.source is SourceFate.KEPT:
        return (f"Nothing was moved: the finding's version is still at {_kept_version(summary, facts)}.",)
    if reason_code == "missing":
        return ("Nothing was moved: the finding's version is in neither its bucket nor the quarantine bucket.",)
    if facts.source is SourceFate.GONE:
        return ("Nothing was moved: the object Macie scanned is no longer in its bucket.",)
    return (f"Nothing was moved or deleted; where {_object(summary)} stands now was not checked.",)


def build_blocked_message(
    summary: FindingSummary,
    *,
    approver: str | None,
    at: When,
    reason_code: str,
    detail: str = "",
    quarantine_bucket: str | None = None,
    quarantine_key: str | None = None,
    facts: MoveFacts | None = None,
) -> SlackMessage:
    """BLOCKED: the move stopped safely. Says truthfully where the data is; never claims a quarantine.

    ``facts``: what the mover verified (the sentences are written from them); None for a record from before
    the mover kept them: then the message claims nothing about the source it cannot know."""
    if reason_code not in BLOCKED_REASONS:
        raise ValueError(f"unknown blocked reason {reason_code!r}; expected one of {sorted(BLOCKED_REASONS)}")
    copy = (
        _s3_uri(quarantine_bucket, quarantine_key)
        if quarantine_bucket is not None and quarantine_key is not None
        else None
    )
    if reason_code == "locked":
        why = "S3 Object Lock, a legal hold or a policy prevents deleting the source version."
    elif reason_code == "changed":
        why = "The object at the key changed since Macie scanned it (its ETag no longer matches the finding)."
    elif reason_code == "missing":
        why = "The object version named by the finding no longer exists."
    else:
        why = "Access was denied to the remediation role."
    if facts is not None:
        where = blocked_where(summary, reason_code=reason_code, facts=facts, copy=copy)
        if facts.listed and (copy is not None or reason_code == "changed"):
            where = (*where, *key_sentences(facts))
    elif copy is not None:
        where = (
            f"A verified copy is at {copy}. Check what {_object(summary)} holds before deleting anything by hand: "
            f"delete only a version whose ETag is {code_span(summary.etag, 100)}.",
        )
    else:
        where = ("Nothing was moved.",)
    status = _lines(
        f"*Blocked:* {why}",
        f"Approved {_who(approver)}; stopped on {_when(at)}.",
    )
    outcome = _lines(*where, f"*Detail:* {_fit(detail, 1000)}" if detail else None)
    return _render(summary, title=_BLOCKED_TITLES[reason_code], status=status, outcome=(outcome,))


def _retry_command(summary: FindingSummary) -> str:
    return code_span(f"macie-chatops retry {summary.finding_id}", 300)


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
    default: the error shown) and runs ``macie-chatops retry FINDING_ID``. The message claims nothing about where
    the object is beyond the mover's rule (no delete before a verified copy); the error says more."""
    command = _retry_command(summary)
    if retryable:
        title = ":x: Quarantine attempt failed"
        status = _lines(
            f"*The quarantine attempt failed* on {_when(at)}; it will be retried automatically.",
            f"Approved {_who(approver)}. No attempt deletes {_object(summary)} before its quarantine copy is "
            "verified: its bytes are in its bucket or in quarantine, and a retry picks up where this attempt stopped.",
        )
        next_step = (
            "*If it keeps failing:* the job ends in the remediation dead-letter queue; once the cause is fixed, "
            f"an operator runs {command}."
        )
    else:
        title = ":x: Quarantine failed"
        status = _lines(
            f"*The quarantine failed* on {_when(at)} and will not be retried automatically.",
            f"Approved {_who(approver)}. Nothing was deleted by this attempt; the object named by the finding is "
            f"{_object(summary)}.",
        )
        todo = _fit(fix, 1000) if fix else "fix the cause of the error above"
        next_step = f"*To quarantine it:* {todo}, then an operator runs {command}."
    outcome = _lines(f"*Error:* {_fit(error, 1000)}", next_step)
    return _render(summary, title=title, status=status, outcome=(outcome,))


def build_stuck_message(summary: FindingSummary, *, approver: str | None, at: When, requeues: int) -> SlackMessage:
    """APPROVED with no outcome: the sweeper re-queued the job ``requeues`` times and stopped; operators are alerted.

    Nothing says where the object is (an attempt may have been cut off at any step, and every step is
    recoverable), so the message does not guess; it says who must act and how the job is re-queued."""
    command = code_span(f"macie-chatops sweep --requeue {summary.finding_id}", 300)
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
    version = f" as version {code_span(restored_version_id, 200)}" if restored_version_id else " (unversioned bucket)"
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
    console = escape_url(summary.console_url)
    fallback = _fit(f"Macie reported this object version again: finding {summary.finding_id}", MAX_FALLBACK_TEXT)
    return SlackMessage(
        text=fallback,
        blocks=(
            SectionBlock(text=_md(text)),
            ContextBlock(elements=[_md(f"<{console}|Open in the Macie console>")]),
        ),
    )


def build_dismissed_with_reason_message(
    summary: FindingSummary, *, by: str, at: When, reason: str, exemption: str
) -> SlackMessage:
    """DISMISSED through the dismissal form (docs/architecture.md §16): who, why (raw text, escaped here), and
    the exemption it created (``exemption``: raw text such as "every object under s3://b/p/ ... until ...")."""
    status = _lines(
        f"*Dismissed* by {_who(by)} on {_when(at)}.",
        f"The object was not moved: {_object(summary)}.",
        f"*Reason:* {_fit(reason, 600)}",
        f"*Exemption:* {_fit(exemption, 900)}",
    )
    return _render(summary, title=":white_check_mark: Dismissed", status=status)


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
    "build_dismissed_with_reason_message",
    "build_duplicate_message",
    "build_duplicate_reply",
    "build_failed_message",
    "build_notify_message",
    "build_quarantined_message",
    "build_restored_message",
    "build_restoring_message",
    "build_review_message",
    "code_span",
    "escape_mrkdwn",
    "escape_url",
    "human_size",
    "shorten",
    "text_chars",
]
