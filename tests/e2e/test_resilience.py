"""What goes wrong on the way: Slack refusing for a while, events delivered twice, objects that cannot be
deleted. Slack's posting limit is on in this module (1 message per second per channel, bursts of 4).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from macie_chatops import names
from macie_chatops.states import State
from macie_chatops_sandbox.findings import macie_finding_event
from macie_chatops_sandbox.provision import QueueSettings
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from macie_chatops_sandbox.slack_standin import RateLimit
from tests.e2e.world import CREDENTIALS, PAYMENTS_CHANNEL, PAYMENTS_PROD, PERSONAL, message_of, report, upload


@pytest.fixture(scope="module")
def sandbox_settings() -> SandboxSettings:
    # Slack's real posting limit, and enough redeliveries (8 x 2 s) to outlast the fault windows below.
    return SandboxSettings(
        queues=QueueSettings(visibility_timeout_s=2, max_receive_count=8),
        slack_post_limit=RateLimit(per_second=1.0, burst=4),
        log_level="ERROR",
    )


def _messages_per_finding(sandbox: Sandbox, channel: str, finding_ids: list[str]) -> Counter[str]:
    """How many messages in ``channel`` show each finding (the id is in every message's context block)."""
    counts: Counter[str] = Counter()
    for message in sandbox.slack.messages(channel):
        blocks = json.dumps(message.revisions[0].blocks)
        for finding_id in finding_ids:
            if finding_id in blocks:
                counts[finding_id] += 1
    return counts


@pytest.mark.parametrize("status", [429, 500])
def test_slack_failing_for_a_while_still_delivers_every_message_exactly_once(sandbox: Sandbox, status: int) -> None:
    # GIVEN Slack answers chat.postMessage with HTTP `status` for the next 3 seconds
    sandbox.slack.fail_during("chat.postMessage", 3.0, status=status, retry_after=1)
    # WHEN six review findings arrive for one channel at once (also more than Slack's burst)
    findings = [report(sandbox, account_id=PAYMENTS_PROD, finding_type=PERSONAL) for _ in range(6)]
    ids = [f.finding_id for f in findings]
    for finding_id in ids:
        sandbox.wait_for_state(finding_id, State.PENDING_APPROVAL, timeout_s=60)
    sandbox.wait_until_idle(60)
    # THEN every finding has exactly one message, the one its record names, and nothing is dead-lettered
    assert _messages_per_finding(sandbox, PAYMENTS_CHANNEL, ids) == Counter({finding_id: 1 for finding_id in ids})
    for finding in findings:
        assert message_of(sandbox, finding.record(sandbox)).channel == PAYMENTS_CHANNEL
    assert sandbox.dlq_bodies()[names.INTAKE_DLQ_NAME] == []
    # AND Slack really did refuse some calls during the window
    assert any(call.status == status for call in sandbox.slack.history if call.method == "chat.postMessage")


def test_a_duplicate_delivery_makes_one_record_one_message_one_move(sandbox: Sandbox) -> None:
    # GIVEN an auto finding, delivered twice (EventBridge and SQS are at-least-once; Macie re-publishes)
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS)
    assert sandbox.publish(finding.event) == "member"
    sandbox.deliver_raw(json.dumps(finding.event))
    # WHEN the pipeline is idle
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    sandbox.wait_until_idle(60)
    # THEN one record, one message, one quarantined copy
    assert record.state is State.QUARANTINED
    assert _messages_per_finding(sandbox, PAYMENTS_CHANNEL, [finding.finding_id])[finding.finding_id] == 1
    assert len(sandbox.quarantined_copies(PAYMENTS_PROD, "us-east-1", finding.finding_id)) == 1
    assert [e.event for e in record.audit].count("received") <= 1


@pytest.mark.parametrize("lock", ["COMPLIANCE", "LEGAL_HOLD"])
def test_a_locked_object_is_blocked_and_both_copies_are_kept(sandbox: Sandbox, lock: str) -> None:
    # GIVEN an auto finding about an object version under Object Lock
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS, lock=lock)  # type: ignore[arg-type]
    # WHEN the remediator tries to quarantine it
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    sandbox.wait_until_idle(60)
    # THEN it is BLOCKED (never reported as quarantined), the source version is intact, and the copy is kept
    assert record.state is State.BLOCKED
    assert "lock" in f"{record.outcome} {record.outcome_detail}".lower()
    assert finding.location(sandbox) == "both"
    # AND the team's message says so
    message = message_of(sandbox, record)
    assert "quarantined" not in message.text.lower() or "not" in message.text.lower()


@pytest.mark.parametrize("change", ["changed", "missing"])
def test_an_object_changed_or_gone_since_the_finding_is_blocked_and_not_moved(sandbox: Sandbox, change: str) -> None:
    # GIVEN an auto finding about an object in an unversioned bucket, which its owner then rewrites or deletes
    stored = upload(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS, versioned=False)
    event = macie_finding_event(
        account_id=PAYMENTS_PROD,
        region="us-east-1",
        finding_type=CREDENTIALS,
        severity="High",
        stored=stored,
        finding_id=uuid.uuid4().hex,
    )
    s3 = sandbox.client("s3", PAYMENTS_PROD)
    if change == "changed":
        s3.put_object(Bucket=stored.bucket, Key=stored.key, Body=b"rewritten by its owner, no secrets now")
    else:
        s3.delete_object(Bucket=stored.bucket, Key=stored.key)
    # WHEN the finding arrives
    sandbox.publish(event)
    record = sandbox.wait_for_state(event["detail"]["id"], State.QUARANTINED, State.BLOCKED, State.FAILED)
    sandbox.wait_until_idle(60)
    # THEN it is BLOCKED for that reason and nothing was copied or deleted
    assert record.state is State.BLOCKED
    assert change in f"{record.outcome} {record.outcome_detail}".lower()
    assert sandbox.quarantined_copies(PAYMENTS_PROD, "us-east-1", record.finding_id) == []
    if change == "changed":
        assert s3.get_object(Bucket=stored.bucket, Key=stored.key)["Body"].read().startswith(b"rewritten")
