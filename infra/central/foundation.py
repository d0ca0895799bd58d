"""What the rooms of the central stack stand on: the KMS key, the state table, the Slack secret, and the
dead-letter queue of the central rules' targets."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from infra.components.handler import HandlerFunction
from infra.components.queues import acknowledge_event_target_dlq, dead_letter_queue
from infra.components.slack_secret import SlackSecret
from infra.components.state_table import StateTable
from macie_chatops import names
from macie_chatops.config import Config


class Foundation:
    def __init__(self, stack: Stack, config: Config) -> None:
        self.key: kms.Key = _queue_and_topic_key(stack)
        self.state = StateTable(stack, "State", table_name=names.STATE_TABLE_NAME)
        self.slack_secret = SlackSecret(stack, "SlackSecret", secret_name=config.slack.secret_name)
        # Events a central rule could not deliver (the intake rule, the sweep schedule, the member alarm relay).
        self.delivery_dead_letter_queue: sqs.Queue = dead_letter_queue(
            stack, "DeliveryDeadLetterQueue", queue_name=names.CENTRAL_DELIVERY_DLQ_NAME, encryption_key=self.key
        )
        acknowledge_event_target_dlq(self.delivery_dead_letter_queue)

    def grant_records_and_slack(self, handler: HandlerFunction) -> None:
        """What a handler that records findings and talks to Slack needs: the table's items and the credentials."""
        self.state.grant_read_write(handler.role)
        self.slack_secret.grant_read(handler.role)


def _queue_and_topic_key(stack: Stack) -> kms.Key:
    key = kms.Key(
        stack,
        "Key",
        alias=names.CENTRAL_KEY_ALIAS,
        description="macie-chatops: encrypts the queues and the alarm topic",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    # EventBridge delivers to the encrypted intake queue, the DLQs and the topic with its service principal.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="EventBridgeDeliversToEncryptedTargets",
            principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
    )
    return key
