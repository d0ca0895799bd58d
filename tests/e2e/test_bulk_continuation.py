"""One click approves a whole flood (docs/architecture.md §22, "Bulk decisions"): the sandbox's digest of 120 findings,
its "Quarantine all 120" clicked once over real HTTP, carried by signed continuations that the interaction handler
receives from its own queue; every object quarantined by its own job, each approval audited with the approver's
name. (The chain of continuations, each from where the last stopped: the functional tests.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from macie_chatops import names
from macie_chatops.bulk import BULK_INLINE_MAX
from macie_chatops.config import Config, load_config
from macie_chatops.states import State
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from tests.conftest import ROOT
from tests.e2e.test_bulk import digest_listing, flood, groups, record_of
from tests.e2e.world import PAYMENTS_CHANNEL

# More than one page of members (BULK_INLINE_MAX, 100): a range no click reaches within Slack's 3 s, so the click
# decides none of them itself and hands the whole range to a signed continuation.
COUNT = BULK_INLINE_MAX + 20
WAIT_S = 300.0


@pytest.fixture(scope="module")
def config() -> Config:
    example = load_config(ROOT / "accounts.yaml")
    slack = example.slack.model_copy(update={"group_window_seconds": 20})
    return example.model_copy(update={"slack": slack})


@pytest.fixture(scope="module")
def sandbox(config: Config, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    with Sandbox(config, sandbox_settings) as running:
        yield running


def test_one_click_quarantines_every_finding_of_a_digest_over_one_page(sandbox: Sandbox) -> None:
    # GIVEN a flood of 120 findings about one bucket, listed in one digest (more than one page)
    finding_ids = flood(sandbox, f"flood-{uuid.uuid4().hex[:8]}", COUNT)
    group_id, digest_ts, binding = digest_listing(sandbox, finding_ids)
    assert binding.upto == COUNT
    # WHEN an approver clicks "Quarantine all 120" once
    approver = sandbox.approver_for("payments")
    answer = sandbox.click(
        binding.encode(),
        names.ACTION_BULK_REMEDIATE,
        user_id=approver,
        channel_id=PAYMENTS_CHANNEL,
        message_ts=digest_ts,
    )
    # THEN the answer says they are being approved, with no button to click again
    assert answer.status == 200
    assert f"*Approving the listed findings 1–{COUNT} still awaiting approval*" in answer.text
    assert "blocks" not in answer.json

    # AND every finding ends QUARANTINED, each approved by that approver with its own audit entry
    def all_quarantined() -> bool | None:
        states = [record.state for record in map(sandbox.record, finding_ids) if record is not None]
        return True if states == [State.QUARANTINED] * COUNT else None

    sandbox.wait_for(all_quarantined, WAIT_S, f"all {COUNT} findings quarantined")
    for finding_id in finding_ids:
        record = record_of(sandbox, finding_id)
        assert record.approver == approver
        approvals = [entry for entry in record.audit if entry.outcome == State.APPROVED.value]
        assert len(approvals) == 1 and approvals[0].actor == approver and approvals[0].event == "click:remediate"
        assert f"bulk: group {group_id} findings " in approvals[0].detail
        assert len(sandbox.quarantined_copies(record.account_id or "", "us-east-1", finding_id)) == 1

    # AND the digest counts them, and no continuation was left behind or dead-lettered
    def digest_counts() -> bool | None:
        view = groups(sandbox).view(group_id)
        return True if view is not None and dict(view.state_counts) == {State.QUARANTINED: COUNT} else None

    sandbox.wait_for(digest_counts, WAIT_S, "the digest counting every finding quarantined")
    sandbox.wait_until_idle(WAIT_S)
    assert sandbox.dlq_bodies()[names.BULK_CONTINUATION_DLQ_NAME] == []
