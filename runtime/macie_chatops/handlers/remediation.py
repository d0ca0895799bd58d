"""Lambda: the remediation queue's SQS batches (each body is a ``RemediationJob``).

The remediator's composition root: each record goes to :func:`macie_chatops.remediation.handle_job`; only the
records that raised return to the queue. The function runs up to 15 minutes, and a job is not started with
less than :data:`MIN_SECONDS_FOR_A_JOB` left: it returns to the queue untouched instead (a move cut off by the
timeout would be safe, but wasted). The queue's visibility timeout is longer than the function's timeout (the
central stack sets both).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.errors import MacieChatOpsError, SlackError
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

    from macie_chatops.config import Config
    from macie_chatops.handlers._root import SqsRecord
    from macie_chatops.remediation import RemediationDependencies
    from macie_chatops.sessions import MemberSessions

SERVICE: Final = "macie-chatops-remediator"
MIN_SECONDS_FOR_A_JOB: Final = 60.0
AWS_TIMEOUTS: Final = AwsTimeouts(connect_s=3, read_s=10)
SLACK_TIMEOUT_S: Final = 10

logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)
_cache = ContainerCache()


class JobDeferredError(MacieChatOpsError):
    """Not enough time left in this invocation to start the job: it returns to the queue untouched."""


def read_settings() -> Settings:
    return Settings.from_env(queue=False)


def clear_caches() -> None:
    """Forget what the container read (tests that change the world under the handler)."""
    _cache.clear()


def _member_sessions(settings: Settings, config: Config) -> MemberSessions:
    role_name = config.deployment.remediation_role_name

    def build() -> MemberSessions:
        from macie_chatops.sessions import MemberSessions

        return MemberSessions(role_name=role_name)

    return _cache.get(("member_sessions", role_name, settings.aws_endpoint_url, settings.region), build)


def dependencies(settings: Settings, remaining_time_s: Callable[[], float]) -> RemediationDependencies:
    """The remediation dependencies for one invocation (everything but the SlackClient is cached)."""
    from macie_chatops.remediation import RemediationDependencies
    from macie_chatops.slack_client import SlackClient

    config = _cache.config(settings)
    return RemediationDependencies(
        config=config,
        store=_cache.store(settings, AWS_TIMEOUTS),
        sessions=_member_sessions(settings, config),
        slack=SlackClient(
            _cache.web_client(settings, AWS_TIMEOUTS, slack_timeout_s=SLACK_TIMEOUT_S),
            remaining_time_s=remaining_time_s,
            pacer=slack_pacer(_cache, settings, AWS_TIMEOUTS),
            metrics=metrics,
        ),
        metrics=metrics,
        verifier=_cache.approval_verifier(settings, AWS_TIMEOUTS),
        groups=None if (grouping := _cache.grouping(settings, AWS_TIMEOUTS)) is None else grouping.store,
    )


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = read_settings()
    remaining_time_s = remaining_time(context)
    deps = dependencies(settings, remaining_time_s)
    from macie_chatops.remediation import handle_job

    def handle(record: SqsRecord) -> str:
        if remaining_time_s() < MIN_SECONDS_FOR_A_JOB:
            metrics.count("JobsDeferred")
            raise JobDeferredError(f"{remaining_time_s():.0f}s left: the job returns to the queue untouched")
        started = time.monotonic()
        result = handle_job(record.body, deps).value
        # A move's latency (result "quarantined"), a restore's, a public access block's... (the dashboard)
        metrics.seconds(names.JOB_SECONDS_METRIC, time.monotonic() - started, result=result)
        return result

    def failed(record: SqsRecord, exc: Exception, fields: dict[str, Any]) -> None:
        metrics.count("JobsFailed", error_type=type(exc).__name__)
        if isinstance(exc, SlackError | MacieChatOpsError):
            # Already logged with its detail (and recorded on the finding where there is one).
            logger.warning("job returned to the queue", extra={**fields, "error": str(exc)[:500]})
            _cache.forget_bad_token(settings, exc)
        else:
            logger.exception("job failed: returned to the queue", extra=fields)

    # A record Slack cannot take yet (429, the channel's pace) is re-sent with that delay, not failed.
    sqs = _cache.client("sqs", settings, AWS_TIMEOUTS)
    return run_sqs_batch(event, context, handle=handle, failed=failed, logger=logger, sqs=sqs)
