"""The reconciler's read-only role in the Macie administrator account (docs/architecture.md §13), when that is not
the security account: ``macie2:ListFindings`` and ``GetFindings`` (every region: IAM is global) for the central
reconciler's role only, from inside the organisation.

IAM is global but a StackSet deploys one stack instance per account and region, so the role carries a condition
that holds in exactly one instance: the administrator forwarding template's first region, or (when the
administrator is a listed member in every region, so that StackSet has no instance) the administrator's own
instance of the member roles template. :func:`reader_placement` says which.
"""

from __future__ import annotations

from typing import Literal

from aws_cdk import Aws, CfnCondition, Fn, ICfnConditionExpression, Stack
from aws_cdk import aws_iam as iam

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.nag import acknowledge
from stacksets.targets import administrator_instance_groups

MACIE_READ_ACTIONS = ("macie2:ListFindings", "macie2:GetFindings")


def reader_placement(config: Config) -> Literal["none", "administrator", "roles"]:
    """Where the reader role is: nowhere (the security account reads its own Macie), in the administrator
    forwarding template, or in the member roles template (the administrator is a member in every region)."""
    if config.administrator_is_security_account:
        return "none"
    return "administrator" if administrator_instance_groups(config) else "roles"


def administrator_reader_condition(config: Config) -> ICfnConditionExpression:
    """In the administrator forwarding template: the instance of its first region."""
    (group,) = administrator_instance_groups(config)
    return Fn.condition_equals(Aws.REGION, group.regions[0])


def roles_reader_condition(config: Config) -> ICfnConditionExpression:
    """In the member roles template (one instance per account): the administrator's."""
    return Fn.condition_equals(Aws.ACCOUNT_ID, config.macie_administrator_id)


def macie_reader_role(stack: Stack, config: Config, *, created_where: ICfnConditionExpression) -> iam.Role:
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
    resource = role.node.default_child
    assert isinstance(resource, iam.CfnRole)
    resource.cfn_options.condition = CfnCondition(stack, "MacieReaderHere", expression=created_where)
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "Macie's ListFindings and GetFindings have no resource type to scope them to (the service authorization "
        "reference lists none), so they are granted on '*'; these two read-only actions are the whole grant.",
    )
    return role
