"""Security invariants of the central stack (security account, home region), asserted on the template."""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra.central.lambdas import VISIBILITY_TIMEOUT_FACTOR
from infra.central.sweeper import SWEEP_INTERVAL
from macie_chatops import names
from macie_chatops.event_pattern import MACIE_FINDING_PATTERN
from macie_chatops.store import TABLE_DEFINITION, TTL_SPECIFICATION
from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type, statements

HANDLERS = {
    names.FINDING_FUNCTION_NAME: "macie_chatops.handlers.intake.lambda_handler",
    names.INTERACTION_FUNCTION_NAME: "macie_chatops.handlers.interaction.lambda_handler",
    names.REMEDIATOR_FUNCTION_NAME: "macie_chatops.handlers.remediation.lambda_handler",
    names.SWEEPER_FUNCTION_NAME: "macie_chatops.handlers.sweeper.lambda_handler",
}


def _logical_id(template: dict[str, Any], resource_type: str, **properties: Any) -> str:
    for logical_id, resource in resources_of_type(template, resource_type).items():
        if all(resource["Properties"].get(k) == v for k, v in properties.items()):
            return logical_id
    raise AssertionError(f"no {resource_type} with {properties}")


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][_logical_id(template, "AWS::Lambda::Function", FunctionName=name)]


def _role_policy_statements(template: dict[str, Any], function_name: str) -> list[dict[str, Any]]:
    role_ref = _function(template, function_name)["Properties"]["Role"]["Fn::GetAtt"][0]
    found = []
    for policy in resources_of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_ref} in policy["Properties"]["Roles"]:
            found.extend(statements(policy["Properties"]["PolicyDocument"]))
    return found


def test_bus_accepts_put_events_only_from_the_organisation(example: Synthesized) -> None:
    # GIVEN the central stack of the example organisation
    template = example.central_json
    # WHEN we read the bus's resource policy
    policies = resources_of_type(template, "AWS::Events::EventBusPolicy")
    # THEN its one statement lets anyone put events only under the organisation-id condition
    assert len(policies) == 1
    statement = next(iter(policies.values()))["Properties"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Principal"] == {"AWS": "*"}
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": example.config.organization_id}}
    example.central.has_resource_properties("AWS::Events::EventBus", {"Name": names.CENTRAL_BUS_NAME})


def test_intake_rule_uses_the_shared_pattern_and_a_dead_letter_queue(example: Synthesized) -> None:
    # GIVEN the central stack  WHEN we look at the intake rule  THEN it is the one Macie pattern -> intake queue
    template = example.central_json
    intake_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.INTAKE_QUEUE_NAME)
    delivery_dlq = _logical_id(template, "AWS::SQS::Queue", QueueName=names.CENTRAL_DELIVERY_DLQ_NAME)
    example.central.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": names.CENTRAL_RULE_NAME,
            "EventPattern": MACIE_FINDING_PATTERN,
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [intake_queue, "Arn"]},
                        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [delivery_dlq, "Arn"]}},
                    }
                )
            ],
        },
    )


def _dead_letter_arns(template: dict[str, Any]) -> set[str]:
    arns = set()
    for queue in resources_of_type(template, "AWS::SQS::Queue").values():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            arns.add(json.dumps(redrive["deadLetterTargetArn"], sort_keys=True))
    for rule in resources_of_type(template, "AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            if "DeadLetterConfig" in target:
                arns.add(json.dumps(target["DeadLetterConfig"]["Arn"], sort_keys=True))
    return arns


def _queue_arn(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


def test_every_queue_has_a_dead_letter_queue_or_is_one_and_is_encrypted(example: Synthesized) -> None:
    # GIVEN every template the app deploys (central, and the member regional one)
    for template in (example.central_json, example.regional_json):
        dead_letter_arns = _dead_letter_arns(template)
        queues = resources_of_type(template, "AWS::SQS::Queue")
        assert queues
        for logical_id, queue in queues.items():
            properties = queue["Properties"]
            # THEN each queue dead-letters elsewhere, or is itself a dead-letter target of a queue or a rule
            assert "RedrivePolicy" in properties or _queue_arn(logical_id) in dead_letter_arns, logical_id
            # AND it is encrypted at rest (a KMS key, or SQS-managed keys where EventBridge delivers cross-account)
            assert "KmsMasterKeyId" in properties or properties.get("SqsManagedSseEnabled") is True, logical_id


def test_every_event_target_has_a_dead_letter_queue(example: Synthesized) -> None:
    # GIVEN every rule of every template  THEN every target names a DLQ
    for name, template in example.all_templates().items():
        for logical_id, rule in resources_of_type(template, "AWS::Events::Rule").items():
            for target in rule["Properties"]["Targets"]:
                assert "DeadLetterConfig" in target, f"{name}: {logical_id} target {target['Id']}"


def test_every_queue_refuses_plain_http(example: Synthesized) -> None:
    for template in (example.central_json, example.regional_json):
        queues = set(resources_of_type(template, "AWS::SQS::Queue"))
        protected: set[str] = set()
        for policy in resources_of_type(template, "AWS::SQS::QueuePolicy").values():
            for statement in statements(policy["Properties"]["PolicyDocument"]):
                if statement["Effect"] == "Deny" and statement.get("Condition") == {
                    "Bool": {"aws:SecureTransport": "false"}
                }:
                    protected.update(ref["Ref"] for ref in policy["Properties"]["Queues"])
        assert queues == protected


def test_state_table_mirrors_the_store_definition(example: Synthesized) -> None:
    # GIVEN the store adapter's own table definition  THEN the deployed table has exactly that layout
    table = next(iter(resources_of_type(example.central_json, "AWS::DynamoDB::Table").values()))
    properties = table["Properties"]
    assert properties["TableName"] == names.STATE_TABLE_NAME
    assert properties["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert sorted(properties["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        TABLE_DEFINITION["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    assert [
        {k: v for k, v in index.items() if k in {"IndexName", "KeySchema", "Projection"}}
        for index in properties["GlobalSecondaryIndexes"]
    ] == TABLE_DEFINITION["GlobalSecondaryIndexes"]
    assert properties["GlobalSecondaryIndexes"][0]["IndexName"] == names.PENDING_INDEX_NAME
    # AND it is on-demand, recoverable, encrypted, expiring final records, protected from deletion
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": names.STATE_TABLE_TTL_ATTRIBUTE,
        "Enabled": TTL_SPECIFICATION["Enabled"],
    }
    assert properties["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_lambdas_run_the_fixed_handlers_on_arm64_with_json_logs_and_the_bundled_config(example: Synthesized) -> None:
    for function_name, handler in HANDLERS.items():
        properties = _function(example.central_json, function_name)["Properties"]
        assert properties["Handler"] == handler
        assert properties["Architectures"] == ["arm64"]
        major, minor = properties["Runtime"].removeprefix("python").split(".")
        assert (int(major), int(minor)) >= (3, 12)
        assert properties["LoggingConfig"]["LogFormat"] == "JSON"
        variables = properties["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == names.PROJECT
        assert variables["LOG_LEVEL"] == "INFO"
        assert variables[names.ENV_CONFIG_PATH] == f"/var/task/{names.BUNDLED_CONFIG_FILE}"
        assert names.ENV_STATE_TABLE in variables
        assert names.ENV_SLACK_SECRET_ARN in variables
        assert len(properties["Layers"]) == 1


def test_remediator_is_sized_for_a_long_multipart_copy(example: Synthesized) -> None:
    template = example.central_json
    remediator = _function(template, names.REMEDIATOR_FUNCTION_NAME)["Properties"]
    assert remediator["Timeout"] == 900
    assert remediator["MemorySize"] >= 1024
    assert remediator["ReservedConcurrentExecutions"] >= 1
    role = template["Resources"][remediator["Role"]["Fn::GetAtt"][0]]
    assert role["Properties"]["RoleName"] == names.REMEDIATOR_ROLE_NAME
    # AND the queues keep a message invisible for at least 6x the consumer's timeout
    for queue_name, function_name in (
        (names.REMEDIATION_QUEUE_NAME, names.REMEDIATOR_FUNCTION_NAME),
        (names.INTAKE_QUEUE_NAME, names.FINDING_FUNCTION_NAME),
    ):
        queue = template["Resources"][_logical_id(template, "AWS::SQS::Queue", QueueName=queue_name)]
        timeout = _function(template, function_name)["Properties"]["Timeout"]
        assert queue["Properties"]["VisibilityTimeout"] >= VISIBILITY_TIMEOUT_FACTOR * timeout
        assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] >= 1


def test_sqs_consumers_report_partial_batch_failures(example: Synthesized) -> None:
    mappings = resources_of_type(example.central_json, "AWS::Lambda::EventSourceMapping")
    # the intake, the remediation, the digest (test_digests_stack.py) and the continuation queues
    # (test_bulk_continuation_stack.py)
    assert len(mappings) == 4
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_remediator_may_only_assume_the_member_remediation_role_inside_the_org(example: Synthesized) -> None:
    granted = _role_policy_statements(example.central_json, names.REMEDIATOR_FUNCTION_NAME)
    sts = [s for s in granted if any(a.startswith("sts:") for a in as_list(s["Action"]))]
    assert len(sts) == 1
    assert sorted(as_list(sts[0]["Action"])) == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    assert sts[0]["Resource"] == f"arn:aws:iam::*:role/{example.config.deployment.remediation_role_name}"
    assert sts[0]["Condition"] == {"StringEquals": {"aws:ResourceOrgID": example.config.organization_id}}


XRAY_WRITE_ACTIONS = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]


def test_handlers_get_exactly_their_grants(example: Synthesized) -> None:
    template = example.central_json
    remediation_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.REMEDIATION_QUEUE_NAME)
    for function_name in HANDLERS:
        granted = _role_policy_statements(template, function_name)
        actions = {a for s in granted for a in as_list(s["Action"])}
        # No wildcard actions or resources anywhere outside the remediator's one org-scoped role pattern, but
        # X-Ray's two write actions (they have no resource type)
        assert not any(a.endswith("*") for a in actions), function_name
        for statement in granted:
            if statement["Resource"] == "*":
                assert sorted(as_list(statement["Action"])) == XRAY_WRITE_ACTIONS, (function_name, statement)
        assert {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= actions
        # The sweeper only updates items it reads from its index (tested on its own below); the others create too
        assert ("dynamodb:PutItem" in actions) is (function_name != names.SWEEPER_FUNCTION_NAME)
        assert "dynamodb:Scan" not in actions and "dynamodb:DeleteItem" not in actions
        assert {"secretsmanager:GetSecretValue"} <= actions
        sends = sorted(
            str(resource)
            for s in granted
            if "sqs:SendMessage" in as_list(s["Action"])
            for resource in as_list(s["Resource"])
        )
        # A queue consumer also sends to its own queue: a record Slack cannot take yet is re-sent with a delay.
        # Every one of them may wake the digest writer (it moves grouped findings: test_digests_stack.py).
        digest_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_QUEUE_NAME)
        if function_name == names.FINDING_FUNCTION_NAME:
            intake_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.INTAKE_QUEUE_NAME)
            assert sends == sorted(
                str({"Fn::GetAtt": [queue, "Arn"]}) for queue in (intake_queue, remediation_queue, digest_queue)
            )
        elif function_name == names.INTERACTION_FUNCTION_NAME:  # and its bulk continuations (§22)
            continuations = _logical_id(template, "AWS::SQS::Queue", QueueName=names.BULK_CONTINUATION_QUEUE_NAME)
            assert sends == sorted(
                str({"Fn::GetAtt": [queue, "Arn"]}) for queue in (continuations, remediation_queue, digest_queue)
            )
        else:
            assert sends == sorted(str({"Fn::GetAtt": [queue, "Arn"]}) for queue in (remediation_queue, digest_queue))
        if function_name != names.REMEDIATOR_FUNCTION_NAME:
            assert not any(a.startswith("sts:") for a in actions), function_name


def test_slack_endpoint_is_one_throttled_logged_validated_post(example: Synthesized) -> None:
    template = example.central_json
    # The interaction function's SnapStart alias (tests/functional/infra/test_snapstart.py)
    (interaction,) = resources_of_type(template, "AWS::Lambda::Alias")
    methods = resources_of_type(template, "AWS::ApiGateway::Method")
    assert len(methods) == 1
    method = next(iter(methods.values()))["Properties"]
    assert method["HttpMethod"] == "POST"
    assert method["Integration"]["Type"] == "AWS_PROXY"
    assert {"Ref": interaction} in method["Integration"]["Uri"]["Fn::Join"][1]
    assert method["RequestParameters"] == {
        "method.request.header.X-Slack-Signature": True,
        "method.request.header.X-Slack-Request-Timestamp": True,
    }
    validator = template["Resources"][method["RequestValidatorId"]["Ref"]]["Properties"]
    assert validator["ValidateRequestParameters"] is True
    paths = {r["Properties"]["PathPart"] for r in resources_of_type(template, "AWS::ApiGateway::Resource").values()}
    assert paths == set(names.SLACK_INTERACTIONS_PATH.strip("/").split("/"))
    stage = next(iter(resources_of_type(template, "AWS::ApiGateway::Stage").values()))["Properties"]
    assert "DestinationArn" in stage["AccessLogSetting"]
    settings = stage["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert settings["DataTraceEnabled"] is False
    url = json.dumps(template["Outputs"]["SlackRequestUrl"]["Value"])
    assert url.endswith(f'{names.SLACK_INTERACTIONS_PATH}"]]}}')


def test_slack_secret_is_created_empty(example: Synthesized) -> None:
    secrets = resources_of_type(example.central_json, "AWS::SecretsManager::Secret")
    assert len(secrets) == 1
    properties = next(iter(secrets.values()))["Properties"]
    assert properties["Name"] == example.config.slack.secret_name
    assert "SecretString" not in properties
    assert "GenerateSecretString" not in properties


def test_every_dead_letter_queue_and_handler_alarms_to_the_encrypted_topic(example: Synthesized) -> None:
    template = example.central_json
    topic = _logical_id(template, "AWS::SNS::Topic", TopicName=names.ALARM_TOPIC_NAME)
    assert "KmsMasterKeyId" in template["Resources"][topic]["Properties"]
    alarms = list(resources_of_type(template, "AWS::CloudWatch::Alarm").values())
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
    watched_queues = {
        d["Value"]["Fn::GetAtt"][0]
        for a in alarms
        if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        for d in a["Properties"].get("Dimensions", [])
        if d["Name"] == "QueueName"
    }
    assert watched_queues == {
        _logical_id(template, "AWS::SQS::Queue", QueueName=name)
        for name in (
            names.INTAKE_DLQ_NAME,
            names.REMEDIATION_DLQ_NAME,
            names.CENTRAL_DELIVERY_DLQ_NAME,
            names.DIGEST_DLQ_NAME,
            names.BULK_CONTINUATION_DLQ_NAME,
        )
    }
    errors_on = {
        d["Value"]["Ref"]
        for a in alarms
        if a["Properties"]["MetricName"] == "Errors"
        for d in a["Properties"]["Dimensions"]
    }
    # the reminders job: test_reminders_stack.py; the reconciler: test_reconciler_stack.py
    alarmed = (
        *HANDLERS,
        names.REMINDERS_FUNCTION_NAME,
        names.RECONCILER_FUNCTION_NAME,
        names.DIGEST_WRITER_FUNCTION_NAME,  # test_digests_stack.py
    )
    assert errors_on == {_logical_id(template, "AWS::Lambda::Function", FunctionName=n) for n in alarmed}
    # AND member accounts' DLQ alarms, forwarded to the bus, are relayed to the same topic
    example.central.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {
                    "source": ["aws.cloudwatch"],
                    "detail": {
                        "alarmName": [{"prefix": names.MEMBER_ALARM_NAME_PREFIX}],
                        "state": {"value": ["ALARM"]},
                    },
                }
            ),
            "Targets": [Match.object_like({"Arn": {"Ref": topic}, "DeadLetterConfig": Match.any_value()})],
        },
    )


def _throttled_functions(template: dict[str, Any]) -> set[str]:
    return {
        d["Value"]["Ref"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "Throttles" and a["Properties"]["Namespace"] == "AWS/Lambda"
        for d in a["Properties"]["Dimensions"]
        if d["Name"] == "FunctionName"
    }


def test_every_function_alarms_on_throttles(example: Synthesized) -> None:
    # the Security Hub updater's (when it is on): test_security_hub_stack.py
    template = example.central_json
    topic = _logical_id(template, "AWS::SNS::Topic", TopicName=names.ALARM_TOPIC_NAME)
    functions = resources_of_type(template, "AWS::Lambda::Function")
    assert _throttled_functions(template) == set(functions)
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        if alarm["Properties"]["MetricName"] == "Throttles":
            assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
            assert alarm["Properties"]["Threshold"] == 1
            assert alarm["Properties"]["Statistic"] == "Sum"


def test_the_intake_and_remediation_queues_alarm_on_their_oldest_message(example: Synthesized) -> None:
    template = example.central_json
    topic = _logical_id(template, "AWS::SNS::Topic", TopicName=names.ALARM_TOPIC_NAME)
    ages = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]: a["Properties"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage"
    }
    intake = _logical_id(template, "AWS::SQS::Queue", QueueName=names.INTAKE_QUEUE_NAME)
    remediation = _logical_id(template, "AWS::SQS::Queue", QueueName=names.REMEDIATION_QUEUE_NAME)
    digests = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_QUEUE_NAME)
    continuations = _logical_id(template, "AWS::SQS::Queue", QueueName=names.BULK_CONTINUATION_QUEUE_NAME)
    assert set(ages) == {intake, remediation, digests, continuations}
    for queue, alarm in ages.items():
        # older than every retry could take: the visibility timeout times the receives before the DLQ
        visibility = template["Resources"][queue]["Properties"]["VisibilityTimeout"]
        receives = template["Resources"][queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        assert alarm["Threshold"] == visibility * receives
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["AlarmActions"] == [{"Ref": topic}]
    assert ages[intake]["AlarmName"] == f"{names.INTAKE_QUEUE_NAME}-oldest-message"
    assert ages[remediation]["AlarmName"] == f"{names.REMEDIATION_QUEUE_NAME}-oldest-message"


def test_outputs_name_the_slack_url_and_the_bus(example: Synthesized) -> None:
    outputs = example.central_json["Outputs"]
    bus = _logical_id(example.central_json, "AWS::Events::EventBus", Name=names.CENTRAL_BUS_NAME)
    assert outputs["CentralBusArn"]["Value"] == {"Fn::GetAtt": [bus, "Arn"]}
    assert "SlackRequestUrl" in outputs


def test_each_handler_reads_its_settings_from_the_environment_the_stack_gives_it(
    example: Synthesized, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN each function's environment as deployed (CloudFormation references stand in as placeholders)
    for function_name, handler in HANDLERS.items():
        variables = _function(example.central_json, function_name)["Properties"]["Environment"]["Variables"]
        for key in list(os.environ):
            if key.startswith(("STATE_", "REMEDIATION_", "SLACK_", "MACIE_CHATOPS_")):
                monkeypatch.delenv(key)
        for key, value in variables.items():
            monkeypatch.setenv(key, value if isinstance(value, str) else f"<{json.dumps(value)}>")
        # WHEN the handler's composition root reads its settings
        module = importlib.import_module(handler.rpartition(".")[0])
        settings = module.read_settings()
        # THEN nothing it requires is missing, and it reads the bundled config where the asset puts it
        assert settings.config_path == f"/var/task/{names.BUNDLED_CONFIG_FILE}"


def test_the_sweeper_runs_on_a_schedule_with_exactly_its_grants_and_an_alarm(example: Synthesized) -> None:
    # GIVEN the central stack
    template = example.central_json
    sweeper = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.SWEEPER_FUNCTION_NAME)
    delivery_dlq = _logical_id(template, "AWS::SQS::Queue", QueueName=names.CENTRAL_DELIVERY_DLQ_NAME)
    # THEN a schedule rule invokes it every 15 minutes, with retries and the delivery DLQ
    example.central.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": names.SWEEPER_SCHEDULE_RULE_NAME,
            "ScheduleExpression": "rate(15 minutes)",
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [sweeper, "Arn"]},
                        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [delivery_dlq, "Arn"]}},
                        "RetryPolicy": Match.object_like({"MaximumRetryAttempts": 2}),
                    }
                )
            ],
        },
    )
    # AND one sweep at a time; an approval counts as stale only after a remediator attempt can have ended
    properties = _function(template, names.SWEEPER_FUNCTION_NAME)["Properties"]
    assert properties["ReservedConcurrentExecutions"] == 1
    variables = properties["Environment"]["Variables"]
    remediator_timeout = _function(template, names.REMEDIATOR_FUNCTION_NAME)["Properties"]["Timeout"]
    assert int(variables[names.ENV_SWEEP_STALE_AFTER_S]) > remediator_timeout
    assert int(variables[names.ENV_SWEEP_STALE_AFTER_S]) == 1800 and variables[names.ENV_SWEEP_MAX_REQUEUES] == "3"
    # AND its grants are: query the approved index only, read and update items, send jobs and count the waiting
    # ones, read the Slack secret (with the keys of the table, the queue and the secret), write traces
    granted = _role_policy_statements(template, names.SWEEPER_FUNCTION_NAME)
    by_action = {a: s["Resource"] for s in granted for a in as_list(s["Action"])}
    assert set(by_action) == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:DescribeKey",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        *XRAY_WRITE_ACTIONS,
    }
    assert json.dumps(by_action["dynamodb:Query"]).endswith(f'/index/{names.APPROVED_INDEX_NAME}"]]}}')
    table = _logical_id(template, "AWS::DynamoDB::Table", TableName=names.STATE_TABLE_NAME)
    assert by_action["dynamodb:UpdateItem"] == {"Fn::GetAtt": [table, "Arn"]}
    remediation_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.REMEDIATION_QUEUE_NAME)
    digest_queue = _logical_id(template, "AWS::SQS::Queue", QueueName=names.DIGEST_QUEUE_NAME)
    assert by_action["sqs:GetQueueAttributes"] == {"Fn::GetAtt": [remediation_queue, "Arn"]}
    sends = [r for s in granted if "sqs:SendMessage" in as_list(s["Action"]) for r in as_list(s["Resource"])]
    assert sorted(map(str, sends)) == sorted(str({"Fn::GetAtt": [q, "Arn"]}) for q in (remediation_queue, digest_queue))
    # AND StuckApprovals (its metric) alarms to the topic while any approval is stuck, through silent sweeps too
    topic = _logical_id(template, "AWS::SNS::Topic", TopicName=names.ALARM_TOPIC_NAME)
    example.central.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": names.STUCK_APPROVALS_METRIC,
            "Namespace": names.METRICS_NAMESPACE,
            "Dimensions": [{"Name": "service", "Value": names.SWEEPER_FUNCTION_NAME}],
            "Statistic": "Maximum",
            "Period": int(SWEEP_INTERVAL.to_seconds()),
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "ignore",
            "AlarmActions": [{"Ref": topic}],
        },
    )
