"""The sweeper's functional world: approvals dated in the past (no sleeping), the sweeper's Lambda handler
invoked as its schedule invokes it, the jobs it queued, and the metrics it published."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from macie_chatops import names
from macie_chatops.handlers import sweeper as sweeper_handler
from macie_chatops.states import State
from macie_chatops.store import FindingStore
from macie_chatops_sandbox.testkit.world import LambdaContext, approval_signer, aws_client
from tests.conftest import EVENTS_DIR
from tests.functional.remediator_world import TABLE, Delivery, RemediatorWorld, Seeded

SCHEDULED_EVENT = json.loads((EVENTS_DIR / "schedule" / "sweep-scheduled-event.json").read_text(encoding="utf-8"))
LONG_AGO = timedelta(hours=2)


def store_at(moment: Callable[[], datetime]) -> FindingStore:
    """The state store writing with another clock (to date approvals and sweeps in the past, without sleeping)."""
    return FindingStore(aws_client("dynamodb"), TABLE, clock=moment)


def approved_since(world: RemediatorWorld, finding_id: str, waited: timedelta, **seed: Any) -> Seeded:
    """A finding (object, record, Slack message) approved by U0ALICE ``waited`` ago, with no outcome since."""
    seeded = world.seed(finding_id, state=State.PENDING_APPROVAL, **seed)
    signer = approval_signer()
    assert signer is not None
    at = datetime.now(UTC) - waited
    stamp = signer.stamp(world.record(finding_id), action="quarantine", approver="U0ALICE", at=at)
    result = store_at(lambda: at).transition(
        finding_id,
        expected={State.PENDING_APPROVAL},
        target=State.APPROVED,
        actor="U0ALICE",
        event="click:remediate",
        updates={"approver": "U0ALICE", "approval": stamp},
    )
    assert result.applied
    return seeded


def run_sweeper() -> dict[str, Any]:
    """The sweeper's Lambda handler, invoked as its EventBridge schedule invokes it."""
    context = LambdaContext(names.SWEEPER_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60.0)
    answer: dict[str, Any] = sweeper_handler.lambda_handler(SCHEDULED_EVENT, context)
    return answer


def queued(url: str) -> list[Delivery]:
    """Every job on the remediation queue, taken off it."""
    sqs = aws_client("sqs")
    deliveries: list[Delivery] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            deliveries.append(Delivery(message["Body"]))
    return deliveries


def sweeper_metrics(out: str) -> dict[str, int]:
    """The sweeper's metric values in captured stdout (Powertools' EMF: one document per flush)."""
    values: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            data = json.loads(line)
            if data.get("service") == sweeper_handler.SERVICE:
                for directive in data["_aws"]["CloudWatchMetrics"]:
                    for metric in directive["Metrics"]:
                        value = data[metric["Name"]]
                        (values[metric["Name"]],) = value if isinstance(value, list) else [value]
    return values
