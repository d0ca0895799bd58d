"""The approval key: the KMS HMAC key every approval is signed with (docs/architecture.md §23), the handlers that
sign and verify with it, and the alarm on approvals that do not verify.

Its key policy is ours (no account-root ``kms:*``): administration through IAM for the account, ``GenerateMac``
for the approving handlers (the interaction endpoint, the finding handler's ``auto``) and, through IAM, for the
operators' CLI (restore, ``retry``/``sweep --requeue --reapprove``: ``macie-chatops operator-policy`` grants it);
``VerifyMac`` for the remediator and the sweeper only, named in the policy (no IAM delegation at all).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from infra.central.sweeper import SWEEP_INTERVAL
from infra.components.alarms import OperationalAlarms
from infra.components.handler import HandlerFunction
from macie_chatops import names

# What the account may do with the key through IAM: administer it, never verify an approval (and sign only
# through the statement that says so).
ADMINISTRATION_ACTIONS = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
)


class ApprovalKey:
    def __init__(
        self, stack: Stack, *, signers: Sequence[HandlerFunction], verifiers: Sequence[HandlerFunction]
    ) -> None:
        account = iam.AccountRootPrincipal()
        statements = [
            iam.PolicyStatement(
                sid="AccountAdministersThroughIam",
                principals=[account],
                actions=list(ADMINISTRATION_ACTIONS),
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ApprovingHandlersSign",
                principals=[handler.role for handler in signers],
                actions=["kms:GenerateMac"],
                resources=["*"],
                conditions={"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}},
            ),
            iam.PolicyStatement(
                sid="OperatorsSignThroughIam",
                principals=[account],
                actions=["kms:GenerateMac"],
                resources=["*"],
                conditions={"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}},
            ),
            iam.PolicyStatement(
                sid="RemediatorAndSweeperVerify",
                principals=[handler.role for handler in verifiers],
                actions=["kms:VerifyMac"],
                resources=["*"],
                conditions={"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}},
            ),
        ]
        self.key = kms.Key(
            stack,
            "ApprovalKey",
            alias=names.APPROVAL_KEY_ALIAS,
            description="macie-chatops: signs every approval (HMAC); the remediator moves nothing that does not verify",
            key_spec=kms.KeySpec.HMAC_256,
            key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
            policy=iam.PolicyDocument(statements=statements),
            removal_policy=RemovalPolicy.RETAIN,  # approvals on the records stay verifiable across a redeploy
        )
        for handler in (*signers, *verifiers):
            handler.function.add_environment(names.ENV_APPROVAL_KEY_ID, self.key.key_arn)

    def watch(self, alarms: OperationalAlarms) -> None:
        """``UnverifiedApprovals``, counted by the remediator (a refused job) and the sweeper (a refused re-queue):
        each in ALARM at the first one. A record that does not verify was written by someone other than an
        approver (or approved before approvals were signed)."""
        for construct_id, service, what in (
            ("UnverifiedApprovalsRemediator", names.REMEDIATOR_FUNCTION_NAME, "a remediation job was refused"),
            ("UnverifiedApprovalsSweeper", names.SWEEPER_FUNCTION_NAME, "a re-queue was refused"),
        ):
            alarm_name = f"unverified-approvals-{service.removeprefix('macie-chatops-')}"
            alarms.on_handler_metric(
                construct_id,
                metric=cloudwatch.Metric(
                    namespace=names.METRICS_NAMESPACE,
                    metric_name=names.UNVERIFIED_APPROVALS_METRIC,
                    dimensions_map={"service": service},
                    period=SWEEP_INTERVAL,
                    statistic="Sum",
                ),
                alarm_name=alarm_name,
                description=(
                    f"{alarm_name}: {what} because the finding's approval does not verify (a state-table item not "
                    f"written by an approver); the {service} error logs name the findings; docs/architecture.md §23"
                ),
            )
