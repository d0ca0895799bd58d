"""Lambda SnapStart on the interaction function (docs/architecture.md §6), asserted on the central template: snapshots
of published versions, a version published from the code behind the ``live`` alias, and every trigger of the function
(API Gateway's integration and its invoke permission, the continuation queue's mapping) on the alias; no other
function snapshots anything."""

from __future__ import annotations

from typing import Any

from infra.central.interaction import LIVE_ALIAS
from macie_chatops import names
from tests.functional.infra.conftest import Synthesized, resources_of_type
from tests.functional.infra.test_central_stack import _logical_id

ALIAS_ARN = "Ref"  # an AWS::Lambda::Alias's Ref is the alias's ARN (function:version-qualifier)


def _alias_id(template: dict[str, Any]) -> str:
    function_id = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.INTERACTION_FUNCTION_NAME)
    (alias_id,) = [
        logical_id
        for logical_id, alias in resources_of_type(template, "AWS::Lambda::Alias").items()
        if alias["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return alias_id


def test_the_interaction_function_snapshots_its_published_versions_behind_the_live_alias(example: Synthesized) -> None:
    # GIVEN the central stack
    template = example.central_json
    function_id = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.INTERACTION_FUNCTION_NAME)
    function = template["Resources"][function_id]
    # THEN SnapStart applies to its published versions, and its reserved concurrency stays on the function
    assert function["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Properties"]["ReservedConcurrentExecutions"] > 0
    # AND a version is published from the code, and deleted when the next deploy publishes another
    (version_id,) = [
        logical_id
        for logical_id, version in resources_of_type(template, "AWS::Lambda::Version").items()
        if version["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert template["Resources"][version_id]["DeletionPolicy"] == "Delete"
    # AND the live alias points at that version
    alias = template["Resources"][_alias_id(template)]["Properties"]
    assert alias["Name"] == LIVE_ALIAS
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}


def test_api_gateway_invokes_the_alias(example: Synthesized) -> None:
    # GIVEN the central stack and the interaction function's alias
    template = example.central_json
    alias_ref = {ALIAS_ARN: _alias_id(template)}
    (method,) = [
        m["Properties"]
        for m in resources_of_type(template, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "POST"
    ]
    # THEN the integration's URI names the alias's ARN
    assert alias_ref in method["Integration"]["Uri"]["Fn::Join"][1]
    # AND API Gateway's invoke permissions (the stage's and the console's test) name the alias, none the bare function
    permissions = [
        p["Properties"]
        for p in resources_of_type(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(permissions) == 2
    assert all(p["FunctionName"] == alias_ref for p in permissions)


def test_the_continuation_queue_invokes_the_alias(example: Synthesized) -> None:
    # GIVEN the central stack
    template = example.central_json
    queue_id = _logical_id(template, "AWS::SQS::Queue", QueueName=names.BULK_CONTINUATION_QUEUE_NAME)
    (mapping,) = [
        m["Properties"]
        for m in resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    ]
    # THEN its mapping's FunctionName is the alias (the function's name qualified by the alias: CDK's form of it)
    parts = mapping["FunctionName"]["Fn::Join"][1]
    assert parts[0]["Fn::Select"][1]["Fn::Split"][1] == {ALIAS_ARN: _alias_id(template)}
    assert parts[1] == f":{LIVE_ALIAS}"
    # AND it reads as before: one continuation per invocation, two at most at once, failed records only returned
    assert mapping["BatchSize"] == 1 and mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_continuation_mapping_keeps_its_logical_id(example: Synthesized) -> None:
    # GIVEN the central stack WHEN the mapping moved from the function to its alias
    mappings = resources_of_type(example.central_json, "AWS::Lambda::EventSourceMapping")
    # THEN it has the id it had on the function, so CloudFormation updates it in place instead of replacing it
    assert (
        "InteractionHandlerFunctionSqsEventSourceMacieChatOpsCentralBulkContinuationsQueueA66A758E02872234" in mappings
    )


def test_no_other_function_snapshots_anything(example: Synthesized) -> None:
    # GIVEN the central stack THEN only the interaction function has SnapStart, and only it has a version and an alias
    template = example.central_json
    functions = resources_of_type(template, "AWS::Lambda::Function")
    snapshotting = [f["Properties"].get("FunctionName") for f in functions.values() if "SnapStart" in f["Properties"]]
    assert snapshotting == [names.INTERACTION_FUNCTION_NAME]
    assert len(functions) > 1
    assert len(resources_of_type(template, "AWS::Lambda::Version")) == 1
    assert len(resources_of_type(template, "AWS::Lambda::Alias")) == 1
