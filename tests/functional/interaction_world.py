"""The interaction endpoint's world, for its functional tests and its benchmark.

A real state table, remediation queue and Slack secret in moto; the Slack Web API stand-in (for user-group
lookups, and to prove no Slack message is written); the config from accounts.yaml as the bundled JSON; the
real ``lambda_handler`` fed real signed API Gateway events (``macie_chatops_sandbox.slack_clicks``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macie_chatops import names
from macie_chatops.config import Action, Config, load_config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, parse_event
from macie_chatops.jobs import RemediationJob
from macie_chatops.slack_client import SlackClient, build_web_client
from macie_chatops.slack_messages import build_review_message
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore, create_state_table
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.slack_clicks import signed_click_event
from macie_chatops_sandbox.slack_standin import EXAMPLE_BOT_TOKEN, SlackStandIn

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "sandbox-signing-secret-5e1f0c2a9b7d4e36"
TEAM_ID = "T0EXAMPLE"
PAYMENTS_CHANNEL = "C0PAYMENTS"
ANALYTICS_CHANNEL = "C0ANALYTIC"
MESSAGE_TS = "1700000000.000100"
SECOPS_GROUP = "S0SECOPS"
SECOPS_MEMBERS = ("U0BOB", "U0DAVE")
REVIEW_EVENT = ROOT / "tests" / "events" / "personal-review.json"
# Slack Web API methods that write: the endpoint calls none (it answers through the click's response_url).
SLACK_WRITES = ("chat.postMessage", "chat.update", "chat.postEphemeral")
# Every state a click can meet, and the legal path from RECEIVED to it.
PATHS: dict[State, tuple[State, ...]] = {
    State.PENDING_APPROVAL: (State.PENDING_APPROVAL,),
    State.NOTIFIED: (State.NOTIFIED,),
    State.IGNORED: (State.IGNORED,),
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
}


@functools.cache
def example_config() -> Config:
    return load_config(ROOT / "accounts.yaml")


@functools.cache
def review_summary() -> FindingSummary:
    finding = parse_event(json.loads(REVIEW_EVENT.read_text(encoding="utf-8")))
    assert isinstance(finding, Finding)
    return FindingSummary.of(finding, decide(finding, example_config()))


_clients: dict[tuple[str, str | None, str], Any] = {}


def _client(service: str, region: str) -> Any:
    """boto3 clients are slow to build; one per service and endpoint serves every test."""
    import os

    import boto3

    key = (service, os.environ.get("AWS_ENDPOINT_URL"), region)
    if key not in _clients:
        _clients[key] = boto3.client(service, region_name=region)  # type: ignore[call-overload]
    return _clients[key]


@dataclass(frozen=True)
class Snapshot:
    """What a click may change: every record, the queue, Slack's messages, the clicker's ephemeral replies."""

    records: dict[str, FindingRecord]
    queued: int
    slack_writes: int  # chat.* calls (the endpoint makes none)
    replaced: int  # messages replaced through a click's response_url
    ephemerals: int  # replies only the clicker sees, through a click's response_url


@dataclass
class World:
    config: Config
    store: FindingStore
    sqs: Any
    queue_url: str
    slack: SlackStandIn
    summary: FindingSummary
    secret: str = SIGNING_SECRET
    messages: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # finding -> (channel, ts)
    _slack: SlackClient | None = None

    # -- setup ----------------------------------------------------------------------------------------

    def seed(
        self,
        finding_id: str,
        *,
        state: State = State.PENDING_APPROVAL,
        team: str = "payments",
        channel: str = PAYMENTS_CHANNEL,
        approver: str = "U0ALICE",
    ) -> FindingRecord:
        """A finding of ``team`` posted to ``channel`` (a real message in the stand-in) and moved (legally)
        to ``state``."""
        summary = dataclasses.replace(self.summary, finding_id=finding_id, team=team, channel=channel)
        ts = self._slack_client().post(channel, build_review_message(summary, reason="Personal data needs review"))
        self.messages[finding_id] = (channel, ts)
        self.store.create_received(
            finding_id,
            event_id=f"event-{finding_id}",
            action=Action.REVIEW,
            reason="Personal data needs review",
            actor="finding-handler",
            account_id=summary.account_id,
            team=team,
            channel=channel,
            summary=summary,
        )
        for step in PATHS[state]:
            record = self.store.get(finding_id)
            assert record is not None
            actor = approver if step in (State.APPROVED, State.DISMISSED, State.RESTORE_REQUESTED) else "seed"
            self.store.transition(
                finding_id,
                expected={record.state},
                target=step,
                actor=actor,
                event="seed",
                updates={"approver": approver} if step is State.APPROVED else None,
            )
            if step is State.PENDING_APPROVAL:
                self.store.set_slack_message(finding_id, channel=channel, ts=ts, actor="finding-handler")
        record = self.store.get(finding_id)
        assert record is not None and record.state is state
        return record

    def _slack_client(self) -> SlackClient:
        if self._slack is None:
            self._slack = SlackClient(build_web_client(EXAMPLE_BOT_TOKEN, base_url=self.slack.base_url))
        return self._slack

    # -- clicks ---------------------------------------------------------------------------------------

    def response_url(self, finding_id: str) -> str:
        """A fresh response_url for a click on the finding's message (a made-up message if none)."""
        channel, ts = self.messages.get(finding_id, (PAYMENTS_CHANNEL, MESSAGE_TS))
        return self.slack.response_url(channel, ts)

    def click_event(
        self,
        action_id: str,
        finding_id: str,
        user_id: str,
        *,
        channel_id: str = PAYMENTS_CHANNEL,
        team_id: str = TEAM_ID,
        **kwargs: Any,
    ) -> dict[str, Any]:
        kwargs.setdefault("response_url", self.response_url(finding_id))
        return signed_click_event(
            self.secret,
            action_id=action_id,
            finding_id=finding_id,
            user_id=user_id,
            team_id=team_id,
            channel_id=channel_id,
            **kwargs,
        )

    @staticmethod
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        from macie_chatops.handlers.interaction import lambda_handler

        return lambda_handler(event, None)

    def click(self, action_id: str, finding_id: str, user_id: str, **kwargs: Any) -> dict[str, Any]:
        return self.invoke(self.click_event(action_id, finding_id, user_id, **kwargs))

    # -- observation ----------------------------------------------------------------------------------

    def records(self) -> dict[str, FindingRecord]:
        out: dict[str, FindingRecord] = {}
        paginator = self.store._client.get_paginator("scan")
        for page in paginator.paginate(TableName=names.STATE_TABLE_NAME, ConsistentRead=True):
            for item in page["Items"]:
                record = FindingRecord.from_item(item)
                out[record.finding_id] = record
        return out

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def jobs(self) -> list[RemediationJob]:
        """Take every queued job off the queue."""
        jobs: list[RemediationJob] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = batch.get("Messages", [])
            if not messages:
                return jobs
            for message in messages:
                jobs.append(RemediationJob.from_message(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def slack_writes(self) -> int:
        return sum(self.slack.request_count(method) for method in SLACK_WRITES)

    def replaced(self) -> int:
        channels = {channel for channel, _ in self.messages.values()}
        return sum(
            1
            for channel in channels
            for message in self.slack.messages(channel)
            for revision in message.revisions
            if revision.method == "response_url"
        )

    def ephemerals(self) -> int:
        return sum(len(self.slack.ephemeral(channel)) for channel in (PAYMENTS_CHANNEL, ANALYTICS_CHANNEL))

    def snapshot(self) -> Snapshot:
        return Snapshot(self.records(), self.queued(), self.slack_writes(), self.replaced(), self.ephemerals())


def build_world(
    *,
    config_dir: Path,
    setenv: Callable[[str, str], None],
    slack: SlackStandIn,
    region: str = "us-east-1",
) -> World:
    """Create the table, the queue and the secret in the AWS endpoint boto3 is pointed at, and set the
    interaction handler's environment through ``setenv`` (monkeypatch.setenv, or os.environ.__setitem__)."""
    config = example_config()
    config_file = config_dir / "config.json"
    config_file.write_text(config.to_json(), encoding="utf-8")
    dynamodb = _client("dynamodb", region)
    create_state_table(dynamodb, names.STATE_TABLE_NAME)
    sqs = _client("sqs", region)
    queue_url = sqs.create_queue(QueueName=names.REMEDIATION_QUEUE_NAME)["QueueUrl"]
    secrets = _client("secretsmanager", region)
    secret_arn = secrets.create_secret(
        Name=config.slack.secret_name,
        SecretString=json.dumps(
            {names.SLACK_SECRET_BOT_TOKEN: EXAMPLE_BOT_TOKEN, names.SLACK_SECRET_SIGNING_SECRET: SIGNING_SECRET}
        ),
    )["ARN"]
    environment = {
        names.ENV_STATE_TABLE: names.STATE_TABLE_NAME,
        names.ENV_REMEDIATION_QUEUE_URL: queue_url,
        names.ENV_SLACK_SECRET_ARN: secret_arn,
        names.ENV_CONFIG_PATH: str(config_file),
        names.ENV_SLACK_API_URL: slack.base_url,
    }
    for key, value in environment.items():
        setenv(key, value)
    from macie_chatops.handlers import interaction as handler

    handler.clear_caches()
    return World(
        config=config,
        store=FindingStore(dynamodb, names.STATE_TABLE_NAME),
        sqs=sqs,
        queue_url=queue_url,
        slack=slack,
        summary=review_summary(),
    )


def standin() -> SlackStandIn:
    """The Slack stand-in with accounts.yaml's workspace, its channels and the S0SECOPS group; no posting
    limit (the benchmark posts a message per seeded finding)."""
    return SlackStandIn(
        team_id=TEAM_ID,
        bot_token=EXAMPLE_BOT_TOKEN,
        channels=(PAYMENTS_CHANNEL, ANALYTICS_CHANNEL),
        usergroups={SECOPS_GROUP: SECOPS_MEMBERS},
        post_limit=None,
        update_limit=None,
    )


def without_audit(records: MutableMapping[str, FindingRecord]) -> dict[str, FindingRecord]:
    """Records minus what a refused click legitimately adds (its audit line and the update time)."""
    return {key: dataclasses.replace(record, audit=(), updated_at="") for key, record in records.items()}
