"""A finding flood while Slack refuses writes for a while: the stand-in enforces Slack's limits (1 post a second
per channel, bursts of 4; chat.update's tier) and answers 429 + Retry-After for a window. Nothing may be lost and
nothing posted twice (docs/architecture.md §22, Pacing)."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.group_store import GroupStore
from macie_chatops.states import State
from macie_chatops_sandbox.findings import StoredObject, macie_finding_event
from macie_chatops_sandbox.provision import QueueSettings
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from macie_chatops_sandbox.slack_standin import RecordedMessage, SlackStandIn
from tests.conftest import ROOT
from tests.e2e.world import PAYMENTS_CHANNEL, PAYMENTS_PROD, PERSONAL

FINDING_ID = re.compile(r"\b[0-9a-f]{32}\b")
GROUP_WINDOW_S = 3  # a burst ends 3 s after its last finding: the last, partial page is posted then


@pytest.fixture(scope="module")
def config() -> Config:
    loaded = load_config(ROOT / "accounts.yaml")
    slack = loaded.slack.model_copy(update={"group_window_seconds": GROUP_WINDOW_S})
    return loaded.model_copy(update={"slack": slack})


@pytest.fixture(scope="module")
def sandbox_settings() -> SandboxSettings:
    # Slack's real limits (the defaults) and so the pacing; enough receives to outlast a fault window.
    return SandboxSettings(queues=QueueSettings(visibility_timeout_s=5, max_receive_count=5), log_level="ERROR")


@pytest.fixture(scope="module")
def sandbox(config: Config, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    with Sandbox(config, sandbox_settings) as running:
        yield running


def _flood(sandbox: Sandbox, bucket: str, count: int) -> list[str]:
    """``count`` review findings about one bucket, straight onto the intake queue (ten per call)."""
    events = [
        macie_finding_event(
            account_id=PAYMENTS_PROD,
            region="us-east-1",
            finding_type=PERSONAL,
            severity=("High", "Medium", "Low")[n % 3],
            stored=StoredObject(bucket, f"exports/part-{n:04d}.csv", uuid.uuid4().hex, "0" * 32, 64),
            finding_id=uuid.uuid4().hex,
        )
        for n in range(count)
    ]
    sqs = sandbox.client("sqs")
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps(e)} for i, e in enumerate(events[start : start + 10])]
        assert not sqs.send_message_batch(QueueUrl=sandbox.provisioned.intake.url, Entries=entries).get("Failed")
    return [str(e["detail"]["id"]) for e in events]


def _listed(slack: SlackStandIn, message: RecordedMessage) -> Counter[str]:
    """How many times each finding id is listed in ``message``'s thread replies (each reply as first posted)."""
    counts: Counter[str] = Counter()
    for reply in slack.replies(message.channel, message.ts):
        # (a reply names a finding in its text and in its "act on one" menu: once per reply)
        counts.update(set(FINDING_ID.findall(json.dumps(reply.revisions[0].blocks))))
    return counts


def _digest(sandbox: Sandbox, finding_id: str) -> RecordedMessage | None:
    """The digest message of ``finding_id``'s group, once the group has one."""
    record = sandbox.record(finding_id)
    item = (
        GroupStore(sandbox.client("dynamodb"), sandbox.provisioned.table_name).item(record.group_id)
        if (record is not None and record.group_id is not None)
        else None
    )
    if item is None or item.digest_channel is None or item.digest_ts is None:
        return None
    return sandbox.slack.message(item.digest_channel, item.digest_ts)


def test_slack_refusing_writes_for_a_while_loses_nothing_and_posts_nothing_twice(sandbox: Sandbox) -> None:
    slack = sandbox.slack
    # GIVEN Slack answering every write with 429 (Retry-After 2 s) for the next 8 seconds
    slack.rate_limit_during(8.0, retry_after=2)
    # WHEN 130 review findings about one bucket arrive at once
    ids = _flood(sandbox, "flood-429-window", 130)
    records = [sandbox.wait_for_state(finding_id, State.PENDING_APPROVAL, timeout_s=90) for finding_id in ids]

    # THEN (once the burst has closed and its last page is posted) the group has one message in the channel, the
    # first finding's, now the digest; its thread lists every finding exactly once (two pages: 100 + 30)
    def thread_complete() -> tuple[RecordedMessage, Counter[str]] | None:
        digest = _digest(sandbox, ids[0])
        listed = _listed(slack, digest) if digest is not None else Counter()
        return (digest, listed) if digest is not None and set(ids) <= set(listed) else None

    sandbox.wait_for(thread_complete, 90, "every finding listed in the digest's thread")
    sandbox.wait_until_idle(60)
    digest, listed = thread_complete() or pytest.fail("the thread lost a finding")
    assert {finding_id: listed[finding_id] for finding_id in ids} == dict.fromkeys(ids, 1)
    assert len(slack.replies(digest.channel, digest.ts)) == 2
    assert len({record.group_id for record in records}) == 1
    mentioning = [
        m.ts
        for m in slack.messages(PAYMENTS_CHANNEL)
        if set(ids) & set(FINDING_ID.findall(json.dumps(m.revisions[0].blocks)))
    ]
    assert mentioning == [digest.ts]
    # AND every finding is recorded once, waiting for review; nothing went to a dead-letter queue
    assert [
        state
        for state in (sandbox.record(i) for i in ids)
        if state is None or state.state is not State.PENDING_APPROVAL
    ] == []
    assert sandbox.dlq_bodies()[names.INTAKE_DLQ_NAME] == []
    assert sandbox.dlq_bodies()[names.DIGEST_DLQ_NAME] == []
    # AND Slack really did refuse writes (429) during the window: they were waited out or re-sent, never shown
    assert slack.rate_limited > 0
    assert "ratelimited" not in json.dumps([m.revisions[-1].blocks for m in slack.messages(PAYMENTS_CHANNEL)])
