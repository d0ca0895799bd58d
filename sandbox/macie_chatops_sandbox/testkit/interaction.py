"""The interaction endpoint's world, for its functional tests and its benchmark.

A real state table, remediation queue and Slack secret in moto; the Slack Web API stand-in (for user-group
lookups, and to prove no Slack message is written); the config as the bundled JSON; the real
``lambda_handler`` fed real signed API Gateway events (``macie_chatops_sandbox.slack_clicks``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from macie_chatops import names
from macie_chatops.config import Action, Config
from macie_chatops.group_store import GroupStore, NewMember
from macie_chatops.groups import GroupKey
from macie_chatops.jobs import RemediationJob
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.slack_clicks import api_gateway_event, signed_click_event, signed_form
from macie_chatops_sandbox.slack_standin import EXAMPLE_BOT_TOKEN, SlackStandIn
from macie_chatops_sandbox.testkit import world as shared
from macie_chatops_sandbox.testkit.world import SIGNING_SECRET, LambdaContext

TEAM_ID = "T0EXAMPLE"
PAYMENTS_CHANNEL = "C0PAYMENTS"
ANALYTICS_CHANNEL = "C0ANALYTIC"
MESSAGE_TS = "1700000000.000100"
SECOPS_GROUP = "S0SECOPS"
SECOPS_MEMBERS = ("U0BOB", "U0DAVE")
# Slack Web API methods that write: a click calls none (it answers through its response_url); a dismissal
# form's submission updates the finding's message with chat.update (it has no response_url).
SLACK_WRITES = ("chat.postMessage", "chat.update", "chat.postEphemeral")
DISMISS_REASON = "Synthetic test data: no real customer data."


@dataclass(frozen=True)
class Snapshot:
    """What a click may change: every record, the queue, Slack's messages, the clicker's ephemeral replies."""

    records: dict[str, FindingRecord]
    queued: int
    slack_writes: int  # chat.* calls (a click makes none; a dismissal form's submission, one chat.update)
    replaced: int  # messages replaced through a click's response_url
    ephemerals: int  # replies only the clicker sees, through a click's response_url


@dataclass
class World:
    config: Config
    store: FindingStore
    dynamodb: Any
    sqs: Any
    queue_url: str
    slack: SlackStandIn
    summary: FindingSummary
    secret: str = SIGNING_SECRET
    messages: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # finding -> (channel, ts)
    groups: GroupStore | None = None

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
        record, ts = shared.seed_review(self.store, self.slack, summary, state=state, approver=approver)
        self.messages[finding_id] = (channel, ts)
        return record

    def seed_group(
        self, count: int, *, prefix: str = "flood", team: str = "payments", channel: str = PAYMENTS_CHANNEL
    ) -> tuple[str, list[str]]:
        """A review group of ``count`` findings as the intake leaves it (docs/architecture.md §22): the first with
        its own message (now the group's digest), the others awaiting approval with no message of their own, each
        joined in order (seq 1..count). Returns the group id and the finding ids in seq order."""
        groups = self.group_store()
        finding_ids: list[str] = []
        group_id = ""
        for seq in range(1, count + 1):
            finding_id = f"{prefix}-{seq:05d}"
            summary = dataclasses.replace(
                self.summary, finding_id=finding_id, key=f"exports/{prefix}/{seq:05d}.csv", team=team, channel=channel
            )
            if seq == 1:
                self.seed(finding_id, team=team, channel=channel)
            else:
                _seed_member(self.store, summary)
            key = GroupKey(channel, summary.account_id, summary.bucket, summary.finding_type, Action.REVIEW)
            joined = groups.join(
                key,
                NewMember(finding_id, summary.key, summary.severity, State.PENDING_APPROVAL),
                account_name=summary.account_name,
                window=timedelta(hours=1),
                max_age=timedelta(hours=2),
            )
            group_id = joined.group_id
            finding_ids.append(finding_id)
        digest_channel, digest_ts = self.messages[finding_ids[0]]
        groups.record_digest(group_id, channel=digest_channel, ts=digest_ts)
        return group_id, finding_ids

    def group_store(self) -> GroupStore:
        if self.groups is None:
            self.groups = GroupStore(self.dynamodb, names.STATE_TABLE_NAME)
        return self.groups

    def bulk_click(
        self, action_id: str, binding: str, user_id: str, *, channel_id: str = PAYMENTS_CHANNEL, **kwargs: Any
    ) -> dict[str, Any]:
        """A click on a digest's "Quarantine all N" / "Dismiss all N" whose value is ``binding`` (its encoding)."""
        kwargs.setdefault("response_url", self.slack.response_url(channel_id, MESSAGE_TS))
        if action_id == names.ACTION_BULK_DISMISS:
            kwargs.setdefault("trigger_id", self.slack.trigger_id(user_id))
        event = signed_click_event(
            self.secret,
            action_id=action_id,
            finding_id=binding,
            user_id=user_id,
            team_id=kwargs.pop("team_id", TEAM_ID),
            channel_id=channel_id,
            **kwargs,
        )
        return self.invoke(event)

    def bulk_dismiss(
        self,
        binding: str,
        user_id: str,
        *,
        reason: str | None = DISMISS_REASON,
        scope: str | None = None,
        duration: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Click "Dismiss all N" and submit its form; the submission's answer, or the click's if no form opened."""
        opened = len(self.slack.views(user_id))
        clicked = self.bulk_click(names.ACTION_BULK_DISMISS, binding, user_id, **kwargs)
        if clicked["statusCode"] != 200 or len(self.slack.views(user_id)) == opened:
            return clicked
        return self.invoke(self.submission_event(user_id, {"reason": reason, "scope": scope, "duration": duration}))

    def act_on_one(
        self, finding_id: str, user_id: str, *, channel_id: str = PAYMENTS_CHANNEL, **kwargs: Any
    ) -> dict[str, Any]:
        """Choose ``finding_id`` in a thread page's "Act on one finding…" select."""
        kwargs.setdefault("response_url", self.slack.response_url(channel_id, MESSAGE_TS))
        event = signed_click_event(
            self.secret,
            action_id=names.ACTION_ACT_ON_ONE,
            finding_id="",
            user_id=user_id,
            team_id=kwargs.pop("team_id", TEAM_ID),
            channel_id=channel_id,
            selected_option=finding_id,
            **kwargs,
        )
        return self.invoke(event)

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
        if action_id == names.ACTION_DISMISS:  # Dismiss opens a form: a trigger id the stand-in takes
            kwargs.setdefault("trigger_id", self.slack.trigger_id(user_id))
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

        return lambda_handler(event, context())

    def click(self, action_id: str, finding_id: str, user_id: str, **kwargs: Any) -> dict[str, Any]:
        return self.invoke(self.click_event(action_id, finding_id, user_id, **kwargs))

    def submission_event(self, user_id: str, values: Mapping[str, str | None]) -> dict[str, Any]:
        """The signed ``view_submission`` of the last modal opened for ``user_id``, with ``values`` (block id ->
        value; None or absent: the form's default)."""
        views = self.slack.views(user_id)
        if not views:
            raise LookupError(f"no modal was opened for {user_id}")
        body, headers = signed_form(self.secret, self.slack.view_submission(views[-1].id, values))
        return api_gateway_event(body, headers)

    def dismiss(
        self,
        finding_id: str,
        user_id: str,
        *,
        reason: str | None = DISMISS_REASON,
        scope: str | None = None,
        duration: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Dismiss as a person does (docs/architecture.md §16): click Dismiss and, when the form opened, submit
        it with ``reason``, ``scope`` and ``duration`` (None: the form's default). The submission's answer, or
        the click's when no form opened (a refused click)."""
        opened = len(self.slack.views(user_id))
        clicked = self.click(names.ACTION_DISMISS, finding_id, user_id, **kwargs)
        if clicked["statusCode"] != 200 or len(self.slack.views(user_id)) == opened:
            return clicked
        return self.invoke(self.submission_event(user_id, {"reason": reason, "scope": scope, "duration": duration}))

    # -- observation ----------------------------------------------------------------------------------

    def records(self) -> dict[str, FindingRecord]:
        out: dict[str, FindingRecord] = {}
        paginator = self.dynamodb.get_paginator("scan")
        for page in paginator.paginate(TableName=names.STATE_TABLE_NAME, ConsistentRead=True):
            for item in page["Items"]:
                if "#" in item[names.STATE_TABLE_KEY]["S"]:  # an account's exemptions (a dismissal's), not a finding
                    continue
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
        return shared.drain_jobs(self.sqs, self.queue_url)

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


def _seed_member(store: FindingStore, summary: FindingSummary) -> FindingRecord:
    """A grouped review finding that is not its group's first: awaiting approval, with no message of its own."""
    store.create_received(
        summary.finding_id,
        event_id=f"event-{summary.finding_id}",
        action=Action.REVIEW,
        reason=shared.REVIEW_REASON,
        actor="finding-handler",
        account_id=summary.account_id,
        team=summary.team,
        channel=summary.channel,
        summary=summary,
    )
    return store.transition(
        summary.finding_id,
        expected={State.RECEIVED},
        target=State.PENDING_APPROVAL,
        actor="finding-handler",
        event="seed",
    ).record


def context() -> LambdaContext:
    """The interaction function's Lambda context, for one request."""
    return LambdaContext(names.INTERACTION_FUNCTION_NAME, memory_limit_in_mb=512, timeout_s=10.0)


def build_world(
    *,
    config: Config,
    summary: FindingSummary,
    config_dir: Path,
    setenv: Callable[[str, str], None],
    slack: SlackStandIn,
    region: str = "us-east-1",
) -> World:
    """Create the table, the queue and the secret in the AWS endpoint boto3 is pointed at, and set the
    interaction handler's environment through ``setenv`` (monkeypatch.setenv, or os.environ.__setitem__);
    ``summary``: the review finding :meth:`World.seed` posts."""
    queue_url = shared.create_remediation_queue(region)
    resources = shared.provision_handler(
        config=config,
        config_dir=config_dir,
        table=names.STATE_TABLE_NAME,
        slack=slack,
        setenv=setenv,
        queue_url=queue_url,
        region=region,
    )
    from macie_chatops.handlers import interaction as handler

    handler.clear_caches()
    return World(
        config=config,
        store=resources.store,
        dynamodb=shared.aws_client("dynamodb", region),
        sqs=shared.aws_client("sqs", region),
        queue_url=queue_url,
        slack=slack,
        summary=summary,
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
