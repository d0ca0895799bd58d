"""The sweeper in the sandbox: an approval whose job was lost is found, re-queued and quarantined by the running
pipeline (the sandbox has no scheduler: ``Sandbox.sweep()`` invokes the sweeper's handler as its schedule would)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from macie_chatops.approvals import ApprovalSigner
from macie_chatops.states import State
from macie_chatops.store import FindingStore
from macie_chatops_sandbox.sandbox import Sandbox
from tests.e2e.world import PAYMENTS_PROD, PERSONAL, message_of, report


def test_a_lost_approval_is_requeued_by_the_sweeper_and_quarantined(sandbox: Sandbox) -> None:
    # GIVEN a review finding, approved an hour ago by a click whose job never reached the queue
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    approver = sandbox.approver_for("payments")
    an_hour_ago = FindingStore(
        sandbox.client("dynamodb"), sandbox.provisioned.table_name, clock=lambda: datetime.now(UTC) - timedelta(hours=1)
    )
    signer = ApprovalSigner(sandbox.client("kms"), sandbox.provisioned.approval_key_arn)  # as the click signs it
    pending = finding.record(sandbox)
    stamp = signer.stamp(pending, action="quarantine", approver=approver, at=datetime.now(UTC) - timedelta(hours=1))
    lost = an_hour_ago.transition(
        finding.finding_id,
        expected={State.PENDING_APPROVAL},
        target=State.APPROVED,
        actor=approver,
        event="click:remediate",
        updates={"approver": approver, "approval": stamp},
    )
    assert lost.applied
    sandbox.wait_until_idle(30)
    assert sandbox.record(finding.finding_id).state is State.APPROVED  # type: ignore[union-attr]
    # WHEN the sweeper runs
    answer = sandbox.sweep()
    # THEN it re-queued that job, and the pipeline's remediator quarantines the object and tells Slack
    assert answer["ApprovalsRequeued"] >= 1 and answer["SweepErrors"] == 0
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED, timeout_s=60)
    assert record.state is State.QUARANTINED
    assert finding.location(sandbox) == "quarantine"
    assert "Quarantined" in message_of(sandbox, record).text
    # AND the next sweep has nothing left to do for it
    sandbox.wait_until_idle(30)
    assert sandbox.sweep()["StuckApprovals"] == 0
