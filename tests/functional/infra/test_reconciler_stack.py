"""The reconciler in the stacks: its schedule, its least-privilege grants (Macie: ListFindings and GetFindings only),
its alarms, and the Macie administrator's read-only role when the administrator is another account."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from macie_chatops import names
from stacksets.templates import synthesize_member_templates
from tests.functional.infra.conftest import (
    OTHER_ADMINISTRATOR,
    Synthesized,
    as_list,
    config_from,
    example_document,
    resources_of_type,
    statements,
)
from tests.functional.infra.test_central_stack import _function, _logical_id, _role_policy_statements

MACIE_READS = {"macie2:ListFindings", "macie2:GetFindings"}


def _granted(template: dict[str, Any]) -> dict[str, Any]:
    granted = _role_policy_statements(template, names.RECONCILER_FUNCTION_NAME)
    return {action: s["Resource"] for s in granted for action in as_list(s["Action"])}


def test_the_reconciler_runs_hourly_one_at_a_time_and_hands_findings_to_the_intake_queue(example: Synthesized) -> None:
    # GIVEN the central stack of the example organisation (reconcile: defaults)
    template = example.central_json
    reconciler = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.RECONCILER_FUNCTION_NAME)
    delivery_dlq = _logical_id(template, "AWS::SQS::Queue", QueueName=names.CENTRAL_DELIVERY_DLQ_NAME)
    intake_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.INTAKE_QUEUE_NAME)
    # THEN an hourly schedule invokes it (no retries: the next run resumes from the watermarks), DLQ'd
    example.central.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": names.RECONCILER_SCHEDULE_RULE_NAME,
            "ScheduleExpression": "rate(1 hour)",
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [reconciler, "Arn"]},
                        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [delivery_dlq, "Arn"]}},
                        "RetryPolicy": Match.object_like({"MaximumRetryAttempts": 0}),
                    }
                )
            ],
        },
    )
    # AND runs never overlap, and it knows the intake queue; it reads its own account's Macie (no reader role)
    properties = _function(template, names.RECONCILER_FUNCTION_NAME)["Properties"]
    assert properties["ReservedConcurrentExecutions"] == 1
    assert properties["Handler"] == "macie_chatops.handlers.reconciler.lambda_handler"
    variables = properties["Environment"]["Variables"]
    assert variables[names.ENV_INTAKE_QUEUE_URL] == {"Ref": intake_queue}
    assert names.ENV_MACIE_READER_ROLE_ARN not in variables


def test_the_reconciler_gets_exactly_its_grants(example: Synthesized) -> None:
    template = example.central_json
    by_action = _granted(template)
    # THEN: Macie's two reads, a record / watermark read and the watermark's update (with the table key), the
    # intake queue's send, its logs and traces
    assert set(by_action) == {
        *MACIE_READS,
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:DescribeKey",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    }
    table = _logical_id(template, "AWS::DynamoDB::Table", TableName=names.STATE_TABLE_NAME)
    assert by_action["dynamodb:GetItem"] == by_action["dynamodb:UpdateItem"] == {"Fn::GetAtt": [table, "Arn"]}
    intake_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.INTAKE_QUEUE_NAME)
    assert by_action["sqs:SendMessage"] == {"Fn::GetAtt": [intake_queue, "Arn"]}
    assert by_action["macie2:ListFindings"] == by_action["macie2:GetFindings"] == "*"  # no resource type exists


def test_reconcile_errors_and_the_reconcilers_errors_alarm_to_the_topic(example: Synthesized) -> None:
    topic = _logical_id(example.central_json, "AWS::SNS::Topic", TopicName=names.ALARM_TOPIC_NAME)
    example.central.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": "reconcile-errors",
            "MetricName": names.RECONCILE_ERRORS_METRIC,
            "Namespace": names.METRICS_NAMESPACE,
            "Dimensions": [{"Name": "service", "Value": names.RECONCILER_FUNCTION_NAME}],
            "Statistic": "Sum",
            "Period": 3600,
            "Threshold": 1,
            "AlarmActions": [{"Ref": topic}],
        },
    )
    reconciler = _logical_id(example.central_json, "AWS::Lambda::Function", FunctionName=names.RECONCILER_FUNCTION_NAME)
    example.central.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": reconciler}}],
            "AlarmActions": [{"Ref": topic}],
        },
    )


def test_another_administrator_is_read_through_its_reader_role_with_macies_two_reads_only(
    other_administrator: Synthesized,
) -> None:
    # GIVEN the Macie administrator is another account
    template = other_administrator.central_json
    reader_arn = f":iam::{OTHER_ADMINISTRATOR}:role/{names.MACIE_READER_ROLE_NAME}"
    # THEN the reconciler has no Macie permission of its own, only AssumeRole on the reader role
    by_action = _granted(template)
    assert not MACIE_READS & set(by_action)
    assert reader_arn in json.dumps(by_action["sts:AssumeRole"])
    variables = _function(template, names.RECONCILER_FUNCTION_NAME)["Properties"]["Environment"]["Variables"]
    assert reader_arn in json.dumps(variables[names.ENV_MACIE_READER_ROLE_ARN])
    # AND the administrator forwarding template creates that role once (first region), trusting the reconciler
    # role of the security account only, inside the organisation, allowed ListFindings and GetFindings only
    administrator = other_administrator.administrator_json
    roles = resources_of_type(administrator, "AWS::IAM::Role").values()
    (role,) = [r for r in roles if r["Properties"].get("RoleName") == names.MACIE_READER_ROLE_NAME]
    condition = administrator["Conditions"][role["Condition"]]
    assert condition == {"Fn::Equals": [{"Ref": "AWS::Region"}, other_administrator.config.regions[0]]}
    (trust,) = statements(role["Properties"]["AssumeRolePolicyDocument"])
    assert f":iam::{other_administrator.config.security_account.id}:role/{names.RECONCILER_ROLE_NAME}" in json.dumps(
        trust["Principal"]
    )
    assert trust["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": other_administrator.config.organization_id}}
    (policy,) = role["Properties"]["Policies"]
    granted = [a for s in statements(policy["PolicyDocument"]) for a in as_list(s["Action"])]
    assert set(granted) == MACIE_READS


def test_no_reader_role_when_the_security_account_is_the_administrator(example: Synthesized) -> None:
    roles = resources_of_type(example.administrator_json, "AWS::IAM::Role").values()
    assert [r for r in roles if r["Properties"].get("RoleName") == names.MACIE_READER_ROLE_NAME] == []


def _reader_roles(template: dict[str, Any]) -> list[dict[str, Any]]:
    roles = resources_of_type(template, "AWS::IAM::Role").values()
    return [r for r in roles if r["Properties"].get("RoleName") == names.MACIE_READER_ROLE_NAME]


def test_an_administrator_that_is_a_member_everywhere_gets_its_reader_role_from_the_member_roles_template() -> None:
    # GIVEN the Macie administrator is payments-prod, a listed member in every region (so no administrator StackSet)
    document = example_document()
    document["macie_administrator"] = {"id": "345678901234"}
    config = config_from(document, "administrator-member.yaml")
    assert config.administrator_forwarding_regions() == ()
    # WHEN the member templates are synthesized (cdk-nag on: an unacknowledged finding would fail)
    templates = synthesize_member_templates(config)
    # THEN the roles template carries the reader role, created only in the administrator's own instance
    (role,) = _reader_roles(templates.roles)
    condition = templates.roles["Conditions"][role["Condition"]]
    assert condition == {"Fn::Equals": [{"Ref": "AWS::AccountId"}, "345678901234"]}
    (policy,) = role["Properties"]["Policies"]
    assert {a for s in statements(policy["PolicyDocument"]) for a in as_list(s["Action"])} == MACIE_READS
    assert _reader_roles(templates.administrator) == []
