"""Lambda: the intake queue's SQS batches (each body is the EventBridge Macie event JSON).

The finding handler's composition root: each record goes to :func:`macie_chatops.intake.handle_record`
(architecture §5); the auto jobs of the batch are sent together once every record is done (SendMessageBatch,
:func:`macie_chatops.intake.send_auto_jobs`); only the records that raised, or whose job SQS did not take, return to
the queue. Logs are JSON with the finding id as correlation id, never a token or a payload.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops.errors import SlackError
from macie_chatops.handlers._root import (
    AwsTimeouts,
    ContainerCache,
    HandlerMetrics,
    Settings,
    remaining_time,
    run_sqs_batch,
    slack_pacer,
)
from macie_chatops.handlers._tracing import traced

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from macie_chatops.exemptions import Exemption, ExemptionSource
    from macie_chatops.handlers._root import SqsRecord
    from macie_chatops.intake import IntakeDependencies

SERVICE: Final = "macie-chatops-finding"
# The intake lease outlives the invocation's deadline by this much, so clock skew between Lambda hosts
# can never let a second delivery take over a lease whose holder is still running.
LEASE_MARGIN: Final = timedelta(seconds=10)
AWS_TIMEOUTS: Final = AwsTimeouts(connect_s=3, read_s=10)
SLACK_TIMEOUT_S: Final = 10

logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)
_cache = ContainerCache()


def read_settings() -> Settings:
    return Settings.from_env(queue=True)


def clear_caches() -> None:
    """Forget what the container read (tests that change the world under the handler)."""
    _cache.clear()


class ExemptionsOfTheBatch:
    """The exemptions recorded from Slack, read once per account per invocation: the records of one batch are
    handled within seconds of each other, so a flood of one account's findings reads that account's exemptions
    once, not once per finding (docs/architecture.md §9), as if read when the batch started."""

    def __init__(self, source: ExemptionSource) -> None:
        self._source = source
        self._read: dict[str, tuple[Exemption, ...]] = {}

    def for_account(self, account_id: str) -> tuple[Exemption, ...]:
        if account_id not in self._read:
            self._read[account_id] = self._source.for_account(account_id)
        return self._read[account_id]


def dependencies(settings: Settings, remaining_time_s: Callable[[], float]) -> IntakeDependencies:
    """The intake's dependencies for one invocation (everything but the SlackClient is cached)."""
    from macie_chatops.exemption_store import ExemptionStore
    from macie_chatops.intake import IntakeDependencies
    from macie_chatops.jobs import SqsJobQueue
    from macie_chatops.slack_client import SlackClient

    return IntakeDependencies(
        config=_cache.config(settings),
        store=_cache.store(settings, AWS_TIMEOUTS),
        slack=SlackClient(
            _cache.web_client(settings, AWS_TIMEOUTS, slack_timeout_s=SLACK_TIMEOUT_S),
            remaining_time_s=remaining_time_s,
            pacer=slack_pacer(_cache, settings, AWS_TIMEOUTS),
            metrics=metrics,
        ),
        queue=SqsJobQueue(_cache.client("sqs", settings, AWS_TIMEOUTS), settings.queue_url),
        metrics=metrics,
        exemptions=ExemptionsOfTheBatch(
            ExemptionStore(_cache.client("dynamodb", settings, AWS_TIMEOUTS), settings.table)
        ),
        groups=_cache.grouping(settings, AWS_TIMEOUTS),
        signer=_cache.approval_signer(settings, AWS_TIMEOUTS),
    )


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = read_settings()
    remaining_time_s = remaining_time(context)
    deadline = datetime.now(UTC) + timedelta(seconds=remaining_time_s()) + LEASE_MARGIN
    deps = dependencies(settings, remaining_time_s)
    request_id = (context.aws_request_id or "local")[:64]
    from macie_chatops.intake import handle_record, send_auto_jobs
    from macie_chatops.job_queue import JobBatch, SqsJobQueue

    # A record's auto job waits in the batch's outbox, under the record's message id, until every record is done.
    sqs = _cache.client("sqs", settings, AWS_TIMEOUTS)
    jobs = JobBatch(SqsJobQueue(sqs, settings.queue_url))

    def handle(record: SqsRecord) -> str:
        # Unique per delivery attempt: the same SQS message redelivered (or delivered twice) gets another.
        attempt = f"{request_id}/{record.message_id}/{secrets.token_hex(4)}"
        record_deps = replace(deps, outbox=jobs.outbox(record.message_id))
        return handle_record(record.body, record_deps, attempt=attempt, deadline=deadline).result.value

    def send_jobs() -> Sequence[str]:
        refused = send_auto_jobs(jobs, metrics)
        for _ in refused:
            metrics.count("RecordsFailed", error_type="JobNotQueued")
        return refused

    def failed(record: SqsRecord, exc: Exception, fields: dict[str, Any]) -> None:
        metrics.count("RecordsFailed", error_type=type(exc).__name__)
        if isinstance(exc, SlackError):
            # Already logged in detail by the intake (with what to fix); the record keeps the error too.
            logger.warning("record returned to the queue after a Slack failure", extra=fields)
            _cache.forget_bad_token(settings, exc)
        else:
            logger.exception("record failed: returned to the queue", extra=fields)

    # A record Slack cannot take yet (429, the channel's pace) is re-sent with that delay, not failed.
    return run_sqs_batch(event, context, handle=handle, failed=failed, logger=logger, sqs=sqs, after_batch=send_jobs)
