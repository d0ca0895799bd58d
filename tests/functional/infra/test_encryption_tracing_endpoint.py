"""Issue 17 items 5 and 6 (architecture §25): the state table, the Slack secret and the log groups each under a
customer-managed key of their own; X-Ray on every function and on the API stage; a Slack endpoint whose throttle
junk cannot spend down to a standstill, and the optional WAF web ACL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.central.interaction import INTERACTION_CONCURRENCY
from infra.components.slack_api import (
    SLACK_SIGNATURE_HEADERS,
    THROTTLING_BURST_LIMIT,
    THROTTLING_RATE_LIMIT,
    WAF_RATE_LIMIT_PER_5_MINUTES,
)
from macie_chatops import names
from macie_chatops.config import Config
from tests.functional.infra.conftest import (
    Synthesized,
    as_list,
    config_from,
    example_document,
    resources_of_type,
)


@pytest.fixture(scope="session")
def with_waf(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    """accounts.yaml with ``slack.waf: true``."""

    def make() -> Config:
        document = example_document()
        document["slack"]["waf"] = True
        return config_from(document, "waf.yaml")

    return synth_once("waf", make)


def _key_by_alias(template: dict[str, Any], alias: str) -> str:
    aliases = resources_of_type(template, "AWS::KMS::Alias").values()
    return next(
        a["Properties"]["TargetKeyId"]["Fn::GetAtt"][0] for a in aliases if a["Properties"]["AliasName"] == alias
    )


def _key_arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _all_role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in resources_of_type(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_table_secret_and_logs_each_have_a_rotated_retained_key_of_their_own(example: Synthesized) -> None:
    template = example.central_json
    # GIVEN the three keys, found by their aliases
    state_key = _key_by_alias(template, names.STATE_KEY_ALIAS)
    secret_key = _key_by_alias(template, names.SLACK_SECRET_KEY_ALIAS)
    logs_key = _key_by_alias(template, names.LOGS_KEY_ALIAS)
    queue_key = _key_by_alias(template, names.CENTRAL_KEY_ALIAS)
    # THEN four distinct keys, each rotated and kept when the stack goes
    assert len({state_key, secret_key, logs_key, queue_key}) == 4
    for key in (state_key, secret_key, logs_key):
        resource = template["Resources"][key]
        assert resource["Properties"]["EnableKeyRotation"] is True
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain"
    # AND the table is encrypted with its key (customer-managed: SSE type KMS with the key's ARN)
    table = next(iter(resources_of_type(template, "AWS::DynamoDB::Table").values()))["Properties"]
    assert table["SSESpecification"] == {"KMSMasterKeyId": _key_arn(state_key), "SSEEnabled": True, "SSEType": "KMS"}
    # AND the Slack secret with its own
    secret = next(iter(resources_of_type(template, "AWS::SecretsManager::Secret").values()))["Properties"]
    assert secret["KmsKeyId"] == _key_arn(secret_key)
    # AND every log group of the stack (the handlers' and the API's access logs) with the logs key
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")
    assert len(log_groups) >= 7
    for logical_id, log_group in log_groups.items():
        assert log_group["Properties"]["KmsKeyId"] == _key_arn(logs_key), logical_id


def test_cloudwatch_logs_may_use_the_logs_key_only_for_this_accounts_log_groups(example: Synthesized) -> None:
    template = example.central_json
    logs_key = template["Resources"][_key_by_alias(template, names.LOGS_KEY_ALIAS)]
    region, account = example.config.security_account.region, example.config.security_account.id
    # WHEN its key policy is read
    by_sid = {s.get("Sid"): s for s in logs_key["Properties"]["KeyPolicy"]["Statement"]}
    logs = by_sid["CloudWatchLogsEncryptsThisAccountsLogGroups"]
    # THEN the regional CloudWatch Logs principal, only with an encryption context naming a log group here
    assert logs["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:*"}
    }
    assert "kms:Decrypt*" in logs["Action"] and "kms:GenerateDataKey*" in logs["Action"]
    # AND no role of the stack is granted the logs key (reading logs needs no KMS right)
    logs_arn = _key_arn(_key_by_alias(template, names.LOGS_KEY_ALIAS))
    assert not [s for s in _all_role_statements(template) if logs_arn in as_list(s["Resource"])]


def test_the_table_and_secret_keys_are_granted_only_through_their_services(example: Synthesized) -> None:
    template = example.central_json
    region = example.config.security_account.region
    state_arn = _key_arn(_key_by_alias(template, names.STATE_KEY_ALIAS))
    secret_arn = _key_arn(_key_by_alias(template, names.SLACK_SECRET_KEY_ALIAS))
    granted = _all_role_statements(template)
    # THEN every grant of the table key is through DynamoDB (the Security Hub updater's stream decrypt aside,
    # test_security_hub_stack.py), and no grant of it allows more than DynamoDB asks for
    on_state = [s for s in granted if state_arn in as_list(s["Resource"])]
    assert on_state
    for statement in on_state:
        assert statement["Condition"] == {"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}}
        assert set(as_list(statement["Action"])) <= {
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey",
        }
    # AND every grant of the secret key is a decrypt through Secrets Manager, given with each secret read
    on_secret = [s for s in granted if secret_arn in as_list(s["Resource"])]
    readers = [s for s in granted if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert len(on_secret) == len(readers) > 0
    for statement in on_secret:
        assert statement["Action"] == "kms:Decrypt"
        assert statement["Condition"] == {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}


def test_every_function_and_the_api_stage_are_traced(example: Synthesized) -> None:
    template = example.central_json
    functions = resources_of_type(template, "AWS::Lambda::Function")
    assert len(functions) >= 6
    for logical_id, function in functions.items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, logical_id
        # tracing is never switched off by the environment in AWS (only the sandbox sets it)
        assert "POWERTOOLS_TRACE_DISABLED" not in function["Properties"]["Environment"]["Variables"]
    stage = next(iter(resources_of_type(template, "AWS::ApiGateway::Stage").values()))["Properties"]
    assert stage["TracingEnabled"] is True


def test_junk_cannot_spend_the_endpoints_throttle_at_a_human_rate(example: Synthesized) -> None:
    template = example.central_json
    # THEN the stage's throttle is far above a channel clicking together (tens of requests), so a flood must be
    # large before real clicks get 429s
    stage = next(iter(resources_of_type(template, "AWS::ApiGateway::Stage").values()))["Properties"]
    settings = stage["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == THROTTLING_RATE_LIMIT >= 1000
    assert settings["ThrottlingBurstLimit"] == THROTTLING_BURST_LIMIT >= THROTTLING_RATE_LIMIT
    # AND the interaction handler has concurrency of its own: no other function takes it, junk with made-up
    # headers cannot take more
    interaction = next(
        f
        for f in resources_of_type(template, "AWS::Lambda::Function").values()
        if f["Properties"]["FunctionName"] == names.INTERACTION_FUNCTION_NAME
    )
    assert interaction["Properties"]["ReservedConcurrentExecutions"] == INTERACTION_CONCURRENCY
    # AND the validator still refuses requests without Slack's headers before any Lambda runs
    method = next(iter(resources_of_type(template, "AWS::ApiGateway::Method").values()))["Properties"]
    assert method["RequestParameters"] == {f"method.request.header.{h}": True for h in SLACK_SIGNATURE_HEADERS}
    # AND without slack.waf there is no web ACL
    assert not resources_of_type(template, "AWS::WAFv2::WebACL")


def test_slack_waf_puts_a_web_acl_before_the_stage(with_waf: Synthesized) -> None:
    template = with_waf.central_json
    # GIVEN slack.waf: true  THEN one regional web ACL, allowing by default, associated with the API's stage
    acls = resources_of_type(template, "AWS::WAFv2::WebACL")
    assert len(acls) == 1
    acl_id, acl = next(iter(acls.items()))
    properties = acl["Properties"]
    assert properties["Scope"] == "REGIONAL" and properties["DefaultAction"] == {"Allow": {}}
    assert properties["Name"] == names.SLACK_WEB_ACL_NAME
    association = next(iter(resources_of_type(template, "AWS::WAFv2::WebACLAssociation").values()))["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    stage_id = next(iter(resources_of_type(template, "AWS::ApiGateway::Stage")))
    assert {"Ref": stage_id} in association["ResourceArn"]["Fn::Join"][1]
    rules = {rule["Name"]: rule for rule in properties["Rules"]}
    assert list(rules) == ["SlackSignatureHeadersRequired", "RateLimitPerSourceAddress"]
    # AND first: block a request unless it has a v0= signature and a timestamp header
    headers = rules["SlackSignatureHeadersRequired"]
    assert headers["Action"] == {"Block": {}}
    required = headers["Statement"]["NotStatement"]["Statement"]["AndStatement"]["Statements"]
    signature, timestamp = (s.get("ByteMatchStatement") or s["SizeConstraintStatement"] for s in required)
    assert signature["FieldToMatch"] == {"SingleHeader": {"Name": "x-slack-signature"}}
    assert signature["PositionalConstraint"] == "STARTS_WITH" and signature["SearchString"] == "v0="
    assert timestamp["FieldToMatch"] == {"SingleHeader": {"Name": "x-slack-request-timestamp"}}
    assert timestamp["ComparisonOperator"] == "GT" and timestamp["Size"] == 0
    # AND then: block a source address over its rate
    rate = rules["RateLimitPerSourceAddress"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
        "Limit": WAF_RATE_LIMIT_PER_5_MINUTES,
    }
    # AND every rule and the ACL publish CloudWatch metrics and sampled requests
    for visibility in (properties["VisibilityConfig"], *(r["VisibilityConfig"] for r in rules.values())):
        assert visibility["CloudWatchMetricsEnabled"] is True and visibility["SampledRequestsEnabled"] is True
    # AND the app synthesized with cdk-nag on (APIG3, WAF, is then met rather than acknowledged)
    acknowledged = [
        entry.data
        for construct in with_waf.built.app.node.find_all()
        for entry in construct.node.metadata
        if entry.type == "aws:cdk:acknowledged-rules"
    ]
    assert not [data for data in acknowledged if any("APIG3" in rule for rule in data)]
