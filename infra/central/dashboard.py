"""The operations dashboard (``macie-chatops``, issue 17 item 5; architecture §25): findings by the state they
enter, the work queues' ages, the dead-letter queues' depths, Slack's 429s, the move latency, the Slack endpoint.

Every custom metric here is one a handler publishes (namespace ``MacieChatOps``, EMF through
``HandlerMetrics``); its dimensions are the ``service`` of the handler plus those of the call, and a search
expression names them all (``{MacieChatOps,action,finding_type,service}``): CloudWatch matches a metric only
with its exact dimension set. Tests read the handlers' source for the same names and dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs

from infra.components.alarms import OperationalAlarms
from macie_chatops import names

PERIOD: Final = Duration.minutes(5)
WIDTH: Final = 12  # two graphs a row (the dashboard grid is 24 wide)


@dataclass(frozen=True)
class SearchedMetric:
    """A handler metric, graphed one line per combination of its dimensions (``where`` narrows them)."""

    title: str
    metric: str
    dimensions: tuple[str, ...]  # every dimension but ``service``, as the handler publishes them
    statistic: str = "Sum"
    where: str = ""  # e.g. 'outcome="accepted"'

    def expression(self) -> str:
        schema = ",".join(sorted((*self.dimensions, "service")))
        where = f" {self.where}" if self.where else ""
        seconds = int(PERIOD.to_seconds())
        search = f'{{{names.METRICS_NAMESPACE},{schema}}} MetricName="{self.metric}"{where}'
        return f"SEARCH('{search}', '{self.statistic}', {seconds})"


# Findings by the state they enter: the intake's decision (NOTIFIED, PENDING_APPROVAL, APPROVED by auto,
# IGNORED, REJECTED...), the approvers' accepted clicks (APPROVED, DISMISSED, RESTORE_REQUESTED...), and the
# remediator's results (QUARANTINED, BLOCKED, FAILED, RESTORED, PUBLIC_ACCESS_BLOCKED, UNDONE...).
FINDINGS_PER_STATE: Final = (
    SearchedMetric("Findings received, by decision", "Findings", ("action", "finding_type")),
    SearchedMetric("Clicks accepted, by action", "Clicks", ("action", "outcome", "reason"), where='outcome="accepted"'),
    SearchedMetric("Remediation jobs, by result", "Jobs", ("kind", "result")),
)
SLACK_RATE_LIMITS: Final = (
    SearchedMetric("Slack HTTP 429s, by handler and method", names.SLACK_RATE_LIMITED_METRIC, ("method",)),
    SearchedMetric(
        "Slack rate limits not waited out (work re-queued)",
        "SlackFailures",
        ("error_code", "kind"),
        where='error_code="ratelimited"',
    ),
)
MOVE_LATENCY_STATISTICS: Final = ("p50", "p90", "Maximum")


def build(stack: Stack, *, alarms: OperationalAlarms, api: apigateway.RestApi) -> cloudwatch.Dashboard:
    """The dashboard, built after every room has its alarms: it graphs the queues they watch (every work queue
    with an age alarm, every dead-letter queue)."""
    work_queues, dead_letter_queues = alarms.work_queues, alarms.dead_letter_queues
    dashboard = cloudwatch.Dashboard(
        stack, "Dashboard", dashboard_name=names.DASHBOARD_NAME, default_interval=Duration.days(1)
    )
    dashboard.add_widgets(_text("Findings per state (the state each one entered)"))
    dashboard.add_widgets(*(_searched(m) for m in FINDINGS_PER_STATE))
    dashboard.add_widgets(_text("Queues"))
    dashboard.add_widgets(
        _queue_graph("Oldest message age (s), work queues", work_queues, "ApproximateAgeOfOldestMessage", "Maximum"),
        _queue_graph(
            "Messages in dead-letter queues", dead_letter_queues, "ApproximateNumberOfMessagesVisible", "Maximum"
        ),
    )
    dashboard.add_widgets(_text("Slack and the move"))
    dashboard.add_widgets(*(_searched(m) for m in SLACK_RATE_LIMITS))
    dashboard.add_widgets(_move_latency(), _slack_endpoint(api))
    return dashboard


def _text(title: str) -> cloudwatch.TextWidget:
    return cloudwatch.TextWidget(markdown=f"## {title}", width=24, height=1)


def _searched(metric: SearchedMetric) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=metric.title,
        left=[cloudwatch.MathExpression(expression=metric.expression(), using_metrics={}, period=PERIOD)],
        width=WIDTH,
        stacked=True,
    )


def _queue_graph(
    title: str, queues: Sequence[tuple[str, sqs.IQueue]], metric_name: str, statistic: str
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title,
        left=[queue.metric(metric_name, statistic=statistic, period=PERIOD, label=label) for label, queue in queues],
        width=WIDTH,
    )


def _move_latency() -> cloudwatch.GraphWidget:
    """The remediator's seconds per job that moved an object into quarantine."""
    return cloudwatch.GraphWidget(
        title="Move latency (s): quarantine jobs that moved the object",
        left=[
            cloudwatch.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=names.JOB_SECONDS_METRIC,
                dimensions_map={"service": names.REMEDIATOR_FUNCTION_NAME, "result": "quarantined"},
                statistic=statistic,
                period=PERIOD,
                label=statistic,
            )
            for statistic in MOVE_LATENCY_STATISTICS
        ],
        width=WIDTH,
    )


def _slack_endpoint(api: apigateway.RestApi) -> cloudwatch.GraphWidget:
    """Requests, refusals (4XX: the validator, bad signatures, 429s of the throttle) and errors of the endpoint."""
    return cloudwatch.GraphWidget(
        title="Slack endpoint: requests, 4XX, 5XX",
        left=[
            api.metric_count(period=PERIOD, label="requests"),
            api.metric_client_error(period=PERIOD, label="4XX"),
            api.metric_server_error(period=PERIOD, label="5XX"),
        ],
        right=[api.metric_latency(period=PERIOD, statistic="p99", label="latency p99 (ms)")],
        width=WIDTH,
    )
