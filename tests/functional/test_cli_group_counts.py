"""The operator CLI's state changes move a grouped finding's group counts as every handler's do (docs/architecture.md
§22): `retry` and `restore` build their store with the same hook, so the digest stops saying "3 awaiting" after an
operator acted; a hook that fails after its transition is reported at the end, and the job is still queued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops.cli import main
from macie_chatops.group_store import GROUP_PREFIX
from macie_chatops.groups import GroupView
from macie_chatops.handlers import digests as digest_handler
from macie_chatops.handlers import intake as intake_handler
from macie_chatops.jobs import RemediationJob
from macie_chatops.states import State
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import aws_client
from tests.conftest import AwsSandbox
from tests.functional.test_floods import TABLE, World, _config, _world, first_group, hooked_store, review_event

FIRST, SECOND = f"{0:032x}", f"{1:032x}"
BEFORE = {State.PENDING_APPROVAL: 1, State.QUARANTINED: 1, State.FAILED: 1}


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield _world(aws, slack, tmp_path, monkeypatch, _config(60))
    intake_handler.clear_caches()
    digest_handler.clear_caches()


@pytest.fixture
def failed_member(world: World, monkeypatch: pytest.MonkeyPatch) -> str:
    """A group of 3 awaiting approval, its digest shown (the group clean); its first member quarantined and its
    second approved, then FAILED (moved by a handler's store: the counts follow). The group id."""
    monkeypatch.setenv("USER", "oncall")
    assert world.intake(*[review_event(n) for n in range(3)]) == []
    group_id = first_group(world)
    findings = hooked_store(world)
    for finding_id, outcome in ((FIRST, State.QUARANTINED), (SECOND, State.FAILED)):
        for expected, target in ((State.PENDING_APPROVAL, State.APPROVED), (State.APPROVED, outcome)):
            moved = findings.transition(finding_id, expected={expected}, target=target, actor="remediator", event="t")
            assert moved.applied
    settle(world, group_id)
    assert view(world, group_id).state_counts == BEFORE
    return group_id


def settle(world: World, group_id: str) -> None:
    """The digest writer has shown the group: clean, and no wake-up waiting."""
    item = world.groups.item(group_id)
    assert item is not None
    assert world.groups.clear_dirty(group_id, version=item.view.version)
    world.sqs.purge_queue(QueueUrl=world.digest_queue_url)


def view(world: World, group_id: str) -> GroupView:
    item = world.groups.item(group_id)
    assert item is not None
    return item.view


def remediation_queue() -> str:
    return str(aws_client("sqs").get_queue_url(QueueName=names.REMEDIATION_QUEUE_NAME)["QueueUrl"])


def queued_jobs(queue_url: str) -> list[RemediationJob]:
    sqs = aws_client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [RemediationJob.from_message(message["Body"]) for message in messages]


def wake_ups(world: World) -> list[str]:
    received = world.sqs.receive_message(QueueUrl=world.digest_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5)
    return [message["Body"] for message in received.get("Messages", [])]


def test_a_retry_from_the_cli_moves_the_group_counts_and_wakes_the_writer(
    world: World, failed_member: str, capsys: pytest.CaptureFixture[str]
) -> None:
    group_id = failed_member
    # WHEN an operator re-queues the failed member's quarantine
    assert main(["retry", SECOND, "--table", TABLE, "--queue-url", remediation_queue()]) == 0
    # THEN its record is APPROVED, its job queued, and its group counts it APPROVED, not FAILED
    assert world.record(SECOND).state is State.APPROVED
    assert [job.finding_id for job in queued_jobs(remediation_queue())] == [SECOND]
    assert view(world, group_id).state_counts == {State.PENDING_APPROVAL: 1, State.QUARANTINED: 1, State.APPROVED: 1}
    # AND the digest is dirty and the writer woken, so it stops showing the failure
    item = world.groups.item(group_id)
    assert item is not None and item.dirty
    assert wake_ups(world) == [json.dumps({"group_id": group_id})]
    assert "could not be updated" not in capsys.readouterr().err


def test_without_the_environments_digest_queue_the_cli_finds_it_beside_the_remediation_queue(
    world: World, failed_member: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an operator's shell with the remediation queue but not the digest queue's URL
    monkeypatch.delenv(names.ENV_DIGEST_QUEUE_URL)
    assert main(["retry", SECOND, "--table", TABLE, "--queue-url", remediation_queue()]) == 0
    # THEN the digest queue of the same account and region is woken
    assert wake_ups(world) == [json.dumps({"group_id": failed_member})]


def test_a_hook_that_fails_after_the_transition_is_reported_and_the_job_still_queued(
    world: World, failed_member: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group_id = failed_member
    # GIVEN the digest queue cannot be used (SQS refuses it: here, it does not exist)
    monkeypatch.setenv(names.ENV_DIGEST_QUEUE_URL, world.digest_queue_url + "-gone")
    # WHEN an operator re-queues the failed member
    status = main(["retry", SECOND, "--table", TABLE, "--queue-url", remediation_queue()])
    # THEN the transition stands and its job is queued (an operator's command is not redelivered: the job is not
    # held back by a count), the CLI says which finding's move the digest may not show, and exits 1
    assert status == 1
    assert world.record(SECOND).state is State.APPROVED
    assert [job.finding_id for job in queued_jobs(remediation_queue())] == [SECOND]
    err = capsys.readouterr().err
    assert f"finding {SECOND} moved, but its group's digest count could not be updated" in err
    # AND as for any caller whose hook fails after the count (§22): the move is counted and the group marked dirty,
    # the wake-up is what was lost (the next mark of the group after STALE_DIRTY sends one)
    item = world.groups.item(group_id)
    assert item is not None and item.dirty
    assert item.view.state_counts == {State.PENDING_APPROVAL: 1, State.QUARANTINED: 1, State.APPROVED: 1}
    assert wake_ups(world) == []


def test_a_member_whose_group_expired_is_moved_with_nothing_to_count(
    world: World, failed_member: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the group's item expired (TTL) while its member's record lives on
    aws_client("dynamodb").delete_item(
        TableName=TABLE, Key={names.STATE_TABLE_KEY: {"S": GROUP_PREFIX + failed_member}}
    )
    # WHEN an operator re-queues the member THEN it is re-queued, with no group to count in and nothing to report
    assert main(["retry", SECOND, "--table", TABLE, "--queue-url", remediation_queue()]) == 0
    assert world.record(SECOND).state is State.APPROVED
    assert "could not be updated" not in capsys.readouterr().err
    assert wake_ups(world) == []


def test_a_restore_from_the_cli_moves_the_group_counts(world: World, failed_member: str) -> None:
    # GIVEN the group's first member quarantined (the fixture) and the digest showing it
    group_id = failed_member
    # WHEN an operator restores it (the approval key from the environment, as provisioned)
    assert main(["restore", FIRST, "--table", TABLE, "--queue-url", remediation_queue()]) == 0
    # THEN the group counts it RESTORE_REQUESTED, and the writer is woken
    assert view(world, group_id).state_counts == {
        State.PENDING_APPROVAL: 1,
        State.RESTORE_REQUESTED: 1,
        State.FAILED: 1,
    }
    assert wake_ups(world) == [json.dumps({"group_id": group_id})]
