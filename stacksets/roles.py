"""The member *roles* stack: once per member account (IAM is global), deployed in the home region. The
remediation role, and the forwarding role: this account's EventBridge rules (every region) may put events on the
central bus, and nowhere else."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.arns import quarantine_bucket_arn_pattern, remediator_role_arn
from stacksets.forwarding import forwarding_role
from stacksets.macie_reader import macie_reader_role, reader_placement, roles_reader_condition
from stacksets.nag import acknowledge

# Reading the finding's exact version, its tags and lock state; deleting it; restoring it (PutObject).
SOURCE_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:GetObjectRetention",
    "s3:GetObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",  # a restore's multipart copy is tagged by version id
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
SOURCE_BUCKET_ACTIONS = (
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketVersioning",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketLocation",
)
# A policy finding's fix and its Undo (docs/architecture.md §18): the bucket's own public access block, read before
# it is put and put back (DeletePublicAccessBlock is authorised as s3:PutBucketPublicAccessBlock). Never the
# account-level block (s3:PutAccountPublicAccessBlock), never a bucket policy or ACL.
BUCKET_PUBLIC_ACCESS_ACTIONS = ("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock")
# Writing the quarantined copy (single or multipart copy), tagging it, and verifying it before any delete.
QUARANTINE_OBJECT_ACTIONS = (
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",  # the copy's `verified` tag is put by version id (S3 requires this action then)
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
QUARANTINE_BUCKET_ACTIONS = ("s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation")
# Decrypt the source version's key, generate data keys for the quarantine key (and for restores).
KMS_VIA_S3_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# What the central remediator may do with the member role (caller side and trust side must both allow it).
ASSUME_ACTIONS = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")
# The trust policy's condition key that must be present on every AssumeRole (CloudTrail attribution enforced).
SOURCE_IDENTITY_KEY = "sts:SourceIdentity"

_QUARANTINE_BUCKETS = names.quarantine_bucket_name("<AWS::AccountId>", "*")
# cdk-nag's IAM5 finding for each wildcard resource of the remediation policy, and why it is acceptable.
_WILDCARD_REASONS = {
    "Resource::arn:<AWS::Partition>:s3:::*/*": (
        "A finding can name any object in any bucket of this account; the statement is limited to this "
        "account's buckets by s3:ResourceAccount and to the object-version actions a move needs."
    ),
    "Resource::arn:<AWS::Partition>:s3:::*": (
        "Listing versions and reading versioning/Object Lock settings of the finding's bucket, and reading and "
        "putting a policy finding's bucket's public access block, which can be any bucket of this account "
        "(s3:ResourceAccount pins the account)."
    ),
    f"Resource::arn:<AWS::Partition>:s3:::{_QUARANTINE_BUCKETS}/*": (
        "Quarantine keys are namespaced by finding id under this account's quarantine buckets, one per "
        "configured region; the wildcard is the region and the object key, nothing wider."
    ),
    f"Resource::arn:<AWS::Partition>:s3:::{_QUARANTINE_BUCKETS}": (
        "This account's quarantine bucket in each configured region (the name ends in the region)."
    ),
    "Resource::*": (
        "Source objects may be encrypted with any KMS key of their bucket; kms:ViaService restricts use "
        "of any key to requests S3 makes on the role's behalf in the configured regions."
    ),
}


class MemberRolesStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.remediation_role = _remediation_role(self, config)
        self.forward_role = forwarding_role(
            self,
            config=config,
            role_name=names.MEMBER_FORWARD_ROLE_NAME,
            description="macie-chatops: this account's EventBridge rules forward Macie findings to the central bus",
        )
        self.macie_reader_role: iam.Role | None = None
        if reader_placement(config) == "roles":  # the administrator has no forwarding StackSet to carry it
            self.macie_reader_role = macie_reader_role(self, config, created_where=roles_reader_condition(config))


def _remediation_role(stack: Stack, config: Config) -> iam.Role:
    """Trusts exactly the central remediator, from inside the organisation, which stamps the approver as
    SourceIdentity (and tags the session), so CloudTrail in the member account shows who approved each move.
    The SourceIdentity is required (``Null: false``): an AssumeRole without one is refused (architecture §19)."""
    conditions = {
        "StringEquals": {"aws:PrincipalOrgID": config.organization_id},
        "Null": {SOURCE_IDENTITY_KEY: "false"},
    }
    remediator = iam.ArnPrincipal(remediator_role_arn(config))
    role = iam.Role(
        stack,
        "RemediationRole",
        role_name=config.deployment.remediation_role_name,
        description="macie-chatops: the central remediator moves flagged object versions into quarantine",
        assumed_by=remediator.with_conditions(conditions),
    )
    trust = role.assume_role_policy
    assert trust is not None
    # SourceIdentity (the approver) and session tags (the finding id) must be allowed by the trust policy; the
    # same conditions, so setting them is allowed only on a request that carries a SourceIdentity.
    trust.add_statements(
        iam.PolicyStatement(
            actions=["sts:SetSourceIdentity", "sts:TagSession"], principals=[remediator], conditions=conditions
        )
    )
    _remediation_policy(stack, config).attach_to_role(role)
    return role


def _remediation_policy(stack: Stack, config: Config) -> iam.Policy:
    """Object versions of this account's buckets only (``s3:ResourceAccount``), its quarantine buckets, and KMS
    keys only through S3 in the configured regions."""
    own_account = {"StringEquals": {"s3:ResourceAccount": Aws.ACCOUNT_ID}}
    policy = iam.Policy(
        stack,
        "RemediationPolicy",
        statements=[
            iam.PolicyStatement(
                sid="FlaggedObjectVersions",
                actions=list(SOURCE_OBJECT_ACTIONS),
                resources=[f"arn:{Aws.PARTITION}:s3:::*/*"],
                conditions=own_account,
            ),
            iam.PolicyStatement(
                sid="FlaggedObjectBuckets",
                actions=list(SOURCE_BUCKET_ACTIONS),
                resources=[f"arn:{Aws.PARTITION}:s3:::*"],
                conditions=own_account,
            ),
            iam.PolicyStatement(
                sid="PublicAccessBlockOfFlaggedBuckets",
                actions=list(BUCKET_PUBLIC_ACCESS_ACTIONS),
                resources=[f"arn:{Aws.PARTITION}:s3:::*"],
                conditions=own_account,
            ),
            iam.PolicyStatement(
                sid="QuarantineObjects",
                actions=list(QUARANTINE_OBJECT_ACTIONS),
                resources=[f"{quarantine_bucket_arn_pattern()}/*"],
                conditions=own_account,
            ),
            iam.PolicyStatement(
                sid="QuarantineBuckets",
                actions=list(QUARANTINE_BUCKET_ACTIONS),
                resources=[quarantine_bucket_arn_pattern()],
                conditions=own_account,
            ),
            iam.PolicyStatement(
                sid="KmsThroughS3Only",
                actions=list(KMS_VIA_S3_ACTIONS),
                resources=["*"],
                conditions={
                    "StringEquals": {"kms:ViaService": [f"s3.{region}.amazonaws.com" for region in config.regions]}
                },
            ),
        ],
    )
    for finding, reason in _WILDCARD_REASONS.items():
        acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", reason)
    return policy
