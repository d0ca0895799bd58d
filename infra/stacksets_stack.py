"""The stack that owns the member StackSets and the Macie administrator's forwarding StackSet (deployed where
StackSets are administered).

SERVICE_MANAGED + DELEGATED_ADMIN and SELF_MANAGED: the security account (registered as a StackSets
delegated administrator, or holding the StackSet administration role). SERVICE_MANAGED + SELF: the
organisation's management account, so the stack's account is left to the deploying credentials.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.stackset import MemberStackSet
from stacksets.targets import administrator_instance_groups, regional_instance_groups, roles_instance_groups
from stacksets.templates import MemberTemplates


class MemberStackSetsStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: Config, templates: MemberTemplates, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.roles = MemberStackSet(
            self,
            "Roles",
            stack_set_name=names.MEMBER_ROLES_STACKSET_NAME,
            description="macie-chatops member roles: remediation role (trusts the central remediator), forwarding role",
            template=templates.roles,
            groups=roles_instance_groups(config),
            deployment=config.deployment,
            capabilities=["CAPABILITY_NAMED_IAM"],
        )
        self.regional = MemberStackSet(
            self,
            "Regional",
            stack_set_name=names.MEMBER_REGIONAL_STACKSET_NAME,
            description="macie-chatops member resources per region: Macie forwarding rule, quarantine bucket",
            template=templates.regional,
            groups=regional_instance_groups(config),
            deployment=config.deployment,
        )
        # The forwarding rules use the forwarding role, and the buckets exist for the remediation role.
        self.regional.node.add_dependency(self.roles)
        # The Macie administrator's forwarding, where nothing else forwards its default bus (none: no StackSet).
        administrator_groups = administrator_instance_groups(config)
        self.administrator = (
            MemberStackSet(
                self,
                "AdministratorForwarding",
                stack_set_name=names.ADMINISTRATOR_FORWARDING_STACKSET_NAME,
                description="macie-chatops: the Macie administrator's findings (its jobs, automated discovery) -> "
                "the central bus, per region",
                template=templates.administrator,
                groups=administrator_groups,
                deployment=config.deployment,
                capabilities=["CAPABILITY_NAMED_IAM"],
            )
            if administrator_groups
            else None
        )
