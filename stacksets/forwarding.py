"""Forwarding a default bus's Macie findings to the central bus, as every forwarder outside the central stack does.

One rule on the account's default bus (the one Macie pattern) -> the central bus (cross-region allowed), through
a role, with a dead-letter queue; an alarm on that DLQ, whose state changes go to the central bus too (the central
stack relays alarms named with ``names.MEMBER_ALARM_NAME_PREFIX`` to its topic). Used by the member regional
stack and by the Macie administrator's forwarding stack; the construct ids are the member stack's own, so its
template (and any deployed instance) does not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
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
