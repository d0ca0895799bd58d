"""The digests room of the central stack (docs/architecture.md §22): the digest queue, the writer, who wakes it."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from infra.central.lambdas import VISIBILITY_TIMEOUT_FACTOR
from macie_chatops import names
from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type
from tests.functional.infra.test_central_stack import _function, _logical_id, _role_policy_statements

# The handlers that join findings to groups or move their members.
WAKERS = (
    names.FINDING_FUNCTION_NAME,
    names.INTERACTION_FUNCTION_NAME,
    names.REMEDIATOR_FUNCTION_NAME,
    names.SWEEPER_FUNCTION_NAME,
)


def test_the_digest_queue_is_encrypted_with_a_dead_letter_queue_and_consumed_by_the_writer(
    example: Synthesized,
) -> None:
    template = example.central_json
    queue_id = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_QUEUE_NAME)
    dlq_id = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_DLQ_NAME)
    key = _logical_id(template, "AWS::KMS::Key")
    queue, dlq = template["Resources"][queue_id]["Properties"], template["Resources"][dlq_id]["Properties"]
    # THEN both are encrypted with the central key; the queue redrives to its DLQ after 5 receives
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]} == dlq["KmsMasterKeyId"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5}
    # AND the writer consumes it, reporting partial batch failures, with 6x its timeout of visibility
    writer = _function(template, names.DIGEST_WRITER_FUNCTION_NAME)["Properties"]
    assert writer["Handler"] == "macie_chatops.handlers.digests.lambda_handler"
    assert queue["VisibilityTimeout"] >= VISIBILITY_TIMEOUT_FACTOR * writer["Timeout"]
    writer_id = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.DIGEST_WRITER_FUNCTION_NAME)
    (mapping,) = [
        m["Properties"]
        for m in resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": writer_id}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_every_handler_that_moves_grouped_findings_may_wake_the_writer(example: Synthesized) -> None:
    template = example.central_json
    queue_id = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_QUEUE_NAME)
    for function_name in (*WAKERS, names.DIGEST_WRITER_FUNCTION_NAME):
        variables = _function(template, function_name)["Properties"]["Environment"]["Variables"]
        # THEN it knows the queue, and may send to it
        assert variables[names.ENV_DIGEST_QUEUE_URL] == {"Ref": queue_id}, function_name
        sends = [
            resource
            for s in _role_policy_statements(template, function_name)
            if "sqs:SendMessage" in as_list(s["Action"])
            for resource in as_list(s["Resource"])
        ]
        assert {"Fn::GetAtt": [queue_id, "Arn"]} in sends, function_name
    # AND the reminders job and the reconciler do not (they move no finding)
    for function_name in (names.REMINDERS_FUNCTION_NAME, names.RECONCILER_FUNCTION_NAME):
        variables = _function(template, function_name)["Properties"]["Environment"]["Variables"]
        assert names.ENV_DIGEST_QUEUE_URL not in variables


def test_the_writer_gets_exactly_its_grants(example: Synthesized) -> None:
    granted = _role_policy_statements(example.central_json, names.DIGEST_WRITER_FUNCTION_NAME)
    actions = {a for s in granted for a in as_list(s["Action"])}
    # THEN items of the table (no scans, no deletes), the Slack secret, its own queue, logs and traces: no STS
    assert {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem", "secretsmanager:GetSecretValue"} <= actions
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage"} <= actions
    assert "dynamodb:Scan" not in actions and "dynamodb:DeleteItem" not in actions
    assert not any(a.startswith("sts:") for a in actions)
    assert not any(a.endswith("*") for a in actions)


def test_the_digests_are_alarmed(example: Synthesized) -> None:
    template = example.central_json
    by_name = {
        json.dumps(a["Properties"]["AlarmName"]): a["Properties"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    }

    def alarm(name: str) -> dict[str, Any]:
        (found,) = [properties for key, properties in by_name.items() if name in key]
        return found

    dlq = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_DLQ_NAME)
    queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_QUEUE_NAME)
    writer = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.DIGEST_WRITER_FUNCTION_NAME)
    dead_letters = alarm(f"{names.DIGEST_DLQ_NAME}-not-empty")
    assert dead_letters["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
    oldest = alarm(f"{names.DIGEST_QUEUE_NAME}-oldest-message")
    assert oldest["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    for name in ("DigestWriter-errors", "DigestWriter-throttles"):
        assert alarm(name)["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": writer}}]


def test_the_writer_reads_its_settings_from_the_environment_the_stack_gives_it(
    example: Synthesized, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = _function(example.central_json, names.DIGEST_WRITER_FUNCTION_NAME)["Properties"]["Environment"][
        "Variables"
    ]
    for key, value in variables.items():
        monkeypatch.setenv(key, value if isinstance(value, str) else f"<{value}>")
    settings = importlib.import_module("macie_chatops.handlers.digests").read_settings()
    assert settings.digest_queue_url and settings.config_path == f"/var/task/{names.BUNDLED_CONFIG_FILE}"
