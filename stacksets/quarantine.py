"""The member's quarantine in one region: the bucket ``macie-chatops-quarantine-<account>-<region>``, its KMS key
and its server access log bucket.

Policies name the remediation role by ``aws:PrincipalArn`` conditions (not as a principal), so S3 and KMS do
not require the role to exist yet when a new account's instances deploy in parallel. The quarantine stays locked
(architecture §20): only the StackSet execution role (the role CloudFormation runs this stack as) may change the
bucket's configuration or administer the key, and no one but the remediation role (and the break-glass readers,
to decrypt) may use the key for data.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops.scp import QUARANTINE_BUCKET_CONFIG_ACTIONS

# Reads of quarantined copies: the remediation role (verify, restore) and the break-glass readers.
QUARANTINE_READ_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:GetObjectAcl",
    "s3:GetObjectVersionAcl",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:ListMultipartUploadParts",
)
# Everything that changes or removes a quarantined copy: the remediation role only.
QUARANTINE_WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:AbortMultipartUpload",
    "s3:RestoreObject",
    "s3:BypassGovernanceRetention",
)
ACCESS_LOG_MIN_RETENTION_DAYS = 365
# A remediator copy runs within one Lambda invocation (15 minutes at most) and a retry starts a new upload,
# so an upload still incomplete after a day was abandoned: its parts are billed and hold quarantined bytes.
INCOMPLETE_UPLOAD_DAYS = 1
# Expiry makes the current copy noncurrent (behind a delete marker); remove it soon after, not a second
# retention period later. Nothing else makes a copy noncurrent but a re-copy over an unverified one.
NONCURRENT_COPY_DAYS = 1
# Key administration, for the StackSet execution role: what CloudFormation does to an AWS::KMS::Key (create,
# update, tag, rotate, retire); no data use, no CreateGrant (a grant could give data use).
KEY_ADMIN_ACTIONS = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:PutKeyPolicy",
    "kms:UpdateKeyDescription",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
)
# S3 server-side encryption with the key, for the remediation role (copies in, reads for verify and restore).
KEY_DATA_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*")


class Quarantine:
    def __init__(self, stack: Stack, config: Config, *, remediation_role_arn: str) -> None:
        break_glass = list(config.quarantine.break_glass_principals)
        deployer = stackset_execution_role_arn(config)
        self.key = _quarantine_key(
            stack, remediation_role_arn=remediation_role_arn, break_glass=break_glass, deployer=deployer
        )
        self.access_log_bucket = _access_log_bucket(stack, retention_days=config.quarantine.retention_days)
        self.bucket = _quarantine_bucket(
            stack,
            key=self.key,
            access_log_bucket=self.access_log_bucket,
            retention_days=config.quarantine.retention_days,
        )
        _only_the_pipeline_and_break_glass(
            self.bucket, remediation_role_arn=remediation_role_arn, break_glass=break_glass
        )
        _only_the_deployer_configures(self.bucket, deployer=deployer)


def stackset_execution_role_arn(config: Config) -> str:
    """This account's StackSet execution role (an ``ArnLike`` pattern under SERVICE_MANAGED)."""
    name = names.stackset_execution_role_name(config.deployment.permission_model)
    return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{name}"


def _break_glass_accounts(break_glass: Sequence[str]) -> list[iam.IPrincipal]:
    accounts = sorted({arn.split(":")[4] for arn in break_glass})
    return [iam.ArnPrincipal(f"arn:{Aws.PARTITION}:iam::{account}:root") for account in accounts]


def _quarantine_key(stack: Stack, *, remediation_role_arn: str, break_glass: Sequence[str], deployer: str) -> kms.Key:
    """A key policy of our own (``policy``: CDK then adds no ``kms:*`` for the account root): administration for
    the StackSet execution role only (KMS refuses a policy that would lock out its caller, that role), data use
    for the remediation role and the break-glass readers, through S3 only."""
    account = iam.AccountRootPrincipal()
    via_s3 = {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}
    policy = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="StackSetExecutionRoleAdministers",
                principals=[account],
                actions=list(KEY_ADMIN_ACTIONS),
                resources=["*"],
                conditions={"ArnLike": {"aws:PrincipalArn": deployer}},
            ),
            iam.PolicyStatement(
                sid="RemediationRoleThroughS3",
                principals=[account],
                actions=list(KEY_DATA_ACTIONS),
                resources=["*"],
                conditions={"ArnEquals": {"aws:PrincipalArn": remediation_role_arn}, "StringEquals": via_s3},
            ),
        ]
    )
    if break_glass:
        policy.add_statements(
            iam.PolicyStatement(
                sid="BreakGlassReadersThroughS3",
                principals=_break_glass_accounts(break_glass),
                actions=["kms:Decrypt"],
                resources=["*"],
                conditions={"ArnEquals": {"aws:PrincipalArn": list(break_glass)}, "StringEquals": via_s3},
            )
        )
    return kms.Key(
        stack,
        "QuarantineKey",
        alias=names.QUARANTINE_KEY_ALIAS,
        description="macie-chatops: encrypts this account's quarantined object copies in this region",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
        policy=policy,
    )


def _access_log_bucket(stack: Stack, *, retention_days: int) -> s3.Bucket:
    return s3.Bucket(
        stack,
        "AccessLogBucket",
        encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging delivers to SSE-S3 only
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        versioned=True,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=Duration.days(max(ACCESS_LOG_MIN_RETENTION_DAYS, retention_days)),
                noncurrent_version_expiration=Duration.days(30),
            )
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )


def _quarantine_bucket(stack: Stack, *, key: kms.IKey, access_log_bucket: s3.IBucket, retention_days: int) -> s3.Bucket:
    """Versioned, SSE-KMS, TLS only; a copy lives ``retention_days`` (its expired version goes a day later)."""
    return s3.Bucket(
        stack,
        "QuarantineBucket",
        bucket_name=names.quarantine_bucket_name(Aws.ACCOUNT_ID, Aws.REGION),
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        versioned=True,
        server_access_logs_bucket=access_log_bucket,
        server_access_logs_prefix="quarantine/",
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-quarantined-copies",
                expiration=Duration.days(retention_days),
                noncurrent_version_expiration=Duration.days(NONCURRENT_COPY_DAYS),
            ),
            s3.LifecycleRule(
                id="abort-incomplete-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
            ),
            s3.LifecycleRule(id="remove-expired-delete-markers", expired_object_delete_marker=True),
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )


def _only_the_pipeline_and_break_glass(
    bucket: s3.Bucket, *, remediation_role_arn: str, break_glass: Sequence[str]
) -> None:
    """Object access denied to everyone but the remediation role, and read-only to the break-glass readers."""
    objects_and_bucket = [bucket.bucket_arn, bucket.arn_for_objects("*")]
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyPipelineAndBreakGlassRead",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(QUARANTINE_READ_ACTIONS),
            resources=objects_and_bucket,
            conditions={"ArnNotEquals": {"aws:PrincipalArn": [remediation_role_arn, *break_glass]}},
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyPipelineWrites",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(QUARANTINE_WRITE_ACTIONS),
            resources=objects_and_bucket,
            conditions={"ArnNotEquals": {"aws:PrincipalArn": remediation_role_arn}},
        )
    )
    if break_glass:
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="BreakGlassRead",
                principals=_break_glass_accounts(break_glass),
                actions=list(QUARANTINE_READ_ACTIONS),
                resources=objects_and_bucket,
                conditions={"ArnEquals": {"aws:PrincipalArn": list(break_glass)}},
            )
        )


def _only_the_deployer_configures(bucket: s3.Bucket, *, deployer: str) -> None:
    """The bucket's configuration (policy, versioning, lifecycle, Object Lock, public access block, ...) and the
    bucket itself: denied to every principal but the StackSet execution role, which must keep them to update
    and delete this stack."""
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyStackSetsConfigures",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(QUARANTINE_BUCKET_CONFIG_ACTIONS),
            resources=[bucket.bucket_arn],
            conditions={"ArnNotLike": {"aws:PrincipalArn": deployer}},
        )
    )
