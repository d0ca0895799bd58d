"""Finding floods through the sandbox (docs/architecture.md §22): with grouping on, a burst of findings of one bucket
is one Slack message, its digest updated in place and its members listed in thread pages; with it off, each
finding is posted on its own as before. Both ways every finding is recorded and reachable from a message."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from macie_chatops.config import Config, load_config
from macie_chatops.group_store import GroupStore
from macie_chatops.states import State
from macie_chatops_sandbox.findings import macie_finding_event
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from tests.conftest import ROOT
from tests.e2e.world import CREDENTIALS, PAYMENTS_CHANNEL, PAYMENTS_PROD, PERSONAL, Reported, upload

WINDOW_S = 2  # short, so a group closes (and its last page is posted) within a test


@pytest.fixture(scope="module", params=[WINDOW_S, 0], ids=["grouping-on", "grouping-off"])
def config(request: pytest.FixtureRequest) -> Config:
    example = load_config(ROOT / "accounts.yaml")
    slack = example.slack.model_copy(update={"group_window_seconds": request.param})
    return example.model_copy(update={"slack": slack})


@pytest.fixture(scope="module")
def sandbox(config: Config, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    with Sandbox(config, sandbox_settings) as running:
        yield running


def _burst(sandbox: Sandbox, count: int, finding_type: str) -> list[Reported]:
    """``count`` findings about objects of one bucket, published back to back."""
    reported = []
    for _ in range(count):
        stored = upload(sandbox, account_id=PAYMENTS_PROD, finding_type=finding_type)
        event = macie_finding_event(
            account_id=PAYMENTS_PROD,
            region="us-east-1",
            finding_type=finding_type,
            severity="High",
            stored=stored,
            finding_id=uuid.uuid4().hex,
        )
        assert sandbox.publish(event) == "member"
        reported.append(Reported(event["detail"]["id"], PAYMENTS_PROD, "us-east-1", stored, event))
    return reported


def _messages_naming(sandbox: Sandbox, finding_ids: set[str]) -> tuple[list[str], set[str]]:
    """The channel messages (ts) that name one of ``finding_ids``, and every finding id named by a message or a
    thread reply under it."""
    named: set[str] = set()
    tops = []
    for message in sandbox.slack.messages(PAYMENTS_CHANNEL):
        texts = [str(message.revisions[-1].blocks)]
        texts += [str(reply.revisions[-1].blocks) for reply in sandbox.slack.replies(PAYMENTS_CHANNEL, message.ts)]
        found = {finding_id for finding_id in finding_ids if any(finding_id in text for text in texts)}
        if found:
            tops.append(message.ts)
            named |= found
    return tops, named


def test_a_burst_of_reviews(sandbox: Sandbox, config: Config) -> None:
    # GIVEN 25 findings of one bucket, decided review, published in a burst
    burst = _burst(sandbox, 25, PERSONAL)
    ids = {r.finding_id for r in burst}
    sandbox.wait_until_idle(timeout_s=90)
    records = [r.record(sandbox) for r in burst]
    # THEN every one is recorded, awaiting approval, and reachable from a message in the channel
    assert {record.state for record in records} == {State.PENDING_APPROVAL}
    tops, named = _messages_naming(sandbox, ids)
    assert named == ids
    if config.slack.group_window_seconds == 0:
        # grouping off: one message each, as before
        assert len(tops) == 25 and all(record.group_id is None and record.slack_ts for record in records)
        return
    # grouping on: one message, the digest of one group of 25, its members listed in one page in its thread
    (digest_ts,) = tops
    group_ids = {record.group_id for record in records}
    assert len(group_ids) == 1 and None not in group_ids
    assert sorted(record.group_seq or 0 for record in records) == list(range(1, 26))
    (digest,) = [m for m in sandbox.slack.messages(PAYMENTS_CHANNEL) if m.ts == digest_ts]
    assert "25 findings" in digest.revisions[-1].text
    assert len(sandbox.slack.replies(PAYMENTS_CHANNEL, digest_ts)) == 1
    group = GroupStore(sandbox.client("dynamodb"), sandbox.provisioned.table_name).item(str(group_ids.pop()))
    assert group is not None and not group.dirty and group.pages_posted == 1
    assert group.view.state_counts == {State.PENDING_APPROVAL: 25}


def test_a_burst_of_auto_quarantines_shows_the_tally(sandbox: Sandbox, config: Config) -> None:
    # GIVEN 6 credentials findings of one bucket (auto) WHEN they are quarantined
    burst = _burst(sandbox, 6, CREDENTIALS)
    for reported in burst:
        sandbox.wait_for_state(reported.finding_id, State.QUARANTINED, timeout_s=60)
    sandbox.wait_until_idle(timeout_s=90)
    ids = {r.finding_id for r in burst}
    tops, named = _messages_naming(sandbox, ids)
    assert named == ids
    if config.slack.group_window_seconds == 0:
        assert len(tops) == 6
        return
    # THEN one message whose digest counts all of them quarantined (each member's move counted)
    (digest_ts,) = tops
    (group_id,) = {r.record(sandbox).group_id for r in burst}
    group = GroupStore(sandbox.client("dynamodb"), sandbox.provisioned.table_name).item(str(group_id))
    assert group is not None and not group.dirty
    assert group.view.state_counts == {State.QUARANTINED: 6}
    (digest,) = [m for m in sandbox.slack.messages(PAYMENTS_CHANNEL) if m.ts == digest_ts]
    assert "6 findings" in digest.revisions[-1].text
    assert "quarantined" in str(digest.revisions[-1].blocks).lower()  # the tally (counts: the group item above)
