"""The interaction room: Slack's click endpoint and the interaction handler behind it."""

from __future__ import annotations

from aws_cdk import Duration, Stack

from infra.central.foundation import Foundation
from infra.central.lambdas import LOG_RETENTION, HandlerAssets
from infra.central.remediation import Remediation
from infra.components.slack_api import SlackInteractionsApi
from macie_chatops import names

INTERACTION_TIMEOUT = Duration.seconds(10)  # Slack wants an answer within 3 s; the rest is queued
INTERACTION_MEMORY_MB = 1024  # more memory = more CPU = a shorter cold start inside Slack's 3 s
# Reserved: clicks always find concurrency (the account's pool is shared with every other function in it), and
# junk that carries made-up Slack headers (refused on its HMAC in milliseconds) cannot take more than this
# (architecture §25). Lambda keeps it out of the account's unreserved pool.
INTERACTION_CONCURRENCY = 100


class Interaction:
    def __init__(
        self, stack: Stack, foundation: Foundation, assets: HandlerAssets, jobs: Remediation, *, waf: bool = False
    ) -> None:
        self.interaction_handler = assets.handler(
            stack,
            "InteractionHandler",
            function_name=names.INTERACTION_FUNCTION_NAME,
            handler="macie_chatops.handlers.interaction.lambda_handler",
            description="verifies Slack clicks, records the approver's decision, queues the work",
            environment=jobs.job_environment(),
            timeout=INTERACTION_TIMEOUT,
            memory_size=INTERACTION_MEMORY_MB,
            reserved_concurrent_executions=INTERACTION_CONCURRENCY,
        )
        foundation.grant_records_and_slack(self.interaction_handler)
        jobs.accept_jobs_from(self.interaction_handler)
        self.api = SlackInteractionsApi(
            stack,
            "SlackInteractions",
            api_name=names.SLACK_API_NAME,
            path=names.SLACK_INTERACTIONS_PATH,
            handler=self.interaction_handler.function,
            log_retention=LOG_RETENTION,
            log_encryption_key=foundation.logs_key,
            waf=waf,
        )
