"""The moto extension's pure parts: IAM's policy evaluation for session policies, and which permissions an S3
request needs (sandbox/macie_chatops_sandbox/moto_session_policy.py)."""

from __future__ import annotations

from typing import Any

import pytest

from macie_chatops_sandbox.moto_session_policy import Decision, Need, evaluate, s3_needs, wildcard_match

OBJECT = "arn:aws:s3:::data/a.csv"


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("arn:aws:s3:::data/a.csv", "arn:aws:s3:::data/a.csv", True),
        ("arn:aws:s3:::data/a.csv", "arn:aws:s3:::data/aXcsv", False),  # '.' is literal, not a regex dot
        ("arn:aws:s3:::data/a+(b).csv", "arn:aws:s3:::data/a+(b).csv", True),
        ("arn:aws:s3:::data/a+(b).csv", "arn:aws:s3:::data/aa(b).csv", False),
        ("arn:aws:s3:::data/a?.csv", "arn:aws:s3:::data/ab.csv", True),
        ("arn:aws:s3:::data/a?.csv", "arn:aws:s3:::data/a.csv", False),  # '?' is exactly one character
        ("arn:aws:s3:::data/reports/*", "arn:aws:s3:::data/reports/2024/x\ny", True),
        ("arn:aws:s3:::data/reports/*", "arn:aws:s3:::data/other", False),
        ("arn:aws:s3:::Data/a.csv", "arn:aws:s3:::data/a.csv", False),  # resources are case-sensitive
    ],
)
def test_wildcards_are_iams_and_everything_else_is_literal(pattern: str, value: str, matches: bool) -> None:
    assert wildcard_match(pattern, value) is matches


def test_a_policy_variable_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="policy variables"):
        wildcard_match("arn:aws:s3:::data/${aws:username}", OBJECT)


def test_allow_deny_and_nothing() -> None:
    # GIVEN a policy allowing reads of the bucket and denying one key
    policy = document(
        {"Effect": "Allow", "Action": "S3:GetObject*", "Resource": "arn:aws:s3:::data/*"},
        {"Effect": "Deny", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::data/secret*"},
    )
    # THEN actions match case-insensitively, a Deny wins, anything unnamed is not allowed
    assert evaluate(policy, Need("s3:getobjectversion", OBJECT)) is Decision.ALLOWED
    assert evaluate(policy, Need("s3:GetObject", "arn:aws:s3:::data/secret.csv")) is Decision.DENIED
    assert evaluate(policy, Need("s3:PutObject", OBJECT)) is Decision.NOT_ALLOWED
    assert evaluate(policy, Need("s3:GetObject", "arn:aws:s3:::other/a.csv")) is Decision.NOT_ALLOWED


def test_not_action_and_not_resource() -> None:
    policy = document({"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::data/keep*"})
    assert evaluate(policy, Need("s3:GetObject", OBJECT)) is Decision.ALLOWED
    assert evaluate(policy, Need("s3:DeleteObject", OBJECT)) is Decision.NOT_ALLOWED
    assert evaluate(policy, Need("s3:GetObject", "arn:aws:s3:::data/keep.csv")) is Decision.NOT_ALLOWED


@pytest.mark.parametrize(
    ("condition", "context", "allowed"),
    [
        ({"StringEquals": {"s3:prefix": "a.csv"}}, {"s3:prefix": "a.csv"}, True),
        ({"StringEquals": {"s3:prefix": "a.csv"}}, {"s3:prefix": "a"}, False),
        ({"StringEquals": {"s3:prefix": "a.csv"}}, {}, False),  # a missing key does not satisfy it
        ({"StringEquals": {"s3:prefix": "a*"}}, {"s3:prefix": "a.csv"}, False),  # StringEquals has no wildcards
        ({"StringLike": {"s3:prefix": "a*"}}, {"s3:prefix": "a.csv"}, True),
        ({"StringEqualsIfExists": {"s3:prefix": "a.csv"}}, {}, True),
        ({"StringNotEquals": {"s3:prefix": "a.csv"}}, {}, True),
        ({"StringEquals": {"kms:ViaService": ["s3.eu-west-1.amazonaws.com", "x"]}},
         {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}, True),
        ({"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}, {}, False),
        ({"Null": {"kms:ViaService": "true"}}, {}, True),
        ({"Null": {"kms:ViaService": "false"}}, {}, False),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::data"}}, {"aws:SourceArn": "arn:aws:s3:::data"}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "false"}, False),
    ],
)  # fmt: skip
def test_conditions(condition: dict[str, Any], context: dict[str, str], allowed: bool) -> None:
    policy = document({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition})
    expected = Decision.ALLOWED if allowed else Decision.NOT_ALLOWED
    assert evaluate(policy, Need("s3:ListBucketVersions", "arn:aws:s3:::data", context)) is expected


def test_operators_it_does_not_know_are_refused() -> None:
    for condition in ({"NumericLessThan": {"s3:max-keys": "10"}}, {"ForAnyValue:StringEquals": {"k": "v"}}):
        policy = document({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition})
        with pytest.raises(ValueError, match="not emulated"):
            evaluate(policy, Need("s3:GetObject", OBJECT, {"s3:max-keys": "5", "k": "v"}))


V = {"versionId": ["v1"]}


@pytest.mark.parametrize(
    ("method", "query", "headers", "expected"),
    [
        ("HEAD", {}, {}, [("s3:GetObject", OBJECT)]),
        ("HEAD", V, {}, [("s3:GetObjectVersion", OBJECT)]),
        ("GET", V, {}, [("s3:GetObjectVersion", OBJECT)]),
        ("GET", {"tagging": [""]}, {}, [("s3:GetObjectTagging", OBJECT)]),
        ("GET", {"tagging": [""], **V}, {}, [("s3:GetObjectVersionTagging", OBJECT)]),
        ("GET", {"retention": [""], **V}, {}, [("s3:GetObjectRetention", OBJECT)]),
        ("PUT", {"tagging": [""], **V}, {}, [("s3:PutObjectVersionTagging", OBJECT)]),
        ("PUT", {}, {"x-amz-tagging": "a=b"}, [("s3:PutObject", OBJECT), ("s3:PutObjectTagging", OBJECT)]),
        ("PUT", {}, {"x-amz-tagging": ""}, [("s3:PutObject", OBJECT)]),
        ("PUT", {}, {"x-amz-copy-source": "/src/dir/b%20c.csv?versionId=v9"},
         [("s3:PutObject", OBJECT), ("s3:GetObjectVersion", "arn:aws:s3:::src/dir/b c.csv")]),
        ("PUT", {"partNumber": ["1"], "uploadId": ["u"]}, {"x-amz-copy-source": "src/b.csv"},
         [("s3:PutObject", OBJECT), ("s3:GetObject", "arn:aws:s3:::src/b.csv")]),
        ("POST", {"uploads": [""]}, {}, [("s3:PutObject", OBJECT)]),
        ("POST", {"uploadId": ["u"]}, {}, [("s3:PutObject", OBJECT)]),
        ("DELETE", {}, {}, [("s3:DeleteObject", OBJECT)]),
        ("DELETE", V, {}, [("s3:DeleteObjectVersion", OBJECT)]),
        ("DELETE", {"uploadId": ["u"]}, {}, [("s3:AbortMultipartUpload", OBJECT)]),
    ],
)  # fmt: skip
def test_what_an_object_request_needs(
    method: str, query: dict[str, list[str]], headers: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    needs = s3_needs(method, OBJECT, query, headers, moto_action="s3:Whatever")
    assert [(need.action, need.resource) for need in needs] == expected


def test_what_a_bucket_request_needs() -> None:
    bucket = "arn:aws:s3:::data"
    [versions] = s3_needs("GET", bucket, {"versions": [""], "prefix": ["a.csv"]}, {}, moto_action="x")
    assert versions == Need("s3:ListBucketVersions", bucket, {"s3:prefix": "a.csv"})
    [listing] = s3_needs("GET", bucket, {"list-type": ["2"]}, {}, moto_action="x")
    assert listing == Need("s3:ListBucket", bucket)
    [head] = s3_needs("HEAD", bucket, {}, {}, moto_action="x")
    assert head == Need("s3:ListBucket", bucket)
    for method, action in (("GET", "Get"), ("PUT", "Put"), ("DELETE", "Put")):
        [block] = s3_needs(method, bucket, {"publicAccessBlock": [""]}, {}, moto_action="s3:GetPublicAccessBlock")
        assert block == Need(f"s3:{action}BucketPublicAccessBlock", bucket)
    # any other bucket request keeps moto's name for it
    [other] = s3_needs("GET", bucket, {"versioning": [""]}, {}, moto_action="s3:GetBucketVersioning")
    assert other == Need("s3:GetBucketVersioning", bucket)
