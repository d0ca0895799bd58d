"""One session, one object (architecture §24), on moto with IAM enforcement and session policies applied: a move's
or a restore's session does its job and can touch nothing else; a key IAM cannot name falls back as described."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from macie_chatops.move import MoveRequest, ObjectMover, RestoreRequest
from macie_chatops.names import quarantine_bucket_name
from macie_chatops.public_access import ALL_BLOCKED, BucketPublicAccess
from macie_chatops.quarantine_plan import MoveStatus, RestoreStatus
from macie_chatops.session_policy import Scope, for_move, for_public_access, for_restore
from macie_chatops.sessions import MemberClients, MemberSessions
from macie_chatops_sandbox.testkit.faults import CorruptCopies
from tests.conftest import AwsSandbox
from tests.functional.enforced_world import (
    EVERYTHING,
    enforced,
    enforced_aws,  # noqa: F401 (fixture)
    enforced_endpoint,  # noqa: F401 (fixture)
    member_world,
    remediator_sessions,
)
from tests.functional.move_world import FINDING_ID, MB, MEMBER_A, REGION, ROLE_NAME, MoveWorld, remediator_user

SOURCE = "payments-prod-data"
QUARANTINE = quarantine_bucket_name(MEMBER_A, REGION)


@pytest.fixture
def world(enforced_aws: AwsSandbox) -> MoveWorld:  # noqa: F811 (the fixture imported above)
    moves = member_world(enforced_aws, MEMBER_A)
    moves.bucket(MEMBER_A, SOURCE)
    return moves


@pytest.fixture
def sessions(world: MoveWorld) -> MemberSessions:
    return remediator_sessions(world.aws)


def put(world: MoveWorld, key: str, body: bytes, finding_id: str = FINDING_ID) -> MoveRequest:
    version, etag = world.put(MEMBER_A, SOURCE, key, body)
    return world.request(MEMBER_A, SOURCE, key, version_id=version, etag=etag, size=len(body), finding_id=finding_id)


def move_session(sessions: MemberSessions, request: MoveRequest) -> MemberClients:
    return sessions.clients(
        MEMBER_A, REGION, actor="U0ALICE", finding_id=request.finding_id, scope=for_move(request)
    )  # fmt: skip


def denied(call: Any) -> bool:
    try:
        call()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in {"AccessDenied", "403"}, exc.response
        return True
    return False


@pytest.mark.parametrize(("size", "threshold_mb"), [(2048, 64), (6 * MB, 5)], ids=["single copy", "multipart"])
def test_a_moves_session_moves_its_object_and_can_touch_nothing_else(
    world: MoveWorld, sessions: MemberSessions, size: int, threshold_mb: int
) -> None:
    # GIVEN the finding's object, and another key in the same bucket
    body = os.urandom(size)
    request = put(world, "exports/customers.csv", body)
    other_version, _ = world.put(MEMBER_A, SOURCE, "exports/customers.csv.bak", b"other")
    # WHEN the finding is quarantined under IAM enforcement, with the move's session
    with enforced(world.aws):
        clients = move_session(sessions, request)
        outcome = ObjectMover(clients.s3, multipart_threshold_bytes=threshold_mb * MB).quarantine(request)
        # THEN the move is complete (every call the mover makes is allowed by the session policy)
        assert outcome.status is MoveStatus.QUARANTINED, outcome
        assert clients.session_policy is not None and clients.session_policy.scope is Scope.OBJECT
        # AND the same session is denied any other key of the bucket, and any other finding's quarantine keys
        s3 = clients.s3
        assert denied(lambda: s3.get_object(Bucket=SOURCE, Key="exports/customers.csv.bak"))
        assert denied(lambda: s3.head_object(Bucket=SOURCE, Key="exports/customers.csv.bak"))
        assert denied(lambda: s3.delete_object(Bucket=SOURCE, Key="exports/customers.csv.bak", VersionId=other_version))
        assert denied(lambda: s3.put_object(Bucket=SOURCE, Key="exports/customers.csv", Body=b"overwrite"))
        assert denied(lambda: s3.put_object(Bucket=QUARANTINE, Key="another-finding/x", Body=b"x"))
        assert denied(lambda: s3.list_object_versions(Bucket=SOURCE, Prefix="exports/"))
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    assert world.read(MEMBER_A, SOURCE, "exports/customers.csv.bak") == b"other"


def test_the_role_stays_the_ceiling(enforced_aws: AwsSandbox) -> None:  # noqa: F811
    # GIVEN a member role that may not delete, whatever a session policy allows
    world = member_world(
        enforced_aws,
        MEMBER_A,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"},
                {"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "*"},
            ],
        },
    )
    world.bucket(MEMBER_A, SOURCE)
    request = put(world, "payroll.csv", b"payroll")
    sessions = remediator_sessions(enforced_aws)
    # WHEN it is quarantined with a session policy that allows the delete
    with enforced(enforced_aws):
        outcome = ObjectMover(move_session(sessions, request).s3, multipart_threshold_bytes=64 * MB).quarantine(request)
    # THEN the role's Deny holds: blocked, both copies kept
    assert (outcome.status, outcome.reason and outcome.reason.value) == (MoveStatus.BLOCKED, "locked"), outcome
    assert world.read(MEMBER_A, SOURCE, "payroll.csv", request.version_id) == b"payroll"


def test_a_copy_that_does_not_verify_makes_no_denied_call_and_the_retry_replaces_it(enforced_aws: AwsSandbox) -> None:  # noqa: F811
    # GIVEN a member role that, like the deployed one, may not delete in its quarantine bucket, and S3 writing a
    # corrupt copy (its CopyObject response and its HEAD report a checksum that is not the source's)
    world = member_world(
        enforced_aws,
        MEMBER_A,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
                    "Resource": f"arn:aws:s3:::{QUARANTINE}/*",
                },
            ],
        },
    )
    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(2048)
    request = put(world, "exports/cards.csv", body)
    sessions = remediator_sessions(enforced_aws)
    s3_faults = CorruptCopies()
    errors: list[str] = []

    def note_error(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if "Error" in parsed:
            errors.append(f"{model.name}: {parsed['Error'].get('Code')}")

    with enforced(enforced_aws):
        s3 = move_session(sessions, request).s3
        s3_faults.attach(s3)
        s3.meta.events.register("after-call.s3", note_error, unique_id="note-errors")
        mover = ObjectMover(s3, multipart_threshold_bytes=64 * MB)
        # WHEN it is quarantined under its session policy
        outcome = mover.quarantine(request)
        # THEN FAILED and retryable, with no call denied: the untrusted copy is left, not deleted
        assert (outcome.status, outcome.retryable) == (MoveStatus.FAILED, True), outcome
        assert not [e for e in errors if "AccessDenied" in e or "403" in e], errors
        # WHEN the job is retried, S3 writing honestly again
        s3_faults.writing = False
        retried = mover.quarantine(request)
        # THEN it is quarantined in a new copy over the untrusted one (its exclusive copy refused: 412, not denied)
        assert retried.status is MoveStatus.QUARANTINED, retried
        assert not [e for e in errors if "AccessDenied" in e or "403" in e], errors
        # AND the session could not have deleted the untrusted copy: it is left for the lifecycle, as on AWS
        (untrusted,) = s3_faults.corrupt
        assert denied(lambda: s3.delete_object(Bucket=QUARANTINE, Key=request.quarantine_key, VersionId=untrusted))
    assert retried.quarantine_version_id not in s3_faults.corrupt
    assert world.quarantined(MEMBER_A, request.quarantine_key) == body
    assert len(world.versions(MEMBER_A, QUARANTINE, request.quarantine_key)) == 2
    assert world.read(MEMBER_A, SOURCE, "exports/cards.csv", request.version_id) is None


@pytest.mark.parametrize(
    ("key", "same_prefix", "outside"),
    [
        ("reports/2024-*.csv", "reports/2024-summary.csv", "exports/a.csv"),
        ("reports/q?.csv", "reports/q-other.csv", "other/q1.csv"),
        ("*.csv", "anything.csv", None),
    ],
)
def test_a_wildcard_key_falls_back_to_its_prefix_and_still_moves(
    world: MoveWorld,
    sessions: MemberSessions,
    key: str,
    same_prefix: str,
    outside: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a finding whose key holds an IAM wildcard, and other keys under and outside its prefix
    request = put(world, key, b"card numbers")
    world.put(MEMBER_A, SOURCE, same_prefix, b"same prefix")
    if outside:
        world.put(MEMBER_A, SOURCE, outside, b"outside")
    # WHEN it is quarantined under enforcement
    with enforced(world.aws), caplog.at_level(logging.WARNING, logger="macie_chatops.sessions"):
        clients = move_session(sessions, request)
        outcome = ObjectMover(clients.s3, multipart_threshold_bytes=64 * MB).quarantine(request)
        # THEN it moves, with a session scoped to the key's prefix (or the bucket), logged with the reason
        assert outcome.status is MoveStatus.QUARANTINED, outcome
        assert clients.session_policy is not None
        expected = Scope.BUCKET if key.startswith("*") else Scope.PREFIX
        assert clients.session_policy.scope is expected
        [logged] = [r for r in caplog.records if r.getMessage() == "session policy wider than the finding's object"]
        assert logged.reason == clients.session_policy.reason and "wildcard" in logged.reason  # type: ignore[attr-defined]
        # AND the fallback is what was described: the prefix's keys are reachable, the rest of the bucket is not
        assert clients.s3.get_object(Bucket=SOURCE, Key=same_prefix)["Body"].read() == b"same prefix"
        if outside:
            assert denied(lambda: clients.s3.get_object(Bucket=SOURCE, Key=outside))
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == b"card numbers"


def test_a_key_too_long_for_the_policy_falls_back_and_still_moves(world: MoveWorld, sessions: MemberSessions) -> None:
    # GIVEN a 1,000-character key (its exact policy would pass 2,048 characters) and a sibling with its prefix
    key = "archive/" + "k" * 992
    request = put(world, key, b"long")
    with enforced(world.aws):
        clients = move_session(sessions, request)
        outcome = ObjectMover(clients.s3, multipart_threshold_bytes=64 * MB).quarantine(request)
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert clients.session_policy is not None and clients.session_policy.scope is Scope.PREFIX
    assert "2048 characters" in clients.session_policy.reason


def test_a_restores_session_restores_and_can_touch_nothing_else(world: MoveWorld, sessions: MemberSessions) -> None:
    # GIVEN a quarantined object (moved under enforcement), another key of the bucket, and another finding's copy
    body = os.urandom(4096)
    request = put(world, "exports/cards.json", body)
    world.put(MEMBER_A, SOURCE, "exports/other.json", b"other")
    world.s3(MEMBER_A).put_object(Bucket=QUARANTINE, Key="another-finding/x", Body=b"someone else's")
    with enforced(world.aws):
        moved = ObjectMover(move_session(sessions, request).s3, multipart_threshold_bytes=64 * MB).quarantine(request)
    assert moved.status is MoveStatus.QUARANTINED
    restore = RestoreRequest(FINDING_ID, MEMBER_A, REGION, SOURCE, request.key, moved.quarantine_key)
    # WHEN it is restored under enforcement, with the restore's session
    with enforced(world.aws):
        clients = sessions.clients(MEMBER_A, REGION, actor="U0BOB", finding_id=FINDING_ID, scope=for_restore(restore))
        outcome = ObjectMover(clients.s3, multipart_threshold_bytes=64 * MB).restore(restore)
        # THEN the bytes are back
        assert outcome.status is RestoreStatus.RESTORED, outcome
        # AND the session could not have written anywhere else, nor read another copy, nor changed its own copy
        s3 = clients.s3
        assert denied(lambda: s3.get_object(Bucket=SOURCE, Key="exports/other.json"))
        assert denied(lambda: s3.put_object(Bucket=SOURCE, Key="exports/other.json", Body=b"x"))
        assert denied(lambda: s3.get_object(Bucket=QUARANTINE, Key="another-finding/x"))
        assert denied(lambda: s3.put_object(Bucket=QUARANTINE, Key=moved.quarantine_key, Body=b"x"))
    assert world.read(MEMBER_A, SOURCE, request.key) == body


def test_a_restore_of_a_wildcard_key_falls_back_likewise(world: MoveWorld, sessions: MemberSessions) -> None:
    request = put(world, "reports/*.csv", b"rows")
    with enforced(world.aws):
        moved = ObjectMover(move_session(sessions, request).s3, multipart_threshold_bytes=64 * MB).quarantine(request)
        assert moved.status is MoveStatus.QUARANTINED, moved
        restore = RestoreRequest(FINDING_ID, MEMBER_A, REGION, SOURCE, request.key, moved.quarantine_key)
        clients = sessions.clients(MEMBER_A, REGION, actor="U0BOB", finding_id=FINDING_ID, scope=for_restore(restore))
        outcome = ObjectMover(clients.s3, multipart_threshold_bytes=64 * MB).restore(restore)
    assert outcome.status is RestoreStatus.RESTORED, outcome
    assert clients.session_policy is not None and clients.session_policy.scope is Scope.PREFIX
    assert clients.session_policy.resource == f"arn:aws:s3:::{SOURCE}/reports/*"
    assert world.read(MEMBER_A, SOURCE, request.key) == b"rows"


def test_sts_finding_the_packed_policy_too_large_retries_once_bucket_wide(world: MoveWorld) -> None:
    # GIVEN an STS that refuses the first session policy as too large once packed (moto never does: its
    # answer is stood in for on the client, before the request leaves it)
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    user = remediator_user(world.aws, EVERYTHING)
    sts = user.session().client("sts", region_name=REGION)
    sent: list[str] = []

    def packed_too_large(params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        sent.append(params["body"]["Policy"] if isinstance(params["body"], dict) else "")
        if len(sent) > 1:
            return None
        error = {"Code": "PackedPolicyTooLarge", "Message": "Packed policy consumes 104% of allotted space"}
        return AWSResponse("", 400, HTTPHeaders(), None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    sts.meta.events.register("before-call.sts.AssumeRole", packed_too_large)
    sessions = MemberSessions(role_name=ROLE_NAME, base_session=user.session(), sts_client_factory=lambda _: sts)
    request = put(world, "exports/customers.csv", b"x")
    # WHEN the move's session is assumed
    clients = move_session(sessions, request)
    # THEN the second AssumeRole carried the bucket-wide policy, and the clients say so, with the reason
    assert len(sent) == 2 and sent[0] != sent[1]
    assert clients.session_policy is not None and clients.session_policy.scope is Scope.BUCKET
    assert clients.session_policy.document == sent[1]
    assert "packed session policy too large" in clients.session_policy.reason


def test_a_policy_fixs_session_puts_its_buckets_public_access_block_and_can_touch_nothing_else(
    world: MoveWorld, sessions: MemberSessions
) -> None:
    # GIVEN a bucket a policy finding names, with an object, and another bucket
    world.put(MEMBER_A, SOURCE, "exports/customers.csv", b"rows")
    world.bucket(MEMBER_A, "analytics-data")
    # WHEN its fix runs under enforcement, with the fix's session
    with enforced(world.aws):
        clients = sessions.clients(
            MEMBER_A, REGION, actor="U0ALICE", finding_id=FINDING_ID, scope=for_public_access(SOURCE, FINDING_ID)
        )
        bucket = BucketPublicAccess(clients.s3, SOURCE, MEMBER_A)
        before = bucket.read()
        bucket.write(ALL_BLOCKED)
        # THEN the block is put, and read back
        assert before is None and bucket.read() == ALL_BLOCKED
        assert clients.session_policy is not None and clients.session_policy.scope is Scope.PUBLIC_ACCESS_BLOCK
        # AND the same session may not read the bucket's objects, nor touch another bucket's block
        s3 = clients.s3
        assert denied(lambda: s3.get_object(Bucket=SOURCE, Key="exports/customers.csv"))
        assert denied(lambda: s3.get_public_access_block(Bucket="analytics-data"))
        assert denied(
            lambda: s3.put_public_access_block(
                Bucket="analytics-data", PublicAccessBlockConfiguration={"BlockPublicAcls": False}
            )
        )
        # AND its Undo (a delete of the block) is allowed on its own bucket
        bucket.write(None)
    assert BucketPublicAccess(world.s3(MEMBER_A), SOURCE, MEMBER_A).read() is None
