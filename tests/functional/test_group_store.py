"""Finding groups in the state table, on moto's server: joins (concurrent ones too), windows, pages, dirty marks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import pytest

from macie_chatops.config import Action
from macie_chatops.group_store import (
    _JOIN_READS,
    CONTENDED,
    DIGEST_PACE_S,
    MAX_DIGEST_INTERVAL_S,
    MAX_PREFIXES,
    QUIET_S,
    REMEMBER_GROUP,
    STALE_DIRTY,
    WAKE_TOLERANCE,
    GroupStore,
    GroupStoreError,
    Joined,
    NewMember,
    Refused,
    _Known,
    digest_interval,
    group_item_key,
)
from macie_chatops.groups import PAGE_SIZE, GroupKey
from macie_chatops.states import State
from macie_chatops.store import FindingStore, NewRecord, create_state_table
from macie_chatops.summary import ObjectVersion
from tests.conftest import AwsSandbox

TABLE = "test-groups"
START = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=60)
MAX_AGE = timedelta(hours=1)
KEY = GroupKey("C0SECURITY", "111111111111", "payroll-exports", "SensitiveData:S3Object/Financial", Action.REVIEW)


class SettableClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def dynamodb(aws: AwsSandbox) -> Any:
    client = boto3.client("dynamodb", region_name=aws.region)
    create_state_table(client, TABLE)
    return client


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def groups(dynamodb: Any, clock: SettableClock) -> GroupStore:
    return GroupStore(dynamodb, TABLE, clock=clock)


@pytest.fixture
def findings(dynamodb: Any, clock: SettableClock) -> FindingStore:
    return FindingStore(dynamodb, TABLE, clock=clock)


def _finding(findings: FindingStore, n: int) -> NewMember:
    finding_id = f"finding-{n:05d}"
    findings.create_received(finding_id, event_id=f"e{n}", action=Action.REVIEW, reason="test", actor="test")
    return NewMember(finding_id, f"exports/2026/{n:05d}.csv", "High" if n % 3 else "Medium", State.PENDING_APPROVAL)


def _join(groups: GroupStore, member: NewMember, key: GroupKey = KEY) -> Any:
    return groups.join(key, member, account_name="payroll", window=WINDOW, max_age=MAX_AGE)


def test_first_join_opens_a_group_and_marks_the_record(groups: GroupStore, findings: FindingStore) -> None:
    # GIVEN no group for the key WHEN a finding joins
    joined = _join(groups, _finding(findings, 1))
    # THEN it is the first member of a new group, recorded on its finding record and in page 1
    assert joined.first and joined.seq == 1
    record = findings.get("finding-00001")
    assert record is not None and (record.group_id, record.group_seq) == (joined.group_id, 1)
    view = groups.view(joined.group_id)
    assert view is not None
    assert (view.member_count, view.listed_count, view.action, view.account_name) == (1, 1, Action.REVIEW, "payroll")
    assert view.state_counts == {State.PENDING_APPROVAL: 1}
    assert view.first_keys == ("exports/2026/00001.csv",) and view.prefixes == {"exports/": 1}
    page = groups.page(joined.group_id, 1)
    assert page is not None and [m.finding_id for m in page.members] == ["finding-00001"] and page.ts is None
    # AND the group items stay out of the finding store's reads
    assert findings.get(f"group#{joined.group_id}") is None


def test_joins_within_the_window_extend_the_group(
    groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a group WHEN findings keep arriving, each within the window of the last (longer than one window)
    first = _join(groups, _finding(findings, 1))
    seqs = []
    for n in range(2, 8):
        clock.now += timedelta(seconds=50)
        seqs.append(_join(groups, _finding(findings, n)))
    # THEN they all join it, numbered in order
    assert {j.group_id for j in seqs} == {first.group_id}
    assert [j.seq for j in seqs] == [2, 3, 4, 5, 6, 7]
    view = groups.view(first.group_id)
    assert view is not None and view.member_count == 7 and len(view.first_keys) == 5
    assert sum(view.severity_counts.values()) == 7 and view.state_counts == {State.PENDING_APPROVAL: 7}


def test_window_expiry_opens_a_new_group(groups: GroupStore, findings: FindingStore, clock: SettableClock) -> None:
    # GIVEN a group whose last join is more than the window ago
    first = _join(groups, _finding(findings, 1))
    clock.now += WINDOW + timedelta(seconds=1)
    # WHEN another finding of the same key arrives
    second = _join(groups, _finding(findings, 2))
    # THEN it opens a new group (seq 1 again); the old one keeps its member
    assert second.group_id != first.group_id and second.first
    old = groups.view(first.group_id)
    assert old is not None and old.member_count == 1


def test_max_age_caps_a_trickle(groups: GroupStore, findings: FindingStore, clock: SettableClock) -> None:
    # GIVEN findings arriving every 50 s (always within the window) for more than the max age
    first = _join(groups, _finding(findings, 0))
    joined = []
    for n in range(1, 80):
        clock.now += timedelta(seconds=50)
        joined.append(_join(groups, _finding(findings, n)))
    # THEN a second group opens once the first is an hour old
    opened = [j for j in joined if j.first]
    assert len(opened) == 1 and opened[0].group_id != first.group_id
    assert sum(1 for j in joined if j.group_id == first.group_id) == 72  # 72 x 50 s = 3,600 s


def test_other_keys_make_other_groups(groups: GroupStore, findings: FindingStore) -> None:
    # GIVEN one group WHEN a finding of another bucket, and one decided auto, arrive THEN each opens its own
    a = _join(groups, _finding(findings, 1))
    b = _join(
        groups, _finding(findings, 2), GroupKey(KEY.channel, KEY.account_id, "other", KEY.finding_type, KEY.action)
    )
    c = _join(
        groups, _finding(findings, 3), GroupKey(KEY.channel, KEY.account_id, KEY.bucket, KEY.finding_type, Action.AUTO)
    )
    assert len({a.group_id, b.group_id, c.group_id}) == 3 and a.first and b.first and c.first


def test_a_finding_joins_once(groups: GroupStore, findings: FindingStore) -> None:
    # GIVEN a finding that joined WHEN it joins again (a redelivery) THEN it keeps its seq, and nobody is added
    member = _finding(findings, 1)
    first = _join(groups, member)
    _join(groups, _finding(findings, 2))
    again = _join(groups, member)
    assert again == first
    view = groups.view(first.group_id)
    assert view is not None and view.member_count == 2


def test_a_finding_without_a_record_cannot_join(groups: GroupStore) -> None:
    # GIVEN no record WHEN it joins THEN the join is refused, and nothing is left claiming a seq
    with pytest.raises(GroupStoreError, match="no record"):
        _join(groups, NewMember("finding-ghost", "k", "High", State.PENDING_APPROVAL))


_W = TypeVar("_W")


def _at_once(work: list[_W], do: Callable[[_W], tuple[str, Any]], *, threads: int = 6) -> dict[str, Any]:
    """``do`` on every item of ``work``, from ``threads`` threads at once: each item's answer by its finding id.
    Raises the first error a thread met, after all of them ended."""
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(chunk: list[_W]) -> None:
        try:
            for item in chunk:
                finding_id, answer = do(item)
                results[finding_id] = answer
        except BaseException as exc:  # raised below, once every thread ended
            errors.append(exc)

    running = [threading.Thread(target=run, args=(work[i::threads],)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.usefixtures("atomic_moto")
def test_concurrent_joins_lose_nobody(groups: GroupStore, findings: FindingStore) -> None:
    # GIVEN 60 findings of one key WHEN 6 threads join them at once
    members = [_finding(findings, n) for n in range(60)]
    results = _at_once(members, lambda member: (member.finding_id, _join(groups, member)))
    # THEN one group; every finding has exactly one seq, 1..60, each listed once in the pages
    assert len({j.group_id for j in results.values()}) == 1
    group_id = next(iter(results.values())).group_id
    assert sorted(j.seq for j in results.values()) == list(range(1, 61))
    listed = groups.members(group_id, 60)
    assert [m.seq for m in listed] == list(range(1, 61))
    assert {m.finding_id: m.seq for m in listed} == {f: j.seq for f, j in results.items()}
    for finding_id, joined in results.items():
        record = findings.get(finding_id)
        assert record is not None and record.group_seq == joined.seq


def _creating(findings: FindingStore, n: int) -> tuple[NewMember, NewRecord]:
    """Finding ``n``'s record and its object version's claim, built to be created with its join (the intake's)."""
    finding_id = f"finding-{n:05d}"
    version = ObjectVersion("111111111111", "payroll-exports", f"exports/2026/{n:05d}.csv", f"v{n}")
    new = findings.new_record(finding_id, event_id=f"e{n}", action=Action.REVIEW, reason="t", actor="t", claim=version)
    return NewMember(finding_id, version.key, "High", State.PENDING_APPROVAL), new


def _join_creating(groups: GroupStore, findings: FindingStore, member: NewMember, new: NewRecord) -> Any:
    def items(group_id: str, seq: int) -> list[Any]:
        return findings.creation_items(new, group=(group_id, seq))

    return groups.join_with(KEY, member, items, account_name="payroll", window=WINDOW, max_age=MAX_AGE)


@pytest.mark.usefixtures("atomic_moto")
def test_concurrent_joins_creating_their_records_lose_nobody(groups: GroupStore, findings: FindingStore) -> None:
    # GIVEN 60 findings of one key, none recorded yet WHEN 6 threads create each record with its join, at once
    creations = [_creating(findings, n) for n in range(60)]
    results = _at_once(
        creations, lambda creation: (creation[0].finding_id, _join_creating(groups, findings, *creation))
    )
    # THEN one group; every finding has exactly one seq, 1..60, listed once in the pages and born on its record,
    # with its claim
    assert all(isinstance(joined, Joined) for joined in results.values())
    assert len({j.group_id for j in results.values()}) == 1
    group_id = next(iter(results.values())).group_id
    assert sorted(j.seq for j in results.values()) == list(range(1, 61))
    listed = groups.members(group_id, 60)
    assert [m.seq for m in listed] == list(range(1, 61))
    assert {m.finding_id: m.seq for m in listed} == {f: j.seq for f, j in results.items()}
    for member, new in creations:
        record = findings.get(member.finding_id)
        assert record is not None and (record.group_id, record.group_seq) == (group_id, results[member.finding_id].seq)
        assert new.claim is not None and record.object_claimed_at is not None
        claim = findings.object_claim(new.claim)
        assert claim is not None and claim.finding_id == member.finding_id


def test_a_join_creating_a_record_that_exists_is_refused_on_it_and_writes_nothing(
    dynamodb: Any, groups: GroupStore, findings: FindingStore
) -> None:
    # GIVEN a group of one, and a second finding created with its join
    member, new = _creating(findings, 1)
    assert isinstance(_join_creating(groups, findings, member, new), Joined)
    second, new = _creating(findings, 2)
    joined = _join_creating(groups, findings, second, new)
    # WHEN the second's creation with a join is tried again (a duplicate delivery)
    calls = _reads(dynamodb)
    again = findings.new_record(second.finding_id, event_id="e", action=Action.REVIEW, reason="t", actor="t")
    refused = _join_creating(groups, findings, second, again)
    # THEN one transaction (built on the group as the store's last join left it: no read), refused on the record (the
    # caller's first item, the record as it is returned with it), not retried; the group still has two members
    assert isinstance(refused, Refused) and set(refused.reasons) == {0}
    assert calls == ["TransactWriteItems"]
    result = findings.creation_refused(again, refused.reasons)
    assert result is not None and not result.applied and result.record.group_seq == joined.seq == 2
    assert groups.view(joined.group_id).member_count == 2  # type: ignore[union-attr]


def test_a_join_creating_a_record_whose_claim_is_held_is_refused_on_the_claim(
    groups: GroupStore, findings: FindingStore
) -> None:
    # GIVEN a group of one, and another finding holding the object version of finding 2
    member, new = _creating(findings, 1)
    first = _join_creating(groups, findings, member, new)
    second, created = _creating(findings, 2)
    assert created.claim is not None
    findings.claim_object(created.claim, finding_id="finding-other")
    # WHEN finding 2 is created with its join
    refused = _join_creating(groups, findings, second, created)
    # THEN refused on the claim (its second item) alone: no record, no member; the store says to create it alone
    assert isinstance(refused, Refused) and set(refused.reasons) == {1}
    assert findings.creation_refused(created, refused.reasons) is None
    assert findings.get(second.finding_id) is None
    assert groups.view(first.group_id).member_count == 1  # type: ignore[union-attr]


def test_members_span_pages(groups: GroupStore, findings: FindingStore) -> None:
    # GIVEN more members than one page holds
    joined = [_join(groups, _finding(findings, n)) for n in range(PAGE_SIZE + 5)]
    group_id = joined[0].group_id
    # THEN page 1 is full, page 2 holds the rest, and members(upto) stops at upto
    page1, page2 = groups.page(group_id, 1), groups.page(group_id, 2)
    assert page1 is not None and page1.full and len(page1.members) == PAGE_SIZE
    assert page2 is not None and [m.seq for m in page2.members] == [101, 102, 103, 104, 105]
    assert [m.seq for m in groups.members(group_id, 102)] == list(range(1, 103))
    assert groups.members(group_id, 0) == []


def test_dirty_marks_wake_once_and_clear_only_at_their_version(
    groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    group_id = _join(groups, _finding(findings, 1)).group_id
    # GIVEN a clean group WHEN two changes mark it THEN only the first (clean -> dirty) must wake the writer
    assert groups.mark_dirty(group_id) == DIGEST_PACE_S
    assert groups.mark_dirty(group_id, moved=(State.PENDING_APPROVAL, State.APPROVED)) is None
    item = groups.item(group_id)
    assert item is not None and item.dirty and item.view.version == 3
    assert item.view.state_counts == {State.APPROVED: 1}
    # WHEN the writer rendered version 2 only THEN it may not clear the mark; at version 3 it may
    assert groups.clear_dirty(group_id, version=2) is False
    assert groups.clear_dirty(group_id, version=3) is True
    assert groups.mark_dirty(group_id) == DIGEST_PACE_S
    # AND a mark older than STALE_DIRTY (its wake-up lost) wakes the writer again, once
    clock.now += STALE_DIRTY + timedelta(seconds=1)
    assert groups.mark_dirty(group_id) == DIGEST_PACE_S
    assert groups.mark_dirty(group_id) is None


def test_digest_updates_come_further_apart_while_the_group_keeps_changing(
    groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a group whose digest was updated 4 times, the last just now; before any update, one is due at once
    group_id = _join(groups, _finding(findings, 1)).group_id
    assert groups.item(group_id).update_due_at is None  # type: ignore[union-attr]
    assert [groups.note_update(group_id) for _ in range(4)] == [1, 2, 3, 4]
    # WHEN it changes THEN the writer is woken when a quiet spell after the change would end (it decides then)
    assert groups.mark_dirty(group_id) == QUIET_S
    assert groups.item(group_id).update_due_at == START + timedelta(seconds=QUIET_S)  # type: ignore[union-attr]
    # WHEN it keeps changing THEN the update is due once the interval 4 updates earned is over (3 x 2^4 s)
    for _ in range(11):
        clock.now += timedelta(seconds=4)
        assert groups.mark_dirty(group_id) is None  # still dirty: the wake-up is on its way
    due = START + timedelta(seconds=digest_interval(4))
    assert digest_interval(4) == 48 and groups.item(group_id).update_due_at == due  # type: ignore[union-attr]
    # AND however many updates, at most MAX_DIGEST_INTERVAL_S apart
    assert digest_interval(0) == DIGEST_PACE_S and digest_interval(50) == MAX_DIGEST_INTERVAL_S


def test_an_update_wake_up_is_claimed_once_while_it_is_on_its_way(groups: GroupStore, findings: FindingStore) -> None:
    group_id = _join(groups, _finding(findings, 1)).group_id
    # GIVEN a wake-up claimed for 5 s from now WHEN another is claimed meanwhile THEN it is refused
    assert groups.claim_update_wake(group_id, at=START + timedelta(seconds=5), now=START) is True
    assert (
        groups.claim_update_wake(group_id, at=START + timedelta(seconds=6), now=START + timedelta(seconds=2)) is False
    )
    # WHEN the claimed one is running (due now, or SQS delivered it up to WAKE_TOLERANCE early) THEN it claims the next
    early = START + timedelta(seconds=5) - WAKE_TOLERANCE
    assert groups.claim_update_wake(group_id, at=early + timedelta(seconds=5), now=early) is True


def test_marking_an_unknown_group_fails(groups: GroupStore) -> None:
    with pytest.raises(GroupStoreError, match="does not exist"):
        groups.mark_dirty("0" * 32)


def test_pages_and_the_digest_are_recorded_once(groups: GroupStore, findings: FindingStore) -> None:
    group_id = _join(groups, _finding(findings, 1)).group_id
    # GIVEN a digest recorded WHEN another ts is recorded THEN the first is kept
    groups.record_digest(group_id, channel="C0SECURITY", ts="1.1")
    groups.record_digest(group_id, channel="C0SECURITY", ts="2.2")
    # WHEN page 1 is posted THEN its ts and the posted count are recorded; posting it again is refused
    groups.record_page(group_id, 1, ts="3.3")
    with pytest.raises(groups._client.exceptions.TransactionCanceledException):
        groups.record_page(group_id, 1, ts="4.4")
    item, page = groups.item(group_id), groups.page(group_id, 1)
    assert item is not None and (item.digest_ts, item.pages_posted) == ("1.1", 1)
    assert page is not None and page.ts == "3.3"


def test_close_wake_is_claimed_once_per_time(groups: GroupStore, findings: FindingStore) -> None:
    group_id = _join(groups, _finding(findings, 1)).group_id
    assert groups.schedule_close_wake(group_id, at=START + WINDOW) is True
    assert groups.schedule_close_wake(group_id, at=START + WINDOW) is False
    assert groups.schedule_close_wake(group_id, at=START + 2 * WINDOW) is True
    item = groups.item(group_id)
    assert item is not None and item.closes_at == START + WINDOW


def _reads(dynamodb: Any) -> list[str]:
    """The operation of every DynamoDB call ``dynamodb`` makes from now on, in order."""
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    return calls


def test_a_join_marks_its_group_dirty_and_says_when_to_wake_the_writer(
    groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a group of one (clean: its first member's own message)
    first = _join(groups, _finding(findings, 1))
    assert first.wake_in_s is None and groups.item(first.group_id).dirty is False  # type: ignore[union-attr]
    # WHEN a second finding joins THEN the join itself marked the group dirty (version moved on) and a wake-up is due
    second = _join(groups, _finding(findings, 2))
    item = groups.item(first.group_id)
    assert item is not None and item.dirty and item.view.version == 2 and item.view.member_count == 2
    assert second.wake_in_s == DIGEST_PACE_S
    # AND a third joining the still dirty group wakes nobody (a wake-up is on its way) and moves the version again
    third = _join(groups, _finding(findings, 3))
    assert third.wake_in_s is None and groups.item(first.group_id).view.version == 3  # type: ignore[union-attr]
    # AND the writer's render of an older version cannot clear the mark
    assert groups.clear_dirty(first.group_id, version=2) is False
    assert groups.clear_dirty(first.group_id, version=3) is True
    # AND once clean, the next join wakes it again; once dirty for longer than STALE_DIRTY, the next join re-arms it
    assert _join(groups, _finding(findings, 4)).wake_in_s == DIGEST_PACE_S
    clock.now += STALE_DIRTY + timedelta(seconds=1)
    longer = STALE_DIRTY * 2  # a window that keeps the group open meanwhile
    fifth = groups.join(KEY, _finding(findings, 5), account_name="payroll", window=longer, max_age=MAX_AGE)
    sixth = groups.join(KEY, _finding(findings, 6), account_name="payroll", window=longer, max_age=MAX_AGE)
    assert (fifth.group_id, fifth.wake_in_s, sixth.wake_in_s) == (first.group_id, DIGEST_PACE_S, None)


def test_a_join_of_a_known_group_reads_the_group_alone(
    dynamodb: Any, groups: GroupStore, findings: FindingStore
) -> None:
    # GIVEN a group this store has joined before
    first = _join(groups, _finding(findings, 1))
    member = _finding(findings, 2)
    calls = _reads(dynamodb)
    # WHEN another finding joins THEN one read (the group), one transaction (checking the pointer still names it)
    assert _join(groups, member).group_id == first.group_id
    assert calls == ["GetItem", "TransactWriteItems"]
    # AND a store that never saw the key reads the pointer and then the group
    fresh = GroupStore(dynamodb, TABLE, clock=groups._clock)
    calls.clear()
    assert _join(fresh, _finding(findings, 3)).group_id == first.group_id
    assert calls == ["PutItem", "GetItem", "GetItem", "TransactWriteItems"]  # PutItem: the record _finding writes


def test_a_known_group_replaced_meanwhile_takes_no_member(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN this store saw group A for the key, and another store (with a shorter window) replaced it by group B
    a = _join(groups, _finding(findings, 1))
    clock.now += timedelta(seconds=30)
    other = GroupStore(dynamodb, TABLE, clock=clock)
    b = other.join(KEY, _finding(findings, 2), account_name="payroll", window=timedelta(seconds=10), max_age=MAX_AGE)
    assert b.group_id != a.group_id and b.first
    # WHEN a finding joins through the first store, A still open by its window
    joined = _join(groups, _finding(findings, 3))
    # THEN its transaction saw the pointer name B: it read again and joined B, not the replaced A
    assert (joined.group_id, joined.seq) == (b.group_id, 2)
    assert groups.view(a.group_id).member_count == 1  # type: ignore[union-attr]


class LosesOnce(GroupStore):
    """A store whose first transaction loses to a join of ``rival`` made right before it (a burst's collision)."""

    def __init__(self, dynamodb: Any, rival: NewMember, *, clock: SettableClock) -> None:
        super().__init__(dynamodb, TABLE, clock=clock)
        self.rival: NewMember | None = rival

    def _extend(self, key: GroupKey, group: Any, member: NewMember, now: datetime, tail: Any) -> Any:
        if self.rival is not None:
            rival, self.rival = self.rival, None
            rivals_client = boto3.client("dynamodb", region_name=self._client.meta.region_name)  # calls not counted
            GroupStore(rivals_client, TABLE, clock=self._clock).join(
                key, rival, account_name="payroll", window=WINDOW, max_age=MAX_AGE
            )
        return super()._extend(key, group, member, now, tail)


def test_a_join_that_loses_to_another_join_of_its_group_reads_the_group_alone_again(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a store that knows the group, and another join of it landing between its read and its transaction
    first = _join(groups, _finding(findings, 1))
    losing = LosesOnce(dynamodb, _finding(findings, 2), clock=clock)
    losing._known = dict(groups._known)
    member = _finding(findings, 3)
    calls = _reads(dynamodb)
    # WHEN it joins
    joined = losing.join(KEY, member, account_name="payroll", window=WINDOW, max_age=MAX_AGE)
    # THEN its transaction was refused by the group's count alone: it read the group again (not the pointer, not its
    # record) and joined after the rival
    assert (joined.group_id, joined.seq) == (first.group_id, 3)
    assert calls == ["GetItem", "TransactWriteItems", "GetItem", "TransactWriteItems"]
    assert [m.seq for m in losing.members(first.group_id, 10)] == [1, 2, 3]


def test_a_join_refused_by_its_record_returns_the_earlier_join(
    dynamodb: Any, groups: GroupStore, findings: FindingStore
) -> None:
    # GIVEN a finding whose earlier try joined (the response lost), and a store that does not know it did
    first = _join(groups, _finding(findings, 1))
    member = _finding(findings, 2)
    earlier = _join(groups, member)
    again = GroupStore(dynamodb, TABLE, clock=groups._clock)
    again._known = {digest: _Known(known.group_id) for digest, known in groups._known.items()}  # the id, no group
    calls = _reads(dynamodb)
    # WHEN it joins again THEN the transaction is refused by the record: the record is read, its join returned
    joined = again.join(KEY, member, account_name="payroll", window=WINDOW, max_age=MAX_AGE)
    assert (joined.group_id, joined.seq) == (earlier.group_id, earlier.seq) == (first.group_id, 2)
    assert calls[:3] == ["GetItem", "TransactWriteItems", "GetItem"]


def test_a_group_of_one_counts_its_members_moves_without_waking_the_writer(
    groups: GroupStore, findings: FindingStore
) -> None:
    from macie_chatops.group_store import Grouping

    class Wakes:
        def __init__(self) -> None:
            self.woken: list[tuple[str, int]] = []

        def wake(self, group_id: str, *, delay_s: int) -> None:
            self.woken.append((group_id, delay_s))

    wakes = Wakes()
    grouping = Grouping(groups, wakes)
    first = grouping.join(KEY, _finding(findings, 1), account_name="payroll", window=WINDOW, max_age=MAX_AGE)
    moved = findings.transition(
        "finding-00001", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="t", event="decided"
    ).record
    # GIVEN the first member moves out of RECEIVED: the join counted it already, nothing is written
    grouping.state_changed(moved)
    # WHEN it is approved while alone in its group
    approved = findings.transition(
        "finding-00001", expected={State.PENDING_APPROVAL}, target=State.APPROVED, actor="U0ALICE", event="click"
    ).record
    grouping.state_changed(approved)
    # THEN its count moved, the group stays clean, and the writer is not woken (nothing to render)
    item = groups.item(first.group_id)
    assert item is not None and item.view.state_counts == {State.APPROVED: 1} and item.dirty is False
    assert wakes.woken == []
    # WHEN a second member joins THEN the join wakes the writer, and the counts it will render are right
    grouping.join(KEY, _finding(findings, 2), account_name="payroll", window=WINDOW, max_age=MAX_AGE)
    assert wakes.woken == [(first.group_id, DIGEST_PACE_S)]
    item = groups.item(first.group_id)
    assert item is not None and item.dirty
    assert item.view.state_counts == {State.APPROVED: 1, State.PENDING_APPROVAL: 1}
    # AND once the group has two, the first member's moves mark it dirty like any member's
    groups.clear_dirty(first.group_id, version=item.view.version)
    quarantined = findings.transition(
        "finding-00001", expected={State.APPROVED}, target=State.QUARANTINED, actor="remediator", event="moved"
    ).record
    grouping.state_changed(quarantined)
    item = groups.item(first.group_id)
    assert item is not None and item.dirty and item.view.state_counts[State.QUARANTINED] == 1
    assert len(wakes.woken) == 2


# -- a store's next join builds on the group as its last join left it (issue 18) -----------------------------------


def _remembered(groups: GroupStore, key: GroupKey = KEY) -> dict[str, Any] | None:
    known = groups._known.get(key.digest)
    return None if known is None or known.group is None else dict(known.group)


def _as_read(groups: GroupStore, group_id: str) -> dict[str, Any]:
    """What a join reads of the group, as a read now finds it."""
    item = groups._get(group_item_key(group_id))
    assert item is not None
    return {name: item[name] for name in _JOIN_READS if name in item}


def test_a_stores_next_join_reads_nothing_and_remembers_exactly_what_a_read_would_find(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN members with more distinct prefixes than are counted by name, and more keys than the digest names
    members = [
        NewMember(m.finding_id, f"p{n:02d}/{n}.csv", m.severity, m.state)
        for n, m in ((n, _finding(findings, n)) for n in range(MAX_PREFIXES + 5))
    ]
    calls = _reads(dynamodb)
    # WHEN one store joins them one after another, a tenth of a second apart (all within REMEMBER_GROUP)
    joined, made = [], []
    for member in members:
        calls.clear()
        joined.append(_join(groups, member))
        made.append(list(calls))
        # THEN after every join it remembers the group exactly as a read finds it, in all a join reads (a group it
        # opened excepted: it is clean, and the next join reads it)
        remembered = _remembered(groups)
        assert remembered is None if joined[-1].first else remembered == _as_read(groups, joined[-1].group_id)
        clock.now += timedelta(seconds=0.1)
    # AND the opening read the pointer, the second join read the group, and every later one was its transaction alone
    assert made[:2] == [["GetItem", "TransactWriteItems"]] * 2
    assert made[2:] == [["TransactWriteItems"]] * (len(members) - 2)
    assert [j.seq for j in joined] == list(range(1, len(members) + 1))
    item = groups.item(joined[0].group_id)
    assert item is not None and item.view.member_count == len(members) and item.view.prefixes["…"] == 5
    assert [m.finding_id for m in groups.members(joined[0].group_id, 100)] == [m.finding_id for m in members]


def _three(groups: GroupStore, findings: FindingStore) -> str:
    """A group of three joined through ``groups``, which now remembers it (no read for its next join)."""
    joined = [_join(groups, _finding(findings, n)) for n in (1, 2, 3)]
    assert _remembered(groups) is not None
    return joined[0].group_id


def test_a_remembered_group_another_store_joined_is_refused_and_the_join_reads_it_again(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a store that remembers a group of three, and another store (another container) that joins it meanwhile
    group_id = _three(groups, findings)
    members = {n: _finding(findings, n) for n in range(4, 10)}
    other = GroupStore(boto3.client("dynamodb", region_name=dynamodb.meta.region_name), TABLE, clock=clock)
    assert _join(other, members[4]).seq == 4
    calls = _reads(dynamodb)
    # WHEN the first store joins the next finding
    fifth = _join(groups, members[5])
    # THEN its transaction, built on the remembered count, was refused by the group alone; the retry read the group
    # (after a random moment: losers of one round who retried on what the refusal returned would collide again) and
    # joined: seq 5, no gap, each member once
    assert calls == ["TransactWriteItems", "GetItem", "TransactWriteItems"]
    assert (fifth.group_id, fifth.seq) == (group_id, 5)
    assert [m.seq for m in groups.members(group_id, 10)] == [1, 2, 3, 4, 5]
    assert [m.finding_id for m in groups.members(group_id, 10)] == [f"finding-{n:05d}" for n in range(1, 6)]
    assert groups.view(group_id).member_count == 5  # type: ignore[union-attr]
    # AND another container joins this group: for CONTENDED the store reads the group before each join
    calls.clear()
    assert _join(groups, members[6]).seq == 6
    clock.now += CONTENDED - timedelta(seconds=1)
    assert _join(groups, members[7]).seq == 7
    assert calls == ["GetItem", "TransactWriteItems"] * 2
    # AND once that is over, the joins build on the group as the last one (after its read, a second ago) left it
    clock.now += timedelta(seconds=1)
    calls.clear()
    assert [_join(groups, members[n]).seq for n in (8, 9)] == [8, 9]
    assert calls == ["TransactWriteItems", "TransactWriteItems"]
    assert [m.seq for m in groups.members(group_id, 10)] == list(range(1, 10))


def test_a_remembered_group_the_digest_writer_cleaned_is_refused_and_the_join_wakes_the_writer(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a store that remembers a group of three (dirty), which the digest writer renders and cleans meanwhile
    group_id = _three(groups, findings)
    members = {n: _finding(findings, n) for n in (4, 5)}
    item = groups.item(group_id)
    assert item is not None and item.dirty
    writer = GroupStore(boto3.client("dynamodb", region_name=dynamodb.meta.region_name), TABLE, clock=clock)
    assert writer.clear_dirty(group_id, version=item.view.version)
    calls = _reads(dynamodb)
    # WHEN the store joins the next finding
    fourth = _join(groups, members[4])
    # THEN the transaction built on the remembered dirty mark was refused; the retry built on the clean group the
    # refusal returned, so the join marked it dirty and must wake the writer, as a join after a read would
    assert calls == ["TransactWriteItems", "TransactWriteItems"]
    assert (fourth.seq, fourth.wake_in_s) == (4, DIGEST_PACE_S)
    item = groups.item(group_id)
    assert item is not None and item.dirty and item.view.member_count == 4
    # AND the writer cleaning is no other container's join: the next join builds on what the store remembers
    calls.clear()
    fifth = _join(groups, members[5])
    assert calls == ["TransactWriteItems"] and (fifth.seq, fifth.wake_in_s) == (5, None)
    assert [m.seq for m in groups.members(group_id, 10)] == [1, 2, 3, 4, 5]


def test_a_remembered_group_whose_counts_the_remediator_moved_joins_as_a_read_would(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a store that remembers a group of three, a member of which the remediator moves (its counts, the version,
    # the dirty mark it already had)
    group_id = _three(groups, findings)
    members = {n: _finding(findings, n) for n in (4, 5)}
    remediator = GroupStore(boto3.client("dynamodb", region_name=dynamodb.meta.region_name), TABLE, clock=clock)
    assert remediator.mark_dirty(group_id, moved=(State.PENDING_APPROVAL, State.APPROVED)) is None
    calls = _reads(dynamodb)
    # WHEN the store joins the next finding
    fourth = _join(groups, members[4])
    # THEN nothing the join writes or decides from depends on what moved (it adds to the counts, it does not set
    # them): one transaction, accepted, and the group is what a join after a read would have made of it
    assert calls == ["TransactWriteItems"] and (fourth.seq, fourth.wake_in_s) == (4, None)
    item = groups.item(group_id)
    assert item is not None and item.view.member_count == 4 and item.view.version == 5  # 3 joins, the move, a join
    assert item.view.state_counts == {State.PENDING_APPROVAL: 3, State.APPROVED: 1}
    assert _remembered(groups) == _as_read(groups, group_id)
    clock.now += timedelta(seconds=1)
    # AND when the writer cleans the group and the remediator marks it dirty again before the next join (its mark
    # and wake-up, a dirty_at this store never saw), the join is accepted too: a wake-up is on its way
    assert remediator.clear_dirty(group_id, version=item.view.version)
    assert remediator.mark_dirty(group_id, moved=(State.APPROVED, State.QUARANTINED)) == DIGEST_PACE_S
    calls.clear()
    fifth = _join(groups, members[5])
    assert calls == ["TransactWriteItems"] and (fifth.seq, fifth.wake_in_s) == (5, None)
    assert [m.seq for m in groups.members(group_id, 10)] == [1, 2, 3, 4, 5]


def test_what_a_store_remembers_expires(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a store that remembers a group of three WHEN REMEMBER_GROUP has passed since the read it built on
    group_id = _three(groups, findings)
    members = {n: _finding(findings, n) for n in (4, 5, 6)}
    clock.now += REMEMBER_GROUP
    calls = _reads(dynamodb)
    # THEN its next join reads the group again, and the one after builds on that read
    assert [_join(groups, members[n]).seq for n in (4, 5)] == [4, 5]
    assert calls == ["GetItem", "TransactWriteItems", "TransactWriteItems"]
    # AND a clock that went back (another host's, or set back) makes what it remembers unusable too
    clock.now -= timedelta(seconds=1)
    calls.clear()
    assert _join(groups, members[6]).seq == 6
    assert calls == ["GetItem", "TransactWriteItems"]
    assert [m.seq for m in groups.members(group_id, 10)] == [1, 2, 3, 4, 5, 6]


def test_a_remembered_group_that_looks_closed_is_read_not_replaced(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a 2 s window: a store remembers a group of three joined at t, another store joins it at t + 1.5 s
    window = timedelta(seconds=2)
    joined = [
        groups.join(KEY, _finding(findings, n), account_name="p", window=window, max_age=MAX_AGE) for n in (1, 2, 3)
    ]
    group_id = joined[0].group_id
    members = {n: _finding(findings, n) for n in (4, 5)}
    clock.now += timedelta(seconds=1.5)
    other = GroupStore(dynamodb, TABLE, clock=clock)
    assert other.join(KEY, members[4], account_name="p", window=window, max_age=MAX_AGE).seq == 4
    # WHEN the first store joins at t + 3 s, its group closed by what it remembers (joined last at t), not by the table
    clock.now += timedelta(seconds=1.5)
    calls = _reads(dynamodb)
    fifth = groups.join(KEY, members[5], account_name="p", window=window, max_age=MAX_AGE)
    # THEN it read the group (opening another would pin nothing of this one), found it open and joined it
    assert calls == ["GetItem", "TransactWriteItems"]
    assert (fifth.group_id, fifth.seq) == (group_id, 5)


def test_a_remembered_group_replaced_meanwhile_takes_no_member(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a store that remembers group A, and another store (a 1 s window) that replaces A by group B 2 s later
    a = _three(groups, findings)
    members = {n: _finding(findings, n) for n in (4, 5)}
    clock.now += timedelta(seconds=2)
    other = GroupStore(dynamodb, TABLE, clock=clock)
    b = other.join(KEY, members[4], account_name="p", window=timedelta(seconds=1), max_age=MAX_AGE)
    assert b.first and b.group_id != a
    calls = _reads(dynamodb)
    # WHEN the first store joins, A still open by what it remembers
    joined = _join(groups, members[5])
    # THEN the transaction built on it was refused by the key's pointer: the record (not joined before), the pointer
    # and B were read, and the member joined B
    assert calls == ["TransactWriteItems", "GetItem", "GetItem", "GetItem", "TransactWriteItems"]
    assert (joined.group_id, joined.seq) == (b.group_id, 2)
    assert groups.view(a).member_count == 3  # type: ignore[union-attr]


def test_a_join_whose_response_is_lost_leaves_nothing_remembered(
    dynamodb: Any, groups: GroupStore, findings: FindingStore
) -> None:
    # GIVEN a store that remembers a group of three, and a transaction DynamoDB applies but whose answer is lost
    group_id = _three(groups, findings)
    members = {n: _finding(findings, n) for n in (4, 5)}

    def lost(**_: Any) -> None:
        dynamodb.meta.events.unregister("after-call.dynamodb.TransactWriteItems", lost)
        raise ConnectionError("connection reset after the transaction was applied")

    dynamodb.meta.events.register("after-call.dynamodb.TransactWriteItems", lost)
    with pytest.raises(ConnectionError):
        _join(groups, members[4])
    # WHEN the store joins the next finding
    calls = _reads(dynamodb)
    fifth = _join(groups, members[5])
    # THEN it built on nothing remembered (which would have had the applied join missing): it read the group
    assert calls == ["GetItem", "TransactWriteItems"]
    assert fifth.seq == 5 and [m.seq for m in groups.members(group_id, 10)] == [1, 2, 3, 4, 5]


class RearmedMeanwhile(GroupStore):
    """A store whose re-arm of a stale dirty mark comes second to another caller's re-arm of it."""

    def _rearm(self, group_id: str, since: str, now: datetime) -> bool:
        other = GroupStore(self._client, TABLE, clock=self._clock)
        assert other.mark_dirty(group_id) == DIGEST_PACE_S  # the other caller's re-arm
        return super()._rearm(group_id, since, now)


def test_a_join_that_did_not_rearm_a_stale_mark_remembers_nothing(
    dynamodb: Any, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a dirty group of three whose mark is older than STALE_DIRTY (its wake-up lost), a window that keeps it open
    groups = RearmedMeanwhile(dynamodb, TABLE, clock=clock)
    longer = STALE_DIRTY * 2
    joined = [
        groups.join(KEY, _finding(findings, n), account_name="p", window=longer, max_age=MAX_AGE) for n in (1, 2, 3)
    ]
    clock.now += STALE_DIRTY + timedelta(seconds=1)
    # WHEN a join finds the mark stale and another caller re-arms it first
    fourth = groups.join(KEY, _finding(findings, 4), account_name="p", window=longer, max_age=MAX_AGE)
    # THEN the join wakes nobody (the other caller does), and the store does not remember a dirty_at it never saw
    assert (fourth.seq, fourth.wake_in_s) == (4, None)
    assert _remembered(groups) is None and groups._known[KEY.digest].group_id == joined[0].group_id


@pytest.mark.usefixtures("atomic_moto")
def test_concurrent_joins_of_several_stores_lose_nobody(dynamodb: Any, findings: FindingStore) -> None:
    # GIVEN 60 findings of one key, none recorded yet, and 6 stores (6 containers, each remembering what it joined)
    creations = [_creating(findings, n) for n in range(60)]
    stores = {n: GroupStore(boto3.client("dynamodb", region_name=dynamodb.meta.region_name), TABLE) for n in range(6)}

    def create(creation: tuple[NewMember, NewRecord]) -> tuple[str, Any]:
        store = stores[int(creation[0].finding_id[-5:]) % 6]
        return creation[0].finding_id, _join_creating(store, findings, *creation)

    # WHEN each store creates its findings' records with their joins, all at once
    results = _at_once(creations, create)
    # THEN one group; every finding has exactly one seq, 1..60, listed once in the pages and born on its record
    assert all(isinstance(joined, Joined) for joined in results.values())
    assert len({j.group_id for j in results.values()}) == 1
    group_id = next(iter(results.values())).group_id
    assert sorted(j.seq for j in results.values()) == list(range(1, 61))
    listed = GroupStore(dynamodb, TABLE).members(group_id, 60)
    assert [m.seq for m in listed] == list(range(1, 61))
    assert {m.finding_id: m.seq for m in listed} == {f: j.seq for f, j in results.items()}
    for member, _ in creations:
        record = findings.get(member.finding_id)
        assert record is not None and (record.group_id, record.group_seq) == (group_id, results[member.finding_id].seq)


def test_a_copy_whose_mark_a_clean_and_a_re_mark_replaced_wakes_nobody_even_when_it_looks_stale(
    dynamodb: Any, groups: GroupStore, findings: FindingStore, clock: SettableClock
) -> None:
    # GIVEN a group dirty since its second join (T1), a window that keeps it open, and a store whose copy descends from
    # a read made just before the mark turned STALE_DIRTY old (the copy's dirty_at is T1)
    longer = STALE_DIRTY * 2
    members = {n: _finding(findings, n) for n in range(1, 6)}
    joined = [groups.join(KEY, members[n], account_name="p", window=longer, max_age=MAX_AGE) for n in (1, 2)]
    clock.now += STALE_DIRTY - timedelta(seconds=1)
    third = groups.join(KEY, members[3], account_name="p", window=longer, max_age=MAX_AGE)
    assert (third.seq, third.wake_in_s) == (3, None)
    remembered = _remembered(groups)
    assert remembered is not None
    # AND the digest writer cleans the group, and the remediator marks it dirty again 2 s later (a new dirty_at: T3),
    # which wakes the writer itself
    other = GroupStore(boto3.client("dynamodb", region_name=dynamodb.meta.region_name), TABLE, clock=clock)
    item = groups.item(joined[0].group_id)
    assert item is not None and other.clear_dirty(joined[0].group_id, version=item.view.version)
    clock.now += timedelta(seconds=2)
    assert other.mark_dirty(joined[0].group_id, moved=(State.PENDING_APPROVAL, State.APPROVED)) == DIGEST_PACE_S
    re_marked = groups._get(group_item_key(joined[0].group_id))
    assert re_marked is not None and re_marked["dirty_at"] != remembered["dirty_at"]
    calls = _reads(dynamodb)
    # WHEN the store joins again within REMEMBER_GROUP of its read (the copy's T1 is now older than STALE_DIRTY)
    fourth = groups.join(KEY, members[4], account_name="p", window=longer, max_age=MAX_AGE)
    # THEN the join built on the copy is accepted (count and dirty mark unchanged), its re-arm of T1 is refused (the
    # table holds T3), so it wakes nobody (the remediator's mark did), and the store keeps no copy: the next join reads
    assert calls == ["TransactWriteItems", "UpdateItem"]
    assert (fourth.seq, fourth.wake_in_s) == (4, None)
    assert groups._get(group_item_key(joined[0].group_id))["dirty_at"] == re_marked["dirty_at"]  # type: ignore[index]
    assert _remembered(groups) is None
    calls.clear()
    assert groups.join(KEY, members[5], account_name="p", window=longer, max_age=MAX_AGE).seq == 5
    assert calls == ["GetItem", "TransactWriteItems"]
    assert [m.seq for m in groups.members(joined[0].group_id, 10)] == [1, 2, 3, 4, 5]


def test_a_lost_wake_up_is_owed_only_by_a_mark_older_than_stale_dirty_and_once(
    groups: GroupStore, findings: FindingStore, clock: SettableClock, dynamodb: Any
) -> None:
    # GIVEN a clean group, and the store's DynamoDB calls noted
    group_id = _join(groups, _finding(findings, 1)).group_id
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    # WHEN asked whether a wake-up was lost THEN none is owed: one read, nothing written
    assert groups.lost_wake_due(group_id) is None
    assert calls == ["GetItem"]
    # GIVEN it marked dirty (its wake-up sent, or lost: the store cannot tell) WHEN asked while the mark is fresh
    # THEN none is owed, and the mark and version are as they were
    assert groups.mark_dirty(group_id) == DIGEST_PACE_S
    before = groups.item(group_id)
    clock.now += STALE_DIRTY - timedelta(seconds=1)
    assert groups.lost_wake_due(group_id) is None
    assert groups.item(group_id) == before
    # WHEN the mark is STALE_DIRTY old THEN one wake-up is owed, once: the mark is re-armed (the version is not
    # moved: nothing changed that the writer has not been told of)
    clock.now += timedelta(seconds=1)
    calls.clear()
    assert groups.lost_wake_due(group_id) == DIGEST_PACE_S
    assert calls == ["GetItem", "UpdateItem"]
    assert groups.lost_wake_due(group_id) is None
    after = groups.item(group_id)
    assert after is not None and before is not None and after.dirty and after.view.version == before.view.version
    # AND a group that is gone owes nothing
    assert groups.lost_wake_due("0" * 32) is None
