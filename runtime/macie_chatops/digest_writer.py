"""The digest writer (docs/architecture.md §22): one digest queue message -> a group's Slack messages brought up to
date from the table.

Everything it knows is in the state table, so any number of wake-ups of one group coalesce: a run posts the full
pages not yet posted (each recorded before the next), the last partial page once the group has closed, and the
digest (``chat.update`` of the first member's message) when the group is dirty and the update is due (the back-off,
or the group quiet for a few seconds: ``group_store.update_due``; not due: it wakes itself for then); it clears the
dirty mark only if no change came in meanwhile (the version it rendered), else it wakes itself again. Slack's pace is
the SlackClient's (its pacer); what it cannot take now raises ``SlackRetryLaterError`` and the message is re-sent.

A page is posted once across crashes: its attempt is marked on the page item before the post, the post carries
message metadata naming it, and a run that finds a mark without a ts reads the thread and adopts the reply it finds
(``_post_page``): only a run after an interrupted attempt reads Slack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Protocol

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, StringConstraints

from macie_chatops.digest_messages import is_page, page_metadata, render_digest, render_page
from macie_chatops.errors import SlackConfigurationError, SlackMessageNotFoundError, SlackRetryLaterError
from macie_chatops.group_store import QUIET_S, DigestQueue, GroupItem, GroupStore, digest_interval
from macie_chatops.groups import PAGE_SIZE, GroupPage, GroupView, page_number
from macie_chatops.ports import Clock, Counter, utcnow
from macie_chatops.slack_messages import SlackMessage
from macie_chatops.store import FindingStore

logger = Logger(service="macie-chatops-digest-writer", child=True)

CLOSE_MARGIN_S: Final = 1  # wake this long after the group closes, so the clocks agree it has
# How long a digest waits for its first member's message (the intake posts it) before it posts one of its own.
FIRST_MESSAGE_GRACE: Final = timedelta(minutes=5)
# A page's attempt mark younger than this may be another writer's post under way (one invocation lasts at most
# 60 s, infra central/digests.py): that page is left to it. An older one is a run that died: its post is looked for.
PAGE_ATTEMPT_LEASE: Final = timedelta(seconds=90)


class DigestSlack(Protocol):
    """The Slack calls of the writer (``slack_client.SlackClient``); each raises SlackError."""

    def post(self, channel: str, message: SlackMessage) -> str: ...

    def reply(
        self, channel: str, thread_ts: str, message: SlackMessage, *, metadata: Mapping[str, Any] | None = None
    ) -> str: ...

    def update(self, channel: str, ts: str, message: SlackMessage) -> None: ...

    def thread_metadata(self, channel: str, thread_ts: str) -> list[tuple[str, Mapping[str, Any]]]: ...


class DigestRequest(BaseModel):
    """The digest queue's message body (written by ``SqsDigestQueue``; anything else is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    group_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


@dataclass(frozen=True)
class WriterDependencies:
    groups: GroupStore
    findings: FindingStore
    slack: DigestSlack
    digests: DigestQueue
    metrics: Counter
    clock: Clock = utcnow
    pace_s: int = 3


class DigestOutcome(StrEnum):
    GONE = "gone"  # no such group (expired, or never written)
    CURRENT = "current"  # nothing to show that is not shown
    SINGLE = "single"  # one member: its own message is the group's, nothing to render
    AWAITING_MESSAGE = "awaiting_message"  # the first member is not posted yet: woken again
    WRITTEN = "written"  # pages and/or the digest written, the mark cleared
    CHANGED = "changed"  # written, but the group changed meanwhile: woken again
    DEFERRED = "deferred"  # the update is not due yet (the group keeps changing): woken again when it is
    MESSAGE_DELETED = "message_deleted"  # the digest message was deleted in Slack: nothing to write to


def write_digest(body: str, deps: WriterDependencies) -> DigestOutcome:
    """Bring one group's messages up to date; raises (the message returns) when a step fails."""
    group_id = DigestRequest.model_validate_json(body).group_id
    logger.thread_safe_append_keys(group_id=group_id)
    item = deps.groups.item(group_id)
    if item is None:
        logger.warning("digest wake-up for a group that does not exist")
        return DigestOutcome.GONE
    now = deps.clock()
    closed = now >= item.closes_at
    pages_due = _pages_due(item.view.member_count, closed=closed)
    if not item.dirty and item.pages_posted >= pages_due:
        return DigestOutcome.CURRENT
    if item.view.member_count <= 1:
        deps.groups.clear_dirty(group_id, version=item.view.version)
        return DigestOutcome.SINGLE
    where = _digest_message(item, deps)
    if where is None:
        waited = now - datetime.fromisoformat(item.view.opened_at.replace("Z", "+00:00"))
        if waited < FIRST_MESSAGE_GRACE:
            logger.info("the first member's message is not posted yet: waking again")
            deps.digests.wake(group_id, delay_s=deps.pace_s if waited < timedelta(minutes=1) else 30)
            return DigestOutcome.AWAITING_MESSAGE
        where = _post_own_message(item, now, deps)
    try:
        return _write(item, where, pages_due, closed, now, deps)
    except SlackMessageNotFoundError as exc:
        # Deleted in Slack: no digest to update nor thread to list in, and retrying will not bring it back.
        logger.error(
            "the group's digest message is gone (deleted in Slack): its members stay in the table",
            extra={"channel": where[0], "ts": where[1], "error_code": exc.error_code},
        )
        deps.metrics.count("DigestFailures", kind="message_deleted")
        deps.groups.clear_dirty(group_id, version=item.view.version)
        return DigestOutcome.MESSAGE_DELETED


def _pages_due(member_count: int, *, closed: bool) -> int:
    """Pages to post: every full one; the last, partial one too once the group takes no more members."""
    if member_count == 0:
        return 0
    return page_number(member_count) if closed else member_count // PAGE_SIZE


def _digest_message(item: GroupItem, deps: WriterDependencies) -> tuple[str, str] | None:
    """(channel, ts) of the digest: recorded on the group, else the first member's message (recorded now)."""
    if item.digest_channel and item.digest_ts:
        return item.digest_channel, item.digest_ts
    first = deps.findings.get(item.first_finding_id)
    if first is None or not first.slack_channel or not first.slack_ts:
        return None
    deps.groups.record_digest(item.view.group_id, channel=first.slack_channel, ts=first.slack_ts)
    return first.slack_channel, first.slack_ts


def _post_own_message(item: GroupItem, now: datetime, deps: WriterDependencies) -> tuple[str, str]:
    """The first member was never posted (its intake failed for good, e.g. it is in the intake DLQ): the digest
    gets a message of its own rather than the group none. A redriven intake may still post the first member's
    message later: two messages, nothing hidden."""
    view = item.view
    logger.error(
        "the group's first member was never posted: the digest is posted as a message of its own",
        extra={"first_finding_id": item.first_finding_id, "opened_at": view.opened_at},
    )
    deps.metrics.count("DigestFailures", kind="first_never_posted")
    ts = deps.slack.post(view.channel, render_digest(view, now=now))
    deps.groups.record_digest(view.group_id, channel=view.channel, ts=ts)
    recorded = deps.groups.item(view.group_id)
    if recorded is None or recorded.digest_ts is None or recorded.digest_channel is None:
        raise RuntimeError(f"group {view.group_id}: its digest message was posted and then not recorded")
    return recorded.digest_channel, recorded.digest_ts  # another writer's, if it recorded one first


def _write(
    item: GroupItem, where: tuple[str, str], pages_due: int, closed: bool, now: datetime, deps: WriterDependencies
) -> DigestOutcome:
    channel, ts = where
    view, group_id = item.view, item.view.group_id
    for number in range(item.pages_posted + 1, pages_due + 1):
        page = deps.groups.page(group_id, number)
        if page is None:  # a page below member_count always exists (joins are transactions)
            raise RuntimeError(f"group {group_id}: page {number} of {view.member_count} members is missing")
        if not _post_page(view, page, where, now, deps):
            break  # another writer is posting it: the later pages wait for it (posted in order)
    outcome = DigestOutcome.WRITTEN
    due = item.update_due_at
    if item.dirty and due is not None and now < due:
        _wake_for_update(group_id, due, now, deps)
        outcome = DigestOutcome.DEFERRED
    elif item.dirty:
        deps.slack.update(channel, ts, render_digest(view, now=now))
        deps.metrics.count("DigestUpdates")
        updates = deps.groups.note_update(group_id)
        if not deps.groups.clear_dirty(group_id, version=view.version):
            # Changed while rendered: due again after the back-off or a quiet spell, whichever comes first.
            _wake_for_update(group_id, now + timedelta(seconds=min(digest_interval(updates), QUIET_S)), now, deps)
            outcome = DigestOutcome.CHANGED
    if not closed and view.member_count % PAGE_SIZE and deps.groups.schedule_close_wake(group_id, at=item.closes_at):
        # The last page is posted when the group closes: wake then (a later join moves the close, and the
        # wake-up at the old time finds the group open and claims the new one).
        delay = math.ceil((item.closes_at - now).total_seconds()) + CLOSE_MARGIN_S
        deps.digests.wake(group_id, delay_s=delay)
    logger.info(
        "digest written" if outcome is not DigestOutcome.DEFERRED else "digest update not due yet",
        extra={"members": view.member_count, "version": view.version, "pages_due": pages_due, "outcome": outcome},
    )
    return outcome


def _post_page(
    view: GroupView, page: GroupPage, where: tuple[str, str], now: datetime, deps: WriterDependencies
) -> bool:
    """Post ``page`` in the digest's thread and record its ts; False when it is left to another writer.

    The attempt is marked before the post (conditional on the mark read, so of two writers one posts). A mark
    without a ts means a post may be in Slack: younger than :data:`PAGE_ATTEMPT_LEASE`, its writer may still be
    at it (left to it; this writer wakes again when the lease ends, in case it died); older, the thread is read
    and a reply carrying the page's metadata is adopted instead of posting again. Slack refusing the post before
    taking it (its pace, a 429) removes the mark again: nothing to look for next time."""
    channel, ts = where
    group_id, number = page.group_id, page.number
    if page.post_attempted_at is not None:
        marked = datetime.fromisoformat(page.post_attempted_at.replace("Z", "+00:00"))
        if now - marked < PAGE_ATTEMPT_LEASE:
            logger.info(
                "a page is being posted by another writer: left to it",
                extra={"page": number, "attempted_at": page.post_attempted_at},
            )
            delay = math.ceil((marked + PAGE_ATTEMPT_LEASE - now).total_seconds()) + CLOSE_MARGIN_S
            deps.digests.wake(group_id, delay_s=delay)
            return False
        posted = _find_posted(page, where, deps)
        if posted is not None:
            logger.warning(
                "a page was posted by a writer that died before recording it: adopted", extra={"page": number}
            )
            deps.metrics.count("DigestPagesAdopted")
            deps.groups.record_page(group_id, number, ts=posted)
            return True
    if not deps.groups.mark_page_attempt(group_id, number, at=now, read=page.post_attempted_at):
        logger.info("a page was marked or recorded by another writer meanwhile", extra={"page": number})
        return False
    try:
        reply_ts = deps.slack.reply(channel, ts, render_page(view, page), metadata=page_metadata(page))
    except SlackRetryLaterError:
        deps.groups.clear_page_attempt(group_id, number, at=now)
        raise
    deps.groups.record_page(group_id, number, ts=reply_ts)
    deps.metrics.count("DigestPages")
    return True


def _find_posted(page: GroupPage, where: tuple[str, str], deps: WriterDependencies) -> str | None:
    """The ts of the thread reply carrying ``page``'s metadata, or None. Slack refusing the read for good (the app
    installed without the history scopes: missing_scope) does not keep the page from being posted: the read only
    spares a duplicate, so it is posted (one duplicate at worst, as before the read) and the refusal logged."""
    channel, ts = where
    try:
        replies = deps.slack.thread_metadata(channel, ts)
    except SlackConfigurationError as exc:
        logger.error(
            "the digest's thread could not be read to find an interrupted page post: posting it (it may show twice)",
            extra={"page": page.number, "error_code": exc.error_code, "error": str(exc)},
        )
        deps.metrics.count("DigestFailures", kind="thread_unreadable")
        return None
    return next((reply for reply, metadata in replies if is_page(metadata, page)), None)


def _wake_for_update(group_id: str, at: datetime, now: datetime, deps: WriterDependencies) -> None:
    """Wake the writer at ``at`` to update the digest, unless a wake-up for later is already on its way."""
    delay = max(1, math.ceil((at - now).total_seconds()))
    if deps.groups.claim_update_wake(group_id, at=now + timedelta(seconds=delay), now=now):
        deps.digests.wake(group_id, delay_s=delay)
