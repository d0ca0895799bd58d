"""The monitoring room: every alarm of the central stack, and the relay of the member accounts' alarms, to the
one topic the security team subscribes to."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_sqs as sqs

from infra.central.foundation import Foundation
from infra.central.intake import INTAKE_QUEUE, Intake
from infra.central.interaction import Interaction
from infra.central.remediation import REMEDIATION_QUEUE, Remediation
from infra.central.reminders import Reminders
from infra.central.sweeper import SWEEP_INTERVAL, Sweeper
from infra.components.alarms import OperationalAlarms
from macie_chatops import names


def watch(
    stack: Stack,
    foundation: Foundation,
    *,
    intake: Intake,
    interaction: Interaction,
    remediation: Remediation,
    sweeper: Sweeper,
    reminders: Reminders | None = None,
) -> OperationalAlarms:
    alarms = OperationalAlarms(stack, "Alarms", topic_name=names.ALARM_TOPIC_NAME, encryption_key=foundation.key)
    dead_letters: list[tuple[str, sqs.Queue, str]] = [
        ("IntakeDeadLetters", intake.queue.dead_letter_queue, "findings the finding handler failed on 5 times"),
        ("RemediationDeadLetters", remediation.queue.dead_letter_queue, "remediation jobs that failed 3 times"),
        ("DeliveryDeadLetters", foundation.delivery_dead_letter_queue, "events the central rules could not deliver"),
    ]
    if intake.administrator_forwarding is not None:
        dead_letters.append(
            (
                "AdministratorForwardDeadLetters",
                intake.administrator_forwarding.dead_letter_queue,
                "administrator findings not sent to the bus",
            )
        )
    for construct_id, queue, what in dead_letters:
        alarms.on_dead_letters(construct_id, queue=queue, alarm_name=f"{queue.queue_name}-not-empty", description=what)
    handlers = [intake.finding_handler, interaction.interaction_handler, remediation.remediator, sweeper.sweeper]
    if reminders is not None:  # its errors: a reminder or the escalation summary was not posted
        handlers.append(reminders.reminders)
    for handler in handlers:
        alarms.on_function_errors(
            f"{handler.node.id}Errors", function=handler.function, alarm_name=f"{handler.node.id}-errors"
        )
        alarms.on_function_throttles(
            f"{handler.node.id}Throttles", function=handler.function, alarm_name=f"{handler.node.id}-throttles"
        )
    _watch_queue_ages(alarms, intake, remediation)
    alarms.on_rule_failures(
        "IntakeRule", rule=intake.bus.intake_rule, bus_name=names.CENTRAL_BUS_NAME, alarm_name="intake-rule"
    )
    alarms.on_api_server_errors("SlackApi5xx", api=interaction.api.api, alarm_name="slack-endpoint-5xx")
    alarms.on_stuck_approvals(
        "StuckApprovals",
        metric_name=names.STUCK_APPROVALS_METRIC,
        service=names.SWEEPER_FUNCTION_NAME,
        period=SWEEP_INTERVAL,
        alarm_name="stuck-approvals",
    )
    alarms.relay_member_alarms(
        "MemberAlarms",
        bus=intake.bus.bus,
        alarm_name_prefix=names.MEMBER_ALARM_NAME_PREFIX,
        dead_letter_queue=foundation.delivery_dead_letter_queue,
    )
    return alarms


def _watch_queue_ages(alarms: OperationalAlarms, intake: Intake, remediation: Remediation) -> None:
    """The oldest message of the intake and remediation queues (architecture §21)."""
    # A message older than every retry it is allowed could take: nothing is receiving the queue.
    for construct_id, queue, consumed, what in (
        ("IntakeOldestMessage", intake.queue.queue, INTAKE_QUEUE, "findings"),
        ("RemediationOldestMessage", remediation.queue.queue, REMEDIATION_QUEUE, "remediation jobs"),
    ):
        max_age = consumed.max_age
        alarms.on_oldest_message_age(
            construct_id,
            queue=queue,
            max_age=max_age,
            alarm_name=f"{consumed.queue_name}-oldest-message",
            description=(
                f"{what} waited longer than every retry could take ({int(max_age.to_seconds())} s): nothing is "
                "receiving the queue (throttled or disabled consumer); see docs/deploy.md (operating it)"
            ),
        )
