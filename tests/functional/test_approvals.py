"""Signed approvals on moto's KMS (GenerateMac/VerifyMac) and the remediator (docs/architecture.md §23): a real
approval verifies; one replayed onto another finding, onto an edited object, for another action, by another
approver, at another time, with a flipped MAC or from another key does not; the remediator refuses such a job
before it assumes any role, and an operator's re-approval makes it move."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from macie_chatops import names
from macie_chatops.approvals import ApprovalVerifier, refuse
from macie_chatops.cli import main
from macie_chatops.remediation import JobResult, handle_job
from macie_chatops.states import Failure, State
from macie_chatops.store import FindingRecord
from macie_chatops_sandbox.testkit.world import (
    approval_signer,
    approval_verifier,
    aws_client,
    create_approval_key,
    create_remediation_queue,
)
from tests.conftest import AwsSandbox
from tests.functional.move_world import MEMBER_A
from tests.functional.remediator_world import SOURCE, Delivery, RemediatorWorld, job, message_text, remediator_world


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


class NoSessions:
    """The member-role sessions of a remediator that must not reach any member account."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def clients(self, account_id: str, region: str, **kwargs: Any) -> Any:
        self.asked.append(account_id)
        raise AssertionError(f"the remediator assumed a role in {account_id} for an unverified approval")


def _with_stamp(record: FindingRecord, **changes: str) -> FindingRecord:
    assert record.approval is not None
    return dataclasses.replace(record, approval={**record.approval, **changes})


def _set_stamp(world: RemediatorWorld, finding_id: str, stamp: Mapping[str, str] | None) -> None:
    """What a principal that may write the state table can do to a record's approval."""
    written = world.store.append_audit(
        finding_id,
        actor="someone",
        event="edited",
        outcome="edited",
        updates={"approval": dict(stamp) if stamp else None},
    )
    assert written.applied


# -- the verifier ------------------------------------------------------------------------------------------------


def test_a_real_approval_verifies_and_names_its_approver(world: RemediatorWorld) -> None:
    seeded = world.seed("f-real")
    verification = approval_verifier().verify(world.record(seeded.finding_id), "quarantine")
    assert (verification.verified, verification.reason, verification.approver) == (True, "", "U0ALICE")


def test_an_approval_replayed_onto_another_finding_does_not_verify(world: RemediatorWorld) -> None:
    # GIVEN two approved findings (different object versions), and the first one's real approval copied to the second
    first = world.record(world.seed("f-first", key="exports/a.csv").finding_id)
    second = dataclasses.replace(world.record(world.seed("f-second", key="exports/b.csv").finding_id))
    replayed = dataclasses.replace(second, approval=first.approval)
    # THEN the second finding's record does not verify with it
    verification = approval_verifier().verify(replayed, "quarantine")
    assert not verification.verified and "does not match" in verification.reason


def test_an_approval_of_an_edited_object_version_does_not_verify(world: RemediatorWorld) -> None:
    # GIVEN a real approval, and the record's object version edited afterwards (to move another version)
    record = world.record(world.seed("f-edited").finding_id)
    assert record.summary is not None
    edited = dataclasses.replace(record, summary=dataclasses.replace(record.summary, version_id="another-version"))
    # THEN it does not verify
    assert not approval_verifier().verify(edited, "quarantine").verified


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"approver": "U0MALLORY"}, "the approval is U0MALLORY's, but the record names U0ALICE"),
        ({"at": "2026-12-05T10:00:00.000000Z"}, "does not match"),
        ({"mac": base64.b64encode(b"\x01" * 32).decode()}, "does not match"),
        ({"action": "restore"}, "the approval is for restore, not quarantine"),
        ({"mac": "not base64!"}, "not base64"),
        ({"mac": ""}, "lacks mac"),
        ({"approver": "", "at": ""}, "lacks approver, at"),
    ],
)
def test_a_tampered_approval_does_not_verify(world: RemediatorWorld, changes: dict[str, str], reason: str) -> None:
    record = world.record(world.seed("f-tampered").finding_id)
    verification = approval_verifier().verify(_with_stamp(record, **changes), "quarantine")
    assert not verification.verified and reason in verification.reason


def test_an_approval_does_not_verify_for_a_record_that_names_another_approver(world: RemediatorWorld) -> None:
    # GIVEN a real approval by U0ALICE, and the record's approver (the move's SourceIdentity) rewritten afterwards
    record = world.record(world.seed("f-relabelled").finding_id)
    relabelled = dataclasses.replace(record, approver="U0MALLORY")
    # THEN it does not verify: nobody can make a move look approved by someone else
    verification = approval_verifier().verify(relabelled, "quarantine")
    assert not verification.verified
    assert verification.reason == "the approval is U0ALICE's, but the record names U0MALLORY"


def test_a_restore_verifies_only_for_the_requester_the_record_names(world: RemediatorWorld) -> None:
    # GIVEN a restore requested (and signed) by U0BOB
    seeded = world.seed("f-restore-by", state=State.RESTORE_REQUESTED, approver="U0BOB")
    record = world.record(seeded.finding_id)
    assert approval_verifier().verify(record, "restore").verified
    # WHEN the entry into RESTORE_REQUESTED names someone else  THEN it does not verify
    entry = record.audit[-1]
    assert entry.outcome == State.RESTORE_REQUESTED.value
    forged = dataclasses.replace(record, audit=(*record.audit, dataclasses.replace(entry, actor="U0MALLORY")))
    assert not approval_verifier().verify(forged, "restore").verified


def test_an_operators_reapproval_of_a_move_keeps_the_original_approver_on_the_record(world: RemediatorWorld) -> None:
    # GIVEN a finding approved by U0ALICE, re-approved by an operator (the record's approver stays U0ALICE)
    record = world.record(world.seed("f-reapproved").finding_id)
    signer = approval_signer()
    assert signer is not None
    stamp = signer.stamp(record, action="quarantine", approver="cli:oncall", at=datetime.now(UTC))
    # THEN it verifies, naming the operator
    verification = approval_verifier().verify(dataclasses.replace(record, approval=stamp), "quarantine")
    assert (verification.verified, verification.approver) == (True, "cli:oncall")


def test_no_approval_and_another_keys_approval_do_not_verify(world: RemediatorWorld) -> None:
    record = world.record(world.seed("f-other-key").finding_id)
    # GIVEN a record with no approval  THEN it does not verify
    assert approval_verifier().verify(dataclasses.replace(record, approval=None), "quarantine").reason == (
        "the record carries no signed approval"
    )
    # GIVEN a verifier of another HMAC key (an attacker's own key named in the stamp is never used)
    other = ApprovalVerifier(aws_client("kms"), create_approval_key())
    assert not other.verify(_with_stamp(record, key_id=other.key_id), "quarantine").verified


def test_a_kms_failure_is_raised_not_read_as_a_verdict(world: RemediatorWorld) -> None:
    # GIVEN a verifier whose key does not exist (a deployment error)  THEN it raises: nothing is decided
    record = world.record(world.seed("f-no-key").finding_id)
    missing = ApprovalVerifier(aws_client("kms"), "arn:aws:kms:us-east-1:210987654321:key/no-such-key")
    with pytest.raises(ClientError):
        missing.verify(record, "quarantine")


# -- the remediator refuses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["none", "replayed"])
def test_the_remediator_refuses_an_unverified_approval_before_assuming_any_role(
    world: RemediatorWorld, stamp: str
) -> None:
    # GIVEN an approved finding whose approval is missing, or is another finding's real one
    seeded = world.seed("f-forged", key="exports/forged.csv")
    donor = world.record(world.seed("f-donor", key="exports/donor.csv").finding_id)
    _set_stamp(world, seeded.finding_id, None if stamp == "none" else donor.approval)
    sessions = NoSessions()
    deps = world.deps(sessions=sessions)
    # WHEN its job runs
    result = handle_job(job("quarantine", seeded.finding_id).body, deps)
    # THEN refused: FAILED approval_not_verified, counted, shown; no role assumed, the object where it was
    assert result is JobResult.UNVERIFIED and sessions.asked == []
    record = world.record(seeded.finding_id)
    assert record.state is State.FAILED and record.outcome == Failure.UNVERIFIED.value
    assert record.error is not None and record.error.startswith("approval not verified: ")
    assert (names.UNVERIFIED_APPROVALS_METRIC, {}) in deps.metrics.counts  # type: ignore[attr-defined]
    assert world.moves.read(MEMBER_A, SOURCE, seeded.key) == seeded.body and world.quarantine_copies(seeded) == 0
    text = message_text(world.message(seeded))
    assert "approval not verified" in text and "retry --reapprove" in text
    # AND a redelivered job is refused again, still without touching anything
    assert handle_job(job("quarantine", seeded.finding_id).body, deps) is JobResult.UNVERIFIED
    assert sessions.asked == []


def test_a_restore_without_its_own_approval_is_refused_and_the_object_stays_quarantined(
    world: RemediatorWorld,
) -> None:
    # GIVEN a quarantined finding made RESTORE_REQUESTED by hand (its record still carries the quarantine approval)
    seeded = world.seed("f-restore")
    assert world.invoke(job("quarantine", seeded.finding_id)) == []
    forged = world.store.transition(
        seeded.finding_id, expected={State.QUARANTINED}, target=State.RESTORE_REQUESTED, actor="U0ALICE", event="x"
    )
    assert forged.applied
    # WHEN the restore job runs
    sessions = NoSessions()
    assert handle_job(job("restore", seeded.finding_id).body, world.deps(sessions=sessions)) is JobResult.UNVERIFIED
    # THEN the finding is QUARANTINED again with the reason, its approval removed; the source key holds nothing
    record = world.record(seeded.finding_id)
    assert record.state is State.QUARANTINED and record.approval is None and sessions.asked == []
    assert record.error == "restore not done: approval not verified: the approval is for quarantine, not restore"
    assert world.quarantine_copies(seeded) == 1


def test_refusing_a_failed_finding_again_keeps_it_failed(world: RemediatorWorld) -> None:
    seeded = world.seed("f-failed", state=State.FAILED)
    record = world.record(seeded.finding_id)
    verification = approval_verifier().verify(dataclasses.replace(record, approval=None), "quarantine")
    written = refuse(world.store, record, verification, actor="remediator")
    assert written.applied and written.record.state is State.FAILED
    assert written.record.outcome == Failure.UNVERIFIED.value


# -- the operator re-approves ---------------------------------------------------------------------------------------


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


def test_retry_keeps_the_approval_and_retry_reapprove_signs_the_operators(
    world: RemediatorWorld, queue_url: str
) -> None:
    # GIVEN a finding approved before approvals were signed (no MAC), refused by the remediator: FAILED
    seeded = world.seed("f-legacy")
    _set_stamp(world, seeded.finding_id, None)
    assert handle_job(job("quarantine", seeded.finding_id).body, world.deps()) is JobResult.UNVERIFIED
    # WHEN an operator retries it without re-approving  THEN its job is refused again: nothing was approved
    assert main(["retry", seeded.finding_id]) == 0
    (delivery,) = _queued(queue_url)
    assert world.invoke(delivery) == []
    assert world.record(seeded.finding_id).outcome == Failure.UNVERIFIED.value
    # WHEN the operator, having checked it, re-approves it
    assert main(["retry", seeded.finding_id, "--reapprove"]) == 0
    record = world.record(seeded.finding_id)
    assert record.approval is not None and record.approval["approver"] == "cli:oncall"
    # THEN the job verifies and the object is quarantined (the move's SourceIdentity is still the approver)
    (delivery,) = _queued(queue_url)
    assert world.invoke(delivery) == []
    assert world.record(seeded.finding_id).state is State.QUARANTINED
    assert world.quarantine_copies(seeded) == 1


def test_sweep_requeue_reapprove_signs_before_it_sends(world: RemediatorWorld, queue_url: str) -> None:
    # GIVEN an APPROVED finding with no MAC (approved before signing)
    seeded = world.seed("f-requeue")
    _set_stamp(world, seeded.finding_id, None)
    # WHEN an operator re-queues it with --reapprove
    assert main(["sweep", "--requeue", seeded.finding_id, "--reapprove"]) == 0
    # THEN the record carries the operator's approval, and its job quarantines the object
    record = world.record(seeded.finding_id)
    assert record.approval is not None and record.approval["approver"] == "cli:oncall"
    assert [e.event for e in record.audit][-2:] == ["reapproved_by_operator", "requeued_by_operator"]
    (delivery,) = _queued(queue_url)
    assert world.invoke(delivery) == []
    assert world.record(seeded.finding_id).state is State.QUARANTINED
