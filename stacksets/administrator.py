"""The Macie administrator's forwarding stack (docs/architecture.md §10): the member forwarding
(stacksets/forwarding.py) on the administrator account's default bus and, when the administrator is not the
security account, the reconciler's read-only Macie role (§13). IAM is global and each region is a stack instance,
so the forwarding role is named per region and lives here: no instance waits for another's, nor for the member
roles StackSet. The reader role is one role, created by the instance of the first region only (a condition)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnCondition, Fn, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.forwarding import forward_to_central_bus, forwarding_role
from stacksets.nag import acknowledge
from stacksets.targets import administrator_instance_groups

MACIE_READ_ACTIONS = ("macie2:ListFindings", "macie2:GetFindings")


class AdministratorForwardingStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.forward_role = forwarding_role(
            self,
            config=config,
            role_name=names.administrator_forward_role_name(Aws.REGION),
            description="macie-chatops: the Macie administrator's findings in this region -> the central bus",
        )
        forwarding = forward_to_central_bus(
            self,
            config=config,
            role=self.forward_role,
            rule_name=names.ADMINISTRATOR_FORWARD_RULE_NAME,
            dead_letter_queue_name=names.ADMINISTRATOR_FORWARD_DLQ_NAME,
            alarm_name=names.ADMINISTRATOR_FORWARD_ALARM_NAME,
            alarm_rule_name=names.ADMINISTRATOR_ALARM_RULE_NAME,
            rule_description="macie-chatops: Macie findings the administrator publishes (its jobs, automated "
            "discovery) -> the security account's central bus",
            alarm_description="macie-chatops: Macie findings published in the administrator account (this region) "
            "could not reach the central bus",
        )
        self.dead_letter_queue = forwarding.dead_letter_queue
        self.forward_rule = forwarding.forward_rule
        self.dead_letter_alarm = forwarding.dead_letter_alarm
        self.alarm_rule = forwarding.alarm_rule
        self.macie_reader_role: iam.Role | None = None
        groups = administrator_instance_groups(config)
        if not config.administrator_is_security_account and groups:
            self.macie_reader_role = macie_reader_role(self, config, region=groups[0].regions[0])


def macie_reader_role(stack: Stack, config: Config, *, region: str) -> iam.Role:
    """``macie2:ListFindings`` and ``GetFindings`` (every region: IAM is global) for the central reconciler only,
    from inside the organisation; created where the stack instance is in ``region``."""
    reconciler = f"arn:{Aws.PARTITION}:iam::{config.security_account.id}:role/{names.RECONCILER_ROLE_NAME}"
    role = iam.Role(
        stack,
        "MacieReaderRole",
        role_name=names.MACIE_READER_ROLE_NAME,
        description="macie-chatops: the central reconciler lists and reads this administrator's Macie findings",
        assumed_by=iam.ArnPrincipal(reconciler).with_conditions(
            {"StringEquals": {"aws:PrincipalOrgID": config.organization_id}}
        ),
        inline_policies={
            "ReadMacieFindings": iam.PolicyDocument(
                statements=[iam.PolicyStatement(actions=list(MACIE_READ_ACTIONS), resources=["*"])]
            )
        },
    )
    created_here = CfnCondition(stack, "MacieReaderRegion", expression=Fn.condition_equals(Aws.REGION, region))
    resource = role.node.default_child
    assert isinstance(resource, iam.CfnRole)
    resource.cfn_options.condition = created_here
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "Macie's ListFindings and GetFindings have no resource type to scope them to (the service authorization "
        "reference lists none), so they are granted on '*'; these two read-only actions are the whole grant.",
    )
    return role
