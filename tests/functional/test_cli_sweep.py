"""`macie-chatops sweep [--dry-run | --requeue FINDING_ID]`: the scheduled sweeper's work on demand, against the
real state table and remediation queue (found as `retry` finds them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.cli import main
from macie_chatops.states import State
from macie_chatops.sweeper import (
    EVENT_GAVE_UP,
    EVENT_OPERATOR_REQUEUED,
    EVENT_REQUEUED,
    SweepPolicy,
    Verdict,
    plan_sweep,
)
from macie_chatops_sandbox.testkit.world import aws_client, create_remediation_queue
from tests.conftest import AwsSandbox
from tests.functional.remediator_world import RemediatorWorld, remediator_world
from tests.functional.sweeper_world import approved_since, queued, store_at


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


@pytest.fixture
def queue_url(world: RemediatorWorld, monkeypatch: pytest.MonkeyPatch) -> str:
    url = create_remediation_queue()
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, url)
    monkeypatch.setenv("USER", "oncall")
    return url


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stale approval and a fresh one
    approved_since(world, "f-stale", timedelta(hours=2), key="a.csv")
    approved_since(world, "f-fresh", timedelta(minutes=5), key="b.csv")
    before = world.record("f-stale")
    # WHEN an operator runs `macie-chatops sweep --dry-run`
    assert main(["sweep", "--dry-run"]) == 0
    # THEN one line for the stale one says it would be re-queued; nothing was queued or written
    captured = capsys.readouterr()
    (line,) = _lines(captured.out)
    assert (line["finding_id"], line["verdict"], line["requeues"], line["done"]) == ("f-stale", "requeue", 0, "")
    assert "dry run: nothing changed; 1 approval(s) older than 30 min, 0 stuck, 0 error(s)" in captured.err
    assert queued(queue_url) == []
    assert world.record("f-stale") == before


def test_a_sweep_requeues_the_stale_approvals(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stale approval
    approved_since(world, "f-stale", timedelta(hours=2))
    # WHEN an operator runs `macie-chatops sweep`
    assert main(["sweep"]) == 0
    # THEN its job is queued and the re-queue recorded, as the scheduled sweeper would
    (line,) = _lines(capsys.readouterr().out)
    assert line["verdict"] == "requeue" and line["done"].startswith("queued message ")
    assert [json.loads(d.body)["finding_id"] for d in queued(queue_url)] == ["f-stale"]
    assert world.record("f-stale").audit[-1].event == EVENT_REQUEUED


def test_requeue_gives_a_stuck_finding_its_job_and_a_fresh_set_of_sweeps(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a finding the sweeper gave up on (three re-queues and a give-up, recorded in the past)
    approved_since(world, "f-stuck", timedelta(hours=3))
    past = store_at(lambda: datetime.now(UTC) - timedelta(hours=1))
    for _ in range(3):
        past.append_audit("f-stuck", actor="sweeper", event=EVENT_REQUEUED, outcome="requeued")
    past.append_audit("f-stuck", actor="sweeper", event=EVENT_GAVE_UP, outcome="stuck", updates={"error": "stuck"})
    policy = SweepPolicy()
    assert plan_sweep(world.record("f-stuck"), now=datetime.now(UTC), policy=policy).verdict is Verdict.STILL_STUCK
    # WHEN an operator, having fixed the cause, runs `macie-chatops sweep --requeue f-stuck`
    assert main(["sweep", "--requeue", "f-stuck"]) == 0
    # THEN its job is queued, the operator is on the trail, the error is cleared, and the count starts again
    assert _lines(capsys.readouterr().out) == [{"finding_id": "f-stuck", "state": "APPROVED", "requeued": True}]
    assert [json.loads(d.body)["requested_by"] for d in queued(queue_url)] == ["U0ALICE"]
    record = world.record("f-stuck")
    assert (record.audit[-1].actor, record.audit[-1].event) == ("cli:oncall", EVENT_OPERATOR_REQUEUED)
    assert record.error is None
    later = plan_sweep(record, now=datetime.now(UTC) + timedelta(minutes=31), policy=policy)
    assert (later.verdict, later.requeues) == (Verdict.REQUEUE, 0)


def test_requeue_refuses_a_finding_that_is_not_approved(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a quarantined finding, and an id with no record
    world.seed("f-done", state=State.QUARANTINED)
    # WHEN an operator tries to re-queue them  THEN both fail with the reason, and nothing is queued
    assert main(["sweep", "--requeue", "f-done"]) == 1
    assert "f-done is QUARANTINED, not APPROVED: nothing to re-queue" in capsys.readouterr().err
    assert main(["sweep", "--requeue", "f-nope"]) == 1
    assert "f-nope" in capsys.readouterr().err
    assert queued(queue_url) == []


def test_a_queue_failure_fails_the_command_and_names_the_queue(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stale approval and a remediation queue that no longer exists
    approved_since(world, "f-stale", timedelta(hours=2))
    aws_client("sqs").delete_queue(QueueUrl=queue_url)
    # WHEN an operator runs `macie-chatops sweep`  THEN it exits 1 naming the queue's error, and counts no re-queue
    assert main(["sweep"]) == 1
    err = capsys.readouterr().err
    assert "sweep: " in err and ("NonExistentQueue" in err or "QueueDoesNotExist" in err)
    assert EVENT_REQUEUED not in [e.event for e in world.record("f-stale").audit]


def test_without_a_queue_url_it_says_how_to_set_one(
    world: RemediatorWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(names.ENV_REMEDIATION_QUEUE_URL, raising=False)
    assert main(["sweep"]) == 2
    assert "--queue-url" in capsys.readouterr().err
