"""The finding model: the documented Macie event format and its traps, parsed at the edge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macie_chatops.finding import Finding, Rejection, parse_event
from tests.conftest import EVENTS_DIR, load_event


def parsed(name: str) -> Finding:
    result = parse_event(load_event(name))
    assert isinstance(result, Finding), result
    return result


def rejected(name: str) -> Rejection:
    result = parse_event((EVENTS_DIR / f"{name}.json").read_bytes())
    assert isinstance(result, Rejection), result
    return result


def test_every_fixture_parses_or_is_rejected_never_raises() -> None:
    for file in sorted(EVENTS_DIR.glob("*.json")):
        assert isinstance(parse_event(file.read_bytes()), Finding | Rejection), file.name


def test_fields_the_pipeline_uses() -> None:
    finding = parsed("personal-review")
    assert finding.id == "6a1b2c3d4e5f60718293a4b5c6d70005"
    assert finding.account_id == "345678901234"
    assert finding.region == "us-east-1"
    assert finding.bucket == "payments-prod-exports"
    assert finding.s3_object is not None
    assert finding.s3_object.key == "exports/customers.csv"
    assert finding.s3_object.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert finding.detail.severity.score == 3
    assert finding.origin == "job b7c2ab1d8e0f1a2b3c4d5e6f7a8b9c0d"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("key-with-spaces", "reports/Q3 customer list (final).csv"),
        ("key-unicode", "données/clients/Zoë Ångström 顧客.csv"),
        ("key-plus-percent", "archive/a+b%20c%2Fd+%2B.txt"),
        ("key-slack-markup", "drop/<!channel> & <https://evil.example|click> <@U0ALICE>.txt"),
    ],
)
def test_keys_are_raw_never_url_decoded(name: str, key: str) -> None:
    s3_object = parsed(name).s3_object
    assert s3_object is not None and s3_object.key == key


def test_thousand_byte_key_is_kept_whole() -> None:
    s3_object = parsed("key-1000-bytes").s3_object
    assert s3_object is not None and s3_object.key_bytes == 1000


def test_empty_version_id_means_unversioned() -> None:
    s3_object = parsed("unversioned-bucket").s3_object
    assert s3_object is not None and s3_object.versionId == "" and s3_object.version_id is None


def test_automated_discovery_has_null_job() -> None:
    finding = parsed("automated-discovery-null-job")
    assert finding.job_id is None
    assert finding.origin == "automated sensitive data discovery"


def test_policy_finding_s3object_null_and_absent_both_parse() -> None:
    assert parsed("policy-s3object-null").s3_object is None
    assert parsed("policy-s3object-absent").s3_object is None


def test_missing_resources_affected_parses_without_object() -> None:
    assert parsed("missing-resources-affected").s3_object is None


def test_extra_fields_are_tolerated() -> None:
    event = load_event("personal-review")
    event["detail"]["brandNewField"] = {"nested": [1, 2]}
    event["detail"]["resourcesAffected"]["s3Object"]["futureThing"] = True
    assert isinstance(parse_event(event), Finding)


def test_envelope_without_account_is_accepted() -> None:
    # EventBridge targets (and moto) may deliver events without the envelope `account`.
    event = load_event("personal-review")
    del event["account"]
    assert isinstance(parse_event(event), Finding)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("severity-string", "severity.score"),
        ("severity-out-of-range", "severity.score"),
        ("legacy-macie-alert", "Macie Alert"),
        ("wrong-source", "aws.macie2"),
        ("not-json", "not JSON"),
        ("not-an-object", "JSON object"),
    ],
)
def test_rejections_say_why(name: str, words: str) -> None:
    assert words in rejected(name).reason


def test_rejection_keeps_readable_ids() -> None:
    rejection = rejected("severity-string")
    assert rejection.finding_id == "6a1b2c3d4e5f60718293a4b5c6d70017"
    assert rejection.account_id == "345678901234"
    assert rejection.event_id is not None


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("severity", "score"), 4, "less than or equal to 3"),
        (("severity", "description"), "Critical", "severity.description"),
        (("severity",), {"score": 1, "description": "High"}, "does not match"),
        (("archived",), "false", "archived"),
        (("accountId",), 345678901234, "accountId"),
        (("accountId",), "3456789012", "accountId"),
        (("id",), "", "id"),
        (("id",), "../../etc", "id"),
        (("createdAt",), "yesterday", "createdAt"),
        (("category",), "OTHER", "category"),
        (("resourcesAffected", "s3Object", "key"), "", "key"),
        (("resourcesAffected", "s3Object", "size"), -1, "size"),
        (("resourcesAffected", "s3Object", "versionId"), 7, "versionId"),
    ],
)
def test_wrong_types_are_clear_rejections(path: tuple[str, ...], value: object, words: str) -> None:
    event = load_event("personal-review")
    target = event["detail"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    result = parse_event(event)
    assert isinstance(result, Rejection)
    assert words in result.reason


def test_bytes_and_text_inputs(tmp_path: Path) -> None:
    raw = json.dumps(load_event("personal-review"))
    assert isinstance(parse_event(raw), Finding)
    assert isinstance(parse_event(raw.encode()), Finding)
    assert isinstance(parse_event(b"\xff\xfe"), Rejection)
