"""A group's page is posted once even when the digest writer dies between posting it and recording its ts
(docs/architecture.md §22): the attempt is marked before the post, the post carries the page's metadata, and only a
run that finds a mark without a ts reads the thread, adopting the reply it finds. Real writer, moto, the stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from macie_chatops.digest_messages import page_metadata
from macie_chatops.digest_writer import PAGE_ATTEMPT_LEASE, DigestOutcome, write_digest
from macie_chatops.errors import SlackRetryableError, SlackRetryLaterError
from macie_chatops.group_store import GroupStore
from macie_chatops.groups import GroupPage
from macie_chatops.handlers import digests as digest_handler
from macie_chatops.handlers import intake as intake_handler
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import aws_client
from tests.conftest import AwsSandbox
from tests.functional.test_floods import PAYMENTS, TABLE, World, _config, _world, first_group, review_event

CLOSED = timedelta(seconds=61)  # the group's window (60 s) has passed: its last, partial page is due
AFTER_LEASE = CLOSED + PAGE_ATTEMPT_LEASE + timedelta(seconds=1)


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield _world(aws, slack, tmp_path, monkeypatch, _config(60))
    intake_handler.clear_caches()
    digest_handler.clear_caches()


class DiesAfterThePost(GroupStore):
    """The real group store, except that recording a page's ts raises: the writer died right after the post."""

    def record_page(self, group_id: str, number: int, *, ts: str) -> None:
        raise RuntimeError("simulated crash after the page was posted")


def a_group_of_three(world: World) -> tuple[str, str, str]:
    """Three findings of one group, the wake-up's body, the group id and the digest's ts."""
    assert world.intake(*[review_event(n) for n in range(3)]) == []
    (wake_up,) = world.wake_ups()
    (digest,) = world.slack.messages(PAYMENTS)
    return wake_up, first_group(world), digest.ts


def page(world: World, group_id: str) -> GroupPage:
    found = world.groups.page(group_id, 1)
    assert found is not None
    return found


def test_a_page_is_posted_with_its_metadata_and_no_thread_is_read(world: World) -> None:
    wake_up, group_id, digest_ts = a_group_of_three(world)
    # WHEN the writer runs once the group has closed
    assert write_digest(wake_up, world.writer(clock_offset=CLOSED)) is DigestOutcome.WRITTEN
    # THEN the page is in the thread with the metadata naming it, recorded, and Slack was not read
    (reply,) = world.slack.replies(PAYMENTS, digest_ts)
    listed = page(world, group_id)
    assert reply.metadata == page_metadata(listed)
    assert listed.ts == reply.ts and listed.post_attempted_at is not None
    assert world.slack.request_count("conversations.replies") == 0


def test_a_crash_between_the_post_and_its_record_posts_the_page_once(world: World) -> None:
    wake_up, group_id, digest_ts = a_group_of_three(world)
    closed = world.writer(clock_offset=CLOSED)
    # GIVEN a writer that dies after posting page 1, before recording its ts
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_digest(wake_up, replace(closed, groups=DiesAfterThePost(aws_client("dynamodb"), TABLE)))
    (posted,) = world.slack.replies(PAYMENTS, digest_ts)
    assert page(world, group_id).ts is None and page(world, group_id).post_attempted_at is not None
    delayed = world.delayed()
    # WHEN another wake-up runs while the attempt is recent (its writer may still be posting)
    assert write_digest(wake_up, closed) is DigestOutcome.WRITTEN
    # THEN it leaves the page alone, reads nothing, and wakes again when the attempt's lease ends
    assert (
        len(world.slack.replies(PAYMENTS, digest_ts)) == 1 and world.slack.request_count("conversations.replies") == 0
    )
    assert world.delayed() == delayed + 1
    # WHEN the message comes back after the lease (SQS's visibility timeout)
    assert write_digest(wake_up, world.writer(clock_offset=AFTER_LEASE)) is DigestOutcome.WRITTEN
    # THEN the thread is read once and the posted reply adopted: one page in Slack, its ts recorded
    assert world.slack.replies(PAYMENTS, digest_ts) == [posted]
    assert world.slack.request_count("conversations.replies") == 1
    assert page(world, group_id).ts == posted.ts
    item = world.groups.item(group_id)
    assert item is not None and item.pages_posted == 1
    # AND a later wake-up finds nothing to do
    assert write_digest(wake_up, world.writer(clock_offset=AFTER_LEASE)) is DigestOutcome.CURRENT


def test_a_post_that_never_reached_slack_is_posted_after_the_thread_is_read(world: World) -> None:
    wake_up, group_id, digest_ts = a_group_of_three(world)
    # GIVEN the page's post failed on Slack's side (HTTP 500: whether Slack took it is unknown)
    world.slack.fail_next("chat.postMessage", count=2, status=500)  # slack_sdk retries a connection, not a 500
    with pytest.raises(SlackRetryableError):
        write_digest(wake_up, world.writer(clock_offset=CLOSED))
    assert world.slack.replies(PAYMENTS, digest_ts) == [] and page(world, group_id).post_attempted_at is not None
    world.slack.clear_faults()
    # WHEN the message comes back after the lease THEN the thread is read, the page is not in it, and it is posted once
    assert write_digest(wake_up, world.writer(clock_offset=AFTER_LEASE)) is DigestOutcome.WRITTEN
    (reply,) = world.slack.replies(PAYMENTS, digest_ts)
    assert world.slack.request_count("conversations.replies") == 1
    assert page(world, group_id).ts == reply.ts and reply.metadata == page_metadata(page(world, group_id))


def test_a_thread_slack_will_not_let_the_app_read_does_not_keep_the_page_unposted(world: World) -> None:
    wake_up, group_id, digest_ts = a_group_of_three(world)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_digest(
            wake_up, replace(world.writer(clock_offset=CLOSED), groups=DiesAfterThePost(aws_client("dynamodb"), TABLE))
        )
    # GIVEN the app installed without the history scopes (conversations.replies: missing_scope)
    world.slack.fail_next("conversations.replies", status=200, error="missing_scope")
    # WHEN the interrupted page is taken over THEN it is posted again (the read only spared a duplicate)
    assert write_digest(wake_up, world.writer(clock_offset=AFTER_LEASE)) is DigestOutcome.WRITTEN
    first, second = world.slack.replies(PAYMENTS, digest_ts)
    assert page(world, group_id).ts == second.ts and first.metadata == second.metadata


def test_a_post_slack_refused_before_taking_it_is_unmarked(world: World) -> None:
    wake_up, group_id, digest_ts = a_group_of_three(world)
    # GIVEN Slack answers the page's post 429 with a wait that does not fit the invocation (nothing was posted)
    world.slack.fail_next("chat.postMessage", status=429, retry_after=600)
    with pytest.raises(SlackRetryLaterError):
        write_digest(wake_up, world.writer(clock_offset=CLOSED))
    # THEN the attempt's mark is gone: the re-sent message posts without reading the thread
    assert page(world, group_id).post_attempted_at is None
    assert write_digest(wake_up, world.writer(clock_offset=CLOSED)) is DigestOutcome.WRITTEN
    assert len(world.slack.replies(PAYMENTS, digest_ts)) == 1
    assert world.slack.request_count("conversations.replies") == 0


def test_of_two_writers_one_marks_the_page(world: World) -> None:
    _, group_id, _ = a_group_of_three(world)
    now = datetime.now(UTC)
    # GIVEN two writers that both read page 1 unmarked WHEN both mark it THEN only the first one may post
    assert world.groups.mark_page_attempt(group_id, 1, at=now, read=None) is True
    assert world.groups.mark_page_attempt(group_id, 1, at=now + timedelta(seconds=1), read=None) is False
    # AND a writer taking over an old mark must name the mark it read
    marked = page(world, group_id).post_attempted_at
    later = now + AFTER_LEASE
    assert world.groups.mark_page_attempt(group_id, 1, at=later, read="2000-01-01T00:00:00.000000Z") is False
    assert world.groups.mark_page_attempt(group_id, 1, at=later, read=marked) is True
    # AND clearing removes only the writer's own mark (the first writer's clear leaves the second's)
    world.groups.clear_page_attempt(group_id, 1, at=now)
    assert page(world, group_id).post_attempted_at not in (None, marked)
    world.groups.clear_page_attempt(group_id, 1, at=later)
    assert page(world, group_id).post_attempted_at is None
    # AND once a ts is recorded no mark is taken
    world.groups.record_page(group_id, 1, ts="1.000009")
    assert world.groups.mark_page_attempt(group_id, 1, at=later, read=None) is False
    assert page(world, group_id).ts == "1.000009"
