"""Crash injection: the mover dies after each step, the job is redelivered, and no byte is ever lost.

At every crash point the object's bytes must exist in the source or the quarantine bucket (checked by
SHA-256), and the redelivered move must end in the true final state without a second delete.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from macie_chatops.move import MoveRequest
from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import (
    TAG_VERIFIED,
    AtKey,
    BlockReason,
    CopyCheck,
    MoveFacts,
    MoveStatus,
    MoveStep,
    SourceFate,
)
from tests.conftest import AwsSandbox
from tests.functional.move_world import (
    MB,
    MEMBER_A,
    REGION,
    Crash,
    MoveWorld,
    build_move_world,
    crash_at,
    next_second,
    sha256,
)

SOURCE = "payments-prod-exports"
QUARANTINE = quarantine_bucket_name(MEMBER_A, REGION)
STEPS = [MoveStep.SOURCE_READ, MoveStep.COPIED, MoveStep.VERIFIED, MoveStep.DELETED, MoveStep.COUNTED]


@pytest.fixture
def world(aws: AwsSandbox) -> MoveWorld:
    return build_move_world(aws)


def _object(
    world: MoveWorld, *, versioned: bool, size: int, key: str = "exports/cards.csv"
) -> tuple[MoveRequest, bytes]:
    world.bucket(MEMBER_A, SOURCE, versioned=versioned)
    body = os.urandom(size)
    version, etag = world.put(MEMBER_A, SOURCE, key, body, Metadata={"owner": "payments"})
    return world.request(MEMBER_A, SOURCE, key, version_id=version, etag=etag, size=size), body


def _somewhere(world: MoveWorld, request: MoveRequest, body: bytes) -> set[str]:
    """Where the object's exact bytes are now (by checksum)."""
    found = set()
    if sha256(world.read(MEMBER_A, SOURCE, request.key, request.version_id or None)) == sha256(body):
        found.add("source")
    if sha256(world.quarantined(MEMBER_A, request.quarantine_key)) == sha256(body):
        found.add("quarantine")
    return found


@pytest.mark.parametrize("step", STEPS, ids=[s.value for s in STEPS])
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_crash_after_each_step_then_redelivery_completes_the_move(
    world: MoveWorld, step: MoveStep, versioned: bool
) -> None:
    # GIVEN an object and a mover that dies right after `step`
    request, body = _object(world, versioned=versioned, size=3000)
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(step)).quarantine(request)

    # THEN at the crash the bytes are in the source or in quarantine (never nowhere)
    assert _somewhere(world, request, body), f"object lost after crash at {step}"
    # AND the source was deleted only if the crash came after the delete
    source_left = world.read(MEMBER_A, SOURCE, request.key, request.version_id or None) is not None
    assert source_left == (step in (MoveStep.SOURCE_READ, MoveStep.COPIED, MoveStep.VERIFIED))

    # WHEN the job is redelivered
    outcome = world.mover(MEMBER_A).quarantine(request)

    # THEN the move completes: quarantined, exactly once in quarantine, gone from the source
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert _somewhere(world, request, body) == {"quarantine"}
    assert outcome.resumed == (step is not MoveStep.SOURCE_READ)
    assert world.tags(MEMBER_A, QUARANTINE, request.quarantine_key)[TAG_VERIFIED]
    copies = world.versions(MEMBER_A, QUARANTINE, request.quarantine_key)
    assert len(copies) == 1, "a redelivery must not write a second copy"


@pytest.mark.parametrize("step", [MoveStep.COPIED, MoveStep.VERIFIED, MoveStep.DELETED])
def test_crash_in_a_multipart_move_then_redelivery(world: MoveWorld, step: MoveStep) -> None:
    # GIVEN a multipart-sized object (threshold lowered to 5 MiB) and a crash after `step`
    request, body = _object(world, versioned=True, size=6 * MB, key="big.bin")
    with pytest.raises(Crash):
        world.mover(MEMBER_A, threshold_mb=5, checkpoint=crash_at(step)).quarantine(request)
    assert _somewhere(world, request, body)
    # WHEN redelivered
    outcome = world.mover(MEMBER_A, threshold_mb=5).quarantine(request)
    # THEN quarantined with the same bytes
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert _somewhere(world, request, body) == {"quarantine"}


def test_redelivery_twice_after_completion_changes_nothing(world: MoveWorld) -> None:
    request, body = _object(world, versioned=True, size=100)
    first = world.mover(MEMBER_A).quarantine(request)
    second = world.mover(MEMBER_A).quarantine(request)
    third = world.mover(MEMBER_A).quarantine(request)
    assert [o.status for o in (first, second, third)] == [MoveStatus.QUARANTINED] * 3
    assert _somewhere(world, request, body) == {"quarantine"}
    assert len(world.versions(MEMBER_A, QUARANTINE, request.quarantine_key)) == 1


def test_a_corrupted_copy_is_never_trusted_on_redelivery(world: MoveWorld) -> None:
    # GIVEN a crash after the copy, and the copy then replaced by different bytes
    request, body = _object(world, versioned=True, size=500)
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.COPIED)).quarantine(request)
    world.s3(MEMBER_A).put_object(Bucket=QUARANTINE, Key=request.quarantine_key, Body=b"corrupted")
    # WHEN the job is redelivered
    outcome = world.mover(MEMBER_A).quarantine(request)
    # THEN the copy is re-made from the source and verified before the delete
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert _somewhere(world, request, body) == {"quarantine"}


def test_source_deleted_by_someone_else_after_our_copy_reports_quarantined(world: MoveWorld) -> None:
    # GIVEN a crash after the copy (not yet verified), then the source version deleted by someone else
    request, body = _object(world, versioned=True, size=800)
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.COPIED)).quarantine(request)
    world.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key=request.key, VersionId=request.version_id)
    # WHEN redelivered
    outcome = world.mover(MEMBER_A).quarantine(request)
    # THEN the copy is checked against the checksum recorded at copy time and reported as quarantined
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.resumed
    assert world.tags(MEMBER_A, QUARANTINE, request.quarantine_key)[TAG_VERIFIED]
    assert _somewhere(world, request, body) == {"quarantine"}


def test_untagged_copy_with_the_source_gone_is_confirmed_by_size(world: MoveWorld) -> None:
    # GIVEN a copy whose tags never got written (a crash between a multipart copy and its tagging),
    # and a source version deleted meanwhile
    request, body = _object(world, versioned=True, size=640)
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.COPIED)).quarantine(request)
    world.s3(MEMBER_A).delete_object_tagging(Bucket=QUARANTINE, Key=request.quarantine_key)
    world.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key=request.key, VersionId=request.version_id)
    # WHEN redelivered
    outcome = world.mover(MEMBER_A).quarantine(request)
    # THEN quarantined, and the report says the copy was confirmed by size only
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.verification is not None and "size only" in outcome.verification
    assert _somewhere(world, request, body) == {"quarantine"}


def test_neither_source_nor_copy_reports_missing(world: MoveWorld) -> None:
    # GIVEN a crash after the copy, then both the source and the copy gone (someone emptied both)
    request, _ = _object(world, versioned=False, size=10)
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.COPIED)).quarantine(request)
    world.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key=request.key)
    for version in world.versions(MEMBER_A, QUARANTINE, request.quarantine_key):
        world.s3(MEMBER_A).delete_object(Bucket=QUARANTINE, Key=request.quarantine_key, VersionId=version["VersionId"])
    # WHEN redelivered
    outcome = world.mover(MEMBER_A).quarantine(request)
    # THEN the truth: blocked, missing, nothing anywhere
    assert (outcome.status, outcome.reason) == (MoveStatus.BLOCKED, BlockReason.MISSING)


def test_overwritten_after_verified_copy_keeps_the_new_object(world: MoveWorld) -> None:
    # GIVEN an unversioned object copied and verified, then overwritten before our delete
    request, body = _object(world, versioned=False, size=300)
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.VERIFIED)).quarantine(request)
    world.put(MEMBER_A, SOURCE, request.key, b"a new upload")
    # WHEN redelivered
    outcome = world.mover(MEMBER_A).quarantine(request)
    # THEN the new object is left alone; the finding's bytes are in quarantine; BLOCKED(changed), both kept
    assert (outcome.status, outcome.reason) == (MoveStatus.BLOCKED, BlockReason.CHANGED), outcome
    assert outcome.copy_kept
    assert world.read(MEMBER_A, SOURCE, request.key) == b"a new upload"
    assert world.quarantined(MEMBER_A, request.quarantine_key) == body


def test_a_resumed_move_orders_what_remains_by_the_time_macie_read(world: MoveWorld) -> None:
    # GIVEN a crash after the copy, a newer version written since, and the finding's version then deleted by
    # someone else (the mover cannot read its time any more; the finding carries it, as Macie read it)
    request, body = _object(world, versioned=True, size=200)
    written = world.head(MEMBER_A, SOURCE, request.key, request.version_id)["LastModified"]
    with pytest.raises(Crash):
        world.mover(MEMBER_A, checkpoint=crash_at(MoveStep.COPIED)).quarantine(request)
    next_second()
    world.put(MEMBER_A, SOURCE, request.key, b"a newer upload")
    world.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key=request.key, VersionId=request.version_id)
    # WHEN redelivered with the finding's time
    outcome = world.mover(MEMBER_A).quarantine(dataclasses.replace(request, last_modified=written))
    # THEN quarantined from the copy, and the version left at the key is said to be newer and current
    assert outcome.status is MoveStatus.QUARANTINED, outcome
    assert outcome.facts == MoveFacts(
        CopyCheck.CHECKSUM, SourceFate.GONE, at_key=AtKey.NEWER, older=0, newer=1, listed=True
    )
    assert _somewhere(world, request, body) == {"quarantine"}
