"""Lambda: the intake queue's SQS batches (each body is the EventBridge Macie event JSON).

The composition root of the finding handler: read the environment, build (once per container) the
clients, the config and the Slack client, then hand each record to :func:`macie_chatops.intake.
handle_record`, which does the work (see its module docstring for the order of writes and every failure
path). Powertools' ``BatchProcessor`` reports the records that raised as ``batchItemFailures``, so only
they return to the queue; the answer is always ``{"batchItemFailures": [...]}`` (a batch whose every record
failed is reported the same way, not raised).

Cold start: the module imports only the standard library and Powertools' Logger, metrics and batch
utilities. boto3, slack_sdk, the pydantic models and the config are imported when the first batch
arrives (``bench/bench_import_finding_handler.py`` measures both).

Caches live for the container and are keyed by their inputs (environment values), so tests can run
several configurations in one process; the Slack bot token is read from Secrets Manager once per
container (and again only after Slack rejected it as invalid or revoked, i.e. after a rotation).
Logs are JSON with the finding id as correlation id; never a token or a payload. Metrics (EMF, namespace
``MacieChatOps``, dimension ``service``): ``Findings`` (by action, finding_type), ``Duplicates`` (by
kind), ``SlackPosts`` (by action), ``SlackFailures`` (by kind, error_code), ``JobsQueued``,
``RejectedWithoutId``, ``RecordsFailed``.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from macie_chatops import names
from macie_chatops.errors import SlackConfigurationError, SlackError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from slack_sdk.web import WebClient

    from macie_chatops.config import Config
    from macie_chatops.intake import IntakeDependencies
    from macie_chatops.store import FindingStore

SERVICE: Final = "macie-chatops-finding"
METRICS_NAMESPACE: Final = "MacieChatOps"
# The intake lease outlives the invocation's deadline by this much, so clock skew between Lambda hosts
# can never let a second delivery take over a lease whose holder is still running.
LEASE_MARGIN: Final = timedelta(seconds=10)
AWS_CONNECT_TIMEOUT_S: Final = 3
AWS_READ_TIMEOUT_S: Final = 10
SLACK_TIMEOUT_S: Final = 10
# Slack errors after which the cached token is dropped, so the next batch re-reads the secret.
TOKEN_ERRORS: Final = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})

logger = Logger(service=SERVICE)


class EmfCounter:
    """Counts as CloudWatch embedded metrics, one line each (dimensions differ from record to record)."""

    def count(self, name: str, **dimensions: str) -> None:
        if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED (the sandbox's CLI keeps stdout for its output)
            return
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=1,
            namespace=METRICS_NAMESPACE,
            default_dimensions={"service": SERVICE},
        ) as metric:
            for key, value in dimensions.items():
                metric.add_dimension(name=key, value=value or "none")


metrics = EmfCounter()


@dataclass(frozen=True)
class Settings:
    """The environment this container runs with (the caches' keys)."""

    table: str
    queue_url: str
    secret_id: str
    config_path: str | None
    slack_api_url: str | None
    aws_endpoint_url: str | None
    region: str | None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        required = (names.ENV_STATE_TABLE, names.ENV_REMEDIATION_QUEUE_URL, names.ENV_SLACK_SECRET_ARN)
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise RuntimeError(f"environment variables not set: {', '.join(missing)}")
        return cls(
            table=env[names.ENV_STATE_TABLE],
            queue_url=env[names.ENV_REMEDIATION_QUEUE_URL],
            secret_id=env[names.ENV_SLACK_SECRET_ARN],
            config_path=env.get(names.ENV_CONFIG_PATH) or None,
            slack_api_url=env.get(names.ENV_SLACK_API_URL) or None,
            aws_endpoint_url=env.get(names.ENV_AWS_ENDPOINT_URL) or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )


_lock = threading.Lock()
_clients: dict[tuple[str, str | None, str | None], Any] = {}
_configs: dict[str | None, Config] = {}
_stores: dict[tuple[str, str | None, str | None], FindingStore] = {}
_web_clients: dict[tuple[str, str | None, str | None, str | None], WebClient] = {}


def clear_caches() -> None:
    """Forget every per-container cache (tests that change the world under the handler)."""
    with _lock:
        _clients.clear()
        _configs.clear()
        _stores.clear()
        _web_clients.clear()


def _client(service: str, settings: Settings) -> Any:
    key = (service, settings.aws_endpoint_url, settings.region)
    with _lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            config = BotoConfig(
                connect_timeout=AWS_CONNECT_TIMEOUT_S,
                read_timeout=AWS_READ_TIMEOUT_S,
                retries={"mode": "standard"},
            )
            # boto3.client() is not thread-safe; building under the lock keeps concurrent cold calls safe.
            client = boto3.client(service, region_name=settings.region, config=config)  # type: ignore[call-overload]
            _clients[key] = client
        return client


def _config(settings: Settings) -> Config:
    with _lock:
        config = _configs.get(settings.config_path)
        if config is None:
            from macie_chatops.config import load_bundled_config

            config = _configs[settings.config_path] = load_bundled_config()  # reads ENV_CONFIG_PATH itself
        return config


def _store(settings: Settings) -> FindingStore:
    key = (settings.table, settings.aws_endpoint_url, settings.region)
    dynamodb = _client("dynamodb", settings)
    with _lock:
        store = _stores.get(key)
        if store is None:
            from macie_chatops.store import FindingStore

            store = _stores[key] = FindingStore(dynamodb, settings.table)
        return store


def _slack_key(settings: Settings) -> tuple[str, str | None, str | None, str | None]:
    return (settings.secret_id, settings.slack_api_url, settings.aws_endpoint_url, settings.region)


def _web_client(settings: Settings) -> WebClient:
    key = _slack_key(settings)
    with _lock:
        cached = _web_clients.get(key)
    if cached is not None:
        return cached
    from macie_chatops.slack_client import build_web_client
    from macie_chatops.slack_secrets import load_slack_secrets

    bot_token = load_slack_secrets(_client("secretsmanager", settings), settings.secret_id).bot_token
    web_client = build_web_client(bot_token, base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT_S)
    with _lock:
        return _web_clients.setdefault(key, web_client)


def _forget_slack_token(settings: Settings) -> None:
    with _lock:
        _web_clients.pop(_slack_key(settings), None)


def dependencies(settings: Settings, remaining_time_s: Callable[[], float]) -> IntakeDependencies:
    """The intake's dependencies for one invocation (everything but the SlackClient is cached)."""
    from macie_chatops.intake import IntakeDependencies
    from macie_chatops.slack_client import SlackClient

    return IntakeDependencies(
        config=_config(settings),
        store=_store(settings),
        slack=SlackClient(_web_client(settings), remaining_time_s=remaining_time_s),
        sqs=_client("sqs", settings),
        remediation_queue_url=settings.queue_url,
        metrics=metrics,
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()

    def remaining_time_s() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    deadline = datetime.now(UTC) + timedelta(seconds=remaining_time_s()) + LEASE_MARGIN
    deps = dependencies(settings, remaining_time_s)
    request_id = str(getattr(context, "aws_request_id", "") or "local")[:64]
    from macie_chatops.intake import handle_record

    def record_handler(record: SQSRecord) -> str:
        # Unique per delivery attempt: the same SQS message redelivered (or delivered twice) gets another.
        attempt = f"{request_id}/{record.message_id}/{secrets.token_hex(4)}"
        try:
            return handle_record(record.body, deps, attempt=attempt, deadline=deadline).result.value
        except Exception as exc:
            _record_failed(record, exc, settings)
            raise
        finally:
            logger.thread_safe_clear_keys()

    # One processor per invocation: its state is per batch (and tests invoke from several threads).
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event, record_handler, processor, context))


def _record_failed(record: SQSRecord, exc: Exception, settings: Settings) -> None:
    metrics.count("RecordsFailed", error_type=type(exc).__name__)
    fields = {
        "message_id": record.message_id,
        "receive_count": record.attributes.approximate_receive_count,
        "error_type": type(exc).__name__,
    }
    if isinstance(exc, SlackError):
        # Already logged in detail by the intake (with what to fix); the record keeps the error too.
        logger.warning("record returned to the queue after a Slack failure", extra=fields)
        if isinstance(exc, SlackConfigurationError) and exc.error_code in TOKEN_ERRORS:
            _forget_slack_token(settings)
    else:
        logger.exception("record failed: returned to the queue", extra=fields)
