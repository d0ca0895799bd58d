"""The reconciler: findings the Macie administrator holds that never reached the intake (docs/architecture.md §13).

Per region, from the region's watermark (else ``backfill`` ago): ``ListFindings`` on ``updatedAt``, oldest first,
a page of at most 50 ids at a time; ``GetFindings`` for the page; every finding with no record goes to the intake
queue as the EventBridge event Macie would have published, so it gets the same decision and the same idempotency
as a delivered event. The watermark moves forward only after a whole page was handed over, and never past the
moment the run began: a finding updated while the listing runs is listed again next time instead of skipped.
A region that fails is logged and reported, the other regions are still reconciled, then the run raises.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.errors import MacieChatOpsError
from macie_chatops.event_pattern import FINDING_ID, MACIE_DETAIL_TYPE, MACIE_SOURCE
from macie_chatops.ports import Clock, utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from macie_chatops.store import FindingRecord

logger = Logger(service="macie-chatops-reconciler")

PAGE_SIZE: Final = 50  # ListFindings' and GetFindings' limit
DEFAULT_BACKFILL_DAYS: Final = 7
MAX_BACKFILL_DAYS: Final = 90  # Macie keeps findings for 90 days
# Event ids of reconciled findings: the same finding at the same update always gets the same id.
_EVENT_NAMESPACE: Final = uuid.UUID("6f1c6a55-7d43-4f0e-9a0b-5c1e2b7d9a10")
WATERMARK_PREFIX: Final = "reconcile#"  # state-table keys of the watermarks (finding ids never hold '#')
WATERMARK_ITEM_TYPE: Final = "reconcile_watermark"


# --------------------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------------------


class MacieFindings(Protocol):
    """The Macie administrator's findings in one region (``MacieFindingsApi``)."""

    def list_ids(
        self, region: str, *, updated_since: datetime, next_token: str | None, max_results: int
    ) -> tuple[list[str], str | None]:
        """One page of finding ids updated at or after ``updated_since``, oldest update first; the next token."""
        ...

    def get(self, region: str, finding_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The findings, each as the ``detail`` of the EventBridge event Macie publishes for it."""
        ...


class Records(Protocol):
    """Is there a record for this finding (``FindingStore``)."""

    def get(self, finding_id: str) -> FindingRecord | None: ...


class IntakeSender(Protocol):
    """The intake queue: send one EventBridge event's JSON; its message id (raises when the queue refuses)."""

    def send(self, body: str) -> str: ...


class Watermarks(Protocol):
    """Per region: the ``updatedAt`` up to which every finding was handed over (``StateTableWatermarks``)."""

    def read(self, region: str) -> datetime | None: ...

    def advance(self, region: str, to: datetime) -> None: ...


class MetricsPublisher(Protocol):
    def publish(self, values: Mapping[str, int], **dimensions: str) -> None: ...


# --------------------------------------------------------------------------------------------------------
# The pure parts
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcilePolicy:
    backfill: timedelta = timedelta(days=DEFAULT_BACKFILL_DAYS)  # a region's first run looks back this far
    page_size: int = PAGE_SIZE

    def __post_init__(self) -> None:
        if not timedelta(days=1) <= self.backfill <= timedelta(days=MAX_BACKFILL_DAYS):
            raise ValueError(f"the back-fill must be 1 to {MAX_BACKFILL_DAYS} days, got {self.backfill}")
        if not 1 <= self.page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {PAGE_SIZE}, got {self.page_size}")


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time of a finding (``...Z`` or an offset) as an aware datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def updated_at(detail: Mapping[str, Any]) -> datetime | None:
    """When Macie last updated the finding (``updatedAt``, else ``createdAt``)."""
    return parse_time(detail.get("updatedAt")) or parse_time(detail.get("createdAt"))


def iso_millis(moment: datetime) -> str:
    """Macie's spelling of a time: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def as_event_detail(value: Any) -> Any:
    """A finding as an SDK returns it (times as datetimes) -> the JSON of the event's ``detail`` (ISO strings)."""
    if isinstance(value, datetime):
        return iso_millis(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): as_event_detail(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_event_detail(v) for v in value]
    return value


def macie_event(detail: Mapping[str, Any], *, publisher: str, region: str) -> dict[str, Any]:
    """The EventBridge event Macie publishes for ``detail`` in ``publisher``'s account and ``region``.

    Its id is derived from the finding id and its update time, so a finding reconciled twice (a run that
    failed after sending it) is the same event both times."""
    finding_id = detail.get("id")
    moment = updated_at(detail)
    seed = f"{finding_id}/{iso_millis(moment) if moment else ''}"
    return {
        "version": "0",
        "id": str(uuid.uuid5(_EVENT_NAMESPACE, seed)),
        "detail-type": MACIE_DETAIL_TYPE,
        "source": MACIE_SOURCE,
        "account": publisher,
        "time": (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": dict(detail),
    }


# --------------------------------------------------------------------------------------------------------
# Orchestration (adapters passed in)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileDependencies:
    macie: MacieFindings
    records: Records
    intake: IntakeSender
    watermarks: Watermarks
    administrator_id: str  # whose findings these are (the envelope's ``account``)
    regions: tuple[str, ...]
    policy: ReconcilePolicy = field(default_factory=ReconcilePolicy)
    clock: Clock = field(default=utcnow)


@dataclass(frozen=True)
class RegionReport:
    region: str
    since: str  # where the listing began (the watermark, or the back-fill's start)
    listed: int = 0
    known: int = 0  # already had a record
    recovered: int = 0  # had none: sent to the intake queue
    watermark: str | None = None  # where the watermark is after the run (None: none yet)
    error: str | None = None


@dataclass(frozen=True)
class ReconcileReport:
    regions: tuple[RegionReport, ...]

    @property
    def listed(self) -> int:
        return sum(r.listed for r in self.regions)

    @property
    def known(self) -> int:
        return sum(r.known for r in self.regions)

    @property
    def recovered(self) -> int:
        return sum(r.recovered for r in self.regions)

    @property
    def errors(self) -> tuple[RegionReport, ...]:
        return tuple(r for r in self.regions if r.error is not None)

    def counts(self) -> dict[str, int]:
        return {
            "FindingsListed": self.listed,
            "FindingsKnown": self.known,
            "FindingsRecovered": self.recovered,
            names.RECONCILE_ERRORS_METRIC: len(self.errors),
        }


class ReconcileError(MacieChatOpsError):
    """One or more regions could not be reconciled (``report``): their watermarks stay where they were."""

    def __init__(self, report: ReconcileReport) -> None:
        self.report = report
        listed = "; ".join(f"{r.region}: {r.error}" for r in report.errors)
        super().__init__(f"reconciliation failed in {len(report.errors)} region(s): {listed}")


@dataclass
class _Progress:
    region: str
    since: datetime
    listed: int = 0
    known: int = 0
    recovered: int = 0
    watermark: datetime | None = None

    def report(self, error: str | None = None) -> RegionReport:
        return RegionReport(
            self.region,
            iso_millis(self.since),
            self.listed,
            self.known,
            self.recovered,
            iso_millis(self.watermark) if self.watermark else None,
            error,
        )


def reconcile(deps: ReconcileDependencies) -> ReconcileReport:
    """One run over every region; raises :class:`ReconcileError` (with the report) when any region failed."""
    started = deps.clock()
    reports: list[RegionReport] = []
    for region in deps.regions:
        logger.thread_safe_append_keys(region=region)
        watermark = deps.watermarks.read(region)
        progress = _Progress(region, watermark or started - deps.policy.backfill, watermark=watermark)
        try:
            _reconcile_region(progress, started, deps)
            reports.append(progress.report())
            logger.info("region reconciled", extra={"listed": progress.listed, "recovered": progress.recovered})
        except Exception as exc:  # reported below and raised after the other regions
            logger.exception("region not reconciled: its watermark stays", extra={"error_type": type(exc).__name__})
            reports.append(progress.report(f"{type(exc).__name__}: {str(exc)[:500]}"))
        finally:
            logger.thread_safe_remove_keys(["region"])
    report = ReconcileReport(tuple(reports))
    if report.errors:
        raise ReconcileError(report)
    return report


def _reconcile_region(progress: _Progress, started: datetime, deps: ReconcileDependencies) -> None:
    token: str | None = None
    while True:
        ids, token = deps.macie.list_ids(
            progress.region, updated_since=progress.since, next_token=token, max_results=deps.policy.page_size
        )
        progress.listed += len(ids)
        latest = _hand_over(deps.macie.get(progress.region, ids), progress, deps) if ids else None
        # The whole page is with the intake now: the watermark may pass it, but never the run's start.
        if latest is not None:
            mark = min(latest, started)
            if progress.watermark is None or mark > progress.watermark:
                deps.watermarks.advance(progress.region, mark)
                progress.watermark = mark
        if not token:
            return


def _hand_over(findings: list[dict[str, Any]], progress: _Progress, deps: ReconcileDependencies) -> datetime | None:
    """Send each finding with no record to the intake; the latest update time of the page."""
    latest: datetime | None = None
    for detail in findings:
        moment = updated_at(detail)
        if moment is not None and (latest is None or moment > latest):
            latest = moment
        finding_id = detail.get("id")
        # A malformed id cannot have a record: the intake records (or logs) its rejection like an event's.
        if isinstance(finding_id, str) and FINDING_ID.fullmatch(finding_id) and deps.records.get(finding_id):
            progress.known += 1
            continue
        event = macie_event(detail, publisher=deps.administrator_id, region=progress.region)
        message_id = deps.intake.send(json.dumps(event, ensure_ascii=False))
        progress.recovered += 1
        logger.warning(
            "finding recovered: Macie holds it and no event delivered it",
            extra={
                "finding_id": str(finding_id)[:128],
                "message_id": message_id,
                "updated_at": detail.get("updatedAt"),
            },
        )
    return latest


# --------------------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MacieFindingsApi:
    """Macie's findings API through boto3 ``macie2`` clients, one per region (``client_for`` builds or caches them)."""

    client_for: Callable[[str], Any]

    def list_ids(
        self, region: str, *, updated_since: datetime, next_token: str | None, max_results: int
    ) -> tuple[list[str], str | None]:
        request: dict[str, Any] = {
            "findingCriteria": {"criterion": {"updatedAt": {"gte": int(updated_since.timestamp() * 1000)}}},
            "sortCriteria": {"attributeName": "updatedAt", "orderBy": "ASC"},
            "maxResults": max_results,
        }
        if next_token:
            request["nextToken"] = next_token
        response = self.client_for(region).list_findings(**request)
        return [str(i) for i in response.get("findingIds", [])], response.get("nextToken") or None

    def get(self, region: str, finding_ids: Sequence[str]) -> list[dict[str, Any]]:
        findings: list[dict[str, Any]] = []
        for start in range(0, len(finding_ids), PAGE_SIZE):
            batch = list(finding_ids[start : start + PAGE_SIZE])
            response = self.client_for(region).get_findings(findingIds=batch)
            findings.extend(as_event_detail(finding) for finding in response.get("findings", []))
        return findings


@dataclass(frozen=True)
class SqsIntake:
    """The intake queue, as the central rule delivers to it."""

    sqs: SQSClient
    queue_url: str

    def send(self, body: str) -> str:
        response = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
        return str(response.get("MessageId", "?"))


@dataclass(frozen=True)
class StateTableWatermarks:
    """The watermarks as items of the state table, keyed ``reconcile#<region>``: they carry none of the indexes'
    keys (no listing sees them) and ``FindingStore.get`` of such a key is None. A watermark only moves forward
    (a conditional write), whoever writes."""

    client: DynamoDBClient
    table_name: str
    clock: Clock = utcnow

    def read(self, region: str) -> datetime | None:
        response = self.client.get_item(TableName=self.table_name, Key=self._key(region), ConsistentRead=True)
        value = response.get("Item", {}).get("updated_through", {}).get("S")
        return parse_time(value)

    def advance(self, region: str, to: datetime) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(region),
                UpdateExpression="SET #through = :to, #type = :type, #region = :region, #at = :now",
                ConditionExpression="attribute_not_exists(#through) OR #through < :to",
                ExpressionAttributeNames={
                    "#through": "updated_through",
                    "#type": "item_type",
                    "#region": "region",
                    "#at": "written_at",
                },
                ExpressionAttributeValues={
                    ":to": {"S": iso_millis(to)},
                    ":type": {"S": WATERMARK_ITEM_TYPE},
                    ":region": {"S": region},
                    ":now": {"S": iso_millis(self.clock())},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return  # already at or past ``to``: a watermark never moves back

    @staticmethod
    def _key(region: str) -> dict[str, Any]:
        return {names.STATE_TABLE_KEY: {"S": f"{WATERMARK_PREFIX}{region}"}}
