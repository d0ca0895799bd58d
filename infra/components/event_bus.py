"""The central event bus in the security account: only the organisation may put events on it."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacksets.event_patterns import macie_finding_pattern

# EventBridge's own maximum: a target that is down for a day still gets the event, then the DLQ does.
TARGET_MAX_EVENT_AGE = Duration.hours(24)
TARGET_RETRY_ATTEMPTS = 185
# Macie keeps findings for 90 days; the archive lets an operator replay anything the pipeline mishandled.
ARCHIVE_RETENTION = Duration.days(90)


class CentralEventBus(Construct):
    """Bus + org-scoped PutEvents policy + archive + the intake rule (the shared Macie pattern) -> queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus_name: str,
        organization_id: str,
        intake_rule_name: str,
        intake_queue: sqs.IQueue,
        delivery_dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name)
        # Principal "*" narrowed by aws:PrincipalOrgID: every member account's forwarding role, and only
        # those, may put events; a policy listing 1,000 accounts would exceed the 10,240-character limit.
        self.bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OrganizationMembersPutEvents",
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[self.bus.event_bus_arn],
                conditions={"StringEquals": {"aws:PrincipalOrgID": organization_id}},
            )
        )
        self.bus.archive(
            "Archive",
            archive_name=bus_name,
            description="Every Macie finding received, for replay after an incident",
            event_pattern=macie_finding_pattern(),
            retention=ARCHIVE_RETENTION,
        )
        self.intake_rule = events.Rule(
            self,
            "IntakeRule",
            rule_name=intake_rule_name,
            event_bus=self.bus,
            description="Macie findings forwarded by member accounts -> the intake queue",
            event_pattern=macie_finding_pattern(),
            targets=[
                targets.SqsQueue(
                    intake_queue,
                    dead_letter_queue=delivery_dead_letter_queue,
                    max_event_age=TARGET_MAX_EVENT_AGE,
                    retry_attempts=TARGET_RETRY_ATTEMPTS,
                )
            ],
        )
