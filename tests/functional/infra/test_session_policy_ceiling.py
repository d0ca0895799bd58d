"""The member remediation role is the ceiling of every session policy (architecture §24): what a move's or a
restore's session policy allows, the role's own policy (as the StackSet deploys it) must grant too, or the call
fails on AWS however narrow the session is."""

from __future__ import annotations

from typing import Any

from macie_chatops.session_policy import (
    KMS_ACTIONS,
    MOVE_QUARANTINE_ACTIONS,
    MOVE_SOURCE_ACTIONS,
    PUBLIC_ACCESS_ACTIONS,
    RESTORE_DESTINATION_ACTIONS,
    RESTORE_QUARANTINE_ACTIONS,
)
from tests.functional.infra.conftest import Synthesized, as_list
from tests.functional.infra.test_public_access_permissions import _remediation_statements


def _granted(example: Synthesized, sid: str) -> set[str]:
    found: list[dict[str, Any]] = [s for s in _remediation_statements(example) if s.get("Sid") == sid]
    assert len(found) == 1, sid
    assert found[0]["Effect"] == "Allow"
    return set(as_list(found[0]["Action"]))


def test_the_role_grants_what_a_session_may_do_with_the_findings_object(example: Synthesized) -> None:
    # GIVEN the role's statement for the objects of its account's buckets
    granted = _granted(example, "FlaggedObjectVersions")
    # THEN every object action of a move's and a restore's session policy is in it
    assert set(MOVE_SOURCE_ACTIONS) | set(RESTORE_DESTINATION_ACTIONS) <= granted


def test_the_role_grants_what_a_session_may_do_with_the_findings_quarantine_keys(example: Synthesized) -> None:
    granted = _granted(example, "QuarantineObjects")
    assert set(RESTORE_QUARANTINE_ACTIONS) <= granted
    assert set(MOVE_QUARANTINE_ACTIONS) <= granted
    # AND a session of a move may delete nothing there (a copy that does not verify is left for the retry to replace)
    assert not {"s3:DeleteObject", "s3:DeleteObjectVersion"} & set(MOVE_QUARANTINE_ACTIONS)


def test_the_role_grants_the_listings_and_kms_through_s3(example: Synthesized) -> None:
    assert {"s3:ListBucket", "s3:ListBucketVersions"} <= _granted(example, "FlaggedObjectBuckets")
    assert "s3:ListBucket" in _granted(example, "QuarantineBuckets")
    assert set(KMS_ACTIONS) <= _granted(example, "KmsThroughS3Only")


def test_the_role_grants_what_a_policy_fixs_session_may_do(example: Synthesized) -> None:
    assert set(PUBLIC_ACCESS_ACTIONS) == _granted(example, "PublicAccessBlockOfFlaggedBuckets")
