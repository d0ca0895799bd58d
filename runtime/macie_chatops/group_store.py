"""The groups of findings in the state table (docs/architecture.md §22), every change a conditional write.

Items (none carries an index key, so no finding listing sees them; ``FindingStore.get`` of their keys is None):
``groupkey#<sha256 of the group key>`` -> the group open for that key; ``group#<id>`` -> the group (counts, the
digest message, pages posted, the dirty flag and version); ``group#<id>#page#<n>`` -> members
``(n-1)*PAGE_SIZE+1 .. n*PAGE_SIZE``, one attribute ``m<seq>`` each.

A join is one transaction, optimistic on the group's ``member_count``: the count goes up by one, the member is
written into its page and ``group_id``/``group_seq`` onto the finding's record, all or nothing. So every member
has exactly one seq, the seqs have no holes (``listed_count`` is ``member_count``), and a finding joins once
whatever its deliveries do. Joins of one group that collide are retried (a burst is a handful of writers). The
finding handler creates the record in the join's transaction (``join_with``: the record born with its group).
A store's next join of a key builds on the group as its own last join left it, for a few seconds, instead of reading
it (``_Known``): the transaction's conditions refuse it if anyone changed what the join depends on.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Protocol

from macie_chatops.errors import MacieChatOpsError
from macie_chatops.groups import PAGE_SIZE, GroupKey, GroupMember, GroupPage, GroupView, key_prefix, page_number
from macie_chatops.names import STATE_TABLE_KEY, STATE_TABLE_TTL_ATTRIBUTE
from macie_chatops.ports import Clock, utcnow
from macie_chatops.states import State
from macie_chatops.store import RETENTION_DAYS, FindingRecord
from macie_chatops.vocabulary import Action

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

GROUP_PREFIX: Final = "group#"
GROUP_KEY_PREFIX: Final = "groupkey#"
GROUP_ITEM_TYPE: Final = "finding_group"
GROUP_KEY_ITEM_TYPE: Final = "finding_group_key"
GROUP_PAGE_ITEM_TYPE: Final = "finding_group_page"
FIRST_KEYS: Final = 5  # object keys the digest names
MAX_PREFIXES: Final = 20  # distinct prefixes counted by name; the others are counted together
MAX_JOIN_ATTEMPTS: Final = 50
# A group dirty for longer than this has lost its wake-up (the writer's message dead-lettered): the next mark
# sends another.
STALE_DIRTY: Final = timedelta(minutes=5)
# The writer wakes this long after the first change it must show: the changes of a burst meanwhile are one update.
DIGEST_PACE_S: Final = 3
# A group's digest updates come further apart the more it has had (3, 6, 12, ... s, then every 2 minutes): a flood
# that lasts minutes costs a dozen updates per group, not one every few seconds (issue 14: 200 writes per 10,000).
MAX_DIGEST_INTERVAL_S: Final = 120
# ... unless the group has stopped changing: once it has been quiet this long, its digest is updated at once, so the
# final counts of a burst show within seconds; the back-off only spaces the updates of a group that keeps changing.
QUIET_S: Final = 5
# A wake-up of the writer claimed this close to now is the one running (SQS may deliver a little early).
WAKE_TOLERANCE: Final = timedelta(seconds=1)


def digest_interval(updates: int) -> int:
    """Seconds to wait after a group's ``updates``-th digest update before the next one."""
    return min(MAX_DIGEST_INTERVAL_S, DIGEST_PACE_S * 2 ** min(updates, 16))


def update_due(*, updated_at: datetime | None, updates: int, changed_at: datetime | None) -> datetime | None:
    """When a dirty group's digest may be updated: at once (None) before its first update; else once the interval
    its ``updates`` earned has passed since the last, or sooner, :data:`QUIET_S` after its last change."""
    if updated_at is None:
        return None
    backoff = updated_at + timedelta(seconds=digest_interval(updates))
    return backoff if changed_at is None else min(backoff, changed_at + timedelta(seconds=QUIET_S))


MAX_SQS_DELAY_S: Final = 900
# The open group last seen per group key, per store (a warm container's): at most this many keys remembered.
MAX_KNOWN_GROUPS: Final = 1000
# A join builds on the group as this store's last join of it left it, without reading it, for this long after the read
# that state descends from (its attributes no join condition pins, dirty_at, are then at most this old; far below
# STALE_DIRTY, the only time a join compares them with). Longer buys little (one read per this many seconds), and a
# frozen Lambda container's memory is past it when the container thaws.
REMEMBER_GROUP: Final = timedelta(seconds=5)
# ... and not for this long after another store's join of the group refused one of this store's: several containers
# are joining it, so a remembered group would mostly be stale, and a refused TransactWriteItems costs the write
# capacity of all its items where the read it saves costs one read unit (at most one refusal per this time per
# container is wasted on a group others join too).
CONTENDED: Final = timedelta(seconds=10)


logger = logging.getLogger(__name__)


class GroupStoreError(MacieChatOpsError):
    """A group could not be joined or read as it must be."""


class GroupGoneError(GroupStoreError):
    """The group item is not in the table (expired: its members' records can outlive it)."""


@dataclass(frozen=True)
class NewMember:
    finding_id: str
    key: str
    severity: str
    state: State  # the state the finding enters with its intake


@dataclass(frozen=True)
class Joined:
    group_id: str
    seq: int
    # The join marked the group dirty and a wake-up of the writer is due after this many seconds (None: none is due,
    # one is on its way, or the join opened the group: a group of one renders nothing)
    wake_in_s: int | None = None

    @property
    def first(self) -> bool:
        return self.seq == 1


@dataclass(frozen=True)
class Refused:
    """A :meth:`GroupStore.join_with` transaction refused by the caller's own items, nothing written: DynamoDB's
    reason for each item its condition refused (``Code``; ``Item``, the item as it was, when the item asked for it),
    by the item's index among the caller's."""

    reasons: Mapping[int, Mapping[str, Any]]


# A caller's TransactWriteItems for a join's transaction, given the group id and the seq the member gets.
CallerItems = Callable[[str, int], Sequence[Any]]
_Tail = Callable[[str, int], list[Any]]


@dataclass(frozen=True)
class _Known:
    """What a store knows of a key's open group: its id (the key's pointer named it: a join reads that group alone),
    and for :data:`REMEMBER_GROUP` the group as this store's last join of it left it, in what a join reads
    (:data:`_JOIN_READS`): the next join is then built on it without a read."""

    group_id: str
    group: Mapping[str, Any] | None = None
    read_at: datetime | None = None  # when the read the remembered group descends from was made
    contended_until: datetime | None = None  # another store joined the group lately: nothing remembered is used


@dataclass(frozen=True)
class GroupItem:
    """The group item as the digest writer reads it."""

    view: GroupView
    dirty: bool
    window_s: int
    max_age_s: int
    first_finding_id: str
    digest_channel: str | None
    digest_ts: str | None
    pages_posted: int  # pages 1..pages_posted are posted in the digest's thread
    close_wake_at: str | None
    updated_at: str | None = None  # the digest's last update
    updates: int = 0  # the digest's updates so far
    changed_at: str | None = None  # the group's last change (a join or a member's move)

    @property
    def update_due_at(self) -> datetime | None:
        """When the digest may be updated (None: at once): :func:`update_due`."""
        return update_due(
            updated_at=None if self.updated_at is None else _parse(self.updated_at),
            updates=self.updates,
            changed_at=None if self.changed_at is None else _parse(self.changed_at),
        )

    @property
    def closes_at(self) -> datetime:
        """When the group stops taking members: the window after the last join, capped by the max age."""
        last = _parse(self.view.last_joined_at) + timedelta(seconds=self.window_s)
        return min(last, _parse(self.view.opened_at) + timedelta(seconds=self.max_age_s))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def group_item_key(group_id: str) -> str:
    return f"{GROUP_PREFIX}{group_id}"


def page_item_key(group_id: str, number: int) -> str:
    return f"{GROUP_PREFIX}{group_id}#page#{number}"


def _member_attribute(seq: int) -> str:
    return f"m{seq}"


class GroupStore:
    """The groups' DynamoDB adapter, on the state table's client and name."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, clock: Clock = utcnow) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._client = client
        self._table = table_name
        self._clock = clock
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()
        # group key digest -> the group its pointer last named: a join then reads that group alone (one GetItem, not
        # the pointer and then the group) and its transaction checks that the pointer still names it; or reads
        # nothing, building on the group as this store's last join left it (_Known).
        self._known: dict[str, _Known] = {}
        # One join at a time per store: a Lambda container runs one invocation at a time, and where threads share a
        # store (the sandbox's pollers, tests) two joins never build on the same remembered group, so a refusal
        # always means another store or writer changed the group. Uncontended on Lambda; a join is two calls at most.
        self._joining = threading.Lock()

    # -- joining -----------------------------------------------------------------------------------

    def join(
        self,
        key: GroupKey,
        member: NewMember,
        *,
        account_name: str,
        window: timedelta,
        max_age: timedelta,
    ) -> Joined:
        """Add ``member`` to the group open for ``key``, opening one (replacing a closed one) when none is; the
        finding's record gets ``group_id`` and ``group_seq`` in the same transaction. A finding already in a
        group is not joined again: its group and seq are returned."""
        with self._joining:
            joined = self._join(key, member, None, account_name=account_name, window=window, max_age=max_age)
        if isinstance(joined, Refused):  # only a caller's items are reported as refused, and there are none
            raise GroupStoreError(f"finding {member.finding_id}: a join without a caller's items was refused")
        return joined

    def join_with(
        self,
        key: GroupKey,
        member: NewMember,
        items: CallerItems,
        *,
        account_name: str,
        window: timedelta,
        max_age: timedelta,
    ) -> Joined | Refused:
        """:meth:`join` with the caller's TransactWriteItems in the same transaction, all or nothing: ``items(group
        id, seq)`` gives them for each attempt (the finding's record put, born with its group and seq, and its
        object version's claim: the record's creation and the join in one call, issue 18). They replace the join's
        own update of the record. A transaction refused by a condition of one of them is not retried: the refusals
        are returned (:class:`Refused`); refused by the group's count or page alone (a concurrent join), the group
        is read again and the join retried, as :meth:`join` does."""
        with self._joining:
            return self._join(key, member, items, account_name=account_name, window=window, max_age=max_age)

    def _join(
        self,
        key: GroupKey,
        member: NewMember,
        items: CallerItems | None,
        *,
        account_name: str,
        window: timedelta,
        max_age: timedelta,
    ) -> Joined | Refused:
        def tail(group_id: str, seq: int) -> list[Any]:
            return [self._record_write(member.finding_id, group_id, seq)] if items is None else [*items(group_id, seq)]

        returned: tuple[dict[str, Any], datetime] | None = None  # the group as a refusal returned it, not before when
        for _ in range(MAX_JOIN_ATTEMPTS):
            now = self._clock()
            pointed, current, read_at = self._group_to_join(key, now, window, max_age, returned=returned)
            extending = current is not None and _still_open(current, now, window, max_age)
            try:
                if current is not None and extending:
                    joined = self._extend(key, current, member, now, tail)
                else:
                    joined = self._open(key, member, now, account_name, window, max_age, tail, replacing=pointed)
            except self._client.exceptions.TransactionCanceledException as exc:
                cancelled = _Cancellation.of(exc.response, _EXTEND_ITEMS if extending else _OPEN_ITEMS)
                if items is not None and cancelled is not None and cancelled.conditional_tail:
                    # The caller's own items (its record exists, its claim is held): not the join's to retry.
                    return Refused(cancelled.conditional_tail)
                if cancelled is not None and cancelled.only_the_group:
                    # Another join of the group won this round (its count or its page), or the digest writer cleaned
                    # it: the pointer and the record were not what refused it. Only the group is read again, or not
                    # even that when the writer cleaned it (the refusal returned it).
                    lost = current if extending else None  # an opening's refusal returns no group of the key's
                    group = None if lost is None else self._refused_by_the_group(key.digest, lost, cancelled, now)
                    returned = None if group is None else (group, now)
                    if group is None:
                        time.sleep(secrets.randbelow(20) / 1000)
                    continue
                # Anything else (or no reasons given): the pointer read again, and the record for an earlier join.
                returned = None
                self._known.pop(key.digest, None)  # read the pointer again: it may name another group
                joined_before = self._joined_already(member.finding_id) if items is None else None
                if joined_before is not None:
                    return joined_before
                time.sleep(secrets.randbelow(20) / 1000)  # another join won this round: read again
                continue
            self._learn(key.digest, joined, current if extending else None, member, now, read_at)
            return joined
        raise GroupStoreError(f"finding {member.finding_id} could not join its group in {MAX_JOIN_ATTEMPTS} attempts")

    def _group_to_join(
        self,
        key: GroupKey,
        now: datetime,
        window: timedelta,
        max_age: timedelta,
        *,
        returned: tuple[dict[str, Any], datetime] | None,
    ) -> tuple[str | None, dict[str, Any] | None, datetime]:
        """The group the key's pointer names (None: it names none), that group's item (as a refusal just ``returned``
        it, as this store remembers it, or read), and when it was read at the earliest. With the group this store saw
        last for the key, only that group is read: the join's transaction then checks the pointer still names it
        (else it is cancelled, and the next attempt reads the pointer)."""
        if returned is not None:
            refused, refused_at = returned
            return str(refused["group_id"]), refused, refused_at
        known = self._known.get(key.digest)
        if known is not None:
            remembered = self._take_remembered(key.digest, known, now, window, max_age)
            if remembered is not None and known.read_at is not None:
                return known.group_id, remembered, known.read_at
            group = self._get(group_item_key(known.group_id))
            if group is not None:
                return known.group_id, group, now
        pointer = self._get(GROUP_KEY_PREFIX + key.digest)
        if pointer is None:
            return None, None, now
        group_id = str(pointer["group_id"])
        return group_id, self._get(group_item_key(group_id)), now

    def _take_remembered(
        self, digest: str, known: _Known, now: datetime, window: timedelta, max_age: timedelta
    ) -> dict[str, Any] | None:
        """The remembered group, taken (it is back only once a join built on it succeeded: a refusal or an error,
        whose write may have applied, leaves nothing remembered), when it may be used: read less than
        :data:`REMEMBER_GROUP` ago, no other store joining the group lately, and still open by it (a group that looks
        closed is read: only the read can say no join extended it meanwhile, and opening a new one pins nothing of
        it)."""
        group, read_at = known.group, known.read_at
        if group is None or read_at is None:
            return None
        self._known[digest] = replace(known, group=None, read_at=None)
        recent = read_at <= now < read_at + REMEMBER_GROUP
        calm = known.contended_until is None or not now < known.contended_until
        return dict(group) if recent and calm and _still_open(group, now, window, max_age) else None

    def _refused_by_the_group(
        self, digest: str, tried: Mapping[str, Any], cancelled: _Cancellation, now: datetime
    ) -> dict[str, Any] | None:
        """After a join of ``tried`` refused by the group alone: the group as the refusal returned it, when only its
        dirty mark moved (the digest writer cleaned it: nobody else is joining, the retry builds on it at once). Else
        None: its count moved (or it was not returned), another store joined it, so the retry waits a random moment
        and reads (joining on the returned group at once, the losers of a round collide again), and for
        :data:`CONTENDED` this store builds on nothing remembered."""
        returned = None if cancelled.group_item is None else self._plain(cancelled.group_item)
        if returned is not None and int(returned["member_count"]) == int(tried["member_count"]):
            return returned
        self._keep(digest, _Known(str(tried["group_id"]), contended_until=now + CONTENDED))
        return None

    def _learn(
        self,
        digest: str,
        joined: Joined,
        extended: Mapping[str, Any] | None,
        member: NewMember,
        now: datetime,
        read_at: datetime,
    ) -> None:
        """Remember the group ``joined`` is in; after a join that ``extended`` a group read at ``read_at``, the group
        as that join left it (:func:`_after_join`). A group this join opened is not remembered: it is clean, and a
        join of a clean group decides its wake-up from attributes only the digest writer moves, which no condition
        pins (a remembered group is always dirty)."""
        known = self._known.get(digest)
        contended = known.contended_until if known is not None and known.group_id == joined.group_id else None
        group = None if extended is None else _after_join(extended, member, now, joined)
        self._keep(digest, _Known(joined.group_id, group, None if group is None else read_at, contended))

    def _keep(self, digest: str, known: _Known) -> None:
        if digest not in self._known and len(self._known) >= MAX_KNOWN_GROUPS:
            self._known.pop(next(iter(self._known)))
        self._known[digest] = known

    def _joined_already(self, finding_id: str) -> Joined | None:
        record = self._get(finding_id)
        if record is None:
            raise GroupStoreError(f"finding {finding_id} has no record to join a group with")
        if "group_id" in record:
            return Joined(str(record["group_id"]), int(record["group_seq"]))
        return None

    def _open(
        self,
        key: GroupKey,
        member: NewMember,
        now: datetime,
        account_name: str,
        window: timedelta,
        max_age: timedelta,
        tail: _Tail,
        *,
        replacing: str | None,
    ) -> Joined:
        group_id = secrets.token_hex(16)
        at = _iso(now)
        expires = int((now + timedelta(days=RETENTION_DAYS)).timestamp())
        prefix = key_prefix(member.key)
        group = {
            STATE_TABLE_KEY: group_item_key(group_id),
            "item_type": GROUP_ITEM_TYPE,
            "group_id": group_id,
            "group_key": key.digest,
            "channel": key.channel,
            "account_id": key.account_id,
            "account_name": account_name,
            "bucket": key.bucket,
            "finding_type": key.finding_type,
            "action": key.action.value,
            "opened_at": at,
            "last_joined_at": at,
            "window_s": int(window.total_seconds()),
            "max_age_s": int(max_age.total_seconds()),
            "member_count": 1,
            "state_counts": {member.state.value: 1},
            "severity_counts": {member.severity: 1},
            "first_keys": [member.key],
            "prefixes": {prefix: 1},
            "other_prefixes": 0,
            "first_finding_id": member.finding_id,
            "pages_posted": 0,
            "version": 1,
            "dirty": False,
            STATE_TABLE_TTL_ATTRIBUTE: expires,
        }
        pointer_names = {"#group": "group_id", "#type": "item_type", "#ttl": STATE_TABLE_TTL_ATTRIBUTE}
        pointer_values: dict[str, Any] = {":group": group_id, ":type": GROUP_KEY_ITEM_TYPE, ":ttl": expires}
        if replacing is None:  # no group was ever opened for the key
            pointer_condition = "attribute_not_exists(#key)"
            pointer_names["#key"] = STATE_TABLE_KEY
        else:  # the closed group it pointed at, unless another join replaced it first
            pointer_condition = "#group = :previous"
            pointer_values[":previous"] = replacing
        self._client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._serialize(group),
                        "ConditionExpression": "attribute_not_exists(#key)",
                        "ExpressionAttributeNames": {"#key": STATE_TABLE_KEY},
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": self._key(GROUP_KEY_PREFIX + key.digest),
                        "UpdateExpression": "SET #group = :group, #type = :type, #ttl = :ttl",
                        "ConditionExpression": pointer_condition,
                        "ExpressionAttributeNames": pointer_names,
                        "ExpressionAttributeValues": self._serialize(pointer_values),
                    }
                },
                self._page_write(group_id, 1, member, expires),
                *tail(group_id, 1),
            ]
        )
        return Joined(group_id, 1)

    def _extend(self, key: GroupKey, group: Mapping[str, Any], member: NewMember, now: datetime, tail: _Tail) -> Joined:
        """The member joins ``group`` as read, in one transaction: the group (its count as read, and its dirty mark
        as read, set now: the digest must show the new member), the member's page, a check that the key's pointer
        still names the group (a group replaced meanwhile takes no member), and the finding's record (``tail``).
        Reads of ``group`` only the attributes of :data:`_JOIN_READS` (a remembered group has no others)."""
        group_id = str(group["group_id"])
        count = int(group["member_count"])
        seq = count + 1
        was_dirty = bool(group.get("dirty", False))
        names = {"#count": "member_count", "#last": "last_joined_at", "#states": "state_counts"}
        names["#state"] = member.state.value
        names |= {"#severities": "severity_counts", "#severity": member.severity}
        names |= {"#dirty": "dirty", "#at": "dirty_at", "#version": "version", "#changed": "changed_at"}
        values: dict[str, Any] = {":count": count, ":seq": seq, ":last": _iso(now), ":zero": 0, ":one": 1}
        values |= {":true": True, ":was_dirty": was_dirty, ":now": _iso(now)}
        sets = [
            "#count = :seq",
            "#last = :last",
            "#states.#state = if_not_exists(#states.#state, :zero) + :one",
            "#severities.#severity = if_not_exists(#severities.#severity, :zero) + :one",
            # The join marks the digest behind (mark_dirty's write, folded in): the condition pins the mark as read,
            # so whether a wake-up is due is decided from what this write replaced.
            "#dirty = :true",
            "#at = if_not_exists(#at, :now)",
            "#changed = :now",
            "#version = #version + :one",
        ]
        prefix = key_prefix(member.key)
        prefixes: Mapping[str, Any] = group.get("prefixes", {})
        if prefix in prefixes or len(prefixes) < MAX_PREFIXES:
            names |= {"#prefixes": "prefixes", "#prefix": prefix}
            sets.append("#prefixes.#prefix = if_not_exists(#prefixes.#prefix, :zero) + :one")
        else:
            names["#others"] = "other_prefixes"
            sets.append("#others = #others + :one")
        if len(group.get("first_keys", ())) < FIRST_KEYS:
            names["#keys"] = "first_keys"
            values[":key"] = [member.key]
            sets.append("#keys = list_append(#keys, :key)")
        expires = int(group[STATE_TABLE_TTL_ATTRIBUTE])
        self._client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": self._key(group_item_key(group_id)),
                        "UpdateExpression": "SET " + ", ".join(sets),
                        "ConditionExpression": "#count = :count AND #dirty = :was_dirty",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": self._serialize(values),
                        # Refused, the group as it is comes back: the retry builds on it instead of reading it.
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                self._page_write(group_id, page_number(seq), member, expires, seq=seq),
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": self._key(GROUP_KEY_PREFIX + key.digest),
                        "ConditionExpression": "#group = :group",
                        "ExpressionAttributeNames": {"#group": "group_id"},
                        "ExpressionAttributeValues": self._serialize({":group": group_id}),
                    }
                },
                *tail(group_id, seq),
            ]
        )
        return Joined(group_id, seq, wake_in_s=self._wake_due(group_id, group, now, was_dirty=was_dirty))

    def _wake_due(self, group_id: str, group: Mapping[str, Any], now: datetime, *, was_dirty: bool) -> int | None:
        """After a write that marked ``group`` (as read before it) dirty: the delay of the writer's wake-up it made
        due, as :meth:`mark_dirty` decides it."""
        if not was_dirty:
            return _next_update_delay(group, now)
        since = group.get("dirty_at")
        if since is None or _parse(str(since)) > now - STALE_DIRTY:
            return None
        return DIGEST_PACE_S if self._rearm(group_id, str(since), now) else None

    def _page_write(
        self, group_id: str, number: int, member: NewMember, expires: int, *, seq: int = 1
    ) -> Any:  # a TransactWriteItem
        entry = {
            "finding_id": member.finding_id,
            "key": member.key,
            "severity": member.severity,
            "state": member.state.value,
        }
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._key(page_item_key(group_id, number)),
                "UpdateExpression": "SET #member = :member, #type = :type, #group = :group, #number = :number, "
                "#ttl = :ttl",
                "ConditionExpression": "attribute_not_exists(#member)",
                "ExpressionAttributeNames": {
                    "#member": _member_attribute(seq),
                    "#type": "item_type",
                    "#group": "group_id",
                    "#number": "number",
                    "#ttl": STATE_TABLE_TTL_ATTRIBUTE,
                },
                "ExpressionAttributeValues": self._serialize(
                    {
                        ":member": entry,
                        ":type": GROUP_PAGE_ITEM_TYPE,
                        ":group": group_id,
                        ":number": number,
                        ":ttl": expires,
                    }
                ),
            }
        }

    def _record_write(self, finding_id: str, group_id: str, seq: int) -> Any:  # a TransactWriteItem
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._key(finding_id),
                "UpdateExpression": "SET #group = :group, #seq = :seq",
                "ConditionExpression": "attribute_exists(#key) AND attribute_not_exists(#group)",
                "ExpressionAttributeNames": {"#key": STATE_TABLE_KEY, "#group": "group_id", "#seq": "group_seq"},
                "ExpressionAttributeValues": self._serialize({":group": group_id, ":seq": seq}),
            }
        }

    # -- dirty marks: the digest is behind the group -------------------------------------------------

    def mark_dirty(self, group_id: str, *, moved: tuple[State, State] | None = None) -> int | None:
        """The digest must be rendered again (a member joined; ``moved``: a member went from one state to
        another, counted now). The delay (s) after which the caller must wake the writer, or None: no wake-up is
        due (one is on its way). One is due when the group was clean, or has been dirty for longer than
        :data:`STALE_DIRTY` (its wake-up was lost; of several callers one is told so)."""
        now = self._clock()
        names = {"#dirty": "dirty", "#at": "dirty_at", "#version": "version", "#key": STATE_TABLE_KEY}
        names["#changed"] = "changed_at"
        values: dict[str, Any] = {":true": True, ":now": _iso(now), ":one": 1}
        sets = ["#dirty = :true", "#at = if_not_exists(#at, :now)", "#changed = :now", "#version = #version + :one"]
        if moved is not None and moved[0] is not moved[1]:
            names |= {"#states": "state_counts", "#from": moved[0].value, "#to": moved[1].value}
            values[":zero"] = 0
            sets.append("#states.#from = if_not_exists(#states.#from, :zero) - :one")
            sets.append("#states.#to = if_not_exists(#states.#to, :zero) + :one")
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(group_item_key(group_id)),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(#key)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=self._serialize(values),
                ReturnValues="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            raise GroupGoneError(f"group {group_id} does not exist") from exc
        old = self._plain(response.get("Attributes", {}))
        return self._wake_due(group_id, old, now, was_dirty=bool(old.get("dirty")))

    def lost_wake_due(self, group_id: str) -> int | None:
        """The delay of the writer's wake-up when ``group_id`` has been dirty for longer than :data:`STALE_DIRTY`
        (its mark re-armed now, as :meth:`mark_dirty` re-arms it), or None: clean, gone, or its wake-up is on its
        way. One read; a write only to re-arm. For a caller that finds a change of its own already marked, whose
        wake-up may have been lost with an earlier attempt (a join whose send failed after its transaction)."""
        group = self._get(group_item_key(group_id))
        if group is None or not group.get("dirty"):
            return None
        return self._wake_due(group_id, group, self._clock(), was_dirty=True)

    def count_alone(self, group_id: str, *, moved: tuple[State, State]) -> bool:
        """Move a member's count while its group has that one member only, without marking it dirty: a group of one
        is its member's own message, so there is nothing to render and no writer to wake (a second member's join
        marks the group and wakes the writer, who renders the counts as they are by then). False, nothing written,
        when the group has more members (the caller marks it dirty as for any move)."""
        names = {"#count": "member_count", "#states": "state_counts", "#from": moved[0].value, "#to": moved[1].value}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(group_item_key(group_id)),
                UpdateExpression="SET #states.#from = if_not_exists(#states.#from, :zero) - :one, "
                "#states.#to = if_not_exists(#states.#to, :zero) + :one",
                ConditionExpression="#count = :one",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=self._serialize({":zero": 0, ":one": 1}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _rearm(self, group_id: str, since: str, now: datetime) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(group_item_key(group_id)),
                UpdateExpression="SET #at = :now",
                ConditionExpression="#at = :since",
                ExpressionAttributeNames={"#at": "dirty_at"},
                ExpressionAttributeValues=self._serialize({":now": _iso(now), ":since": since}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False  # another caller re-armed it (or the writer cleaned it)
        return True

    def clear_dirty(self, group_id: str, *, version: int) -> bool:
        """The digest shows ``version``: clean, unless the group changed since (False: render again)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(group_item_key(group_id)),
                UpdateExpression="SET #dirty = :false REMOVE #at",
                ConditionExpression="#version = :version",
                ExpressionAttributeNames={"#dirty": "dirty", "#at": "dirty_at", "#version": "version"},
                ExpressionAttributeValues=self._serialize({":false": False, ":version": version}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def note_update(self, group_id: str) -> int:
        """The digest was just updated: when, and how many updates so far (returned), which space the next."""
        response = self._client.update_item(
            TableName=self._table,
            Key=self._key(group_item_key(group_id)),
            UpdateExpression="SET #at = :now ADD #updates :one",
            ExpressionAttributeNames={"#at": "digest_updated_at", "#updates": "digest_updates"},
            ExpressionAttributeValues=self._serialize({":now": _iso(self._clock()), ":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return int(self._plain(response["Attributes"])["digest_updates"])

    # -- the digest and its pages ----------------------------------------------------------------------

    def record_digest(self, group_id: str, *, channel: str, ts: str) -> None:
        """The message that is the group's digest (the first member's); the first recorded is kept."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(group_item_key(group_id)),
                UpdateExpression="SET #channel = :channel, #ts = :ts",
                ConditionExpression="attribute_exists(#key) AND attribute_not_exists(#ts)",
                ExpressionAttributeNames={"#key": STATE_TABLE_KEY, "#channel": "digest_channel", "#ts": "digest_ts"},
                ExpressionAttributeValues=self._serialize({":channel": channel, ":ts": ts}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return

    def record_page(self, group_id: str, number: int, *, ts: str) -> None:
        """Page ``number`` is posted as reply ``ts``: its ts on the page, and the group's count of posted pages,
        in one transaction (pages are posted in order, each once)."""
        self._client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": self._key(page_item_key(group_id, number)),
                        "UpdateExpression": "SET #ts = :ts",
                        "ConditionExpression": "attribute_not_exists(#ts)",
                        "ExpressionAttributeNames": {"#ts": "ts"},
                        "ExpressionAttributeValues": self._serialize({":ts": ts}),
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": self._key(group_item_key(group_id)),
                        "UpdateExpression": "SET #posted = :number",
                        "ConditionExpression": "#posted = :before",
                        "ExpressionAttributeNames": {"#posted": "pages_posted"},
                        "ExpressionAttributeValues": self._serialize({":number": number, ":before": number - 1}),
                    }
                },
            ]
        )

    def mark_page_attempt(self, group_id: str, number: int, *, at: datetime, read: str | None) -> bool:
        """Page ``number`` is about to be posted (``at``): its ``post_attempted_at``, written before the post, so a
        run that finds it (and no ts) knows a post may have reached Slack. Conditional on the mark this writer read
        (``read``; None: none) and on no ts: False, nothing written, when another writer marked or recorded the
        page meanwhile (it posts it, not this one)."""
        names = {"#ts": "ts", "#at": "post_attempted_at"}
        values: dict[str, Any] = {":at": _iso(at)}
        if read is None:
            condition = "attribute_not_exists(#ts) AND attribute_not_exists(#at)"
        else:
            condition = "attribute_not_exists(#ts) AND #at = :read"
            values[":read"] = read
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(page_item_key(group_id, number)),
                UpdateExpression="SET #at = :at",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=self._serialize(values),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def clear_page_attempt(self, group_id: str, number: int, *, at: datetime) -> None:
        """Slack refused page ``number``'s post before taking it (its pace, a 429): no post can be in Slack, so the
        mark written ``at`` goes (the next run posts without reading the thread first). Only that mark."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(page_item_key(group_id, number)),
                UpdateExpression="REMOVE #at",
                ConditionExpression="#at = :at",
                ExpressionAttributeNames={"#at": "post_attempted_at"},
                ExpressionAttributeValues=self._serialize({":at": _iso(at)}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return  # another writer's mark by now: its own

    def schedule_close_wake(self, group_id: str, *, at: datetime) -> bool:
        """Claim the wake-up at ``at`` (when the group closes, to post its last page); False when one at or after
        ``at`` is already claimed."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(group_item_key(group_id)),
                UpdateExpression="SET #wake = :at",
                ConditionExpression="attribute_not_exists(#wake) OR #wake < :at",
                ExpressionAttributeNames={"#wake": "close_wake_at"},
                ExpressionAttributeValues=self._serialize({":at": _iso(at)}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def claim_update_wake(self, group_id: str, *, at: datetime, now: datetime) -> bool:
        """Claim the writer's next wake-up for the digest's update, at ``at``; False when another one is claimed for
        later than ``now`` (give or take :data:`WAKE_TOLERANCE`): it is on its way and will look then, so this one is
        not sent (wake-ups of one group never multiply: a close wake-up that finds the update not due stops here)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(group_item_key(group_id)),
                UpdateExpression="SET #wake = :at",
                ConditionExpression="attribute_not_exists(#wake) OR #wake <= :soon",
                ExpressionAttributeNames={"#wake": "update_wake_at"},
                ExpressionAttributeValues=self._serialize({":at": _iso(at), ":soon": _iso(now + WAKE_TOLERANCE)}),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # -- reads -----------------------------------------------------------------------------------------

    def item(self, group_id: str) -> GroupItem | None:
        data = self._get(group_item_key(group_id))
        return None if data is None else _group_item(data)

    def view(self, group_id: str) -> GroupView | None:
        item = self.item(group_id)
        return None if item is None else item.view

    def page(self, group_id: str, number: int) -> GroupPage | None:
        data = self._get(page_item_key(group_id, number))
        return None if data is None else _page(group_id, number, data)

    def members(self, group_id: str, upto: int) -> list[GroupMember]:
        """Members 1..``upto`` (fewer when the group has fewer), in seq order."""
        if upto < 1:
            return []
        numbers = range(1, page_number(upto) + 1)
        pages = self._pages(group_id, numbers)
        return [member for page in pages for member in page.members if member.seq <= upto]

    def _pages(self, group_id: str, numbers: range) -> Iterator[GroupPage]:
        # One consistent GetItem a page (a hundred for 10,000 members): the handlers' grants have no BatchGetItem.
        for number in numbers:
            page = self.page(group_id, number)
            if page is not None:
                yield page

    # -- plumbing --------------------------------------------------------------------------------------

    def _get(self, key: str) -> dict[str, Any] | None:
        response = self._client.get_item(TableName=self._table, Key=self._key(key), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else self._plain(item)

    def _plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: _integers(self._deserializer.deserialize(value)) for name, value in item.items()}

    def _key(self, key: str) -> dict[str, Any]:
        return {STATE_TABLE_KEY: {"S": key}}

    def _serialize(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self._serializer.serialize(value) for name, value in values.items()}


def _integers(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; every number of a group is an integer."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


def _next_update_delay(group: Mapping[str, Any], now: datetime) -> int:
    """When the writer may update the digest after a change now (``group`` as read before it): the pace, and no
    sooner than :func:`update_due` says (at most :data:`QUIET_S` away: the change itself starts a quiet spell)."""
    updated_at = group.get("digest_updated_at")
    due = update_due(
        updated_at=None if updated_at is None else _parse(str(updated_at)),
        updates=int(group.get("digest_updates", 0)),
        changed_at=now,
    )
    return DIGEST_PACE_S if due is None else max(DIGEST_PACE_S, math.ceil((due - now).total_seconds()))


# The join's own items of its transaction, in order (GroupStore._extend, GroupStore._open); the finding's record
# follows them (the join's update of it, or the caller's items: GroupStore.join_with).
_EXTEND_ITEMS: Final = ("group", "page", "pointer")
_OPEN_ITEMS: Final = ("group", "pointer", "page")


@dataclass(frozen=True)
class _Cancellation:
    """Which items refused a join's cancelled transaction (DynamoDB names each item's reason; "None" for those that
    did not): the join's own by name (their codes), the items after them by their index among those; and the group
    item as its refusal returned it (DynamoDB's JSON; None when its condition held)."""

    own: Mapping[str, str]
    tail: Mapping[int, Mapping[str, Any]]
    group_item: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, error_response: Mapping[str, Any], own: tuple[str, ...]) -> _Cancellation | None:
        """None when DynamoDB gave no reason per item."""
        reasons: list[Mapping[str, Any]] = list(error_response.get("CancellationReasons") or [])
        if len(reasons) <= len(own):
            return None
        refused = [reason.get("Code") not in (None, "None") for reason in reasons]
        return cls(
            own={name: str(reasons[n].get("Code")) for n, name in enumerate(own) if refused[n]},
            tail={n: reasons[len(own) + n] for n in range(len(reasons) - len(own)) if refused[len(own) + n]},
            group_item=reasons[own.index("group")].get("Item") if refused[own.index("group")] else None,
        )

    @property
    def only_the_group(self) -> bool:
        """Cancelled by its group's or page's condition alone: a concurrent join of the same group, nothing else."""
        return (
            not self.tail
            and bool(self.own)
            and set(self.own) <= {"group", "page"}
            and set(self.own.values()) == {"ConditionalCheckFailed"}
        )

    @property
    def conditional_tail(self) -> dict[int, Mapping[str, Any]]:
        """The items after the join's own that their conditions refused."""
        return {n: reason for n, reason in self.tail.items() if reason.get("Code") == "ConditionalCheckFailed"}


# What a join reads of its group (GroupStore._extend, _wake_due when the group was dirty, _still_open): all a remembered
# group holds. The count and the dirty mark are pinned by the join's condition; last_joined_at, prefixes and
# first_keys change only with the count (joins); group_id, opened_at and the TTL never; dirty_at is not pinned (a stale
# mark's re-arm moves it alone), so a remembered one is at most REMEMBER_GROUP behind, far below STALE_DIRTY.
_JOIN_READS: Final = (
    "group_id",
    "member_count",
    "dirty",
    "dirty_at",
    "prefixes",
    "first_keys",
    "opened_at",
    "last_joined_at",
    STATE_TABLE_TTL_ATTRIBUTE,
)


def _after_join(group: Mapping[str, Any], member: NewMember, now: datetime, joined: Joined) -> dict[str, Any] | None:
    """The group as the join that made ``joined`` of ``member`` into ``group`` (as read) left it, in
    :data:`_JOIN_READS`: what that write set, the rest as read. None when it is not known: the group's dirty mark was
    stale and its re-arm was another caller's (``dirty_at`` moved to a time this store does not know)."""
    since = group.get("dirty_at")
    rearmed = bool(group.get("dirty", False)) and since is not None and _parse(str(since)) <= now - STALE_DIRTY
    if rearmed and joined.wake_in_s is None:
        return None
    prefix = key_prefix(member.key)
    prefixes = {str(name): int(n) for name, n in group.get("prefixes", {}).items()}
    if prefix in prefixes or len(prefixes) < MAX_PREFIXES:
        prefixes[prefix] = prefixes.get(prefix, 0) + 1
    first_keys = [str(key) for key in group.get("first_keys", ())]
    if len(first_keys) < FIRST_KEYS:
        first_keys.append(member.key)
    return {
        "group_id": str(group["group_id"]),
        "member_count": joined.seq,
        "dirty": True,
        "dirty_at": _iso(now) if rearmed or since is None else str(since),  # SET if_not_exists, or the re-arm's now
        "prefixes": prefixes,
        "first_keys": first_keys,
        "opened_at": str(group["opened_at"]),
        "last_joined_at": _iso(now),
        STATE_TABLE_TTL_ATTRIBUTE: int(group[STATE_TABLE_TTL_ATTRIBUTE]),
    }


def _still_open(group: Mapping[str, Any], now: datetime, window: timedelta, max_age: timedelta) -> bool:
    """Still taking members: joined within ``window``, opened within ``max_age`` (the config's, as of now)."""
    return now - _parse(str(group["last_joined_at"])) <= window and now - _parse(str(group["opened_at"])) <= max_age


def _group_item(data: Mapping[str, Any]) -> GroupItem:
    count = int(data["member_count"])
    view = GroupView(
        group_id=str(data["group_id"]),
        channel=str(data["channel"]),
        account_id=str(data["account_id"]),
        account_name=str(data.get("account_name", "")),
        bucket=str(data["bucket"]),
        finding_type=str(data["finding_type"]),
        action=Action(str(data["action"])),
        opened_at=str(data["opened_at"]),
        last_joined_at=str(data["last_joined_at"]),
        member_count=count,
        listed_count=count,  # a join writes its member in the same transaction: the seqs have no holes
        state_counts={State(name): int(n) for name, n in data.get("state_counts", {}).items() if int(n) > 0},
        severity_counts={str(name): int(n) for name, n in data.get("severity_counts", {}).items()},
        first_keys=tuple(str(key) for key in data.get("first_keys", ())),
        prefixes={
            **{str(name): int(n) for name, n in data.get("prefixes", {}).items()},
            **({"…": int(data["other_prefixes"])} if int(data.get("other_prefixes", 0)) else {}),
        },
        version=int(data["version"]),
    )
    return GroupItem(
        view=view,
        dirty=bool(data.get("dirty", False)),
        window_s=int(data["window_s"]),
        max_age_s=int(data["max_age_s"]),
        first_finding_id=str(data["first_finding_id"]),
        digest_channel=str(data["digest_channel"]) if "digest_channel" in data else None,
        digest_ts=str(data["digest_ts"]) if "digest_ts" in data else None,
        pages_posted=int(data.get("pages_posted", 0)),
        close_wake_at=str(data["close_wake_at"]) if "close_wake_at" in data else None,
        updated_at=str(data["digest_updated_at"]) if "digest_updated_at" in data else None,
        updates=int(data.get("digest_updates", 0)),
        changed_at=str(data["changed_at"]) if "changed_at" in data else None,
    )


def _page(group_id: str, number: int, data: Mapping[str, Any]) -> GroupPage:
    members = []
    for name, entry in data.items():
        if name.startswith("m") and name[1:].isdigit() and isinstance(entry, dict):
            members.append(
                GroupMember(
                    seq=int(name[1:]),
                    finding_id=str(entry["finding_id"]),
                    key=str(entry["key"]),
                    severity=str(entry["severity"]),
                    state=State(str(entry["state"])),
                )
            )
    members.sort(key=lambda member: member.seq)
    ts, attempted = data.get("ts"), data.get("post_attempted_at")
    return GroupPage(
        group_id=group_id,
        number=number,
        members=tuple(members),
        ts=None if ts is None else str(ts),
        post_attempted_at=None if attempted is None else str(attempted),
    )


class DigestQueue(Protocol):
    """Wake the digest writer for a group after ``delay_s`` seconds."""

    def wake(self, group_id: str, *, delay_s: int) -> None: ...


class SqsDigestQueue:
    """The digest queue: one message ``{"group_id": ...}``, delayed (SQS takes 0..900 s)."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def wake(self, group_id: str, *, delay_s: int) -> None:
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps({"group_id": group_id}),
            DelaySeconds=max(0, min(MAX_SQS_DELAY_S, delay_s)),
        )


@dataclass(frozen=True)
class Grouping:
    """What a handler needs to keep groups' digests current: the groups and the writer's queue."""

    store: GroupStore
    digests: DigestQueue
    pace_s: int = DIGEST_PACE_S

    def join(
        self, key: GroupKey, member: NewMember, *, account_name: str, window: timedelta, max_age: timedelta
    ) -> Joined:
        """:meth:`GroupStore.join`, and the writer woken when the join made a wake-up due (the join marks the group
        dirty itself: the member's move out of RECEIVED then has nothing left to mark)."""
        joined = self.store.join(key, member, account_name=account_name, window=window, max_age=max_age)
        if joined.wake_in_s is not None:
            self.digests.wake(joined.group_id, delay_s=joined.wake_in_s)
        return joined

    def join_with(
        self,
        key: GroupKey,
        member: NewMember,
        items: CallerItems,
        *,
        account_name: str,
        window: timedelta,
        max_age: timedelta,
    ) -> Joined | Refused:
        """:meth:`GroupStore.join_with`, and the writer woken as :meth:`join` wakes it."""
        joined = self.store.join_with(key, member, items, account_name=account_name, window=window, max_age=max_age)
        if isinstance(joined, Joined) and joined.wake_in_s is not None:
            self.digests.wake(joined.group_id, delay_s=joined.wake_in_s)
        return joined

    def touched(self, group_id: str, *, moved: tuple[State, State] | None = None) -> None:
        """The group changed (a join, or a member ``moved`` between states): dirty, the writer woken if due."""
        delay = self.store.mark_dirty(group_id, moved=moved)
        if delay is not None:
            self.digests.wake(group_id, delay_s=delay)

    def wake_if_lost(self, group_id: str) -> None:
        """The writer woken when the group's dirty mark is older than :data:`STALE_DIRTY` (its wake-up was lost):
        :meth:`GroupStore.lost_wake_due`. Marks nothing: the change was marked when it was made."""
        delay = self.store.lost_wake_due(group_id)
        if delay is not None:
            self.digests.wake(group_id, delay_s=delay)

    def state_changed(self, record: FindingRecord) -> None:
        """``FindingStore``'s hook after a transition: a grouped member's move shows in its group's counts. The
        join counted a member in the state its intake decided and marked the group dirty in its own transaction, so
        the move out of RECEIVED has nothing to count or mark (one write per grouped finding less)."""
        if record.group_id is None or record.previous_state is None or record.previous_state is record.state:
            return
        if record.previous_state is State.RECEIVED:
            return
        moved = (record.previous_state, record.state)
        # Only the first member can be in a group of one; its count then moves with no wake-up (nothing to render).
        if record.group_seq == 1 and self.store.count_alone(record.group_id, moved=moved):
            return
        try:
            self.touched(record.group_id, moved=moved)
        except GroupGoneError:
            # Expired before its member (a restore months later): no digest is rendered from it any more.
            logger.info("group %s of finding %s is gone: nothing to count", record.group_id, record.finding_id)


__all__ = [
    "PAGE_SIZE",
    "GroupGoneError",
    "GroupItem",
    "GroupStore",
    "GroupStoreError",
    "Grouping",
    "Joined",
    "NewMember",
    "Refused",
]
