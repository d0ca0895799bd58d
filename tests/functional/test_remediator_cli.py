"""`macie-chatops restore FINDING_ID` and `macie-chatops retry FINDING_ID`: the operator's ways to put a
quarantined object back, and to re-queue a failed quarantine once its cause is fixed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.cli import main
from macie_chatops.jobs import RemediationJob
from macie_chatops.names import quarantine_bucket_name
from macie_chatops.states import State
from macie_chatops_sandbox.testkit.world import aws_client, create_remediation_queue
from tests.conftest import AwsSandbox
from tests.functional.move_world import MEMBER_A, REGION
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
    url = create_remediation_queue()
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, url)
    monkeypatch.setenv("USER", "oncall")
    return url


def _queued(url: str) -> list[Delivery]:
    sqs = aws_client("sqs")
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


# --- retry ---------------------------------------------------------------------------------------------------


def _failed(world: RemediatorWorld, finding_id: str) -> None:
    """A finding whose quarantine failed permanently (recorded as the remediator records it)."""
    world.seed(finding_id)
    world.store.transition(
        finding_id,
        expected={State.APPROVED},
        target=State.FAILED,
        actor="remediator",
        event="quarantine_failed",
        updates={"outcome": "assume_role_denied", "error": "AccessDenied assuming the role"},
    )


def test_retry_requeues_a_failed_quarantine_once_the_cause_is_fixed(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a member account whose quarantine bucket is not deployed, so the quarantine failed for good
    world.moves.s3(MEMBER_A).delete_bucket(Bucket=quarantine_bucket_name(MEMBER_A, REGION))
    seeded = world.seed("f-retry")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    record = world.record(seeded.finding_id)
    assert (record.state, record.outcome) == (State.FAILED, "failed")
    text = message_text(world.message(seeded))
    assert "will not be retried automatically" in text and "`macie-chatops retry f-retry`" in text
    # WHEN the member stack is deployed and an operator runs `macie-chatops retry f-retry`
    world.moves.provision_member(MEMBER_A)
    assert main(["retry", seeded.finding_id]) == 0
    # THEN the finding is APPROVED again by cli:<user>, audited, and one quarantine job names the approver
    line = json.loads(capsys.readouterr().out.splitlines()[-1])  # after the remediator's JSON log lines
    assert line == {"finding_id": "f-retry", "state": "APPROVED", "requested_by": "U0ALICE", "operator": "cli:oncall"}
    record = world.record(seeded.finding_id)
    assert record.state is State.APPROVED and record.approver == "U0ALICE"
    assert (record.audit[-1].actor, record.audit[-1].event, record.audit[-1].outcome) == (
        "cli:oncall",
        "cli:retry",
        "APPROVED",
    )
    (delivery,) = _queued(queue_url)
    queued = RemediationJob.from_message(delivery.body)
    assert (queued.kind, queued.finding_id, queued.requested_by) == ("quarantine", "f-retry", "U0ALICE")
    # AND the remediator takes the job: quarantined, and the Slack message says so, approved by the approver
    assert world.invoke(delivery) == []
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED and record.error is None
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key, seeded.version_id) is None
    text = message_text(world.message(seeded))
    assert "Quarantined" in text and "<@U0ALICE>" in text and "failed" not in text


def test_retry_of_an_unknown_finding_is_a_clear_error(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["retry", "f-nobody"]) == 2
    assert "retry: unknown finding 'f-nobody'" in capsys.readouterr().err
    assert _queued(queue_url) == []


@pytest.mark.parametrize("state", [State.APPROVED, State.PENDING_APPROVAL])
def test_retry_of_a_finding_that_has_not_failed_is_refused(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str], state: State
) -> None:
    seeded = world.seed(f"f-retry-{state.value.lower()}", state=state)
    audit = len(world.record(seeded.finding_id).audit)
    assert main(["retry", seeded.finding_id]) == 2
    assert f"is {state.value}, not FAILED: nothing to retry" in capsys.readouterr().err
    assert len(world.record(seeded.finding_id).audit) == audit
    assert _queued(queue_url) == []


def test_retry_uses_the_same_flags_as_restore(
    world: RemediatorWorld, queue_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failed(world, "f-retry-flags")
    monkeypatch.setenv(names.ENV_STATE_TABLE, "not-this-table")
    monkeypatch.delenv(names.ENV_REMEDIATION_QUEUE_URL)
    assert main(["retry", "f-retry-flags"]) == 2
    assert "--queue-url" in capsys.readouterr().err
    argv = ["retry", "f-retry-flags", "--table", TABLE, "--queue-url", queue_url, "--region", "us-east-1"]
    assert main(argv) == 0
    assert [RemediationJob.from_message(d.body).kind for d in _queued(queue_url)] == ["quarantine"]


def test_a_retry_that_cannot_be_queued_leaves_the_finding_failed(
    world: RemediatorWorld, queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a failed finding and a queue URL that does not exist
    _failed(world, "f-retry-noqueue")
    missing = queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    # WHEN the retry is requested
    assert main(["retry", "f-retry-noqueue", "--queue-url", missing]) == 1
    # THEN the finding is FAILED again (audited), with its failure kept, so the message stays true
    assert "the finding stays FAILED" in capsys.readouterr().err
    record = world.record("f-retry-noqueue")
    assert (record.state, record.outcome) == (State.FAILED, "assume_role_denied")
    assert [e.event for e in record.audit][-2:] == ["cli:retry", "retry_not_queued"]
