"""Groups of findings as pure values (docs/architecture.md §22): the key, pages, prefixes; reminders per group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from macie_chatops.config import Action
from macie_chatops.digest_writer import DigestRequest
from macie_chatops.groups import PAGE_SIZE, GroupKey, key_prefix, page_number
from macie_chatops.reminders import ReminderPolicy, one_per_group, reminder_due
from macie_chatops.states import State
from macie_chatops.store import FindingRecord

KEY = GroupKey("C0PAYMENTS", "345678901234", "payments-prod-exports", "SensitiveData:S3Object/Personal", Action.REVIEW)
RECEIVED = "2026-12-01T10:00:00.000000Z"


def test_the_group_key_names_exactly_its_five_parts() -> None:
    # GIVEN keys that differ in one part each THEN their digests differ; the same parts give the same digest
    others = [
        GroupKey("C0OTHER", KEY.account_id, KEY.bucket, KEY.finding_type, KEY.action),
        GroupKey(KEY.channel, "456789012345", KEY.bucket, KEY.finding_type, KEY.action),
        GroupKey(KEY.channel, KEY.account_id, "other", KEY.finding_type, KEY.action),
        GroupKey(KEY.channel, KEY.account_id, KEY.bucket, "SensitiveData:S3Object/Financial", KEY.action),
        GroupKey(KEY.channel, KEY.account_id, KEY.bucket, KEY.finding_type, Action.AUTO),
    ]
    assert len({KEY.digest, *(other.digest for other in others)}) == 6
    assert GroupKey(*(KEY.channel, KEY.account_id, KEY.bucket, KEY.finding_type, KEY.action)).digest == KEY.digest
    # AND no separator can be forged: a bucket ending like the next part is another key
    assert GroupKey("C0A", "1", "b,c", "t", Action.AUTO).digest != GroupKey("C0A", "1,b", "c", "t", Action.AUTO).digest
    assert len(KEY.digest) == 64


@pytest.mark.parametrize(("seq", "page"), [(1, 1), (PAGE_SIZE, 1), (PAGE_SIZE + 1, 2), (10_000, 100), (10_001, 101)])
def test_page_numbers(seq: int, page: int) -> None:
    assert page_number(seq) == page


def test_seqs_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        page_number(0)


@pytest.mark.parametrize(
    ("key", "prefix"), [("exports/2026/a.csv", "exports/"), ("a.csv", "/"), ("/lead.csv", "/"), ("dir/", "dir/")]
)
def test_key_prefixes(key: str, prefix: str) -> None:
    assert key_prefix(key) == prefix


@pytest.mark.parametrize(
    "body",
    ['{"group_id": "X"}', '{"group_id": "' + "a" * 31 + '"}', '{"group_id": 1}', '{"group": "' + "a" * 32 + '"}', "[]"],
)
def test_the_digest_queue_refuses_any_other_body(body: str) -> None:
    with pytest.raises(ValueError):
        DigestRequest.model_validate_json(body)


def _pending(finding_id: str, *, group_id: str | None, seq: int | None, slack_ts: str | None) -> FindingRecord:
    return FindingRecord(
        finding_id=finding_id,
        state=State.PENDING_APPROVAL,
        received_at=RECEIVED,
        updated_at=RECEIVED,
        team="payments",
        channel="C0PAYMENTS",
        slack_channel="C0PAYMENTS" if slack_ts else None,
        slack_ts=slack_ts,
        group_id=group_id,
        group_seq=seq,
    )


def test_a_group_is_reminded_once_through_its_message_and_escalated_once() -> None:
    # GIVEN a group of three pending findings (only the first has a message: the digest) and one alone
    first = _pending("f1", group_id="g" * 32, seq=1, slack_ts="1.1")
    members = [_pending(f"f{n}", group_id="g" * 32, seq=n, slack_ts=None) for n in (2, 3)]
    alone = _pending("f9", group_id=None, seq=None, slack_ts="9.9")
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    policy = ReminderPolicy(remind_after=timedelta(hours=24))
    # THEN only the messages are reminded: the group's first member and the finding alone
    assert [reminder_due(r, now=now, policy=policy) for r in (first, *members, alone)] == [1, None, None, 1]
    # AND the escalation summary lists the group once, by its first listed member
    assert one_per_group([first, *members, alone]) == [first, alone]
    assert one_per_group([members[1], first, alone]) == [members[1], alone]
