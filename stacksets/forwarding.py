"""Forwarding a default bus's Macie findings to the central bus, as every forwarder outside the central stack
does: the rule, its DLQ, the DLQ's alarm (relayed by the central stack, which relays alarms named with
``names.MEMBER_ALARM_NAME_PREFIX``), and the role the rules use. Used by the member stacks and by the Macie
administrator's forwarding stack, with the member stacks' construct ids, so their templates do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.arns import central_bus_arn
from stacksets.event_patterns import macie_finding_pattern
from stacksets.nag import acknowledge

DLQ_RETENTION = Duration.days(14)


@dataclass(frozen=True)
class Forwarding:
    dead_letter_queue: sqs.Queue
    forward_rule: events.Rule
    dead_letter_alarm: cloudwatch.Alarm
    alarm_rule: events.Rule


def forwarding_role(scope: Construct, *, config: Config, role_name: str, description: str) -> iam.Role:
    """The role this account's EventBridge rules use to put events on the central bus, and nowhere else."""
    role = iam.Role(
        scope,
        "ForwardRole",
        role_name=role_name,
        description=description,
        assumed_by=iam.ServicePrincipal("events.amazonaws.com").with_conditions(
            {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
        ),
    )
    role.add_to_principal_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[central_bus_arn(config)]))
    return role


def forward_to_central_bus(
    scope: Construct,
    *,
    config: Config,
    role: iam.IRole,
    rule_name: str,
    dead_letter_queue_name: str,
    alarm_name: str,
    alarm_rule_name: str,
    rule_description: str,
    alarm_description: str,
) -> Forwarding:
    """The rule, its DLQ, the DLQ's alarm and the alarm's forwarding rule, in ``scope`` (a stack)."""
    if not alarm_name.startswith(names.MEMBER_ALARM_NAME_PREFIX):
        raise ValueError(f"{alarm_name!r}: the central stack relays only {names.MEMBER_ALARM_NAME_PREFIX}* alarms")
    dead_letter_queue = sqs.Queue(
        scope,
        "ForwardDeadLetterQueue",
        queue_name=dead_letter_queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )
    acknowledge(
        dead_letter_queue,
        "AwsSolutions-SQS3",
        "This queue is the forwarding rules' dead-letter queue (events the central bus refused); its alarm "
        "is relayed to the security team's topic and an operator re-sends the events.",
    )
    central_bus = events.EventBus.from_event_bus_arn(scope, "CentralBus", central_bus_arn(config))
    forward_rule = events.Rule(
        scope,
        "ForwardRule",
        rule_name=rule_name,
        description=rule_description,
        event_pattern=macie_finding_pattern(),
        targets=[targets.EventBus(central_bus, role=role, dead_letter_queue=dead_letter_queue)],
    )
    dead_letter_alarm = cloudwatch.Alarm(
        scope,
        "ForwardDeadLetterAlarm",
        alarm_name=alarm_name,
        alarm_description=alarm_description,
        metric=dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5), statistic="Maximum"
        ),
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm_rule = events.Rule(
        scope,
        "AlarmForwardRule",
        rule_name=alarm_rule_name,
        description="macie-chatops: this stack's alarm state changes -> the central bus (alarm topic)",
        event_pattern=events.EventPattern(
            source=["aws.cloudwatch"],
            detail_type=["CloudWatch Alarm State Change"],
            resources=[dead_letter_alarm.alarm_arn],
        ),
        targets=[targets.EventBus(central_bus, role=role, dead_letter_queue=dead_letter_queue)],
    )
    return Forwarding(dead_letter_queue, forward_rule, dead_letter_alarm, alarm_rule)
