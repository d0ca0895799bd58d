"""The reminders room: reminders of open reviews (hourly) and the escalation summary (daily), one handler on two
schedules (docs/architecture.md §14)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets

from infra.central.foundation import Foundation
from infra.central.lambdas import HandlerAssets
from macie_chatops import names

REMIND_INTERVAL = Duration.hours(1)  # reminders are due by the hour: at most an hour late
ESCALATION_HOUR_UTC = "8"  # the daily summary, at the start of a European working day
REMINDERS_TIMEOUT = Duration.minutes(5)  # 100 reminders at Slack's pace of about one post a second per channel
REMIND_RETRIES = 2  # EventBridge retries a failed invocation; the next run covers it anyway


class Reminders:
    def __init__(self, stack: Stack, foundation: Foundation, assets: HandlerAssets) -> None:
        self._foundation = foundation
        self.reminders = assets.handler(
            stack,
            "Reminders",
            function_name=names.REMINDERS_FUNCTION_NAME,
            handler="macie_chatops.handlers.reminders.lambda_handler",
            description="reminds approvers of open reviews; posts the daily escalation summary",
            timeout=REMINDERS_TIMEOUT,
            memory_size=512,
            reserved_concurrent_executions=1,  # runs never overlap (and the marks hold if they did)
        )
        # The schedule's time is the run's clock (handlers/reminders.py): the input passes it on with the task.
        self.remind_schedule = self._schedule(
            stack, "RemindSchedule", names.REMIND_SCHEDULE_RULE_NAME, events.Schedule.rate(REMIND_INTERVAL), False
        )
        self.escalation_schedule = self._schedule(
            stack,
            "EscalationSchedule",
            names.ESCALATION_SCHEDULE_RULE_NAME,
            events.Schedule.cron(minute="0", hour=ESCALATION_HOUR_UTC),
            True,
        )
        foundation.state.grant_remind(self.reminders.role)
        foundation.slack_secret.grant_read(self.reminders.role)

    def _schedule(
        self, stack: Stack, construct_id: str, rule_name: str, schedule: events.Schedule, escalate: bool
    ) -> events.Rule:
        what = "the escalation summary" if escalate else "reminders of open reviews"
        return events.Rule(
            stack,
            construct_id,
            rule_name=rule_name,
            description=f"runs the macie-chatops reminders job: {what}",
            schedule=schedule,
            targets=[
                targets.LambdaFunction(
                    self.reminders.function,
                    event=events.RuleTargetInput.from_object({"time": events.EventField.time, "escalate": escalate}),
                    dead_letter_queue=self._foundation.delivery_dead_letter_queue,
                    retry_attempts=REMIND_RETRIES,
                )
            ],
        )
