"""`macie-chatops scp`: the service control policy protecting the remediation role and the quarantine
(architecture §20), built from accounts.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from macie_chatops.cli import main
from macie_chatops.config import Config, load_config
from macie_chatops.scp import SCP_MAX_CHARS, service_control_policy, service_control_policy_json
from tests.conftest import ROOT

BUCKET_CONFIGURATION = [
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutEncryptionConfiguration",
    "s3:PutReplicationConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketAcl",
    "s3:PutBucketLogging",
    "s3:DeleteBucket",
]
ROLE_CHANGES = [
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:UpdateRole",
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UntagRole",
]
SERVICE_MANAGED_DEPLOYER = {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/stacksets-exec-*"}}


def _self_managed(tmp_path: Path, role_name: str = "SecOpsQuarantine") -> Path:
    document = yaml.safe_load((ROOT / "accounts.yaml").read_text(encoding="utf-8"))
    document["deployment"] = {"permission_model": "SELF_MANAGED", "call_as": "SELF", "remediation_role_name": role_name}
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _example() -> Config:
    return load_config(ROOT / "accounts.yaml")


def _by_sid(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_scp_is_exactly_four_denies_excepting_the_stackset_execution_role() -> None:
    policy = service_control_policy(_example())
    assert policy["Version"] == "2012-10-17"
    statements = _by_sid(policy)
    assert statements == {
        "ProtectRemediationRole": {
            "Sid": "ProtectRemediationRole",
            "Effect": "Deny",
            "Action": ROLE_CHANGES,
            "Resource": "arn:aws:iam::*:role/macie-chatops-remediation",
            "Condition": SERVICE_MANAGED_DEPLOYER,
        },
        "ProtectStackSetExecutionRole": {
            "Sid": "ProtectStackSetExecutionRole",
            "Effect": "Deny",
            "Action": ["iam:CreateRole", *ROLE_CHANGES],
            "Resource": "arn:aws:iam::*:role/stacksets-exec-*",
            "Condition": SERVICE_MANAGED_DEPLOYER,
        },
        "ProtectQuarantineBuckets": {
            "Sid": "ProtectQuarantineBuckets",
            "Effect": "Deny",
            "Action": BUCKET_CONFIGURATION,
            "Resource": "arn:aws:s3:::macie-chatops-quarantine-*",
            "Condition": SERVICE_MANAGED_DEPLOYER,
        },
        "ProtectQuarantineKeys": {
            "Sid": "ProtectQuarantineKeys",
            "Effect": "Deny",
            "Action": [
                "kms:PutKeyPolicy",
                "kms:CreateGrant",
                "kms:DisableKey",
                "kms:ScheduleKeyDeletion",
                "kms:DeleteAlias",
                "kms:UpdateAlias",
            ],
            "Resource": "*",
            "Condition": {
                **SERVICE_MANAGED_DEPLOYER,
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/macie-chatops-quarantine"},
            },
        },
    }


def test_self_managed_excepts_the_default_execution_role_and_names_the_configured_role(tmp_path: Path) -> None:
    config = load_config(_self_managed(tmp_path))
    statements = _by_sid(service_control_policy(config))
    deployer = {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/AWSCloudFormationStackSetExecutionRole"}}
    assert statements["ProtectRemediationRole"]["Resource"] == "arn:aws:iam::*:role/SecOpsQuarantine"
    assert statements["ProtectStackSetExecutionRole"]["Resource"] == (
        "arn:aws:iam::*:role/AWSCloudFormationStackSetExecutionRole"
    )
    assert all(s["Condition"]["ArnNotLike"] == deployer["ArnNotLike"] for s in statements.values())
    # AND a new account may still create its execution role (one exact name: it cannot be created twice)
    assert statements["ProtectStackSetExecutionRole"]["Action"] == ROLE_CHANGES


def test_scp_fits_the_size_limit_even_with_the_longest_role_name(tmp_path: Path) -> None:
    for config in (_example(), load_config(_self_managed(tmp_path, role_name="r" * 64))):
        document = service_control_policy_json(config)
        assert json.loads(document) == service_control_policy(config)
        assert len(document) <= SCP_MAX_CHARS


def test_cli_prints_the_scp_as_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scp", "--config", str(ROOT / "accounts.yaml")]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == service_control_policy(_example())
    assert len(out.strip()) <= SCP_MAX_CHARS


def test_cli_scp_with_a_broken_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "accounts.yaml"
    broken.write_text("version: 1\n", encoding="utf-8")
    assert main(["scp", "--config", str(broken)]) == 2
    assert capsys.readouterr().out == ""
