"""Bulk decisions through the sandbox (docs/architecture.md §22): a flood's digest, its "Quarantine all N" clicked
over real HTTP, each finding moved by its own job, the outcomes counted in the digest; a bulk click racing a single
click moves each object once; a finding that joined after the digest was rendered is not part of the decision."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.digest_messages import BulkBinding
from macie_chatops.group_store import GroupStore
from macie_chatops.states import State
from macie_chatops.store import FindingRecord
from macie_chatops_sandbox.findings import macie_finding_event, sample_body
from macie_chatops_sandbox.sandbox import ClickResponse, Sandbox, SandboxSettings
from tests.conftest import ROOT
from tests.e2e.world import PAYMENTS_CHANNEL, PAYMENTS_PROD, PERSONAL, SETTLED

REGION = "us-east-1"
WINDOW_S = 20  # a group stays open this long after its last join: long enough for a late finding to join
WAIT_S = 120.0


@pytest.fixture(scope="module")
def config() -> Config:
    example = load_config(ROOT / "accounts.yaml")
    slack = example.slack.model_copy(update={"group_window_seconds": WINDOW_S})
    return example.model_copy(update={"slack": slack})


@pytest.fixture(scope="module")
def sandbox(config: Config, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    with Sandbox(config, sandbox_settings) as running:
        yield running


def groups(sandbox: Sandbox) -> GroupStore:
    return GroupStore(sandbox.client("dynamodb"), sandbox.provisioned.table_name)


def flood(sandbox: Sandbox, bucket: str, count: int, *, locked: frozenset[int] = frozenset()) -> list[str]:
    """``count`` Personal findings (review) about objects of ``bucket`` (Object Lock on: the objects numbered in
    ``locked`` are under a legal hold), published one after another; their finding ids in order."""
    sandbox.ensure_bucket(PAYMENTS_PROD, REGION, bucket, object_lock=True)
    finding_ids = []
    for index in range(count):
        stored = sandbox.put_object(
            PAYMENTS_PROD,
            REGION,
            bucket,
            f"exports/{index:03d}.csv",
            sample_body(PERSONAL),
            lock="LEGAL_HOLD" if index in locked else None,
        )
        event = macie_finding_event(
            account_id=PAYMENTS_PROD,
            region=REGION,
            finding_type=PERSONAL,
            severity="High",
            stored=stored,
            finding_id=uuid.uuid4().hex,
        )
        assert sandbox.publish(event) == "member"
        finding_ids.append(str(event["detail"]["id"]))
    return finding_ids


def quarantine_all_button(blocks: list[Any]) -> BulkBinding | None:
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == names.ACTION_BULK_REMEDIATE:
                return BulkBinding.decode(element["value"])
    return None


def digest_listing(sandbox: Sandbox, finding_ids: list[str]) -> tuple[str, str, BulkBinding]:
    """Wait until the group's digest offers "Quarantine all" for every one of ``finding_ids``: the group, the
    digest's ts and the button's binding as rendered."""

    def probe() -> tuple[str, str, BulkBinding] | None:
        record = sandbox.record(finding_ids[0])
        item = groups(sandbox).item(record.group_id) if record is not None and record.group_id else None
        if item is None or item.digest_ts is None:
            return None
        binding = quarantine_all_button(sandbox.slack.message(PAYMENTS_CHANNEL, item.digest_ts).blocks)
        if binding is None or binding.upto < len(finding_ids):
            return None
        return item.view.group_id, item.digest_ts, binding

    return sandbox.wait_for(probe, WAIT_S, "the digest listing every finding")


def quarantine_all(sandbox: Sandbox, binding: BulkBinding, digest_ts: str, user: str) -> ClickResponse:
    """A signed click on the digest's "Quarantine all N" (confirmed), over HTTP; clicked again while the answer
    says some members were not reached within Slack's 3 s (a loaded machine), as a person would."""
    for _ in range(10):
        answer = sandbox.click(
            binding.encode(),
            names.ACTION_BULK_REMEDIATE,
            user_id=user,
            channel_id=PAYMENTS_CHANNEL,
            message_ts=digest_ts,
        )
        if answer.status != 200 or "not reached in time" not in answer.text:
            return answer
    raise AssertionError(f"the bulk click never reached every member: {answer.text}")


def record_of(sandbox: Sandbox, finding_id: str) -> FindingRecord:
    record = sandbox.record(finding_id)
    assert record is not None, finding_id
    return record


def settled(sandbox: Sandbox, finding_ids: list[str]) -> dict[str, State]:
    def probe() -> dict[str, State] | None:
        states = {}
        for finding_id in finding_ids:
            record = sandbox.record(finding_id)
            if record is None or record.state not in SETTLED:
                return None
            states[finding_id] = record.state
        return states

    return sandbox.wait_for(probe, WAIT_S, "every finding moved")


def test_quarantine_all_of_20_with_3_objects_locked_shows_17_quarantined_and_3_blocked(sandbox: Sandbox) -> None:
    # GIVEN a flood of 20 findings about one bucket, 3 of whose objects are under a legal hold
    locked = frozenset({3, 11, 17})
    finding_ids = flood(sandbox, f"bulk-{uuid.uuid4().hex[:8]}", 20, locked=locked)
    group_id, digest_ts, binding = digest_listing(sandbox, finding_ids)
    assert binding == BulkBinding(group_id, 20, binding.version)
    # WHEN an approver clicks "Quarantine all 20"
    approver = sandbox.approver_for("payments")
    answer = quarantine_all(sandbox, binding, digest_ts, approver)
    assert answer.status == 200
    # THEN each finding gets its own job: 17 quarantined, the 3 locked ones blocked, each approved by that approver
    states = settled(sandbox, finding_ids)
    assert [finding_ids[index] for index in sorted(locked)] == [f for f, s in states.items() if s is State.BLOCKED]
    assert sum(1 for state in states.values() if state is State.QUARANTINED) == 17
    assert {record_of(sandbox, finding_id).approver for finding_id in finding_ids} == {approver}

    # AND the digest shows it, updated in place
    def digest_shows() -> bool | None:
        view = groups(sandbox).view(group_id)
        blocks = str(sandbox.slack.message(PAYMENTS_CHANNEL, digest_ts).blocks)
        counted = view is not None and dict(view.state_counts) == {State.QUARANTINED: 17, State.BLOCKED: 3}
        return True if counted and "Quarantined: 17" in blocks and "Blocked: 3" in blocks else None

    sandbox.wait_for(digest_shows, WAIT_S, "the digest counting 17 quarantined and 3 blocked")
    shown = sandbox.slack.message(PAYMENTS_CHANNEL, digest_ts)
    assert quarantine_all_button(shown.blocks) is None  # nothing left to decide


def test_a_bulk_click_racing_a_single_click_moves_each_object_once(sandbox: Sandbox) -> None:
    # GIVEN a group of 6
    finding_ids = flood(sandbox, f"bulk-{uuid.uuid4().hex[:8]}", 6)
    _, digest_ts, binding = digest_listing(sandbox, finding_ids)
    alice, dave = sandbox.approver_for("payments"), "U0DAVE"  # a listed approver; a member of S0SECOPS
    barrier = threading.Barrier(2)
    answers: list[ClickResponse] = []

    def bulk() -> None:
        barrier.wait()
        answers.append(quarantine_all(sandbox, binding, digest_ts, alice))

    def single() -> None:  # Dave's Remediate on finding 3 (its own buttons, from a page's "act on one")
        barrier.wait()
        answers.append(
            sandbox.click(
                finding_ids[2], names.ACTION_REMEDIATE, user_id=dave, channel_id=PAYMENTS_CHANNEL, message_ts=digest_ts
            )
        )

    # WHEN both clicks arrive at once
    threads = [threading.Thread(target=bulk), threading.Thread(target=single)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN every object is quarantined once: one copy in quarantine per finding, finding 3 by whichever click won
    assert [answer.status for answer in answers] == [200, 200]
    states = settled(sandbox, finding_ids)
    assert set(states.values()) == {State.QUARANTINED}
    for finding_id in finding_ids:
        assert len(sandbox.quarantined_copies(PAYMENTS_PROD, REGION, finding_id)) == 1
    record = sandbox.record(finding_ids[2])
    assert record is not None and record.approver in (alice, dave)
    approvals = [entry for entry in record.audit if entry.outcome == State.APPROVED.value]
    assert len(approvals) == 1


def test_a_finding_that_joined_after_the_digest_was_rendered_is_not_part_of_the_bulk_click(sandbox: Sandbox) -> None:
    # GIVEN a digest rendered with 4 findings, its "Quarantine all 4" on screen
    bucket = f"bulk-{uuid.uuid4().hex[:8]}"
    first = flood(sandbox, bucket, 4)
    group_id, digest_ts, binding = digest_listing(sandbox, first)
    assert binding.upto == 4
    # AND a fifth finding of the same bucket that joined the group since
    (late,) = flood(sandbox, bucket, 1)
    sandbox.wait_for(
        lambda: True if (record := sandbox.record(late)) is not None and record.group_id == group_id else None,
        WAIT_S,
        "the late finding in the group",
    )
    # WHEN the approver clicks the "Quarantine all 4" they saw
    answer = quarantine_all(sandbox, binding, digest_ts, sandbox.approver_for("payments"))
    # THEN the 4 are quarantined, the fifth still awaits its own decision, and the approver is told so
    assert answer.status == 200
    assert set(settled(sandbox, first).values()) == {State.QUARANTINED}
    record = sandbox.record(late)
    assert record is not None and record.state is State.PENDING_APPROVAL and record.group_seq == 5
    ephemerals = [message.text for message in sandbox.slack.ephemeral(PAYMENTS_CHANNEL)]
    assert any("1 more since the digest was rendered" in text for text in ephemerals), ephemerals


def test_each_listed_finding_keeps_its_own_buttons_in_the_thread(sandbox: Sandbox) -> None:
    from macie_chatops_sandbox.slack_clicks import signed_click_body

    # GIVEN a group of 3, listed in a page in its digest's thread once the group closed
    finding_ids = flood(sandbox, f"bulk-{uuid.uuid4().hex[:8]}", 3)
    _, digest_ts, _ = digest_listing(sandbox, finding_ids)

    def page_select() -> dict[str, Any] | None:
        for reply in sandbox.slack.replies(PAYMENTS_CHANNEL, digest_ts):
            for block in reply.revisions[-1].blocks:
                for element in block.get("elements", []) if block.get("type") == "actions" else []:
                    if element.get("action_id") == names.ACTION_ACT_ON_ONE:
                        return dict(element)
        return None

    select = sandbox.wait_for(page_select, WAIT_S + WINDOW_S, "the page's 'Act on one finding' select")
    # one option per member, in the members' join order (seq), which need not be the order they were published in
    by_seq = sorted(finding_ids, key=lambda finding_id: record_of(sandbox, finding_id).group_seq or 0)
    assert [option["value"] for option in select["options"]] == by_seq
    # WHEN an approver chooses finding 2 there (a signed static_select click)
    approver = sandbox.approver_for("payments")
    body, headers = signed_click_body(
        sandbox.secret.signing_secret,
        action_id=names.ACTION_ACT_ON_ONE,
        finding_id="",
        user_id=approver,
        team_id=sandbox.config.slack.team_id,
        channel_id=PAYMENTS_CHANNEL,
        message_ts=digest_ts,
        response_url=sandbox.slack.response_url(PAYMENTS_CHANNEL, digest_ts),
        selected_option=finding_ids[1],
    )
    assert sandbox.post(body, headers).status == 200
    # THEN they alone see finding 2's own Remediate and Dismiss
    shown = sandbox.slack.ephemeral(PAYMENTS_CHANNEL)[-1]
    buttons = [e for b in shown.blocks if b.get("type") == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (names.ACTION_REMEDIATE, finding_ids[1]),
        (names.ACTION_DISMISS, finding_ids[1]),
    ]
    # WHEN they click its Remediate THEN finding 2 alone is quarantined
    assert (
        sandbox.click(
            finding_ids[1], names.ACTION_REMEDIATE, user_id=approver, channel_id=PAYMENTS_CHANNEL, message_ts=digest_ts
        ).status
        == 200
    )
    sandbox.wait_for_state(finding_ids[1], State.QUARANTINED, timeout_s=WAIT_S)
    assert [record_of(sandbox, f).state for f in (finding_ids[0], finding_ids[2])] == [State.PENDING_APPROVAL] * 2
