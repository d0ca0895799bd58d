"""The remediator's world: the mover's world plus a state table, the Slack stand-in with the findings'
messages, a Slack secret, the config (multipart threshold lowered) and SQS deliveries for the real handler.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Action, Config, load_config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, parse_event
from macie_chatops.handlers import remediator as handler
from macie_chatops.jobs import RemediationJob
from macie_chatops.quarantine_plan import MoveStep
from macie_chatops.remediation import RemediationDependencies
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore, create_state_table
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.slack_standin import EXAMPLE_BOT_TOKEN, RecordedMessage, SlackStandIn
from tests.conftest import EVENTS_DIR, ROOT, AwsSandbox
from tests.functional.move_world import MEMBER_A, REGION, MoveWorld, build_move_world, shared_session

TABLE = "remediator-test-findings"
PAYMENTS = "C0PAYMENTS"
SOURCE = "payments-prod-exports"


@dataclass
class LambdaContext:
    timeout_s: float = 900.0
    function_name: str = names.REMEDIATOR_FUNCTION_NAME
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:210987654321:function:{names.REMEDIATOR_FUNCTION_NAME}"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@dataclass
class Delivery:
    """One remediation queue message as Lambda sees it; ``again()`` is the same message redelivered."""

    body: str
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    receive_count: int = 1

    def again(self) -> Delivery:
        return Delivery(self.body, self.message_id, self.receive_count + 1)

    def record(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "receiptHandle": f"handle-{self.message_id}-{self.receive_count}",
            "body": self.body,
            "attributes": {
                "ApproximateReceiveCount": str(self.receive_count),
                "SentTimestamp": "1795790000000",
                "SenderId": "AROAREMEDIATOR",
                "ApproximateFirstReceiveTimestamp": "1795790000001",
            },
            "messageAttributes": {},
            "md5OfBody": "0" * 32,
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:us-east-1:210987654321:{names.REMEDIATION_QUEUE_NAME}",
            "awsRegion": "us-east-1",
        }


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
        self.store.create_received(
            finding_id,
            event_id=f"event-{finding_id}",
            action=Action.REVIEW,
            reason="Personal data needs review",
            actor="finding-handler",
            account_id=MEMBER_A,
            team="payments",
            channel=PAYMENTS,
            summary=summary,
        )
        from macie_chatops.slack_client import SlackClient, build_web_client
        from macie_chatops.slack_messages import build_review_message

        ts = SlackClient(build_web_client(EXAMPLE_BOT_TOKEN, base_url=self.slack.base_url)).post(
            PAYMENTS, build_review_message(summary, reason="review")
        )
        self.store.set_slack_message(finding_id, channel=PAYMENTS, ts=ts, actor="finding-handler")
        path = {
            State.PENDING_APPROVAL: (State.PENDING_APPROVAL,),
            State.APPROVED: (State.PENDING_APPROVAL, State.APPROVED),
            State.DISMISSED: (State.PENDING_APPROVAL, State.DISMISSED),
        }[state]
        for step in path:
            record = self.record(finding_id)
            self.store.transition(
                finding_id,
                expected={record.state},
                target=step,
                actor=approver if step is State.APPROVED else "finding-handler",
                event="seed",
                updates={"approver": approver} if step is State.APPROVED else None,
            )
        return Seeded(finding_id, key, version, body, ts, summary)

    def request_restore(self, finding_id: str, by: str = "U0ALICE") -> None:
        """What the interaction endpoint does on a Restore click (before it queues the job)."""
        result = self.store.transition(
            finding_id, expected={State.QUARANTINED}, target=State.RESTORE_REQUESTED, actor=by, event="click:restore"
        )
        assert result.applied, result.record.state

    # -- running --------------------------------------------------------------------------------------

    def invoke(self, *deliveries: Delivery, timeout_s: float = 900.0) -> list[str]:
        """The real Lambda handler on one batch; the message ids it reported as failed."""
        event = {"Records": [d.record() for d in deliveries]}
        response = handler.lambda_handler(event, LambdaContext(timeout_s=timeout_s))
        assert set(response) == {"batchItemFailures"}
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    def deps(
        self,
        *,
        checkpoint: Callable[[MoveStep], None] | None = None,
        sessions: Any = None,
        store: FindingStore | None = None,
    ) -> RemediationDependencies:
        """The core's dependencies built by hand (for crash points and injected failures)."""
        from macie_chatops.sessions import MemberSessions
        from macie_chatops.slack_client import SlackClient, build_web_client

        return RemediationDependencies(
            config=self.config,
            store=store or self.store,
            sessions=sessions or MemberSessions(role_name="macie-chatops-remediation", base_session=shared_session()),
            slack=SlackClient(build_web_client(EXAMPLE_BOT_TOKEN, base_url=self.slack.base_url)),
            metrics=Counter(),
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


def _template(config: Config) -> FindingSummary:
    raw = json.loads((EVENTS_DIR / "personal-review.json").read_text(encoding="utf-8"))
    finding = parse_event(raw)
    assert isinstance(finding, Finding)
    return FindingSummary.of(finding, decide(finding, config))


@contextmanager
def remediator_world(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RemediatorWorld]:
    """The world, with the handler's environment set and its caches cleared before and after."""
    base = load_config(ROOT / "accounts.yaml")
    config = base.model_copy(update={"quarantine": base.quarantine.model_copy(update={"multipart_threshold_mb": 5})})
    session = shared_session()
    dynamodb = session.client("dynamodb", region_name=aws.region)
    create_state_table(dynamodb, TABLE)
    secret_arn = session.client("secretsmanager", region_name=aws.region).create_secret(
        Name="macie-chatops/slack",
        SecretString=json.dumps({"bot_token": EXAMPLE_BOT_TOKEN, "signing_secret": "test-signing-secret"}),
    )["ARN"]
    config_file = tmp_path / "config.json"
    config_file.write_text(config.to_json(), encoding="utf-8")
    monkeypatch.setenv(names.ENV_STATE_TABLE, TABLE)
    monkeypatch.setenv(names.ENV_SLACK_SECRET_ARN, secret_arn)
    monkeypatch.setenv(names.ENV_CONFIG_PATH, str(config_file))
    monkeypatch.setenv(names.ENV_SLACK_API_URL, slack.base_url)
    handler.clear_caches()
    try:
        yield RemediatorWorld(build_move_world(aws), FindingStore(dynamodb, TABLE), slack, config, _template(config))
    finally:
        handler.clear_caches()
