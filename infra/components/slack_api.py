"""The Slack interactivity endpoint: API Gateway REST ``POST /slack/interactions`` -> interaction handler.

Slack authenticates itself by signing every request (HMAC over the raw body with the signing secret); the
handler verifies that signature, the workspace, the channel and the approver. API Gateway adds what it can
do without the secret: a fixed path and method, a request validator that turns away requests without
Slack's signature headers before any Lambda runs, stage throttling, and JSON access logs (no bodies, no
headers). API Gateway caps bodies at 10 MB; the handler caps them far lower.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacksets.nag import acknowledge

SLACK_SIGNATURE_HEADERS = ("X-Slack-Signature", "X-Slack-Request-Timestamp")
STAGE_NAME = "slack"
# Clicks are human-paced; these limits absorb a burst of a whole channel clicking without letting a flood
# of unsigned requests run up Lambda invocations.
THROTTLING_RATE_LIMIT = 20
THROTTLING_BURST_LIMIT = 40


class SlackInteractionsApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        path: str,
        handler: lambda_.IFunction,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=api_name,
            description="Slack interactivity (button clicks) for macie-chatops",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=False,
            deploy_options=_throttled_logged_stage(self.access_logs),
        )
        validator = self.api.add_request_validator(
            "SlackHeaders", request_validator_name="slack-signature-headers", validate_request_parameters=True
        )
        resource = self.api.root.resource_for_path(path)
        self.method = resource.add_method(
            "POST",
            apigateway.LambdaIntegration(handler, proxy=True),
            authorization_type=apigateway.AuthorizationType.NONE,
            request_validator=validator,
            request_parameters={f"method.request.header.{h}": True for h in SLACK_SIGNATURE_HEADERS},
        )
        self.url = self.api.url_for_path(path)
        _acknowledge_slack_signing(self.api)


def _throttled_logged_stage(access_logs: logs.ILogGroup) -> apigateway.StageOptions:
    """Stage throttling and JSON access logs without bodies, headers or caller identities."""
    return apigateway.StageOptions(
        stage_name=STAGE_NAME,
        throttling_rate_limit=THROTTLING_RATE_LIMIT,
        throttling_burst_limit=THROTTLING_BURST_LIMIT,
        metrics_enabled=True,
        data_trace_enabled=False,
        access_log_destination=apigateway.LogGroupLogDestination(access_logs),
        access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
            caller=False,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=False,
        ),
    )


def _acknowledge_slack_signing(api: apigateway.RestApi) -> None:
    acknowledge(
        api,
        "AwsSolutions-APIG4",
        "Slack cannot send AWS credentials or tokens; it signs each request with the app's signing secret, "
        "and the interaction handler verifies that HMAC (and the timestamp window) before acting.",
    )
    acknowledge(
        api,
        "AwsSolutions-COG4",
        "The caller is Slack's servers, not a Cognito user; authentication is Slack's request signature, "
        "verified by the handler, and authorisation is the approver list in accounts.yaml.",
    )
    acknowledge(
        api,
        "AwsSolutions-APIG6",
        "Execution logging is off on purpose (it can log request data); the stage writes JSON access logs "
        "(every request: source IP, method, path, status, latency, request id) and the handler logs its "
        "decisions. Both need the region's API Gateway CloudWatch role, which this stack does not set (a "
        "setting shared by the account's APIs): docs/deploy.md section 3 says how to set it before deploying.",
    )
    acknowledge(
        api,
        "AwsSolutions-APIG2",
        "The validator rejects requests without Slack's signature headers; Slack's form-encoded body is "
        "beyond API Gateway's JSON Schema models, so the handler validates it (size, signature, pydantic).",
    )
    acknowledge(
        api,
        "AwsSolutions-APIG3",
        "One signed POST path with stage throttling and a header validator; a WAF web ACL would add cost "
        "without adding a check the Slack signature verification does not already make.",
    )
