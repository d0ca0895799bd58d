"""Security invariants of the member templates, read from the StackSets' TemplateBody (what is deployed)."""

from __future__ import annotations

import json
import re
from typing import Any

from macie_chatops import names
from macie_chatops.event_pattern import MACIE_FINDING_PATTERN
from stacksets.stackset import TEMPLATE_BODY_LIMIT, template_body
from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type, statements

PARTITION = {"Ref": "AWS::Partition"}
ACCOUNT = {"Ref": "AWS::AccountId"}
REGION = {"Ref": "AWS::Region"}


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


def _member_role(name: str) -> dict[str, Any]:
    return _join("arn:", PARTITION, ":iam::", ACCOUNT, f":role/{name}")


def _only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources_of_type(template, resource_type)
    assert len(found) == 1, (resource_type, list(found))
    return next(iter(found.values()))


def _by_property(template: dict[str, Any], resource_type: str, key: str, value: Any) -> dict[str, Any]:
    for resource in resources_of_type(template, resource_type).values():
        if resource["Properties"].get(key) == value:
            return resource
    raise AssertionError(f"no {resource_type} with {key}={value!r}")


def test_member_templates_are_stackset_ready(example: Synthesized) -> None:
    # GIVEN the TemplateBody strings the StackSets carry (the administrator's forwarding too)
    for body in (example.roles_body, example.regional_body, template_body(example.administrator_json)):
        template = json.loads(body)
        # THEN they fit inline, need no bootstrap, carry no CDK metadata and no assets
        assert len(body.encode("utf-8")) <= TEMPLATE_BODY_LIMIT
        assert "Parameters" not in template and "Rules" not in template
        assert not resources_of_type(template, "AWS::CDK::Metadata")
        assert "aws:cdk:path" not in body and "aws:asset" not in body and "cdk-hnb659fds" not in body
        assert "Conditions" not in template


def test_remediation_role_trusts_exactly_the_central_remediator_inside_the_org(example: Synthesized) -> None:
    config = example.config
    role = _by_property(example.roles_json, "AWS::IAM::Role", "RoleName", config.deployment.remediation_role_name)
    trust = statements(role["Properties"]["AssumeRolePolicyDocument"])
    remediator = _join("arn:", PARTITION, f":iam::{config.security_account.id}:role/{names.REMEDIATOR_ROLE_NAME}")
    actions = set()
    for statement in trust:
        # THEN every trust statement names only the central remediator role, under the org condition
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"AWS": remediator}
        # AND a SourceIdentity is required on every request (CloudTrail attribution enforced, not by convention)
        assert statement["Condition"] == {
            "StringEquals": {"aws:PrincipalOrgID": config.organization_id},
            "Null": {"sts:SourceIdentity": "false"},
        }
        actions.update(as_list(statement["Action"]))
    # AND the approver can be stamped as SourceIdentity (and the finding id as a session tag)
    assert actions == {"sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"}
    assumes = [s for s in trust if "sts:AssumeRole" in as_list(s["Action"])]
    assert assumes and all(s["Condition"]["Null"] == {"sts:SourceIdentity": "false"} for s in assumes)


def test_remediation_role_can_move_versions_in_its_own_account_only(example: Synthesized) -> None:
    role_ref = {
        "Ref": next(
            k
            for k, r in resources_of_type(example.roles_json, "AWS::IAM::Role").items()
            if r["Properties"]["RoleName"] == example.config.deployment.remediation_role_name
        )
    }
    policies = [
        p
        for p in resources_of_type(example.roles_json, "AWS::IAM::Policy").values()
        if role_ref in p["Properties"]["Roles"]
    ]
    granted = [s for p in policies for s in statements(p["Properties"]["PolicyDocument"])]
    s3_statements = [s for s in granted if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    actions = {a for s in s3_statements for a in as_list(s["Action"])}
    assert {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
        "s3:GetObjectVersionTagging",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:ListBucketVersions",
        "s3:PutObject",
    } <= actions
    assert not any(a.endswith("*") for a in actions)
    for statement in s3_statements:
        # THEN no S3 permission reaches another account's buckets
        assert statement["Condition"] == {"StringEquals": {"s3:ResourceAccount": ACCOUNT}}
    # AND writes of quarantined copies target this account's quarantine buckets (any region)
    quarantine = [s for s in s3_statements if "quarantine" in json.dumps(s["Resource"])]
    assert quarantine and all(
        json.dumps(s["Resource"]).startswith(
            json.dumps(_join("arn:", PARTITION, ":s3:::macie-chatops-quarantine-", ACCOUNT))[:-3]
        )
        for s in quarantine
    )
    # AND KMS only through S3, in the configured regions
    kms = [s for s in granted if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    assert len(kms) == 1
    assert sorted(as_list(kms[0]["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms[0]["Condition"] == {
        "StringEquals": {"kms:ViaService": [f"s3.{r}.amazonaws.com" for r in example.config.regions]}
    }
    # AND nothing else: no IAM, STS or other service
    assert {a.split(":")[0] for s in granted for a in as_list(s["Action"])} == {"s3", "kms"}


def test_forwarding_role_may_only_put_events_on_the_central_bus(example: Synthesized) -> None:
    config = example.config
    role_id, role = next(
        (k, r)
        for k, r in resources_of_type(example.roles_json, "AWS::IAM::Role").items()
        if r["Properties"]["RoleName"] == names.MEMBER_FORWARD_ROLE_NAME
    )
    assert statements(role["Properties"]["AssumeRolePolicyDocument"])[0]["Principal"] == {
        "Service": "events.amazonaws.com"
    }
    granted = [
        s
        for p in resources_of_type(example.roles_json, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in statements(p["Properties"]["PolicyDocument"])
    ]
    bus = _join(
        "arn:",
        PARTITION,
        f":events:{config.security_account.region}:{config.security_account.id}:event-bus/{names.CENTRAL_BUS_NAME}",
    )
    assert granted == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus}]


def test_forwarding_rule_sends_the_shared_pattern_to_the_central_bus_with_a_dlq(example: Synthesized) -> None:
    rule = _by_property(example.regional_json, "AWS::Events::Rule", "Name", names.MEMBER_FORWARD_RULE_NAME)
    assert rule["Properties"]["EventPattern"] == MACIE_FINDING_PATTERN
    assert "EventBusName" not in rule["Properties"]  # the account's default bus
    (target,) = rule["Properties"]["Targets"]
    config = example.config
    assert target["Arn"] == _join(
        "arn:",
        PARTITION,
        f":events:{config.security_account.region}:{config.security_account.id}:event-bus/{names.CENTRAL_BUS_NAME}",
    )
    assert target["RoleArn"] == _member_role(names.MEMBER_FORWARD_ROLE_NAME)
    dlq = _by_property(example.regional_json, "AWS::SQS::Queue", "QueueName", names.MEMBER_FORWARD_DLQ_NAME)
    assert dlq is not None
    assert "DeadLetterConfig" in target


def _quarantine_bucket(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    # names.quarantine_bucket_name with the pseudo parameters in place of the account and the region
    account, region = "\0account\0", "\0region\0"
    parts = re.split(f"({account}|{region})", names.quarantine_bucket_name(account, region))
    expected = [ACCOUNT if p == account else REGION if p == region else p for p in parts if p]
    for logical_id, bucket in resources_of_type(synth.regional_json, "AWS::S3::Bucket").items():
        if bucket["Properties"].get("BucketName") == {"Fn::Join": ["", expected]}:
            return logical_id, bucket
    raise AssertionError("no bucket named names.quarantine_bucket_name(${AWS::AccountId}, ${AWS::Region})")


def test_quarantine_bucket_is_private_versioned_kms_encrypted_logged_and_expires(example: Synthesized) -> None:
    logical_id, bucket = _quarantine_bucket(example)
    properties = bucket["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_id = encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0]
    assert example.regional_json["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    retention = example.config.quarantine.retention_days
    rules = {r["Id"]: r for r in properties["LifecycleConfiguration"]["Rules"]}
    assert set(rules) == {"expire-quarantined-copies", "abort-incomplete-uploads", "remove-expired-delete-markers"}
    for rule in rules.values():
        # THEN every rule applies to the whole bucket
        assert rule["Status"] == "Enabled"
        assert "Prefix" not in rule and "TagFilters" not in rule and "ObjectSizeGreaterThan" not in rule
    # AND a copy lives retention_days: it expires then, and its expired (noncurrent) version a day later
    expiry = rules["expire-quarantined-copies"]
    assert expiry["ExpirationInDays"] == retention
    assert expiry["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    # AND the parts of a multipart copy an interrupted remediator left behind are aborted after a day
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert set(rules["abort-incomplete-uploads"]) == {"Id", "Status", "AbortIncompleteMultipartUpload"}
    assert rules["remove-expired-delete-markers"]["ExpiredObjectDeleteMarker"] is True
    assert properties["LoggingConfiguration"]["DestinationBucketName"]["Ref"] != logical_id
    assert bucket["DeletionPolicy"] == "Retain"


def _bucket_policy(synth: Synthesized) -> list[dict[str, Any]]:
    logical_id, _ = _quarantine_bucket(synth)
    for policy in resources_of_type(synth.regional_json, "AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": logical_id}:
            return statements(policy["Properties"]["PolicyDocument"])
    raise AssertionError("quarantine bucket has no policy")


def test_quarantine_bucket_policy_denies_everyone_but_the_pipeline(example: Synthesized) -> None:
    policy = _bucket_policy(example)
    role = _member_role(example.config.deployment.remediation_role_name)
    denies = [s for s in policy if s["Effect"] == "Deny"]
    # THEN plain HTTP is refused for everything
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "s3:*" for s in denies)
    # AND reading and writing objects is refused to every principal but the remediation role
    reads = next(s for s in denies if "s3:GetObjectVersion" in as_list(s["Action"]))
    writes = next(s for s in denies if "s3:DeleteObjectVersion" in as_list(s["Action"]))
    for statement in (reads, writes):
        assert statement["Principal"] == {"AWS": "*"}
        assert as_list(statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == [role]
    assert {"s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"} <= set(as_list(writes["Action"]))
    assert {"s3:GetObject", "s3:ListBucketVersions"} <= set(as_list(reads["Action"]))
    # AND nothing is granted to anyone (no break-glass readers are configured in the example)
    assert [s for s in policy if s["Effect"] == "Allow"] == []


def test_break_glass_readers_may_read_but_never_write(self_managed: Synthesized) -> None:
    # GIVEN accounts.yaml with two break-glass principals and a custom remediation role name
    config = self_managed.config
    readers = list(config.quarantine.break_glass_principals)
    role = _member_role(config.deployment.remediation_role_name)
    policy = _bucket_policy(self_managed)
    reads = next(s for s in policy if s["Effect"] == "Deny" and "s3:GetObjectVersion" in as_list(s["Action"]))
    writes = next(s for s in policy if s["Effect"] == "Deny" and "s3:DeleteObjectVersion" in as_list(s["Action"]))
    # THEN reads are refused to all but the role and the readers; writes to all but the role
    assert as_list(reads["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == [role, *readers]
    assert as_list(writes["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == [role]
    (allow,) = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Condition"] == {"ArnEquals": {"aws:PrincipalArn": readers}}
    assert not any(a.startswith(("s3:Put", "s3:Delete")) for a in as_list(allow["Action"]))
    # AND the key lets them decrypt through S3 only
    key = _only(self_managed.regional_json, "AWS::KMS::Key")
    key_statements = statements(key["Properties"]["KeyPolicy"])
    break_glass = next(s for s in key_statements if s.get("Sid") == "BreakGlassReadersThroughS3")
    assert break_glass["Action"] == "kms:Decrypt"
    assert break_glass["Condition"]["ArnEquals"] == {"aws:PrincipalArn": readers}
    # AND the retention comes from accounts.yaml
    _, bucket = _quarantine_bucket(self_managed)
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    rule = rules["expire-quarantined-copies"]
    assert rule["ExpirationInDays"] == 30 and rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}


def test_quarantine_key_policy_admits_the_remediation_role_through_s3(example: Synthesized) -> None:
    key = _only(example.regional_json, "AWS::KMS::Key")
    statement = next(
        s for s in statements(key["Properties"]["KeyPolicy"]) if s.get("Sid") == "RemediationRoleThroughS3"
    )
    assert sorted(as_list(statement["Action"])) == [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey*",
        "kms:ReEncrypt*",
    ]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"AWS": _join("arn:", PARTITION, ":iam::", ACCOUNT, ":root")}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:PrincipalArn": _member_role(example.config.deployment.remediation_role_name)},
        "StringEquals": {"kms:ViaService": _join("s3.", REGION, ".amazonaws.com")},
    }
    alias = _only(example.regional_json, "AWS::KMS::Alias")
    assert alias["Properties"]["AliasName"] == names.QUARANTINE_KEY_ALIAS


def test_member_dead_letter_alarm_is_forwarded_to_the_central_bus(example: Synthesized) -> None:
    alarm = _only(example.regional_json, "AWS::CloudWatch::Alarm")
    assert alarm["Properties"]["AlarmName"].startswith(names.MEMBER_ALARM_NAME_PREFIX)
    rule = _by_property(example.regional_json, "AWS::Events::Rule", "Name", names.MEMBER_ALARM_RULE_NAME)
    assert rule["Properties"]["EventPattern"]["source"] == ["aws.cloudwatch"]
    forward = _by_property(example.regional_json, "AWS::Events::Rule", "Name", names.MEMBER_FORWARD_RULE_NAME)
    assert rule["Properties"]["Targets"][0]["Arn"] == forward["Properties"]["Targets"][0]["Arn"]


# --- the quarantine stays locked (architecture §20) -------------------------------------------------------------

CONFIGURATION_ACTIONS = {
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketPublicAccessBlock",
    "s3:DeleteBucket",
}
DATA_ACTIONS = {"kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:*"}


def _execution_role(synth: Synthesized) -> dict[str, Any]:
    if synth.config.deployment.permission_model == "SERVICE_MANAGED":
        return _member_role("stacksets-exec-*")
    return _member_role("AWSCloudFormationStackSetExecutionRole")


def test_only_the_stackset_execution_role_may_configure_the_quarantine_bucket(
    example: Synthesized, self_managed: Synthesized
) -> None:
    for synth in (example, self_managed):
        logical_id, _ = _quarantine_bucket(synth)
        policy = _bucket_policy(synth)
        (deny,) = [s for s in policy if s.get("Sid") == "OnlyStackSetsConfigures"]
        # THEN every configuration change (and the bucket's deletion) is denied to every principal...
        assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
        assert set(as_list(deny["Action"])) >= CONFIGURATION_ACTIONS
        assert {"s3:PutEncryptionConfiguration", "s3:PutReplicationConfiguration"} <= set(as_list(deny["Action"]))
        assert as_list(deny["Resource"]) == [{"Fn::GetAtt": [logical_id, "Arn"]}]
        # ...but the role CloudFormation runs this stack as (else the stack could be neither updated nor deleted)
        assert deny["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": _execution_role(synth)}}
        # AND no other statement names a configuration action
        others = [s for s in policy if s.get("Sid") != "OnlyStackSetsConfigures"]
        assert not any(CONFIGURATION_ACTIONS & set(as_list(s["Action"])) for s in others)


def test_the_quarantine_key_gives_the_account_no_data_use(example: Synthesized, self_managed: Synthesized) -> None:
    for synth in (example, self_managed):
        key = _only(synth.regional_json, "AWS::KMS::Key")
        key_statements = statements(key["Properties"]["KeyPolicy"])
        assert all(s["Effect"] == "Allow" for s in key_statements)
        by_sid = {s["Sid"]: s for s in key_statements}
        expected = {"StackSetExecutionRoleAdministers", "RemediationRoleThroughS3"}
        if synth.config.quarantine.break_glass_principals:
            expected.add("BreakGlassReadersThroughS3")
        # THEN no statement is CDK's default (the account root with kms:*): every one has a Sid and a condition
        assert set(by_sid) == expected and len(key_statements) == len(expected)
        assert not any("kms:*" in as_list(s["Action"]) for s in key_statements)
        # AND administration is the StackSet execution role's only, with no data use and no grants
        admin = by_sid["StackSetExecutionRoleAdministers"]
        assert admin["Condition"] == {"ArnLike": {"aws:PrincipalArn": _execution_role(synth)}}
        assert "kms:PutKeyPolicy" in as_list(admin["Action"])  # KMS refuses a key policy locking its caller out
        assert not DATA_ACTIONS & set(as_list(admin["Action"]))
        assert "kms:CreateGrant" not in as_list(admin["Action"])
        # AND data use goes through S3 only, to the remediation role and the break-glass readers (Decrypt)
        for sid in expected - {"StackSetExecutionRoleAdministers"}:
            condition = by_sid[sid]["Condition"]
            assert set(condition) == {"ArnEquals", "StringEquals"}
            assert condition["StringEquals"] == {"kms:ViaService": _join("s3.", REGION, ".amazonaws.com")}
