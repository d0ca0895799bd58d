"""Restore: the exact quarantined bytes back to the original bucket and key, metadata and all."""

from __future__ import annotations

import dataclasses
import os
from urllib.parse import urlencode

import pytest

from macie_chatops.move import MoveOutcome, MoveRequest, RestoreRequest
from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import MoveStatus, MoveStep, RestoreStatus, decode_original_tags
from tests.conftest import AwsSandbox
from tests.functional.move_world import MB, MEMBER_A, REGION, Crash, MoveWorld, build_move_world, crash_at, sha256

SOURCE = "payments-prod-exports"
QUARANTINE = quarantine_bucket_name(MEMBER_A, REGION)
CONTENT = {
    "ContentType": "application/json",
    "CacheControl": "no-cache",
    "ContentDisposition": 'attachment; filename="cards.json"',
    "ContentLanguage": "de",
}


@pytest.fixture
def world(aws: AwsSandbox) -> MoveWorld:
    return build_move_world(aws)


def _quarantined(
    world: MoveWorld,
    *,
    versioned: bool = True,
    size: int = 2048,
    key: str = "exports/cards.json",
    threshold_mb: int = 64,
) -> tuple[MoveRequest, MoveOutcome, bytes, dict[str, str]]:
    world.bucket(MEMBER_A, SOURCE, versioned=versioned)
    body = os.urandom(size)
    metadata = {"owner": "payments", "classification": "internal"}
    version, etag = world.put(MEMBER_A, SOURCE, key, body, Metadata=metadata, **CONTENT)
    request = world.request(MEMBER_A, SOURCE, key, version_id=version, etag=etag, size=size)
    outcome = world.mover(MEMBER_A, threshold_mb=threshold_mb).quarantine(request)
    assert outcome.status is MoveStatus.QUARANTINED
    return request, outcome, body, metadata


def _restore_request(request: MoveRequest, outcome: MoveOutcome) -> RestoreRequest:
    return RestoreRequest(
        request.finding_id, MEMBER_A, REGION, request.bucket, request.key, outcome.quarantine_key, "STANDARD"
    )


@pytest.mark.parametrize(
    ("versioned", "size", "threshold_mb"),
    [(True, 2048, 64), (False, 2048, 64), (True, 6 * MB, 5)],
    ids=["versioned", "unversioned", "multipart"],
)
def test_restore_round_trip_returns_identical_bytes_and_metadata(
    world: MoveWorld, versioned: bool, size: int, threshold_mb: int
) -> None:
    # GIVEN a quarantined object
    request, outcome, body, metadata = _quarantined(world, versioned=versioned, size=size, threshold_mb=threshold_mb)
    assert world.read(MEMBER_A, SOURCE, request.key) is None
    # WHEN it is restored
    restored = world.mover(MEMBER_A, threshold_mb=threshold_mb).restore(_restore_request(request, outcome))
    # THEN the same bytes are back at the original key (a new version on a versioned bucket)
    assert restored.status is RestoreStatus.RESTORED, restored
    assert sha256(world.read(MEMBER_A, SOURCE, request.key)) == sha256(body)
    head = world.head(MEMBER_A, SOURCE, request.key)
    assert (restored.restored_version_id is not None) == versioned
    if versioned:
        assert head["VersionId"] == restored.restored_version_id != request.version_id
    # AND the metadata and content headers are the original ones (no quarantine leftovers, no tags)
    assert head["Metadata"] == metadata
    for name, value in CONTENT.items():
        assert head[name] == value
    assert world.tags(MEMBER_A, SOURCE, request.key) == {}
    # AND the quarantine copy is kept (decision: evidence, idempotency; the bucket's retention expires it)
    assert sha256(world.quarantined(MEMBER_A, outcome.quarantine_key)) == sha256(body)


def test_restore_after_a_crash_adopts_its_own_copy(world: MoveWorld) -> None:
    # GIVEN a restore that died right after its copy landed
    request, outcome, body, _ = _quarantined(world)
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.RESTORE_COPIED)).restore(_restore_request(request, outcome))
    versions_after_crash = world.versions(MEMBER_A, SOURCE, request.key)
    # WHEN the restore job is redelivered
    restored = world.mover(MEMBER_A).restore(_restore_request(request, outcome))
    # THEN it recognises its own bytes and does not write them a second time
    assert restored.status is RestoreStatus.RESTORED and restored.resumed, restored
    assert world.versions(MEMBER_A, SOURCE, request.key) == versions_after_crash
    assert sha256(world.read(MEMBER_A, SOURCE, request.key)) == sha256(body)


def test_restore_refuses_to_replace_a_newer_object(world: MoveWorld) -> None:
    # GIVEN a quarantined object whose key now holds something new
    request, outcome, body, _ = _quarantined(world, versioned=False)
    world.put(MEMBER_A, SOURCE, request.key, b"uploaded since")
    # WHEN a restore is asked for
    restored = world.mover(MEMBER_A).restore(_restore_request(request, outcome))
    # THEN it is refused; the new object and the quarantine copy are both untouched
    assert restored.status is RestoreStatus.REFUSED, restored
    assert "different object" in restored.detail
    assert world.read(MEMBER_A, SOURCE, request.key) == b"uploaded since"
    assert sha256(world.quarantined(MEMBER_A, outcome.quarantine_key)) == sha256(body)


def test_restore_of_an_older_version_while_a_newer_is_current_is_refused(world: MoveWorld) -> None:
    # GIVEN the exact older version quarantined while a newer version is current
    world.bucket(MEMBER_A, SOURCE)
    version, etag = world.put(MEMBER_A, SOURCE, "a.csv", b"old sensitive")
    world.put(MEMBER_A, SOURCE, "a.csv", b"newer")
    request = world.request(MEMBER_A, SOURCE, "a.csv", version_id=version, etag=etag, size=13)
    outcome = world.mover(MEMBER_A).quarantine(request)
    # WHEN restored
    restored = world.mover(MEMBER_A).restore(_restore_request(request, outcome))
    # THEN refused rather than superseding the newer version
    assert restored.status is RestoreStatus.REFUSED
    assert world.read(MEMBER_A, SOURCE, "a.csv") == b"newer"


def test_restore_without_a_quarantine_copy_fails_loudly(world: MoveWorld) -> None:
    request, outcome, _, _ = _quarantined(world)
    for version in world.versions(MEMBER_A, QUARANTINE, outcome.quarantine_key):
        world.s3(MEMBER_A).delete_object(Bucket=QUARANTINE, Key=outcome.quarantine_key, VersionId=version["VersionId"])
    restored = world.mover(MEMBER_A).restore(_restore_request(request, outcome))
    assert restored.status is RestoreStatus.FAILED
    assert "does not exist" in restored.detail


def test_restore_into_a_deleted_bucket_is_refused(world: MoveWorld) -> None:
    # GIVEN the original bucket emptied and deleted after the quarantine
    request, outcome, _, _ = _quarantined(world, versioned=False)
    world.s3(MEMBER_A).delete_bucket(Bucket=SOURCE)
    restored = world.mover(MEMBER_A).restore(_restore_request(request, outcome))
    assert restored.status is RestoreStatus.REFUSED, restored


def test_the_restore_copy_is_conditional_on_the_key_being_empty(world: MoveWorld) -> None:
    # GIVEN a quarantined object and a record of what the restore sends to S3
    request, outcome, _, _ = _quarantined(world, versioned=False)
    member_s3 = world.sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id=request.finding_id).s3
    sent: list[bytes | None] = []

    def record(request: object, **_: object) -> None:
        sent.append(request.headers.get("If-None-Match"))  # type: ignore[attr-defined]

    member_s3.meta.events.register("before-send.s3.CopyObject", record, unique_id="record")
    try:
        # WHEN it is restored (single-copy path)
        restored = world.mover(MEMBER_A).restore(_restore_request(request, outcome))
    finally:
        member_s3.meta.events.unregister("before-send.s3.CopyObject", unique_id="record")
    # THEN the copy carried If-None-Match: * (S3 refuses it if an object appeared since the restore looked;
    # moto does not enforce it on CopyObject, so the multipart test below shows the refusal itself)
    assert restored.status is RestoreStatus.RESTORED
    assert sent == [b"*"]


def test_an_object_written_during_a_multipart_restore_is_never_overwritten(world: MoveWorld) -> None:
    # GIVEN a multipart-sized quarantined object from an unversioned bucket (where an overwrite loses data)
    request, outcome, _, _ = _quarantined(world, versioned=False, size=6 * MB, threshold_mb=5)
    member_s3 = world.sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id=request.finding_id).s3
    admin = world.s3(MEMBER_A)

    def someone_uploads(**_: object) -> None:
        # ...someone writes the key after the restore looked (HEAD: empty) and before its copy completes
        admin.put_object(Bucket=SOURCE, Key=request.key, Body=b"written during the restore")

    member_s3.meta.events.register_first("before-call.s3.CompleteMultipartUpload", someone_uploads, unique_id="race")
    try:
        # WHEN the restore copies
        restored = world.mover(MEMBER_A, threshold_mb=5).restore(_restore_request(request, outcome))
    finally:
        member_s3.meta.events.unregister("before-call.s3.CompleteMultipartUpload", unique_id="race")
    # THEN S3 refused the completion (If-None-Match), and the restore reports it instead of overwriting
    assert restored.status is RestoreStatus.REFUSED, restored
    assert world.read(MEMBER_A, SOURCE, request.key) == b"written during the restore"


@pytest.mark.parametrize(("size", "threshold_mb"), [(2048, 64), (6 * MB, 5)], ids=["single-copy", "multipart"])
def test_the_objects_own_tags_are_read_at_quarantine_and_put_back_on_restore(
    world: MoveWorld, size: int, threshold_mb: int
) -> None:
    # GIVEN a tagged object (tags that drive access and lifecycle rules, with characters that need encoding)
    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(size)
    tags = {"team": "payments", "data class": "pii/card: 7y", "owner": "ops+sec@example.com", "rule": "a=b"}
    tagging = urlencode(list(tags.items()))
    version, etag = world.put(MEMBER_A, SOURCE, "exports/tagged.bin", body, Tagging=tagging)
    request = world.request(MEMBER_A, SOURCE, "exports/tagged.bin", version_id=version, etag=etag, size=size)
    # WHEN it is quarantined
    outcome = world.mover(MEMBER_A, threshold_mb=threshold_mb).quarantine(request)
    # THEN the outcome (and so the record) holds the object's own tags, and the copy carries only ours
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert dict(outcome.original_tags or ()) == tags
    assert decode_original_tags(outcome.location(REGION)["original_tags"]) == outcome.original_tags
    assert all(key.startswith("macie-chatops:") for key in world.tags(MEMBER_A, QUARANTINE, outcome.quarantine_key))
    # WHEN it is restored with the tags the record kept
    restore = dataclasses.replace(_restore_request(request, outcome), original_tags=outcome.original_tags or ())
    restored = world.mover(MEMBER_A, threshold_mb=threshold_mb).restore(restore)
    # THEN the bytes and the object's own tags are back
    assert restored.status is RestoreStatus.RESTORED, restored
    assert sha256(world.read(MEMBER_A, SOURCE, request.key)) == sha256(body)
    assert world.tags(MEMBER_A, SOURCE, request.key) == tags


def test_an_untagged_object_is_restored_untagged_and_unknown_tags_are_said(world: MoveWorld) -> None:
    # GIVEN an untagged object, quarantined
    _, outcome, _, _ = _quarantined(world, versioned=True, size=1024, threshold_mb=64)
    # THEN its tags are known to be none (not unknown)
    assert outcome.original_tags == ()
    assert outcome.location(REGION)["original_tags"] == "[]"
    # AND an outcome whose tags could not be read says nothing about them
    assert "original_tags" not in dataclasses.replace(outcome, original_tags=None).location(REGION)


def test_a_multipart_restore_that_died_before_its_tags_gets_them_on_redelivery(world: MoveWorld) -> None:
    # GIVEN a tagged object quarantined by a multipart copy, and a restore that died right after its copy
    # landed (a multipart restore tags after the copy)
    world.bucket(MEMBER_A, SOURCE)
    body = os.urandom(6 * MB)
    version, etag = world.put(MEMBER_A, SOURCE, "big.bin", body, Tagging="team=payments")
    request = world.request(MEMBER_A, SOURCE, "big.bin", version_id=version, etag=etag, size=len(body))
    outcome = world.mover(MEMBER_A, threshold_mb=5).quarantine(request)
    restore = dataclasses.replace(_restore_request(request, outcome), original_tags=outcome.original_tags or ())
    with pytest.raises(Crash):
        world.mover(MEMBER_A, threshold_mb=5, checkpoint=crash_at(MoveStep.RESTORE_COPIED)).restore(restore)
    assert world.tags(MEMBER_A, SOURCE, "big.bin") == {}
    # WHEN the restore job is redelivered
    restored = world.mover(MEMBER_A, threshold_mb=5).restore(restore)
    # THEN it adopts its own copy and finishes it: the object's tags are back
    assert restored.status is RestoreStatus.RESTORED and restored.resumed, restored
    assert world.tags(MEMBER_A, SOURCE, "big.bin") == {"team": "payments"}
