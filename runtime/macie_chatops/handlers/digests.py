"""Lambda: the digest queue's SQS batches (each body is ``{"group_id": ...}``; docs/architecture.md §22).

The digest writer's composition root: each record goes to :func:`macie_chatops.digest_writer.write_digest`; only
the records that raised return to the queue. Its Slack writes take the channel's pace (``ChannelPacer``); a write
Slack cannot take within this invocation is re-sent to the queue with the delay (``run_sqs_batch(sqs=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
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

    from macie_chatops.digest_writer import WriterDependencies
    from macie_chatops.handlers._root import SqsRecord

SERVICE: Final = "macie-chatops-digest-writer"
AWS_TIMEOUTS: Final = AwsTimeouts(connect_s=3, read_s=10)
SLACK_TIMEOUT_S: Final = 10

logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)
_cache = ContainerCache()


def read_settings() -> Settings:
    settings = Settings.from_env(queue=False)
    if not settings.digest_queue_url:
        raise RuntimeError("environment variable not set: DIGEST_QUEUE_URL")
    return settings


def clear_caches() -> None:
    """Forget what the container read (tests that change the world under the handler)."""
    _cache.clear()


def dependencies(settings: Settings, remaining_time_s: Callable[[], float]) -> WriterDependencies:
    from macie_chatops.digest_writer import WriterDependencies
    from macie_chatops.slack_client import SlackClient

    grouping = _cache.grouping(settings, AWS_TIMEOUTS)
    if grouping is None:  # pragma: no cover - read_settings requires the queue
        raise RuntimeError("the digest writer needs the digest queue")
    return WriterDependencies(
        groups=grouping.store,
        findings=_cache.store(settings, AWS_TIMEOUTS),
        slack=SlackClient(
            _cache.web_client(settings, AWS_TIMEOUTS, slack_timeout_s=SLACK_TIMEOUT_S),
            remaining_time_s=remaining_time_s,
            pacer=slack_pacer(_cache, settings, AWS_TIMEOUTS),
            metrics=metrics,
        ),
        digests=grouping.digests,
        metrics=metrics,
        pace_s=grouping.pace_s,
    )


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = read_settings()
    deps = dependencies(settings, remaining_time(context))
    from macie_chatops.digest_writer import write_digest

    def handle(record: SqsRecord) -> str:
        return write_digest(record.body, deps).value

    def failed(record: SqsRecord, exc: Exception, fields: dict[str, Any]) -> None:
        metrics.count("RecordsFailed", error_type=type(exc).__name__)
        if isinstance(exc, SlackError):
            logger.warning("digest returned to the queue after a Slack failure", extra={**fields, "error": str(exc)})
            _cache.forget_bad_token(settings, exc)
        else:
            logger.exception("digest failed: returned to the queue", extra=fields)

    sqs = _cache.client("sqs", settings, AWS_TIMEOUTS)
    return run_sqs_batch(event, context, handle=handle, failed=failed, logger=logger, sqs=sqs)
