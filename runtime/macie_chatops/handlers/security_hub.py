"""Lambda: the state table's DynamoDB stream (NEW_AND_OLD_IMAGES) -> Security Hub workflow statuses.

The Security Hub updater's composition root (docs/architecture.md §17): each stream record that shows a finding
entering a state goes to :func:`macie_chatops.security_hub.sync`. Records it raised for are reported as batch
item failures, so the event source mapping retries from the first of them, in order (then sends them to the
dead-letter queue). Records of writes that kept the state (the updater's own audit entries among them) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops.errors import MacieChatOpsError
from macie_chatops.handlers._root import AwsTimeouts, ContainerCache, HandlerMetrics, Settings, partial_batch_response
from macie_chatops.handlers._tracing import traced

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from macie_chatops.security_hub import SecurityHubApi, SyncDependencies

SERVICE: Final = "macie-chatops-security-hub"
AWS_TIMEOUTS: Final = AwsTimeouts(connect_s=3, read_s=10)

logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)
_cache = ContainerCache()


def read_settings() -> Settings:
    return Settings.from_env(queue=False)


def clear_caches() -> None:
    """Forget what the container read (tests that change the world under the handler)."""
    _cache.clear()


def dependencies(settings: Settings) -> SyncDependencies:
    from macie_chatops.security_hub import SyncDependencies

    def client(region: str) -> SecurityHubApi:
        # The finding's region: Security Hub updates a finding where it was imported.
        regional: SecurityHubApi = _cache.client("securityhub", replace(settings, region=region), AWS_TIMEOUTS)
        return regional

    return SyncDependencies(store=_cache.store(settings, AWS_TIMEOUTS), security_hub=client, metrics=metrics)


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from macie_chatops.security_hub import change_of, sync

    deps = dependencies(read_settings())

    def record_handler(record: Mapping[str, Any]) -> str:
        try:
            change = change_of(record)
            return "skipped" if change is None else sync(change, deps).value
        except Exception as exc:
            metrics.count("RecordsFailed", error_type=type(exc).__name__)
            fields = {"event_id": record.get("eventID"), "error_type": type(exc).__name__}
            if isinstance(exc, MacieChatOpsError):  # already logged and audited on the finding
                logger.warning("stream record failed: retried", extra={**fields, "error": str(exc)[:500]})
            else:
                logger.exception("stream record failed: retried", extra=fields)
            raise
        finally:
            logger.thread_safe_clear_keys()

    # The stream resumes from the lowest failed sequence number (the event source mapping's ReportBatchItemFailures).
    return partial_batch_response(event, _stream_record, record_handler, item_identifier=_sequence_number)


def _stream_record(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return raw


def _sequence_number(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))
