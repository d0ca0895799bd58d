"""The inline session policy of a move or a restore (architecture §24): exactly the finding's object, the finding's
quarantine keys and KMS through S3; keys IAM cannot name fall back to their longest nameable prefix or the bucket;
the document's size is counted as the compact, ASCII-escaped JSON sent to STS."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from macie_chatops.move.outcomes import MoveRequest, RestoreRequest
from macie_chatops.session_policy import (
    KMS_ACTIONS,
    MAX_POLICY_CHARS,
    MOVE_QUARANTINE_ACTIONS,
    MOVE_SOURCE_ACTIONS,
    PUBLIC_ACCESS_ACTIONS,
    RESTORE_DESTINATION_ACTIONS,
    RESTORE_QUARANTINE_ACTIONS,
    JobScope,
    Scope,
    for_move,
    for_public_access,
    for_restore,
    session_policy,
)

FINDING = "64b917aff1d15e6a0d3f1e2c9b8a7d01"
ACCOUNT = "345678901234"
REGION = "eu-west-1"
QUARANTINE = f"macie-chatops-quarantine-{ACCOUNT}-{REGION}"
MOVE = JobScope("quarantine", FINDING, REGION, "payments-data", "exports/customers.csv", QUARANTINE, f"{FINDING}/")
RESTORE = JobScope(
    "restore", FINDING, REGION, "payments-data", "exports/customers.csv", QUARANTINE,
    f"{FINDING}/payments-data/exports/customers.csv",
)  # fmt: skip


def statements(document: str) -> dict[str, dict[str, Any]]:
    parsed = json.loads(document)
    assert parsed["Version"] == "2012-10-17"
    return {statement.pop("Sid"): statement for statement in parsed["Statement"]}


def test_a_move_may_touch_its_object_its_quarantine_prefix_and_kms_through_s3_only() -> None:
    # GIVEN a move of an ordinary key
    # WHEN its session policy is built
    policy = session_policy(MOVE)
    # THEN it names exactly that object, the finding's quarantine prefix, and nothing else
    assert (policy.scope, policy.reason) == (Scope.OBJECT, "")
    assert policy.resource == "arn:aws:s3:::payments-data/exports/customers.csv"
    assert statements(policy.document) == {
        "FindingObject": {
            "Effect": "Allow",
            "Action": list(MOVE_SOURCE_ACTIONS),
            "Resource": "arn:aws:s3:::payments-data/exports/customers.csv",
        },
        "FindingQuarantine": {
            "Effect": "Allow",
            "Action": list(MOVE_QUARANTINE_ACTIONS),
            "Resource": f"arn:aws:s3:::{QUARANTINE}/{FINDING}/*",
        },
        "NotFoundIsNotDenied": {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::payments-data", f"arn:aws:s3:::{QUARANTINE}"],
        },
        "FindingKeyVersions": {
            "Effect": "Allow",
            "Action": ["s3:ListBucketVersions"],
            "Resource": "arn:aws:s3:::payments-data",
            "Condition": {"StringEquals": {"s3:prefix": "exports/customers.csv"}},
        },
        "KmsThroughS3": {
            "Effect": "Allow",
            "Action": list(KMS_ACTIONS),
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}},
        },
    }
    # AND the version actions the mover's calls need are there (a HEAD or read by version id, tags by version,
    # the lock state HEAD shows, the delete by version id)
    assert {"s3:GetObjectVersion", "s3:GetObjectVersionTagging", "s3:GetObjectRetention", "s3:GetObjectLegalHold",
            "s3:DeleteObjectVersion"} <= set(MOVE_SOURCE_ACTIONS)  # fmt: skip
    assert "s3:PutObject" not in MOVE_SOURCE_ACTIONS  # a move never writes the source bucket


def test_a_restore_may_write_the_original_key_and_only_read_the_quarantine_copy() -> None:
    # GIVEN a restore
    # WHEN its session policy is built
    found = statements(session_policy(RESTORE).document)
    # THEN it writes the original key, reads the quarantine prefix, and lists no versions
    assert found["FindingObject"]["Action"] == list(RESTORE_DESTINATION_ACTIONS)
    assert found["FindingObject"]["Resource"] == "arn:aws:s3:::payments-data/exports/customers.csv"
    assert found["FindingQuarantine"] == {
        "Effect": "Allow",
        "Action": list(RESTORE_QUARANTINE_ACTIONS),
        "Resource": f"arn:aws:s3:::{QUARANTINE}/{FINDING}/*",
    }
    assert not any(action.startswith("s3:Put") or "Delete" in action for action in RESTORE_QUARANTINE_ACTIONS)
    assert "FindingKeyVersions" not in found


def test_the_scopes_come_from_the_requests() -> None:
    # GIVEN a move and a restore request of one finding
    move = MoveRequest(FINDING, ACCOUNT, REGION, "payments-data", "exports/customers.csv", "v1", "e", 3, "U0ALICE")
    restore = RestoreRequest(FINDING, ACCOUNT, REGION, "payments-data", "exports/customers.csv", "q/key")
    # WHEN their scopes are taken
    # THEN the move's quarantine is the finding's namespace, the restore's the recorded copy
    assert for_move(move) == MOVE
    assert for_restore(restore) == replace(RESTORE, quarantine_key="q/key")


def test_a_move_whose_key_s3_cannot_hold_still_gets_a_scope() -> None:
    # GIVEN a request whose key is empty (the mover refuses it, with the session it gets)
    move = MoveRequest(FINDING, ACCOUNT, REGION, "payments-data", "", "v1", "e", 3, "U0ALICE")
    # WHEN its scope and policy are built
    policy = session_policy(for_move(move))
    # THEN nothing raises, and the session may touch no object of that bucket
    assert policy.resource == "arn:aws:s3:::payments-data/"


@pytest.mark.parametrize(
    ("key", "prefix", "character"),
    [
        ("reports/2024-*.csv", "reports/2024-", "*"),
        ("reports/what?.csv", "reports/what", "?"),
        ("reports/${aws:username}.csv", "reports/", "$"),
        ("a*b?c", "a", "*"),
    ],
)
def test_a_key_with_a_wildcard_or_a_variable_is_scoped_to_its_prefix(key: str, prefix: str, character: str) -> None:
    # GIVEN a key holding a character IAM reads as a wildcard or a policy variable
    # WHEN its policy is built
    policy = session_policy(replace(MOVE, key=key))
    # THEN the object and the listing are scoped to the prefix before that character, and the reason says why
    assert policy.scope is Scope.PREFIX
    assert policy.resource == f"arn:aws:s3:::payments-data/{prefix}*"
    found = statements(policy.document)
    assert found["FindingObject"]["Resource"] == policy.resource
    assert found["FindingKeyVersions"]["Condition"] == {"StringLike": {"s3:prefix": f"{prefix}*"}}
    assert repr(character) in policy.reason and f"first {len(prefix)} characters" in policy.reason
    # AND nothing special is left in what the policy names
    assert not {"*", "?", "$"} & set(prefix)


@pytest.mark.parametrize("key", ["*.csv", "?x", "${x}"])
def test_a_key_starting_with_a_wildcard_is_scoped_to_the_bucket(key: str) -> None:
    # GIVEN a key whose first character is special
    # WHEN its policy is built
    policy = session_policy(replace(MOVE, key=key))
    # THEN the session may touch every key of that bucket (and still only the finding's quarantine prefix)
    assert (policy.scope, policy.resource) == (Scope.BUCKET, "arn:aws:s3:::payments-data/*")
    assert policy.reason.endswith("scoped to the bucket")
    found = statements(policy.document)
    assert "Condition" not in found["FindingKeyVersions"]
    assert found["FindingQuarantine"]["Resource"] == f"arn:aws:s3:::{QUARANTINE}/{FINDING}/*"


def test_a_key_too_long_for_the_limit_keeps_the_longest_prefix_that_fits() -> None:
    # GIVEN a 1,000-character key (S3 allows 1,024 bytes): named twice, it cannot fit 2,048 characters
    key = "archive/" + "x" * 992
    # WHEN its policy is built
    policy = session_policy(replace(MOVE, key=key))
    # THEN it is scoped to the longest prefix of the key whose policy fits, exactly
    assert policy.scope is Scope.PREFIX and policy.chars <= MAX_POLICY_CHARS
    kept = policy.resource.removeprefix("arn:aws:s3:::payments-data/").removesuffix("*")
    assert key.startswith(kept) and len(kept) < len(key)
    longer_prefix = policy.document.replace(f"{kept}*", f"{key[: len(kept) + 1]}*")
    assert len(longer_prefix) > MAX_POLICY_CHARS
    assert f"would pass {MAX_POLICY_CHARS} characters" in policy.reason


def test_the_size_is_the_compact_ascii_json_sent_to_sts() -> None:
    # GIVEN keys with characters outside ASCII (é is 6 characters escaped, an emoji 12)
    for key in ("café/é.csv", "notes/\U0001f600.txt", "tab\there"):
        # WHEN the policy is built
        policy = session_policy(replace(MOVE, key=key))
        # THEN the document is ASCII, without insignificant whitespace, and its length is what is counted
        assert policy.document.isascii()
        assert policy.document == json.dumps(json.loads(policy.document), separators=(",", ":"))
        assert policy.chars == len(policy.document)
        assert policy.scope is Scope.OBJECT
        assert json.loads(policy.document)["Statement"][0]["Resource"].endswith(key)


def test_a_non_ascii_key_falls_back_by_its_escaped_length() -> None:
    # GIVEN a key of 300 'é': 300 characters, but 1,800 as JSON escapes (named twice: over the limit)
    key = "é" * 300
    # WHEN its policy is built
    policy = session_policy(replace(MOVE, key=key))
    # THEN it is scoped to a prefix measured escaped
    assert policy.scope is Scope.PREFIX and policy.chars <= MAX_POLICY_CHARS
    assert "would pass" in policy.reason


def test_every_policy_carries_its_bucket_wide_fallback() -> None:
    # GIVEN an exact and a prefix policy
    for policy in (session_policy(MOVE), session_policy(replace(MOVE, key="a*"))):
        # THEN each knows the same job scoped to the bucket (used when STS finds the packed policy too large)
        assert policy.wider is not None
        assert policy.wider.scope is Scope.BUCKET
        assert policy.wider.resource == "arn:aws:s3:::payments-data/*"
        assert policy.wider.wider is None


def test_the_quarantine_is_the_bucket_when_the_recorded_copy_lies_outside_the_finding_namespace() -> None:
    # GIVEN a restore whose recorded quarantine key is not under the finding's id
    policy = session_policy(replace(RESTORE, quarantine_key="elsewhere/copy"))
    # THEN the quarantine statement covers that quarantine bucket (the role's policy limits it to quarantine buckets)
    assert statements(policy.document)["FindingQuarantine"]["Resource"] == f"arn:aws:s3:::{QUARANTINE}/*"
    # AND a finding id holding a wildcard never becomes a pattern either
    odd = session_policy(replace(MOVE, finding_id="f*", quarantine_key="f*/"))
    assert statements(odd.document)["FindingQuarantine"]["Resource"] == f"arn:aws:s3:::{QUARANTINE}/*"


def test_the_partition_is_the_sessions() -> None:
    policy = session_policy(MOVE, partition="aws-cn")
    assert policy.resource.startswith("arn:aws-cn:s3:::")
    assert "arn:aws:" not in policy.document


def test_a_policy_fix_may_touch_its_buckets_public_access_block_and_nothing_else() -> None:
    # GIVEN a policy finding's fix (or its Undo) on one bucket
    # WHEN its session policy is built
    policy = session_policy(for_public_access("payments-data", FINDING))
    # THEN it reads and puts that bucket's public access block, no object, no other bucket, nothing account-wide
    assert (policy.scope, policy.reason, policy.wider) == (Scope.PUBLIC_ACCESS_BLOCK, "", None)
    assert statements(policy.document) == {
        "FindingBucketPublicAccessBlock": {
            "Effect": "Allow",
            "Action": list(PUBLIC_ACCESS_ACTIONS),
            "Resource": "arn:aws:s3:::payments-data",
        }
    }
    assert PUBLIC_ACCESS_ACTIONS == ("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock")
