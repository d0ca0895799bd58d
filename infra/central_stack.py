"""The central stack: the security account, home region. Its rooms, in infra/central/:

member default buses --> central bus --intake rule--> intake queue --> finding handler       intake.py
Slack click --> API Gateway POST /slack/interactions --> interaction handler                interaction.py
bulk click --> continuation queue (signed) --> interaction handler (a bulk approval goes on)  interaction.py
finding / interaction handler, sweeper --> remediation queue --> remediator --> member role  remediation.py
schedule (rate 15 minutes) --> sweeper (approved findings whose job was lost)               sweeper.py
schedules (hourly, daily) --> reminders (open reviews: thread reminders, escalation summary) reminders.py
grouped finding joined or moved --> digest queue --> digest writer (a group's Slack digest)  digests.py
state table stream --> Security Hub updater (security_hub.enabled)                        securityhub.py
schedule (hourly) --> reconciler (findings Macie holds that no event delivered) --> intake  reconciler.py
alarms --> SNS topic; member alarms relayed from the central bus                            monitoring.py
the operations dashboard (what the alarms watch, the handlers' metrics)                     dashboard.py
KMS keys, state table, Slack secret (empty until the operator fills it), delivery DLQ       foundation.py
approval key (HMAC): the approving handlers sign, the remediator and sweeper verify       approvals.py
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.central import dashboard, monitoring
from infra.central.approvals import ApprovalKey
from infra.central.digests import Digests
from infra.central.foundation import Foundation
from infra.central.intake import Intake
from infra.central.interaction import Interaction
from infra.central.lambdas import HandlerAssets
from infra.central.reconciler import Reconciler
from infra.central.remediation import Remediation
from infra.central.reminders import Reminders
from infra.central.securityhub import SecurityHub
from infra.central.sweeper import Sweeper
from infra.lambda_bundle import LambdaBundle
from macie_chatops.config import Config


class CentralStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: Config, bundle: LambdaBundle, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        foundation = Foundation(self, config)
        assets = HandlerAssets(self, bundle, foundation)
        # Remediation first: the other rooms queue its jobs.
        remediation = Remediation(self, config, foundation, assets)
        intake = Intake(self, config, foundation, assets, jobs=remediation)
        interaction = Interaction(self, foundation, assets, jobs=remediation, waf=config.slack.waf)
        sweeper = Sweeper(self, foundation, assets, jobs=remediation)
        # Every approval is signed by the handlers that approve and verified by those that act on it (§23).
        approvals = ApprovalKey(
            self,
            signers=[intake.finding_handler, interaction.interaction_handler],
            verifiers=[remediation.remediator, sweeper.sweeper],
        )
        reminders = Reminders(self, foundation, assets)
        digests = Digests(self, foundation, assets)
        # The handlers that join findings to groups or move their members wake the digest writer (§22).
        digests.woken_by(
            intake.finding_handler, interaction.interaction_handler, remediation.remediator, sweeper.sweeper
        )
        alarms = monitoring.watch(
            self,
            foundation,
            intake=intake,
            interaction=interaction,
            remediation=remediation,
            sweeper=sweeper,
            reminders=reminders,
        )

        if config.security_hub.enabled:  # §17: nothing of it is deployed otherwise
            SecurityHub(self, config, foundation, assets).watch(alarms)

        reconciler = Reconciler(self, config, foundation, assets, intake)
        reconciler.watch(alarms)
        approvals.watch(alarms)
        digests.watch(alarms)
        interaction.watch(alarms)  # its bulk-approval continuations (§22)
        dashboard.build(self, alarms=alarms, api=interaction.api.api)  # last: it graphs what the alarms watch

        self.bus = intake.bus.bus
        self.administrator_forward_rule = (
            intake.administrator_forwarding.rule if intake.administrator_forwarding is not None else None
        )
        self.slack_url = interaction.api.url
        self.alarm_topic = alarms.topic
        self.slack_secret = foundation.slack_secret.secret
        self.remediator_role = remediation.remediator.role
        self.sweep_schedule = sweeper.schedule
        self.reconcile_schedule = reconciler.schedule
        self.remind_schedule = reminders.remind_schedule
        self.escalation_schedule = reminders.escalation_schedule
        self._outputs(foundation, remediation)

    def _outputs(self, foundation: Foundation, remediation: Remediation) -> None:
        CfnOutput(self, "SlackRequestUrl", value=self.slack_url, description="Slack app: Interactivity request URL")
        CfnOutput(self, "CentralBusArn", value=self.bus.event_bus_arn, description="Member rules forward here")
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn, description="Subscribe the security team")
        CfnOutput(
            self,
            "SlackSecretArn",
            value=self.slack_secret.secret_arn,
            description='Store {"bot_token": ..., "signing_secret": ...} here (docs/deploy.md)',
        )
        CfnOutput(self, "RemediatorRoleArn", value=self.remediator_role.role_arn, description="Member roles trust this")
        CfnOutput(
            self,
            "RemediationQueueUrl",
            value=remediation.queue.queue.queue_url,
            description="macie-chatops restore FINDING_ID --queue-url <this>",
        )
        CfnOutput(
            self,
            "StateTableName",
            value=foundation.state.table.table_name,
            description="Findings state and audit trail",
        )
