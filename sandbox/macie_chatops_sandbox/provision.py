"""Provision the sandbox's AWS side the way the CDK stacks do, with the same names (macie_chatops.names).

Security account, home region: the central bus (org-scoped PutEvents permission), the central rule with the
one event pattern -> the intake queue, the intake, remediation and digest queues with their DLQs (redrive), the
state table (the store's TABLE_DEFINITION and TTL), the Slack secret, the approval key (HMAC, with its alias; no
key policy: moto does not evaluate one) and the remediator role.
Every member account x configured region: the forwarding rule on the default bus -> the central bus, a KMS
key and the quarantine bucket (versioned, KMS default encryption, public access blocked, expiry after the
retention period); per member account the forwarder role and the remediation role. The Macie administrator
(by default the security account) forwards its default bus in every listed region too, where Macie publishes
the findings of its own jobs and of automated discovery; where it is also a member, its member rule does that.

Deliberately not provisioned: bucket policies with Deny statements. moto applies a Deny regardless of its
Condition (reference/toolchain.md §7), so the real quarantine bucket's deny-all-but-the-role policy would
refuse every call here; the sandbox relies on the role boundaries of the real stack instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops.event_pattern import MACIE_FINDING_PATTERN
from macie_chatops_sandbox.aws import Accounts


@dataclass(frozen=True)
class QueueSettings:
    """SQS timings. The stacks use minutes; the sandbox uses seconds so a retry is seen within a test."""

    visibility_timeout_s: int = 3
    max_receive_count: int = 5


@dataclass(frozen=True)
class SlackSecret:
    bot_token: str
    signing_secret: str

    def to_json(self) -> str:
        return json.dumps(
            {names.SLACK_SECRET_BOT_TOKEN: self.bot_token, names.SLACK_SECRET_SIGNING_SECRET: self.signing_secret}
        )


@dataclass(frozen=True)
class Queue:
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class MemberRegion:
    """What one member account has in one region."""

    account_id: str
    region: str
    quarantine_bucket: str
    kms_key_arn: str
    forward_rule_arn: str


@dataclass(frozen=True)
class Provisioned:
    security_account: str
    home_region: str
    central_bus_arn: str
    central_rule_arn: str
    intake: Queue
    intake_dlq: Queue
    remediation: Queue
    remediation_dlq: Queue
    table_name: str
    secret_arn: str
    remediator_role_arn: str
    members: dict[tuple[str, str], MemberRegion] = field(default_factory=dict)
    # (account, region) -> the rule forwarding that default bus to the central bus: members and the administrator.
    forwarders: dict[tuple[str, str], str] = field(default_factory=dict)
    digests: Queue | None = None  # the digest queue (docs/architecture.md §22) and its DLQ
    digests_dlq: Queue | None = None
    approval_key_arn: str = ""  # the HMAC key approvals are signed with (docs/architecture.md §23)
    # A bulk approval's continuations -> the interaction handler (docs/architecture.md §22), and their DLQ.
    continuations: Queue | None = None
    continuations_dlq: Queue | None = None

    def member(self, account_id: str, region: str) -> MemberRegion | None:
        return self.members.get((account_id, region))

    def forwarder(self, account_id: str, region: str) -> str | None:
        """The forwarding rule on ``account_id``'s default bus in ``region``, if the stacks deploy one."""
        return self.forwarders.get((account_id, region))

    @property
    def queues(self) -> tuple[Queue, ...]:
        digests = (self.digests, self.digests_dlq) if self.digests and self.digests_dlq else ()
        continuations = (
            (self.continuations, self.continuations_dlq) if self.continuations and self.continuations_dlq else ()
        )
        return (self.intake, self.intake_dlq, self.remediation, self.remediation_dlq, *digests, *continuations)


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> Queue:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Queue(name, url, arn)


def _queue_with_dlq(sqs: Any, name: str, dlq_name: str, settings: QueueSettings) -> tuple[Queue, Queue]:
    dlq = _queue(sqs, dlq_name, {"MessageRetentionPeriod": str(14 * 24 * 3600), "SqsManagedSseEnabled": "true"})
    queue = _queue(
        sqs,
        name,
        {
            "VisibilityTimeout": str(settings.visibility_timeout_s),
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": str(settings.max_receive_count)}
            ),
        },
    )
    return queue, dlq


def _role(iam: Any, name: str, trust: dict[str, Any], policy: dict[str, Any]) -> str:
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    return arn


def _provision_central(config: Config, accounts: Accounts, secret: SlackSecret, settings: QueueSettings) -> Provisioned:
    from macie_chatops.store import create_state_table

    security, region = config.security_account.id, config.security_account.region
    sqs = accounts.client("sqs", security, region)
    events = accounts.client("events", security, region)

    intake, intake_dlq = _queue_with_dlq(sqs, names.INTAKE_QUEUE_NAME, names.INTAKE_DLQ_NAME, settings)
    remediation, remediation_dlq = _queue_with_dlq(
        sqs, names.REMEDIATION_QUEUE_NAME, names.REMEDIATION_DLQ_NAME, settings
    )
    digests, digests_dlq = _queue_with_dlq(sqs, names.DIGEST_QUEUE_NAME, names.DIGEST_DLQ_NAME, settings)
    continuations, continuations_dlq = _queue_with_dlq(
        sqs, names.BULK_CONTINUATION_QUEUE_NAME, names.BULK_CONTINUATION_DLQ_NAME, settings
    )

    bus_arn: str = events.create_event_bus(Name=names.CENTRAL_BUS_NAME)["EventBusArn"]
    events.put_permission(
        EventBusName=names.CENTRAL_BUS_NAME,
        Action="events:PutEvents",
        Principal="*",
        StatementId="organization-members",
        Condition={"Type": "StringEquals", "Key": "aws:PrincipalOrgID", "Value": config.organization_id},
    )
    rule_arn: str = events.put_rule(
        Name=names.CENTRAL_RULE_NAME,
        EventBusName=names.CENTRAL_BUS_NAME,
        EventPattern=json.dumps(MACIE_FINDING_PATTERN),
        State="ENABLED",
        Description="Macie findings from every member account -> the intake queue",
    )["RuleArn"]
    events.put_targets(
        Rule=names.CENTRAL_RULE_NAME,
        EventBusName=names.CENTRAL_BUS_NAME,
        Targets=[{"Id": "intake", "Arn": intake.arn}],
    )
    sqs.set_queue_attributes(
        QueueUrl=intake.url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "central-rule",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": intake.arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                        }
                    ],
                }
            )
        },
    )

    create_state_table(accounts.client("dynamodb", security, region), names.STATE_TABLE_NAME)

    secrets = accounts.client("secretsmanager", security, region)
    secret_arn: str = secrets.create_secret(
        Name=config.slack.secret_name,
        SecretString=secret.to_json(),
        Description="Slack bot token and signing secret (sandbox values)",
    )["ARN"]

    iam = accounts.client("iam", security, region)
    remediator_role_arn = _role(
        iam,
        names.REMEDIATOR_ROLE_NAME,
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                    "Resource": f"arn:aws:iam::*:role/{config.deployment.remediation_role_name}",
                }
            ],
        },
    )
    kms = accounts.client("kms", security, region)
    approval_key_arn: str = kms.create_key(
        KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Description="macie-chatops: signs every approval"
    )["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=names.APPROVAL_KEY_ALIAS, TargetKeyId=approval_key_arn)
    return Provisioned(
        security_account=security,
        home_region=region,
        central_bus_arn=bus_arn,
        central_rule_arn=rule_arn,
        intake=intake,
        intake_dlq=intake_dlq,
        remediation=remediation,
        remediation_dlq=remediation_dlq,
        table_name=names.STATE_TABLE_NAME,
        secret_arn=secret_arn,
        remediator_role_arn=remediator_role_arn,
        digests=digests,
        digests_dlq=digests_dlq,
        approval_key_arn=approval_key_arn,
        continuations=continuations,
        continuations_dlq=continuations_dlq,
    )


def _forwarder_role(accounts: Accounts, account_id: str, role_name: str, central: Provisioned) -> str:
    return _role(
        accounts.client("iam", account_id, central.home_region),
        role_name,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        },
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": central.central_bus_arn}],
        },
    )


def _provision_forward_rule(
    accounts: Accounts,
    account_id: str,
    region: str,
    central: Provisioned,
    *,
    rule_name: str,
    role_arn: str,
    description: str,
) -> str:
    events = accounts.client("events", account_id, region)
    rule_arn: str = events.put_rule(
        Name=rule_name, EventPattern=json.dumps(MACIE_FINDING_PATTERN), State="ENABLED", Description=description
    )["RuleArn"]
    events.put_targets(
        Rule=rule_name, Targets=[{"Id": "central-bus", "Arn": central.central_bus_arn, "RoleArn": role_arn}]
    )
    central.forwarders[(account_id, region)] = rule_arn
    return rule_arn


def _provision_member_account(config: Config, accounts: Accounts, account_id: str, central: Provisioned) -> None:
    iam = accounts.client("iam", account_id, central.home_region)
    _forwarder_role(accounts, account_id, names.MEMBER_FORWARD_ROLE_NAME, central)
    _role(
        iam,
        config.deployment.remediation_role_name,
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": central.remediator_role_arn},
                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                    # As stacksets/roles.py: SourceIdentity required (moto does not evaluate trust conditions).
                    "Condition": {"Null": {"sts:SourceIdentity": "false"}},
                }
            ],
        },
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "s3:GetObject*",
                        "s3:PutObject*",
                        "s3:DeleteObjectVersion",
                        "s3:DeleteObject",
                        "s3:ListBucketVersions",
                        "s3:GetBucketPublicAccessBlock",
                        "s3:PutBucketPublicAccessBlock",
                        "kms:Decrypt",
                        "kms:GenerateDataKey",
                    ],
                    "Resource": "*",
                }
            ],
        },
    )


def _provision_member_region(
    config: Config, accounts: Accounts, account_id: str, region: str, central: Provisioned
) -> MemberRegion:
    kms = accounts.client("kms", account_id, region)
    key_arn: str = kms.create_key(Description=f"macie-chatops quarantine {account_id} {region}")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=names.QUARANTINE_KEY_ALIAS, TargetKeyId=key_arn)

    s3 = accounts.client("s3", account_id, region)
    bucket = names.quarantine_bucket_name(account_id, region)
    create: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**create)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "quarantine-retention",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": config.quarantine.retention_days},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": config.quarantine.retention_days},
                }
            ]
        },
    )

    rule_arn = _provision_forward_rule(
        accounts,
        account_id,
        region,
        central,
        rule_name=names.MEMBER_FORWARD_RULE_NAME,
        role_arn=f"arn:aws:iam::{account_id}:role/{names.MEMBER_FORWARD_ROLE_NAME}",
        description="Forward Macie findings to the security account's central bus",
    )
    return MemberRegion(account_id, region, bucket, key_arn, rule_arn)


def _provision_administrator(config: Config, accounts: Accounts, central: Provisioned) -> None:
    """The Macie administrator's forwarding where the stacks deploy it: every listed region except those where
    the administrator is also a member (its member rule already forwards that bus; two rules would deliver
    every finding twice)."""
    administrator = config.macie_administrator_id
    for region in config.administrator_forwarding_regions():
        role_arn = _forwarder_role(accounts, administrator, names.administrator_forward_role_name(region), central)
        _provision_forward_rule(
            accounts,
            administrator,
            region,
            central,
            rule_name=names.ADMINISTRATOR_FORWARD_RULE_NAME,
            role_arn=role_arn,
            description="Forward the Macie administrator's findings (its jobs, automated discovery) to the central bus",
        )


def provision(
    config: Config, accounts: Accounts, secret: SlackSecret, settings: QueueSettings | None = None
) -> Provisioned:
    """Create everything the stacks would, in the moto server behind ``accounts``; return where it is."""
    central = _provision_central(config, accounts, secret, settings or QueueSettings())
    for account in config.accounts:
        _provision_member_account(config, accounts, account.id, central)
        for region in config.regions_for(account):
            central.members[(account.id, region)] = _provision_member_region(
                config, accounts, account.id, region, central
            )
    _provision_administrator(config, accounts, central)
    return central
