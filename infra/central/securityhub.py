"""The Security Hub room (docs/architecture.md §17), built only with ``security_hub.enabled``: the state table's
stream -> the updater -> BatchUpdateFindings in the finding's region; the stream records it gives up on -> its
dead-letter queue. Its alarms (dead letters, errors, failed updates) go to the one alarm topic."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from infra.central.foundation import Foundation
from infra.central.lambdas import HandlerAssets
from infra.components.alarms import PERIOD, OperationalAlarms
from infra.components.queues import dead_letter_queue
from macie_chatops import names
from macie_chatops.config import Config
from stacksets.nag import acknowledge

UPDATER_TIMEOUT = Duration.minutes(1)  # a batch is at most 10 BatchUpdateFindings calls and 10 audit writes
UPDATER_MEMORY_MB = 256
STREAM_BATCH_SIZE = 10
# A stream record is retried this many times, then described in the dead-letter queue; meanwhile the shard's
# later records wait, so a Security Hub outage delays updates, in order, and never drops them silently.
STREAM_RETRY_ATTEMPTS = 20
STREAM_MAX_RECORD_AGE = Duration.hours(24)  # the stream keeps records 24 hours
STREAM_READ_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")


def hub_arns(stack: Stack, config: Config) -> list[str]:
    """The security account's Security Hub in every configured region (BatchUpdateFindings acts on a hub)."""
    return [
        stack.format_arn(service="securityhub", region=region, resource="hub", resource_name="default")
        for region in config.regions
    ]


class SecurityHub:
    def __init__(self, stack: Stack, config: Config, foundation: Foundation, assets: HandlerAssets) -> None:
        table = foundation.state.table.node.default_child
        assert isinstance(table, dynamodb.CfnTable)
        # On the existing table (an in-place update): every write's old and new item, in order per finding.
        table.stream_specification = dynamodb.CfnTable.StreamSpecificationProperty(
            stream_view_type="NEW_AND_OLD_IMAGES"
        )
        self.stream_arn = table.attr_stream_arn
        self.dead_letter_queue = dead_letter_queue(
            stack, "SecurityHubDeadLetterQueue", queue_name=names.SECURITY_HUB_DLQ_NAME, encryption_key=foundation.key
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is the on-failure destination of the Security Hub updater's stream mapping (descriptions "
            "of the stream records it gave up on); it alarms on its first message, so it needs no DLQ of its own.",
        )
        self.updater = assets.handler(
            stack,
            "SecurityHubUpdater",
            function_name=names.SECURITY_HUB_FUNCTION_NAME,
            handler="macie_chatops.handlers.security_hub.lambda_handler",
            description="sets the Macie finding's workflow status in Security Hub after each outcome",
            timeout=UPDATER_TIMEOUT,
            memory_size=UPDATER_MEMORY_MB,
        )
        self.stream = lambda_.CfnEventSourceMapping(
            stack,
            "SecurityHubStream",
            function_name=self.updater.function.function_name,
            event_source_arn=self.stream_arn,
            starting_position="TRIM_HORIZON",
            batch_size=STREAM_BATCH_SIZE,
            parallelization_factor=1,  # one batch per shard at a time: a finding's changes arrive in order
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=STREAM_RETRY_ATTEMPTS,
            maximum_record_age_in_seconds=int(STREAM_MAX_RECORD_AGE.to_seconds()),
            function_response_types=["ReportBatchItemFailures"],
            destination_config=lambda_.CfnEventSourceMapping.DestinationConfigProperty(
                on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(destination=self.dead_letter_queue.queue_arn)
            ),
        )
        self.stream.node.add_dependency(self.updater.role)  # the mapping is checked against the role's rights
        self._grant(stack, config, foundation)

    def _grant(self, stack: Stack, config: Config, foundation: Foundation) -> None:
        role = self.updater.role
        statements = [
            iam.PolicyStatement(
                sid="ReadTheStateStream", actions=list(STREAM_READ_ACTIONS), resources=[self.stream_arn]
            ),
            iam.PolicyStatement(sid="ListStreams", actions=["dynamodb:ListStreams"], resources=["*"]),
            # append_audit: one conditional UpdateItem, and the item read back when its condition refused it.
            iam.PolicyStatement(
                sid="AuditTheFindings",
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[foundation.state.table.table_arn],
            ),
            iam.PolicyStatement(
                sid="UpdateMacieFindingsInSecurityHub",
                actions=["securityhub:BatchUpdateFindings"],
                resources=hub_arns(stack, config),
            ),
            iam.PolicyStatement(
                sid="DescribeGivenUpRecords",
                actions=["sqs:SendMessage"],
                resources=[self.dead_letter_queue.queue_arn],
            ),
            iam.PolicyStatement(
                sid="EncryptDeadLetters",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[foundation.key.key_arn],
            ),
        ]
        for statement in statements:
            role.add_to_principal_policy(statement)
        foundation.state.grant_key(role, write=True)  # the audit's UpdateItem
        # The stream's records are encrypted with the table key too; Lambda reads them with this role through
        # DynamoDB Streams, whose kms:ViaService name we could not establish, so this decrypt is unconditioned
        # (this key only).
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DecryptTheStateStream", actions=["kms:Decrypt"], resources=[foundation.state_key.key_arn]
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams has no resource type (IAM allows only '*'), and Lambda's stream mapping needs it; "
            "reading records is limited to the state table's stream.",
        )

    def watch(self, alarms: OperationalAlarms) -> None:
        """Its alarms on the one topic: dead letters (updates given up), handler errors, and any failed update."""
        alarms.on_dead_letters(
            "SecurityHubDeadLetters",
            queue=self.dead_letter_queue,
            alarm_name=f"{names.SECURITY_HUB_DLQ_NAME}-not-empty",
            description="Security Hub updates given up after every retry: the findings' workflow status is stale",
        )
        alarms.on_function_errors(
            "SecurityHubUpdaterErrors", function=self.updater.function, alarm_name="SecurityHubUpdater-errors"
        )
        alarms.on_function_throttles(
            "SecurityHubUpdaterThrottles", function=self.updater.function, alarm_name="SecurityHubUpdater-throttles"
        )
        failed = cloudwatch.Alarm(
            alarms,
            "SecurityHubUpdateFailures",
            alarm_name="security-hub-update-failures",
            alarm_description=(
                "security-hub-update-failures: Security Hub refused or could not be reached; the updates are "
                "retried, each failure is in the finding's audit trail (security_hub_update_failed)"
            ),
            metric=cloudwatch.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=names.SECURITY_HUB_UPDATES_METRIC,
                dimensions_map={"service": names.SECURITY_HUB_FUNCTION_NAME, "result": "failed"},
                period=PERIOD,
                statistic="Sum",
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        failed.add_alarm_action(cloudwatch_actions.SnsAction(alarms.topic))
        alarms.alarms.append(failed)
