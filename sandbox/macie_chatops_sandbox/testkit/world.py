"""Handler worlds on moto and the Slack stand-in, for the functional tests and the benchmarks.

A handler's resources and environment (``provision_handler``), what Lambda hands a handler
(``LambdaContext``, ``SqsDelivery``), findings seeded as the finding handler leaves them (``seed_review``)
and the metrics a handler printed (``emf_metrics``). boto3 is pointed at moto through the environment
(AWS_ENDPOINT_URL and fake credentials), which the caller sets.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsLambdaContext

from macie_chatops import names
from macie_chatops.approvals import ApprovalSigner, ApprovalVerifier, action_for
from macie_chatops.config import Action, Config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, parse_event
from macie_chatops.jobs import RemediationJob
from macie_chatops.slack_client import SlackClient, build_web_client
from macie_chatops.slack_messages import build_review_message
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore, RecordUpdates, create_state_table
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.slack_standin import EXAMPLE_BOT_TOKEN, SlackStandIn

REGION = "us-east-1"
SECURITY_ACCOUNT = "210987654321"
SIGNING_SECRET = "sandbox-signing-secret-5e1f0c2a9b7d4e36"
REVIEW_REASON = "Personal data needs review"
# Every state a finding can be seeded in, and the legal path from RECEIVED to it.
SEED_PATHS: dict[State, tuple[State, ...]] = {
    State.PENDING_APPROVAL: (State.PENDING_APPROVAL,),
    State.NOTIFIED: (State.NOTIFIED,),
    State.IGNORED: (State.IGNORED,),
    State.DUPLICATE: (State.DUPLICATE,),
    State.APPROVED: (State.PENDING_APPROVAL, State.APPROVED),
    State.DISMISSED: (State.PENDING_APPROVAL, State.DISMISSED),
    State.QUARANTINED: (State.PENDING_APPROVAL, State.APPROVED, State.QUARANTINED),
    State.BLOCKED: (State.PENDING_APPROVAL, State.APPROVED, State.BLOCKED),
    State.FAILED: (State.PENDING_APPROVAL, State.APPROVED, State.FAILED),
    State.RESTORE_REQUESTED: (State.PENDING_APPROVAL, State.APPROVED, State.QUARANTINED, State.RESTORE_REQUESTED),
    State.RESTORED: (
        State.PENDING_APPROVAL,
        State.APPROVED,
        State.QUARANTINED,
        State.RESTORE_REQUESTED,
        State.RESTORED,
    ),
    # A policy finding's fix and its Undo (docs/architecture.md §18).
    State.PUBLIC_ACCESS_BLOCKED: (State.PENDING_APPROVAL, State.APPROVED, State.PUBLIC_ACCESS_BLOCKED),
    State.UNDO_REQUESTED: (State.PENDING_APPROVAL, State.APPROVED, State.PUBLIC_ACCESS_BLOCKED, State.UNDO_REQUESTED),
    State.UNDONE: (
        State.PENDING_APPROVAL,
        State.APPROVED,
        State.PUBLIC_ACCESS_BLOCKED,
        State.UNDO_REQUESTED,
        State.UNDONE,
    ),
}
# The steps a person takes (by clicking); the others are the handlers'.
_CLICKED = frozenset({State.APPROVED, State.DISMISSED, State.RESTORE_REQUESTED, State.UNDO_REQUESTED})

_sessions: dict[str, Any] = {}
_clients: dict[tuple[str, str | None, str], Any] = {}


def shared_session(region: str = REGION) -> Any:
    """One boto3 session for every test in the process: service models load once, not once per test.

    It reads the fake credentials and the endpoint from the environment the ``aws`` fixture sets, which
    is the same for every test; per-account clients pass their assumed-role credentials explicitly."""
    session = _sessions.get(region)
    if session is None:
        import boto3

        session = _sessions[region] = boto3.Session(region_name=region)
    return session


def aws_client(service: str, region: str = REGION) -> Any:
    """boto3 clients are slow to build; one per service, endpoint and region serves every test."""
    key = (service, os.environ.get("AWS_ENDPOINT_URL"), region)
    if key not in _clients:
        _clients[key] = shared_session(region).client(service, region_name=region)
    return _clients[key]


# -- a handler's resources and environment ----------------------------------------------------------------


@dataclass(frozen=True)
class HandlerResources:
    store: FindingStore
    secret_arn: str
    config_file: Path
    approval_key_id: str = ""


def create_approval_key(region: str = REGION) -> str:
    """The HMAC key approvals are signed with (docs/architecture.md §23): its ARN."""
    metadata = aws_client("kms", region).create_key(
        KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Description="macie-chatops approvals"
    )["KeyMetadata"]
    return str(metadata["Arn"])


def approval_signer(region: str = REGION) -> ApprovalSigner | None:
    """A signer with the approval key the environment names (``provision_handler`` sets it), else None."""
    key_id = os.environ.get(names.ENV_APPROVAL_KEY_ID)
    return ApprovalSigner(aws_client("kms", region), key_id) if key_id else None


def approval_verifier(region: str = REGION, *, session: Any = None) -> ApprovalVerifier:
    """A verifier with the approval key the environment names (``provision_handler`` sets it), through
    ``session``'s credentials when given (a principal of moto's IAM enforcement)."""
    kms = aws_client("kms", region) if session is None else session.client("kms", region_name=region)
    return ApprovalVerifier(kms, os.environ[names.ENV_APPROVAL_KEY_ID])


def create_remediation_queue(region: str = REGION) -> str:
    url: str = aws_client("sqs", region).create_queue(QueueName=names.REMEDIATION_QUEUE_NAME)["QueueUrl"]
    return url


def provision_handler(
    *,
    config: Config,
    config_dir: Path,
    table: str,
    slack: SlackStandIn,
    setenv: Callable[[str, str], None],
    queue_url: str | None = None,
    region: str = REGION,
) -> HandlerResources:
    """Create the state table and the Slack secret in the AWS endpoint boto3 is pointed at, write ``config`` as
    the bundled JSON, and set a handler's environment through ``setenv`` (monkeypatch.setenv, or
    os.environ.__setitem__): the remediation queue's URL too when ``queue_url`` is given."""
    config_file = config_dir / "config.json"
    config_file.write_text(config.to_json(), encoding="utf-8")
    dynamodb = aws_client("dynamodb", region)
    create_state_table(dynamodb, table)
    secret_arn: str = aws_client("secretsmanager", region).create_secret(
        Name=config.slack.secret_name,
        SecretString=json.dumps(
            {names.SLACK_SECRET_BOT_TOKEN: EXAMPLE_BOT_TOKEN, names.SLACK_SECRET_SIGNING_SECRET: SIGNING_SECRET}
        ),
    )["ARN"]
    approval_key_id = create_approval_key(region)
    environment = {
        names.ENV_STATE_TABLE: table,
        names.ENV_SLACK_SECRET_ARN: secret_arn,
        names.ENV_CONFIG_PATH: str(config_file),
        names.ENV_SLACK_API_URL: slack.base_url,
        names.ENV_APPROVAL_KEY_ID: approval_key_id,
    }
    if queue_url is not None:
        environment[names.ENV_REMEDIATION_QUEUE_URL] = queue_url
    for key, value in environment.items():
        setenv(key, value)
    return HandlerResources(FindingStore(dynamodb, table), secret_arn, config_file, approval_key_id)


def drain_jobs(sqs: Any, queue_url: str) -> list[RemediationJob]:
    """Take every queued job off the remediation queue."""
    jobs: list[RemediationJob] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = batch.get("Messages", [])
        if not messages:
            return jobs
        for message in messages:
            jobs.append(RemediationJob.from_message(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# -- what Lambda hands an SQS-triggered handler -----------------------------------------------------------


class LambdaContext(PowertoolsLambdaContext):
    """What Lambda passes: identity fields Powertools logs, and the invocation's remaining time."""

    def __init__(self, function_name: str, *, memory_limit_in_mb: int, timeout_s: float) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{REGION}:{SECURITY_ACCOUNT}:function:{function_name}"
        self._memory_limit_in_mb = memory_limit_in_mb
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = f"2026/01/01/[$LATEST]{self._aws_request_id.replace('-', '')}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class SqsDelivery:
    """One message of a queue (``queue_name``, sent by ``sender_id``) as Lambda sees it; ``again()`` is the
    same message redelivered."""

    queue_name: ClassVar[str]
    sender_id: ClassVar[str]

    body: str
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    receive_count: int = 1

    def again(self) -> Self:
        return dataclasses.replace(self, receive_count=self.receive_count + 1)

    def record(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "receiptHandle": f"handle-{self.message_id}-{self.receive_count}",
            "body": self.body,
            "attributes": {
                "ApproximateReceiveCount": str(self.receive_count),
                "SentTimestamp": "1795790000000",
                "SenderId": self.sender_id,
                "ApproximateFirstReceiveTimestamp": "1795790000001",
            },
            "messageAttributes": {},
            "md5OfBody": "0" * 32,
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{SECURITY_ACCOUNT}:{self.queue_name}",
            "awsRegion": REGION,
        }


def invoke_batch(
    lambda_handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    deliveries: tuple[SqsDelivery, ...],
    context: LambdaContext,
) -> list[str]:
    """Run an SQS batch handler on one batch; the message ids it reported as failed."""
    response = lambda_handler({"Records": [d.record() for d in deliveries]}, context)
    assert set(response) == {"batchItemFailures"}
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


# -- seeding findings ----------------------------------------------------------------------------------------


def review_summary(config: Config, event: dict[str, Any]) -> FindingSummary:
    """The summary of a review finding's ``event`` (e.g. tests/events/personal-review.json) under ``config``."""
    finding = parse_event(event)
    assert isinstance(finding, Finding)
    return FindingSummary.of(finding, decide(finding, config))


def slack_client(slack: SlackStandIn) -> SlackClient:
    """A Slack client with the bot token, talking to the stand-in."""
    return SlackClient(build_web_client(EXAMPLE_BOT_TOKEN, base_url=slack.base_url))


def seed_review(
    store: FindingStore,
    slack: SlackStandIn,
    summary: FindingSummary,
    *,
    state: State,
    approver: str = "U0ALICE",
    signer: ApprovalSigner | None = None,
) -> tuple[FindingRecord, str]:
    """``summary``'s finding as the finding handler leaves a review finding (received, its review message
    posted to ``summary.channel``), then moved along the legal path to ``state``; ``approver`` takes the
    steps people take, each approval signed as the interaction endpoint signs it (``signer``, else the key the
    environment names; unsigned when there is none). Returns the record and the message's ts."""
    signer = signer or approval_signer()
    finding_id = summary.finding_id
    ts = slack_client(slack).post(summary.channel, build_review_message(summary, reason=REVIEW_REASON))
    store.create_received(
        finding_id,
        event_id=f"event-{finding_id}",
        action=Action.REVIEW,
        reason=REVIEW_REASON,
        actor="finding-handler",
        account_id=summary.account_id,
        team=summary.team,
        channel=summary.channel,
        summary=summary,
    )
    for step in SEED_PATHS[state]:
        record = store.get(finding_id)
        assert record is not None
        store.transition(
            finding_id,
            expected={record.state},
            target=step,
            actor=approver if step in _CLICKED else "seed",
            event="seed",
            updates=_seed_updates(record, step, approver, signer),
        )
        if step is State.PENDING_APPROVAL:
            store.set_slack_message(finding_id, channel=summary.channel, ts=ts, actor="finding-handler")
    record = store.get(finding_id)
    assert record is not None and record.state is state, (finding_id, record)
    return record, ts


def _seed_updates(record: FindingRecord, step: State, approver: str, signer: ApprovalSigner | None) -> RecordUpdates:
    """What the step's real writer stores with it: the approver of an approval, and its signed approval."""
    updates: RecordUpdates = {"approver": approver} if step is State.APPROVED else {}
    kind = {State.APPROVED: "quarantine", State.RESTORE_REQUESTED: "restore"}.get(step)
    if step is State.UNDO_REQUESTED:
        kind = "undo_block_public_access"
    action = action_for(record, kind) if kind else None
    if signer is not None and action is not None:
        updates["approval"] = signer.stamp(record, action=action, approver=approver, at=datetime.now(UTC))
    return updates


# -- observing -----------------------------------------------------------------------------------------------


def emf_metrics(out: str) -> list[dict[str, Any]]:
    """Every EMF metric in captured stdout, flattened to {name, namespace, dimension: value...}."""
    metrics = []
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        data = json.loads(line)
        for directive in data["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: data[name] for group in directive["Dimensions"] for name in group}
            for metric in directive["Metrics"]:
                metrics.append({"name": metric["Name"], "namespace": directive["Namespace"], **dimensions})
    return metrics
