"""A group's Slack messages (docs/architecture.md §22): the digest, updated in place, and its thread pages.

Pure, like ``slack_messages`` (whose escaping and limits it uses): keys, buckets and finding types are untrusted
text. The digest's bulk buttons carry a :class:`BulkBinding`: the group and how many members it listed when it
was rendered (``upto``), so a bulk decision acts on what the approver saw and nothing that arrived since. A page
is posted once and never updated: its states are the members' when it was listed; live counts are the digest's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from macie_chatops import names
from macie_chatops.groups import PAGE_SIZE, GroupMember, GroupPage, GroupView
from macie_chatops.slack_messages import (
    MAX_HEADER_TEXT,
    MAX_MESSAGE_TEXT_CHARS,
    MAX_SECTION_TEXT,
    SlackMessage,
    code_span,
    shorten,
    text_chars,
)
from macie_chatops.slack_messages import _field as field
from macie_chatops.slack_messages import _fit as fit
from macie_chatops.slack_messages import _md as md
from macie_chatops.slack_messages import _when as when
from macie_chatops.states import State
from macie_chatops.vocabulary import Action  # not config: the digest writer reads no config (docs/architecture.md §6)

GROUP_ID_RE: Final = re.compile(r"[0-9a-f]{32}")  # uuid4().hex (group_store)
MAX_FIRST_KEYS: Final = 5
MAX_PREFIXES: Final = 8
MAX_OPTION_TEXT: Final = 26  # a select option's text (Slack allows 75): 100 of them count towards the message
MIN_KEY_CHARS: Final = 12  # a page never shortens a key below this, whatever the budget says
PAGE_MARGIN: Final = 100  # characters a page keeps unused below MAX_MESSAGE_TEXT_CHARS
BULK_BLOCK_PREFIX: Final = "macie_chatops.bulk"

# The order and the words of each state, in the digest and in a page.
STATE_WORDS: Final[Mapping[State, str]] = {
    State.RECEIVED: "being posted",
    State.PENDING_APPROVAL: "awaiting approval",
    State.APPROVED: "being quarantined",
    State.QUARANTINED: "quarantined",
    State.BLOCKED: "blocked",
    State.FAILED: "failed",
    State.DISMISSED: "dismissed",
    State.DUPLICATE: "duplicate",
    State.NOTIFIED: "for information",
    State.IGNORED: "ignored",
    State.REJECTED: "rejected",
    State.RESTORE_REQUESTED: "being restored",
    State.RESTORED: "restored",
    State.PUBLIC_ACCESS_BLOCKED: "public access blocked",
    State.UNDO_REQUESTED: "being undone",
    State.UNDONE: "undone",
}
SEVERITY_ORDER: Final = ("High", "Medium", "Low")
_CONTROLS: Final = str.maketrans({code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"})


# --------------------------------------------------------------------------------------------------------
# The bulk buttons' binding
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkBinding:
    """What a bulk button is bound to: the group, the members 1..``upto`` listed when the digest was rendered,
    and the group's version then (for the log and the audit: ``upto`` alone decides who is acted on). ``start``:
    the first member to act on, past 1 only on the "Continue" button of a click that ran out of time."""

    group_id: str
    upto: int
    version: int
    start: int = 1

    def encode(self) -> str:
        fields: dict[str, str | int] = {"group": self.group_id, "upto": self.upto, "version": self.version}
        if self.start > 1:
            fields["from"] = self.start
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str) -> BulkBinding | None:
        """The binding in a button's value, or None for anything but exactly what :meth:`encode` writes."""
        try:
            raw = json.loads(value)
        except (ValueError, RecursionError):
            return None
        if not isinstance(raw, dict) or set(raw) - {"from"} != {"group", "upto", "version"}:
            return None
        group, upto, version, start = raw["group"], raw["upto"], raw["version"], raw.get("from", 1)
        if not isinstance(group, str) or not GROUP_ID_RE.fullmatch(group):
            return None
        if any(type(number) is not int for number in (upto, version, start)):
            return None
        if not 1 <= upto <= 10**9 or not 0 <= version <= 10**12 or not 1 <= start <= upto:
            return None
        if "from" in raw and start == 1:
            return None  # encode never writes it
        return cls(group, upto, version, start)


# --------------------------------------------------------------------------------------------------------
# The digest
# --------------------------------------------------------------------------------------------------------


def _count(counts: Mapping[State, int], state: State) -> int:
    return max(0, counts.get(state, 0))  # a count adjusted by ADD -1/+1 may dip below zero for a moment


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _title(view: GroupView) -> str:
    findings = _plural(view.member_count, "finding")
    if view.action is Action.REVIEW:
        pending = _count(view.state_counts, State.PENDING_APPROVAL)
        return f":warning: {findings}, {pending:,} awaiting approval" if pending else f":card_file_box: {findings}"
    if view.action is Action.AUTO:
        return f":rotating_light: Automatic quarantine of {findings}"
    return f":information_source: {findings} for information"


def _header(view: GroupView) -> HeaderBlock:
    text = f"{_title(view)}: {view.account_name or view.account_id}"
    return HeaderBlock(text=PlainTextObject(text=shorten(text, MAX_HEADER_TEXT), emoji=True))


def _bucket(view: GroupView) -> str:
    return code_span(f"s3://{view.bucket}/", 300)


def _status(view: GroupView) -> str:
    seen = (
        f"Macie reported {_plural(view.member_count, 'finding')} of type {fit(view.finding_type, 200)} in "
        f"{_bucket(view)} between {when(view.opened_at)} and {when(view.last_joined_at)}."
    )
    if view.action is Action.REVIEW:
        if _count(view.state_counts, State.PENDING_APPROVAL) and view.listed_count:
            asked = (
                f"*Approval needed:* an approver of this team can quarantine or dismiss the "
                f"{_plural(view.listed_count, 'finding')} listed in the thread at once, or act on each one there."
            )
        else:
            asked = "No finding of this group is awaiting approval."
    elif view.action is Action.AUTO:
        asked = "*Automatic quarantine:* each finding's object is moved by policy; the tally shows the outcomes."
    else:
        asked = "*For information:* no action will be taken on the objects."
    return f"{seen}\n{asked}"


def _severities(counts: Mapping[str, int]) -> str:
    known = [name for name in SEVERITY_ORDER if counts.get(name, 0) > 0]
    others = sorted(name for name, count in counts.items() if name not in SEVERITY_ORDER and count > 0)
    parts = [f"{fit(name, 20)} {counts[name]:,}" for name in (*known, *others[:3])]
    if len(others) > 3:
        parts.append(f"{len(others) - 3} more")
    return " · ".join(parts) or "none"


def _fields(view: GroupView) -> SectionBlock:
    account = code_span(view.account_id, 40)
    if view.account_name:
        account = f"{fit(view.account_name, 200)} ({account})"
    listed = f"{view.member_count:,} ({view.listed_count:,} listed in the thread)"
    return SectionBlock(
        fields=[
            field("Account", account),
            field("Bucket", _bucket(view)),
            field("Finding type", fit(view.finding_type, 200)),
            field("Findings", listed),
            field("Severity", _severities(view.severity_counts)),
        ]
    )


def _states(view: GroupView) -> str:
    counts = view.state_counts
    lines = [f"• {words.capitalize()}: {_count(counts, state):,}" for state, words in STATE_WORDS.items()]
    shown = [line for line, state in zip(lines, STATE_WORDS, strict=True) if _count(counts, state)]
    head = "*By state*"
    if view.action is Action.AUTO:
        tally = " · ".join(
            f"{STATE_WORDS[state]} {_count(counts, state):,}"
            for state in (State.QUARANTINED, State.BLOCKED, State.FAILED, State.APPROVED)
        )
        head = f"*Tally:* {tally}\n{head}"
    return "\n".join([head, *(shown or ["• none recorded yet"])])


def _keys(view: GroupView) -> str:
    keys = [f"• {code_span(key, 200)}" for key in view.first_keys[:MAX_FIRST_KEYS]]
    ranked = sorted(view.prefixes.items(), key=lambda item: (-item[1], item[0]))
    prefixes = [f"{code_span(prefix, 100)} {count:,}" for prefix, count in ranked[:MAX_PREFIXES]]
    if len(ranked) > MAX_PREFIXES:
        prefixes.append(f"and {_plural(len(ranked) - MAX_PREFIXES, 'more prefix')}".replace("prefixs", "prefixes"))
    lines = ["*First keys*", *(keys or ["• none recorded yet"]), "*By prefix*", " · ".join(prefixes) or "none"]
    return "\n".join(lines)


def _context(view: GroupView, now: datetime) -> ContextBlock:
    pages = -(-view.listed_count // PAGE_SIZE)
    listed = (
        f"Findings 1–{view.listed_count:,} are listed in this thread ({_plural(pages, 'reply')}, "
        f"{PAGE_SIZE} findings each)".replace("replys", "replies")
        if view.listed_count
        else "No finding is listed in the thread yet"
    )
    later = view.member_count - view.listed_count
    if later > 0:
        listed += f"; {later:,} more are being listed"
    return ContextBlock(
        elements=[
            md(listed + "."),
            md(f"Updated {when(now)}"),
            md(f"Group {code_span(view.group_id, 140)}, version {view.version:,}"),
        ]
    )


def bulk_buttons(view: GroupView) -> ActionsBlock:
    """ "Quarantine all N" and "Dismiss all N", each with Slack's confirm dialog, bound to the listed members. N is
    how many of them still await approval (the members are listed without holes, so the group's count is theirs)."""
    upto = view.listed_count
    waiting = min(upto, _count(view.state_counts, State.PENDING_APPROVAL))
    value = BulkBinding(view.group_id, upto, view.version).encode()
    account = code_span(view.account_id, 20)
    quarantine = ButtonElement(
        text=PlainTextObject(text=f"Quarantine all {waiting:,}"),
        action_id=names.ACTION_BULK_REMEDIATE,
        value=value,
        style="danger",
        confirm=ConfirmObject(
            title=PlainTextObject(text=f"Quarantine {_plural(waiting, 'finding')}?"),
            text=md(
                f"Move the objects of findings 1–{upto:,} listed in the thread (those still awaiting approval) into "
                f"the quarantine bucket of account {account}? Each gets its own job and outcome; findings that "
                "arrived later are not included."
            ),
            confirm=PlainTextObject(text="Quarantine all"),
            deny=PlainTextObject(text="Cancel"),
            style="danger",
        ),
    )
    dismiss = ButtonElement(
        text=PlainTextObject(text=f"Dismiss all {waiting:,}"),
        action_id=names.ACTION_BULK_DISMISS,
        value=value,
        confirm=ConfirmObject(
            title=PlainTextObject(text=f"Dismiss {_plural(waiting, 'finding')}?"),
            text=md(
                f"You will be asked why, once: the reason applies to each of findings 1–{upto:,} listed in the "
                "thread that is still awaiting approval. Findings that arrived later are not included."
            ),
            confirm=PlainTextObject(text="Continue"),
            deny=PlainTextObject(text="Cancel"),
        ),
    )
    # A new block id for each rendering: Slack keeps a block's state by its id across updates.
    return ActionsBlock(block_id=f"{BULK_BLOCK_PREFIX}.{upto}.{view.version}", elements=[quarantine, dismiss])


def offers_bulk(view: GroupView) -> bool:
    """A review group with listed members, some still awaiting approval, has the bulk buttons."""
    return (
        view.action is Action.REVIEW and view.listed_count > 0 and _count(view.state_counts, State.PENDING_APPROVAL) > 0
    )


def render_digest(view: GroupView, *, now: datetime) -> SlackMessage:
    """The group's one live message: what, where, how many in each state, the first keys and prefixes, the
    severity mix, the auto tally, and for a review group the bulk buttons bound to what it lists."""
    blocks: list[Block] = [
        _header(view),
        SectionBlock(text=md(_status(view))),
        _fields(view),
        SectionBlock(text=md(_states(view))),
        SectionBlock(text=md(_keys(view))),
        _context(view, now),
    ]
    if offers_bulk(view):
        blocks.append(bulk_buttons(view))
    counted = ", ".join(
        f"{_count(view.state_counts, state):,} {words}"
        for state, words in STATE_WORDS.items()
        if _count(view.state_counts, state)
    )
    where = f"{view.finding_type} in s3://{view.bucket}/ ({view.account_name or view.account_id})"
    # The title is ours (counts and an emoji shortcode, which escaping would break: "_" becomes "ˍ"); only the
    # rest carries what a finding says.
    title = f"{_title(view)}: "
    fallback = title + fit(where + (f": {counted}" if counted else ""), 600 - len(title))
    return SlackMessage(text=fallback, blocks=tuple(blocks))


# --------------------------------------------------------------------------------------------------------
# A thread page
# --------------------------------------------------------------------------------------------------------


def _common_state(members: Sequence[GroupMember]) -> State | None:
    states = [member.state for member in members]
    return max(set(states), key=lambda state: (states.count(state), state.value)) if states else None


def _line(member: GroupMember, key_chars: int, common: State | None) -> str:
    state = "" if member.state is common else f" · {STATE_WORDS.get(member.state, member.state.value.lower())}"
    return (
        f"{member.seq}. {code_span(member.key, key_chars)} · {fit(member.severity, 20)}{state} · "
        f"{code_span(member.finding_id, 64)}"
    )


def _key_budget(members: Sequence[GroupMember], budget: int, common: State | None) -> int:
    """The largest key length (in characters) at which every member's line fits ``budget`` together."""
    longest = max((len(member.key) for member in members), default=MIN_KEY_CHARS)

    def total(chars: int) -> int:
        return sum(len(_line(member, chars, common)) + 1 for member in members)

    low, high, best = MIN_KEY_CHARS, max(MIN_KEY_CHARS, longest + 10), MIN_KEY_CHARS
    while low <= high:
        middle = (low + high) // 2
        if total(middle) <= budget:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return best


def _sections(lines: Sequence[str]) -> list[SectionBlock]:
    sections: list[SectionBlock] = []
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > MAX_SECTION_TEXT:
            sections.append(SectionBlock(text=md("\n".join(chunk))))
            chunk = []
        chunk.append(line)
    if chunk:
        sections.append(SectionBlock(text=md("\n".join(chunk))))
    return sections


def _option_text(member: GroupMember) -> str:
    head = f"{member.seq}. "
    return head + shorten(member.key.translate(_CONTROLS), MAX_OPTION_TEXT - len(head))


def act_on_one(page: GroupPage) -> ActionsBlock:
    """The page's members in a select: choosing one answers with that finding's own buttons (``bulk.py``)."""
    options = [Option(value=member.finding_id, text=_option_text(member)) for member in page.members[:PAGE_SIZE]]
    select = StaticSelectElement(
        action_id=names.ACTION_ACT_ON_ONE,
        placeholder=PlainTextObject(text="Act on one finding…"),
        options=options,
    )
    return ActionsBlock(block_id=f"macie_chatops.page.{page.number}", elements=[select])


def render_page(view: GroupView, page: GroupPage) -> SlackMessage:
    """One thread reply listing up to :data:`PAGE_SIZE` members (seq, key, severity, finding id, and the state
    when listed where it is not the page's usual one); a review group's page lets anyone act on one member."""
    members = page.members
    first = members[0].seq if members else (page.number - 1) * PAGE_SIZE + 1
    last = members[-1].seq if members else first - 1
    common = _common_state(members)
    usual = f", all {STATE_WORDS.get(common, common.value.lower())} unless said" if common is not None else ""
    title = (
        f"*Findings {first:,}–{last:,}* of this group ({fit(view.finding_type, 200)} in {_bucket(view)}), "
        f"as they were when listed{usual}: seq, key, severity, finding id."
    )
    head: list[Block] = [SectionBlock(text=md(title))]
    tail: list[Block] = [act_on_one(page)] if view.action is Action.REVIEW and members else []
    fallback = fit(f"Findings {first:,}–{last:,} of the group: {view.finding_type} in s3://{view.bucket}/", 600)
    used = text_chars([block.to_dict() for block in (*head, *tail)]) + len(fallback)
    budget = MAX_MESSAGE_TEXT_CHARS - PAGE_MARGIN - used
    key_chars = _key_budget(members, budget, common)
    lines = [_line(member, key_chars, common) for member in members] or ["No member is recorded on this page."]
    return SlackMessage(text=fallback, blocks=(*head, *_sections(lines), *tail))


# Slack message metadata (chat.postMessage ``metadata``, read back by conversations.replies with
# include_all_metadata): names a posted page, so a writer that died before recording its ts finds it in the thread.
PAGE_EVENT_TYPE: Final = "macie_chatops_page"


def page_metadata(page: GroupPage) -> dict[str, object]:
    """The metadata a page is posted with: its group and number (nothing a person sees)."""
    return {"event_type": PAGE_EVENT_TYPE, "event_payload": {"group_id": page.group_id, "page": page.number}}


def is_page(metadata: object, page: GroupPage) -> bool:
    """Whether a thread reply's ``metadata`` (as Slack returns it, untrusted shape) names ``page``."""
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != PAGE_EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    if not isinstance(payload, Mapping):
        return False
    number = payload.get("page")
    return payload.get("group_id") == page.group_id and type(number) is int and number == page.number


def describe_binding(binding: BulkBinding) -> str:
    """For audit lines and logs: which group and which members a bulk click was bound to."""
    return f"group {binding.group_id} findings 1-{binding.upto} (version {binding.version})"
