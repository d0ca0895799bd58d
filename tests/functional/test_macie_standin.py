"""The Macie stand-in through boto3's real macie2 client: criteria, sorting, paging, GetFindings, accounts, errors."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from macie_chatops.reconciler import iso_millis
from macie_chatops_sandbox import macie_standin
from macie_chatops_sandbox.macie_standin import MacieStandIn
from macie_chatops_sandbox.testkit.world import aws_client
from tests.conftest import AwsSandbox, load_event

ACCOUNT = "123456789012"  # moto's default account: the one the aws fixture's credentials act as
REGION = "us-east-1"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def held(
    number: int, *, severity: str = "High", bucket: str = "payments-prod-exports", hours: int = 0
) -> dict[str, Any]:
    detail: dict[str, Any] = load_event("financial-high")["detail"]
    detail["id"] = f"f{number:02d}"
    detail["severity"] = {"score": {"Low": 1, "Medium": 2, "High": 3}[severity], "description": severity}
    detail["resourcesAffected"]["s3Bucket"]["name"] = bucket
    detail["createdAt"] = iso_millis(T0 + timedelta(hours=number))
    detail["updatedAt"] = iso_millis(T0 + timedelta(hours=hours or number))
    return detail


@pytest.fixture
def macie(aws: AwsSandbox) -> Iterator[MacieStandIn]:
    macie_standin.install()
    macie_standin.STANDIN.clear()
    try:
        yield macie_standin.STANDIN
    finally:
        macie_standin.uninstall()


def client(region: str = REGION, **config: Any) -> Any:
    if config:
        from macie_chatops_sandbox.testkit.world import shared_session

        return shared_session(region).client("macie2", region_name=region, config=BotoConfig(**config))
    return aws_client("macie2", region)


def all_ids(request: dict[str, Any]) -> list[str]:
    pages = client().get_paginator("list_findings").paginate(**request)
    return [finding_id for page in pages for finding_id in page["findingIds"]]


def test_list_findings_filters_on_times_severity_and_bucket(macie: MacieStandIn) -> None:
    # GIVEN findings of several severities, buckets and times
    macie.put(ACCOUNT, REGION, held(1, severity="Low"))
    macie.put(ACCOUNT, REGION, held(2, severity="High", bucket="analytics-raw"))
    macie.put(ACCOUNT, REGION, held(3, severity="High"))
    macie.put(ACCOUNT, REGION, held(4, severity="Medium", hours=10))
    # WHEN / THEN each criterion selects what Macie would
    by_update = {"criterion": {"updatedAt": {"gte": ms(T0 + timedelta(hours=3))}}}
    assert sorted(all_ids({"findingCriteria": by_update})) == ["f03", "f04"]
    by_creation = {"criterion": {"createdAt": {"gt": ms(T0 + timedelta(hours=1)), "lte": ms(T0 + timedelta(hours=3))}}}
    assert sorted(all_ids({"findingCriteria": by_creation})) == ["f02", "f03"]
    high = {"criterion": {"severity.description": {"eq": ["High"]}}}
    assert sorted(all_ids({"findingCriteria": high})) == ["f02", "f03"]
    not_bucket = {"criterion": {"resourcesAffected.s3Bucket.name": {"neq": ["payments-prod-exports"]}}}
    assert all_ids({"findingCriteria": not_bucket}) == ["f02"]
    both = {
        "criterion": {
            "severity.description": {"eq": ["High"]},
            "resourcesAffected.s3Bucket.name": {"eq": ["analytics-raw"]},
        }
    }
    assert all_ids({"findingCriteria": both}) == ["f02"]


def test_list_findings_sorts_and_pages_with_next_token(macie: MacieStandIn) -> None:
    # GIVEN 7 findings
    for number in range(1, 8):
        macie.put(ACCOUNT, REGION, held(number))
    newest_first = {"attributeName": "updatedAt", "orderBy": "DESC"}
    # WHEN pages of 3 are read newest first
    first = client().list_findings(sortCriteria=newest_first, maxResults=3)
    second = client().list_findings(sortCriteria=newest_first, maxResults=3, nextToken=first["nextToken"])
    third = client().list_findings(sortCriteria=newest_first, maxResults=3, nextToken=second["nextToken"])
    # THEN the pages follow one another and the last has no token
    assert [first["findingIds"], second["findingIds"], third["findingIds"]] == [
        ["f07", "f06", "f05"],
        ["f04", "f03", "f02"],
        ["f01"],
    ]
    assert "nextToken" not in third
    # AND a token is bound to its query: another sort is refused, as an invalid token is
    with pytest.raises(ClientError) as refused:
        client().list_findings(maxResults=3, nextToken=first["nextToken"])
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_malformed_requests_are_validation_errors(macie: MacieStandIn) -> None:
    with pytest.raises(ClientError) as too_many:
        client().list_findings(maxResults=51)
    with pytest.raises(ClientError) as unknown_field:
        client().list_findings(findingCriteria={"criterion": {"resourcesAffected.s3Object.tags": {"eq": ["x"]}}})
    with pytest.raises(ClientError) as range_on_text:
        client().list_findings(findingCriteria={"criterion": {"severity.description": {"gte": 1}}})
    with pytest.raises(ClientError) as no_ids:
        client().get_findings(findingIds=[])
    for raised in (too_many, unknown_field, range_on_text, no_ids):
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_get_findings_returns_the_findings_of_the_callers_account_and_region_only(
    macie: MacieStandIn, aws: AwsSandbox
) -> None:
    # GIVEN a finding in this account (us-east-1), one in eu-west-1, and one in another account
    macie.put(ACCOUNT, REGION, held(1))
    macie.put(ACCOUNT, "eu-west-1", held(2))
    macie.put("999988887777", REGION, held(3))
    # WHEN this account asks for all three ids in us-east-1
    found = client().get_findings(findingIds=["f01", "f02", "f03", "missing"])["findings"]
    # THEN only its own finding there comes back, with the SDK's types (times as datetimes)
    assert [f["id"] for f in found] == ["f01"]
    assert found[0]["updatedAt"] == T0 + timedelta(hours=1)
    assert found[0]["severity"] == {"score": 3, "description": "High"}
    # AND the other account, acting as itself, sees its own
    other = aws.session("999988887777").client("macie2", endpoint_url=aws.endpoint)
    assert other.list_findings()["findingIds"] == ["f03"]


def test_fail_next_fails_one_call_with_macies_error_then_serves_again(macie: MacieStandIn) -> None:
    macie.put(ACCOUNT, REGION, held(1))
    macie.fail_next("ListFindings", code="AccessDeniedException", status=403)
    with pytest.raises(ClientError) as denied:
        client(retries={"max_attempts": 0}).list_findings()
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert client().list_findings()["findingIds"] == ["f01"]


def test_moto_reset_clears_the_findings(macie: MacieStandIn, aws: AwsSandbox) -> None:
    macie.put(ACCOUNT, REGION, held(1))
    request = urllib.request.Request(f"{aws.endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert macie.findings(ACCOUNT, REGION) == []
    assert client().list_findings()["findingIds"] == []
