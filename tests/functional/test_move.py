"""The mover on moto's server: the exact version, across accounts and KMS keys, never losing a byte."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import (
    METADATA_SOURCE_KEY,
    TAG_FINDING_ID,
    TAG_SOURCE_KEY_B64,
    TAG_SOURCE_KEY_SHA256,
    TAG_SOURCE_VERSION,
    TAG_VERIFIED,
    AtKey,
    BlockReason,
    CopyCheck,
    MoveFacts,
    MoveStatus,
    MoveStep,
    SourceFate,
    decode_key,
    encode_key,
    quarantine_key,
)
from tests.conftest import AwsSandbox
from tests.functional.move_world import (
    FINDING_ID,
    MB,
    MEMBER_A,
    MEMBER_B,
    REGION,
    Crash,
    MoveWorld,
    build_move_world,
    crash_at,
    iam_enforced,
    member_role,
    next_second,
    remediator_user,
)

SOURCE = "payments-prod-exports"
QUARANTINE_A = quarantine_bucket_name(MEMBER_A, REGION)


@pytest.fixture
def world(aws: AwsSandbox) -> MoveWorld:
    return build_move_world(aws)


def test_versioned_bucket_moves_the_exact_version_while_a_newer_one_exists(world: MoveWorld) -> None:
    # GIVEN a versioned bucket where the finding's version has since been superseded by a newer one
    world.bucket(MEMBER_A, SOURCE)
    body = b"card=4111111111111111\n" * 20
    version, etag = world.put(
        MEMBER_A,
        SOURCE,
        "exports/cards.csv",
        body,
        Metadata={"owner": "team-payments"},
        ContentType="text/csv",
        CacheControl="no-store",
        ContentDisposition="attachment",
    )
    next_second()
    newer, _ = world.put(MEMBER_A, SOURCE, "exports/cards.csv", b"redacted\n")
    request = world.request(MEMBER_A, SOURCE, "exports/cards.csv", version_id=version, etag=etag, size=len(body))

    # WHEN the finding's version is quarantined
    outcome = world.mover(MEMBER_A).quarantine(request)

    # THEN that exact version moved, the newer one stayed, and the report says the one left is newer and current
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.quarantine_key == f"{FINDING_ID}/{SOURCE}/exports/cards.csv"
    assert outcome.facts == MoveFacts(
        CopyCheck.CHECKSUM, SourceFate.DELETED, at_key=AtKey.NEWER, older=0, newer=1, listed=True
    )
    assert outcome.older_versions == 0
    assert world.read(MEMBER_A, SOURCE, "exports/cards.csv", version) is None
    assert world.read(MEMBER_A, SOURCE, "exports/cards.csv", newer) == b"redacted\n"
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    # AND metadata, content headers and provenance tags are on the copy, encrypted with the quarantine key
    head = world.head(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert head["Metadata"] == {"owner": "team-payments", METADATA_SOURCE_KEY: encode_key("exports/cards.csv")}
    assert (head["ContentType"], head["CacheControl"], head["ContentDisposition"]) == (
        "text/csv",
        "no-store",
        "attachment",
    )
    assert head["SSEKMSKeyId"] == world.quarantine_keys[MEMBER_A]
    tags = world.tags(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert tags[TAG_FINDING_ID] == FINDING_ID
    assert tags[TAG_SOURCE_VERSION] == version
    assert tags["macie-chatops:approver"] == "U0ALICE"
    assert decode_key(tags[TAG_SOURCE_KEY_B64]) == "exports/cards.csv"
    assert tags[TAG_VERIFIED].startswith("CRC32:")
    assert outcome.verification is not None and outcome.verification.startswith("s3 CRC32:")


def test_unversioned_bucket_is_moved_and_the_key_is_gone(world: MoveWorld) -> None:
    # GIVEN an unversioned bucket (Macie's versionId is "")
    world.bucket(MEMBER_A, SOURCE, versioned=False)
    body = os.urandom(4096)
    version, etag = world.put(MEMBER_A, SOURCE, "dump.sql", body)
    assert version == ""
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, "dump.sql", version_id="", etag=etag, size=len(body))
    )
    # THEN the key is gone from the bucket and the bytes are in quarantine, tagged as unversioned
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert world.read(MEMBER_A, SOURCE, "dump.sql") is None
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    assert world.tags(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)[TAG_SOURCE_VERSION] == "null"
    assert outcome.older_versions == 0


@pytest.mark.parametrize("macie_version_id", ["", "null"])
def test_object_written_before_versioning_was_enabled_is_really_deleted(
    world: MoveWorld, macie_version_id: str
) -> None:
    # GIVEN an object written while its bucket was unversioned (its version id is S3's "null"), the
    # bucket's versioning enabled since, and a finding naming it ("" or "null")
    world.bucket(MEMBER_A, SOURCE, versioned=False)
    body = b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    _, etag = world.put(MEMBER_A, SOURCE, "legacy/.env", body)
    world.s3(MEMBER_A).put_bucket_versioning(Bucket=SOURCE, VersioningConfiguration={"Status": "Enabled"})
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, "legacy/.env", version_id=macie_version_id, etag=etag, size=len(body))
    )
    # THEN the bytes are in quarantine and gone from the source: no version and no delete marker is left
    # (a plain delete in a versioned bucket would only hide the null version behind a marker)
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    assert world.read(MEMBER_A, SOURCE, "legacy/.env", "null") is None
    listing = world.s3(MEMBER_A).list_object_versions(Bucket=SOURCE, Prefix="legacy/.env")
    assert listing.get("Versions", []) == []
    assert listing.get("DeleteMarkers", []) == []
    assert outcome.older_versions == 0


@pytest.mark.parametrize("versioned_since", [False, True])
def test_object_overwritten_after_the_copy_stays_and_only_the_copied_bytes_go(
    world: MoveWorld, versioned_since: bool
) -> None:
    # GIVEN an object written while its bucket was unversioned (a finding with versionId ""), the bucket
    # perhaps versioned since, and a mover that, right after the copy verified, sees the key overwritten
    world.bucket(MEMBER_A, SOURCE, versioned=False)
    body = b"password=hunter2\n"
    _, etag = world.put(MEMBER_A, SOURCE, "legacy/creds.txt", body)
    if versioned_since:
        world.s3(MEMBER_A).put_bucket_versioning(Bucket=SOURCE, VersioningConfiguration={"Status": "Enabled"})

    def overwrite(step: MoveStep) -> None:
        if step is MoveStep.VERIFIED:
            world.put(MEMBER_A, SOURCE, "legacy/creds.txt", b"rotated\n")

    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A, checkpoint=overwrite).quarantine(
        world.request(MEMBER_A, SOURCE, "legacy/creds.txt", version_id="", etag=etag, size=len(body))
    )
    # THEN the new object is untouched and the verified copy is kept
    assert world.read(MEMBER_A, SOURCE, "legacy/creds.txt") == b"rotated\n"
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    assert outcome.copy_kept
    null_version = world.read(MEMBER_A, SOURCE, "legacy/creds.txt", "null") if versioned_since else None
    if versioned_since and null_version is None:
        # AND where S3 evaluates IfMatch on the null version itself, the copied bytes are gone and the new
        # object (another version) is left in place
        assert outcome.status is MoveStatus.QUARANTINED, outcome
        assert outcome.older_versions == 1
    else:
        # AND where the overwrite replaced the copied bytes (unversioned), or S3 evaluates IfMatch on the
        # current object (moto), nothing is deleted and the record says so: BLOCKED(changed), both kept
        assert (outcome.status, outcome.reason) == (MoveStatus.BLOCKED, BlockReason.CHANGED), outcome
        assert null_version in (None, body)


def test_changed_etag_blocks_and_touches_nothing(world: MoveWorld) -> None:
    # GIVEN an unversioned object overwritten after Macie scanned it
    world.bucket(MEMBER_A, SOURCE, versioned=False)
    _, old_etag = world.put(MEMBER_A, SOURCE, "notes.txt", b"ssn 078-05-1120")
    world.put(MEMBER_A, SOURCE, "notes.txt", b"cleaned up")
    # WHEN the old finding is approved
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, "notes.txt", version_id="", etag=old_etag, size=15)
    )
    # THEN BLOCKED(changed): the new object stays, nothing is copied
    assert (outcome.status, outcome.reason) == (MoveStatus.BLOCKED, BlockReason.CHANGED)
    assert old_etag in outcome.detail
    assert world.read(MEMBER_A, SOURCE, "notes.txt") == b"cleaned up"
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) is None
    assert not outcome.copy_kept


@pytest.mark.parametrize("versioned", [True, False])
def test_object_deleted_before_approval_blocks_missing(world: MoveWorld, versioned: bool) -> None:
    # GIVEN an object deleted (permanently) between the finding and the approval
    world.bucket(MEMBER_A, SOURCE, versioned=versioned)
    version, etag = world.put(MEMBER_A, SOURCE, "gone.csv", b"data")
    args: dict[str, Any] = {"Bucket": SOURCE, "Key": "gone.csv"}
    if version:
        args["VersionId"] = version
    world.s3(MEMBER_A).delete_object(**args)
    # WHEN it is approved
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, "gone.csv", version_id=version, etag=etag, size=4)
    )
    # THEN BLOCKED(missing), and nothing appears in quarantine
    assert (outcome.status, outcome.reason) == (MoveStatus.BLOCKED, BlockReason.MISSING)
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) is None


def test_version_hidden_by_a_delete_marker_is_still_moved(world: MoveWorld) -> None:
    # GIVEN a versioned object whose key was "deleted" (a delete marker): the version still holds the data
    world.bucket(MEMBER_A, SOURCE)
    version, etag = world.put(MEMBER_A, SOURCE, "hidden.csv", b"still here")
    world.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key="hidden.csv")
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, "hidden.csv", version_id=version, etag=etag, size=10)
    )
    # THEN the version itself is moved (a delete marker never counts as removal)
    assert outcome.status is MoveStatus.QUARANTINED
    assert world.read(MEMBER_A, SOURCE, "hidden.csv", version) is None
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == b"still here"


def test_sse_kms_source_with_another_key_lands_under_the_quarantine_key(world: MoveWorld) -> None:
    # GIVEN a source object encrypted with the team's own KMS key
    team_key = world.client("kms", MEMBER_A).create_key(Description="team")["KeyMetadata"]["Arn"]
    world.bucket(MEMBER_A, SOURCE)
    body = b"secret=" + os.urandom(64)
    version, etag = world.put(MEMBER_A, SOURCE, "vault.bin", body, ServerSideEncryption="aws:kms", SSEKMSKeyId=team_key)
    assert world.head(MEMBER_A, SOURCE, "vault.bin", version)["SSEKMSKeyId"] == team_key
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, "vault.bin", version_id=version, etag=etag, size=len(body))
    )
    # THEN the copy is encrypted with the quarantine bucket's key (the source key was not passed on)
    assert outcome.status is MoveStatus.QUARANTINED
    head = world.head(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == world.quarantine_keys[MEMBER_A] != team_key
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body


def test_multipart_copy_keeps_bytes_metadata_and_content_headers(world: MoveWorld) -> None:
    # GIVEN a 12 MiB object and a 5 MiB multipart threshold (3 parts)
    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(12 * MB)
    version, etag = world.put(
        MEMBER_A,
        SOURCE,
        "exports/big.parquet",
        body,
        Metadata={"pipeline": "nightly", "rows": "123456"},
        ContentType="application/vnd.apache.parquet",
        ContentEncoding="identity",
        ContentLanguage="en",
        CacheControl="max-age=60",
    )
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A, threshold_mb=5).quarantine(
        world.request(MEMBER_A, SOURCE, "exports/big.parquet", version_id=version, etag=etag, size=len(body))
    )
    # THEN the copy is a multipart object with the same bytes, verified by reading it against the source's CRC32
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    head = world.head(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert head["ETag"].strip('"').endswith("-3")
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    assert outcome.verification is not None and outcome.verification.startswith("stream-copy CRC32:")
    # AND metadata and content headers survived the multipart path too, with the provenance tags
    assert head["Metadata"] == {
        "pipeline": "nightly",
        "rows": "123456",
        METADATA_SOURCE_KEY: encode_key("exports/big.parquet"),
    }
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert (head["ContentEncoding"], head["ContentLanguage"], head["CacheControl"]) == ("identity", "en", "max-age=60")
    assert head["SSEKMSKeyId"] == world.quarantine_keys[MEMBER_A]
    assert TAG_VERIFIED in world.tags(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert world.read(MEMBER_A, SOURCE, "exports/big.parquet", version) is None


def test_source_without_a_checksum_is_verified_by_reading_both(world: MoveWorld) -> None:
    # GIVEN an object uploaded without any checksum (older SDKs, the console before 2025)
    from botocore.config import Config

    world.bucket(MEMBER_A, SOURCE)
    legacy = world.client("s3", MEMBER_A, config=Config(request_checksum_calculation="when_required"))
    body = os.urandom(2048)
    response = legacy.put_object(Bucket=SOURCE, Key="legacy.bin", Body=body)
    assert not any(k.startswith("Checksum") for k in world.head(MEMBER_A, SOURCE, "legacy.bin"))
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(
            MEMBER_A, SOURCE, "legacy.bin", version_id=response["VersionId"], etag=response["ETag"], size=len(body)
        )
    )
    # THEN both were read and hashed (SHA-256), and the verified tag holds that hash
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.verification is not None and outcome.verification.startswith("stream-both SHA256:")
    assert world.tags(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)[TAG_VERIFIED].startswith("SHA256:")
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body


KEYS = [
    "with spaces/and  double  spaces.txt",
    "unicode/ünïcödé/日本語.txt",
    "emoji/😀🔥/🗝️.txt",
    "plus+sign+file.txt",
    "percent%20not%2Fdecoded%.txt",
    "amp&ersand&more.txt",
    "angle<brackets>/<!channel>.txt",
    "question?mark=1&b=2.txt",
    "hash#fragment#.txt",
    "trailing/slash/",
    "d/" + "x" * 998,  # a 1,000-byte key: the quarantine key needs the hash form
]


@pytest.mark.parametrize("key", KEYS, ids=[k[:24] for k in KEYS])
def test_keys_are_raw_strings_never_decoded(world: MoveWorld, key: str) -> None:
    # GIVEN an object whose key has characters that break naive URL handling
    world.bucket(MEMBER_A, SOURCE)
    body = key.encode("utf-8")[:64] + b"|payload"
    version, etag = world.put(MEMBER_A, SOURCE, key, body, Metadata={"k": "v"})
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, key, version_id=version, etag=etag, size=len(body))
    )
    # THEN exactly that key moved, to a quarantine key within 1,024 bytes that the record can name again
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.quarantine_key == quarantine_key(FINDING_ID, SOURCE, key)
    assert len(outcome.quarantine_key.encode("utf-8")) <= 1024
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    assert world.read(MEMBER_A, SOURCE, key, version) is None
    # AND the full original key is recoverable from the copy itself
    head = world.head(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert decode_key(head["Metadata"][METADATA_SOURCE_KEY]) == key
    tags = world.tags(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert TAG_SOURCE_KEY_B64 in tags or TAG_SOURCE_KEY_SHA256 in tags
    assert outcome.older_versions == 0


def test_long_key_gets_the_hash_form(world: MoveWorld) -> None:
    key = "d/" + "x" * 998
    qkey = quarantine_key(FINDING_ID, SOURCE, key)
    assert "~" in qkey and len(qkey.encode()) <= 1024
    assert not qkey.endswith(key)


def _locked_object(world: MoveWorld, **lock: Any) -> tuple[str, str, bytes]:
    world.bucket(MEMBER_A, "payments-locked", object_lock=True)
    body = b"retained record"
    version, etag = world.put(MEMBER_A, "payments-locked", "ledger.csv", body, **lock)
    return version, etag, body


@pytest.mark.parametrize(
    "lock",
    [
        {"ObjectLockMode": "COMPLIANCE"},
        {"ObjectLockMode": "GOVERNANCE"},
        {"ObjectLockLegalHoldStatus": "ON"},
    ],
    ids=["compliance", "governance", "legal-hold"],
)
def test_object_lock_blocks_and_keeps_both_copies(world: MoveWorld, lock: dict[str, Any]) -> None:
    # GIVEN an object under Object Lock retention or a legal hold
    if "ObjectLockMode" in lock:
        lock = {**lock, "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=30)}
    version, etag, body = _locked_object(world, **lock)
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, "payments-locked", "ledger.csv", version_id=version, etag=etag, size=len(body))
    )
    # THEN BLOCKED(locked), truthfully: the source version stays, a verified copy is in quarantine
    assert (outcome.status, outcome.reason) == (MoveStatus.BLOCKED, BlockReason.LOCKED), outcome
    assert outcome.copy_kept
    assert world.read(MEMBER_A, "payments-locked", "ledger.csv", version) == body
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body
    assert "it was not deleted" in outcome.detail
    # AND the facts say so: the finding's version is still there, still the key's current object
    assert outcome.facts == MoveFacts(CopyCheck.CHECKSUM, SourceFate.KEPT, version, AtKey.FINDING, listed=True)
    assert outcome.older_versions == 0  # versions other than the finding's own


def test_delete_denied_by_policy_blocks_as_locked_with_both_copies(world: MoveWorld) -> None:
    # GIVEN a member role that may copy but not delete (moto's IAM enforcement checks assumed roles)
    world.bucket(MEMBER_A, SOURCE)
    body = b"payroll"
    version, etag = world.put(MEMBER_A, SOURCE, "payroll.csv", body)
    member_role(
        world,
        MEMBER_A,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"},
                {"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "*"},
            ],
        },
    )
    user = remediator_user(
        world.aws, {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    )
    from macie_chatops.move import ObjectMover
    from macie_chatops.sessions import MemberSessions

    sessions = MemberSessions(role_name="macie-chatops-remediation", base_session=user.session())
    request = world.request(MEMBER_A, SOURCE, "payroll.csv", version_id=version, etag=etag, size=len(body))
    # WHEN it is quarantined under IAM enforcement
    with iam_enforced(world.aws):
        clients = sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id=FINDING_ID)
        outcome = ObjectMover(clients.s3, multipart_threshold_bytes=64 * MB).quarantine(request)
    # THEN the denied delete is BLOCKED(locked), and both copies are there
    assert (outcome.status, outcome.reason) == (MoveStatus.BLOCKED, BlockReason.LOCKED), outcome
    assert "denied" in outcome.detail
    assert world.read(MEMBER_A, SOURCE, "payroll.csv", version) == body
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body


def test_source_tags_denied_still_moves_and_leaves_the_tags_unknown(world: MoveWorld) -> None:
    # GIVEN a tagged object whose tags S3 refuses to show the member role (a bucket policy or SCP, say).
    # moto does not authorize tag reads at all, so S3's AccessDenied for GetObjectTagging is answered on
    # the real client, before the request leaves it; every other call goes to moto's server as usual.
    world.bucket(MEMBER_A, SOURCE)
    body = b"iban=DE89370400440532013000\n"
    version, etag = world.put(MEMBER_A, SOURCE, "iban.csv", body, Tagging="team=payments")
    # the member-role client the mover gets (sessions are cached per finding)
    s3 = world.sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id=FINDING_ID).s3

    def access_denied(**_: Any) -> tuple[Any, dict[str, Any]]:
        # (this finding's mover reads tags only of its source: its quarantine key holds no copy yet)
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        error = {"Code": "AccessDenied", "Message": "Access Denied"}
        return AWSResponse("", 403, HTTPHeaders(), None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}

    s3.meta.events.register("before-call.s3.GetObjectTagging", cast(Any, access_denied))
    request = world.request(MEMBER_A, SOURCE, "iban.csv", version_id=version, etag=etag, size=len(body))
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A).quarantine(request)
    # THEN the move is done, and its tags are recorded as unknown (not as "none")
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.original_tags is None
    assert "original_tags" not in outcome.location(REGION)
    assert world.read(MEMBER_A, SOURCE, "iban.csv", version) is None
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body


def test_missing_quarantine_bucket_fails_without_retry(world: MoveWorld) -> None:
    # GIVEN a member account where the member stack (and its quarantine bucket) is not deployed
    third = "456789012345"
    world.bucket(third, "dev-bucket")
    version, etag = world.put(third, "dev-bucket", "a.txt", b"x")
    # WHEN a finding there is quarantined
    outcome = world.mover(third).quarantine(
        world.request(third, "dev-bucket", "a.txt", version_id=version, etag=etag, size=1)
    )
    # THEN FAILED, not retryable, naming the bucket; the source is untouched
    assert outcome.status is MoveStatus.FAILED and not outcome.retryable
    assert quarantine_bucket_name(third, REGION) in outcome.detail
    assert world.read(third, "dev-bucket", "a.txt", version) == b"x"


def test_each_member_account_quarantines_into_its_own_bucket(world: MoveWorld) -> None:
    # GIVEN a finding in each of two member accounts
    world.provision_member(MEMBER_B)
    outcomes = {}
    for account, bucket in ((MEMBER_A, "payments-a-data"), (MEMBER_B, "analytics-b-data")):
        world.bucket(account, bucket)
        version, etag = world.put(account, bucket, "pii.json", account.encode())
        outcomes[account] = world.mover(account).quarantine(
            world.request(account, bucket, "pii.json", version_id=version, etag=etag, size=12)
        )
    # THEN each object is in its own account's quarantine bucket, and only that account sees that bucket
    for account, outcome in outcomes.items():
        assert outcome.status is MoveStatus.QUARANTINED
        assert outcome.quarantine_bucket == quarantine_bucket_name(account, REGION)
        assert world.quarantined(account, outcome.quarantine_key) == account.encode()
    names_a = {b["Name"] for b in world.s3(MEMBER_A).list_buckets()["Buckets"]}
    assert quarantine_bucket_name(MEMBER_A, REGION) in names_a
    assert quarantine_bucket_name(MEMBER_B, REGION) not in names_a


def test_an_object_of_another_finding_at_the_key_is_never_touched(world: MoveWorld) -> None:
    # GIVEN something at this finding's quarantine key whose tags name another finding
    world.bucket(MEMBER_A, SOURCE)
    version, etag = world.put(MEMBER_A, SOURCE, "a.txt", b"mine")
    qkey = quarantine_key(FINDING_ID, SOURCE, "a.txt")
    world.s3(MEMBER_A).put_object(
        Bucket=QUARANTINE_A, Key=qkey, Body=b"theirs", Tagging=f"{TAG_FINDING_ID}=someone-else"
    )
    # WHEN the finding is quarantined
    outcome = world.mover(MEMBER_A).quarantine(
        world.request(MEMBER_A, SOURCE, "a.txt", version_id=version, etag=etag, size=4)
    )
    # THEN FAILED loudly; both objects are as they were
    assert outcome.status is MoveStatus.FAILED, outcome
    assert world.read(MEMBER_A, SOURCE, "a.txt", version) == b"mine"
    assert world.quarantined(MEMBER_A, qkey) == b"theirs"


def test_a_repeated_move_is_a_no_op_that_reports_the_same_truth(world: MoveWorld) -> None:
    world.bucket(MEMBER_A, SOURCE)
    version, etag = world.put(MEMBER_A, SOURCE, "a.txt", b"abc")
    request = world.request(MEMBER_A, SOURCE, "a.txt", version_id=version, etag=etag, size=3)
    first = world.mover(MEMBER_A).quarantine(request)
    copies_before = world.versions(MEMBER_A, QUARANTINE_A, first.quarantine_key)
    # WHEN the same job runs again
    second = world.mover(MEMBER_A).quarantine(request)
    # THEN the same outcome, resumed, with no second copy written
    assert (first.status, second.status) == (MoveStatus.QUARANTINED, MoveStatus.QUARANTINED)
    assert second.resumed and not first.resumed
    assert world.versions(MEMBER_A, QUARANTINE_A, first.quarantine_key) == copies_before


def test_large_copies_verify_in_parallel_ranges(world: MoveWorld) -> None:
    # GIVEN a multipart copy verified by reading it (the source has a CRC32), in 3 MiB ranges read at once
    from macie_chatops.move import ObjectMover

    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(11 * MB + 12345)
    version, etag = world.put(MEMBER_A, SOURCE, "parallel.bin", body)
    clients = world.sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id=FINDING_ID)
    ranges: list[str] = []
    clients.s3.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: ranges.append(params.get("Range", "")), unique_id="r"
    )
    mover = ObjectMover(
        clients.s3,
        multipart_threshold_bytes=5 * MB,
        max_concurrency=4,
        verify_range_bytes=3 * MB,
        stream_chunk_bytes=1 * MB,
    )
    # WHEN it is quarantined
    outcome = mover.quarantine(
        world.request(MEMBER_A, SOURCE, "parallel.bin", version_id=version, etag=etag, size=len(body))
    )
    # THEN the copy was read as 4 ranges and their CRCs joined to the source's CRC32
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.verification is not None and outcome.verification.startswith("stream-copy CRC32:")
    assert len(ranges) == 4 and all(r.startswith("bytes=") for r in ranges)
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body


def _counting_s3(world: MoveWorld) -> tuple[Any, list[str]]:
    """A member-role S3 client for the mover, and the list it notes every operation it calls in (in order)."""
    clients = world.sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id=FINDING_ID)
    calls: list[str] = []

    def note(model: Any, **_: Any) -> None:
        calls.append(model.name)

    clients.s3.meta.events.register("before-call.s3", note, unique_id="count-calls")
    return clients.s3, calls


def test_a_single_part_move_makes_five_s3_calls(world: MoveWorld) -> None:
    # GIVEN a versioned object with a checksum S3 reports (below the multipart threshold)
    from macie_chatops.move import ObjectMover

    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(2048)
    version, etag = world.put(MEMBER_A, SOURCE, "exports/cards.csv", body)
    request = world.request(MEMBER_A, SOURCE, "exports/cards.csv", version_id=version, etag=etag, size=len(body))
    s3, calls = _counting_s3(world)

    # WHEN it is quarantined
    outcome = ObjectMover(s3, multipart_threshold_bytes=64 * MB).quarantine(request)

    # THEN it is quarantined and verified, with no look at the quarantine key (the copy is conditional on it
    # holding nothing), no HEAD after the copy (its response carries the copy's checksum) and no tagging call
    # (the copy request carries the checksum it must have)
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert not outcome.resumed
    assert outcome.verification is not None and outcome.verification.startswith("s3 CRC32:")
    assert calls == [
        "HeadObject",  # the source version
        "GetObjectTagging",  # the source's own tags, for a restore
        "CopyObject",  # If-None-Match: * on the quarantine key
        "DeleteObject",
        "ListObjectVersions",  # what the key holds now (the message says it)
    ]
    tags = world.tags(MEMBER_A, QUARANTINE_A, outcome.quarantine_key)
    assert tags[TAG_VERIFIED] == outcome.verification.removeprefix("s3 ")
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body


def test_a_quarantine_key_that_is_not_free_is_read_and_the_plan_followed(world: MoveWorld) -> None:
    # GIVEN an earlier attempt's copy at the quarantine key (it died after copying), and the source still there
    from macie_chatops.move import ObjectMover

    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(1500)
    version, etag = world.put(MEMBER_A, SOURCE, "exports/cards.csv", body)
    request = world.request(MEMBER_A, SOURCE, "exports/cards.csv", version_id=version, etag=etag, size=len(body))
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.COPIED)).quarantine(request)
    s3, calls = _counting_s3(world)

    # WHEN the job runs again
    outcome = ObjectMover(s3, multipart_threshold_bytes=64 * MB).quarantine(request)

    # THEN S3 refused the conditional copy, the key was read, and the earlier copy was verified and kept: one copy
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.resumed
    assert calls[:4] == ["HeadObject", "GetObjectTagging", "CopyObject", "HeadObject"]
    assert calls.count("CopyObject") == 1
    assert len(world.versions(MEMBER_A, QUARANTINE_A, request.quarantine_key)) == 1
    assert world.quarantined(MEMBER_A, outcome.quarantine_key) == body


def test_a_copy_that_does_not_verify_is_left_unverified_and_the_retry_replaces_it(world: MoveWorld) -> None:
    # GIVEN an object, and S3 writing a corrupt copy (its response and its HEAD report another checksum)
    from macie_chatops.move import ObjectMover
    from macie_chatops_sandbox.testkit.faults import CorruptCopies

    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(1024)
    version, etag = world.put(MEMBER_A, SOURCE, "exports/cards.csv", body)
    request = world.request(MEMBER_A, SOURCE, "exports/cards.csv", version_id=version, etag=etag, size=len(body))
    s3, calls = _counting_s3(world)
    s3_faults = CorruptCopies()
    s3_faults.attach(s3)
    mover = ObjectMover(s3, multipart_threshold_bytes=64 * MB)

    # WHEN it is quarantined
    outcome = mover.quarantine(request)

    # THEN FAILED and retryable, saying so truthfully; nothing deleted anywhere: the copy is still in quarantine
    # (never trusted), the source untouched
    assert (outcome.status, outcome.retryable) == (MoveStatus.FAILED, True), outcome
    assert "did not verify" in outcome.detail
    assert "left unverified in quarantine, and the retry replaces it" in outcome.detail
    assert "DeleteObject" not in calls
    assert len(s3_faults.corrupt) == 1
    quarantined_versions = world.versions(MEMBER_A, QUARANTINE_A, request.quarantine_key)
    assert [v["VersionId"] for v in quarantined_versions] == list(s3_faults.corrupt)
    assert world.read(MEMBER_A, SOURCE, "exports/cards.csv", version) == body

    # WHEN the job is retried, S3 writing honestly again
    s3_faults.writing = False
    calls.clear()
    retried = mover.quarantine(request)

    # THEN the exclusive copy was refused, the copy at the key read and not trusted (it does not verify against the
    # source), a new copy made over it and verified, and the source deleted: the corrupt copy is noncurrent now
    assert retried.status is MoveStatus.QUARANTINED, retried
    assert calls[:4] == ["HeadObject", "GetObjectTagging", "CopyObject", "HeadObject"]
    assert calls.count("CopyObject") == 2
    versions = world.versions(MEMBER_A, QUARANTINE_A, request.quarantine_key)
    assert len(versions) == 2
    current = next(v for v in versions if v["IsLatest"])
    assert current["VersionId"] == retried.quarantine_version_id and current["VersionId"] not in s3_faults.corrupt
    assert world.quarantined(MEMBER_A, request.quarantine_key) == body
    assert world.read(MEMBER_A, SOURCE, "exports/cards.csv", version) is None
