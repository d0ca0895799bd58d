"""Lambda: reminders (hourly schedule) and the escalation summary (daily schedule, ``{"escalate": true}``).

The composition root of :func:`macie_chatops.reminders.run`. The run's clock starts at the schedule's ``time``
(the event's, or the one the rule's input passes on), so the sandbox and the tests move time by sending a later
event instead of waiting; an event with no time runs on the Lambda's clock. A failed step raises after the
metrics are published (the function's Errors alarm fires; the next run retries what was not posted).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.handlers._root import AwsTimeouts, ContainerCache, HandlerMetrics, Settings, remaining_time
from macie_chatops.handlers._tracing import traced

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from macie_chatops.ports import Clock
    from macie_chatops.reminders import ReminderDependencies, ReminderReport
    from macie_chatops.slack_client import SlackClient
    from macie_chatops.slack_messages import SlackMessage

SERVICE: Final = names.REMINDERS_FUNCTION_NAME
AWS_TIMEOUTS: Final = AwsTimeouts(connect_s=3, read_s=10)
SLACK_TIMEOUT_S: Final = 10

logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)
_cache = ContainerCache()


def read_settings() -> Settings:
    return Settings.from_env(queue=False)


def clear_caches() -> None:
    """Forget what the container read (tests that change the world under the handler)."""
    _cache.clear()


class ScheduledRunError(ValueError):
    """The invoking event is not a schedule's (nothing was done)."""


def scheduled_run(event: Any) -> tuple[datetime | None, bool]:
    """(the schedule's time, whether to post the escalation summary) from the invoking event."""
    if not isinstance(event, dict):
        raise ScheduledRunError("the event is not a JSON object")
    escalate = event.get("escalate", False)
    if not isinstance(escalate, bool):
        raise ScheduledRunError(f"escalate must be true or false, got {escalate!r}")
    at = event.get("time")
    if at is None:
        return None, escalate
    try:
        moment = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    except ValueError:
        raise ScheduledRunError(f"time is not an ISO 8601 time: {str(at)[:40]!r}") from None
    if moment.tzinfo is None:
        raise ScheduledRunError("time has no time zone")
    return moment.astimezone(UTC), escalate


def run_clock(start: datetime | None) -> Clock:
    """The clock of one run: ``start`` (the schedule's time), advancing with the real one; else the real one."""
    from macie_chatops.ports import utcnow

    if start is None:
        return utcnow
    began = utcnow()
    return lambda: start + (utcnow() - began)


class SlackWithWorkspace:
    """The SlackClient, with the workspace URL (auth.test) read once per run, when a link is first needed."""

    def __init__(self, client: SlackClient) -> None:
        self._client = client
        self._url: tuple[str | None] | None = None

    def post(self, channel: str, message: SlackMessage) -> str:
        return self._client.post(channel, message)

    def reply(self, channel: str, thread_ts: str, message: SlackMessage) -> str:
        return self._client.reply(channel, thread_ts, message)

    def workspace_url(self) -> str | None:
        if self._url is None:
            self._url = (self._client.auth_test().url,)
        return self._url[0]


def dependencies(settings: Settings, clock: Clock, remaining_time_s: Callable[[], float]) -> ReminderDependencies:
    from macie_chatops.bundled_config import reminder_config
    from macie_chatops.reminders import ReminderDependencies
    from macie_chatops.slack_client import SlackClient
    from macie_chatops.store import FindingStore

    web_client = _cache.web_client(settings, AWS_TIMEOUTS, slack_timeout_s=SLACK_TIMEOUT_S)
    return ReminderDependencies(
        store=FindingStore(_cache.client("dynamodb", settings, AWS_TIMEOUTS), settings.table, clock=clock),
        slack=SlackWithWorkspace(SlackClient(web_client, remaining_time_s=remaining_time_s, metrics=metrics)),
        # What the reminders read of the bundled config, without the config's models: they load no pydantic (§6).
        config=_cache.get(("reminder_config", settings.config_path), reminder_config),
        clock=clock,
    )


def _publish(report: ReminderReport) -> dict[str, int]:
    counts = {
        "RemindersPosted": report.posted(report.reminded),
        "ReviewsEscalated": report.posted(report.escalated),
        "EscalationSummaries": len(report.summaries),
        "ReminderErrors": len(report.errors),
    }
    metrics.publish(counts)
    return counts


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from macie_chatops.reminders import RemindersError, run

    start, escalate = scheduled_run(event)
    settings = read_settings()
    deps = dependencies(settings, run_clock(start), remaining_time(context))
    try:
        report = run(deps, escalate=escalate)
    except RemindersError as exc:
        counts = _publish(exc.report)
        logger.error(
            "some reminder or escalation steps failed; the others were done", extra={**counts, "error": str(exc)}
        )
        raise
    except Exception as exc:
        metrics.count("ReminderErrors")
        _cache.forget_bad_token(settings, exc)
        logger.exception("reminders failed: the open reviews could not be listed or Slack could not be reached")
        raise
    counts = _publish(report)
    logger.info("reminders done", extra={**counts, "escalate": escalate})
    return counts
