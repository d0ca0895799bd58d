"""One Lambda handler of the pipeline: arm64, JSON logs, its own role and log group (encrypted with the stack's
log key), X-Ray tracing (Powertools Tracer in the handler), Powertools settings.

The role is created here rather than by ``lambda.Function`` so that it carries no AWS-managed policy: the
function may write to its own log group and nothing else until the stack grants exactly what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.lambda_bundle import BUNDLED_CONFIG_PATH, LAMBDA_PYTHON_VERSION
from macie_chatops import names
from stacksets.nag import acknowledge

# SnapStart exists for Python 3.12 and later (the interaction function uses it: docs/architecture.md §6).
_SNAP_START_FROM: Final = (3, 12)
LAMBDA_RUNTIME = lambda_.Runtime(
    f"python{LAMBDA_PYTHON_VERSION}",
    lambda_.RuntimeFamily.PYTHON,
    supports_snap_start=tuple(int(part) for part in LAMBDA_PYTHON_VERSION.split(".")) >= _SNAP_START_FROM,
)
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
LOG_LEVEL = "INFO"


class HandlerFunction(Construct):
    """``handler`` (a module path in macie_chatops) running on the shared code asset and dependency layer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        handler: str,
        description: str,
        code: lambda_.Code,
        dependencies: lambda_.ILayerVersion,
        environment: Mapping[str, str],
        timeout: Duration,
        memory_size: int,
        log_retention: logs.RetentionDays,
        log_encryption_key: kms.IKey,
        role_name: str | None = None,
        reserved_concurrent_executions: int | None = None,
        snap_start: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: {description}",
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention,
            encryption_key=log_encryption_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            handler=handler,
            code=code,
            layers=[dependencies],
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrent_executions,
            **_published_versions(snap_start=snap_start),
            # Active: Lambda samples and starts the trace; the handler's Tracer adds its subsegments (AWS calls).
            tracing=lambda_.Tracing.ACTIVE,
            environment=_environment(environment),
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing (Tracing.ACTIVE) needs xray:PutTraceSegments and xray:PutTelemetryRecords, which have no "
            "resource type (IAM allows only '*'); they write traces and read nothing.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"Deliberately pinned to python{LAMBDA_PYTHON_VERSION} (one constant, LAMBDA_PYTHON_VERSION): the "
            "dependency layer is built for that ABI (pydantic-core), and the newer python3.14 is beyond the "
            "interpreters (3.11-3.13) this project can exercise the code on; moving is a one-line change.",
        )


def _environment(environment: Mapping[str, str]) -> dict[str, str]:
    """Powertools' settings and the bundled config's path, then the handler's own ``environment``."""
    return {
        "POWERTOOLS_SERVICE_NAME": names.PROJECT,
        "POWERTOOLS_METRICS_NAMESPACE": names.METRICS_NAMESPACE,
        "LOG_LEVEL": LOG_LEVEL,
        names.ENV_CONFIG_PATH: BUNDLED_CONFIG_PATH,
        **environment,
    }


def _published_versions(*, snap_start: bool) -> dict[str, Any]:
    """With ``snap_start``: each version published from the code (``current_version``) is initialized once and
    snapshotted (docs/architecture.md §6), and a version the next deploy replaces is deleted, so its snapshot's cache
    is no longer charged. Without it, nothing: the function is invoked as ``$LATEST``."""
    if not snap_start:
        return {}
    return {
        "snap_start": lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS,
        "current_version_options": lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
    }
