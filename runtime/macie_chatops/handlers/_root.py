"""What the composition roots share: the environment they read, their metrics, the one cache a container keeps
between invocations, and (for the queue and stream consumers) the partial batch loop.

Cold start: this module imports the standard library and Powertools' metrics (already loaded by its Logger)
only; boto3, the config, the store and slack_sdk load when the cache first builds them. The batch loop is ours,
not Powertools' (whose batch utilities and data classes would load with the first batch).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from macie_chatops import names
from macie_chatops.errors import SLACK_TOKEN_ERRORS, SlackConfigurationError, SlackRetryLaterError

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from slack_sdk.web import WebClient

    from macie_chatops.approvals import ApprovalSigner, ApprovalVerifier
    from macie_chatops.config import Config
    from macie_chatops.group_store import Grouping
    from macie_chatops.slack_pacing import ChannelPacer
    from macie_chatops.store import FindingStore

T = TypeVar("T")

# A record Slack could not take yet is re-sent with this attribute counting its deferrals; past the cap it
# returns to its queue like any failure (its receive count, then the DLQ): Slack refusing for hours is an incident.
DEFERRALS_ATTRIBUTE = "slack_deferrals"
MAX_DEFERRALS = 200
MAX_SQS_DELAY_S = 900


class HandlerMetrics:
    """A handler's metrics (namespace ``MacieChatOps``, dimension ``service``), on Powertools' metrics.

    Each call prints one EMF document at once: ``count`` (the use cases' ``Counter``) one metric with its
    own dimensions, which differ from record to record; ``publish`` several values that share theirs (the
    sweeper's per-sweep counts). Each document has its own ``EphemeralMetrics``: ``Metrics`` instances share
    one metric set per process, and several handlers run at once in tests and the sandbox."""

    def __init__(self, service: str) -> None:
        self.service = service

    def count(self, name: str, **dimensions: str) -> None:
        self.publish({name: 1}, **dimensions)

    def publish(self, values: Mapping[str, int], **dimensions: str) -> None:
        if is_metrics_disabled():  # the sandbox's default: nothing is built, nothing printed
            return
        metrics = EphemeralMetrics(namespace=names.METRICS_NAMESPACE, service=self.service)
        for dimension, label in dimensions.items():
            metrics.add_dimension(name=dimension, value=label or "none")
        for name, value in values.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        metrics.flush_metrics()

    def seconds(self, name: str, value: float, **dimensions: str) -> None:
        """One duration (unit Seconds) of ``name``: the dashboard graphs its percentiles."""
        if is_metrics_disabled():
            return
        metrics = EphemeralMetrics(namespace=names.METRICS_NAMESPACE, service=self.service)
        for dimension, label in dimensions.items():
            metrics.add_dimension(name=dimension, value=label or "none")
        metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)
        metrics.flush_metrics()


@dataclass(frozen=True)
class Settings:
    """The environment a container runs with (the caches' keys)."""

    table: str
    secret_id: str
    queue_url: str  # "" for a handler that queues nothing (the remediator)
    config_path: str | None
    slack_api_url: str | None
    aws_endpoint_url: str | None
    region: str | None
    digest_queue_url: str = ""  # the digest queue (§22); "" groups nothing

    @classmethod
    def from_env(cls, *, queue: bool) -> Settings:
        """Read the environment; ``queue``: the remediation queue's URL is required too."""
        env = os.environ
        required = [names.ENV_STATE_TABLE, names.ENV_SLACK_SECRET_ARN]
        if queue:
            required.append(names.ENV_REMEDIATION_QUEUE_URL)
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise RuntimeError(f"environment variables not set: {', '.join(missing)}")
        return cls(
            table=env[names.ENV_STATE_TABLE],
            secret_id=env[names.ENV_SLACK_SECRET_ARN],
            queue_url=env.get(names.ENV_REMEDIATION_QUEUE_URL, "") if queue else "",
            config_path=env.get(names.ENV_CONFIG_PATH) or None,
            slack_api_url=env.get(names.ENV_SLACK_API_URL) or None,
            aws_endpoint_url=env.get(names.ENV_AWS_ENDPOINT_URL) or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            digest_queue_url=env.get(names.ENV_DIGEST_QUEUE_URL, ""),
        )


@dataclass(frozen=True)
class AwsTimeouts:
    """How long a handler's AWS calls may take, and how often they are tried (None: botocore's default)."""

    connect_s: float
    read_s: float
    max_attempts: int | None = None


class ContainerCache:
    """What a container keeps between invocations: boto3 clients, and entries (the config, the state store,
    the Slack client, the signing secret, member-role sessions...) each keyed by everything it is built from,
    so tests and the sandbox run several configurations in one process without clearing anything.

    Thread-safe (tests and the sandbox invoke handlers from several threads). boto3.client() is not, so
    clients are built under the lock; entries are built outside it (they may call AWS), and when two threads
    build one at once the first stored wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def clear(self) -> None:
        """Forget every entry (for tests that change the world under a container: a rewritten config file, a
        rotated secret). The boto3 clients stay: they are keyed by everything they are built from and hold
        no state."""
        with self._lock:
            self._entries.clear()

    def get(self, key: Hashable, build: Callable[[], T], *, max_age_s: float | None = None) -> T:
        """The entry under ``key``, built when there is none or (``max_age_s``) when it is older than that."""
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and (max_age_s is None or time.monotonic() - cached[0] < max_age_s):
            return cast(T, cached[1])
        value = build()
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current is not cached:  # another thread stored one meanwhile
                return cast(T, current[1])
            self._entries[key] = (time.monotonic(), value)
        return value

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    @staticmethod
    def _client_key(service: str, settings: Settings, timeouts: AwsTimeouts) -> tuple[Any, ...]:
        # The access key id (an identifier, not a secret) keys the cache too: a sandbox or test that switches
        # accounts on the same endpoint gets clients with the new credentials.
        return (service, settings.aws_endpoint_url, settings.region, os.environ.get("AWS_ACCESS_KEY_ID"), timeouts)

    def client(self, service: str, settings: Settings, timeouts: AwsTimeouts) -> Any:
        key = self._client_key(service, settings, timeouts)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                import boto3
                from botocore.config import Config as BotoConfig

                config = BotoConfig(
                    connect_timeout=timeouts.connect_s,
                    read_timeout=timeouts.read_s,
                    retries={"mode": "standard"}
                    if timeouts.max_attempts is None
                    else {"mode": "standard", "total_max_attempts": timeouts.max_attempts},
                )
                client = boto3.client(service, region_name=settings.region, config=config)  # type: ignore[call-overload]
                self._clients[key] = client
            return client

    def config(self, settings: Settings) -> Config:
        def load() -> Config:
            from macie_chatops.config import load_bundled_config

            # load_bundled_config reads ENV_CONFIG_PATH itself: the value settings.config_path was read from.
            return load_bundled_config()

        return self.get(("config", settings.config_path), load)

    def store(self, settings: Settings, timeouts: AwsTimeouts) -> FindingStore:
        dynamodb = self.client("dynamodb", settings, timeouts)

        grouping = self.grouping(settings, timeouts)

        def build() -> FindingStore:
            from macie_chatops.store import FindingStore

            # Every transition of a grouped finding moves its group's counts (docs/architecture.md §22).
            hook = None if grouping is None else grouping.state_changed
            return FindingStore(dynamodb, settings.table, on_state_change=hook)

        key = ("store", settings.table, settings.digest_queue_url, self._client_key("dynamodb", settings, timeouts))
        return self.get(key, build)

    def grouping(self, settings: Settings, timeouts: AwsTimeouts) -> Grouping | None:
        """The groups and the digest queue (docs/architecture.md §22); None without a digest queue."""
        if not settings.digest_queue_url:
            return None
        dynamodb, sqs = self.client("dynamodb", settings, timeouts), self.client("sqs", settings, timeouts)

        def build() -> Grouping:
            from macie_chatops.group_store import Grouping, GroupStore, SqsDigestQueue

            return Grouping(GroupStore(dynamodb, settings.table), SqsDigestQueue(sqs, settings.digest_queue_url))

        key = ("grouping", settings.table, settings.digest_queue_url, self._client_key("sqs", settings, timeouts))
        return self.get(key, build)

    @staticmethod
    def _slack_key(settings: Settings) -> tuple[Any, ...]:
        return ("slack", settings.secret_id, settings.slack_api_url, settings.aws_endpoint_url, settings.region)

    def web_client(self, settings: Settings, timeouts: AwsTimeouts, *, slack_timeout_s: int) -> WebClient:
        """The WebClient with the bot token from the Slack secret (read once, and again after
        :meth:`forget_bad_token`)."""

        def build() -> WebClient:
            from macie_chatops.slack_client import build_web_client
            from macie_chatops.slack_secrets import load_slack_secrets

            secretsmanager = self.client("secretsmanager", settings, timeouts)
            bot_token = load_slack_secrets(secretsmanager, settings.secret_id).bot_token
            return build_web_client(bot_token, base_url=settings.slack_api_url, timeout=slack_timeout_s)

        return self.get(self._slack_key(settings), build)

    def approval_key_id(self) -> str:
        """The approval key's id from the environment (a handler that signs or verifies cannot run without it)."""
        key_id = os.environ.get(names.ENV_APPROVAL_KEY_ID, "")
        if not key_id:
            raise RuntimeError(f"environment variable not set: {names.ENV_APPROVAL_KEY_ID}")
        return key_id

    def approval_signer(self, settings: Settings, timeouts: AwsTimeouts) -> ApprovalSigner:
        """Signs approvals with the approval key (docs/architecture.md §23)."""
        from macie_chatops.approvals import ApprovalSigner

        key_id = self.approval_key_id()
        kms = _LazyClient(lambda: self.client("kms", settings, timeouts))  # built at the first approval only
        return self.get(
            ("approval_signer", key_id, self._client_key("kms", settings, timeouts)),
            lambda: ApprovalSigner(kms, key_id),
        )

    def approval_verifier(self, settings: Settings, timeouts: AwsTimeouts) -> ApprovalVerifier:
        """Verifies approvals with the approval key (docs/architecture.md §23)."""
        from macie_chatops.approvals import ApprovalVerifier

        key_id = self.approval_key_id()
        kms = _LazyClient(lambda: self.client("kms", settings, timeouts))
        return self.get(
            ("approval_verifier", key_id, self._client_key("kms", settings, timeouts)),
            lambda: ApprovalVerifier(kms, key_id),
        )

    def forget_bad_token(self, settings: Settings, exc: Exception) -> None:
        """After Slack rejected the bot token (rotated, revoked), the next invocation re-reads the secret."""
        if isinstance(exc, SlackConfigurationError) and exc.error_code in SLACK_TOKEN_ERRORS:
            self.forget(self._slack_key(settings))


class _LazyClient:
    """A boto3 client built on its first call (the finding handler signs only auto approvals: a review finding
    never pays for the KMS client)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build

    def __getattr__(self, name: str) -> Any:
        return getattr(self._build(), name)  # the cache returns the same client after the first build


def remaining_time(context: LambdaContext) -> Callable[[], float]:
    """Seconds left in the invocation, as the Lambda context tells it."""

    def remaining_time_s() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    return remaining_time_s


def slack_pacer(cache: ContainerCache, settings: Settings, timeouts: AwsTimeouts) -> ChannelPacer | None:
    """The channel pacer over the state table (docs/architecture.md §22, Pacing); None when the environment
    turns pacing off (the sandbox, when its Slack stand-in has no posting limit)."""
    if os.environ.get(names.ENV_SLACK_PACING, "").strip().lower() == "off":
        return None
    from macie_chatops.slack_pacing import ChannelPacer

    return ChannelPacer(cache.client("dynamodb", settings, timeouts), settings.table)


def redeliver_later(sqs: Any, record: SqsRecord, delay_s: float) -> int | None:
    """Send ``record``'s body again to its own queue, visible after ``delay_s`` (at most SQS's 900 s), one
    deferral counted in its attributes; the delay used, or None when the record was deferred too often already.

    A re-sent copy starts with a receive count of 0, so waiting for Slack never uses up the receives that send a
    record to the DLQ. The queue URL is built from the record's ARN on the client's endpoint (no GetQueueUrl)."""
    attribute = record.message_attributes.get(DEFERRALS_ATTRIBUTE)
    deferrals = int(attribute.get("stringValue") or 0) if attribute else 0
    if deferrals >= MAX_DEFERRALS:
        return None
    _, _, _, _, account, name = record.event_source_arn.split(":", 5)
    delay = min(MAX_SQS_DELAY_S, max(1, math.ceil(delay_s)))
    sqs.send_message(
        QueueUrl=f"{sqs.meta.endpoint_url}/{account}/{name}",
        MessageBody=record.body,
        DelaySeconds=delay,
        MessageAttributes={DEFERRALS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(deferrals + 1)}},
    )
    return delay


def _defer(sqs: Any | None, record: SqsRecord, exc: SlackRetryLaterError, logger: Logger) -> int | None:
    """:func:`redeliver_later`, or None when there is no client, the record was deferred too often, or the send
    failed (then the record returns to its queue like any failure: a copy is never lost, at worst it waits)."""
    if sqs is None:
        return None
    try:
        return redeliver_later(sqs, record, exc.retry_after_s)
    except Exception:
        logger.exception("could not re-send the record with a delay: it returns to its queue instead")
        return None


def run_sqs_batch(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    handle: Callable[[SqsRecord], str],
    failed: Callable[[SqsRecord, Exception, dict[str, Any]], None],
    logger: Logger,
    sqs: Any | None = None,
    after_batch: Callable[[], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``handle`` each record of an SQS batch; only the records it raised for return to the queue
    (``{"batchItemFailures": [...]}``, even when every record failed). ``failed`` logs and counts each of those
    first, given the fields to log (message id, receive count, error type). The logger's per-record keys are
    cleared after every record.

    With ``sqs``, a record that raised :class:`SlackRetryLaterError` (Slack cannot take it for N s) is re-sent
    to its queue with that delay (:func:`redeliver_later`) and acknowledged: deferred, not failed.

    ``after_batch``: called once every record is handled (the finding handler sends the batch's jobs together);
    the message ids it returns return to the queue too (it logs and counts them itself)."""

    def record_handler(record: SqsRecord) -> str:
        try:
            try:
                return handle(record)
            except SlackRetryLaterError as exc:
                delay = _defer(sqs, record, exc, logger)
                if delay is None:
                    raise
                logger.info(
                    "Slack cannot take this yet: the record is re-sent with a delay",
                    extra={"message_id": record.message_id, "delay_s": delay, "slack_method": exc.method},
                )
                return "deferred"
        except Exception as exc:
            fields = {
                "message_id": record.message_id,
                "receive_count": record.receive_count,
                "error_type": type(exc).__name__,
            }
            failed(record, exc, fields)
            raise
        finally:
            logger.thread_safe_clear_keys()

    response = partial_batch_response(event, SqsRecord, record_handler, item_identifier=lambda r: r.message_id)
    if after_batch is not None:
        failures: list[dict[str, str]] = response["batchItemFailures"]
        listed = {failure["itemIdentifier"] for failure in failures}
        failures.extend({"itemIdentifier": message_id} for message_id in after_batch() if message_id not in listed)
    return response


class SqsRecord:
    """One record of an SQS event, read as the handlers need it (the names of Powertools' ``SqsRecord``, whose
    data classes and batch utilities cost a cold start about a fifth of ``import boto3``: docs/architecture.md §6)."""

    def __init__(self, raw_event: Mapping[str, Any]) -> None:
        self.raw_event = raw_event

    @property
    def body(self) -> str:
        return str(self.raw_event["body"])

    @property
    def message_id(self) -> str:
        return str(self.raw_event.get("messageId", ""))

    @property
    def receive_count(self) -> str:
        return str(self.raw_event.get("attributes", {}).get("ApproximateReceiveCount", ""))

    @property
    def message_attributes(self) -> Mapping[str, Mapping[str, Any]]:
        return dict(self.raw_event.get("messageAttributes") or {})

    @property
    def event_source_arn(self) -> str:
        return str(self.raw_event["eventSourceARN"])


R = TypeVar("R")


def partial_batch_response(
    event: Mapping[str, Any],
    wrap: Callable[[Mapping[str, Any]], R],
    handle: Callable[[R], object],
    *,
    item_identifier: Callable[[R], str],
) -> dict[str, Any]:
    """Lambda's partial batch response for an SQS or DynamoDB stream event: ``handle`` each record in order;
    those it raised for are ``batchItemFailures`` (by ``item_identifier``: the message id, the stream sequence
    number), even when every record failed. What Powertools' ``process_partial_response`` answers, without
    loading it."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise ValueError("not a batch event: it has no Records list")
    failures: list[dict[str, str]] = []
    for raw in records:
        record = wrap(raw)
        try:
            handle(record)
        except Exception:  # handle has logged and counted it; the record returns to its queue or stream
            failures.append({"itemIdentifier": item_identifier(record)})
    return {"batchItemFailures": failures}
