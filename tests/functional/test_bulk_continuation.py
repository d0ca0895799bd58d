"""A bulk approval one click cannot finish goes on as signed continuations (docs/architecture.md §22, "Bulk
decisions"), through the real interaction lambda_handler both ways: the signed click over API Gateway, and the
continuation queue in moto delivered to the same handler as Lambda's event source mapping would. A continuation
approves nothing by itself: forged, copied from another binding or too old, it is refused and counted."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import bulk, bulk_continuation, names
from macie_chatops.bulk_continuation import Continuation, ContinuationMac, encode
from macie_chatops.digest_messages import BulkBinding
from macie_chatops.states import State
from macie_chatops_sandbox.lambda_runtime import Function, SqsPoller
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.interaction import PAYMENTS_CHANNEL, TEAM_ID
from macie_chatops_sandbox.testkit.world import REGION, SECURITY_ACCOUNT, aws_client, emf_metrics
from tests.conftest import AwsSandbox
from tests.functional.interaction_world import World, interaction_world

QUARANTINE_ALL = names.ACTION_BULK_REMEDIATE
ALICE, MALLORY = "U0ALICE", "U0MALLORY"  # a listed approver of payments; nobody's approver


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with interaction_world(slack, tmp_path, monkeypatch) as built:
        # A second of visibility (the poller keeps a message in flight invisible): a failed one is back within a test.
        queue_url = built.sqs.create_queue(
            QueueName=names.BULK_CONTINUATION_QUEUE_NAME, Attributes={"VisibilityTimeout": "1"}
        )["QueueUrl"]
        monkeypatch.setenv(names.ENV_BULK_CONTINUATION_QUEUE_URL, queue_url)
        yield built


def queue_url(world: World) -> str:
    return str(world.sqs.get_queue_url(QueueName=names.BULK_CONTINUATION_QUEUE_NAME)["QueueUrl"])


def continuation_poller(world: World, *, timeout_s: float = 10.0) -> SqsPoller:
    """The continuation queue's event source: one message per invocation of the interaction handler."""
    from macie_chatops.handlers.interaction import lambda_handler

    url = queue_url(world)
    arn = world.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = Function(names.INTERACTION_FUNCTION_NAME, lambda_handler, timeout_s, REGION, SECURITY_ACCOUNT)
    return SqsPoller(
        function=function, sqs=world.sqs, queue_url=url, queue_arn=arn, visibility_timeout_s=1, wait_time_s=0
    )


def deliver_continuations(world: World, *, timeout_s: float = 10.0, most: int = 100) -> SqsPoller:
    """Deliver the continuation queue to the interaction handler, one message per invocation of ``timeout_s``,
    until it is empty (what the event source mapping does); the poller's stats count the invocations."""
    poller = continuation_poller(world, timeout_s=timeout_s)
    for _ in range(most):
        if poller.poll_once() == 0:
            return poller
    raise AssertionError(f"the continuations did not end within {most} invocations")


def queued_bodies(world: World) -> list[dict[str, Any]]:
    """The continuations waiting (taken off the queue)."""
    url, bodies = queue_url(world), list[dict[str, Any]]()
    while True:
        received = world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            world.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    return body


def binding(world: World, group_id: str) -> BulkBinding:
    view = world.group_store().view(group_id)
    assert view is not None
    return BulkBinding(group_id, view.listed_count, view.version)


def states(world: World, finding_ids: list[str]) -> list[State]:
    records = [world.store.get(finding_id) for finding_id in finding_ids]
    return [record.state for record in records if record is not None]


def signed(continuation: Continuation) -> str:
    """A continuation signed with the approval key, as the click signs one."""
    mac = ContinuationMac(aws_client("kms"), os.environ[names.ENV_APPROVAL_KEY_ID])
    return encode(continuation, mac.mac(continuation))


def continuation(group_binding: BulkBinding, *, approver: str = ALICE, age: timedelta = timedelta(0)) -> Continuation:
    clicked_at = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Continuation(group_binding, approver, TEAM_ID, "", PAYMENTS_CHANNEL, QUARANTINE_ALL, clicked_at)


def send(world: World, body: str) -> None:
    world.sqs.send_message(QueueUrl=queue_url(world), MessageBody=body)


def refusals(out: str) -> list[str]:
    return [m["reason"] for m in emf_metrics(out) if m["name"] == names.BULK_CONTINUATIONS_REFUSED_METRIC]


# --------------------------------------------------------------------------------------------------------
# One click approves them all
# --------------------------------------------------------------------------------------------------------


def test_one_click_on_150_members_approves_every_one_through_continuations(world: World) -> None:
    # GIVEN a review group of 150 findings listed in its digest (two pages; one click reaches none of them)
    group_id, members = world.seed_group(150)
    # WHEN an approver clicks "Quarantine all 150" once
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id).encode(), ALICE))
    # THEN the click answers at once that they are being approved (a range over a page goes to a continuation)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert "*Approving the listed findings 1–150 still awaiting approval*" in answer["text"]
    assert "blocks" not in answer  # no "Continue" button: nothing is left to the clicker
    # WHEN the continuations are delivered, each invocation with about a second to work
    poller = deliver_continuations(world, timeout_s=bulk_continuation.WORK_MARGIN_S + 1.0)
    # THEN every finding is APPROVED by that approver, each with its own job and audit entry naming the binding
    assert states(world, members) == [State.APPROVED] * 150
    jobs = world.jobs()
    assert sorted(job.finding_id for job in jobs) == members and {job.requested_by for job in jobs} == {ALICE}
    for finding_id in members:
        record = world.store.get(finding_id)
        assert record is not None and record.approver == ALICE and record.approval is not None
        entry = record.entry_into_state
        assert entry is not None and entry.actor == ALICE and entry.event == "click:remediate"
        assert f"bulk: group {group_id} findings " in entry.detail and "continued" in entry.detail
    # AND it took several invocations, each continuing from where the last stopped; none failed
    assert poller.stats.batches > 1 and poller.stats.retried == 0 and poller.stats.handler_errors == 0


def test_a_small_group_is_decided_in_the_click_and_nothing_is_continued(world: World) -> None:
    # GIVEN a group of 6 (within one click's reach) and the continuation queue available
    group_id, members = world.seed_group(6)
    # WHEN the approver clicks "Quarantine all 6"
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id).encode(), ALICE))
    # THEN the click decides them all and says exactly what it did; no continuation is queued
    assert states(world, members) == [State.APPROVED] * 6
    assert "*6 of the 6 listed findings queued for quarantine* by you." in answer["text"]
    assert queued_bodies(world) == []


def test_a_click_whose_budget_runs_out_continues_on_the_queue_instead_of_offering_a_button(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a group of 5 and a click with no time left for any member
    group_id, members = world.seed_group(5)
    monkeypatch.setattr(bulk, "BULK_BUDGET_S", bulk.CONTINUATION_RESERVE_S)
    # WHEN the approver clicks "Quarantine all 5"
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id).encode(), ALICE))
    # THEN nothing is decided in the click, the answer says the rest goes on in the background
    assert states(world, members) == [State.PENDING_APPROVAL] * 5
    assert "5 more are being approved in the background" in answer["text"] and "blocks" not in answer
    # AND the continuation approves all 5
    deliver_continuations(world)
    assert states(world, members) == [State.APPROVED] * 5
    assert len(world.jobs()) == 5


def test_without_the_continuation_queue_the_click_offers_the_continue_button(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a continuation queue that does not exist (the send fails) and a click with no time left
    group_id, members = world.seed_group(3)
    monkeypatch.setenv(names.ENV_BULK_CONTINUATION_QUEUE_URL, queue_url(world) + "-gone")
    monkeypatch.setattr(bulk, "BULK_BUDGET_S", bulk.CONTINUATION_RESERVE_S)
    # WHEN the approver clicks
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id).encode(), ALICE))
    # THEN nothing is lost: the answer offers "Continue from finding 1"
    assert states(world, members) == [State.PENDING_APPROVAL] * 3
    (button,) = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["text"]["text"] == "Continue from finding 1"


def test_a_redelivered_continuation_acts_on_no_member_twice(world: World) -> None:
    # GIVEN a group of 8 and one signed continuation for all of them, delivered twice (SQS is at least once)
    group_id, members = world.seed_group(8)
    body = signed(continuation(binding(world, group_id)))
    send(world, body)
    send(world, body)
    # WHEN both are delivered
    deliver_continuations(world)
    # THEN each finding is approved once: one job each, one entry into APPROVED each, no refusal on any record
    assert states(world, members) == [State.APPROVED] * 8
    assert sorted(job.finding_id for job in world.jobs()) == members
    for finding_id in members:
        record = world.store.get(finding_id)
        assert record is not None
        assert [entry.outcome for entry in record.audit].count(State.APPROVED.value) == 1
        assert not [entry for entry in record.audit if entry.outcome == "refused"]


def test_a_continuation_of_a_two_person_group_counts_one_approval_per_member(world: World) -> None:
    import dataclasses

    # GIVEN a group whose findings need two approvers
    world.summary = dataclasses.replace(world.summary, approvals_required=2)
    group_id, members = world.seed_group(3)
    # WHEN Alice's continuation is delivered
    send(world, signed(continuation(binding(world, group_id))))
    deliver_continuations(world)
    # THEN nothing is approved: her approval is counted on each, as her click would have
    assert states(world, members) == [State.PENDING_APPROVAL] * 3
    assert all(record.approvals == (ALICE,) for record in (world.store.get(m) for m in members) if record)
    assert world.jobs() == []


# --------------------------------------------------------------------------------------------------------
# A continuation that is not its click's is refused
# --------------------------------------------------------------------------------------------------------


def test_a_continuation_with_a_forged_mac_is_refused_and_counted(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a group of 3 and a continuation whose MAC was made up
    group_id, members = world.seed_group(3)
    capsys.readouterr()
    send(world, encode(continuation(binding(world, group_id)), b"\x00" * 32))
    # WHEN it is delivered
    poller = deliver_continuations(world)
    # THEN nothing is approved, the refusal is counted, and the message is acknowledged (retrying cannot help)
    assert states(world, members) == [State.PENDING_APPROVAL] * 3 and world.jobs() == []
    assert refusals(capsys.readouterr().out) == ["bad_mac"]
    assert poller.stats.deleted == 1 and poller.stats.retried == 0


@pytest.mark.parametrize(
    "altered",
    [
        pytest.param(lambda b, other: BulkBinding(b.group_id, b.upto + 1, b.version), id="more-members"),
        pytest.param(lambda b, other: BulkBinding(b.group_id, b.upto, b.version, start=2), id="another-start"),
        pytest.param(lambda b, other: BulkBinding(other, b.upto, b.version), id="another-group"),
    ],
)
def test_a_mac_copied_onto_another_binding_is_refused(
    world: World, capsys: pytest.CaptureFixture[str], altered: Any
) -> None:
    # GIVEN a group of 6, and a genuine continuation of its members 1-3
    group_id, members = world.seed_group(6)
    genuine = json.loads(signed(continuation(BulkBinding(group_id, 3, binding(world, group_id).version))))
    # WHEN its MAC is sent with another binding (more members, another start, another group)
    changed = altered(BulkBinding(group_id, 3, genuine["version"]), uuid.uuid4().hex)
    forged = {**genuine, "group": changed.group_id, "upto": changed.upto, "start": changed.start}
    capsys.readouterr()
    send(world, json.dumps(forged))
    deliver_continuations(world)
    # THEN it is refused: nothing is approved
    assert states(world, members) == [State.PENDING_APPROVAL] * 6 and world.jobs() == []
    assert refusals(capsys.readouterr().out) == ["bad_mac"]


def test_a_continuation_older_than_15_minutes_is_refused_as_stale(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a genuine continuation of a click made 16 minutes ago (its queue was backed up)
    group_id, members = world.seed_group(3)
    capsys.readouterr()
    send(world, signed(continuation(binding(world, group_id), age=timedelta(minutes=16))))
    # WHEN it is delivered
    deliver_continuations(world)
    # THEN nothing is approved: a click approves now, not whenever its queue delivers; the refusal says why
    assert states(world, members) == [State.PENDING_APPROVAL] * 3 and world.jobs() == []
    assert refusals(capsys.readouterr().out) == ["stale"]
    (logged,) = [r for r in caplog.records if r.getMessage() == "bulk continuation refused: nothing decided"]
    assert str(getattr(logged, "reason", "")).startswith("the click was 16 minutes ago, over 15: a click approves now")


def test_a_genuine_continuation_of_someone_who_approves_nothing_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a continuation signed for a user who is no approver of the group's team (the authority is re-checked)
    group_id, members = world.seed_group(2)
    capsys.readouterr()
    send(world, signed(continuation(binding(world, group_id), approver=MALLORY)))
    deliver_continuations(world)
    # THEN nothing is approved
    assert states(world, members) == [State.PENDING_APPROVAL] * 2 and world.jobs() == []
    assert refusals(capsys.readouterr().out) == ["not_an_approver"]


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"v": 1}', json.dumps({"v": 2, "group": "0" * 32})],
    ids=["text", "list", "fields-missing", "another-version"],
)
def test_a_message_that_is_no_continuation_is_refused(
    world: World, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    capsys.readouterr()
    send(world, body)
    poller = deliver_continuations(world)
    assert refusals(capsys.readouterr().out) == ["malformed"]
    assert poller.stats.deleted == 1


def test_slack_unable_to_say_who_approves_returns_the_continuation_to_its_queue(
    world: World, slack: SlackStandIn
) -> None:
    # GIVEN a continuation of Bob (an approver through the S0SECOPS group) while Slack fails the group lookup
    group_id, members = world.seed_group(2)
    slack.fail_next("usergroups.users.list", status=500)
    send(world, signed(continuation(binding(world, group_id), approver="U0BOB")))
    # WHEN it is delivered once
    poller = continuation_poller(world)
    poller.poll_once()
    # THEN it is not refused but returned to the queue (undecided), nothing approved
    assert poller.stats.retried == 1 and states(world, members) == [State.PENDING_APPROVAL] * 2
    # AND once Slack answers again, it approves them (the message is visible again after a second)
    time.sleep(1.2)
    deliver_continuations(world)
    assert states(world, members) == [State.APPROVED] * 2


def test_the_click_and_its_continuation_name_the_same_channel_and_workspace(world: World) -> None:
    # GIVEN a group of 150 (over one page: continued at once)
    group_id, _ = world.seed_group(150)
    world.bulk_click(QUARANTINE_ALL, binding(world, group_id).encode(), ALICE)
    # THEN the one continuation queued carries the click's binding, approver, workspace, channel and a MAC
    (queued,) = queued_bodies(world)
    assert {k: queued[k] for k in ("group", "upto", "start", "approver", "team", "channel", "action")} == {
        "group": group_id,
        "upto": 150,
        "start": 1,
        "approver": ALICE,
        "team": TEAM_ID,
        "channel": PAYMENTS_CHANNEL,
        "action": QUARANTINE_ALL,
    }
    assert queued["mac"] and queued["v"] == 1
