"""The Security Hub room (architecture §17): deployed only with ``security_hub.enabled``; the state table's stream
feeds the updater in order with retries and a dead-letter queue; the updater may do exactly what it needs; its
alarms reach the topic; cdk-nag and cfn-lint stay clean."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match
from cfnlint.api import ManualArgs, lint_file

from macie_chatops import names
from macie_chatops.config import Config
from tests.functional.infra.conftest import Synthesized, config_from, example_document
from tests.functional.infra.test_cfn_lint import ACCEPTED_WARNINGS
from tests.functional.infra.test_nag import _acknowledgements, _central_findings_without_acknowledgements, _matches


@pytest.fixture(scope="module")
def enabled(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    """accounts.yaml with ``security_hub: {enabled: true}``."""

    def make() -> Config:
        document = example_document()
        document["security_hub"] = {"enabled": True}
        return config_from(document, "security-hub.yaml")

    return synth_once("security_hub", make)


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _updater_role(template: dict[str, Any]) -> str:
    functions = _resources(template, "AWS::Lambda::Function")
    updater = next(f for f in functions.values() if f["Properties"]["FunctionName"] == names.SECURITY_HUB_FUNCTION_NAME)
    return str(updater["Properties"]["Role"]["Fn::GetAtt"][0])


def _statements_of(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    statements = []
    for policy in _resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_nothing_of_it_is_deployed_when_it_is_off(example: Synthesized) -> None:
    # GIVEN the example organisation (security_hub not enabled)
    template = example.central_json
    # THEN the table has no stream, and no function, mapping or permission talks to Security Hub
    tables = _resources(template, "AWS::DynamoDB::Table")
    assert all("StreamSpecification" not in t["Properties"] for t in tables.values())
    assert "StreamArn" not in json.dumps(template)
    assert "securityhub" not in json.dumps(template)


def test_the_state_tables_stream_feeds_the_updater_in_order_with_retries_and_a_dead_letter_queue(
    enabled: Synthesized,
) -> None:
    template = enabled.central
    # THEN the state table streams old and new images
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {"TableName": names.STATE_TABLE_NAME, "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"}},
    )
    # AND the updater reads it from the start, one batch per shard, reporting failed records, retried, bisected,
    # and what it gives up on is described in its dead-letter queue
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("^StateTable"), "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON",
            "ParallelizationFactor": 1,
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": Match.any_value(),
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}},
        },
    )
    # AND the dead-letter queue (state: given-up records wait there) keeps its logical id
    queues = _resources(enabled.central_json, "AWS::SQS::Queue")
    dead_letters = [n for n, q in queues.items() if q["Properties"].get("QueueName") == names.SECURITY_HUB_DLQ_NAME]
    assert len(dead_letters) == 1 and dead_letters[0].startswith("SecurityHubDeadLetterQueue")


def test_the_updater_may_do_exactly_what_it_needs(enabled: Synthesized) -> None:
    template = enabled.central_json
    statements = {s.get("Sid"): s for s in _statements_of(template, _updater_role(template))}
    # THEN BatchUpdateFindings only on the security account's hubs of the configured regions
    hub = statements["UpdateMacieFindingsInSecurityHub"]
    assert hub["Action"] == "securityhub:BatchUpdateFindings"
    hubs = json.dumps(hub["Resource"])
    assert all(f":securityhub:{region}:" in hubs and ":hub/default" in hubs for region in enabled.config.regions)
    # AND the stream of the state table only (ListStreams has no resource type), audit writes on its items,
    # sends to its own dead-letter queue
    assert set(statements["ReadTheStateStream"]["Action"]) == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    }
    assert statements["ListStreams"] == {
        "Sid": "ListStreams",
        "Action": "dynamodb:ListStreams",
        "Effect": "Allow",
        "Resource": "*",
    }
    assert set(statements["AuditTheFindings"]["Action"]) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert statements["DescribeGivenUpRecords"]["Action"] == "sqs:SendMessage"
    # AND nothing else: no Slack secret, no remediation queue, no member role, no puts or scans
    everything = _statements_of(template, _updater_role(template))
    allowed = {a for s in everything for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    traces_and_logs = {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}
    assert allowed - traces_and_logs == {
        "securityhub:BatchUpdateFindings",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "kms:Encrypt",  # the audit's writes, with the table key through DynamoDB
        "kms:DescribeKey",
    }
    # AND the stream's records are decrypted with the table key, and that key only
    table_key = _resources(template, "AWS::KMS::Key")
    assert statements["DecryptTheStateStream"]["Action"] == "kms:Decrypt"
    assert statements["DecryptTheStateStream"]["Resource"]["Fn::GetAtt"][0] in table_key
    assert statements["DecryptTheStateStream"]["Resource"]["Fn::GetAtt"][0].startswith("StateKey")
    # AND no other role of the stack may touch Security Hub
    others = [
        s
        for name in _resources(template, "AWS::IAM::Role")
        if name != _updater_role(template)
        for s in _statements_of(template, name)
    ]
    assert "securityhub" not in json.dumps(others)


def test_its_alarms_reach_the_topic(enabled: Synthesized) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in _resources(enabled.central_json, "AWS::CloudWatch::Alarm").values()
        if isinstance(a["Properties"]["AlarmName"], str)  # the others' names join a queue's name in
    }
    for name in (
        f"{names.SECURITY_HUB_DLQ_NAME}-not-empty",
        "SecurityHubUpdater-errors",
        "SecurityHubUpdater-throttles",
        "security-hub-update-failures",
    ):
        assert alarms[name]["AlarmActions"], name
    failures = alarms["security-hub-update-failures"]
    assert failures["MetricName"] == names.SECURITY_HUB_UPDATES_METRIC
    assert {d["Name"]: d["Value"] for d in failures["Dimensions"]} == {
        "service": names.SECURITY_HUB_FUNCTION_NAME,
        "result": "failed",
    }


def test_cfn_lint_is_clean(enabled: Synthesized, tmp_path: Path) -> None:
    file = tmp_path / "central.template.json"
    file.write_text(json.dumps(enabled.central_json, indent=1), encoding="utf-8")
    matches = lint_file(file, config=ManualArgs(regions=[enabled.config.security_account.region]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id not in ACCEPTED_WARNINGS] == []


def test_cdk_nag_is_clean_and_its_acknowledgements_are_real(enabled: Synthesized, tmp_path: Path) -> None:
    # GIVEN the app synthesized with cdk-nag (an unacknowledged finding would have failed synth)
    report = json.loads((enabled.outdir / "validation-report.json").read_text(encoding="utf-8"))
    assert [p for p in report["pluginReports"] if p.get("conclusion") != "success"] == []
    # WHEN the central App is synthesized with acknowledgements off
    findings = _central_findings_without_acknowledgements(enabled.config, tmp_path / "central")
    # THEN the room's acknowledgements each match a real finding
    ours = [a for a in _acknowledgements(enabled.built.central) if "SecurityHub" in a[0]]
    assert ours and all(_matches(a, findings) for a in ours)
