"""The approval key (docs/architecture.md §23), asserted on the central template: an HMAC key whose policy lets
only the approving handlers (and operators through IAM) sign and only the remediator and the sweeper verify; the
key's ARN in exactly those handlers' environments; the alarm on approvals that do not verify."""

from __future__ import annotations

from typing import Any

from macie_chatops import names
from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type, statements

SIGNERS = (names.FINDING_FUNCTION_NAME, names.INTERACTION_FUNCTION_NAME)
VERIFIERS = (names.REMEDIATOR_FUNCTION_NAME, names.SWEEPER_FUNCTION_NAME)


def _key(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    keys = {
        logical_id: key
        for logical_id, key in resources_of_type(template, "AWS::KMS::Key").items()
        if key["Properties"].get("KeyUsage") == "GENERATE_VERIFY_MAC"
    }
    assert len(keys) == 1, keys
    return next(iter(keys.items()))


def _role_of(template: dict[str, Any], function_name: str) -> dict[str, Any]:
    for function in resources_of_type(template, "AWS::Lambda::Function").values():
        if function["Properties"]["FunctionName"] == function_name:
            return {"Fn::GetAtt": [function["Properties"]["Role"]["Fn::GetAtt"][0], "Arn"]}
    raise AssertionError(f"no function {function_name}")


def _by_sid(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    _, key = _key(template)
    return {statement["Sid"]: statement for statement in statements(key["Properties"]["KeyPolicy"])}


def _actions(statement: dict[str, Any]) -> set[str]:
    return set(as_list(statement["Action"]))


def test_the_approval_key_is_an_hmac_key_kept_with_its_alias(example: Synthesized) -> None:
    # GIVEN the central stack  WHEN we find the MAC key  THEN it is HMAC_256, retained, and named by its alias
    template = example.central_json
    logical_id, key = _key(template)
    assert key["Properties"]["KeySpec"] == "HMAC_256"
    assert key["DeletionPolicy"] == "Retain" and key["UpdateReplacePolicy"] == "Retain"
    aliases = resources_of_type(template, "AWS::KMS::Alias").values()
    assert {"AliasName": names.APPROVAL_KEY_ALIAS, "TargetKeyId": {"Fn::GetAtt": [logical_id, "Arn"]}} in [
        alias["Properties"] for alias in aliases
    ]


def test_only_the_approving_handlers_and_operators_sign_and_only_the_remediator_and_sweeper_verify(
    example: Synthesized,
) -> None:
    # GIVEN the approval key's policy
    template = example.central_json
    by_sid = _by_sid(template)
    # THEN it has exactly these statements, none of them kms:* or any data action beyond the MAC ones
    assert set(by_sid) == {
        "AccountAdministersThroughIam",
        "ApprovingHandlersSign",
        "OperatorsSignThroughIam",
        "RemediatorAndSweeperVerify",
    }
    assert all(statement["Effect"] == "Allow" for statement in by_sid.values())
    administer = by_sid["AccountAdministersThroughIam"]
    assert not _actions(administer) & {"kms:*", "kms:GenerateMac", "kms:VerifyMac"}
    assert not any(action.startswith(("kms:Generate", "kms:Verify", "kms:Sign")) for action in _actions(administer))
    # AND signing: the finding handler's and the interaction endpoint's roles by name; the account only through IAM
    sign = by_sid["ApprovingHandlersSign"]
    assert _actions(sign) == {"kms:GenerateMac"}
    assert sorted(as_list(sign["Principal"]["AWS"]), key=str) == sorted(
        (_role_of(template, name) for name in SIGNERS), key=str
    )
    assert _actions(by_sid["OperatorsSignThroughIam"]) == {"kms:GenerateMac"}
    # AND verifying: the remediator's and the sweeper's roles, and nobody else (no account delegation)
    verify = by_sid["RemediatorAndSweeperVerify"]
    assert _actions(verify) == {"kms:VerifyMac"}
    assert sorted(as_list(verify["Principal"]["AWS"]), key=str) == sorted(
        (_role_of(template, name) for name in VERIFIERS), key=str
    )
    verifying = [sid for sid, statement in by_sid.items() if "kms:VerifyMac" in _actions(statement)]
    assert verifying == ["RemediatorAndSweeperVerify"]
    for statement in (sign, by_sid["OperatorsSignThroughIam"], verify):
        assert statement["Condition"] == {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}}


def test_no_role_policy_of_the_stack_grants_a_mac_action(example: Synthesized) -> None:
    # GIVEN every IAM policy of the central stack  THEN none allows GenerateMac or VerifyMac: the key policy decides
    for policy in resources_of_type(example.central_json, "AWS::IAM::Policy").values():
        for statement in statements(policy["Properties"]["PolicyDocument"]):
            actions = set(as_list(statement["Action"]))
            assert not actions & {"kms:GenerateMac", "kms:VerifyMac", "kms:*"}, statement


def test_exactly_the_signing_and_verifying_handlers_know_the_key(example: Synthesized) -> None:
    template = example.central_json
    logical_id, _ = _key(template)
    knowing = {
        function["Properties"]["FunctionName"]: function["Properties"]["Environment"]["Variables"].get(
            names.ENV_APPROVAL_KEY_ID
        )
        for function in resources_of_type(template, "AWS::Lambda::Function").values()
        if names.ENV_APPROVAL_KEY_ID in function["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert knowing == {name: {"Fn::GetAtt": [logical_id, "Arn"]} for name in (*SIGNERS, *VERIFIERS)}


def test_an_approval_that_does_not_verify_alarms_the_topic(example: Synthesized) -> None:
    # GIVEN the alarms of the central stack  WHEN we find the unverified-approvals ones
    template = example.central_json
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if str(a["Properties"].get("AlarmName", "")).startswith("unverified-approvals")
    }
    # THEN the remediator's and the sweeper's UnverifiedApprovals each alarm the topic at 1
    assert set(alarms) == {"unverified-approvals-remediator", "unverified-approvals-sweeper"}
    topic = next(iter(resources_of_type(template, "AWS::SNS::Topic")))
    for service in VERIFIERS:
        alarm = alarms[f"unverified-approvals-{service.removeprefix('macie-chatops-')}"]
        assert (alarm["Namespace"], alarm["MetricName"]) == (names.METRICS_NAMESPACE, names.UNVERIFIED_APPROVALS_METRIC)
        assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [{"Ref": topic}]
