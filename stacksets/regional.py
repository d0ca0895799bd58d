"""The member *regional* stack: every member account x configured region.

- The forwarding rule on the default bus: the one Macie pattern -> the central bus (cross-region is
  allowed), through the forwarding role, with a dead-letter queue; an alarm on that DLQ, whose state
  changes are forwarded to the central bus too (the central stack relays them to the alarm topic).
  See stacksets/forwarding.py (shared with the Macie administrator's forwarding).
- The quarantine bucket ``macie-chatops-quarantine-<account>-<region>``: public access blocked, versioned,
  SSE-KMS with a rotating key of its own, TLS only, object access denied to everyone but the remediation
  role (and read-only break-glass principals from accounts.yaml), server access logs to a log bucket, and a
  lifecycle: a copy expires after the retention period and its expired version is removed a day later
  (so a copy lives ``retention_days``, not up to twice that), multipart uploads an interrupted remediator
  left behind are aborted after a day, and expired delete markers are removed.

The template is shared by every account and region of the StackSet, so account and region come from the
``AWS::AccountId`` / ``AWS::Region`` pseudo parameters, never from accounts.yaml. Policies name the
remediation role by ``aws:PrincipalArn`` conditions (not as a principal), so S3 and KMS do not require the
role to exist yet when a new account's instances deploy in parallel.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.forwarding import forward_to_central_bus
from stacksets.roles import member_role_arn

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


def _account_of(role_arn: str) -> str:
    return role_arn.split(":")[4]


class MemberRegionalStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        remediation_role_arn = member_role_arn(config.deployment.remediation_role_name)
        break_glass = list(config.quarantine.break_glass_principals)
        retention = Duration.days(config.quarantine.retention_days)

        # --- forwarding ------------------------------------------------------------------------------
        forwarding = forward_to_central_bus(
            self,
            config=config,
            role=iam.Role.from_role_arn(
                self, "ForwardRole", member_role_arn(names.MEMBER_FORWARD_ROLE_NAME), mutable=False
            ),
            rule_name=names.MEMBER_FORWARD_RULE_NAME,
            dead_letter_queue_name=names.MEMBER_FORWARD_DLQ_NAME,
            alarm_name=f"{names.MEMBER_ALARM_NAME_PREFIX}forward-dlq",
            alarm_rule_name=names.MEMBER_ALARM_RULE_NAME,
            rule_description="macie-chatops: Macie findings -> the security account's central bus",
            alarm_description="macie-chatops: Macie findings of this account/region could not reach the central bus",
        )
        self.dead_letter_queue = forwarding.dead_letter_queue
        self.forward_rule = forwarding.forward_rule
        self.dead_letter_alarm = forwarding.dead_letter_alarm
        self.alarm_rule = forwarding.alarm_rule

        # --- quarantine ------------------------------------------------------------------------------
        self.key = kms.Key(
            self,
            "QuarantineKey",
            alias=names.QUARANTINE_KEY_ALIAS,
            description="macie-chatops: encrypts this account's quarantined object copies in this region",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        via_s3 = {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="RemediationRoleThroughS3",
                principals=[iam.AccountRootPrincipal()],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"ArnEquals": {"aws:PrincipalArn": remediation_role_arn}, "StringEquals": via_s3},
            )
        )
        if break_glass:
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="BreakGlassReadersThroughS3",
                    principals=[
                        iam.ArnPrincipal(f"arn:{Aws.PARTITION}:iam::{account}:root")
                        for account in sorted({_account_of(arn) for arn in break_glass})
                    ],
                    actions=["kms:Decrypt"],
                    resources=["*"],
                    conditions={"ArnEquals": {"aws:PrincipalArn": break_glass}, "StringEquals": via_s3},
                )
            )

        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging delivers to SSE-S3 only
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(max(ACCESS_LOG_MIN_RETENTION_DAYS, config.quarantine.retention_days)),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.bucket = s3.Bucket(
            self,
            "QuarantineBucket",
            bucket_name=names.quarantine_bucket_name(Aws.ACCOUNT_ID, Aws.REGION),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="quarantine/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-quarantined-copies",
                    expiration=retention,
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
        objects_and_bucket = [self.bucket.bucket_arn, self.bucket.arn_for_objects("*")]
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyPipelineAndBreakGlassRead",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=list(QUARANTINE_READ_ACTIONS),
                resources=objects_and_bucket,
                conditions={"ArnNotEquals": {"aws:PrincipalArn": [remediation_role_arn, *break_glass]}},
            )
        )
        self.bucket.add_to_resource_policy(
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
            self.bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="BreakGlassRead",
                    principals=[
                        iam.ArnPrincipal(f"arn:{Aws.PARTITION}:iam::{account}:root")
                        for account in sorted({_account_of(arn) for arn in break_glass})
                    ],
                    actions=list(QUARANTINE_READ_ACTIONS),
                    resources=objects_and_bucket,
                    conditions={"ArnEquals": {"aws:PrincipalArn": break_glass}},
                )
            )
