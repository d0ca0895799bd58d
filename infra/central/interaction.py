"""The interaction room: Slack's click endpoint, the interaction handler behind it, and the handler's own queue of
bulk-approval continuations (docs/architecture.md §22, "Bulk decisions")."""

from __future__ import annotations

from aws_cdk import Annotations, Duration, Names, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_

from infra.central.foundation import Foundation
from infra.central.lambdas import LOG_RETENTION, ConsumedQueue, HandlerAssets
from infra.central.remediation import Remediation
from infra.components.alarms import OperationalAlarms
from infra.components.slack_api import SlackInteractionsApi
from macie_chatops import names

INTERACTION_TIMEOUT = Duration.seconds(10)  # Slack wants an answer within 3 s; the rest is queued
INTERACTION_MEMORY_MB = 1024  # more memory = more CPU = a shorter cold start inside Slack's 3 s
# Reserved: clicks always find concurrency (the account's pool is shared with every other function in it), and
# junk that carries made-up Slack headers (refused on its HMAC in milliseconds) cannot take more than this
# (architecture §25). Lambda keeps it out of the account's unreserved pool.
INTERACTION_CONCURRENCY = 100
# Continuations: one per invocation (each works until the invocation's time runs short), two at a time at most
# (the event source's minimum: they take 2 of the 100 reserved, clicks keep the rest).
CONTINUATION_BATCH_SIZE = 1
CONTINUATION_MAX_CONCURRENCY = 2
CONTINUATION_MAX_RECEIVES = 3
CONTINUATION_QUEUE = ConsumedQueue(
    names.BULK_CONTINUATION_QUEUE_NAME, names.BULK_CONTINUATION_DLQ_NAME, INTERACTION_TIMEOUT, CONTINUATION_MAX_RECEIVES
)
# SnapStart (docs/architecture.md §6): every deploy publishes a version from the code, initialized once (the handler's
# before-snapshot hook primes a first click) and snapshotted; both event sources invoke it through this alias.
LIVE_ALIAS = "live"


class Interaction:
    def __init__(
        self, stack: Stack, foundation: Foundation, assets: HandlerAssets, jobs: Remediation, *, waf: bool = False
    ) -> None:
        self.interaction_handler = assets.handler(
            stack,
            "InteractionHandler",
            function_name=names.INTERACTION_FUNCTION_NAME,
            handler="macie_chatops.handlers.interaction.lambda_handler",
            description="verifies Slack clicks, records the approver's decision, queues the work",
            environment=jobs.job_environment(),
            timeout=INTERACTION_TIMEOUT,
            memory_size=INTERACTION_MEMORY_MB,
            reserved_concurrent_executions=INTERACTION_CONCURRENCY,  # the function's: every version shares it
            snap_start=True,
        )
        function = self.interaction_handler.function
        self.live = lambda_.Alias(stack, "InteractionLive", alias_name=LIVE_ALIAS, version=function.current_version)
        Annotations.of(function).acknowledge_warning(
            "@aws-cdk/aws-lambda:snapStartRequirePublish", "the live alias invokes the version published from the code"
        )
        foundation.grant_records_and_slack(self.interaction_handler)
        jobs.accept_jobs_from(self.interaction_handler)
        # Its second event source: a bulk approval one click cannot finish continues here, signed (kms:GenerateMac
        # on the approval key, granted by the key's policy: infra/central/approvals.py) and re-sent to itself.
        self.continuations = CONTINUATION_QUEUE.build(stack, "BulkContinuations", foundation)
        self._consume_continuations()
        self.interaction_handler.function.add_environment(
            names.ENV_BULK_CONTINUATION_QUEUE_URL, self.continuations.queue.queue_url
        )
        self.api = SlackInteractionsApi(
            stack,
            "SlackInteractions",
            api_name=names.SLACK_API_NAME,
            path=names.SLACK_INTERACTIONS_PATH,
            handler=self.live,  # the integration's URI and API Gateway's invoke permission name the alias
            log_retention=LOG_RETENTION,
            log_encryption_key=foundation.logs_key,
            waf=waf,
        )

    def _consume_continuations(self) -> None:
        """The continuation queue invokes the live alias, one continuation at a time, two at most at once, and only
        its failed records return to the queue; the function may send to it (a continuation re-sent to itself).

        What ``lambdas.consume`` builds, with the alias as the target: the mapping keeps the construct path (and the
        logical id) it had on the function before SnapStart, so CloudFormation updates it in place."""
        function, queue = self.interaction_handler.function, self.continuations.queue
        self.continuations.grant_send(function)
        queue.grant_consume_messages(function)
        lambda_.EventSourceMapping(
            function,
            f"SqsEventSource:{Names.node_unique_id(queue.node)}",
            target=self.live,
            event_source_arn=queue.queue_arn,
            batch_size=CONTINUATION_BATCH_SIZE,
            max_concurrency=CONTINUATION_MAX_CONCURRENCY,
            report_batch_item_failures=True,
        )

    def watch(self, alarms: OperationalAlarms) -> None:
        """The continuation queue: dead letters (a bulk approval stopped part-way: its members left still await
        approval), a queue nothing receives, and continuations refused (forged, or too old to act on)."""
        alarms.on_dead_letters(
            "BulkContinuationDeadLetters",
            queue=self.continuations.dead_letter_queue,
            alarm_name=f"{names.BULK_CONTINUATION_DLQ_NAME}-not-empty",
            description="bulk-approval continuations the interaction handler failed on 3 times: the members they "
            "did not reach still await approval (the digest offers them); the handler's error logs say why",
        )
        max_age = CONTINUATION_QUEUE.max_age
        alarms.on_oldest_message_age(
            "BulkContinuationOldestMessage",
            queue=self.continuations.queue,
            max_age=max_age,
            alarm_name=f"{names.BULK_CONTINUATION_QUEUE_NAME}-oldest-message",
            description=(
                f"bulk-approval continuations waited longer than every retry could take ({int(max_age.to_seconds())}"
                " s): nothing is receiving the queue (throttled or disabled event source); past 15 minutes from the "
                "click they are refused as stale; see docs/deploy.md (operating it)"
            ),
        )
        alarms.on_handler_metric(
            "BulkContinuationsRefused",
            metric=cloudwatch.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=names.BULK_CONTINUATIONS_REFUSED_METRIC,
                dimensions_map={"service": names.INTERACTION_FUNCTION_NAME, "reason": "bad_mac"},
                period=Duration.minutes(5),
                statistic="Sum",
            ),
            alarm_name="bulk-continuations-forged",
            description=(
                "a bulk-approval continuation whose MAC is not its own reached the interaction handler: something "
                "other than the handler sends to its queue; nothing was approved; docs/architecture.md §22"
            ),
        )
