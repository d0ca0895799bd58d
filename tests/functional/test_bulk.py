"""A group's decisions through the real interaction lambda_handler (docs/architecture.md §22): signed API Gateway
events, moto's DynamoDB and SQS, the Slack stand-in. "Quarantine all N" acts on exactly the members it was bound to,
each as its own click; "Dismiss all N" asks why once; a page's "act on one" gives a member its own buttons."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.digest_messages import BulkBinding
from macie_chatops.exemption_store import ExemptionStore
from macie_chatops.states import State
from macie_chatops.store import FindingRecord
from macie_chatops_sandbox.slack_standin import SlackStandIn
from tests.conftest import AwsSandbox
from tests.functional.interaction_world import ANALYTICS_CHANNEL, World, interaction_world

QUARANTINE_ALL, DISMISS_ALL = names.ACTION_BULK_REMEDIATE, names.ACTION_BULK_DISMISS
ALICE, BOB, DAVE, MALLORY = "U0ALICE", "U0BOB", "U0DAVE", "U0MALLORY"  # approvers (Alice listed); not one


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with interaction_world(slack, tmp_path, monkeypatch) as built:
        yield built


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    return body


def binding(world: World, group_id: str, upto: int | None = None) -> str:
    view = world.group_store().view(group_id)
    assert view is not None
    return BulkBinding(group_id, view.listed_count if upto is None else upto, view.version).encode()


def states(world: World, finding_ids: list[str]) -> list[State]:
    records = [world.store.get(finding_id) for finding_id in finding_ids]
    return [record.state for record in records if record is not None]


def record_of(world: World, finding_id: str) -> FindingRecord:
    record = world.store.get(finding_id)
    assert record is not None
    return record


# --------------------------------------------------------------------------------------------------------
# Quarantine all N
# --------------------------------------------------------------------------------------------------------


def test_quarantine_all_queues_one_job_per_listed_member_each_audited_with_its_approver(world: World) -> None:
    # GIVEN a review group of 6 findings
    group_id, members = world.seed_group(6)
    # WHEN an approver clicks "Quarantine all 6"
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), ALICE))
    # THEN each finding is APPROVED by Alice with its own job, and its own audit entry names the bulk decision
    assert states(world, members) == [State.APPROVED] * 6
    jobs = world.jobs()
    assert sorted(job.finding_id for job in jobs) == members
    assert {job.kind for job in jobs} == {"quarantine"} and {job.requested_by for job in jobs} == {ALICE}
    for finding_id in members:
        record = record_of(world, finding_id)
        entry = record.entry_into_state
        assert record.approver == ALICE and entry is not None and entry.actor == ALICE
        assert f"bulk: group {group_id} findings 1-6" in entry.detail
    # AND the clicker alone is told, and the digest's ts was never replaced by the click
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert "*6 of the 6 listed findings queued for quarantine* by you." in answer["text"]


def test_members_that_joined_after_the_rendering_are_not_acted_on(world: World) -> None:
    # GIVEN a digest rendered when 4 findings were listed, and 2 more joined since
    group_id, members = world.seed_group(6)
    # WHEN "Quarantine all 4" is clicked
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id, upto=4), ALICE))
    # THEN only findings 1-4 move; 5 and 6 wait for their own click, and the answer says so
    assert states(world, members) == [State.APPROVED] * 4 + [State.PENDING_APPROVAL] * 2
    assert len(world.jobs()) == 4
    assert "2 more since the digest was rendered" in answer["text"]


def test_members_already_handled_are_reported_not_acted_on(world: World) -> None:
    # GIVEN a group of 5 where finding 2 was approved and finding 4 dismissed by others
    group_id, members = world.seed_group(5)
    world.store.transition(members[1], expected={State.PENDING_APPROVAL}, target=State.APPROVED, actor=BOB, event="t")
    world.store.transition(members[3], expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor=BOB, event="t")
    # WHEN Alice quarantines all 5
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), ALICE))
    # THEN the three still pending get jobs; the two others are left as they were
    assert sorted(job.finding_id for job in world.jobs()) == [members[0], members[2], members[4]]
    assert record_of(world, members[1]).approver is None and record_of(world, members[3]).state is State.DISMISSED
    assert "*3 of the 5 listed findings queued" in answer["text"]
    assert "2 already handled" in answer["text"]


def test_a_second_bulk_click_finds_everything_handled(world: World) -> None:
    group_id, members = world.seed_group(3)
    value = binding(world, group_id)
    world.bulk_click(QUARANTINE_ALL, value, ALICE)
    assert len(world.jobs()) == 3
    # WHEN the same button is clicked again (by another approver)
    answer = body_of(world.bulk_click(QUARANTINE_ALL, value, BOB))
    # THEN nothing more is queued and nobody's approval is replaced
    assert world.jobs() == []
    assert {record_of(world, finding_id).approver for finding_id in members} == {ALICE}
    assert "*0 of the 3 listed findings queued" in answer["text"] and "3 already handled" in answer["text"]


def test_two_person_findings_need_two_bulk_clicks_by_different_approvers(world: World) -> None:
    # GIVEN a group whose findings need two approvers each
    world.summary = dataclasses.replace(world.summary, approvals_required=2)
    group_id, members = world.seed_group(4)
    value = binding(world, group_id)
    # WHEN Alice clicks "Quarantine all 4"
    first = body_of(world.bulk_click(QUARANTINE_ALL, value, ALICE))
    # THEN nothing moves: each finding has Alice's approval counted
    assert world.jobs() == []
    assert all(record_of(world, finding_id).approvals == (ALICE,) for finding_id in members)
    assert "4 need another approver" in first["text"]
    # WHEN Alice clicks again
    again = body_of(world.bulk_click(QUARANTINE_ALL, value, ALICE))
    assert world.jobs() == [] and "4 you had approved already" in again["text"]
    # WHEN Bob clicks it
    second = body_of(world.bulk_click(QUARANTINE_ALL, value, BOB))
    # THEN each finding is approved once, by Bob completing Alice's approval
    assert sorted(job.finding_id for job in world.jobs()) == members
    assert "*4 of the 4 listed findings queued" in second["text"]
    entry = record_of(world, members[0]).entry_into_state
    assert entry is not None and "approval 2 of 2 (U0ALICE, U0BOB)" in entry.detail


def test_a_bulk_click_racing_a_single_click_moves_each_member_once(world: World) -> None:
    # GIVEN a group of 8
    group_id, members = world.seed_group(8)
    value = binding(world, group_id)
    barrier = threading.Barrier(2)
    answers: list[dict[str, Any]] = []

    def bulk() -> None:
        barrier.wait()
        answers.append(world.bulk_click(QUARANTINE_ALL, value, ALICE))

    def single() -> None:
        barrier.wait()
        answers.append(world.click(names.ACTION_REMEDIATE, members[0], BOB))

    # WHEN Alice's bulk click and Bob's click on finding 1 arrive together
    threads = [threading.Thread(target=bulk), threading.Thread(target=single)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN every finding has exactly one job, finding 1 by whichever click won
    jobs = world.jobs()
    assert sorted(job.finding_id for job in jobs) == members
    assert [job.requested_by for job in jobs if job.finding_id == members[0]] == [record_of(world, members[0]).approver]
    assert all(answer["statusCode"] == 200 for answer in answers)


@pytest.mark.parametrize(
    ("user", "channel", "said"),
    [(MALLORY, None, "You are not an approver"), (ALICE, ANALYTICS_CHANNEL, "only be handled from the channel")],
)
def test_a_bulk_click_is_authorised_as_a_single_click_would_be(
    world: World, user: str, channel: str | None, said: str
) -> None:
    # GIVEN a group, and a click by someone who is not an approver, or from another channel
    group_id, members = world.seed_group(3)
    kwargs = {"channel_id": channel} if channel else {}
    # WHEN they click "Quarantine all 3"
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), user, **kwargs))
    # THEN nothing changes, and they are told why
    assert states(world, members) == [State.PENDING_APPROVAL] * 3 and world.jobs() == []
    assert answer["response_type"] == "ephemeral" and said in answer["text"]


@pytest.mark.parametrize(
    "value",
    [
        "not a binding",
        json.dumps({"group": "f" * 32, "upto": 3, "version": 1}),  # no such group
        json.dumps({"group": "x" * 32, "upto": 3, "version": 1}),  # not a group id
    ],
)
def test_a_bulk_button_naming_no_known_group_is_refused(world: World, value: str) -> None:
    _, members = world.seed_group(2)
    answer = body_of(world.bulk_click(QUARANTINE_ALL, value, ALICE))
    assert "group this app" in answer["text"]
    assert states(world, members) == [State.PENDING_APPROVAL] * 2 and world.jobs() == []


def test_a_bulk_click_from_another_workspace_is_refused(world: World) -> None:
    group_id, members = world.seed_group(2)
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), ALICE, team_id="T0OTHER"))
    assert "workspace" in answer["text"]
    assert states(world, members) == [State.PENDING_APPROVAL] * 2 and world.jobs() == []


def test_a_finding_of_another_group_named_in_the_pages_is_not_acted_on(world: World) -> None:
    # GIVEN two groups (of two buckets); the second group's finding 1 is moved out of its group by a forged page
    group_id, members = world.seed_group(3)
    other_world_summary = world.summary
    world.summary = dataclasses.replace(other_world_summary, bucket="another-bucket")
    _, others = world.seed_group(2, prefix="other")
    world.summary = other_world_summary
    world.dynamodb.update_item(
        TableName=names.STATE_TABLE_NAME,
        Key={names.STATE_TABLE_KEY: {"S": f"group#{group_id}#page#1"}},
        UpdateExpression="SET m2.finding_id = :other",
        ExpressionAttributeValues={":other": {"S": others[0]}},
    )
    # WHEN the first group's "Quarantine all 3" is clicked
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), ALICE))
    # THEN the other group's finding is untouched and reported as not decidable from this message
    assert record_of(world, others[0]).state is State.PENDING_APPROVAL
    assert sorted(job.finding_id for job in world.jobs()) == [members[0], members[2]]
    assert "1 could not be decided from this message" in answer["text"]


# --------------------------------------------------------------------------------------------------------
# Dismiss all N
# --------------------------------------------------------------------------------------------------------


def test_dismiss_all_asks_why_once_and_dismisses_each_listed_member_with_that_reason(world: World) -> None:
    # GIVEN a group of 4, finding 3 already approved
    group_id, members = world.seed_group(4)
    world.store.transition(members[2], expected={State.PENDING_APPROVAL}, target=State.APPROVED, actor=BOB, event="t")
    # WHEN Alice clicks "Dismiss all 4" and submits the form with a reason, for these findings only
    answer = body_of(world.bulk_dismiss(binding(world, group_id), ALICE, reason="Test fixtures, not customer data"))
    # THEN one form was opened, and each pending member is DISMISSED by Alice with the reason in its audit entry
    assert len(world.slack.views(ALICE)) == 1
    assert states(world, members) == [State.DISMISSED, State.DISMISSED, State.APPROVED, State.DISMISSED]
    for finding_id in (members[0], members[1], members[3]):
        entry = record_of(world, finding_id).entry_into_state
        assert entry is not None and entry.actor == ALICE
        assert "reason: Test fixtures, not customer data" in entry.detail and f"group {group_id}" in entry.detail
    # AND no exemption was recorded (these findings only), and the modal shows what was done
    account_id = record_of(world, members[0]).account_id
    assert ExemptionStore(world.dynamodb, names.STATE_TABLE_NAME).for_account(account_id) == ()
    assert answer["response_action"] == "update"
    shown = answer["view"]["blocks"][0]["text"]["text"]
    assert "*3 of the 4 listed findings dismissed* by you." in shown and "1 already handled" in shown
    assert world.jobs() == []


def test_dismiss_all_for_the_bucket_records_one_exemption(world: World) -> None:
    group_id, members = world.seed_group(3)
    answer = body_of(world.bulk_dismiss(binding(world, group_id), ALICE, scope="bucket", duration="7"))
    assert states(world, members) == [State.DISMISSED] * 3
    account_id = record_of(world, members[0]).account_id
    exemptions = ExemptionStore(world.dynamodb, names.STATE_TABLE_NAME).for_account(account_id)
    assert len(exemptions) == 1 and exemptions[0].scope.value == "bucket"
    assert "Exemption " in answer["view"]["blocks"][0]["text"]["text"]


def test_dismiss_all_without_a_reason_is_refused_in_the_form(world: World) -> None:
    group_id, members = world.seed_group(2)
    answer = body_of(world.bulk_dismiss(binding(world, group_id), ALICE, reason="   "))
    assert answer["response_action"] == "errors" and "reason" in answer["errors"]
    assert states(world, members) == [State.PENDING_APPROVAL] * 2


def test_a_non_approver_cannot_open_the_bulk_dismissal_form(world: World) -> None:
    group_id, members = world.seed_group(2)
    answer = body_of(world.bulk_dismiss(binding(world, group_id), MALLORY))
    assert "not an approver" in answer["text"] and world.slack.views(MALLORY) == []
    assert states(world, members) == [State.PENDING_APPROVAL] * 2


def test_a_forged_bulk_submission_naming_another_channel_is_refused(world: World) -> None:
    # GIVEN Alice opened the form; the submission's metadata is then rewritten to another channel
    group_id, members = world.seed_group(2)
    world.bulk_click(DISMISS_ALL, binding(world, group_id), ALICE)
    view = world.slack.views(ALICE)[-1]
    metadata = json.loads(view.view["private_metadata"])
    view.view["private_metadata"] = json.dumps({**metadata, "channel": ANALYTICS_CHANNEL})
    answer = body_of(world.invoke(world.submission_event(ALICE, {"reason": "forged"})))
    # THEN nothing is dismissed
    assert answer["response_action"] == "errors"
    assert states(world, members) == [State.PENDING_APPROVAL] * 2


# --------------------------------------------------------------------------------------------------------
# Act on one finding, from a thread page
# --------------------------------------------------------------------------------------------------------


def test_act_on_one_gives_the_member_its_own_buttons_and_they_work(world: World) -> None:
    # GIVEN a group of 3
    _, members = world.seed_group(3)
    # WHEN Bob chooses finding 2 in a page's select
    answer = body_of(world.act_on_one(members[1], BOB))
    # THEN he alone sees finding 2's review message with its own Remediate and Dismiss
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    buttons = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        (names.ACTION_REMEDIATE, members[1]),
        (names.ACTION_DISMISS, members[1]),
    ]
    # WHEN he clicks that Remediate (a single click, from the channel)
    world.click(names.ACTION_REMEDIATE, members[1], BOB, is_ephemeral=True)
    # THEN finding 2 alone is approved, with one job
    assert states(world, members) == [State.PENDING_APPROVAL, State.APPROVED, State.PENDING_APPROVAL]
    assert [job.finding_id for job in world.jobs()] == [members[1]]


def test_act_on_one_on_a_handled_member_says_what_happened(world: World) -> None:
    _, members = world.seed_group(2)
    world.store.transition(members[1], expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor=BOB, event="t")
    answer = body_of(world.act_on_one(members[1], ALICE))
    assert "already dismissed" in answer["text"] and "blocks" not in answer


def test_act_on_one_refuses_a_finding_outside_any_group_or_another_channel(world: World) -> None:
    world.seed("6a1b2c3d4e5f60718293a4b5c6d70999")
    _, members = world.seed_group(2)
    assert "does not know" in body_of(world.act_on_one("6a1b2c3d4e5f60718293a4b5c6d70999", ALICE))["text"]
    assert "channel" in body_of(world.act_on_one(members[0], ALICE, channel_id=ANALYTICS_CHANNEL))["text"]


def test_a_member_without_a_message_of_its_own_is_dismissed_through_its_own_form(world: World) -> None:
    # GIVEN a group of 3; finding 2 has no message of its own (its group's digest lists it)
    _, members = world.seed_group(3)
    assert record_of(world, members[1]).slack_ts is None
    # WHEN Bob chooses it in a page, clicks its Dismiss and submits the form
    body_of(world.act_on_one(members[1], BOB))
    answer = body_of(world.dismiss(members[1], BOB, reason="A copy of public test data", is_ephemeral=True))
    # THEN it alone is dismissed with its reason, and no message was updated for it (it has none)
    assert answer == {"response_action": "clear"}
    assert states(world, members) == [State.PENDING_APPROVAL, State.DISMISSED, State.PENDING_APPROVAL]
    assert world.slack.request_count("chat.update") == 0


def test_dismissing_the_first_member_never_overwrites_the_digest_with_its_own_message(world: World) -> None:
    # GIVEN a group of 2: finding 1's message is now the group's digest
    _, members = world.seed_group(2)
    channel, ts = world.messages[members[0]]
    before = world.slack.message(channel, ts).blocks
    # WHEN finding 1 is dismissed through its form (chosen in a page)
    world.dismiss(members[0], BOB, is_ephemeral=True)
    # THEN it is dismissed, and the digest's message is left to the digest writer
    assert record_of(world, members[0]).state is State.DISMISSED
    assert world.slack.message(channel, ts).blocks == before


def test_a_click_on_the_first_findings_own_buttons_never_replaces_the_digest(world: World) -> None:
    # GIVEN a group of 2: finding 1's message (with its own buttons, clicked before the digest replaced them) is
    # the group's digest now
    _, members = world.seed_group(2)
    channel, ts = world.messages[members[0]]
    before = world.slack.message(channel, ts).blocks
    # WHEN its Remediate is clicked from that message
    answer = body_of(world.click(names.ACTION_REMEDIATE, members[0], BOB))
    # THEN the finding is approved, the clicker alone is told, and the digest is left to the digest writer
    assert record_of(world, members[0]).state is State.APPROVED and len(world.jobs()) == 1
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert world.slack.message(channel, ts).blocks == before


def test_a_group_of_one_is_its_findings_own_message_and_a_click_replaces_it(world: World) -> None:
    _, members = world.seed_group(1)
    answer = body_of(world.click(names.ACTION_REMEDIATE, members[0], BOB))
    assert answer["replace_original"] is True and record_of(world, members[0]).state is State.APPROVED


# --------------------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------------------


def test_a_queue_that_refuses_the_jobs_leaves_every_member_pending_and_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a group of 3, and a remediation queue that does not exist (every send fails)
    group_id, members = world.seed_group(3)
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, world.queue_url + "-gone")
    # WHEN "Quarantine all 3" is clicked
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), ALICE))
    # THEN each approval is undone (pending, no approver) and the clicker is told to click again
    assert "3 failed: nothing changed for them; click again" in answer["text"]
    assert states(world, members) == [State.PENDING_APPROVAL] * 3
    assert all(record_of(world, finding_id).approver is None for finding_id in members)
    # WHEN the queue is back and the button is clicked again THEN all three are queued
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, world.queue_url)
    again = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), ALICE))
    assert "*3 of the 3 listed findings queued" in again["text"] and len(world.jobs()) == 3


def test_approver_groups_slack_cannot_read_refuse_the_bulk_click(world: World, slack: SlackStandIn) -> None:
    # GIVEN Bob, an approver only through the S0SECOPS group, and Slack failing the group lookup
    group_id, members = world.seed_group(2)
    slack.fail_next("usergroups.users.list", status=500)
    # WHEN Bob clicks "Quarantine all 2" THEN nothing changes and he is asked to try again
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), BOB))
    assert "Could not check the approver groups" in answer["text"]
    assert states(world, members) == [State.PENDING_APPROVAL] * 2 and world.jobs() == []


def test_a_bulk_dismissal_form_that_cannot_open_in_time_changes_nothing(world: World) -> None:
    group_id, members = world.seed_group(2)
    stale = world.slack.trigger_id(ALICE, issued_seconds_ago=3.5)  # Slack takes a trigger id for 3 s
    answer = body_of(world.bulk_click(DISMISS_ALL, binding(world, group_id), ALICE, trigger_id=stale))
    assert "could not be opened in time" in answer["text"] and world.slack.views(ALICE) == []
    assert states(world, members) == [State.PENDING_APPROVAL] * 2


def test_dismiss_all_of_two_person_findings_needs_two_approvers_forms(world: World) -> None:
    # GIVEN a group whose findings need two approvers each
    world.summary = dataclasses.replace(world.summary, approvals_required=2)
    group_id, members = world.seed_group(3)
    value = binding(world, group_id)
    # WHEN Alice submits "Dismiss all 3" THEN each has her dismissal counted, none is dismissed yet
    first = body_of(world.bulk_dismiss(value, ALICE))
    assert "3 need another approver" in first["view"]["blocks"][0]["text"]["text"]
    assert all(record_of(world, finding_id).dismissals == (ALICE,) for finding_id in members)
    assert states(world, members) == [State.PENDING_APPROVAL] * 3
    # WHEN Bob submits it too THEN all three are dismissed, each audit line naming both
    body_of(world.bulk_dismiss(value, BOB))
    assert states(world, members) == [State.DISMISSED] * 3
    entry = record_of(world, members[0]).entry_into_state
    assert entry is not None and entry.actor == BOB and "dismissal 2 of 2 (U0ALICE, U0BOB)" in entry.detail


def test_a_bucket_exemption_the_account_has_no_room_for_leaves_the_dismissals_and_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from macie_chatops import exemption_store

    # GIVEN an account that may hold no more active exemptions
    monkeypatch.setattr(exemption_store, "MAX_ACTIVE_PER_ACCOUNT", 0)
    group_id, members = world.seed_group(2)
    # WHEN "Dismiss all 2" is submitted for the whole bucket
    answer = body_of(world.bulk_dismiss(binding(world, group_id), ALICE, scope="bucket"))
    # THEN both are dismissed with the reason, and the modal says no exemption was recorded and why
    assert states(world, members) == [State.DISMISSED] * 2
    assert "No exemption was recorded" in answer["view"]["blocks"][0]["text"]["text"]
    assert (
        ExemptionStore(world.dynamodb, names.STATE_TABLE_NAME).for_account(record_of(world, members[0]).account_id)
        == ()
    )


def test_a_click_out_of_time_offers_to_continue_and_the_continuation_acts_from_there(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from macie_chatops import bulk

    # GIVEN a group of 5, and a click that runs out of time before any member (a budget of 0)
    group_id, members = world.seed_group(5)
    budget = bulk.BULK_BUDGET_S
    monkeypatch.setattr(bulk, "BULK_BUDGET_S", 0.0)
    answer = body_of(world.bulk_click(QUARANTINE_ALL, binding(world, group_id), ALICE))
    # THEN nothing is decided, and the answer offers to continue from finding 1
    assert states(world, members) == [State.PENDING_APPROVAL] * 5
    assert "5 not reached in time" in answer["text"]
    (button,) = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == QUARANTINE_ALL and BulkBinding.decode(button["value"]) == BulkBinding.decode(
        binding(world, group_id)
    )
    # WHEN (time enough again) a continuation from finding 3 is clicked in that ephemeral message
    monkeypatch.setattr(bulk, "BULK_BUDGET_S", budget)
    view = world.group_store().view(group_id)
    assert view is not None
    rest = BulkBinding(group_id, 5, view.version, start=3).encode()
    again = body_of(world.bulk_click(QUARANTINE_ALL, rest, ALICE, is_ephemeral=True))
    # THEN findings 3 to 5 are queued, 1 and 2 are left for another click
    assert states(world, members) == [State.PENDING_APPROVAL] * 2 + [State.APPROVED] * 3
    assert "*3 of the 5 listed findings queued" in again["text"] and "blocks" not in again
    entry = record_of(world, members[2]).entry_into_state
    assert entry is not None and f"group {group_id} findings 3-5" in entry.detail


def test_a_bucket_wide_bulk_dismissal_without_an_exemption_store_raises_before_dismissing_any(world: World) -> None:
    from macie_chatops.bulk import handle_bulk_submission
    from macie_chatops.interaction import ApproverDirectory, Dependencies
    from macie_chatops.jobs import SqsJobQueue
    from macie_chatops.slack_client import SlackClient, build_web_client
    from macie_chatops_sandbox.testkit.world import approval_signer

    # GIVEN a group of 2 whose "Dismiss all 2" form was opened, submitted for the whole bucket
    group_id, members = world.seed_group(2)
    body_of(world.bulk_click(DISMISS_ALL, binding(world, group_id), ALICE))
    event = world.submission_event(ALICE, {"reason": "Test data, not customer records", "scope": "bucket"})
    assert not event["isBase64Encoded"]
    # AND an endpoint wired without an exemption store (a wiring error: the handler always has one)
    slack = SlackClient(build_web_client("xoxb-test-token", base_url=world.slack.base_url), max_rate_limit_retries=0)
    deps = Dependencies(
        config=world.config,
        store=world.store,
        queue=SqsJobQueue(world.sqs, world.queue_url),
        directory=ApproverDirectory(slack.usergroup_members),
        signer=approval_signer(),
        groups=world.group_store(),
        exemptions=None,
    )
    before = world.snapshot()
    # WHEN the submission reaches it
    with pytest.raises(ValueError, match=r"a bucket-wide dismissal needs Dependencies\.exemptions"):
        handle_bulk_submission(event["body"].encode("utf-8"), deps)
    # THEN it raises before any member is counted or dismissed: nothing was recorded or changed
    assert world.snapshot() == before
    assert states(world, members) == [State.PENDING_APPROVAL] * 2
    assert all(record_of(world, finding_id).dismissals == () for finding_id in members)
    account_id = record_of(world, members[0]).account_id
    assert ExemptionStore(world.dynamodb, names.STATE_TABLE_NAME).for_account(account_id) == ()
