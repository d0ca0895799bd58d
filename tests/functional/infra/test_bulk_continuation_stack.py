"""The interaction room's continuation queue (docs/architecture.md §22, "Bulk decisions"), asserted on the central
template: encrypted with a dead-letter queue, consumed by the interaction function itself, which may send to it and
sign with the approval key but never verify; its alarms, and its place on the dashboard."""

from __future__ import annotations

import json
from typing import Any

from infra.central.interaction import CONTINUATION_MAX_RECEIVES
from infra.central.lambdas import VISIBILITY_TIMEOUT_FACTOR
from macie_chatops import names
from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type, statements
from tests.functional.infra.test_central_stack import _function, _logical_id, _role_policy_statements


def _queues(template: dict[str, Any]) -> tuple[str, str]:
    queue_id = _logical_id(template, "AWS::SQS::Queue", QueueName=names.BULK_CONTINUATION_QUEUE_NAME)
    dlq_id = _logical_id(template, "AWS::SQS::Queue", QueueName=names.BULK_CONTINUATION_DLQ_NAME)
    return queue_id, dlq_id


def test_the_continuation_queue_is_encrypted_with_a_dead_letter_queue_and_consumed_by_the_interaction_function(
    example: Synthesized,
) -> None:
    # GIVEN the central stack
    template = example.central_json
    queue_id, dlq_id = _queues(template)
    key = _logical_id(template, "AWS::KMS::Key", Description="macie-chatops: encrypts the queues and the alarm topic")
    queue, dlq = template["Resources"][queue_id]["Properties"], template["Resources"][dlq_id]["Properties"]
    # THEN both queues are encrypted with the central queues' key, and the queue redrives to its DLQ
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]} == dlq["KmsMasterKeyId"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": CONTINUATION_MAX_RECEIVES,
    }
    # AND the interaction function consumes it, one continuation per invocation, two at a time at most
    function = _function(template, names.INTERACTION_FUNCTION_NAME)["Properties"]
    assert queue["VisibilityTimeout"] >= VISIBILITY_TIMEOUT_FACTOR * function["Timeout"]
    # (through its SnapStart alias: tests/functional/infra/test_snapstart.py)
    (mapping,) = [
        m["Properties"]
        for m in resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1 and mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    # AND it knows the queue's URL
    assert function["Environment"]["Variables"][names.ENV_BULK_CONTINUATION_QUEUE_URL] == {"Ref": queue_id}


def test_only_the_interaction_function_may_send_continuations(example: Synthesized) -> None:
    template = example.central_json
    queue_id, _ = _queues(template)
    queue_arn = {"Fn::GetAtt": [queue_id, "Arn"]}

    def sends(function_name: str) -> bool:
        return any(
            "sqs:SendMessage" in as_list(s["Action"]) and queue_arn in as_list(s["Resource"])
            for s in _role_policy_statements(template, function_name)
        )

    # THEN the interaction function sends to its own queue; no other function of the stack does
    assert sends(names.INTERACTION_FUNCTION_NAME)
    others = [
        f["Properties"]["FunctionName"]
        for f in resources_of_type(template, "AWS::Lambda::Function").values()
        if isinstance(f["Properties"].get("FunctionName"), str)
        and f["Properties"]["FunctionName"] != names.INTERACTION_FUNCTION_NAME
    ]
    assert others and not [name for name in others if sends(name)]
    # AND no queue policy opens it to anyone else
    for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values():
        if {"Ref": queue_id} in policy["Properties"]["Queues"]:
            allowed = [s for s in statements(policy["Properties"]["PolicyDocument"]) if s["Effect"] == "Allow"]
            assert allowed == [], allowed


def test_the_interaction_function_signs_continuations_but_never_verifies(example: Synthesized) -> None:
    template = example.central_json
    role = _function(template, names.INTERACTION_FUNCTION_NAME)["Properties"]["Role"]
    keys = [
        k
        for k in resources_of_type(template, "AWS::KMS::Key").values()
        if k["Properties"].get("KeyUsage") == "GENERATE_VERIFY_MAC"
    ]
    (approval_key,) = keys
    key_statements = statements(approval_key["Properties"]["KeyPolicy"])

    def granted(action: str) -> bool:
        return any(
            action in as_list(s["Action"]) and role in as_list(s["Principal"].get("AWS", []))
            for s in key_statements
            if s["Effect"] == "Allow"
        )

    # THEN the approval key's policy lets its role GenerateMac (the continuation's MAC), not VerifyMac (§23's split)
    assert granted("kms:GenerateMac") and not granted("kms:VerifyMac")
    # AND no role policy of the function grants any MAC action
    actions = {
        a for s in _role_policy_statements(template, names.INTERACTION_FUNCTION_NAME) for a in as_list(s["Action"])
    }
    assert not any("Mac" in action for action in actions)


def test_the_continuation_queue_alarms_and_is_on_the_dashboard(example: Synthesized) -> None:
    template = example.central_json
    queue_id, dlq_id = _queues(template)
    by_name = {
        json.dumps(a["Properties"]["AlarmName"]): a["Properties"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    }

    def alarm(name: str) -> dict[str, Any]:
        (found,) = [properties for key, properties in by_name.items() if name in key]
        return found

    # THEN its DLQ's depth, its oldest message and a forged continuation each raise an alarm
    dead = alarm(f"{names.BULK_CONTINUATION_DLQ_NAME}-not-empty")
    assert {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}} in dead["Dimensions"]
    oldest = alarm(f"{names.BULK_CONTINUATION_QUEUE_NAME}-oldest-message")
    assert oldest["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}} in oldest["Dimensions"]
    forged = alarm("bulk-continuations-forged")
    assert forged["MetricName"] == names.BULK_CONTINUATIONS_REFUSED_METRIC
    assert {"Name": "reason", "Value": "bad_mac"} in forged["Dimensions"]
    assert {"Name": "service", "Value": names.INTERACTION_FUNCTION_NAME} in forged["Dimensions"]
    # AND the dashboard graphs both queues
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert queue_id in body and dlq_id in body
