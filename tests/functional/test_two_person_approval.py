"""The two-person rule through the real interaction lambda_handler: signed API Gateway events, moto's DynamoDB and
SQS, the Slack stand-in. A finding that needs two approvers moves once two different approvers have clicked,
never on one approver's second click, and exactly once when clicks race; Dismiss needs as many."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.interaction import ClickAction, Counted, count_approval
from macie_chatops.states import State
from macie_chatops.store import FindingNotFoundError, FindingRecord
from macie_chatops_sandbox.slack_standin import SlackStandIn
from tests.conftest import AwsSandbox
from tests.functional.interaction_world import World, interaction_world

FID = "6a1b2c3d4e5f60718293a4b5c6d70201"
REMEDIATE, DISMISS = names.ACTION_REMEDIATE, names.ACTION_DISMISS
ALICE, BOB, DAVE = "U0ALICE", "U0BOB", "U0DAVE"  # a listed approver; two members of S0SECOPS


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with interaction_world(slack, tmp_path, monkeypatch) as built:
        # Findings seeded from now on were decided under approvals_required: 2 (the summary carries it).
        built.summary = dataclasses.replace(built.summary, approvals_required=2)
        built.seed(FID)
        yield built


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response["body"])
    return body


def record_of(world: World, finding_id: str = FID) -> FindingRecord:
    record = world.store.get(finding_id)
    assert record is not None
    return record


def message_text(world: World, finding_id: str = FID) -> str:
    """Every mrkdwn text of the finding's message as Slack shows it now."""
    channel, ts = world.messages[finding_id]
    return json.dumps(world.slack.message(channel, ts).blocks, ensure_ascii=False)


def action_ids(world: World, finding_id: str = FID) -> list[str]:
    channel, ts = world.messages[finding_id]
    actions = [b for b in world.slack.message(channel, ts).blocks if b.get("type") == "actions"]
    return [element["action_id"] for block in actions for element in block["elements"]]


# --------------------------------------------------------------------------------------------------------
# Remediate
# --------------------------------------------------------------------------------------------------------


def test_two_different_approvers_make_one_move(world: World) -> None:
    # WHEN the first approver clicks Remediate
    first = body_of(world.click(REMEDIATE, FID, ALICE))
    # THEN nothing is queued; the message now says "1 of 2 approvals by Alice" and keeps its buttons
    assert first["replace_original"] is True
    assert world.jobs() == []
    record = record_of(world)
    assert record.state is State.PENDING_APPROVAL and record.approvals == (ALICE,) and record.approver is None
    assert "*1 of 2 approvals* by <@U0ALICE>" in message_text(world)
    assert action_ids(world) == [REMEDIATE, DISMISS]
    # WHEN a second, different approver clicks
    second = body_of(world.click(REMEDIATE, FID, BOB))
    # THEN the finding is approved by the second, exactly one job is queued, and the message names both
    assert second["replace_original"] is True
    jobs = world.jobs()
    assert [(job.kind, job.requested_by) for job in jobs] == [("quarantine", BOB)]
    record = record_of(world)
    assert record.state is State.APPROVED and record.approver == BOB and record.approvals == (ALICE,)
    assert "Approved <@U0ALICE> and <@U0BOB>" in message_text(world)
    assert action_ids(world) == []
    # AND the audit trail lists every approver: Alice's counted approval, and the approval naming both
    counted = [e for e in record.audit if e.outcome == "approval_counted"]
    assert [(e.actor, e.event) for e in counted] == [(ALICE, "click:remediate")]
    assert counted[0].detail.startswith("approval 1 of 2: in C0PAYMENTS")
    approved = [e for e in record.audit if e.outcome == "APPROVED"]
    assert len(approved) == 1 and approved[0].actor == BOB
    assert approved[0].detail.startswith("approval 2 of 2 (U0ALICE, U0BOB), in C0PAYMENTS")


def test_three_approvers_are_each_counted_and_all_named(world: World) -> None:
    # GIVEN a finding decided under approvals_required: 3
    world.summary = dataclasses.replace(world.summary, approvals_required=3)
    world.seed("three")
    # WHEN Alice and Bob approve
    world.click(REMEDIATE, "three", ALICE)
    world.click(REMEDIATE, "three", BOB)
    # THEN the message counts both, and nothing is queued
    assert "*2 of 3 approvals* by <@U0ALICE> and <@U0BOB>" in message_text(world, "three")
    assert world.jobs() == []
    # WHEN Dave approves THEN it is approved once, and the trail names all three in order
    world.click(REMEDIATE, "three", DAVE)
    assert [job.requested_by for job in world.jobs()] == [DAVE]
    record = record_of(world, "three")
    assert record.state is State.APPROVED and record.approvals == (ALICE, BOB) and record.approver == DAVE
    assert [e.detail.split(":")[0] for e in record.audit if e.outcome == "approval_counted"] == [
        "approval 1 of 3",
        "approval 2 of 3",
    ]
    approved = [e for e in record.audit if e.outcome == "APPROVED"]
    assert approved[0].detail.startswith("approval 3 of 3 (U0ALICE, U0BOB, U0DAVE)")
    assert "Approved <@U0ALICE>, <@U0BOB> and <@U0DAVE>" in message_text(world, "three")


def test_the_same_approver_twice_is_refused_and_nothing_moves(world: World) -> None:
    world.click(REMEDIATE, FID, ALICE)
    ephemerals = len(world.slack.ephemeral("C0PAYMENTS"))
    # WHEN Alice clicks Remediate again
    again = body_of(world.click(REMEDIATE, FID, ALICE))
    # THEN only she is told that someone else must confirm; nothing is queued, her approval counts once
    assert again["response_type"] == "ephemeral" and again["replace_original"] is False
    assert "You have already approved this finding (1 of 2)" in again["text"]
    assert "someone else must confirm it" in again["text"]
    assert len(world.slack.ephemeral("C0PAYMENTS")) == ephemerals + 1
    assert world.jobs() == []
    record = record_of(world)
    assert record.state is State.PENDING_APPROVAL and record.approvals == (ALICE,)
    # AND the refusal is on the audit trail
    refusal = record.audit[-1]
    assert (refusal.actor, refusal.outcome) == (ALICE, "refused")
    assert refusal.detail.startswith("already counted: approval 1 of 2 (U0ALICE)")


@pytest.mark.usefixtures("atomic_moto")
@pytest.mark.parametrize("round_", range(4))
def test_three_concurrent_clicks_by_two_approvers_make_one_move(world: World, round_: int) -> None:
    # GIVEN Alice (twice) and Bob click Remediate on a fresh two-person finding at the same moment
    finding_id = f"race-{round_}"
    world.seed(finding_id)
    events = [world.click_event(REMEDIATE, finding_id, user) for user in (ALICE, BOB, ALICE)]
    world.click(DISMISS, "unknown-warmup", ALICE)  # build the container's clients before the race
    barrier = threading.Barrier(len(events))
    responses: list[dict[str, Any]] = [{} for _ in events]

    def click(index: int) -> None:
        barrier.wait()
        responses[index] = world.invoke(events[index])

    threads = [threading.Thread(target=click, args=(n,)) for n in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # THEN every click was answered, and exactly one job was queued for the finding
    assert all(r.get("statusCode") == 200 for r in responses)
    jobs = world.jobs()
    assert [job.finding_id for job in jobs] == [finding_id]
    # AND it was approved once, by two different people: one counted approval and the completing one
    record = record_of(world, finding_id)
    assert record.state is State.APPROVED
    assert [e.outcome for e in record.audit].count("APPROVED") == 1
    assert len(record.approvals) == 1 and {*record.approvals, record.approver} == {ALICE, BOB}
    assert jobs[0].requested_by == record.approver
    # AND Alice's second click was refused (already counted, or too late: the finding was approved)
    bodies = [body_of(r) for r in responses]
    assert sum(1 for b in bodies if b.get("response_type") == "ephemeral") == 1


def test_a_lost_job_undoes_only_the_completing_approval(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.click(REMEDIATE, FID, ALICE)
    # GIVEN the remediation queue is gone when Bob completes the approval
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, world.queue_url + "-gone")
    answer = body_of(world.click(REMEDIATE, FID, BOB))
    # THEN Bob is asked to try again; the finding waits with Alice's approval still counted
    assert "try again" in answer["text"]
    record = record_of(world)
    assert record.state is State.PENDING_APPROVAL and record.approver is None and record.approvals == (ALICE,)
    # WHEN the queue is back and Bob clicks again
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, world.queue_url)
    body_of(world.click(REMEDIATE, FID, BOB))
    # THEN his click completes it: one job
    assert [job.requested_by for job in world.jobs()] == [BOB]
    assert record_of(world).state is State.APPROVED


def test_one_approver_findings_still_move_on_the_first_click(world: World) -> None:
    # GIVEN a finding decided before the rule (its summary needs one approver)
    world.summary = dataclasses.replace(world.summary, approvals_required=1)
    world.seed("single")
    # WHEN one approver clicks THEN it is approved at once, with no counted approval
    assert body_of(world.click(REMEDIATE, "single", ALICE))["replace_original"] is True
    assert [job.finding_id for job in world.jobs()] == ["single"]
    record = record_of(world, "single")
    assert record.state is State.APPROVED and record.approvals == ()
    assert not any(e.outcome == "approval_counted" for e in record.audit)


# --------------------------------------------------------------------------------------------------------
# Dismiss
# --------------------------------------------------------------------------------------------------------


def test_dismiss_needs_as_many_approvers(world: World) -> None:
    # WHEN one approver dismisses (Dismiss opens the form; its submission is counted, docs/architecture.md §16)
    first = body_of(world.dismiss(FID, DAVE, reason="Fixture data"))
    # THEN the form closes, the finding still waits, and the message says "1 of 2 dismissals"
    assert first == {"response_action": "clear"}
    record = record_of(world)
    assert record.state is State.PENDING_APPROVAL and record.dismissals == (DAVE,)
    assert "*1 of 2 dismissals* by <@U0DAVE>" in message_text(world)
    # WHEN the same approver dismisses again THEN the submission is refused, in the form
    again = body_of(world.dismiss(FID, DAVE))
    assert again["response_action"] == "errors"
    assert "You have already dismissed this finding" in again["errors"]["reason"]
    assert record_of(world).dismissals == (DAVE,)
    # WHEN a second approver dismisses THEN it is dismissed, nothing queued, both on the trail
    assert body_of(world.dismiss(FID, ALICE)) == {"response_action": "clear"}
    record = record_of(world)
    assert record.state is State.DISMISSED and world.jobs() == []
    dismissed = [e for e in record.audit if e.outcome == "DISMISSED"]
    assert dismissed[0].actor == ALICE and dismissed[0].detail.startswith("dismissal 2 of 2 (U0DAVE, U0ALICE)")


def test_approvals_and_dismissals_are_counted_apart(world: World) -> None:
    # WHEN Alice approves and Bob dismisses (through the form)
    world.click(REMEDIATE, FID, ALICE)
    world.dismiss(FID, BOB)
    # THEN neither action has two approvers: the finding still waits, and the message shows both counts
    record = record_of(world)
    assert record.state is State.PENDING_APPROVAL
    assert (record.approvals, record.dismissals) == ((ALICE,), (BOB,))
    text = message_text(world)
    assert "*1 of 2 approvals* by <@U0ALICE>" in text and "*1 of 2 dismissals* by <@U0BOB>" in text
    # WHEN Dave approves THEN it is approved (Alice and Dave), and Bob's dismissal stays on the record
    world.click(REMEDIATE, FID, DAVE)
    record = record_of(world)
    assert record.state is State.APPROVED and record.approver == DAVE and record.dismissals == (BOB,)


# --------------------------------------------------------------------------------------------------------
# count_approval and the store's conditional write, directly
# --------------------------------------------------------------------------------------------------------


def test_an_approval_on_a_finding_no_longer_pending_is_not_written(world: World) -> None:
    world.click(REMEDIATE, FID, ALICE)
    world.click(REMEDIATE, FID, BOB)
    stale = dataclasses.replace(record_of(world), state=State.PENDING_APPROVAL)
    # WHEN a third approval is counted against a stale read of the record
    world.summary = dataclasses.replace(world.summary, approvals_required=3)
    world.seed("three")
    three = record_of(world, "three")
    count = count_approval(world.store, stale, action=ClickAction.REMEDIATE, user_id=DAVE, detail="d")
    # THEN (two approvals needed, one counted) it completes, leaving the transition to the caller, which loses
    assert count.counted is Counted.COMPLETES and count.approvers == (ALICE, DAVE)
    # AND a partial approval counted on a stale read learns from DynamoDB that the finding moved on
    moved = dataclasses.replace(stale, summary=three.summary, approvals=())
    count = count_approval(world.store, moved, action=ClickAction.REMEDIATE, user_id=DAVE, detail="d")
    assert count.counted is Counted.NOT_PENDING and count.record.state is State.APPROVED


def test_a_refused_partial_write_is_counted_again_on_the_record_returned(world: World) -> None:
    # GIVEN a finding that needs three approvers, read before Alice's approval was written
    world.summary = dataclasses.replace(world.summary, approvals_required=3)
    world.seed("three")
    before = record_of(world, "three")
    world.click(REMEDIATE, "three", ALICE)
    world.click(REMEDIATE, "three", BOB)
    # WHEN Dave's approval is counted on that stale read (no approvals seen)
    count = count_approval(world.store, before, action=ClickAction.REMEDIATE, user_id=DAVE, detail="d")
    # THEN the write is refused (the list is full), and the record DynamoDB returned makes Dave's the last one
    assert count.counted is Counted.COMPLETES and count.approvers == (ALICE, BOB, DAVE)
    # AND Alice counted on the same stale read is told she already approved
    count = count_approval(world.store, before, action=ClickAction.REMEDIATE, user_id=ALICE, detail="d")
    assert count.counted is Counted.ALREADY_COUNTED and count.approvers == (ALICE, BOB)


def test_the_store_only_lets_the_list_grow_by_a_new_user_while_pending(world: World) -> None:
    store = world.store
    added = store.add_approval(FID, approvals="approvals", user=ALICE, fewer_than=2, event="e", detail="d")
    assert added.applied and added.record.approvals == (ALICE,)
    # the same user again: refused
    assert not store.add_approval(FID, approvals="approvals", user=ALICE, fewer_than=2, event="e", detail="d").applied
    # a list already at its limit: refused
    assert not store.add_approval(FID, approvals="approvals", user=BOB, fewer_than=1, event="e", detail="d").applied
    # another action's list is its own
    other = store.add_approval(FID, approvals="dismissals", user=ALICE, fewer_than=1, event="e", detail="d")
    assert other.applied and other.record.dismissals == (ALICE,) and other.record.approvals == (ALICE,)
    # not pending any more: refused
    store.transition(FID, expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor=BOB, event="e")
    refused = store.add_approval(FID, approvals="approvals", user=BOB, fewer_than=2, event="e", detail="d")
    assert not refused.applied and refused.record.approvals == (ALICE,)
    # an unknown list, a limit below one, an unknown finding
    with pytest.raises(ValueError, match="is not one of"):
        store.add_approval(FID, approvals="votes", user=BOB, fewer_than=2, event="e", detail="d")
    with pytest.raises(ValueError, match="fewer_than"):
        store.add_approval(FID, approvals="approvals", user=BOB, fewer_than=0, event="e", detail="d")
    with pytest.raises(FindingNotFoundError):
        store.add_approval("no-such-finding", approvals="approvals", user=BOB, fewer_than=2, event="e", detail="d")
