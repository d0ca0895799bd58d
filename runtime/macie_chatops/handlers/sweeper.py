"""Lambda: the sweeper, invoked by an EventBridge schedule (the event's content is not used).

The composition root of :func:`macie_chatops.sweeper.sweep`. The Slack client is built only when a finding's
message must say it is stuck, so a Slack or Secrets Manager outage never keeps a job from being re-queued.
A failed sweep raises (the function's Errors alarm fires, and EventBridge retries the invocation) after the
metrics of what was done are published: it never reads as "nothing stuck". The metrics are one document per
sweep; ``StuckApprovals`` (findings given up on and still APPROVED, which the stack alarms on) is published
every sweep, 0 included, so the alarm clears once they are handled.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.handlers._root import AwsTimeouts, ContainerCache, HandlerMetrics, Settings, remaining_time
from macie_chatops.handlers._tracing import traced

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from macie_chatops.slack_messages import SlackMessage
    from macie_chatops.sweeper import SweepDependencies, SweepReport

SERVICE: Final = names.SWEEPER_FUNCTION_NAME  # the metrics' service dimension, as the stack's alarm reads it
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


class _LazySlack:
    """The Slack client, built (the bot token read) only when a message is updated."""

    def __init__(self, settings: Settings, remaining_time_s: Callable[[], float]) -> None:
        self._settings = settings
        self._remaining_time_s = remaining_time_s

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        from macie_chatops.slack_client import SlackClient

        web_client = _cache.web_client(self._settings, AWS_TIMEOUTS, slack_timeout_s=SLACK_TIMEOUT_S)
        try:
            slack = SlackClient(web_client, remaining_time_s=self._remaining_time_s, metrics=metrics)
            slack.update(channel, ts, message)
        except Exception as exc:
            _cache.forget_bad_token(self._settings, exc)
            raise


def dependencies(settings: Settings, remaining_time_s: Callable[[], float]) -> SweepDependencies:
    """The sweep's dependencies for one invocation (the clients are cached per container)."""
    from macie_chatops.job_queue import SqsJobQueue
    from macie_chatops.sweeper import SweepDependencies, SweepPolicy

    return SweepDependencies(
        store=_cache.store(settings, AWS_TIMEOUTS),
        queue=SqsJobQueue(_cache.client("sqs", settings, AWS_TIMEOUTS), settings.queue_url),
        slack=_LazySlack(settings, remaining_time_s),
        policy=SweepPolicy.from_env(os.environ),
        verifier=_cache.approval_verifier(settings, AWS_TIMEOUTS),
        groups=None if (grouping := _cache.grouping(settings, AWS_TIMEOUTS)) is None else grouping.store,
    )


def _publish(report: SweepReport) -> dict[str, int]:
    from macie_chatops.sweeper import Verdict

    counts = {
        "StaleApprovals": report.candidates,
        "ApprovalsRequeued": report.count(Verdict.REQUEUE),
        "ApprovalsDeferred": report.count(Verdict.DEFERRED),
        names.STUCK_APPROVALS_METRIC: report.stuck,
        "SweepErrors": len(report.errors),
        names.UNVERIFIED_APPROVALS_METRIC: report.count(Verdict.UNVERIFIED),
    }
    metrics.publish(counts)
    return counts


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from macie_chatops.sweeper import SweepError, sweep

    settings = read_settings()
    deps = dependencies(settings, remaining_time(context))
    try:
        report = sweep(deps)
    except SweepError as exc:
        counts = _publish(exc.report)
        logger.error("sweep failed for some findings; the others were swept", extra={**counts, "error": str(exc)})
        raise
    except Exception:
        # The candidates could not even be listed: no count is known, so none is published but the failure.
        metrics.count("SweepErrors")
        logger.exception("sweep failed: the approved findings could not be listed")
        raise
    counts = _publish(report)
    if report.stuck:
        logger.error("approved quarantines are stuck: operators must act", extra=counts)
    else:
        logger.info("sweep done", extra=counts)
    return counts
