"""Signed approvals in the sandbox (docs/architecture.md §23): an APPROVED item written straight into the state
table, with no MAC, a bad one, or a real one replayed from another finding, moves nothing, whether its job is
queued by hand or re-queued by the sweeper; a real click still quarantines."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from macie_chatops import names
from macie_chatops.jobs import RemediationJob
from macie_chatops.states import Failure, State
from macie_chatops.store import FindingStore
from macie_chatops_sandbox.sandbox import Sandbox
from tests.e2e.world import PAYMENTS_PROD, PERSONAL, Reported, message_of, report


def pending_finding(sandbox: Sandbox) -> Reported:
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    return finding


def forge_approval(
    sandbox: Sandbox, finding: Reported, stamp: Mapping[str, str] | None, *, ago: timedelta = timedelta(0)
) -> None:
    """What a principal that may write the state table can do: make the record APPROVED itself (``ago`` in the
    past), with ``stamp`` as its approval (None: none at all)."""
    store = FindingStore(
        sandbox.client("dynamodb"), sandbox.provisioned.table_name, clock=lambda: datetime.now(UTC) - ago
    )
    approver = sandbox.approver_for("payments")
    updates = {"approver": approver} if stamp is None else {"approver": approver, "approval": dict(stamp)}
    written = store.transition(
        finding.finding_id,
        expected={State.PENDING_APPROVAL},
        target=State.APPROVED,
        actor=approver,
        event="click:remediate",
        updates=updates,  # type: ignore[arg-type]
    )
    assert written.applied


def queue_job(sandbox: Sandbox, finding: Reported) -> None:
    """What a principal that may send to the remediation queue can do: ask for the move."""
    job = RemediationJob(
        kind="quarantine",
        finding_id=finding.finding_id,
        requested_by=sandbox.approver_for("payments"),
        requested_at=datetime.now(UTC),
    )
    sandbox.client("sqs").send_message(QueueUrl=sandbox.provisioned.remediation.url, MessageBody=job.to_message())


def assert_refused_and_untouched(sandbox: Sandbox, finding: Reported) -> None:
    record = sandbox.wait_for_state(finding.finding_id, State.FAILED, State.QUARANTINED, State.BLOCKED, timeout_s=60)
    assert record.state is State.FAILED and record.outcome == Failure.UNVERIFIED.value
    assert record.error is not None and record.error.startswith("approval not verified")
    assert finding.location(sandbox) == "source"  # nothing moved, nothing copied
    assert "approval not verified" in json.dumps(message_of(sandbox, record).blocks)


def a_real_stamp(sandbox: Sandbox) -> tuple[Reported, dict[str, str]]:
    """A finding approved by a real click (and quarantined), and the approval it carries."""
    real = pending_finding(sandbox)
    response = sandbox.click(real.finding_id, names.ACTION_REMEDIATE, user_id=sandbox.approver_for("payments"))
    assert response.status == 200
    record = sandbox.wait_for_state(real.finding_id, State.QUARANTINED, State.FAILED, timeout_s=60)
    assert record.state is State.QUARANTINED and record.approval is not None
    return real, dict(record.approval)


def test_a_real_click_is_signed_and_still_quarantines(sandbox: Sandbox) -> None:
    # GIVEN a finding awaiting review  WHEN an approver clicks Remediate
    real, stamp = a_real_stamp(sandbox)
    # THEN it is quarantined, and its approval names the action, the approver and the key that signed it
    assert (stamp["action"], stamp["approver"]) == ("quarantine", sandbox.approver_for("payments"))
    assert stamp["key_id"] and stamp["mac"]
    assert real.location(sandbox) == "quarantine"


@pytest.mark.parametrize("forgery", ["no MAC", "bad MAC", "replayed from another finding"])
def test_a_forged_approval_with_its_job_queued_moves_nothing(sandbox: Sandbox, forgery: str) -> None:
    # GIVEN a real approval of another finding, and a finding awaiting review
    _, real = a_real_stamp(sandbox)
    finding = pending_finding(sandbox)
    stamps: dict[str, dict[str, str] | None] = {
        "no MAC": None,
        "bad MAC": {**real, "mac": base64.b64encode(b"\x00" * 32).decode()},
        "replayed from another finding": real,
    }
    # WHEN someone writes APPROVED straight into the table and queues the job
    forge_approval(sandbox, finding, stamps[forgery])
    queue_job(sandbox, finding)
    # THEN the remediator refuses it: FAILED "approval not verified", the object where it was, Slack told
    assert_refused_and_untouched(sandbox, finding)


def test_a_forged_approval_is_not_requeued_by_the_sweeper(sandbox: Sandbox) -> None:
    # GIVEN an APPROVED item written straight into the table an hour ago, with no MAC and no job
    finding = pending_finding(sandbox)
    forge_approval(sandbox, finding, None, ago=timedelta(hours=1))
    sandbox.wait_until_idle(30)
    # WHEN the sweeper runs
    answer = sandbox.sweep()
    # THEN it re-queues nothing for it: it counts it unverified and records it FAILED; nothing is moved
    assert answer[names.UNVERIFIED_APPROVALS_METRIC] == 1 and answer["ApprovalsRequeued"] == 0
    sandbox.wait_until_idle(30)
    record = finding.record(sandbox)
    assert record.state is State.FAILED and record.outcome == Failure.UNVERIFIED.value
    assert finding.location(sandbox) == "source"
    # AND a job re-queued by hand for it is refused as well
    queue_job(sandbox, finding)
    sandbox.wait_until_idle(30)
    assert finding.record(sandbox).state is State.FAILED and finding.location(sandbox) == "source"
