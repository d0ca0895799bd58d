"""Exemptions on moto: the store (one item per account, kept out of every finding listing, revocation, the
per-account limit, pruning) and the real finding handler ignoring a covered finding (no message, a metric),
until the exemption runs out; accounts.yaml's exemptions applied the same way."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from macie_chatops import exemption_store, names
from macie_chatops.config import Action, Config, ConfigExemption, load_config
from macie_chatops.exemption_store import (
    ITEM_TYPE,
    MAX_ACTIVE_PER_ACCOUNT,
    PRUNE_AFTER_DAYS,
    ExemptionError,
    ExemptionStore,
    new_exemption_id,
)
from macie_chatops.exemptions import Exemption, Scope
from macie_chatops.handlers import intake as handler
from macie_chatops.states import State
from macie_chatops.store import FindingStore, create_state_table
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
from tests.conftest import EVENTS_DIR, ROOT, AwsSandbox

TABLE = "exemption-test-findings"
PAYMENTS_PROD = "345678901234"
BUCKET = "payments-prod-exports"  # tests/events/personal-review.json: exports/customers.csv, review
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def exemption(
    scope: Scope = Scope.PREFIX, key: str = "exports/", *, until: datetime, created_at: datetime = NOW, **fields: Any
) -> Exemption:
    values: dict[str, Any] = {
        "id": new_exemption_id(PAYMENTS_PROD),
        "account_id": PAYMENTS_PROD,
        "bucket": BUCKET,
        "scope": scope,
        "key": key,
        "types": ("SensitiveData:S3Object/Personal",),
        "until": until,
        "reason": "exports are synthetic test data",
        "created_by": "U0ALICE",
        "created_at": created_at,
        "finding_id": "f-dismissed",
    }
    values.update(fields)
    return Exemption(**values)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def dynamodb(aws: AwsSandbox) -> Any:
    client = boto3.client("dynamodb", region_name=aws.region)
    create_state_table(client, TABLE)
    return client


# --- the store ----------------------------------------------------------------------------------------------


def test_exemptions_are_kept_per_account_and_out_of_every_finding_listing(dynamodb: Any) -> None:
    # GIVEN two exemptions of one account and one of another
    clock = Clock()
    store = ExemptionStore(dynamodb, TABLE, clock=clock)
    first = store.add(exemption(until=NOW + timedelta(days=7)))
    second = store.add(exemption(Scope.BUCKET, "", until=NOW + timedelta(days=30), created_at=NOW + timedelta(1)))
    other = store.add(
        exemption(until=NOW + timedelta(days=7), account_id="456789012345", id=new_exemption_id("456789012345"))
    )
    # THEN each account reads its own, oldest first, and the CLI's batch read sees all of them
    assert store.for_account(PAYMENTS_PROD) == (first, second)
    assert store.for_accounts([PAYMENTS_PROD, "456789012345", "999999999999"]) == [first, other, second]
    # AND the items carry no index key: no pending listing, no finding read sees them
    findings = FindingStore(dynamodb, TABLE)
    assert findings.pending_approvals() == []
    assert findings.get(f"exemptions#{PAYMENTS_PROD}") is None
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert {item["item_type"]["S"] for item in items} == {ITEM_TYPE}
    assert all(
        names.PENDING_INDEX_PARTITION not in item and names.APPROVED_INDEX_PARTITION not in item for item in items
    )


def test_a_revocation_is_recorded_once_with_who_and_when(dynamodb: Any) -> None:
    clock = Clock()
    store = ExemptionStore(dynamodb, TABLE, clock=clock)
    added = store.add(exemption(until=NOW + timedelta(days=7)))
    # WHEN an operator revokes it
    clock.now = NOW + timedelta(hours=1)
    revoked = store.revoke(added.id, by="arn:aws:sts::210987654321:assumed-role/ops/jane")
    # THEN it is kept, marked revoked, and no longer active
    assert revoked.revoked_by == "arn:aws:sts::210987654321:assumed-role/ops/jane"
    assert revoked.revoked_at == NOW + timedelta(hours=1)
    assert not store.for_account(PAYMENTS_PROD)[0].active(clock.now)
    # AND a second revocation, an unknown id and a malformed id are refused with what is wrong
    with pytest.raises(ExemptionError, match="already revoked by arn:aws:sts"):
        store.revoke(added.id, by="someone")
    with pytest.raises(ExemptionError, match="no exemption"):
        store.revoke(f"{PAYMENTS_PROD}-ffffffffffff", by="someone")
    with pytest.raises(ExemptionError, match="not an exemption id"):
        store.revoke("accounts.yaml#0", by="someone")


def test_an_account_holds_a_bounded_number_of_active_exemptions_and_old_ones_are_pruned(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_ACTIVE_PER_ACCOUNT == 100
    monkeypatch.setattr(exemption_store, "MAX_ACTIVE_PER_ACCOUNT", 4)  # the same rule, with fewer writes to moto
    clock = Clock()
    store = ExemptionStore(dynamodb, TABLE, clock=clock)
    # GIVEN one exemption that ended long ago, one revoked long ago, and the account at its limit of active ones
    ancient = store.add(exemption(until=NOW - timedelta(days=1), created_at=NOW - timedelta(days=30)))
    revoked = store.add(exemption(until=NOW + timedelta(days=300), created_at=NOW - timedelta(days=2)))
    store.revoke(revoked.id, by="ops")
    clock.now = NOW + timedelta(days=PRUNE_AFTER_DAYS + 1)
    later = clock.now + timedelta(days=7)
    recent = [store.add(exemption(until=later, created_at=clock.now)) for _ in range(4)]
    # THEN the ended and the revoked ones were dropped by the first of those writes, the active ones kept
    assert {e.id for e in store.for_account(PAYMENTS_PROD)} == {e.id for e in recent}
    assert ancient.id not in {e.id for e in store.for_account(PAYMENTS_PROD)}
    # AND one more active exemption is refused, saying what to do
    with pytest.raises(ExemptionError, match=r"already has 4 active exemptions .* revoke some first"):
        store.add(exemption(until=later, created_at=clock.now))


# --- the finding handler ------------------------------------------------------------------------------------


class Delivery(SqsDelivery):
    queue_name = names.INTAKE_QUEUE_NAME
    sender_id = "AIDAEVENTBRIDGE"


def review_event(finding_id: str, key: str = "exports/customers.csv") -> Delivery:
    """tests/events/personal-review.json (payments-prod, review) with its own finding id and key."""
    event = json.loads((EVENTS_DIR / "personal-review.json").read_text(encoding="utf-8"))
    event["detail"]["id"] = finding_id
    event["detail"]["resourcesAffected"]["s3Object"]["key"] = key
    return Delivery(json.dumps(event))


@dataclass
class World:
    findings: FindingStore
    exemptions: ExemptionStore
    slack: SlackStandIn

    def deliver(self, delivery: Delivery) -> None:
        context = LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60.0)
        assert invoke_batch(handler.lambda_handler, (delivery,), context) == []


def build(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Config
) -> World:
    resources = provision_handler(
        config=config,
        config_dir=tmp_path,
        table=TABLE,
        slack=slack,
        setenv=monkeypatch.setenv,
        queue_url=create_remediation_queue(aws.region),
        region=aws.region,
    )
    handler.clear_caches()
    return World(resources.store, ExemptionStore(aws_client("dynamodb", aws.region), TABLE), slack)


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    try:
        yield build(aws, slack, tmp_path, monkeypatch, load_config(ROOT / "accounts.yaml"))
    finally:
        handler.clear_caches()


def test_a_covered_finding_is_ignored_without_a_message_until_the_exemption_runs_out(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an exemption of the prefix exports/ in payments-prod that runs out in two seconds
    until = datetime.now(UTC) + timedelta(seconds=2)
    added = world.exemptions.add(exemption(until=until, created_at=datetime.now(UTC)))
    # WHEN a review finding under that prefix arrives
    world.deliver(review_event("f-covered", "exports/2026/customers.csv"))
    # THEN it is IGNORED, saying who exempted it, until when and why; no message; counted
    record = world.findings.get("f-covered")
    assert record is not None and record.state is State.IGNORED and record.action is Action.IGNORE
    assert record.reason.startswith(f"exempted by U0ALICE until {until.strftime('%Y-%m-%d %H:%M:%S')} UTC: ")
    assert f"exports are synthetic test data (exemption {added.id})" in record.reason
    assert world.slack.messages("C0PAYMENTS") == []
    exempted = [m for m in emf_metrics(capsys.readouterr().out) if m["name"] == "Exempted"]
    assert [(m["action"], m["finding_type"]) for m in exempted] == [("review", "SensitiveData:S3Object/Personal")]
    # AND a finding outside the prefix is reviewed as always
    world.deliver(review_event("f-beside", "exports-old/customers.csv"))
    beside = world.findings.get("f-beside")
    assert beside is not None and beside.state is State.PENDING_APPROVAL
    # WHEN the exemption has run out, a finding under the prefix is reviewed again
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.1)
    world.deliver(review_event("f-after", "exports/2026/more.csv"))
    after = world.findings.get("f-after")
    assert after is not None and after.state is State.PENDING_APPROVAL
    assert len(world.slack.messages("C0PAYMENTS")) == 2


def test_a_revoked_exemption_no_longer_covers_anything(world: World) -> None:
    added = world.exemptions.add(exemption(until=datetime.now(UTC) + timedelta(days=7), created_at=datetime.now(UTC)))
    world.exemptions.revoke(added.id, by="ops")
    world.deliver(review_event("f-revoked"))
    record = world.findings.get("f-revoked")
    assert record is not None and record.state is State.PENDING_APPROVAL


def test_accounts_yaml_exemptions_are_applied_by_the_finding_handler(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN accounts.yaml exempting the bucket until the end of today, and an expired exemption of another bucket
    config = load_config(ROOT / "accounts.yaml")
    today = datetime.now(UTC).date()
    entries = (
        ConfigExemption(account=PAYMENTS_PROD, bucket=BUCKET, until=today, reason="Synthetic exports bucket"),
        ConfigExemption(account=PAYMENTS_PROD, bucket="other-bucket", until=date(2020, 1, 1), reason="Old"),
    )
    world = build(aws, slack, tmp_path, monkeypatch, replace_exemptions(config, entries))
    try:
        # WHEN a finding in that bucket arrives THEN it is ignored by the configured exemption
        world.deliver(review_event("f-configured"))
        record = world.findings.get("f-configured")
        assert record is not None and record.state is State.IGNORED
        assert record.reason.startswith(f"exempted by accounts.yaml until {today} (end of day, UTC): Synthetic")
        assert slack.messages("C0PAYMENTS") == []
    finally:
        handler.clear_caches()


def replace_exemptions(config: Config, entries: tuple[ConfigExemption, ...]) -> Config:
    return config.model_copy(update={"exemptions": entries})


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_cli_lists_active_exemptions_and_revokes_one_with_an_audit_line(
    dynamodb: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from macie_chatops.cli import main

    # GIVEN accounts.yaml with one exemption, a dismissed finding, and two exemptions recorded from Slack, one expired
    today = datetime.now(UTC).date()
    config_file = tmp_path / "accounts.yaml"
    config_file.write_text(
        (ROOT / "accounts.yaml").read_text(encoding="utf-8")
        + "exemptions:\n"
        + f'  - {{account: "{PAYMENTS_PROD}", bucket: fixtures-bucket, until: {today}, reason: Fixtures}}\n',
        encoding="utf-8",
    )
    findings = FindingStore(dynamodb, TABLE)
    findings.create_received("f-dismissed", event_id="e", action=Action.REVIEW, reason="r", actor="test")
    store = ExemptionStore(dynamodb, TABLE)
    now = datetime.now(UTC)
    active = store.add(exemption(until=now + timedelta(days=7), created_at=now))
    store.add(exemption(until=now - timedelta(days=1), created_at=now - timedelta(days=8), finding_id=""))
    monkeypatch.setenv("USER", "jane")
    common = ["--table", TABLE, "--config", str(config_file)]
    # WHEN the operator lists them THEN the active ones are printed, accounts.yaml's first
    assert main(["exemptions", *common, "list"]) == 0
    listed = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [(e["id"], e["status"], e["source"]) for e in listed] == [
        ("accounts.yaml#0", "active", "accounts.yaml"),
        (active.id, "active", "slack"),
    ]
    assert main(["exemptions", *common, "list", "--all"]) == 0
    assert [json.loads(text)["status"] for text in capsys.readouterr().out.splitlines()] == [
        "active",
        "expired",
        "active",
    ]
    # WHEN they revoke the active one THEN it is revoked by them, and the dismissed finding's trail says so
    assert main(["exemptions", *common, "revoke", active.id]) == 0
    revoked = json.loads(capsys.readouterr().out)
    assert (revoked["status"], revoked["revoked_by"]) == ("revoked", "cli:jane")
    record = findings.get("f-dismissed")
    assert record is not None and record.last_audit is not None
    assert (record.last_audit.event, record.last_audit.actor) == ("exemption_revoked", "cli:jane")
    # AND revoking it again, an unknown id, or one from accounts.yaml is refused with the reason
    assert main(["exemptions", *common, "revoke", active.id]) == 2
    assert "already revoked by cli:jane" in capsys.readouterr().err
    assert main(["exemptions", *common, "revoke", "accounts.yaml#0"]) == 2
    assert "remove it there" in capsys.readouterr().err
