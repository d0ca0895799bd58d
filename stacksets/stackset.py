"""``MemberStackSet``: one member template deployed as a CloudFormation StackSet to the accounts.yaml accounts.

SERVICE_MANAGED: targets are the configured OUs *intersected* with the listed accounts (only accounts named
in accounts.yaml get instances), auto-deployment off unless ``deployment.auto_deploy`` (the account filter is
not documented to apply to automatic deployments: docs/architecture.md §19),
``CallAs`` from accounts.yaml (DELEGATED_ADMIN from the security account, or SELF from the management
account). SELF_MANAGED: the listed accounts, with the classic StackSet administration/execution roles
(``CallAs`` does not apply to it). Both: regions in parallel, a bounded share of accounts at once, a failure
tolerance, and managed execution (non-conflicting operations queue instead of failing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aws_cdk import aws_cloudformation as cloudformation
from constructs import Construct

from macie_chatops.config import Deployment
from stacksets.targets import InstanceGroup

TEMPLATE_BODY_LIMIT: Final = 51_200  # bytes; CloudFormation refuses a larger inline TemplateBody
MAX_CONCURRENT_PERCENTAGE: Final = 25
FAILURE_TOLERANCE_PERCENTAGE: Final = 10


class TemplateTooLargeError(ValueError):
    pass


def template_body(template: Mapping[str, Any]) -> str:
    """The inline TemplateBody (compact JSON), refused when over CloudFormation's limit."""
    body = json.dumps(template, separators=(",", ":"), sort_keys=True)
    size = len(body.encode("utf-8"))
    if size > TEMPLATE_BODY_LIMIT:
        raise TemplateTooLargeError(
            f"{template.get('Description', 'member template')}: TemplateBody is {size} bytes, over CloudFormation's "
            f"{TEMPLATE_BODY_LIMIT}-byte limit for an inline StackSet template"
        )
    return body


class MemberStackSet(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stack_set_name: str,
        description: str,
        template: Mapping[str, Any],
        groups: Sequence[InstanceGroup],
        deployment: Deployment,
        capabilities: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        service_managed = deployment.permission_model == "SERVICE_MANAGED"
        instances = []
        for group in groups:
            if service_managed:
                targets = cloudformation.CfnStackSet.DeploymentTargetsProperty(
                    organizational_unit_ids=list(deployment.organizational_units),
                    accounts=list(group.accounts),
                    account_filter_type="INTERSECTION",
                )
            else:
                targets = cloudformation.CfnStackSet.DeploymentTargetsProperty(accounts=list(group.accounts))
            instances.append(
                cloudformation.CfnStackSet.StackInstancesProperty(
                    deployment_targets=targets, regions=list(group.regions)
                )
            )
        self.stack_set = cloudformation.CfnStackSet(
            self,
            "StackSet",
            stack_set_name=stack_set_name,
            description=description,
            permission_model=deployment.permission_model,
            call_as=deployment.call_as if service_managed else None,
            auto_deployment=_auto_deployment(deployment) if service_managed else None,
            managed_execution={"Active": True},
            capabilities=list(capabilities) or None,
            operation_preferences=cloudformation.CfnStackSet.OperationPreferencesProperty(
                region_concurrency_type="PARALLEL",
                max_concurrent_percentage=MAX_CONCURRENT_PERCENTAGE,
                failure_tolerance_percentage=FAILURE_TOLERANCE_PERCENTAGE,
                concurrency_mode="SOFT_FAILURE_TOLERANCE",
            ),
            stack_instances_group=instances,
            template_body=template_body(template),
        )


def _auto_deployment(deployment: Deployment) -> cloudformation.CfnStackSet.AutoDeploymentProperty:
    """Off by default: only a deploy of this app creates instances, for the accounts listed in accounts.yaml.
    On (``deployment.auto_deploy``): StackSets also deploys to any account added to a target OU, and removes the
    instances of an account that leaves one, keeping their resources (the quarantine may hold data)."""
    if not deployment.auto_deploy:
        return cloudformation.CfnStackSet.AutoDeploymentProperty(enabled=False)
    return cloudformation.CfnStackSet.AutoDeploymentProperty(enabled=True, retain_stacks_on_account_removal=True)
