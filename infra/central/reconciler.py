"""The reconciler room: the scheduled reconciler that hands Macie findings no event delivered to the intake queue
(docs/architecture.md §13), its least-privilege grants and its alarms."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam

from infra.central.foundation import Foundation
from infra.central.intake import Intake
from infra.central.lambdas import HandlerAssets
from infra.components.alarms import OperationalAlarms
from macie_chatops import names
from macie_chatops.config import Config
from stacksets.nag import acknowledge

# Per region one listing page and one GetFindings per 50 findings, a read per finding and a send per lost one:
# a back-fill of 90 days of a busy organisation is the long case, and the next run resumes where this one stopped.
RECONCILER_TIMEOUT = Duration.minutes(10)
RECONCILE_RETRIES = 0  # a failed run keeps its watermarks: the next scheduled run is the retry
MACIE_READ_ACTIONS = ("macie2:ListFindings", "macie2:GetFindings")


class Reconciler:
    def __init__(self, stack: Stack, config: Config, foundation: Foundation, assets: HandlerAssets, intake: Intake):
        self.every = Duration.minutes(config.reconcile.every_minutes)
        environment = {names.ENV_INTAKE_QUEUE_URL: intake.queue.queue.queue_url}
        if not config.administrator_is_security_account:
            environment[names.ENV_MACIE_READER_ROLE_ARN] = reader_role_arn(stack, config)
        self.reconciler = assets.handler(
            stack,
            "Reconciler",
            function_name=names.RECONCILER_FUNCTION_NAME,
            handler="macie_chatops.handlers.reconciler.lambda_handler",
            description="hands the Macie administrator's findings that no event delivered to the intake queue",
            environment=environment,
            timeout=RECONCILER_TIMEOUT,
            memory_size=512,
            role_name=names.RECONCILER_ROLE_NAME,  # the administrator's reader role trusts this name
            reserved_concurrent_executions=1,  # runs never overlap: one writer per watermark
        )
        self.schedule = events.Rule(
            stack,
            "ReconcileSchedule",
            rule_name=names.RECONCILER_SCHEDULE_RULE_NAME,
            description="runs the macie-chatops reconciler: every finding Macie holds reaches the intake",
            schedule=events.Schedule.rate(self.every),
            targets=[
                targets.LambdaFunction(
                    self.reconciler.function,
                    dead_letter_queue=foundation.delivery_dead_letter_queue,
                    retry_attempts=RECONCILE_RETRIES,
                )
            ],
        )
        role = self.reconciler.role
        intake.queue.grant_send(role)  # recovered findings, as the central rule delivers events
        # Is there a record (GetItem), and the watermarks (GetItem, UpdateItem): no puts, scans, queries, deletes.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="RecordsAndWatermarks",
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[foundation.state.table.table_arn],
            )
        )
        foundation.state.grant_key(role, write=True)
        if config.administrator_is_security_account:
            _read_own_macie(role)
        else:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="AssumeMacieReader", actions=["sts:AssumeRole"], resources=[reader_role_arn(stack, config)]
                )
            )

    def watch(self, alarms: OperationalAlarms) -> None:
        """``ReconcileErrors``: a region was not reconciled (published by the handler); and the handler's errors."""
        alarms.on_handler_metric(
            "ReconcileErrors",
            metric=cloudwatch.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=names.RECONCILE_ERRORS_METRIC,
                dimensions_map={"service": names.RECONCILER_FUNCTION_NAME},
                period=self.every,
                statistic="Sum",
            ),
            alarm_name="reconcile-errors",
            description=(
                "reconcile-errors: the reconciler could not read Macie's findings or hand them to the intake in a "
                "region; its watermark stays and the next run resumes (see the reconciler's error logs)"
            ),
        )
        alarms.on_function_errors("ReconcilerErrors", function=self.reconciler.function, alarm_name="Reconciler-errors")
        alarms.on_function_throttles(
            "ReconcilerThrottles", function=self.reconciler.function, alarm_name="Reconciler-throttles"
        )


def reader_role_arn(stack: Stack, config: Config) -> str:
    return f"arn:{stack.partition}:iam::{config.macie_administrator_id}:role/{names.MACIE_READER_ROLE_NAME}"


def _read_own_macie(role: iam.IRole) -> None:
    role.add_to_principal_policy(
        iam.PolicyStatement(sid="ReadMacieFindings", actions=list(MACIE_READ_ACTIONS), resources=["*"])
    )
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "Macie's ListFindings and GetFindings have no resource type to scope them to (the service authorization "
        "reference lists none), so they are granted on '*'; these two read-only actions are the whole grant.",
    )
