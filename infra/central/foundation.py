"""What the rooms of the central stack stand on: the KMS keys, the state table, the Slack secret, and the
dead-letter queue of the central rules' targets.

Four customer-managed keys, one per kind of data (architecture §25): the queues and the alarm topic
(``Key``, the first), the state table, the Slack secret, and the log groups. A key policy or a grant given for
one never opens another; each is rotated yearly and retained with the stack's data.
"""

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
        self.state_key = _data_key(
            stack, "StateKey", alias=names.STATE_KEY_ALIAS, what="the findings state table and its stream"
        )
        self.slack_secret_key = _data_key(
            stack, "SlackSecretKey", alias=names.SLACK_SECRET_KEY_ALIAS, what="the Slack app's credentials secret"
        )
        self.logs_key = _logs_key(stack)
        self.state = StateTable(stack, "State", table_name=names.STATE_TABLE_NAME, encryption_key=self.state_key)
        self.slack_secret = SlackSecret(
            stack, "SlackSecret", secret_name=config.slack.secret_name, encryption_key=self.slack_secret_key
        )
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


def _data_key(stack: Stack, construct_id: str, *, alias: str, what: str) -> kms.Key:
    """A key for one service's data: the account's IAM policies grant its use (CDK's default key policy), each
    grant limited to the service that encrypts with it (``kms:ViaService``, infra/components)."""
    return kms.Key(
        stack,
        construct_id,
        alias=alias,
        description=f"macie-chatops: encrypts {what}",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )


def _logs_key(stack: Stack) -> kms.Key:
    key = _data_key(stack, "LogsKey", alias=names.LOGS_KEY_ALIAS, what="the log groups of the central stack")
    # CloudWatch Logs encrypts and decrypts with its regional service principal; the encryption context names
    # the log group, so the key serves only log groups of this account and region (AWS CloudWatch Logs User
    # Guide, "Encrypt log data in CloudWatch Logs using AWS KMS"). Readers of the logs need no KMS right.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsEncryptsThisAccountsLogGroups",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                    )
                }
            },
        )
    )
    return key
