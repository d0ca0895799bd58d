"""Lambda: the reconciler, invoked by an EventBridge schedule (the event's content is not used).

The composition root of :func:`macie_chatops.reconciler.reconcile`. Macie is read with the function's own role
when the security account is the Macie administrator, else through the administrator's read-only role
(``MACIE_READER_ROLE_ARN``), assumed once per invocation. The counts are one metrics document per run, published
also when a region failed (``ReconcileErrors``, alarmed); a failed run then raises, so the function's Errors
count it too and the next scheduled run resumes from the watermarks.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.handlers._root import AwsTimeouts, ContainerCache, HandlerMetrics, Settings
from macie_chatops.handlers._tracing import traced

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from macie_chatops.reconciler import ReconcileDependencies

SERVICE: Final = names.RECONCILER_FUNCTION_NAME  # the metrics' service dimension, as the stack's alarm reads it
AWS_TIMEOUTS: Final = AwsTimeouts(connect_s=3, read_s=20)
READER_SESSION_NAME: Final = "macie-chatops-reconciler"

logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)
_cache = ContainerCache()


def clear_caches() -> None:
    """Forget what the container read (tests that change the world under the handler)."""
    _cache.clear()


def _macie_clients(settings: Settings, reader_role_arn: str | None) -> Any:
    """A function region -> macie2 client: the function's own credentials, or the reader role's (assumed now)."""
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        connect_timeout=AWS_TIMEOUTS.connect_s, read_timeout=AWS_TIMEOUTS.read_s, retries={"mode": "standard"}
    )
    session = boto3.Session()
    if reader_role_arn:
        issued = _cache.client("sts", settings, AWS_TIMEOUTS).assume_role(
            RoleArn=reader_role_arn, RoleSessionName=READER_SESSION_NAME, DurationSeconds=900
        )["Credentials"]
        session = boto3.Session(
            aws_access_key_id=issued["AccessKeyId"],
            aws_secret_access_key=issued["SecretAccessKey"],
            aws_session_token=issued["SessionToken"],
        )
    clients: dict[str, Any] = {}

    def client_for(region: str) -> Any:
        if region not in clients:
            clients[region] = session.client("macie2", region_name=region, config=config)
        return clients[region]

    return client_for


def dependencies(settings: Settings, env: dict[str, str] | os._Environ[str]) -> ReconcileDependencies:
    """The run's dependencies (the store and the queue client are cached per container; Macie's are per run,
    since the reader role's credentials expire)."""
    from macie_chatops.bundled_config import reconciler_settings
    from macie_chatops.reconciler import (
        MacieFindingsApi,
        ReconcileDependencies,
        ReconcilePolicy,
        SqsIntake,
        StateTableWatermarks,
    )

    queue_url = env.get(names.ENV_INTAKE_QUEUE_URL, "")
    if not queue_url:
        raise RuntimeError(f"environment variables not set: {names.ENV_INTAKE_QUEUE_URL}")
    # Three values of the bundled config, read without the config's models: the reconciler loads no pydantic (§6).
    config = _cache.get(("reconciler_settings", settings.config_path), reconciler_settings)
    return ReconcileDependencies(
        macie=MacieFindingsApi(_macie_clients(settings, env.get(names.ENV_MACIE_READER_ROLE_ARN) or None)),
        records=_cache.store(settings, AWS_TIMEOUTS),
        intake=SqsIntake(_cache.client("sqs", settings, AWS_TIMEOUTS), queue_url),
        watermarks=StateTableWatermarks(_cache.client("dynamodb", settings, AWS_TIMEOUTS), settings.table),
        administrator_id=config.administrator_id,
        regions=config.regions,
        policy=ReconcilePolicy(backfill=timedelta(days=config.backfill_days)),
    )


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from macie_chatops.reconciler import ReconcileError, reconcile

    settings = Settings.from_env(queue=False)
    try:
        report = reconcile(dependencies(settings, os.environ))
    except ReconcileError as exc:
        counts = exc.report.counts()
        metrics.publish(counts)
        logger.error("reconciliation failed in some regions; the others were reconciled", extra=counts)
        raise
    except Exception:
        metrics.count(names.RECONCILE_ERRORS_METRIC)
        logger.exception("reconciliation failed before any region was read")
        raise
    counts = report.counts()
    metrics.publish(counts)
    logger.info("reconciliation done", extra=counts)
    return {**counts, "regions": [asdict(region) for region in report.regions]}
