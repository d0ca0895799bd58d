"""Operational alarms -> one KMS-encrypted SNS topic the security team subscribes to (which alarms:
infra/central/monitoring.py). Each alarm fires on the first bad datum: a dead letter, a handler error, a failed
delivery, a 5XX answer."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from macie_chatops import names
from stacksets.event_patterns import alarm_state_change_pattern

PERIOD = Duration.minutes(5)


class OperationalAlarms(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, topic_name: str, encryption_key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Topic", topic_name=topic_name, master_key=encryption_key, enforce_ssl=True)
        # What is watched, for the dashboard (infra/central/dashboard.py): (alarm name, queue).
        self.dead_letter_queues: list[tuple[str, sqs.IQueue]] = []
        self.work_queues: list[tuple[str, sqs.IQueue]] = []
        # CloudWatch publishes alarm notifications to the encrypted topic with its service principal.
        encryption_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
            )
        )
        # The SnsTopic rule target lets the EventBridge service principal publish; only our own rules may.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyThisAccountsEventRules",
                effect=iam.Effect.DENY,
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringNotEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self._action = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

    def _alarm(
        self,
        construct_id: str,
        *,
        alarm_name: str,
        metric: cloudwatch.IMetric,
        description: str,
        treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        threshold: float = 1,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=alarm_name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=treat_missing_data,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)

    def on_dead_letters(self, construct_id: str, *, queue: sqs.Queue, alarm_name: str, description: str) -> None:
        self.dead_letter_queues.append((alarm_name.removesuffix("-not-empty"), queue))
        self._alarm(
            construct_id,
            alarm_name=alarm_name,
            metric=queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
            description=description,
        )

    def on_function_errors(self, construct_id: str, *, function: lambda_.Function, alarm_name: str) -> None:
        self._alarm(
            construct_id,
            alarm_name=alarm_name,
            metric=function.metric_errors(period=PERIOD, statistic="Sum"),
            description=f"{alarm_name}: the handler raised (its SQS messages are retried, then dead-lettered)",
        )

    def on_function_throttles(self, construct_id: str, *, function: lambda_.Function, alarm_name: str) -> None:
        self._alarm(
            construct_id,
            alarm_name=alarm_name,
            metric=function.metric_throttles(period=PERIOD, statistic="Sum"),
            description=(
                f"{alarm_name}: Lambda throttled the handler (account concurrency or its reserved concurrency); "
                "its work waits in its queue or, for a schedule or the Slack endpoint, is retried or lost"
            ),
        )

    def on_oldest_message_age(
        self, construct_id: str, *, queue: sqs.Queue, max_age: Duration, alarm_name: str, description: str
    ) -> None:
        """In ALARM when the queue's oldest message is older than ``max_age``: longer than every retry it is
        allowed could take, so nothing is receiving it (throttled, disabled event source mapping, a poison
        consumer)."""
        self.work_queues.append((alarm_name.removesuffix("-oldest-message"), queue))
        self._alarm(
            construct_id,
            alarm_name=alarm_name,
            metric=queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
            description=description,
            threshold=max_age.to_seconds(),
        )

    def on_stuck_approvals(
        self, construct_id: str, *, metric_name: str, service: str, period: Duration, alarm_name: str
    ) -> None:
        """The sweeper publishes how many approved quarantines it has given up on, every sweep (0 included):
        in ALARM while any is stuck, OK once none is. A sweep that publishes nothing (it failed: its Errors
        alarm says so) keeps the state rather than clearing it."""
        self._alarm(
            construct_id,
            alarm_name=alarm_name,
            metric=cloudwatch.Metric(
                namespace=names.METRICS_NAMESPACE,
                metric_name=metric_name,
                dimensions_map={"service": service},
                period=period,
                statistic="Maximum",
            ),
            description=(
                f"{alarm_name}: approved quarantines with no outcome after the sweeper's last automatic re-queue; "
                "see the sweeper's error logs for the finding ids, then docs/deploy.md (stuck approvals)"
            ),
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )

    def on_handler_metric(
        self, construct_id: str, *, metric: cloudwatch.IMetric, alarm_name: str, description: str
    ) -> None:
        """A count a handler publishes when something went wrong (e.g. the reconciler's ``ReconcileErrors``): in
        ALARM at 1 or more in a period; a period with none published is not a failure."""
        self._alarm(construct_id, alarm_name=alarm_name, metric=metric, description=description)

    def on_rule_failures(self, construct_id: str, *, rule: events.Rule, bus_name: str, alarm_name: str) -> None:
        for metric_name in ("FailedInvocations", "InvocationsFailedToBeSentToDLQ"):
            self._alarm(
                f"{construct_id}{metric_name}",
                alarm_name=f"{alarm_name}-{metric_name}",
                metric=cloudwatch.Metric(
                    namespace="AWS/Events",
                    metric_name=metric_name,
                    dimensions_map={"EventBusName": bus_name, "RuleName": rule.rule_name},
                    period=PERIOD,
                    statistic="Sum",
                ),
                description=f"{alarm_name}: the rule could not deliver an event ({metric_name})",
            )

    def on_api_server_errors(self, construct_id: str, *, api: apigateway.RestApi, alarm_name: str) -> None:
        self._alarm(
            construct_id,
            alarm_name=alarm_name,
            metric=api.metric_server_error(period=PERIOD, statistic="Sum"),
            description=f"{alarm_name}: the Slack endpoint answered 5XX (Slack shows the click as failed)",
        )

    def relay_member_alarms(
        self, construct_id: str, *, bus: events.IEventBus, alarm_name_prefix: str, dead_letter_queue: sqs.IQueue
    ) -> events.Rule:
        """Member accounts forward their alarms' state changes to the central bus; tell the same topic."""
        detail = events.EventField.from_path
        return events.Rule(
            self,
            construct_id,
            event_bus=bus,
            description="Member-account macie-chatops alarms (forwarded by the member StackSet) -> alarm topic",
            event_pattern=alarm_state_change_pattern(alarm_name_prefix=alarm_name_prefix),
            targets=[
                targets.SnsTopic(
                    self.topic,
                    dead_letter_queue=dead_letter_queue,
                    message=events.RuleTargetInput.from_text(
                        f"macie-chatops: alarm {detail('$.detail.alarmName')} is "
                        f"{detail('$.detail.state.value')} in account {events.EventField.account} "
                        f"({events.EventField.region}): {detail('$.detail.state.reason')}"
                    ),
                )
            ],
        )
