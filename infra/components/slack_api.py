"""The Slack interactivity endpoint: API Gateway REST ``POST /slack/interactions`` -> interaction handler.

Slack authenticates itself by signing every request (HMAC over the raw body with the signing secret); the
handler verifies that signature, the workspace, the channel and the approver. API Gateway adds what it can
do without the secret: a fixed path and method, a request validator that turns away requests without
Slack's signature headers before any Lambda runs, a throttle, X-Ray tracing, and JSON access logs (no bodies,
no headers; encrypted with the stack's log key). API Gateway caps bodies at 10 MB; the handler caps them far
lower.

Junk traffic (architecture §25). The stage's throttle is one token bucket for every caller, spent as requests
arrive, before the validator looks at them; API Gateway cannot tell Slack from anyone else before the handler
checks the HMAC (Slack sends no API key and publishes no source addresses). So the throttle is set far above
human clicking, and what it used to protect (Lambda's cost) is bounded by the handler's reserved concurrency
instead: a flood must be large before it crowds clicks out. ``waf=True`` adds an AWS WAF web ACL, which
runs before the throttle: requests without Slack's headers are blocked there and each source address is
rate-limited.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from macie_chatops import names
from stacksets.nag import acknowledge

SLACK_SIGNATURE_HEADERS = ("X-Slack-Signature", "X-Slack-Request-Timestamp")
STAGE_NAME = "slack"
# Clicks are human-paced (a channel clicking at once is tens of requests); the throttle only has to stop a
# flood far beyond that, because every request spends it, junk included. The Lambda cost of junk that carries
# made-up headers is bounded by the interaction handler's reserved concurrency (infra/central/interaction.py).
THROTTLING_RATE_LIMIT = 1000
THROTTLING_BURST_LIMIT = 2000
# slack.waf: requests one source address may send in WAF's 5-minute window before its requests are blocked
# (Slack's own servers send every click of the workspace; a channel clicking together stays far below).
WAF_RATE_LIMIT_PER_5_MINUTES = 600


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
        log_encryption_key: kms.IKey,
        waf: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention,
            encryption_key=log_encryption_key,
            removal_policy=RemovalPolicy.RETAIN,
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
        self.web_acl: wafv2.CfnWebACL | None = None
        if waf:
            self.web_acl = _slack_web_acl(self)
            wafv2.CfnWebACLAssociation(
                self,
                "WebAclAssociation",
                resource_arn=self.api.deployment_stage.stage_arn,
                web_acl_arn=self.web_acl.attr_arn,
            )
        _acknowledge_slack_signing(self.api, waf=waf)


def _throttled_logged_stage(access_logs: logs.ILogGroup) -> apigateway.StageOptions:
    """Stage throttling and JSON access logs without bodies, headers or caller identities."""
    return apigateway.StageOptions(
        stage_name=STAGE_NAME,
        throttling_rate_limit=THROTTLING_RATE_LIMIT,
        throttling_burst_limit=THROTTLING_BURST_LIMIT,
        tracing_enabled=True,
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


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def _header(name: str) -> wafv2.CfnWebACL.FieldToMatchProperty:
    return wafv2.CfnWebACL.FieldToMatchProperty(single_header={"Name": name.lower()})


_NO_TRANSFORMATION = [wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")]


def _slack_web_acl(scope: Construct) -> wafv2.CfnWebACL:
    """Allow by default; block what cannot be Slack (no ``v0=`` signature or no timestamp header), then any
    source address over :data:`WAF_RATE_LIMIT_PER_5_MINUTES`. Both run before API Gateway's throttle."""
    signature, timestamp = SLACK_SIGNATURE_HEADERS
    has_slack_headers = wafv2.CfnWebACL.StatementProperty(
        and_statement=wafv2.CfnWebACL.AndStatementProperty(
            statements=[
                wafv2.CfnWebACL.StatementProperty(
                    byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                        field_to_match=_header(signature),
                        positional_constraint="STARTS_WITH",
                        search_string="v0=",
                        text_transformations=_NO_TRANSFORMATION,
                    )
                ),
                wafv2.CfnWebACL.StatementProperty(
                    size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
                        field_to_match=_header(timestamp),
                        comparison_operator="GT",
                        size=0,
                        text_transformations=_NO_TRANSFORMATION,
                    )
                ),
            ]
        )
    )
    block = wafv2.CfnWebACL.RuleActionProperty(block={})
    return wafv2.CfnWebACL(
        scope,
        "WebAcl",
        name=names.SLACK_WEB_ACL_NAME,
        description="macie-chatops Slack endpoint - Slack signature headers required, a rate limit per address",
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility("macie-chatops-slack"),
        rules=[
            wafv2.CfnWebACL.RuleProperty(
                name="SlackSignatureHeadersRequired",
                priority=0,
                action=block,
                statement=wafv2.CfnWebACL.StatementProperty(
                    not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=has_slack_headers)
                ),
                visibility_config=_visibility("macie-chatops-slack-unsigned"),
            ),
            wafv2.CfnWebACL.RuleProperty(
                name="RateLimitPerSourceAddress",
                priority=1,
                action=block,
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP", limit=WAF_RATE_LIMIT_PER_5_MINUTES, evaluation_window_sec=300
                    )
                ),
                visibility_config=_visibility("macie-chatops-slack-rate-limited"),
            ),
        ],
    )


def _acknowledge_slack_signing(api: apigateway.RestApi, *, waf: bool) -> None:
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
    if not waf:
        acknowledge(
            api,
            "AwsSolutions-APIG3",
            "WAF is optional here (slack.waf in accounts.yaml, with its cost in docs/deploy.md): without it, one "
            "signed POST path, a header validator, a throttle far above human clicking and the interaction "
            "handler's reserved concurrency; every request is authenticated by its Slack HMAC.",
        )
