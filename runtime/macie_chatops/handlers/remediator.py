"""Lambda: the remediation queue's SQS batches (each body is a ``RemediationJob``).

The composition root of the remediator: read the environment once per invocation, build (once per
container) the clients, the config, the member-role sessions and the Slack client, then hand each record
to :func:`macie_chatops.remediation.handle_job`, which does the work (see its module docstring for the
order of writes and every failure path). Powertools' ``BatchProcessor`` reports the records that raised as
``batchItemFailures``, so only they return to the queue.

Time budget: the function runs up to 15 minutes. A job is not started with less than
:data:`MIN_SECONDS_FOR_A_JOB` left; it returns to the queue untouched instead (a move cut off by the
timeout would be safe, see move.py, but wasted). The remediation queue's visibility timeout must be longer
than the function's timeout (the CDK stack sets both).

Caches live for the container and are keyed by their inputs (environment values), so tests can run several
configurations in one process. Logs are JSON with the finding id as correlation id. Metrics (EMF, namespace
``MacieChatOps``, dimension ``service``): ``Jobs`` (by kind, result), ``SlackUpdates`` (by state),
``SlackFailures`` (by kind, error_code), ``JobsFailed`` (by error_type), ``JobsDeferred``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from macie_chatops import names
from macie_chatops.errors import MacieChatOpsError, SlackConfigurationError, SlackError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from slack_sdk.web import WebClient

    from macie_chatops.config import Config
    from macie_chatops.remediation import RemediationDependencies
    from macie_chatops.sessions import MemberSessions
    from macie_chatops.store import FindingStore

SERVICE: Final = "macie-chatops-remediator"
METRICS_NAMESPACE: Final = "MacieChatOps"
MIN_SECONDS_FOR_A_JOB: Final = 60.0
AWS_CONNECT_TIMEOUT_S: Final = 3
AWS_READ_TIMEOUT_S: Final = 10
SLACK_TIMEOUT_S: Final = 10

logger = Logger(service=SERVICE)


class JobDeferredError(MacieChatOpsError):
    """Not enough time left in this invocation to start the job: it returns to the queue untouched."""


class EmfCounter:
    """Counts as CloudWatch embedded metrics, one line each (dimensions differ from record to record)."""

    def count(self, name: str, **dimensions: str) -> None:
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
    secret_id: str
    config_path: str | None
    slack_api_url: str | None
    aws_endpoint_url: str | None
    region: str | None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        required = (names.ENV_STATE_TABLE, names.ENV_SLACK_SECRET_ARN)
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise RuntimeError(f"environment variables not set: {', '.join(missing)}")
        return cls(
            table=env[names.ENV_STATE_TABLE],
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
_sessions: dict[tuple[str, str | None, str | None], MemberSessions] = {}
_web_clients: dict[tuple[str, str | None, str | None, str | None], WebClient] = {}


def clear_caches() -> None:
    """Forget every per-container cache (tests that change the world under the handler)."""
    with _lock:
        _clients.clear()
        _configs.clear()
        _stores.clear()
        _sessions.clear()
        _web_clients.clear()


def _client(service: str, settings: Settings) -> Any:
    key = (service, settings.aws_endpoint_url, settings.region)
    with _lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            config = BotoConfig(
                connect_timeout=AWS_CONNECT_TIMEOUT_S, read_timeout=AWS_READ_TIMEOUT_S, retries={"mode": "standard"}
            )
            client = boto3.client(service, region_name=settings.region, config=config)  # type: ignore[call-overload]
            _clients[key] = client
        return client


def _config(settings: Settings) -> Config:
    with _lock:
        config = _configs.get(settings.config_path)
        if config is None:
            from macie_chatops.config import load_bundled_config

            config = _configs[settings.config_path] = load_bundled_config()
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


def _member_sessions(settings: Settings, config: Config) -> MemberSessions:
    role_name = config.deployment.remediation_role_name
    key = (role_name, settings.aws_endpoint_url, settings.region)
    with _lock:
        sessions = _sessions.get(key)
        if sessions is None:
            from macie_chatops.sessions import MemberSessions

            sessions = _sessions[key] = MemberSessions(role_name=role_name)
        return sessions


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


def dependencies(settings: Settings, remaining_time_s: Any) -> RemediationDependencies:
    """The remediation dependencies for one invocation (everything but the SlackClient is cached)."""
    from macie_chatops.remediation import RemediationDependencies
    from macie_chatops.slack_client import SlackClient

    config = _config(settings)
    return RemediationDependencies(
        config=config,
        store=_store(settings),
        sessions=_member_sessions(settings, config),
        slack=SlackClient(_web_client(settings), remaining_time_s=remaining_time_s),
        metrics=metrics,
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()

    def remaining_time_s() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    deps = dependencies(settings, remaining_time_s)
    from macie_chatops.remediation import handle_job

    def record_handler(record: SQSRecord) -> str:
        try:
            if remaining_time_s() < MIN_SECONDS_FOR_A_JOB:
                metrics.count("JobsDeferred")
                raise JobDeferredError(f"{remaining_time_s():.0f}s left: the job returns to the queue untouched")
            return handle_job(record.body, deps).value
        except Exception as exc:
            _record_failed(record, exc, settings)
            raise
        finally:
            logger.thread_safe_clear_keys()

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event, record_handler, processor, context))


def _record_failed(record: SQSRecord, exc: Exception, settings: Settings) -> None:
    metrics.count("JobsFailed", error_type=type(exc).__name__)
    fields = {
        "message_id": record.message_id,
        "receive_count": record.attributes.approximate_receive_count,
        "error_type": type(exc).__name__,
    }
    if isinstance(exc, SlackError | MacieChatOpsError):
        # Already logged with its detail (and recorded on the finding where there is one).
        logger.warning("job returned to the queue", extra={**fields, "error": str(exc)[:500]})
        from macie_chatops.remediation import TOKEN_ERRORS

        if isinstance(exc, SlackConfigurationError) and exc.error_code in TOKEN_ERRORS:
            with _lock:
                _web_clients.pop(_slack_key(settings), None)
    else:
        logger.exception("job failed: returned to the queue", extra=fields)
