"""Security Hub in the loop, in the sandbox (architecture §17): Macie's findings imported into the sandbox's
Security Hub as Macie would, the updater on the state table's stream, boto3's own securityhub client reading the
workflow status back over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from macie_chatops import names
from macie_chatops.config import Config, SecurityHubSettings
from macie_chatops.states import State
from macie_chatops_sandbox.public_bucket_scene import policy_finding_event, with_public_bucket_review
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from tests.e2e.world import CREDENTIALS, PAYMENTS_DEV, PAYMENTS_PROD, PERSONAL, report


@pytest.fixture(scope="module")
def sandbox(config: Config, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    enabled = with_public_bucket_review(config.model_copy(update={"security_hub": SecurityHubSettings(enabled=True)}))
    with Sandbox(enabled, sandbox_settings) as running:
        yield running


def _status(sandbox: Sandbox, finding_id: str, region: str, status: str) -> tuple[str, str]:
    def probe() -> tuple[str, str] | None:
        shown = sandbox.security_hub.workflow(finding_id, region)
        return shown if shown is not None and shown[0] == status else None

    return sandbox.wait_for(probe, what=f"{finding_id} {status} in Security Hub")


def test_an_auto_quarantine_turns_resolved_in_security_hub(sandbox: Sandbox) -> None:
    # GIVEN a Credentials finding (policy: auto), published by Macie to EventBridge and to Security Hub
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS)
    assert sandbox.security_hub.workflow(finding.finding_id, finding.region) is not None

    # WHEN the pipeline quarantines it
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED)

    # THEN Security Hub shows it RESOLVED, with the approver (the policy) and where the object is now
    _, note = _status(sandbox, finding.finding_id, finding.region, "RESOLVED")
    assert record.quarantine is not None
    assert "by policy (auto)" in note and f"s3://{record.quarantine['bucket']}/" in note


def test_a_review_is_notified_then_resolved_after_the_approval(sandbox: Sandbox) -> None:
    # GIVEN a Personal finding (policy: review)
    finding = report(sandbox, account_id=PAYMENTS_DEV, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    # THEN Security Hub says the team was asked
    _status(sandbox, finding.finding_id, finding.region, "NOTIFIED")

    # WHEN an approver approves it in Slack and it is quarantined
    approver = sandbox.approver_for("payments")
    assert sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=approver).status == 200
    sandbox.wait_for_state(finding.finding_id, State.QUARANTINED)

    # THEN it is RESOLVED, naming the approver
    _, note = _status(sandbox, finding.finding_id, finding.region, "RESOLVED")
    assert approver in note
    # AND nothing was given up on
    assert sandbox.security_hub.dead_letters == []


def test_a_public_buckets_fix_resolves_its_policy_finding_and_undo_opens_it_again(sandbox: Sandbox) -> None:
    # GIVEN a public bucket's policy finding (posted for review), in Security Hub as Macie publishes it
    bucket = f"e2e-public-{uuid.uuid4().hex[:8]}"
    sandbox.ensure_bucket(PAYMENTS_PROD, "us-east-1", bucket, versioned=False)
    event = policy_finding_event(
        account_id=PAYMENTS_PROD, region="us-east-1", bucket=bucket, finding_id=uuid.uuid4().hex, count=1,
        at=datetime.now(UTC),
    )  # fmt: skip
    finding_id = event["detail"]["id"]
    sandbox.publish(event)
    sandbox.wait_for_state(finding_id, State.PENDING_APPROVAL)
    approver = sandbox.approver_for("payments")

    # WHEN an approver blocks its public access
    assert sandbox.click(finding_id, names.ACTION_BLOCK_PUBLIC_ACCESS, user_id=approver).status == 200
    sandbox.wait_for_state(finding_id, State.PUBLIC_ACCESS_BLOCKED)
    # THEN Security Hub shows it RESOLVED, naming the bucket and the approver
    _, note = _status(sandbox, finding_id, "us-east-1", "RESOLVED")
    assert f"s3://{bucket}" in note and approver in note

    # WHEN the fix is undone
    assert sandbox.click(finding_id, names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS, user_id=approver).status == 200
    sandbox.wait_for_state(finding_id, State.UNDONE)
    # THEN the finding is open again in Security Hub
    _, note = _status(sandbox, finding_id, "us-east-1", "NOTIFIED")
    assert "open again" in note
