"""The remediator's world: the mover's world plus a state table, the Slack stand-in with the findings'
messages, a Slack secret, the config (multipart threshold lowered) and SQS deliveries for the real handler.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.handlers import remediation as handler
from macie_chatops.jobs import RemediationJob
from macie_chatops.quarantine_plan import MoveStep
from macie_chatops.remediation import RemediationDependencies
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.slack_standin import RecordedMessage, SlackStandIn
from macie_chatops_sandbox.testkit.world import (
    LambdaContext,
    SqsDelivery,
    approval_signer,
    approval_verifier,
    invoke_batch,
    provision_handler,
    review_summary,
    seed_review,
    shared_session,
    slack_client,
)
from tests.conftest import ROOT, AwsSandbox, load_event
from tests.functional.move_world import MEMBER_A, REGION, MoveWorld, build_move_world

TABLE = "remediator-test-findings"
PAYMENTS = "C0PAYMENTS"
SOURCE = "payments-prod-exports"


class Delivery(SqsDelivery):
    """One remediation queue message as Lambda sees it."""

    queue_name = names.REMEDIATION_QUEUE_NAME
    sender_id = "AROAREMEDIATOR"


def job(kind: str, finding_id: str, by: str = "U0ALICE") -> Delivery:
    message = RemediationJob.model_validate(
        {"kind": kind, "finding_id": finding_id, "requested_by": by, "requested_at": datetime.now(UTC)}
    )
    return Delivery(message.to_message())


class Counter:
    def __init__(self) -> None:
        self.counts: list[tuple[str, dict[str, str]]] = []

    def count(self, name: str, **dimensions: str) -> None:
        self.counts.append((name, dimensions))


@dataclass
class Seeded:
    finding_id: str
    key: str
    version_id: str
    body: bytes
    ts: str
    summary: FindingSummary


@dataclass
class RemediatorWorld:
    moves: MoveWorld
    store: FindingStore
    slack: SlackStandIn
    config: Config
    _template: FindingSummary

    # -- setup ----------------------------------------------------------------------------------------

    def seed(
        self,
        finding_id: str,
        *,
        key: str = "exports/customers.csv",
        body: bytes = b"name,ssn\nAda,078-05-1120\n",
        state: State = State.APPROVED,
        approver: str = "U0ALICE",
        versioned: bool = True,
        bucket: str = SOURCE,
        **put: Any,
    ) -> Seeded:
        """An object in member A, its finding's record moved (legally) to ``state``, its Slack message posted."""
        if bucket not in {b["Name"] for b in self.moves.s3(MEMBER_A).list_buckets()["Buckets"]}:
            lock = any(name.startswith("ObjectLock") for name in put)
            self.moves.bucket(MEMBER_A, bucket, versioned=versioned, object_lock=lock)
        version, etag = self.moves.put(MEMBER_A, bucket, key, body, **put)
        summary = dataclasses.replace(
            self._template,
            finding_id=finding_id,
            bucket=bucket,
            key=key,
            version_id=version,
            etag=etag,
            size=len(body),
        )
        _, ts = seed_review(self.store, self.slack, summary, state=state, approver=approver)
        return Seeded(finding_id, key, version, body, ts, summary)

    def request_restore(self, finding_id: str, by: str = "U0ALICE") -> None:
        """What the interaction endpoint does on a Restore click (before it queues the job), approval signed."""
        signer = approval_signer()
        assert signer is not None
        stamp = signer.stamp(self.record(finding_id), action="restore", approver=by, at=datetime.now(UTC))
        result = self.store.transition(
            finding_id,
            expected={State.QUARANTINED},
            target=State.RESTORE_REQUESTED,
            actor=by,
            event="click:restore",
            updates={"approval": stamp},
        )
        assert result.applied, result.record.state

    # -- running --------------------------------------------------------------------------------------

    def invoke(self, *deliveries: Delivery, timeout_s: float = 900.0) -> list[str]:
        """The real Lambda handler on one batch; the message ids it reported as failed."""
        context = LambdaContext(names.REMEDIATOR_FUNCTION_NAME, memory_limit_in_mb=1024, timeout_s=timeout_s)
        return invoke_batch(handler.lambda_handler, deliveries, context)

    def deps(
        self,
        *,
        checkpoint: Callable[[MoveStep], None] | None = None,
        sessions: Any = None,
        store: FindingStore | None = None,
        kms_session: Any = None,
    ) -> RemediationDependencies:
        """The core's dependencies built by hand (for crash points and injected failures); ``kms_session``: the
        credentials the approvals are verified with (under moto's IAM enforcement)."""
        from macie_chatops.sessions import MemberSessions

        return RemediationDependencies(
            config=self.config,
            store=store or self.store,
            sessions=sessions or MemberSessions(role_name="macie-chatops-remediation", base_session=shared_session()),
            slack=slack_client(self.slack),
            metrics=Counter(),
            verifier=approval_verifier(session=kms_session),
            checkpoint=checkpoint,
        )

    # -- observation ----------------------------------------------------------------------------------

    def record(self, finding_id: str) -> FindingRecord:
        record = self.store.get(finding_id)
        assert record is not None, finding_id
        return record

    def message(self, seeded: Seeded) -> RecordedMessage:
        return self.slack.message(PAYMENTS, seeded.ts)

    def quarantine_copies(self, seeded: Seeded) -> int:
        from macie_chatops.names import quarantine_bucket_name
        from macie_chatops.quarantine_plan import quarantine_key

        bucket = quarantine_bucket_name(MEMBER_A, REGION)
        return len(self.moves.versions(MEMBER_A, bucket, quarantine_key(seeded.finding_id, SOURCE, seeded.key)))


def message_text(message: RecordedMessage) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


@contextmanager
def remediator_world(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RemediatorWorld]:
    """The world, with the handler's environment set and its caches cleared before and after."""
    base = load_config(ROOT / "accounts.yaml")
    config = base.model_copy(update={"quarantine": base.quarantine.model_copy(update={"multipart_threshold_mb": 5})})
    resources = provision_handler(
        config=config, config_dir=tmp_path, table=TABLE, slack=slack, setenv=monkeypatch.setenv, region=aws.region
    )
    handler.clear_caches()
    try:
        summary = review_summary(config, load_event("personal-review"))
        yield RemediatorWorld(build_move_world(aws), resources.store, slack, config, summary)
    finally:
        handler.clear_caches()
