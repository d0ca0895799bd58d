"""The reminders job in the central stack: its two schedules, exactly its grants, its errors alarmed."""

from __future__ import annotations

import json
from typing import Any

from macie_chatops import names
from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type
from tests.functional.infra.test_central_stack import _function, _logical_id, _role_policy_statements


def _rule(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][_logical_id(template, "AWS::Events::Rule", Name=name)]["Properties"]


def test_the_reminders_job_runs_hourly_and_the_escalation_daily_with_the_schedules_time(
    example: Synthesized,
) -> None:
    # GIVEN the central stack
    template = example.central_json
    function = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.REMINDERS_FUNCTION_NAME)
    delivery_dlq = _logical_id(template, "AWS::SQS::Queue", QueueName=names.CENTRAL_DELIVERY_DLQ_NAME)
    # THEN one rule invokes it every hour and one every day, each with retries and the delivery DLQ
    hourly, daily = (
        _rule(template, names.REMIND_SCHEDULE_RULE_NAME),
        _rule(template, names.ESCALATION_SCHEDULE_RULE_NAME),
    )
    assert hourly["ScheduleExpression"] == "rate(1 hour)"
    assert daily["ScheduleExpression"] == "cron(0 8 * * ? *)"
    for rule, escalate in ((hourly, False), (daily, True)):
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [delivery_dlq, "Arn"]}}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
        # AND the input passes the schedule's time on (the run's clock) and says which task it is
        transformer = target["InputTransformer"]
        assert json.loads(transformer["InputTemplate"].replace("<time>", '"T"')) == {"time": "T", "escalate": escalate}
        assert transformer["InputPathsMap"] == {"time": "$.time"}
    # AND one run at a time, on the handler the rules name
    properties = _function(template, names.REMINDERS_FUNCTION_NAME)["Properties"]
    assert properties["ReservedConcurrentExecutions"] == 1
    assert properties["Handler"] == "macie_chatops.handlers.reminders.lambda_handler"


def test_the_reminders_job_gets_exactly_its_grants_and_an_errors_alarm(example: Synthesized) -> None:
    template = example.central_json
    # WHEN its role's policies are read
    granted = _role_policy_statements(template, names.REMINDERS_FUNCTION_NAME)
    by_action = {a: s["Resource"] for s in granted for a in as_list(s["Action"])}
    # THEN: query the pending index only, read and update items (no puts, scans, deletes), read the Slack secret,
    # write its logs and traces (the table's and the secret's keys with them); no queue, no STS
    assert set(by_action) == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    }
    assert json.dumps(by_action["dynamodb:Query"]).endswith(f'/index/{names.PENDING_INDEX_NAME}"]]}}')
    table = _logical_id(template, "AWS::DynamoDB::Table", TableName=names.STATE_TABLE_NAME)
    assert by_action["dynamodb:UpdateItem"] == {"Fn::GetAtt": [table, "Arn"]}
    for statement in granted:
        assert statement["Resource"] != "*" or statement["Action"][0].startswith("xray:"), statement
    # AND its errors (a reminder or a summary not posted) alarm to the topic
    function = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.REMINDERS_FUNCTION_NAME)
    topic = _logical_id(template, "AWS::SNS::Topic", TopicName=names.ALARM_TOPIC_NAME)
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    assert any(
        alarm["Properties"]["MetricName"] == "Errors"
        and {"Name": "FunctionName", "Value": {"Ref": function}} in alarm["Properties"]["Dimensions"]
        and alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
        for alarm in alarms
    )
    example.central.has_resource_properties("AWS::Lambda::Function", {"FunctionName": names.REMINDERS_FUNCTION_NAME})
