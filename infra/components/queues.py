"""SQS queues that never drop a message silently: KMS-encrypted, TLS-only, with a dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacksets.nag import acknowledge

# SQS keeps a message at most 14 days; a dead letter must outlive its source so it can be redriven.
MAX_RETENTION = Duration.days(14)


def dead_letter_queue(scope: Construct, construct_id: str, *, queue_name: str, encryption_key: kms.IKey) -> sqs.Queue:
    """A terminal queue: where messages (or undeliverable events) wait for an operator and an alarm fires.

    cdk-nag recognises a redrive target as a DLQ; a queue that only serves as an EventBridge target's DLQ
    needs an acknowledgement (``acknowledge_event_target_dlq``).
    """
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=encryption_key,
        enforce_ssl=True,
        retention_period=MAX_RETENTION,
    )


def acknowledge_event_target_dlq(queue: sqs.Queue) -> None:
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "This queue is the dead-letter queue of EventBridge rule targets (events a rule could not deliver); "
        "it alarms on its first message and an operator re-sends the events, so it needs no DLQ of its own.",
    )


class QueueWithDeadLetter(Construct):
    """A work queue and its dead-letter queue (after ``max_receive_count`` failed receives)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue_name: str,
        dead_letter_queue_name: str,
        encryption_key: kms.IKey,
        visibility_timeout: Duration,
        max_receive_count: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.encryption_key = encryption_key
        self.dead_letter_queue = dead_letter_queue(
            self, "DeadLetterQueue", queue_name=dead_letter_queue_name, encryption_key=encryption_key
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=queue_name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=encryption_key,
            enforce_ssl=True,
            retention_period=MAX_RETENTION,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=max_receive_count),
        )

    def grant_depth(self, grantee: iam.IGrantable) -> None:
        """GetQueueAttributes on this queue: how many messages wait (the sweeper's backlog check)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:GetQueueAttributes"], resources=[self.queue.queue_arn])
        )

    def grant_send(self, grantee: iam.IGrantable) -> None:
        """SendMessage on this queue, and the two KMS actions SQS needs from a producer of encrypted messages."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.encryption_key.key_arn])
        )
