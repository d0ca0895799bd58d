"""The StackSets: who gets the member stacks, where, how they roll out; onboarding = one accounts.yaml entry."""

from __future__ import annotations

from typing import Any

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.targets import InstanceGroup, instance_count, regional_instance_groups, roles_instance_groups
from tests.functional.infra.conftest import NEW_ACCOUNT, Synthesized, config_from, example_document


def _groups(stack_set: dict[str, Any]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(tuple(g["Regions"]), tuple(g["DeploymentTargets"]["Accounts"])) for g in stack_set["StackInstancesGroup"]]


def test_service_managed_targets_the_ous_intersected_with_the_listed_accounts(example: Synthesized) -> None:
    config = example.config
    for name in (names.MEMBER_ROLES_STACKSET_NAME, names.MEMBER_REGIONAL_STACKSET_NAME):
        stack_set = example.stack_set(name)
        assert stack_set["PermissionModel"] == "SERVICE_MANAGED"
        assert stack_set["CallAs"] == config.deployment.call_as
        # auto-deployment off (the default): accounts.yaml is the only source of targets (architecture §19)
        assert stack_set["AutoDeployment"] == {"Enabled": False}
        assert stack_set["ManagedExecution"] == {"Active": True}
        preferences = stack_set["OperationPreferences"]
        assert preferences["RegionConcurrencyType"] == "PARALLEL"
        assert 0 < preferences["MaxConcurrentPercentage"] <= 100
        assert 0 <= preferences["FailureTolerancePercentage"] < 100
        for group in stack_set["StackInstancesGroup"]:
            targets = group["DeploymentTargets"]
            assert targets["OrganizationalUnitIds"] == list(config.deployment.organizational_units)
            assert targets["AccountFilterType"] == "INTERSECTION"
        listed = sorted(a for _, accounts in _groups(stack_set) for a in accounts)
        assert listed == sorted(a.id for a in config.accounts)


def test_roles_deploy_once_per_account_and_regional_per_account_region(example: Synthesized) -> None:
    config = example.config
    roles = example.stack_set(names.MEMBER_ROLES_STACKSET_NAME)
    assert _groups(roles) == [((config.security_account.region,), tuple(a.id for a in config.accounts))]
    assert roles["Capabilities"] == ["CAPABILITY_NAMED_IAM"]
    regional = example.stack_set(names.MEMBER_REGIONAL_STACKSET_NAME)
    # payments-dev lists only us-east-1 in accounts.yaml: it is grouped on its own; the security account is
    # listed as a member (it owns buckets too) and is grouped like any other
    assert _groups(regional) == [
        (("us-east-1", "eu-west-1"), ("345678901234", "567890123456", config.security_account.id)),
        (("us-east-1",), ("456789012345",)),
    ]
    assert "Capabilities" not in regional
    # AND the regional StackSet waits for the roles (forwarding role, remediation role) to exist
    regional_id = next(
        k
        for k, r in example.stacksets_json["Resources"].items()
        if r["Type"] == "AWS::CloudFormation::StackSet"
        and r["Properties"]["StackSetName"] == names.MEMBER_REGIONAL_STACKSET_NAME
    )
    roles_id = next(
        k
        for k, r in example.stacksets_json["Resources"].items()
        if r["Type"] == "AWS::CloudFormation::StackSet"
        and r["Properties"]["StackSetName"] == names.MEMBER_ROLES_STACKSET_NAME
    )
    assert roles_id in example.stacksets_json["Resources"][regional_id]["DependsOn"]


def test_self_managed_targets_the_listed_accounts_without_ous_or_auto_deployment(self_managed: Synthesized) -> None:
    for name in (names.MEMBER_ROLES_STACKSET_NAME, names.MEMBER_REGIONAL_STACKSET_NAME):
        stack_set = self_managed.stack_set(name)
        assert stack_set["PermissionModel"] == "SELF_MANAGED"
        assert "CallAs" not in stack_set  # CallAs applies to service-managed StackSets only
        assert "AutoDeployment" not in stack_set
        for group in stack_set["StackInstancesGroup"]:
            assert set(group["DeploymentTargets"]) == {"Accounts"}
        listed = sorted(a for _, accounts in _groups(stack_set) for a in accounts)
        assert listed == sorted(a.id for a in self_managed.config.accounts)


def test_an_account_added_to_accounts_yaml_gets_instances(example: Synthesized, onboarded: Synthesized) -> None:
    # GIVEN the example organisation, and the same file with one more account (eu-west-1 only)
    before_regional = _groups(example.stack_set(names.MEMBER_REGIONAL_STACKSET_NAME))
    after_regional = _groups(onboarded.stack_set(names.MEMBER_REGIONAL_STACKSET_NAME))
    # THEN the new account joins the roles StackSet and gets a regional instance in eu-west-1 only
    assert NEW_ACCOUNT not in [a for _, accounts in before_regional for a in accounts]
    assert after_regional == [*before_regional, (("eu-west-1",), (NEW_ACCOUNT,))]
    roles_after = _groups(onboarded.stack_set(names.MEMBER_ROLES_STACKSET_NAME))
    assert roles_after[0][1][-1] == NEW_ACCOUNT
    # AND nothing else changes: same member templates, same central stack resources
    assert onboarded.roles_body == example.roles_body
    assert onboarded.regional_body == example.regional_body
    # (but the interaction function's published version: its id follows the code asset, which carries the bundled
    # config, so the SnapStart snapshot is taken again with the new account: docs/architecture.md §6)
    assert _unversioned(onboarded.central_json) == _unversioned(example.central_json)
    assert _unversioned(onboarded.central_json) != set(onboarded.central_json["Resources"])


def _unversioned(template: dict[str, Any]) -> set[str]:
    return {k for k, r in template["Resources"].items() if r["Type"] != "AWS::Lambda::Version"}


def _config(accounts: list[dict[str, Any]], regions: list[str]) -> Config:
    document = example_document()
    document["regions"] = regions
    document["accounts"] = accounts
    return config_from(document, "groups.yaml")


def test_instance_groups_follow_region_sets_in_file_order() -> None:
    # GIVEN accounts with the default regions, a subset, and the same subset written in another order
    config = _config(
        [
            {"id": "111111111111", "name": "a", "team": "payments"},
            {"id": "222222222222", "name": "b", "team": "payments", "regions": ["eu-west-1"]},
            {"id": "333333333333", "name": "c", "team": "analytics"},
            {"id": "444444444444", "name": "d", "team": "analytics", "regions": ["eu-west-1", "us-east-1"]},
        ],
        ["us-east-1", "eu-west-1"],
    )
    # WHEN grouped  THEN region sets are normalised to accounts.yaml order and accounts stay in file order
    assert regional_instance_groups(config) == [
        InstanceGroup(regions=("us-east-1", "eu-west-1"), accounts=("111111111111", "333333333333", "444444444444")),
        InstanceGroup(regions=("eu-west-1",), accounts=("222222222222",)),
    ]
    assert roles_instance_groups(config) == [
        InstanceGroup(regions=("us-east-1",), accounts=("111111111111", "222222222222", "333333333333", "444444444444"))
    ]
    assert instance_count(regional_instance_groups(config)) == 3 * 2 + 1


def _member_stack_set(deployment: dict[str, Any]) -> dict[str, Any]:
    """One MemberStackSet synthesized alone in a bare stack, for ``deployment`` over the example file's."""
    from aws_cdk import App, Stack
    from aws_cdk.assertions import Template

    from stacksets.stackset import MemberStackSet

    document = example_document()
    document["deployment"] = {**document["deployment"], **deployment}
    config = config_from(document, "auto-deploy.yaml")
    stack = Stack(App(), "AutoDeploy")
    MemberStackSet(
        stack,
        "Member",
        stack_set_name="probe",
        description="probe",
        template={"Resources": {}},
        groups=roles_instance_groups(config),
        deployment=config.deployment,
    )
    (stack_set,) = Template.from_stack(stack).find_resources("AWS::CloudFormation::StackSet").values()
    properties: dict[str, Any] = stack_set["Properties"]
    return properties


def test_auto_deploy_is_off_unless_asked_for_and_keeps_resources_on_removal_when_on() -> None:
    # GIVEN the default (no auto_deploy): an account added to a target OU gets nothing until it is listed
    assert _member_stack_set({})["AutoDeployment"] == {"Enabled": False}
    # WHEN deployment.auto_deploy is true
    on = _member_stack_set({"auto_deploy": True})
    # THEN StackSets deploys to accounts added to the OUs, and an account leaving one keeps its resources
    assert on["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": True}
    # AND the explicit targets are still the OUs intersected with the listed accounts
    for group in on["StackInstancesGroup"]:
        assert group["DeploymentTargets"]["AccountFilterType"] == "INTERSECTION"
