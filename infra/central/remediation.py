"""The remediation room: the job queue and the remediator, which assumes the member remediation role of the
account a finding names."""

from __future__ import annotations

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_iam as iam

from infra.central.foundation import Foundation
from infra.central.lambdas import ConsumedQueue, HandlerAssets, consume
from infra.components.handler import HandlerFunction
from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops.handlers.remediation import BATCH_SIZE
from stacksets.nag import acknowledge
from stacksets.roles import ASSUME_ACTIONS

REMEDIATOR_TIMEOUT = Duration.minutes(15)  # a 5 TB object is a long multipart UploadPartCopy series
# A full vCPU (1,769 MB) for the copy threads and for hashing the copy during verification.
REMEDIATOR_MEMORY_MB = 1769
REMEDIATOR_CONCURRENCY = 5  # reserved: moves never starve other functions, nor flood member accounts
REMEDIATION_MAX_RECEIVES = 3
# Jobs per invocation, one after another (the handler defers a job it has no time left for); no batching window:
# a single click's job is handed over at once. The handler's constant: the sandbox's poller reads it too.
REMEDIATOR_BATCH_SIZE = BATCH_SIZE
REMEDIATION_QUEUE = ConsumedQueue(
    names.REMEDIATION_QUEUE_NAME, names.REMEDIATION_DLQ_NAME, REMEDIATOR_TIMEOUT, REMEDIATION_MAX_RECEIVES
)


class Remediation:
    def __init__(self, stack: Stack, config: Config, foundation: Foundation, assets: HandlerAssets) -> None:
        self.queue = REMEDIATION_QUEUE.build(stack, "Remediation", foundation)
        self.remediator = assets.handler(
            stack,
            "Remediator",
            function_name=names.REMEDIATOR_FUNCTION_NAME,
            handler="macie_chatops.handlers.remediation.lambda_handler",
            description="moves the exact object version into the member account's quarantine bucket",
            timeout=REMEDIATOR_TIMEOUT,
            memory_size=REMEDIATOR_MEMORY_MB,
            role_name=names.REMEDIATOR_ROLE_NAME,
            reserved_concurrent_executions=REMEDIATOR_CONCURRENCY,
        )
        consume(self.remediator, self.queue, batch_size=REMEDIATOR_BATCH_SIZE, max_concurrency=REMEDIATOR_CONCURRENCY)
        foundation.grant_records_and_slack(self.remediator)
        _allow_assuming_member_roles(stack, config, self.remediator)

    def job_environment(self) -> dict[str, str]:
        """What a handler that queues jobs needs in its environment."""
        return {names.ENV_REMEDIATION_QUEUE_URL: self.queue.queue.queue_url}

    def accept_jobs_from(self, producer: HandlerFunction) -> None:
        self.queue.grant_send(producer.role)


def _allow_assuming_member_roles(stack: Stack, config: Config, remediator: HandlerFunction) -> None:
    role_name = config.deployment.remediation_role_name
    remediator.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="AssumeMemberRemediationRoles",
            actions=list(ASSUME_ACTIONS),
            resources=[f"arn:{stack.partition}:iam::*:role/{role_name}"],
            conditions={"StringEquals": {"aws:ResourceOrgID": config.organization_id}},
        )
    )
    partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
    acknowledge(
        remediator.role,
        f"AwsSolutions-IAM5[Resource::arn:{partition}:iam::*:role/{role_name}]",
        "The remediator must reach the remediation role in whichever member account a finding names "
        "(1,000s of accounts); aws:ResourceOrgID keeps that to this organisation, and each role trusts only "
        "this one.",
    )
