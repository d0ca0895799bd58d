"""Security Hub in the sandbox: what moto lacks to serve it, and the updater's stream (docs/architecture.md §17).

moto 5.2.5 stores imported findings (BatchImportFindings) but has no ``BatchUpdateFindings`` and its
``GetFindings`` ignores every filter. :func:`install` adds both to its server, so boto3's own ``securityhub``
client works unchanged against the sandbox's endpoint: ``BatchUpdateFindings`` sets ``Workflow.Status`` and
``Note`` of the stored findings named by Id and ProductArn (others are listed as unprocessed,
``FindingNotFound``, as Security Hub does), in the caller's account and region; ``GetFindings`` applies the
string filters (``EQUALS``, ``PREFIX``, ``NOT_EQUALS``) of the fields the updater's findings are told apart by.
Security Hub must be enabled in that account and region (``InvalidAccessException`` otherwise). Installed once
per process: it only adds to moto, and changes nothing moto already answered but the unfiltered listing.

:func:`macie_asff` is the finding Macie would publish to Security Hub for a Macie event (the fields the demo and
the tests read), and :class:`SecurityHubLoop` runs the updater in the sandbox: Security Hub enabled in the
security account's regions, the state table's stream on, and the updater fed from it by a :class:`StreamPoller`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from macie_chatops.security_hub import macie_product_arn
from macie_chatops_sandbox.lambda_runtime import Function

if TYPE_CHECKING:
    from macie_chatops.config import Config
    from macie_chatops.store import FindingStore

log = logging.getLogger("macie_chatops_sandbox.securityhub")

WORKFLOW_STATUSES: Final = frozenset({"NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"})
# GetFindings filter name -> how to read it from a stored finding.
_FILTERABLE: Final[dict[str, Callable[[dict[str, Any]], Any]]] = {
    "Id": lambda f: f.get("Id"),
    "ProductArn": lambda f: f.get("ProductArn"),
    "AwsAccountId": lambda f: f.get("AwsAccountId"),
    "GeneratorId": lambda f: f.get("GeneratorId"),
    "Region": lambda f: f.get("Region"),
    "WorkflowStatus": lambda f: (f.get("Workflow") or {}).get("Status"),
    "RecordState": lambda f: f.get("RecordState"),
}

_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Teach moto's Security Hub ``BatchUpdateFindings`` and filtered ``GetFindings`` (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.securityhub import urls
        from moto.securityhub.responses import SecurityHubResponse

        urls.url_paths["{0}/findings/batchupdate$"] = SecurityHubResponse.dispatch
        SecurityHubResponse.batch_update_findings = _batch_update_findings  # type: ignore[attr-defined]
        SecurityHubResponse.get_findings = _get_findings  # type: ignore[method-assign]
        _installed = True


def _enabled_backend(response: Any, operation: str) -> Any:
    from moto.securityhub.exceptions import SecurityHubClientError

    backend = response.securityhub_backend
    if not backend.enabled:
        raise SecurityHubClientError("InvalidAccessException", "Account is not subscribed to AWS Security Hub")
    return backend


def _invalid(operation: str, message: str) -> Exception:
    from moto.securityhub.exceptions import InvalidInputException

    return InvalidInputException(op=operation, msg=message)


def _batch_update_findings(self: Any) -> str:
    params = json.loads(self.body or "{}")
    backend = _enabled_backend(self, "BatchUpdateFindings")
    identifiers = params.get("FindingIdentifiers") or []
    if not 1 <= len(identifiers) <= 100:
        raise _invalid("BatchUpdateFindings", "FindingIdentifiers must list 1 to 100 findings")
    workflow, note = params.get("Workflow"), params.get("Note")
    if workflow is not None and workflow.get("Status") not in WORKFLOW_STATUSES:
        raise _invalid("BatchUpdateFindings", f"Workflow.Status must be one of {sorted(WORKFLOW_STATUSES)}")
    if note is not None and not (note.get("Text") and note.get("UpdatedBy")):
        raise _invalid("BatchUpdateFindings", "Note needs Text and UpdatedBy")
    processed, unprocessed = [], []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for identifier in identifiers:
        stored = next(
            (
                f.data
                for f in backend.findings
                if f.id == identifier.get("Id") and f.data.get("ProductArn") == identifier.get("ProductArn")
            ),
            None,
        )
        if stored is None:
            unprocessed.append(
                {"FindingIdentifier": identifier, "ErrorCode": "FindingNotFound", "ErrorMessage": "Finding not found"}
            )
            continue
        if workflow is not None:
            stored["Workflow"] = {"Status": workflow["Status"]}
        if note is not None:
            stored["Note"] = {"Text": note["Text"], "UpdatedBy": note["UpdatedBy"], "UpdatedAt": now}
        processed.append(identifier)
    return json.dumps({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed})


def _matches(finding: dict[str, Any], filters: dict[str, Any]) -> bool:
    for name, conditions in filters.items():
        read = _FILTERABLE.get(name)
        if read is None:
            raise _invalid("GetFindings", f"the sandbox does not filter on {name}")
        value = read(finding)
        for condition in conditions:
            wanted, comparison = condition.get("Value"), condition.get("Comparison", "EQUALS")
            if comparison == "EQUALS" and value != wanted:
                return False
            if comparison == "NOT_EQUALS" and value == wanted:
                return False
            if comparison == "PREFIX" and not (isinstance(value, str) and value.startswith(str(wanted))):
                return False
            if comparison not in {"EQUALS", "NOT_EQUALS", "PREFIX"}:
                raise _invalid("GetFindings", f"the sandbox does not compare with {comparison}")
    return True


def _get_findings(self: Any) -> str:
    params = json.loads(self.body or "{}")
    backend = _enabled_backend(self, "GetFindings")
    limit = int(params.get("MaxResults") or 100)
    if not 1 <= limit <= 100:
        raise _invalid("GetFindings", "MaxResults must be a number between 1 and 100")
    filters = params.get("Filters") or {}
    found = [f.data for f in backend.findings if _matches(f.data, filters)]
    return json.dumps({"Findings": found[:limit]})


def _asff_type(macie_type: str) -> str:
    """The ASFF finding type namespace of a Macie finding type (sensitive data, or a bucket's policy)."""
    if macie_type.startswith("Policy:"):
        return f"Software and Configuration Checks/AWS Security Best Practices/{macie_type}"
    return f"Sensitive Data Identifications/{macie_type}"


def macie_asff(event: dict[str, Any]) -> dict[str, Any]:
    """The finding Macie publishes to Security Hub for this Macie event (ASFF; the fields the sandbox reads)."""
    detail = event["detail"]
    region = detail.get("region") or event["region"]
    resources = detail.get("resourcesAffected") or {}
    bucket = (resources.get("s3Bucket") or {}).get("name", "")
    key = (resources.get("s3Object") or {}).get("key")
    resource = (
        {"Type": "AwsS3Object", "Id": f"arn:aws:s3:::{bucket}/{key}", "Region": region}
        if key is not None
        else {"Type": "AwsS3Bucket", "Id": f"arn:aws:s3:::{bucket}", "Region": region}
    )
    return {
        "SchemaVersion": "2018-10-08",
        "Id": detail["id"],
        "ProductArn": macie_product_arn(region),
        "ProductName": "Macie",
        "CompanyName": "Amazon",
        "Region": region,
        "GeneratorId": "aws/macie",
        "AwsAccountId": detail["accountId"],
        "Types": [_asff_type(str(detail["type"]))],
        "CreatedAt": detail["createdAt"],
        "UpdatedAt": detail.get("updatedAt") or detail["createdAt"],
        "Severity": {"Label": str(detail["severity"]["description"]).upper()},
        "Title": detail.get("title") or detail["type"],
        "Description": detail.get("description") or detail["type"],
        "Resources": [resource],
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE",
    }


def workflow_of(client: Any, finding_id: str, region: str) -> tuple[str, str] | None:
    """(workflow status, note text) of the Macie finding in Security Hub, through boto3's own client."""
    found = client.get_findings(
        Filters={
            "Id": [{"Value": finding_id, "Comparison": "EQUALS"}],
            "ProductArn": [{"Value": macie_product_arn(region), "Comparison": "EQUALS"}],
        }
    )["Findings"]
    if not found:
        return None
    return str(found[0].get("Workflow", {}).get("Status", "")), str(found[0].get("Note", {}).get("Text", ""))


# --------------------------------------------------------------------------------------------------------
# The updater's stream
# --------------------------------------------------------------------------------------------------------


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """The event Lambda's DynamoDB event source mapping delivers for one batch of stream records."""
    return {"Records": [{**record, "eventSourceARN": stream_arn} for record in records]}


def failed_from(response: Any, records: list[dict[str, Any]]) -> int | None:
    """The index of the first record to retry, from a ReportBatchItemFailures answer (None: all done)."""
    sequence = [r["dynamodb"]["SequenceNumber"] for r in records]
    if not isinstance(response, dict):
        return 0
    failures = response.get("batchItemFailures") or []
    indexes = [
        sequence.index(item["itemIdentifier"])
        for item in failures
        if isinstance(item, dict) and item.get("itemIdentifier") in sequence
    ]
    if len(indexes) != len(failures):  # an identifier Lambda cannot place: the whole batch again
        return 0
    return min(indexes) if indexes else None


class StreamPoller:
    """Deliver a DynamoDB stream to a function, like Lambda's event source mapping: in order, from the first
    failed record of a batch again (ReportBatchItemFailures) up to ``retry_attempts`` times, then the batch's
    description to ``on_failure`` (the on-failure destination) and on to the next records."""

    def __init__(
        self,
        *,
        function: Function,
        streams: Any,
        stream_arn: str,
        on_failure: Callable[[dict[str, Any]], None],
        batch_size: int = 10,
        retry_attempts: int = 3,
        retry_delay_s: float = 0.2,
        poll_s: float = 0.1,
    ) -> None:
        self.function = function
        self._streams = streams
        self.stream_arn = stream_arn
        self._on_failure = on_failure
        self.batch_size = batch_size
        self.retry_attempts = retry_attempts
        self.retry_delay_s = retry_delay_s
        self.poll_s = poll_s
        self.delivered = 0  # records the function finished (success, or given up on)
        self.given_up = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        shard = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]
        iterator = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        self._thread = threading.Thread(target=self._run, args=(iterator,), name="security-hub-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError("the stream poller did not stop")
            self._thread = None

    def _run(self, iterator: str) -> None:
        while not self._stop.is_set():
            try:
                response = self._streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
                iterator = response["NextShardIterator"]
                records: list[dict[str, Any]] = response.get("Records", [])
                if records:
                    self._deliver(records)
                else:
                    self._stop.wait(self.poll_s)
            except Exception:  # the poller outlives a broken endpoint; the error is kept and logged
                message = traceback.format_exc()
                log.error("stream poller: %s", message)
                self.errors.append(message)
                self._stop.wait(self.poll_s)

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        pending, retries = records, 0
        while pending:
            try:
                start = failed_from(
                    self.function.handler(stream_event(pending, self.stream_arn), self.function.context()), pending
                )
            except Exception:  # a function error: the whole batch again
                log.error("%s raised:\n%s", self.function.name, traceback.format_exc())
                start = 0
            done = pending if start is None else pending[:start]
            self.delivered += len(done)
            if start is None:
                return
            pending = pending[start:]
            retries += 1
            if retries > self.retry_attempts:
                self._give_up(pending)
                return
            time.sleep(self.retry_delay_s)

    def _give_up(self, records: list[dict[str, Any]]) -> None:
        sequence = [r["dynamodb"]["SequenceNumber"] for r in records]
        self._on_failure(
            {
                "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self.function.name},
                "DDBStreamBatchInfo": {
                    "streamArn": self.stream_arn,
                    "startSequenceNumber": sequence[0],
                    "endSequenceNumber": sequence[-1],
                    "batchSize": len(records),
                },
            }
        )
        self.delivered += len(records)
        self.given_up += len(records)


class SecurityHubLoop:
    """The sandbox's Security Hub: enabled in the security account (the Security Hub administrator the updater
    acts as) in every region of the config, the state table's stream on, and the updater reading it."""

    def __init__(self, *, accounts: Any, security_account: str, regions: tuple[str, ...], table_name: str,
                 function: Function, retry_attempts: int = 3) -> None:  # fmt: skip
        self._accounts = accounts
        self.security_account = security_account
        self.regions = regions
        self.table_name = table_name
        self.function = function
        self.retry_attempts = retry_attempts
        self.dead_letters: list[dict[str, Any]] = []  # the on-failure destination (the stack's SQS DLQ)
        self.poller: StreamPoller | None = None

    def client(self, region: str) -> Any:
        return self._accounts.client("securityhub", self.security_account, region)

    def start(self) -> None:
        install()
        for region in self.regions:
            self.client(region).enable_security_hub(EnableDefaultStandards=False)
        home = self.function.region
        dynamodb = self._accounts.client("dynamodb", self.security_account, home)
        stream_arn = dynamodb.update_table(
            TableName=self.table_name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]["LatestStreamArn"]
        self.poller = StreamPoller(
            function=self.function,
            streams=self._accounts.client("dynamodbstreams", self.security_account, home),
            stream_arn=stream_arn,
            on_failure=self.dead_letters.append,
            retry_attempts=self.retry_attempts,
        )
        self.poller.start()

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
            self.poller = None

    def publish(self, event: dict[str, Any]) -> bool:
        """What Macie does with a finding it publishes: import it into Security Hub (only a well-formed finding in
        a region of the config; hostile test events are Macie's EventBridge input only). True if imported."""
        from macie_chatops.finding import Finding, parse_event

        parsed = parse_event(json.dumps(event))
        if not isinstance(parsed, Finding) or parsed.region not in self.regions:
            return False
        self.import_finding(event)
        return True

    def import_finding(self, event: dict[str, Any]) -> dict[str, Any]:
        """Publish the Macie event's finding to Security Hub, as Macie does (in the finding's region)."""
        finding = macie_asff(event)
        answer = self.client(finding["Region"]).batch_import_findings(Findings=[finding])
        if answer.get("FailedCount"):
            raise RuntimeError(f"Security Hub refused the finding: {answer.get('FailedFindings')}")
        return finding

    def workflow(self, finding_id: str, region: str) -> tuple[str, str] | None:
        return workflow_of(self.client(region), finding_id, region)


def with_security_hub(config: Config) -> Config:
    """``config`` with Security Hub in the loop (the demo's: it shows the outcomes reaching Security Hub)."""
    from macie_chatops.config import SecurityHubSettings

    return config.model_copy(update={"security_hub": SecurityHubSettings(enabled=True)})


def outcome_lines(
    loop: SecurityHubLoop, store: FindingStore, findings: list[tuple[str, str, str]], *, timeout_s: float = 30.0
) -> list[tuple[str, str]]:
    """For each (label, finding id, region): once the updater has told Security Hub the finding's outcome, the
    status and note Security Hub shows, read back through boto3's securityhub client. Raises TimeoutError when
    Security Hub does not show it in time."""
    from macie_chatops.security_hub import update_for

    lines = []
    for label, finding_id, region in findings:
        record = store.get(finding_id)
        update = update_for(record) if record is not None else None
        if record is None or update is None:
            continue
        deadline = time.monotonic() + timeout_s
        shown = loop.workflow(finding_id, region)
        while shown is None or shown[0] != update.status.value:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{label}: Security Hub shows {shown} after {timeout_s:.0f}s, not {update.status}")
            time.sleep(0.1)
            shown = loop.workflow(finding_id, region)
        lines.append((label, f"{record.state.value} -> {shown[0]}: {shown[1]}"))
    return lines
