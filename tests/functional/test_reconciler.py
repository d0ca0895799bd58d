"""The reconciler against the Macie stand-in on moto: paging, the watermark, a failure mid-page, and a finding that
arrives both by its event and by reconciliation; recovered findings go through the real finding handler."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID

from macie_chatops import names
from macie_chatops.config import load_config
from macie_chatops.finding import Finding, parse_event
from macie_chatops.handlers import intake as intake_handler
from macie_chatops.handlers import reconciler as handler
from macie_chatops.reconciler import (
    MacieFindingsApi,
    ReconcileDependencies,
    ReconcileError,
    ReconcilePolicy,
    ReconcileReport,
    SqsIntake,
    StateTableWatermarks,
    iso_millis,
    reconcile,
)
from macie_chatops.states import State
from macie_chatops.store import FindingStore
from macie_chatops_sandbox import macie_standin
from macie_chatops_sandbox.macie_standin import MacieStandIn
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import (
    LambdaContext,
    SqsDelivery,
    aws_client,
    create_remediation_queue,
    emf_metrics,
    invoke_batch,
    provision_handler,
)
from tests.conftest import ROOT, AwsSandbox, load_event

TABLE = "reconciler-test-findings"
US, EU = "us-east-1", "eu-west-1"
# The credentials the aws fixture sets are moto's default account: the Macie administrator the reconciler reads.
ADMINISTRATOR = DEFAULT_ACCOUNT_ID
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class Delivery(SqsDelivery):
    queue_name = names.INTAKE_QUEUE_NAME
    sender_id = "AIDAEVENTBRIDGE"


def finding(template: str, number: int, updated: datetime, *, region: str = US) -> dict[str, Any]:
    """A copy of a fixture's finding with its own id, object and update time, in ``region``."""
    detail: dict[str, Any] = load_event(template)["detail"]
    detail["id"] = f"{number:032x}"
    s3_object = detail["resourcesAffected"]["s3Object"]
    s3_object["key"] = f"{s3_object['key']}.{number}"  # one object version per finding: no duplicates
    detail["updatedAt"] = iso_millis(updated)
    detail["region"] = region
    return detail


@dataclass
class World:
    macie: MacieStandIn
    store: FindingStore
    sqs: Any
    intake_url: str
    slack: SlackStandIn

    def hold(self, *details: dict[str, Any]) -> None:
        for detail in details:
            self.macie.put(ADMINISTRATOR, detail["region"], detail)

    def deps(
        self,
        *,
        clock: datetime = NOW,
        page_size: int = 50,
        intake: Any = None,
        regions: tuple[str, ...] = (US, EU),
    ) -> ReconcileDependencies:
        return ReconcileDependencies(
            macie=MacieFindingsApi(lambda region: aws_client("macie2", region)),
            records=self.store,
            intake=intake or SqsIntake(self.sqs, self.intake_url),
            watermarks=StateTableWatermarks(aws_client("dynamodb"), TABLE),
            administrator_id="210987654321",
            regions=regions,
            policy=ReconcilePolicy(page_size=page_size),
            clock=lambda: clock,
        )

    def queued(self) -> list[str]:
        """Take every message off the intake queue (its bodies)."""
        bodies: list[str] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.intake_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = batch.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.intake_url, ReceiptHandle=message["ReceiptHandle"])

    def intake(self, bodies: list[str]) -> None:
        """The finding handler on every body, ten per batch, as the intake queue's event source runs it."""
        for start in range(0, len(bodies), 10):
            context = LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60)
            assert (
                invoke_batch(intake_handler.lambda_handler, tuple(map(Delivery, bodies[start : start + 10])), context)
                == []
            )

    def watermark(self, region: str) -> datetime | None:
        return StateTableWatermarks(aws_client("dynamodb"), TABLE).read(region)

    def records(self) -> list[dict[str, Any]]:
        items = aws_client("dynamodb").scan(TableName=TABLE)["Items"]
        return [item for item in items if "item_type" not in item]


@pytest.fixture
def macie(aws: AwsSandbox) -> Iterator[MacieStandIn]:
    macie_standin.install()
    macie_standin.STANDIN.clear()
    try:
        yield macie_standin.STANDIN
    finally:
        macie_standin.uninstall()


@pytest.fixture
def world(
    aws: AwsSandbox, macie: MacieStandIn, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    resources = provision_handler(
        config=load_config(ROOT / "accounts.yaml"),
        config_dir=tmp_path,
        table=TABLE,
        slack=slack,
        setenv=monkeypatch.setenv,
        queue_url=create_remediation_queue(aws.region),
        region=aws.region,
    )
    sqs = aws_client("sqs")
    intake_url = sqs.create_queue(QueueName=names.INTAKE_QUEUE_NAME)["QueueUrl"]
    monkeypatch.setenv(names.ENV_INTAKE_QUEUE_URL, intake_url)
    intake_handler.clear_caches()
    handler.clear_caches()
    try:
        yield World(macie, resources.store, sqs, intake_url, slack)
    finally:
        intake_handler.clear_caches()
        handler.clear_caches()


class FailingIntake:
    """The intake queue, refusing the ``fail_at``-th send (counting from 1) once."""

    def __init__(self, queue: SqsIntake, fail_at: int) -> None:
        self.queue = queue
        self.fail_at = fail_at
        self.sends = 0

    def send(self, body: str) -> str:
        self.sends += 1
        if self.sends == self.fail_at:
            raise ConnectionError("the intake queue could not be reached")
        return self.queue.send(body)


# -- paging and hand-over -------------------------------------------------------------------------------------


def test_every_page_is_listed_and_each_unknown_finding_goes_to_the_intake_as_macies_event(world: World) -> None:
    # GIVEN 120 findings in Macie (three pages of 50), none with a record
    start = NOW - timedelta(days=2)
    held = [finding("financial-low", n, start + timedelta(seconds=n)) for n in range(120)]
    world.hold(*held)
    # WHEN the reconciler runs
    report = reconcile(world.deps())
    # THEN every finding was listed and sent once, in Macie's update order, each as the event Macie publishes
    assert (report.listed, report.known, report.recovered) == (120, 0, 120)
    assert world.macie.calls == {"ListFindings": 3 + 1, "GetFindings": 3}  # + the empty eu-west-1 listing
    bodies = world.queued()
    events = [json.loads(body) for body in bodies]
    assert [e["detail"]["id"] for e in events] == [d["id"] for d in held]
    parsed = parse_event(bodies[0])
    assert isinstance(parsed, Finding) and parsed.id == held[0]["id"]
    assert (events[0]["source"], events[0]["detail-type"], events[0]["account"]) == (
        "aws.macie",
        "Macie Finding",
        "210987654321",
    )
    # (the SDK gives times back in Macie's millisecond spelling and leaves nulls out; the object is the same)
    sent, original = events[0]["detail"]["resourcesAffected"], held[0]["resourcesAffected"]
    assert sent["s3Bucket"]["name"] == original["s3Bucket"]["name"]
    fields = ("key", "versionId", "eTag", "size")
    assert [sent["s3Object"][f] for f in fields] == [original["s3Object"][f] for f in fields]
    assert sent["s3Object"]["lastModified"] == "2026-11-20T09:58:11.000Z"
    # AND the watermark is the last finding's update; eu-west-1, with nothing listed, has none
    assert world.watermark(US) == start + timedelta(seconds=119)
    assert world.watermark(EU) is None
    # AND the watermark is no finding: FindingStore.get does not read it, no listing shows it
    assert world.store.get(f"reconcile#{US}") is None
    assert world.store.pending_approvals() == []


def test_findings_with_a_record_are_counted_as_known_and_not_sent(world: World) -> None:
    # GIVEN two findings in Macie, one of which was delivered by its event and has a record
    delivered, lost = (finding("personal-review", n, NOW - timedelta(hours=n + 1)) for n in (1, 2))
    world.hold(delivered, lost)
    world.intake([json.dumps({**load_event("personal-review"), "detail": delivered})])
    # WHEN the reconciler runs
    report = reconcile(world.deps())
    # THEN only the lost one is sent
    assert (report.listed, report.known, report.recovered) == (2, 1, 1)
    assert [json.loads(body)["detail"]["id"] for body in world.queued()] == [lost["id"]]


def test_recovered_findings_get_the_decisions_of_their_events_archived_and_policy_findings_included(
    world: World,
) -> None:
    # GIVEN a review, an auto, an archived and a policy finding in Macie, none delivered
    templates = ["personal-review", "credentials-auto", "archived-finding", "policy-s3object-null"]
    held = []
    for n, name in enumerate(templates):
        detail = dict(load_event(name)["detail"])
        detail["updatedAt"] = iso_millis(NOW - timedelta(minutes=10 - n))
        held.append(detail)
    world.hold(*held)
    # WHEN the reconciler runs and the finding handler takes what it sent
    reconcile(world.deps())
    world.intake(world.queued())
    # THEN each record is what its event gives: review waits, auto approved, archived and policy ignored
    states = {d["id"]: world.store.get(d["id"]) for d in held}
    assert [states[d["id"]].state for d in held] == [  # type: ignore[union-attr]
        State.PENDING_APPROVAL,
        State.APPROVED,
        State.IGNORED,
        State.IGNORED,
    ]
    assert len(world.slack.messages("C0PAYMENTS")) == 2  # the review and the auto message


# -- the watermark ---------------------------------------------------------------------------------------------


def test_the_first_run_back_fills_seven_days_and_the_next_run_starts_at_the_watermark(world: World) -> None:
    # GIVEN a finding updated 8 days ago and one 6 days ago
    old, recent = (
        finding("financial-low", 1, NOW - timedelta(days=8)),
        finding("financial-low", 2, NOW - timedelta(days=6)),
    )
    world.hold(old, recent)
    # WHEN the first run reconciles and the finding handler takes what was sent
    first = reconcile(world.deps())
    world.intake(world.queued())
    # THEN only the one within the back-fill was listed; the watermark is its update time
    assert (first.listed, first.recovered) == (1, 1)
    assert world.watermark(US) == NOW - timedelta(days=6)
    # WHEN a new finding appears and the next run (an hour later) reconciles
    newer = finding("financial-low", 3, NOW + timedelta(minutes=30))
    world.hold(newer)
    second = reconcile(world.deps(clock=NOW + timedelta(hours=1)))
    # THEN it lists from the watermark: the finding at the watermark again (known now) and the new one
    assert (second.listed, second.known, second.recovered) == (2, 1, 1)
    assert [json.loads(body)["detail"]["id"] for body in world.queued()] == [newer["id"]]
    assert world.watermark(US) == NOW + timedelta(minutes=30)


def test_the_watermark_never_passes_the_start_of_the_run(world: World) -> None:
    # GIVEN a finding whose update is after the run began (it changed while the listing ran)
    world.hold(finding("financial-low", 1, NOW + timedelta(minutes=5)))
    # WHEN the run that began at NOW reconciles it
    reconcile(world.deps())
    # THEN the watermark stops at the run's start: what changed during the run is listed again next time
    assert world.watermark(US) == NOW


def test_a_failure_mid_page_leaves_the_watermark_and_the_next_run_resumes_without_loss_or_duplicates(
    world: World,
) -> None:
    # GIVEN 12 findings awaiting review (pages of 5) and an intake queue that refuses the 8th send
    held = [finding("personal-review", n, NOW - timedelta(hours=1) + timedelta(seconds=n)) for n in range(12)]
    world.hold(*held)
    failing = FailingIntake(SqsIntake(world.sqs, world.intake_url), fail_at=8)
    # WHEN the reconciler runs
    with pytest.raises(ReconcileError) as raised:
        reconcile(world.deps(page_size=5, intake=failing))
    # THEN the region failed, the first page's end is the watermark, and what was sent reaches the intake
    (failed,) = raised.value.report.errors
    assert failed.region == US and "ConnectionError" in (failed.error or "")
    assert world.watermark(US) == NOW - timedelta(hours=1) + timedelta(seconds=4)
    world.intake(world.queued())
    assert len(world.records()) == 7
    # WHEN the next run reconciles
    report = reconcile(world.deps(clock=NOW + timedelta(hours=1), page_size=5))
    world.intake(world.queued())
    # THEN it resumed at the watermark: every finding has one record and one review message, none was lost
    assert (report.listed, report.known, report.recovered) == (8, 3, 5)
    assert sorted(item["finding_id"]["S"] for item in world.records()) == sorted(d["id"] for d in held)
    assert all(world.store.get(d["id"]).state is State.PENDING_APPROVAL for d in held)  # type: ignore[union-attr]
    assert len(world.slack.messages("C0PAYMENTS")) == 12
    assert world.watermark(US) == NOW - timedelta(hours=1) + timedelta(seconds=11)


def test_a_region_macie_fails_in_keeps_its_watermark_and_the_others_are_reconciled(world: World) -> None:
    # GIVEN findings in both regions, and Macie denying the second region's GetFindings once
    us, eu = (
        finding("financial-low", 1, NOW - timedelta(hours=2)),
        finding("financial-low", 2, NOW - timedelta(hours=1), region=EU),
    )
    world.hold(us, eu)
    world.macie.fail_next("GetFindings", code="AccessDeniedException", status=403)
    # WHEN the reconciler runs over us-east-1 then eu-west-1 (the failure hits us-east-1, the first call)
    with pytest.raises(ReconcileError) as raised:
        reconcile(world.deps())
    # THEN us-east-1 is reported with Macie's error and keeps no watermark; eu-west-1 was reconciled
    report: ReconcileReport = raised.value.report
    assert [(r.region, r.error is not None) for r in report.regions] == [(US, True), (EU, False)]
    assert "AccessDeniedException" in (report.regions[0].error or "")
    assert world.watermark(US) is None and world.watermark(EU) == NOW - timedelta(hours=1)
    assert [json.loads(body)["detail"]["id"] for body in world.queued()] == [eu["id"]]
    assert report.counts()[names.RECONCILE_ERRORS_METRIC] == 1


# -- both ways at once ------------------------------------------------------------------------------------------


def test_a_finding_delivered_by_its_event_and_by_reconciliation_at_once_is_one_record_and_one_message(
    world: World,
) -> None:
    # GIVEN a review finding in Macie whose event is on its way, and the reconciler that sent it too
    event = load_event("personal-review")
    detail = {**event["detail"], "updatedAt": iso_millis(NOW - timedelta(minutes=1))}
    world.hold(detail)
    reconcile(world.deps())
    (recovered,) = world.queued()
    # WHEN the finding handler gets both deliveries at the same moment (two concurrent invocations)
    errors: list[BaseException] = []

    def deliver(body: str) -> None:
        try:
            world.intake([body])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(body,)) for body in (json.dumps(event), recovered)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN one record, one review message
    assert errors == []
    assert len(world.records()) == 1
    assert world.store.get(detail["id"]).state is State.PENDING_APPROVAL  # type: ignore[union-attr]
    assert len(world.slack.messages("C0PAYMENTS")) == 1


# -- the Lambda root --------------------------------------------------------------------------------------------


def _invoke(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", out)
    context = LambdaContext(names.RECONCILER_FUNCTION_NAME, memory_limit_in_mb=512, timeout_s=300)
    return handler.lambda_handler({"source": "aws.events"}, context), out.getvalue()


def test_the_handler_publishes_its_counts_and_raises_after_publishing_a_failed_run(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN metrics on, and one finding in Macie updated an hour ago
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    world.hold(finding("financial-low", 1, datetime.now(UTC) - timedelta(hours=1)))
    # WHEN the scheduled handler runs
    answer, _ = _invoke(monkeypatch)
    # THEN it answers and publishes listed / known / recovered / errors for the run
    assert (answer["FindingsListed"], answer["FindingsRecovered"], answer[names.RECONCILE_ERRORS_METRIC]) == (1, 1, 0)
    published = {m["name"]: m for m in emf_metrics(capsys.readouterr().out)}
    assert {"FindingsListed", "FindingsKnown", "FindingsRecovered", names.RECONCILE_ERRORS_METRIC} <= set(published)
    assert published[names.RECONCILE_ERRORS_METRIC]["service"] == names.RECONCILER_FUNCTION_NAME
    # WHEN Macie fails on the next run
    world.macie.fail_next("ListFindings", code="AccessDeniedException", status=403)
    with pytest.raises(ReconcileError):
        _invoke(monkeypatch)
    # THEN ReconcileErrors was published before it raised
    assert any(m["name"] == names.RECONCILE_ERRORS_METRIC for m in emf_metrics(capsys.readouterr().out))


def test_the_handler_reads_another_administrator_through_its_reader_role(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the Macie administrator is another account, whose finding only that account's Macie holds
    other = "987654321098"
    detail = finding("financial-low", 7, datetime.now(UTC) - timedelta(hours=1))
    world.macie.put(other, US, detail)
    monkeypatch.setenv(names.ENV_MACIE_READER_ROLE_ARN, f"arn:aws:iam::{other}:role/{names.MACIE_READER_ROLE_NAME}")
    # WHEN the handler runs
    answer, _ = _invoke(monkeypatch)
    # THEN it read that account's Macie (through the role) and recovered the finding
    assert answer["FindingsRecovered"] == 1
    assert [json.loads(body)["detail"]["id"] for body in world.queued()] == [detail["id"]]
