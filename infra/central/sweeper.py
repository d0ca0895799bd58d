"""The sweeper room: the scheduled sweeper that re-queues approved quarantines with no outcome
(docs/architecture.md §8)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets

from infra.central.foundation import Foundation
from infra.central.lambdas import HandlerAssets
from infra.central.remediation import REMEDIATOR_TIMEOUT, Remediation
from macie_chatops import names

# Stale means longer than one remediator attempt can run (its timeout; the remediation queue's visibility timeout
# only hides a message that long because AWS asks for 6x), so no attempt is still running for that approval.
SWEEP_INTERVAL = Duration.minutes(15)
SWEEP_STALE_AFTER = Duration.minutes(2 * int(REMEDIATOR_TIMEOUT.to_minutes()))
SWEEP_MAX_REQUEUES = 3
SWEEPER_TIMEOUT = Duration.minutes(2)  # one index query, and per stale finding a read, a send and a write
SWEEP_RETRIES = 2  # EventBridge retries a failed invocation; a later sweep covers it anyway


class Sweeper:
    def __init__(self, stack: Stack, foundation: Foundation, assets: HandlerAssets, jobs: Remediation) -> None:
        self.sweeper = assets.handler(
            stack,
            "Sweeper",
            function_name=names.SWEEPER_FUNCTION_NAME,
            handler="macie_chatops.handlers.sweeper.lambda_handler",
            description="re-queues approved quarantines that have no outcome; reports the stuck ones",
            environment={
                **jobs.job_environment(),
                names.ENV_SWEEP_STALE_AFTER_S: str(int(SWEEP_STALE_AFTER.to_seconds())),
                names.ENV_SWEEP_MAX_REQUEUES: str(SWEEP_MAX_REQUEUES),
            },
            timeout=SWEEPER_TIMEOUT,
            memory_size=512,
            reserved_concurrent_executions=1,  # sweeps never overlap (a late one and the next scheduled one)
        )
        self.schedule = events.Rule(
            stack,
            "SweepSchedule",
            rule_name=names.SWEEPER_SCHEDULE_RULE_NAME,
            description="runs the macie-chatops sweeper: approved quarantines are never silently forgotten",
            schedule=events.Schedule.rate(SWEEP_INTERVAL),
            targets=[
                targets.LambdaFunction(
                    self.sweeper.function,
                    dead_letter_queue=foundation.delivery_dead_letter_queue,
                    retry_attempts=SWEEP_RETRIES,
                )
            ],
        )
        jobs.accept_jobs_from(self.sweeper)
        foundation.state.grant_sweep(self.sweeper.role)  # query the approved index, read and update items: no puts
        jobs.queue.grant_depth(self.sweeper.role)  # jobs still waiting: a backlog defers re-queues
        foundation.slack_secret.grant_read(self.sweeper.role)  # to tell a stuck finding's team, in its message
