"""Security Hub in the loop (architecture §17): the updater handler on the state table's real stream (moto), the
real boto3 ``securityhub`` client against the sandbox's BatchUpdateFindings/GetFindings, and a real move."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Action, Config, load_config
from macie_chatops.handlers import security_hub as handler
from macie_chatops.security_hub import SecurityHubUpdateError, StateChange, SyncDependencies, Workflow, sync
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore, RecordUpdates, create_state_table
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.securityhub import install, macie_asff, workflow_of
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import LambdaContext, aws_client, emf_metrics, review_summary
from tests.conftest import ROOT, AwsSandbox, load_event
from tests.functional.remediator_world import TABLE, job, remediator_world

QUARANTINE = {"bucket": "macie-chatops-quarantine-345678901234-us-east-1", "key": "f/exports/customers.csv"}


def stream_records(table: str, region: str = "us-east-1") -> list[dict[str, Any]]:
    """Every record of the table's stream so far, as the event source mapping reads them."""
    streams = aws_client("dynamodbstreams", region)
    arn = aws_client("dynamodb", region).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records: list[dict[str, Any]] = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [{**record, "eventSourceARN": arn} for record in records]


def enable_stream(table: str) -> None:
    aws_client("dynamodb").update_table(
        TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    )


def run_updater(table: str) -> list[str]:
    """The real handler over the whole stream; the sequence numbers it reported as failed."""
    context = LambdaContext(names.SECURITY_HUB_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60)
    response = handler.lambda_handler({"Records": stream_records(table)}, context)
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def publish_to_security_hub(event: dict[str, Any]) -> None:
    """What Macie does when it publishes a finding to Security Hub (the hub enabled in the finding's region)."""
    hub = aws_client("securityhub", event["region"])
    hub.enable_security_hub(EnableDefaultStandards=False)
    assert hub.batch_import_findings(Findings=[macie_asff(event)])["FailedCount"] == 0


def workflow(summary: FindingSummary) -> tuple[str, str] | None:
    return workflow_of(aws_client("securityhub", summary.region), summary.finding_id, summary.region)


@dataclass
class HubWorld:
    config: Config
    store: FindingStore
    table: str

    def seed(self, event_name: str, path: tuple[State, ...], updates: RecordUpdates | None = None) -> FindingSummary:
        """The event's finding recorded and moved along ``path`` (``updates`` with the last step)."""
        summary = review_summary(self.config, load_event(event_name))
        summary = replace(summary, finding_id=f"{summary.finding_id[:20]}{uuid.uuid4().hex[:12]}")
        self.store.create_received(
            summary.finding_id, event_id="e", action=Action.REVIEW, reason="review", actor="finding-handler",
            account_id=summary.account_id, team=summary.team, channel=summary.channel, summary=summary,
        )  # fmt: skip
        for index, step in enumerate(path):
            current = self.store.get(summary.finding_id)
            assert current is not None
            last = index == len(path) - 1
            result = self.store.transition(
                summary.finding_id, expected={current.state}, target=step,
                actor="U0ALICE" if step in {State.APPROVED, State.DISMISSED} else "seed", event="seed",
                updates=(updates if last else None) or ({"approver": "U0ALICE"} if step is State.APPROVED else None),
            )  # fmt: skip
            assert result.applied
        return summary

    def record(self, finding_id: str) -> FindingRecord:
        record = self.store.get(finding_id)
        assert record is not None
        return record


@pytest.fixture
def hub(aws: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubWorld]:
    install()
    table = f"hub-{uuid.uuid4().hex[:8]}"
    create_state_table(aws_client("dynamodb"), table)
    enable_stream(table)
    monkeypatch.setenv(names.ENV_STATE_TABLE, table)
    monkeypatch.setenv(names.ENV_SLACK_SECRET_ARN, "unused-by-the-updater")
    handler.clear_caches()
    try:
        yield HubWorld(load_config(ROOT / "accounts.yaml"), FindingStore(aws_client("dynamodb"), table), table)
    finally:
        handler.clear_caches()


APPROVED_PATH = (State.PENDING_APPROVAL, State.APPROVED)

OUTCOMES = [
    pytest.param(
        (*APPROVED_PATH, State.QUARANTINED),
        {"approver": "U0ALICE", "outcome": "quarantined", "quarantine": {**QUARANTINE, "version_id": "v9"}},
        "RESOLVED",
        ("approved by Slack user U0ALICE", f"s3://{QUARANTINE['bucket']}/{QUARANTINE['key']} (version v9)"),
        id="quarantined-resolved",
    ),
    pytest.param(
        (State.PENDING_APPROVAL, State.DISMISSED),
        None,
        "SUPPRESSED",
        ("Dismissed by U0ALICE (team payments)", "no quarantine"),
        id="dismissed-suppressed",
    ),
    pytest.param((State.NOTIFIED,), None, "NOTIFIED", ("told in Slack (policy: notify)",), id="notified"),
    pytest.param((State.PENDING_APPROVAL,), None, "NOTIFIED", ("Awaiting approval",), id="pending-notified"),
    pytest.param(
        (*APPROVED_PATH, State.BLOCKED),
        {"outcome": "locked", "outcome_detail": "Object Lock retention until 2030: both copies kept"},
        "NEW",
        ("Not quarantined by macie-chatops (locked): Object Lock retention until 2030",),
        id="blocked-stays-new",
    ),
    pytest.param(
        (*APPROVED_PATH, State.FAILED),
        {"outcome": "assume_role_denied", "error": "AccessDenied assuming the member role in 345678901234"},
        "NEW",
        ("failed (assume_role_denied): AccessDenied assuming the member role",),
        id="failed-stays-new",
    ),
]


@pytest.mark.parametrize(("path", "updates", "status", "notes"), OUTCOMES)
def test_each_outcome_sets_its_workflow_status_and_note(
    hub: HubWorld, path: tuple[State, ...], updates: RecordUpdates | None, status: str, notes: tuple[str, ...]
) -> None:
    # GIVEN a finding Macie published to Security Hub, recorded and moved to its outcome
    summary = hub.seed("personal-review", path, updates)
    publish_to_security_hub(load_event("personal-review") | {"detail": _detail(summary)})

    # WHEN the updater reads the state table's stream
    failed = run_updater(hub.table)

    # THEN Security Hub shows the outcome's workflow status, with a note saying why
    assert failed == []
    shown = workflow(summary)
    assert shown is not None and shown[0] == status
    for note in notes:
        assert note in shown[1]
    # AND the finding's audit trail says Security Hub was told
    last = hub.record(summary.finding_id).audit[-1]
    assert (last.event, last.outcome) == ("security_hub_updated", "securityhub_updated")
    assert f"{path[-1].value} -> {status}" in last.detail


def _detail(summary: FindingSummary) -> dict[str, Any]:
    detail = dict(load_event("personal-review")["detail"])
    detail["id"] = summary.finding_id
    return detail


def test_the_update_goes_to_the_findings_region(hub: HubWorld) -> None:
    # GIVEN a finding of eu-west-1 (automated discovery), in Security Hub there, dismissed
    summary = hub.seed("administrator-discovery-eu-west-1", (State.PENDING_APPROVAL, State.DISMISSED))
    event = load_event("administrator-discovery-eu-west-1")
    publish_to_security_hub(event | {"detail": {**event["detail"], "id": summary.finding_id}})

    # WHEN the updater runs (in the home region, us-east-1)
    assert run_updater(hub.table) == []

    # THEN the finding is SUPPRESSED in eu-west-1's Security Hub
    shown = workflow(summary)
    assert shown is not None and shown[0] == "SUPPRESSED"


def test_states_security_hub_is_not_told_about_are_skipped(hub: HubWorld) -> None:
    # GIVEN an ignored finding and an approved one (an approval is no outcome yet)
    ignored = hub.seed("personal-review", (State.IGNORED,))
    approved = hub.seed("personal-review", APPROVED_PATH)
    before = hub.record(approved.finding_id).audit

    # WHEN the updater reads the stream (Security Hub is not even enabled)
    failed = run_updater(hub.table)

    # THEN nothing failed and nothing was audited for the ignored finding; the approval's PENDING_APPROVAL
    # step was the only one Security Hub had to hear about, and it failed (no hub), audited
    assert all(e.event != "security_hub_updated" for e in hub.record(ignored.finding_id).audit)
    after = hub.record(approved.finding_id).audit
    assert [e.event for e in after[len(before) :]] == ["security_hub_update_failed"]
    assert len(failed) == 1


def test_security_hub_unavailable_the_move_happens_the_update_is_retried_and_recorded(
    aws: AwsSandbox,
    slack: SlackStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    install()
    with remediator_world(aws, slack, tmp_path, monkeypatch) as world:
        # GIVEN an approved finding, the state table's stream on, and no Security Hub in the region
        enable_stream(TABLE)
        seeded = world.seed("hub-move-1")
        handler.clear_caches()

        # WHEN the remediator quarantines it, then the updater reads the stream
        assert world.invoke(job("quarantine", seeded.finding_id)) == []
        failed = run_updater(TABLE)

        # THEN the move happened and is recorded as it would be without Security Hub
        record = world.record(seeded.finding_id)
        assert record.state is State.QUARANTINED
        assert world.quarantine_copies(seeded) == 1
        # AND the update failed, is audited on the finding, counted, and handed back for a retry
        assert failed, "the stream records must return for a retry"
        audit = [e for e in record.audit if e.event.startswith("security_hub")]
        assert audit and all(e.outcome == "securityhub_failed" for e in audit)
        assert "InvalidAccessException" in audit[-1].detail
        metrics = emf_metrics(capsys.readouterr().out)
        assert {"name": names.SECURITY_HUB_UPDATES_METRIC, "result": "failed"}.items() <= next(
            m for m in metrics if m["name"] == names.SECURITY_HUB_UPDATES_METRIC
        ).items()

        # WHEN Security Hub is back (enabled, Macie's finding in it) and the stream records are retried
        event = load_event("personal-review")
        publish_to_security_hub(event | {"detail": {**event["detail"], "id": seeded.finding_id}})
        assert run_updater(TABLE) == []

        # THEN the finding is RESOLVED, with a note naming the approver and the quarantine location
        shown = workflow(seeded.summary)
        assert shown is not None and shown[0] == Workflow.RESOLVED.value
        quarantine = world.record(seeded.finding_id).quarantine
        assert quarantine is not None
        assert "U0ALICE" in shown[1] and f"s3://{quarantine['bucket']}/{quarantine['key']}" in shown[1]
        # AND the record is unchanged by all this but for the audit
        assert world.record(seeded.finding_id).state is State.QUARANTINED
        assert world.record(seeded.finding_id).audit[-1].event == "security_hub_updated"


class _Unreachable:
    def batch_update_findings(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="https://securityhub.us-east-1.amazonaws.com")


class _Metrics:
    def __init__(self) -> None:
        self.counts: list[tuple[str, dict[str, str]]] = []

    def count(self, name: str, **dimensions: str) -> None:
        self.counts.append((name, dimensions))


def test_an_unreachable_security_hub_raises_after_recording_the_failure(hub: HubWorld) -> None:
    # GIVEN a dismissed finding and a Security Hub that cannot be reached
    summary = hub.seed("personal-review", (State.PENDING_APPROVAL, State.DISMISSED))
    metrics = _Metrics()
    deps = SyncDependencies(store=hub.store, security_hub=lambda region: _Unreachable(), metrics=metrics)

    # WHEN the updater is given the change
    with pytest.raises(SecurityHubUpdateError, match="EndpointConnectionError"):
        sync(StateChange(State.PENDING_APPROVAL, hub.record(summary.finding_id)), deps)

    # THEN the finding keeps its state, the failure is on its audit trail and counted
    record = hub.record(summary.finding_id)
    assert record.state is State.DISMISSED
    assert record.audit[-1].event == "security_hub_update_failed"
    assert "DISMISSED -> SUPPRESSED" in record.audit[-1].detail
    assert metrics.counts == [(names.SECURITY_HUB_UPDATES_METRIC, {"result": "failed"})]


def test_a_finding_security_hub_does_not_know_is_a_failure_not_a_success(hub: HubWorld) -> None:
    # GIVEN a quarantined finding that Macie never published to Security Hub (the hub is enabled)
    aws_client("securityhub").enable_security_hub(EnableDefaultStandards=False)
    summary = hub.seed(
        "personal-review", (*APPROVED_PATH, State.QUARANTINED), {"quarantine": QUARANTINE, "outcome": "quarantined"}
    )

    # WHEN the updater runs
    failed = run_updater(hub.table)

    # THEN Security Hub's FindingNotFound is recorded and the record returns for a retry
    assert failed
    last = hub.record(summary.finding_id).audit[-1]
    assert last.event == "security_hub_update_failed" and "FindingNotFound" in last.detail


def _poller_world(table: str, handler_fn: Any) -> tuple[Any, list[dict[str, Any]]]:
    from macie_chatops_sandbox.lambda_runtime import Function
    from macie_chatops_sandbox.securityhub import StreamPoller

    arn = aws_client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    given_up: list[dict[str, Any]] = []
    function = Function("stream-test", handler_fn, 10.0, "us-east-1", "123456789012")
    poller = StreamPoller(
        function=function,
        streams=aws_client("dynamodbstreams"),
        stream_arn=arn,
        on_failure=given_up.append,
        retry_attempts=2,
        retry_delay_s=0.0,
        poll_s=0.02,
    )
    return poller, given_up


def _wait(condition: Any, what: str) -> None:
    import time

    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_sandboxs_stream_poller_retries_from_the_first_failed_record(hub: HubWorld) -> None:
    # GIVEN a stream of two findings' records, and a function that fails the second finding's records once
    first = hub.seed("personal-review", (State.NOTIFIED,))
    second = hub.seed("personal-review", (State.NOTIFIED,))
    seen: list[str] = []
    failed_once: set[str] = set()

    def function(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            key = record["dynamodb"]["Keys"]["finding_id"]["S"]
            sequence = record["dynamodb"]["SequenceNumber"]
            seen.append(key)
            if key == second.finding_id and sequence not in failed_once:
                failed_once.add(sequence)
                failures.append({"itemIdentifier": sequence})
        return {"batchItemFailures": failures}

    poller, given_up = _poller_world(hub.table, function)
    # WHEN the poller plays the event source mapping
    poller.start()
    try:
        _wait(lambda: poller.delivered == 4, "all four records delivered")
    finally:
        poller.stop()
    # THEN the first finding's records were delivered once, the second's again from its first failed record
    assert seen.count(first.finding_id) == 2
    assert seen.count(second.finding_id) == 2 + 2  # its two records, then both again from the first that failed
    assert given_up == [] and poller.errors == []


def test_the_sandboxs_stream_poller_gives_up_after_its_retries(hub: HubWorld) -> None:
    # GIVEN one finding's records and a function that always raises
    hub.seed("personal-review", (State.NOTIFIED,))

    def function(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("Security Hub is down")

    poller, given_up = _poller_world(hub.table, function)
    # WHEN the poller has retried the batch as often as it may
    poller.start()
    try:
        _wait(lambda: bool(given_up), "the batch given up")
    finally:
        poller.stop()
    # THEN the batch is described in the on-failure destination, as Lambda's mapping describes it
    assert given_up[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert given_up[0]["DDBStreamBatchInfo"]["batchSize"] == 2
    assert poller.given_up == 2
