"""The whole pipeline on one machine: ``with Sandbox(config) as sandbox: ...``.

What runs (all on 127.0.0.1, free ports, threads of this process):

- moto's server as the AWS endpoint, provisioned like the stacks (``provision.py``) in the security account
  and in every member account x region of the config;
- the Slack Web API stand-in (``slack_standin.py``), which the handlers reach through SLACK_API_URL;
- the API Gateway stand-in for ``POST /slack/interactions`` (``apigateway.py``) -> the interaction handler;
- SQS pollers playing Lambda's event source mappings: intake queue -> finding handler, remediation queue
  -> remediator (``lambda_runtime.py``).

The handlers run unchanged; only their environment differs (AWS_ENDPOINT_URL, SLACK_API_URL, the names of
what was provisioned, MACIE_CHATOPS_CONFIG_JSON pointing at ``config.to_json()`` in a temp dir, and the
security account's credentials). Because the environment and moto's state are process-wide, one sandbox
runs per process at a time; ``stop()`` restores the environment, removes the temp dir, joins every thread
and resets moto.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops.states import State
from macie_chatops_sandbox.apigateway import InteractionEndpoint
from macie_chatops_sandbox.aws import Accounts, MotoServer
from macie_chatops_sandbox.findings import StoredObject
from macie_chatops_sandbox.lambda_runtime import Function, SqsPoller
from macie_chatops_sandbox.provision import Provisioned, Queue, QueueSettings, SlackSecret, provision
from macie_chatops_sandbox.slack_standin import RateLimit, SlackStandIn

if TYPE_CHECKING:
    from macie_chatops.store import FindingRecord, FindingStore
    from macie_chatops_sandbox.securityhub import SecurityHubLoop

T = TypeVar("T")

ObjectLock = Literal["COMPLIANCE", "GOVERNANCE", "LEGAL_HOLD"]
Location = Literal["source", "quarantine", "both", "none"]
# How a published event reached the central bus: a member's forwarding rule, the Macie administrator's, or put
# there directly (no rule forwards that account x region).
Route = Literal["member", "administrator", "central"]

# A user who approves nothing anywhere (the "non-approver" of the demo and the tests).
OUTSIDER: Final = "U0MALLORY"
# What `Sandbox.dismiss` (and `sandbox replay --dismiss`, the demo) writes in the dismissal form by default.
DEFAULT_DISMISS_REASON: Final = "Test data generated for the sandbox: no real customer data."

_ONE_SANDBOX = threading.Lock()


@dataclass(frozen=True)
class SandboxSettings:
    queues: QueueSettings = field(default_factory=QueueSettings)
    batch_size: int = 10  # the finding handler's event source mapping (central stack: FINDING_BATCH_SIZE)
    # The remediator's event source mapping; None: the handler's BATCH_SIZE, which the central stack sets too.
    remediator_batch_size: int | None = None
    finding_concurrency: int = 2  # pollers per queue (Lambda starts several for a busy queue)
    remediator_concurrency: int = 2
    digest_concurrency: int = 1  # the digest writer's pollers (its Slack writes take the channel's pace anyway)
    digest_timeout_s: float = 60.0
    wait_time_s: int = 1  # long-poll wait; also bounds how long stop() waits for a poller
    finding_timeout_s: float = 60.0
    interaction_timeout_s: float = 10.0
    remediator_timeout_s: float = 300.0
    sweeper_timeout_s: float = 60.0
    # The sweeper's policy (SWEEP_STALE_AFTER_SECONDS, SWEEP_MAX_REQUEUES); None: the handler's defaults.
    sweep_stale_after_s: int | None = None
    sweep_max_requeues: int | None = None
    base64_bodies: bool = False  # API Gateway with binary media types: bodies arrive base64-encoded
    # Slack's chat.postMessage limit (about 1 per second per channel, short bursts); None: unlimited.
    slack_post_limit: RateLimit | None = field(default_factory=lambda: RateLimit(per_second=1.0, burst=4))
    # Slack's chat.update limit (Tier 3: about 50 per minute per workspace); None: unlimited.
    slack_update_limit: RateLimit | None = field(default_factory=lambda: RateLimit(per_second=50 / 60, burst=50))
    metrics: bool = False  # Powertools' metric flushes (EMF JSON on stdout) are noise outside Lambda
    log_level: str | None = None  # POWERTOOLS_LOG_LEVEL for the handlers (None: leave the environment's)


@dataclass(frozen=True)
class ClickResponse:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        """The answer's ``text`` (for a JSON answer), else the raw body."""
        try:
            data = self.json
        except ValueError:
            return self.body
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            return str(data["text"])
        return self.body


def _clear_handler_caches() -> None:
    """Drop the handlers' per-container caches (clients bound to this sandbox's endpoints)."""
    for module in (
        "security_hub",
        "intake",
        "interaction",
        "remediation",
        "sweeper",
        "reminders",
        "reconciler",
        "digests",
    ):
        handler = sys.modules.get(f"macie_chatops.handlers.{module}")
        clear = getattr(handler, "clear_caches", None)
        if callable(clear):
            clear()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _optional(value: int | None) -> str | None:
    return None if value is None else str(value)


def _forget_boto3_default_session() -> None:
    import boto3

    boto3.DEFAULT_SESSION = None


class _Environment:
    """Set environment variables for the handlers; restore exactly what was there before."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: dict[str, str | None]) -> None:
        for name, value in values.items():
            if name not in self._saved:
                self._saved[name] = os.environ.get(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


class Sandbox:
    """Start everything on ``start()`` (or ``with``); ``stop()`` leaves nothing behind."""

    def __init__(self, config: Config, settings: SandboxSettings | None = None) -> None:
        self.config = config
        self.settings = settings or SandboxSettings()
        self.secret = SlackSecret(
            bot_token=f"xoxb-sandbox-{secrets.token_hex(12)}", signing_secret=secrets.token_hex(16)
        )
        self._moto = MotoServer()
        self._env = _Environment()
        self._tmp: Path | None = None
        self._pollers: list[SqsPoller] = []
        self._endpoint: InteractionEndpoint | None = None
        self._slack: SlackStandIn | None = None
        self._accounts: Accounts | None = None
        self._provisioned: Provisioned | None = None
        self._store: FindingStore | None = None
        self._locked = False
        self._security_hub: SecurityHubLoop | None = None
        self._macie_updated_at = datetime.fromtimestamp(0, UTC)  # the last updatedAt the Macie stand-in was given
        self._clock_offset = timedelta(0)  # the sandbox clock's lead on the real one (advance_clock)
        self.group_members: dict[str, tuple[str, ...]] = {
            group: (f"U{group[1:]}1",) for team in config.teams.values() for group in sorted(team.approver_groups)
        }

    @property
    def known_users(self) -> set[str]:
        """Every Slack user the stand-in knows: approvers, members of approver groups, and the outsider."""
        users = {OUTSIDER}
        for team in self.config.teams.values():
            users |= team.approver_users
        for members in self.group_members.values():
            users |= set(members)
        return users

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Sandbox:
        if not _ONE_SANDBOX.acquire(blocking=False):
            raise RuntimeError("another sandbox is running in this process (moto state and env are process-wide)")
        self._locked = True
        try:
            self._start()
        except BaseException:
            with contextlib.suppress(Exception):  # the start error is the one to report
                self.stop()
            raise
        return self

    def _start(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="macie-chatops-sandbox-"))
        config_file = self._tmp / "config.json"
        config_file.write_text(self.config.to_json(), encoding="utf-8")

        home = self.config.security_account.region
        endpoint = self._moto.start()
        self._accounts = Accounts(endpoint, home)
        self._provisioned = provision(self.config, self._accounts, self.secret, self.settings.queues)

        self._slack = SlackStandIn(
            bot_token=self.secret.bot_token,
            team_id=self.config.slack.team_id,
            channels=sorted(
                {team.channel for team in self.config.teams.values()}
                | ({self.config.slack.escalation_channel} if self.config.slack.escalation_channel else set())
            ),
            usergroups=self.group_members,
            users=sorted(self.known_users),
            post_limit=self.settings.slack_post_limit,
            update_limit=self.settings.slack_update_limit,
        )
        self._slack.start()

        security = self.config.security_account.id
        creds = self._accounts.credentials(security)
        self._env.set(
            {
                **creds.as_env(),
                names.ENV_AWS_ENDPOINT_URL: endpoint,
                "AWS_REGION": home,
                "AWS_DEFAULT_REGION": home,
                "AWS_PROFILE": None,
                # A developer's ~/.aws must not leak a profile, region or endpoint into the handlers.
                "AWS_CONFIG_FILE": str(self._tmp / "aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self._tmp / "aws-credentials"),
                names.ENV_STATE_TABLE: self._provisioned.table_name,
                names.ENV_REMEDIATION_QUEUE_URL: self._provisioned.remediation.url,
                names.ENV_INTAKE_QUEUE_URL: self._provisioned.intake.url,  # the reconciler's
                names.ENV_DIGEST_QUEUE_URL: self._provisioned.digests.url if self._provisioned.digests else None,
                names.ENV_BULK_CONTINUATION_QUEUE_URL: (
                    self._provisioned.continuations.url if self._provisioned.continuations else None
                ),
                names.ENV_SLACK_SECRET_ARN: self._provisioned.secret_arn,
                names.ENV_APPROVAL_KEY_ID: self._provisioned.approval_key_arn,
                names.ENV_CONFIG_PATH: str(config_file),
                names.ENV_SLACK_API_URL: self._slack.base_url,
                # Without Slack's posting limit there is nothing to pace: the handlers post at once.
                names.ENV_SLACK_PACING: "off" if self.settings.slack_post_limit is None else None,
                "POWERTOOLS_SERVICE_NAME": names.PROJECT,
                "POWERTOOLS_METRICS_NAMESPACE": names.METRICS_NAMESPACE,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "false" if self.settings.metrics else "true",
                names.ENV_SWEEP_STALE_AFTER_S: _optional(self.settings.sweep_stale_after_s),
                names.ENV_SWEEP_MAX_REQUEUES: _optional(self.settings.sweep_max_requeues),
            }
        )
        if self.settings.log_level is not None:
            self._env.set({"POWERTOOLS_LOG_LEVEL": self.settings.log_level})
        # boto3's default session caches credentials and config from the environment at first use; a
        # session left over from before the sandbox would not see its endpoint and credentials.
        _forget_boto3_default_session()

        from macie_chatops.handlers import digests, intake, interaction, remediation

        def function(name: str, handler: Any, timeout_s: float) -> Function:
            return Function(name, handler, timeout_s, home, security)

        sqs = self._accounts.client("sqs", security, home)
        s = self.settings
        interaction_function = function(
            names.INTERACTION_FUNCTION_NAME, interaction.lambda_handler, s.interaction_timeout_s
        )
        provisioned = self._provisioned
        # Each queue the stack has and the function its event source feeds (None: a queue this config does not have),
        # with the batch size and concurrency of that event source.
        event_sources: list[tuple[Queue | None, Function, int, int]] = [
            (
                provisioned.intake,
                function(names.FINDING_FUNCTION_NAME, intake.lambda_handler, s.finding_timeout_s),
                s.batch_size,
                s.finding_concurrency,
            ),
            (
                provisioned.remediation,
                function(names.REMEDIATOR_FUNCTION_NAME, remediation.lambda_handler, s.remediator_timeout_s),
                remediation.BATCH_SIZE if s.remediator_batch_size is None else s.remediator_batch_size,
                s.remediator_concurrency,
            ),
            (  # the digest writer (docs/architecture.md §22)
                provisioned.digests,
                function(names.DIGEST_WRITER_FUNCTION_NAME, digests.lambda_handler, s.digest_timeout_s),
                s.batch_size,
                s.digest_concurrency,
            ),
            # The interaction handler's second event source (§22), one message a batch, as the central stack's
            # event source: each works until its time runs short.
            (provisioned.continuations, interaction_function, 1, 1),
        ]
        self._pollers = [
            SqsPoller(
                function=handler,
                sqs=sqs,
                queue_url=queue.url,
                queue_arn=queue.arn,
                visibility_timeout_s=s.queues.visibility_timeout_s,
                batch_size=batch_size,
                concurrency=concurrency,
                wait_time_s=s.wait_time_s,
            )
            for queue, handler, batch_size, concurrency in event_sources
            if queue is not None
        ]
        self._endpoint = InteractionEndpoint(interaction_function, base64_bodies=s.base64_bodies)
        self._endpoint.start()
        for poller in self._pollers:
            poller.start()
        if self.config.security_hub.enabled:
            self._start_security_hub()

    def _start_security_hub(self) -> None:
        """Security Hub in the loop (docs/architecture.md §17): the hub, the state table's stream, the updater."""
        from macie_chatops.handlers import security_hub
        from macie_chatops_sandbox.securityhub import SecurityHubLoop

        updater = Function(
            names.SECURITY_HUB_FUNCTION_NAME, security_hub.lambda_handler, 60.0, self.home_region, self.security_account
        )
        self._security_hub = SecurityHubLoop(
            accounts=self.accounts,
            security_account=self.security_account,
            regions=self.config.regions,
            table_name=self.provisioned.table_name,
            function=updater,
        )
        self._security_hub.start()

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; safe to call twice or after a failed start."""
        errors: list[BaseException] = []

        def attempt(step: Callable[[], object]) -> None:
            try:
                step()
            except BaseException as exc:  # keep stopping the rest; re-raised below
                errors.append(exc)

        for poller in self._pollers:
            poller.signal_stop()
        for poller in self._pollers:
            attempt(lambda p=poller: p.join(self.settings.wait_time_s + 30))  # type: ignore[misc]
        self._pollers = []
        if self._endpoint is not None:
            attempt(self._endpoint.stop)
            self._endpoint = None
        if self._slack is not None:
            attempt(self._slack.stop)
            self._slack = None
        if self._security_hub is not None:
            attempt(self._security_hub.stop)
            self._security_hub = None
        attempt(_clear_handler_caches)
        self._env.restore()
        _forget_boto3_default_session()
        attempt(self._moto.stop)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._accounts = None
        self._provisioned = None
        self._store = None
        if self._locked:
            self._locked = False
            _ONE_SANDBOX.release()
        if errors:
            raise errors[0]

    # -- what is running -----------------------------------------------------------------------------

    @property
    def accounts(self) -> Accounts:
        if self._accounts is None:
            raise RuntimeError("the sandbox is not running")
        return self._accounts

    @property
    def provisioned(self) -> Provisioned:
        if self._provisioned is None:
            raise RuntimeError("the sandbox is not running")
        return self._provisioned

    @property
    def slack(self) -> SlackStandIn:
        if self._slack is None:
            raise RuntimeError("the sandbox is not running")
        return self._slack

    @property
    def aws_endpoint(self) -> str:
        return self._moto.endpoint

    @property
    def interaction_url(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("the sandbox is not running")
        return self._endpoint.url

    @property
    def pollers(self) -> tuple[SqsPoller, ...]:
        return tuple(self._pollers)

    @property
    def security_account(self) -> str:
        return self.config.security_account.id

    @property
    def home_region(self) -> str:
        return self.config.security_account.region

    def client(self, service: str, account_id: str | None = None, region: str | None = None) -> Any:
        """A boto3 client acting as ``account_id`` (default: the security account)."""
        return self.accounts.client(service, account_id or self.security_account, region or self.home_region)

    @property
    def security_hub(self) -> SecurityHubLoop:
        """Security Hub in the sandbox (only with ``security_hub.enabled``)."""
        if self._security_hub is None:
            raise RuntimeError("Security Hub is not enabled in this sandbox (accounts.yaml security_hub.enabled)")
        return self._security_hub

    @property
    def store(self) -> FindingStore:
        if self._store is None:
            from macie_chatops.store import FindingStore

            self._store = FindingStore(self.client("dynamodb"), self.provisioned.table_name)
        return self._store

    def record(self, finding_id: str) -> FindingRecord | None:
        return self.store.get(finding_id)

    def _run_scheduled(
        self, function_name: str, handler: Any, rule_name: str | None, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Invoke a scheduled handler as its EventBridge rule would (there is no scheduler in the sandbox: tests
        and tools call this): ``event``, else the Scheduled Event of ``rule_name``. The handler's answer; raises
        what the handler raises."""
        function = Function(
            function_name, handler, self.settings.sweeper_timeout_s, self.home_region, self.security_account
        )
        if event is None:
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": self.security_account,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.home_region,
                "resources": [f"arn:aws:events:{self.home_region}:{self.security_account}:rule/{rule_name}"],
                "detail": {},
            }
        answer: dict[str, Any] = function.handler(event, function.context())
        return answer

    def sweep(self) -> dict[str, Any]:
        """One run of the sweeper, as its schedule invokes it; the handler's answer (its counts)."""
        from macie_chatops.handlers import sweeper

        return self._run_scheduled(
            names.SWEEPER_FUNCTION_NAME, sweeper.lambda_handler, names.SWEEPER_SCHEDULE_RULE_NAME
        )

    def now(self) -> datetime:
        """The sandbox clock: the real time plus every :meth:`advance_clock` so far. The scheduled jobs it runs
        (:meth:`remind`) see this time; records are still written on the real clock."""
        return datetime.now(UTC) + self._clock_offset

    def advance_clock(self, delta: timedelta) -> datetime:
        """Move the sandbox clock forward (a day passes without waiting one); the new time."""
        if delta < timedelta(0):
            raise ValueError(f"the sandbox clock only moves forward, got {delta}")
        self._clock_offset += delta
        return self.now()

    def remind(self, *, escalate: bool = False) -> dict[str, Any]:
        """One run of the reminders job at the sandbox clock's time, as its hourly schedule invokes it, or as the
        daily escalation schedule does (``escalate``); the handler's answer (its counts). Raises what it raises."""
        from macie_chatops.handlers import reminders

        # To the microsecond (EventBridge sends whole seconds): the ages a test reads follow the clock it advanced.
        event = {"time": self.now().isoformat(), "escalate": escalate}
        return self._run_scheduled(names.REMINDERS_FUNCTION_NAME, reminders.lambda_handler, None, event)

    def reconcile(self) -> dict[str, Any]:
        """One run of the reconciler, as its EventBridge schedule invokes it (tests and ``sandbox replay --lost``
        call this): the Macie stand-in's findings with no record go to the intake queue. The handler's answer
        (its counts and, per region, where the watermark is); raises what the handler raises."""
        from macie_chatops.handlers import reconciler

        return self._run_scheduled(
            names.RECONCILER_FUNCTION_NAME, reconciler.lambda_handler, names.RECONCILER_SCHEDULE_RULE_NAME
        )

    # -- putting things in -------------------------------------------------------------------------------

    def publish(self, event: dict[str, Any]) -> Route:
        """Put a Macie event on the bus Macie would: the default bus of the account that published it (the
        envelope's ``account``: the bucket owner for its own jobs, the Macie administrator for the
        administrator's jobs and automated discovery), in the envelope's ``region``, whose forwarding rule sends
        it on to the central bus. The route says whose bus it was: ``administrator`` (forwarded by the
        administrator's rule, or by its member rule when it is also a member there), ``member``, or ``central``:
        put on the central bus directly, for an account x region the stacks deploy no rule to (an organisation
        account outside accounts.yaml). An envelope without account or region falls back to the detail's."""
        detail = event.get("detail")
        publisher = _text(event.get("account")) or (_text(detail.get("accountId")) if isinstance(detail, dict) else "")
        region = _text(event.get("region")) or (_text(detail.get("region")) if isinstance(detail, dict) else "")
        entry: dict[str, Any] = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(detail),
            "Resources": [r for r in event.get("resources", []) if isinstance(r, str)],
        }
        self.hold_in_macie(event)
        route: Route
        if publisher and region and self.provisioned.forwarder(publisher, region) is not None:
            events = self.client("events", publisher, region)
            route = "administrator" if publisher == self.config.macie_administrator_id else "member"
        else:
            events = self.client("events")
            entry["EventBusName"] = self.provisioned.central_bus_arn
            route = "central"
        if self._security_hub is not None:  # Macie publishes its findings to Security Hub too
            self._security_hub.publish(event)
        result = events.put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            raise RuntimeError(f"put_events failed: {result['Entries']}")
        return route

    def hold_in_macie(self, event: dict[str, Any]) -> None:
        """Keep the event's finding in the Macie stand-in, as Macie keeps every finding it publishes: for the
        account that published it (the envelope's, else the detail's) in its region and, when that is not the
        Macie administrator, for the administrator too (it sees every member's findings). Its ``updatedAt`` is
        the time it was held (strictly increasing), as for a finding Macie has just published: the fixtures'
        fixed dates would fall out of any back-fill window, and the reconciler lists in this order."""
        from macie_chatops_sandbox.macie_standin import STANDIN

        detail = event.get("detail")
        if not isinstance(detail, dict) or not isinstance(detail.get("id"), str):
            return  # not a finding Macie could hold
        publisher = _text(event.get("account")) or _text(detail.get("accountId"))
        region = _text(event.get("region")) or _text(detail.get("region"))
        self._macie_updated_at = max(datetime.now(UTC), self._macie_updated_at + timedelta(milliseconds=1))
        held = {**detail, "updatedAt": self._macie_updated_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
        for account in {publisher, self.config.macie_administrator_id} - {""}:
            STANDIN.put(account, region, held)

    def lose(self, event: dict[str, Any]) -> None:
        """Macie holds the finding but its EventBridge delivery is lost: only :meth:`reconcile` can find it."""
        self.hold_in_macie(event)

    def deliver_raw(self, body: str) -> None:
        """Hand a body straight to the intake queue, as if the central rule had delivered it. For input
        EventBridge itself would not deliver (not JSON, not a Macie event): the handler must reject it."""
        self.client("sqs").send_message(QueueUrl=self.provisioned.intake.url, MessageBody=body)

    def ensure_bucket(
        self, account_id: str, region: str, bucket: str, *, versioned: bool = True, object_lock: bool = False
    ) -> None:
        s3 = self.client("s3", account_id, region)
        try:
            s3.head_bucket(Bucket=bucket)
            return
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        create: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        if object_lock:
            create["ObjectLockEnabledForBucket"] = True  # also turns versioning on
        try:
            s3.create_bucket(**create)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            return  # another upload created it a moment ago
        if versioned and not object_lock:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def put_object(
        self,
        account_id: str,
        region: str,
        bucket: str,
        key: str,
        body: bytes,
        *,
        versioned: bool = True,
        lock: ObjectLock | None = None,
        content_type: str = "text/plain",
    ) -> StoredObject:
        """Upload ``body`` as ``account_id`` (creating the bucket if needed); return what S3 says it stored."""
        self.ensure_bucket(account_id, region, bucket, versioned=versioned, object_lock=lock is not None)
        s3 = self.client("s3", account_id, region)
        written = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        version = written.get("VersionId") or ""
        if version == "null":  # a bucket whose versioning is suspended
            version = ""
        if lock == "LEGAL_HOLD":
            s3.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=version, LegalHold={"Status": "ON"})
        elif lock is not None:
            s3.put_object_retention(
                Bucket=bucket,
                Key=key,
                VersionId=version,
                Retention={"Mode": lock, "RetainUntilDate": datetime.now(UTC) + timedelta(days=1)},
            )
        return StoredObject(bucket, key, version, written["ETag"].strip('"'), len(body), content_type)

    # -- clicking -------------------------------------------------------------------------------------------

    def approver_for(self, team: str) -> str:
        """A user who may approve for ``team``: a listed user, else a member of a listed user group."""
        entry = self.config.teams[team]
        users = sorted(entry.approver_users)
        if users:
            return users[0]
        for group in sorted(entry.approver_groups):
            members = self.group_members.get(group)
            if members:
                return members[0]
        raise LookupError(f"team {team} has no approver the sandbox can click as")

    def post(self, body: bytes, headers: dict[str, str], *, url: str | None = None) -> ClickResponse:
        """POST a raw request to the interaction endpoint (what Slack does), return the answer."""
        request = urllib.request.Request(url or self.interaction_url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
                return ClickResponse(response.status, dict(response.headers.items()), response.read().decode())
        except urllib.error.HTTPError as exc:
            return ClickResponse(exc.code, dict(exc.headers.items()), exc.read().decode())

    def click(
        self,
        finding_id: str,
        action_id: str,
        *,
        user_id: str,
        channel_id: str | None = None,
        message_ts: str | None = None,
        team_id: str | None = None,
        signing_secret: str | None = None,
        timestamp: int | None = None,
        trigger_id: str | None = None,
    ) -> ClickResponse:
        """A real, signed Slack click on the finding's message, sent over HTTP to the local API Gateway.
        Channel and message default to the ones the state record names; the trigger id (for a modal) to a
        fresh one from the Slack stand-in."""
        from macie_chatops_sandbox.slack_clicks import signed_click_body

        is_ephemeral = False
        if channel_id is None or message_ts is None:
            record = self.record(finding_id)
            if record is not None and not record.slack_ts and record.group_id and record.group_seq:
                # A group member has no message of its own (§22): a person chooses it in its thread page's
                # "Act on one finding…" select, and clicks the buttons that shows them alone.
                channel_id, message_ts = self._choose_listed(record, user_id=user_id)
                is_ephemeral = True
            elif record is None or not record.slack_channel or not record.slack_ts:
                raise LookupError(f"finding {finding_id} has no Slack message to click")
            else:
                channel_id = channel_id or record.slack_channel
                message_ts = message_ts or record.slack_ts
        body, headers = signed_click_body(
            signing_secret or self.secret.signing_secret,
            action_id=action_id,
            finding_id=finding_id,
            user_id=user_id,
            team_id=team_id or self.config.slack.team_id,
            channel_id=channel_id,
            timestamp=timestamp,
            message_ts=message_ts,
            response_url=self.slack.response_url(channel_id, message_ts),
            trigger_id=trigger_id or self.slack.trigger_id(user_id),
            is_ephemeral=is_ephemeral,
        )
        return self.post(body, headers)

    def _choose_listed(self, record: FindingRecord, *, user_id: str) -> tuple[str, str]:
        """Choose a group member in its thread page's select (a signed ``static_select`` click): the channel and
        page ts its own buttons are then shown on. A LookupError while its page is not posted yet."""
        from macie_chatops.group_store import GroupStore
        from macie_chatops.groups import page_number
        from macie_chatops_sandbox.slack_clicks import signed_click_body

        assert record.group_id is not None and record.group_seq is not None
        groups = GroupStore(self.client("dynamodb"), self.provisioned.table_name)
        page = groups.page(record.group_id, page_number(record.group_seq))
        if page is None or page.ts is None:
            raise LookupError(f"finding {record.finding_id} is listed in a digest page that is not posted yet")
        channel_id = record.channel
        body, headers = signed_click_body(
            self.secret.signing_secret,
            action_id=names.ACTION_ACT_ON_ONE,
            finding_id="",
            user_id=user_id,
            team_id=self.config.slack.team_id,
            channel_id=channel_id,
            message_ts=page.ts,
            response_url=self.slack.response_url(channel_id, page.ts),
            selected_option=record.finding_id,
        )
        chosen = self.post(body, headers)
        if chosen.status != 200:
            raise LookupError(f"choosing {record.finding_id} in its page answered HTTP {chosen.status}: {chosen.text}")
        return channel_id, page.ts

    def dismiss(
        self,
        finding_id: str,
        *,
        user_id: str,
        reason: str | None = DEFAULT_DISMISS_REASON,
        scope: str | None = None,
        duration: str | None = None,
        until: str | None = None,
    ) -> ClickResponse:
        """Dismiss as a person does (docs/architecture.md §16): click Dismiss, then submit the form that opened
        with ``reason``, ``scope`` and ``duration`` (None: the form's default), signed like Slack's
        ``view_submission``. A policy finding's Dismiss opens the same form (its scopes: ``finding`` or
        ``bucket``)."""
        from macie_chatops_sandbox.slack_clicks import signed_form

        opened = len(self.slack.views(user_id))
        clicked = self.click(finding_id, names.ACTION_DISMISS, user_id=user_id)
        views = self.slack.views(user_id)
        if clicked.status != 200 or len(views) == opened:
            return clicked
        values = {"reason": reason, "scope": scope, "duration": duration, "until": until}
        payload = self.slack.view_submission(views[-1].id, values)
        body, headers = signed_form(self.secret.signing_secret, payload)
        return self.post(body, headers)

    # -- waiting and looking --------------------------------------------------------------------------------

    def _queue_depth(self) -> int:
        sqs = self.client("sqs")
        total = 0
        # The digest queue too: a group's wake-ups are work to do (its last page is posted when it closes).
        digests = (self.provisioned.digests,) if self.provisioned.digests else ()
        # And a bulk approval's continuations: members still to approve (docs/architecture.md §22).
        continuations = (self.provisioned.continuations,) if self.provisioned.continuations else ()
        for queue in (self.provisioned.intake, self.provisioned.remediation, *digests, *continuations):
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            total += sum(int(value) for value in attributes.values())
        return total

    def _activity(self) -> tuple[int, bool]:
        parts: list[Any] = [*self._pollers, self._endpoint]
        return sum(p.activity for p in parts if p is not None), any(p.busy for p in parts if p is not None)

    def wait_until_idle(self, timeout_s: float = 30.0, *, poll_s: float = 0.05) -> None:
        """Return once nothing is left to do: both queues empty (nothing visible, in flight or delayed),
        no handler running, and no new delivery between two looks. DLQ messages count as done."""
        deadline = time.monotonic() + timeout_s
        previous: int | None = None
        while True:
            activity, busy = self._activity()
            depth = self._queue_depth()
            if not busy and depth == 0:
                if previous == activity:
                    return
                previous = activity
            else:
                previous = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"the pipeline is still busy after {timeout_s:.0f}s ({depth} messages queued)")
            time.sleep(poll_s)

    def wait_for(self, probe: Callable[[], T | None], timeout_s: float = 30.0, what: str = "condition") -> T:
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value is not None and value is not False:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            time.sleep(0.05)

    def wait_for_state(self, finding_id: str, *states: State, timeout_s: float = 30.0) -> FindingRecord:
        def probe() -> FindingRecord | None:
            record = self.record(finding_id)
            return record if record is not None and record.state in states else None

        return self.wait_for(probe, timeout_s, f"finding {finding_id} to reach {'/'.join(states)}")

    def dlq_bodies(self) -> dict[str, list[str]]:
        """Messages that ended in a DLQ (peeked: they are made visible again at once)."""
        sqs = self.client("sqs")
        out: dict[str, list[str]] = {}
        digests = (self.provisioned.digests_dlq,) if self.provisioned.digests_dlq else ()
        continuations = (self.provisioned.continuations_dlq,) if self.provisioned.continuations_dlq else ()
        for queue in (self.provisioned.intake_dlq, self.provisioned.remediation_dlq, *digests, *continuations):
            received = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            out[queue.name] = [m["Body"] for m in received.get("Messages", [])]
        return out

    def version_exists(self, account_id: str, region: str, bucket: str, key: str, version_id: str) -> bool:
        s3 = self.client("s3", account_id, region)
        try:
            if version_id:
                s3.head_object(Bucket=bucket, Key=key, VersionId=version_id)
            else:
                s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NoSuchVersion", "NotFound", "405"}:
                return False
            raise
        return True

    def quarantined_copies(self, account_id: str, region: str, finding_id: str) -> list[dict[str, Any]]:
        """Versions in the account's quarantine bucket under the finding's namespace (``<finding id>/``)."""
        bucket = names.quarantine_bucket_name(account_id, region)
        s3 = self.client("s3", account_id, region)
        found: list[dict[str, Any]] = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=f"{finding_id}/"):
            found.extend(page.get("Versions", []))
        return found

    def object_location(
        self,
        finding_id: str,
        account_id: str,
        region: str,
        stored: StoredObject,
        record: FindingRecord | None = None,
    ) -> Location:
        """Where the finding's object is now: its source version, a quarantined copy, both, or neither.

        The quarantined copy is the one the record names, else any version in the account's quarantine
        bucket whose key is namespaced by the finding id. A restored object is back in its source key (as
        a new version), so for a RESTORED record the source key counts, whatever its version. A duplicate
        (another finding holds the object version) is wherever that first finding put it.
        """
        if record is not None and record.state is State.DUPLICATE and record.duplicate_of:
            first = self.record(record.duplicate_of)
            if first is not None and first.state is not State.DUPLICATE:
                return self.object_location(first.finding_id, account_id, region, stored, first)
        in_source = self.version_exists(account_id, region, stored.bucket, stored.key, stored.version_id)
        if not in_source and record is not None and record.state is State.RESTORED:
            in_source = self.version_exists(account_id, region, stored.bucket, stored.key, "")
        quarantine = record.quarantine if record is not None else None
        if quarantine and quarantine.get("bucket") and quarantine.get("key"):
            in_quarantine = self.version_exists(
                account_id,
                quarantine.get("region") or region,
                quarantine["bucket"],
                quarantine["key"],
                quarantine.get("version_id") or "",
            )
        elif self.provisioned.member(account_id, region) is not None:
            in_quarantine = bool(self.quarantined_copies(account_id, region, finding_id))
        else:
            in_quarantine = False
        if in_source and in_quarantine:
            return "both"
        if in_source:
            return "source"
        return "quarantine" if in_quarantine else "none"
