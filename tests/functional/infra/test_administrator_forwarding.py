"""Where Macie publishes: the administrator's findings reach the central bus in every listed region.

The Macie administrator's jobs and automated discovery publish in the administrator account, in the bucket's
region. Its default bus is forwarded by the central stack (home region, when it is the security account), by
the administrator forwarding StackSet (the other regions, or every region of another administrator account),
or by its own member rule where it is also listed as a member; never twice, never nowhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops.event_pattern import MACIE_FINDING_PATTERN
from stacksets.targets import (
    InstanceGroup,
    administrator_instance_groups,
    central_administrator_forwarding,
    regional_instance_groups,
)
from tests.functional.infra.conftest import (
    OTHER_ADMINISTRATOR,
    Synthesized,
    as_list,
    config_from,
    example_document,
    resources_of_type,
    statements,
)

PARTITION = {"Ref": "AWS::Partition"}
ACCOUNT = {"Ref": "AWS::AccountId"}
REGION = {"Ref": "AWS::Region"}
SECURITY = "210987654321"


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


def _central_bus(config: Config) -> dict[str, Any]:
    home = config.security_account
    return _join("arn:", PARTITION, f":events:{home.region}:{home.id}:event-bus/{names.CENTRAL_BUS_NAME}")


def _groups(stack_set: dict[str, Any]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(tuple(g["Regions"]), tuple(g["DeploymentTargets"]["Accounts"])) for g in stack_set["StackInstancesGroup"]]


def _named(template: dict[str, Any], resource_type: str, key: str, value: Any) -> tuple[str, dict[str, Any]]:
    found = [(k, r) for k, r in resources_of_type(template, resource_type).items() if r["Properties"].get(key) == value]
    assert len(found) == 1, (resource_type, key, value, found)
    return found[0]


def _forwarded_regions(synth: Synthesized, account: str) -> list[str]:
    """Regions where some deployed rule forwards ``account``'s default bus to the central bus."""
    config = synth.config
    regions = []
    if account == config.security_account.id and any(
        r["Properties"].get("Name") == names.ADMINISTRATOR_FORWARD_RULE_NAME
        for r in resources_of_type(synth.central_json, "AWS::Events::Rule").values()
    ):
        regions.append(config.security_account.region)
    for name in (names.MEMBER_REGIONAL_STACKSET_NAME, names.ADMINISTRATOR_FORWARDING_STACKSET_NAME):
        if synth.has_stack_set(name):
            regions += [r for rs, accounts in _groups(synth.stack_set(name)) if account in accounts for r in rs]
    return regions


# --- the security account is the administrator (the default) --------------------------------------------------


def test_the_security_account_forwards_its_findings_in_every_listed_region(administrator: Synthesized) -> None:
    # GIVEN the security account as Macie administrator, not listed as a member
    config = administrator.config
    assert config.macie_administrator_id == SECURITY and config.account(SECURITY) is None
    # THEN its default bus is forwarded exactly once in every listed region: home by the central stack, the
    # others by the administrator forwarding StackSet
    assert sorted(_forwarded_regions(administrator, SECURITY)) == sorted(config.regions)
    stack_set = administrator.stack_set(names.ADMINISTRATOR_FORWARDING_STACKSET_NAME)
    assert _groups(stack_set) == [(("eu-west-1",), (SECURITY,))]
    assert stack_set["Capabilities"] == ["CAPABILITY_NAMED_IAM"]  # its forwarding role is named per region
    # AND the StackSet is deployed like the member ones (the listed OUs, intersected with the account)
    targets = stack_set["StackInstancesGroup"][0]["DeploymentTargets"]
    assert targets["AccountFilterType"] == "INTERSECTION"
    assert targets["OrganizationalUnitIds"] == list(config.deployment.organizational_units)
    assert stack_set["CallAs"] == config.deployment.call_as


def test_the_home_region_rule_sends_the_one_pattern_to_the_central_bus_with_an_alarmed_dlq(
    administrator: Synthesized,
) -> None:
    template = administrator.central_json
    _, rule = _named(template, "AWS::Events::Rule", "Name", names.ADMINISTRATOR_FORWARD_RULE_NAME)
    # THEN it is on the default bus, with the one Macie pattern
    assert "EventBusName" not in rule["Properties"]
    assert rule["Properties"]["EventPattern"] == MACIE_FINDING_PATTERN
    # AND its one target is the central bus (archive, intake rule), through a role, with a DLQ of its own
    bus_id, _ = _named(template, "AWS::Events::EventBus", "Name", names.CENTRAL_BUS_NAME)
    dlq_id, dlq = _named(template, "AWS::SQS::Queue", "QueueName", names.ADMINISTRATOR_FORWARD_DLQ_NAME)
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [bus_id, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    granted = [
        s
        for p in resources_of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in statements(p["Properties"]["PolicyDocument"])
    ]
    assert granted == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": {"Fn::GetAtt": [bus_id, "Arn"]}}]
    # AND the DLQ is encrypted with the stack's key and alarms to the topic on its first message
    assert "KmsMasterKeyId" in dlq["Properties"]
    topic_id, _ = _named(template, "AWS::SNS::Topic", "TopicName", names.ALARM_TOPIC_NAME)
    alarms = [
        a
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]
    assert len(alarms) == 1
    assert alarms[0]["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    assert alarms[0]["Properties"]["Threshold"] == 1


def test_the_forwarding_template_is_the_member_forwarding_and_nothing_else(administrator: Synthesized) -> None:
    template = administrator.administrator_json
    config = administrator.config
    # THEN the rule is the member rule's shape: default bus, the one pattern, the central bus, a role, a DLQ
    _, rule = _named(template, "AWS::Events::Rule", "Name", names.ADMINISTRATOR_FORWARD_RULE_NAME)
    assert "EventBusName" not in rule["Properties"]
    assert rule["Properties"]["EventPattern"] == MACIE_FINDING_PATTERN
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == _central_bus(config)
    dlq_id, dlq = _named(template, "AWS::SQS::Queue", "QueueName", names.ADMINISTRATOR_FORWARD_DLQ_NAME)
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    # AND the DLQ's alarm carries the prefix the central stack relays, and its state changes go to the central bus
    alarm_id, alarm = _named(template, "AWS::CloudWatch::Alarm", "AlarmName", names.ADMINISTRATOR_FORWARD_ALARM_NAME)
    assert alarm["Properties"]["AlarmName"].startswith(names.MEMBER_ALARM_NAME_PREFIX)
    assert alarm["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    _, alarm_rule = _named(template, "AWS::Events::Rule", "Name", names.ADMINISTRATOR_ALARM_RULE_NAME)
    assert alarm_rule["Properties"]["EventPattern"]["resources"] == [{"Fn::GetAtt": [alarm_id, "Arn"]}]
    assert [t["Arn"] for t in alarm_rule["Properties"]["Targets"]] == [_central_bus(config)]
    # AND the role (one per region: IAM is global) may only put events on the central bus, for this account's rules
    role_id, role = _named(
        template, "AWS::IAM::Role", "RoleName", _join("macie-chatops-forwarder-administrator-", REGION)
    )
    assert target["RoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    (trust,) = statements(role["Properties"]["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    granted = [
        s
        for p in resources_of_type(template, "AWS::IAM::Policy").values()
        for s in statements(p["Properties"]["PolicyDocument"])
    ]
    assert granted == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": _central_bus(config)}]
    # AND nothing a member gets: no remediation role, no quarantine bucket, no key
    assert {r["Type"] for r in template["Resources"].values()} == {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::Events::Rule",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
        "AWS::CloudWatch::Alarm",
    }


# --- another account is the administrator ----------------------------------------------------------------------


def test_another_administrator_gets_the_forwarding_in_every_region_and_the_security_account_none(
    other_administrator: Synthesized,
) -> None:
    config = other_administrator.config
    assert config.macie_administrator_id == OTHER_ADMINISTRATOR
    # THEN the administrator StackSet targets that account alone, home region included
    stack_set = other_administrator.stack_set(names.ADMINISTRATOR_FORWARDING_STACKSET_NAME)
    assert _groups(stack_set) == [(tuple(config.regions), (OTHER_ADMINISTRATOR,))]
    assert stack_set["PermissionModel"] == "SELF_MANAGED"
    assert set(stack_set["StackInstancesGroup"][0]["DeploymentTargets"]) == {"Accounts"}
    assert sorted(_forwarded_regions(other_administrator, OTHER_ADMINISTRATOR)) == sorted(config.regions)
    # AND nothing forwards the security account's default bus (it publishes no findings: it is not a member,
    # nor the administrator), and the central stack has no administrator rule or DLQ
    assert _forwarded_regions(other_administrator, SECURITY) == []
    central = other_administrator.central_json
    assert not [
        r
        for r in resources_of_type(central, "AWS::Events::Rule").values()
        if "EventBusName" not in r["Properties"] and r["Properties"].get("EventPattern") == MACIE_FINDING_PATTERN
    ]
    assert names.ADMINISTRATOR_FORWARD_DLQ_NAME not in {
        q["Properties"].get("QueueName") for q in resources_of_type(central, "AWS::SQS::Queue").values()
    }
    # AND the administrator gets no member instances (no remediation role, no quarantine bucket)
    for name in (names.MEMBER_ROLES_STACKSET_NAME, names.MEMBER_REGIONAL_STACKSET_NAME):
        assert OTHER_ADMINISTRATOR not in [
            a for _, accounts in _groups(other_administrator.stack_set(name)) for a in accounts
        ]


# --- the security account is a member --------------------------------------------------------------------------


def test_the_security_account_as_member_gets_member_resources_and_its_member_rule_forwards(
    example: Synthesized,
) -> None:
    # GIVEN accounts.yaml as committed: the security account (the administrator) listed as a member
    config = example.config
    member = config.account(config.security_account.id)
    assert member is not None
    # THEN it gets the roles instance (remediation role, forwarding role) and a regional instance (quarantine
    # bucket, key, forwarding rule) in each of its regions, like any member
    roles = _groups(example.stack_set(names.MEMBER_ROLES_STACKSET_NAME))
    assert [a for _, accounts in roles for a in accounts].count(SECURITY) == 1
    regional = [
        r
        for rs, accounts in _groups(example.stack_set(names.MEMBER_REGIONAL_STACKSET_NAME))
        if SECURITY in accounts
        for r in rs
    ]
    assert regional == list(config.regions_for(member))
    # AND its member rule is the one forwarding its default bus: no administrator rule, no administrator StackSet
    assert _forwarded_regions(example, SECURITY) == list(config.regions)
    assert not example.has_stack_set(names.ADMINISTRATOR_FORWARDING_STACKSET_NAME)
    # AND the remediator may assume that role: same organisation, any account (its own included)
    remediator_statements = [
        s
        for p in resources_of_type(example.central_json, "AWS::IAM::Policy").values()
        for s in statements(p["Properties"]["PolicyDocument"])
        if s.get("Sid") == "AssumeMemberRemediationRoles"
    ]
    (assume,) = remediator_statements
    assert as_list(assume["Resource"]) == [f"arn:aws:iam::*:role/{config.deployment.remediation_role_name}"]


# --- which forwarding goes where (pure functions of accounts.yaml) ---------------------------------------------


def _config(*, administrator: str | None = None, members: dict[str, list[str] | None]) -> Config:
    document = example_document()
    document["regions"] = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    document["accounts"] = [
        {"id": account, "name": f"a-{account}", "team": "payments", **({"regions": regions} if regions else {})}
        for account, regions in members.items()
    ]
    if administrator is not None:
        document["macie_administrator"] = {"id": administrator}
    return config_from(document, "forwarding.yaml")


@pytest.mark.parametrize(
    ("administrator", "members", "central", "groups"),
    [
        pytest.param(None, {}, True, [(("eu-west-1", "ap-southeast-2"), SECURITY)], id="security-not-member"),
        pytest.param(None, {SECURITY: None}, False, [], id="security-member-everywhere"),
        pytest.param(None, {SECURITY: ["eu-west-1"]}, True, [(("ap-southeast-2",), SECURITY)], id="security-partly"),
        pytest.param(
            None, {SECURITY: ["us-east-1"]}, False, [(("eu-west-1", "ap-southeast-2"), SECURITY)], id="home-only"
        ),
        pytest.param(
            OTHER_ADMINISTRATOR,
            {},
            False,
            [(("us-east-1", "eu-west-1", "ap-southeast-2"), OTHER_ADMINISTRATOR)],
            id="other-administrator",
        ),
        pytest.param(
            OTHER_ADMINISTRATOR,
            {OTHER_ADMINISTRATOR: ["us-east-1"], SECURITY: None},
            False,
            [(("eu-west-1", "ap-southeast-2"), OTHER_ADMINISTRATOR)],
            id="other-administrator-partly-member",
        ),
    ],
)
def test_each_administrator_region_is_forwarded_by_exactly_one_rule(
    administrator: str | None,
    members: dict[str, list[str] | None],
    central: bool,
    groups: list[tuple[tuple[str, ...], str]],
) -> None:
    config = _config(administrator=administrator, members={"345678901234": None, **members})
    # THEN the central stack and the administrator StackSet cover what the member rules do not
    assert central_administrator_forwarding(config) is central
    assert administrator_instance_groups(config) == [InstanceGroup(regions, (account,)) for regions, account in groups]
    # AND together with the member rules every listed region of the administrator is forwarded exactly once
    admin = config.macie_administrator_id
    covered = [config.security_account.region] if central else []
    covered += [r for g in administrator_instance_groups(config) for r in g.regions]
    covered += [r for g in regional_instance_groups(config) if admin in g.accounts for r in g.regions]
    assert sorted(covered) == sorted(config.regions)
