"""`macie-chatops restore FINDING_ID`: the operator's way to put a quarantined object back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.cli import main
from macie_chatops.jobs import RemediationJob
from macie_chatops.states import State
from tests.conftest import AwsSandbox
from tests.functional.move_world import MEMBER_A, shared_session
from tests.functional.remediator_world import (
    SOURCE,
    TABLE,
    Delivery,
    RemediatorWorld,
    job,
    message_text,
    remediator_world,
)


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


@pytest.fixture
def queue_url(world: RemediatorWorld, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = shared_session().client("sqs").create_queue(QueueName=names.REMEDIATION_QUEUE_NAME)["QueueUrl"]
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, url)
    monkeypatch.setenv("USER", "oncall")
    return url


def _queued(url: str) -> list[Delivery]:
    sqs = shared_session().client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [Delivery(m["Body"]) for m in messages]


def test_restore_requests_and_queues_then_the_remediator_restores(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a quarantined finding
    seeded = world.seed("f-cli")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    # WHEN an operator runs `macie-chatops restore f-cli` (table and queue from the environment)
    assert main(["restore", seeded.finding_id]) == 0
    # THEN the record is RESTORE_REQUESTED by cli:<user>, and one restore job is queued
    out = capsys.readouterr().out
    assert '"state": "RESTORE_REQUESTED"' in out and "cli:oncall" in out
    record = world.record(seeded.finding_id)
    assert record.state is State.RESTORE_REQUESTED
    assert (record.audit[-1].actor, record.audit[-1].event) == ("cli:oncall", "cli:restore")
    (delivery,) = _queued(queue_url)
    queued = RemediationJob.from_message(delivery.body)
    assert (queued.kind, queued.finding_id, queued.requested_by) == ("restore", "f-cli", "cli:oncall")
    # AND the remediator takes the job and restores the object, crediting the operator in Slack
    assert world.invoke(delivery) == []
    assert world.record(seeded.finding_id).state is State.RESTORED
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key) == seeded.body
    assert "cli:oncall" in message_text(world.message(seeded))


def test_flags_override_the_environment(
    world: RemediatorWorld, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = world.seed("f-flags")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    monkeypatch.setenv(names.ENV_STATE_TABLE, "not-this-table")
    monkeypatch.delenv(names.ENV_REMEDIATION_QUEUE_URL)
    assert (
        main(["restore", seeded.finding_id, "--table", TABLE, "--queue-url", queue_url, "--region", "us-east-1"]) == 0
    )
    assert len(_queued(queue_url)) == 1


def test_unknown_finding_is_a_clear_error(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore", "f-nobody"]) == 2
    assert "unknown finding 'f-nobody'" in capsys.readouterr().err
    assert _queued(queue_url) == []


@pytest.mark.parametrize("state", [State.APPROVED, State.PENDING_APPROVAL])
def test_a_finding_that_is_not_quarantined_is_refused(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str], state: State
) -> None:
    seeded = world.seed(f"f-{state.value.lower()}", state=state)
    assert main(["restore", seeded.finding_id]) == 2
    assert f"is {state.value}, not QUARANTINED" in capsys.readouterr().err
    assert world.record(seeded.finding_id).state is state
    assert _queued(queue_url) == []


def test_no_queue_configured_is_a_clear_error(
    world: RemediatorWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(names.ENV_REMEDIATION_QUEUE_URL, raising=False)
    assert main(["restore", "f-any"]) == 2
    assert "--queue-url" in capsys.readouterr().err


def test_a_job_that_cannot_be_queued_undoes_the_request(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a quarantined finding and a queue URL that does not exist
    seeded = world.seed("f-noqueue")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    missing = queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    # WHEN the restore is requested
    assert main(["restore", seeded.finding_id, "--queue-url", missing]) == 1
    # THEN the finding is QUARANTINED again (audited), so nobody waits for a restore that never comes
    assert "stays QUARANTINED" in capsys.readouterr().err
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED
    assert [e.event for e in record.audit][-2:] == ["cli:restore", "restore_not_queued"]
