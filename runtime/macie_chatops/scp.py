"""The service control policy `macie-chatops scp` prints (architecture §20): what member-account principals may
not do to the pipeline's member resources, whatever their IAM permissions (the account root user included).

It protects, in every account it is attached to:
- the remediation role (``deployment.remediation_role_name``): no one changes its trust or permissions, or
  deletes it;
- the role CloudFormation StackSets runs the member stacks as: no one changes or deletes it, nor (SERVICE_MANAGED)
  creates another ``stacksets-exec-*`` role (a role named like it would pass every exception below);
- the quarantine buckets: no one changes their policy, versioning, lifecycle, Object Lock, public access
  block, encryption, replication, ownership, ACL or logging, or deletes them (the bucket policy denies the same,
  but S3 always lets the account root user rewrite or delete a bucket policy);
- the quarantine keys (by their alias): no one changes their key policy or grants, disables or deletes them.

Every statement excepts the StackSet execution role, the only principal that deploys these resources. SCPs do
not apply to the management account nor to service-linked roles (StackSets creates ``stacksets-exec-*`` roles
through one).
"""

from __future__ import annotations

import json
from typing import Any, Final

from macie_chatops import names
from macie_chatops.config import Config

SCP_MAX_CHARS: Final = 5_120  # AWS Organizations' limit on a service control policy document

# Bucket-level configuration of a quarantine bucket: only the StackSet execution role may change it.
QUARANTINE_BUCKET_CONFIG_ACTIONS: Final = (
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
)
ROLE_CHANGE_ACTIONS: Final = (
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
)
KEY_CHANGE_ACTIONS: Final = (
    "kms:PutKeyPolicy",
    "kms:CreateGrant",
    "kms:DisableKey",
    "kms:ScheduleKeyDeletion",
    "kms:DeleteAlias",
    "kms:UpdateAlias",
)


def execution_role_arn_pattern(config: Config, *, partition: str = "aws", account: str = "*") -> str:
    """The IAM ARN (pattern) of the role CloudFormation StackSets runs the member stacks as."""
    return (
        f"arn:{partition}:iam::{account}:role/{names.stackset_execution_role_name(config.deployment.permission_model)}"
    )


def service_control_policy(config: Config) -> dict[str, Any]:
    """The SCP document: a deny per protected resource, excepting the StackSet execution role."""
    not_deployer = {"ArnNotLike": {"aws:PrincipalArn": execution_role_arn_pattern(config)}}
    role_name = config.deployment.remediation_role_name
    execution_role = execution_role_arn_pattern(config)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ProtectRemediationRole",
                "Effect": "Deny",
                "Action": list(ROLE_CHANGE_ACTIONS),
                "Resource": f"arn:aws:iam::*:role/{role_name}",
                "Condition": not_deployer,
            },
            {
                "Sid": "ProtectStackSetExecutionRole",
                "Effect": "Deny",
                "Action": [*_creation(config), *ROLE_CHANGE_ACTIONS],
                "Resource": execution_role,
                "Condition": not_deployer,
            },
            {
                "Sid": "ProtectQuarantineBuckets",
                "Effect": "Deny",
                "Action": list(QUARANTINE_BUCKET_CONFIG_ACTIONS),
                "Resource": f"arn:aws:s3:::{names.QUARANTINE_BUCKET_PREFIX}*",
                "Condition": not_deployer,
            },
            {
                "Sid": "ProtectQuarantineKeys",
                "Effect": "Deny",
                "Action": list(KEY_CHANGE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    **not_deployer,
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": names.QUARANTINE_KEY_ALIAS},
                },
            },
        ],
    }


def _creation(config: Config) -> list[str]:
    """SERVICE_MANAGED: any ``stacksets-exec-*`` name would pass the exceptions, so no one may create one
    (StackSets creates them through its service-linked role, which SCPs do not affect). SELF_MANAGED: one exact
    name, which cannot be created twice nor deleted; a new account must be able to create it."""
    return ["iam:CreateRole"] if config.deployment.permission_model == "SERVICE_MANAGED" else []


def service_control_policy_json(config: Config) -> str:
    """The SCP as the compact JSON AWS Organizations counts against its size limit."""
    return json.dumps(service_control_policy(config), separators=(",", ":"))
