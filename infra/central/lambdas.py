"""What every handler of the central stack shares: the code asset, the dependency layer, the log retention and
the environment naming the state table and the Slack secret; and how a handler's queue follows its timeout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import AssetHashType, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs

from infra.central.foundation import Foundation
from infra.components.handler import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, HandlerFunction
from infra.components.queues import QueueWithDeadLetter
from infra.lambda_bundle import LambdaBundle
from macie_chatops import names

LOG_RETENTION = logs.RetentionDays.ONE_YEAR
# AWS: an SQS event source's queue should keep a message invisible for at least 6x the function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6


def visibility_timeout(function_timeout: Duration) -> Duration:
    """The visibility timeout of a queue consumed by a function with this timeout."""
    return Duration.seconds(function_timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR)


@dataclass(frozen=True)
class ConsumedQueue:
    """A queue one handler consumes, with its dead-letter queue: a received message stays invisible for
    :func:`visibility_timeout` of the handler's timeout and goes to the dead letters after ``max_receive_count``
    receives."""

    queue_name: str
    dead_letter_queue_name: str
    consumer_timeout: Duration
    max_receive_count: int

    def build(self, stack: Stack, construct_id: str, foundation: Foundation) -> QueueWithDeadLetter:
        """The queues, under the stack's key. ``construct_id`` makes their logical ids, which are pinned
        (tests/functional/infra/test_logical_ids.py): a changed one replaces the queue and loses its messages."""
        return QueueWithDeadLetter(
            stack,
            construct_id,
            queue_name=self.queue_name,
            dead_letter_queue_name=self.dead_letter_queue_name,
            encryption_key=foundation.key,
            visibility_timeout=visibility_timeout(self.consumer_timeout),
            max_receive_count=self.max_receive_count,
        )

    @property
    def max_age(self) -> Duration:
        """How old a message can get while every receive it is allowed runs: older, nothing receives the queue."""
        return Duration.seconds(visibility_timeout(self.consumer_timeout).to_seconds() * self.max_receive_count)


def consume(handler: HandlerFunction, queue: QueueWithDeadLetter, *, batch_size: int, max_concurrency: int) -> None:
    """``handler`` receives the queue's messages and reports which of a batch failed (only those are retried).

    It may also send to its own queue: a record Slack cannot take yet is re-sent with a delay (the runtime's
    ``run_sqs_batch``, docs/architecture.md §22 Pacing) rather than failed."""
    queue.grant_send(handler.function)
    handler.function.add_event_source(
        event_sources.SqsEventSource(
            queue.queue, batch_size=batch_size, report_batch_item_failures=True, max_concurrency=max_concurrency
        )
    )


class HandlerAssets:
    def __init__(self, stack: Stack, bundle: LambdaBundle, foundation: Foundation) -> None:
        self.dependencies = lambda_.LayerVersion(
            stack,
            "Dependencies",
            description="macie-chatops runtime dependencies (aws-lambda-powertools, pydantic, slack-sdk), pinned",
            code=lambda_.Code.from_asset(
                str(bundle.dependencies_dir), asset_hash=bundle.dependencies_hash, asset_hash_type=AssetHashType.CUSTOM
            ),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
        )
        self.code = lambda_.Code.from_asset(
            str(bundle.code_dir), asset_hash=bundle.code_hash, asset_hash_type=AssetHashType.CUSTOM
        )
        self.logs_key = foundation.logs_key
        self.environment: Mapping[str, str] = {
            names.ENV_STATE_TABLE: foundation.state.table.table_name,
            names.ENV_SLACK_SECRET_ARN: foundation.slack_secret.secret.secret_arn,
        }

    def handler(
        self,
        stack: Stack,
        construct_id: str,
        *,
        function_name: str,
        handler: str,
        description: str,
        timeout: Duration,
        memory_size: int,
        environment: Mapping[str, str] | None = None,
        role_name: str | None = None,
        reserved_concurrent_executions: int | None = None,
        snap_start: bool = False,
    ) -> HandlerFunction:
        """A handler on the shared code and layer; ``environment`` adds to the shared one."""
        return HandlerFunction(
            stack,
            construct_id,
            function_name=function_name,
            handler=handler,
            description=description,
            code=self.code,
            dependencies=self.dependencies,
            environment={**self.environment, **(environment or {})},
            timeout=timeout,
            memory_size=memory_size,
            log_retention=LOG_RETENTION,
            log_encryption_key=self.logs_key,
            role_name=role_name,
            reserved_concurrent_executions=reserved_concurrent_executions,
            snap_start=snap_start,
        )
