"""The reconciler's pure parts: its settings in accounts.yaml, the policy's bounds, and a finding as Macie's event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from macie_chatops.config import ConfigError, parse_config
from macie_chatops.finding import Finding, parse_event
from macie_chatops.reconciler import ReconcilePolicy, as_event_detail, iso_millis, macie_event, updated_at
from tests.conftest import ROOT, load_event

EXAMPLE = (ROOT / "accounts.yaml").read_text(encoding="utf-8")


def _with(block: str) -> str:
    return EXAMPLE + "\n" + block


def test_reconcile_defaults_to_hourly_with_a_seven_day_back_fill() -> None:
    config = parse_config(EXAMPLE, "accounts.yaml")
    assert (config.reconcile.every_minutes, config.reconcile.backfill_days) == (60, 7)


def test_reconcile_settings_are_read_and_bounded_by_macies_retention() -> None:
    config = parse_config(_with("reconcile: {every_minutes: 15, backfill_days: 90}\n"), "accounts.yaml")
    assert (config.reconcile.every_minutes, config.reconcile.backfill_days) == (15, 90)
    with pytest.raises(ConfigError) as caught:
        parse_config(_with("reconcile: {backfill_days: 91}\n"), "accounts.yaml")
    assert "reconcile.backfill_days" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config(_with("reconcile: {every_minutes: 4}\n"), "accounts.yaml")
    assert "reconcile.every_minutes" in str(caught.value)
    with pytest.raises(ConfigError):
        parse_config(_with('reconcile: {backfill_days: "7"}\n'), "accounts.yaml")


def test_the_policy_refuses_a_back_fill_beyond_macies_retention_and_pages_beyond_its_limit() -> None:
    with pytest.raises(ValueError, match="back-fill"):
        ReconcilePolicy(backfill=timedelta(days=91))
    with pytest.raises(ValueError, match="page_size"):
        ReconcilePolicy(page_size=51)
    assert ReconcilePolicy().backfill == timedelta(days=7)


def test_a_finding_from_the_sdk_becomes_the_event_macie_publishes_and_parses_as_one() -> None:
    # GIVEN a finding as boto3's GetFindings returns it: times as datetimes, nulls left out
    detail = load_event("personal-review")["detail"]
    sdk = {
        **detail,
        "createdAt": datetime(2026, 11, 20, 10, 15, 4, 250000, tzinfo=UTC),
        "updatedAt": datetime(2026, 11, 21, 8, 0, tzinfo=UTC),
    }
    # WHEN it is turned into the event
    event = macie_event(as_event_detail(sdk), publisher="210987654321", region="us-east-1")
    # THEN the times are Macie's spelling, the envelope is Macie's, and the parse boundary reads a finding
    assert event["detail"]["createdAt"] == "2026-11-20T10:15:04.250Z"
    assert event["detail"]["updatedAt"] == "2026-11-21T08:00:00.000Z"
    assert (event["source"], event["detail-type"], event["account"], event["region"]) == (
        "aws.macie",
        "Macie Finding",
        "210987654321",
        "us-east-1",
    )
    parsed = parse_event(json.dumps(event))
    assert isinstance(parsed, Finding) and parsed.id == detail["id"]


def test_the_event_id_is_the_same_for_the_same_update_and_differs_for_another() -> None:
    detail = load_event("personal-review")["detail"]
    first = macie_event(detail, publisher="210987654321", region="us-east-1")
    again = macie_event(detail, publisher="210987654321", region="us-east-1")
    later = macie_event({**detail, "updatedAt": "2026-12-01T00:00:00.000Z"}, publisher="1", region="us-east-1")
    assert first["id"] == again["id"] != later["id"]


def test_updated_at_falls_back_to_created_at_and_ignores_what_is_not_a_time() -> None:
    assert updated_at({"createdAt": "2026-11-20T10:15:04.250Z"}) == datetime(2026, 11, 20, 10, 15, 4, 250000, UTC)
    assert updated_at({"updatedAt": "yesterday", "createdAt": 5}) is None
    assert iso_millis(datetime(2026, 1, 2, 3, 4, 5, 678901, UTC)) == "2026-01-02T03:04:05.678Z"
