"""Least privilege of a policy finding's fix (docs/architecture.md §18): the member remediation role may read and
put the public access block of its own account's buckets, and nothing account-wide."""

from __future__ import annotations

from typing import Any

from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type, statements

PARTITION = {"Ref": "AWS::Partition"}
ACCOUNT = {"Ref": "AWS::AccountId"}
FIX_ACTIONS = {"s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"}


def _remediation_statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    template = synthesized.roles_json
    role = next(
        key
        for key, resource in resources_of_type(template, "AWS::IAM::Role").items()
        if resource["Properties"]["RoleName"] == synthesized.config.deployment.remediation_role_name
    )
    policies = [
        policy
        for policy in resources_of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
    ]
    return [statement for policy in policies for statement in statements(policy["Properties"]["PolicyDocument"])]


def test_the_fix_reads_and_puts_only_bucket_public_access_blocks_of_its_own_account(example: Synthesized) -> None:
    # GIVEN the member roles template as the StackSet deploys it
    granted = _remediation_statements(example)
    # WHEN the statements that grant the fix's actions are picked out
    fix = [s for s in granted if FIX_ACTIONS & set(as_list(s["Action"]))]
    # THEN exactly one statement grants them, and nothing else
    assert len(fix) == 1
    statement = fix[0]
    assert statement["Effect"] == "Allow"
    assert set(as_list(statement["Action"])) == FIX_ACTIONS
    # AND only on buckets (the bucket ARN pattern, no object paths), of this account only
    assert as_list(statement["Resource"]) == [{"Fn::Join": ["", ["arn:", PARTITION, ":s3:::*"]]}]
    assert statement["Condition"] == {"StringEquals": {"s3:ResourceAccount": ACCOUNT}}


def test_the_role_has_nothing_account_wide_for_public_access(example: Synthesized) -> None:
    # GIVEN every action the remediation role is granted
    actions = {action for s in _remediation_statements(example) for action in as_list(s["Action"])}
    # THEN it can neither read nor change the account's public access block, nor a bucket's policy or ACL
    assert not {a for a in actions if "Account" in a}
    assert not actions & {
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutBucketAcl",
        "s3:PutBucketOwnershipControls",
    }
    # AND no wildcard action could grant them
    assert not any("*" in action for action in actions)
