"""The sweeper and finding groups (docs/architecture.md §22): a stuck member does not replace its group's digest."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops.config import Action
from macie_chatops.group_store import GroupStore, NewMember
from macie_chatops.groups import GroupKey
from macie_chatops.jobs import SqsJobQueue
from macie_chatops.states import State
from macie_chatops.sweeper import SweepDependencies, SweepPolicy, Verdict, sweep
from macie_chatops_sandbox.testkit.world import aws_client, create_remediation_queue, slack_client
from tests.conftest import AwsSandbox
from tests.functional.remediator_world import TABLE, RemediatorWorld, message_text, remediator_world
from tests.functional.sweeper_world import approved_since, queued, store_at

KEY = GroupKey("C0PAYMENTS", "111111111111", "source", "SensitiveData:S3Object/Personal", Action.REVIEW)


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


def _group_of_two(world: RemediatorWorld, first: str, second: str) -> GroupStore:
    groups = GroupStore(aws_client("dynamodb"), TABLE)
    for finding_id in (first, second):
        record = world.record(finding_id)
        member = NewMember(finding_id, f"{finding_id}.csv", "High", State.APPROVED)
        groups.join(KEY, member, account_name="a", window=timedelta(minutes=5), max_age=timedelta(hours=1))
        assert record.state is State.APPROVED
    return groups


@pytest.mark.parametrize("grouped", [True, False])
def test_a_stuck_member_leaves_its_groups_digest_alone(world: RemediatorWorld, grouped: bool) -> None:
    # GIVEN a finding approved 3 hours ago whose jobs are lost each time: the first of a group of two, or alone
    seeded = approved_since(world, "f-stuck", timedelta(hours=3))
    approved_since(world, "f-other", timedelta(hours=3), key="exports/other.csv")
    groups = _group_of_two(world, "f-stuck", "f-other") if grouped else None
    queue_url = create_remediation_queue()
    now = [datetime.now(UTC) - timedelta(hours=3)]
    deps = SweepDependencies(
        store=store_at(lambda: now[0]),
        queue=SqsJobQueue(aws_client("sqs"), queue_url),
        slack=slack_client(world.slack),
        policy=SweepPolicy(stale_after=timedelta(minutes=30), max_requeues=1),
        clock=lambda: now[0],
        groups=groups,
    )
    # WHEN the sweeper gives up on it
    verdicts = []
    for _ in range(2):
        now[0] += timedelta(minutes=31)
        verdicts.append({outcome.finding_id: outcome.verdict for outcome in sweep(deps).outcomes}["f-stuck"])
        queued(queue_url)
    assert verdicts == [Verdict.REQUEUE, Verdict.GIVE_UP]
    # THEN alone, its message says it is stuck; the first of a group, its message (the digest) is not replaced
    text = message_text(world.message(seeded))
    assert ("Quarantine stuck" in text) is not grouped
    assert world.record("f-stuck").error is not None
