"""The intake room: the central bus (and, where this account is the Macie administrator, the forwarding of
its own default bus), the intake queue and the finding handler. docs/architecture.md §5 and §10."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs

from infra.central.foundation import Foundation
from infra.central.lambdas import ConsumedQueue, HandlerAssets, consume
from infra.central.remediation import Remediation
from infra.components.event_bus import CentralEventBus
from infra.components.queues import acknowledge_event_target_dlq, dead_letter_queue
from macie_chatops import names
from macie_chatops.config import Config
from stacksets.event_patterns import macie_finding_pattern
from stacksets.targets import central_administrator_forwarding

FINDING_TIMEOUT = Duration.seconds(60)  # parse, decide, one conditional write, one Slack post (with 429 retries)
FINDING_BATCH_SIZE = 10
FINDING_MAX_CONCURRENCY = 5  # bounds the Slack chat.postMessage rate
INTAKE_MAX_RECEIVES = 5
INTAKE_QUEUE = ConsumedQueue(names.INTAKE_QUEUE_NAME, names.INTAKE_DLQ_NAME, FINDING_TIMEOUT, INTAKE_MAX_RECEIVES)


class AdministratorForwarding:
    """This account's default bus, home region -> the central bus (other regions: the administrator StackSet)."""

    def __init__(self, stack: Stack, foundation: Foundation, bus: events.IEventBus) -> None:
        self.dead_letter_queue: sqs.Queue = dead_letter_queue(
            stack,
            "AdministratorForwardDeadLetterQueue",
            queue_name=names.ADMINISTRATOR_FORWARD_DLQ_NAME,
            encryption_key=foundation.key,
        )
        acknowledge_event_target_dlq(self.dead_letter_queue)
        self.rule = events.Rule(
            stack,
            "AdministratorForwardRule",
            rule_name=names.ADMINISTRATOR_FORWARD_RULE_NAME,
            description="macie-chatops: Macie findings the administrator (this account) publishes here -> the "
            "central bus",
            event_pattern=macie_finding_pattern(),
            # No role given: CDK makes one that may PutEvents on this bus only (same account and region).
            targets=[targets.EventBus(bus, dead_letter_queue=self.dead_letter_queue)],
        )


class Intake:
    def __init__(
        self, stack: Stack, config: Config, foundation: Foundation, assets: HandlerAssets, jobs: Remediation
    ) -> None:
        self.queue = INTAKE_QUEUE.build(stack, "Intake", foundation)
        self.bus = CentralEventBus(
            stack,
            "Events",
            bus_name=names.CENTRAL_BUS_NAME,
            organization_id=config.organization_id,
            intake_rule_name=names.CENTRAL_RULE_NAME,
            intake_queue=self.queue.queue,
            delivery_dead_letter_queue=foundation.delivery_dead_letter_queue,
        )
        self.administrator_forwarding = (
            AdministratorForwarding(stack, foundation, self.bus.bus)
            if central_administrator_forwarding(config)
            else None
        )
        self.finding_handler = assets.handler(
            stack,
            "FindingHandler",
            function_name=names.FINDING_FUNCTION_NAME,
            handler="macie_chatops.handlers.intake.lambda_handler",
            description="decides each Macie finding, records it, asks or tells the team in Slack",
            environment=jobs.job_environment(),
            timeout=FINDING_TIMEOUT,
            memory_size=512,
        )
        consume(
            self.finding_handler, self.queue, batch_size=FINDING_BATCH_SIZE, max_concurrency=FINDING_MAX_CONCURRENCY
        )
        foundation.grant_records_and_slack(self.finding_handler)
        jobs.accept_jobs_from(self.finding_handler)
