"""Finding floods (docs/architecture.md §22): the group of findings that share one Slack digest, as pure values.

A group is keyed by (channel, account, bucket, finding type, action); its members are numbered 1, 2, ... in the
order they joined (``seq``) and listed in thread pages of :data:`PAGE_SIZE`. The DynamoDB side is
``group_store``; the messages are ``digest_messages``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from macie_chatops.states import State
from macie_chatops.vocabulary import Action

PAGE_SIZE: Final = 100  # members per thread reply: ~100 page posts per 10,000 findings (the budget)
GROUPED_ACTIONS: Final = frozenset({Action.REVIEW, Action.AUTO, Action.NOTIFY})


@dataclass(frozen=True, slots=True)
class GroupKey:
    """What findings must share to be one group. ``digest`` names it in the table (no Slack id or bucket name
    in a key, and a fixed length)."""

    channel: str
    account_id: str
    bucket: str
    finding_type: str
    action: Action

    @property
    def digest(self) -> str:
        parts = [self.channel, self.account_id, self.bucket, self.finding_type, self.action.value]
        return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class GroupMember:
    seq: int
    finding_id: str
    key: str
    severity: str
    state: State  # the member's state when its page was written (a page is posted once, never updated)


@dataclass(frozen=True, slots=True)
class GroupPage:
    group_id: str
    number: int  # 1-based: members (number - 1) * PAGE_SIZE + 1 .. number * PAGE_SIZE
    members: tuple[GroupMember, ...]
    ts: str | None  # the thread reply's ts once posted
    post_attempted_at: str | None = None  # a post was started then (it may be in Slack): read the thread first

    @property
    def full(self) -> bool:
        return len(self.members) >= PAGE_SIZE


@dataclass(frozen=True, slots=True)
class GroupView:
    """A group as the digest shows it. ``listed_count``: members 1..listed_count are all recorded (the contiguous
    prefix); a bulk decision binds it (``upto``) with ``version``."""

    group_id: str
    channel: str
    account_id: str
    account_name: str
    bucket: str
    finding_type: str
    action: Action
    opened_at: str
    last_joined_at: str
    member_count: int
    listed_count: int
    state_counts: Mapping[State, int]
    severity_counts: Mapping[str, int]
    first_keys: tuple[str, ...]
    prefixes: Mapping[str, int]
    version: int


def page_number(seq: int) -> int:
    """The page listing member ``seq`` (1-based)."""
    if seq < 1:
        raise ValueError(f"a member's seq starts at 1, not {seq}")
    return (seq - 1) // PAGE_SIZE + 1


def key_prefix(key: str) -> str:
    """The prefix summarised in the digest: the object key's first folder, or ``/`` for a key at the root."""
    head, sep, _ = key.partition("/")
    return f"{head}/" if sep else "/"


class GroupViews(Protocol):
    """Read a group as its digest shows it (``group_store.GroupStore``)."""

    def view(self, group_id: str) -> GroupView | None: ...
