"""Every outcome x object situation, with the exact sentences users see, checked against the real S3 state.

Each case drives the remediator's core (``handle_job``, the real mover on moto, the record, the Slack
stand-in) on one object situation: versioned or unversioned; overwritten before the copy, or between the
copy and the delete (the mover's checkpoint writes the new object); deleted; hidden by a delete marker;
locked (retention, legal hold); a delete or a read denied (moto's IAM enforcement); a failure; a restore
done or refused. Then two checks of the message Slack shows:

1. the outcome's sentences, exactly (the table below; ``{source}``, ``{copy}``... are filled in per case);
2. every claim a sentence makes, against S3 as it is after the job (:data:`CLAIMS`): a message saying
   "the finding's version is still at ..." is only right if that version's bytes are there, one saying
   "a newer version ... was left untouched" only if the key's current object is newer than the finding's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import MoveStep, format_time, quarantine_key
from macie_chatops.remediation import handle_job, message_for
from macie_chatops.states import State
from tests.conftest import AwsSandbox
from tests.functional.move_world import MEMBER_A, REGION, iam_enforced, member_role, next_second, remediator_user
from tests.functional.remediator_world import RemediatorWorld, Seeded, job, remediator_world

QUARANTINE = quarantine_bucket_name(MEMBER_A, REGION)
SOURCE = "payments-prod-exports"
LOCKED = "payments-locked"
KEY = "exports/customers.csv"
BODY = b"name,ssn\nAda,078-05-1120\n"
NEW_BODY = b"name,ssn\nAda,[redacted]\n"


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


# --- what S3 holds after the job ------------------------------------------------------------------------


@dataclass
class Truth:
    """The source key and the quarantine key as S3 has them, read against the finding's bytes."""

    finding_versions: list[str]  # versions of the key holding the finding's bytes
    current: bytes | None  # the key's current object (None: no object, or a delete marker)
    current_modified: datetime | None
    others: list[datetime]  # LastModified of every version holding other bytes
    quarantined: bool  # the quarantine key holds the finding's bytes
    finding_modified: datetime

    def newer(self) -> int:
        return sum(1 for at in self.others if at > self.finding_modified)

    def older(self) -> int:
        return sum(1 for at in self.others if at < self.finding_modified)


def _seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def s3_truth(world: RemediatorWorld, seeded: Seeded, bucket: str, finding_modified: datetime) -> Truth:
    moves = world.moves
    listing = moves.s3(MEMBER_A).list_object_versions(Bucket=bucket, Prefix=seeded.key)
    finding_versions, others = [], []
    current, current_modified = None, None
    for version in (v for v in listing.get("Versions", []) if v["Key"] == seeded.key):
        data = moves.read(MEMBER_A, bucket, seeded.key, version["VersionId"])
        if data == seeded.body:
            finding_versions.append(version["VersionId"])
        else:
            others.append(_seconds(version["LastModified"]))
        if version["IsLatest"]:
            current, current_modified = data, _seconds(version["LastModified"])
    if any(m["IsLatest"] for m in listing.get("DeleteMarkers", []) if m["Key"] == seeded.key):
        current, current_modified = None, None
    qkey = quarantine_key(seeded.finding_id, bucket, seeded.key)
    return Truth(
        finding_versions,
        current,
        current_modified,
        others,
        moves.quarantined(MEMBER_A, qkey) == seeded.body,
        _seconds(finding_modified),
    )


# Every sentence (fragment) a message may say about the object, and what must then be true in S3.
CLAIMS: list[tuple[str, Callable[[Truth, Seeded], bool]]] = [
    ("before the source version was deleted", lambda t, s: not t.finding_versions and t.quarantined),
    ("the source version was already gone", lambda t, s: not t.finding_versions and t.quarantined),
    ("*Both copies are kept:*", lambda t, s: bool(t.finding_versions) and t.quarantined),
    ("is only in quarantine now", lambda t, s: not t.finding_versions and t.quarantined),
    ("it is no longer in its bucket", lambda t, s: not t.finding_versions),
    ("is no longer in its bucket", lambda t, s: not t.finding_versions),
    ("in neither its bucket nor the quarantine bucket", lambda t, s: not t.finding_versions and not t.quarantined),
    ("Nothing was moved", lambda t, s: not t.quarantined),
    ("Do not delete anything at the key", lambda t, s: t.current != s.body),
    ("No other version of this key remains", lambda t, s: not t.others),
    ("1 newer version of this key remains", lambda t, s: len(t.others) == t.newer() == 1),
    ("1 older version of this key remains", lambda t, s: len(t.others) == t.older() == 1),
    (
        "The key's current object is a newer version",
        lambda t, s: (
            t.current not in (None, s.body)
            and t.current_modified is not None
            and t.current_modified > t.finding_modified
        ),
    ),
    (
        "The key's current object is an older version",
        lambda t, s: (
            t.current not in (None, s.body)
            and t.current_modified is not None
            and t.current_modified < t.finding_modified
        ),
    ),
    ("The key's current object is still the finding's version", lambda t, s: t.current == s.body),
    ("delete that version by hand", lambda t, s: bool(t.finding_versions)),
    ("never the key's current object", lambda t, s: t.current != s.body),
    ("Nothing was deleted", lambda t, s: bool(t.finding_versions) and not t.quarantined),
    ("The object is back at", lambda t, s: t.current == s.body and t.quarantined),
    ("Restore refused", lambda t, s: t.current != s.body and t.quarantined),
    ("A verified copy is at", lambda t, s: t.quarantined),
    ("a verified copy is at", lambda t, s: t.quarantined),
    ("the new object was left in place", lambda t, s: t.current not in (None, s.body)),
    ("the original stays at", lambda t, s: bool(t.finding_versions)),
    ("Delete the original by hand", lambda t, s: t.current == s.body),
]


def assert_claims_hold(text: str, truth: Truth, seeded: Seeded) -> None:
    checked = [phrase for phrase, holds in CLAIMS if phrase in text]
    assert checked, f"no claim about the object was checked in: {text}"
    for phrase, holds in CLAIMS:
        if phrase in text:
            assert holds(truth, seeded), f"the message says {phrase!r}, but S3 holds {truth}"
    kept = re.findall(r"still at `s3://[^`]*` \(version `([^`]*)`\)", text)
    for version in kept:
        assert version in truth.finding_versions or (version == "null" and "null" in truth.finding_versions), kept


# --- the message ----------------------------------------------------------------------------------------


def sections(world: RemediatorWorld, seeded: Seeded) -> tuple[str, str, list[str], list[str]]:
    """(header, status, outcome lines, context notices) of the finding's message as Slack shows it now."""
    return block_sections(world.message(seeded).blocks)


def block_sections(blocks: list[Any]) -> tuple[str, str, list[str], list[str]]:
    header = blocks[0]["text"]["text"]
    status = blocks[1]["text"]["text"]
    data = next(i for i, b in enumerate(blocks) if b["type"] == "section" and "*Sensitive data*" in str(b))
    outcome: list[str] = []
    notices: list[str] = []
    for block in blocks[data + 1 :]:
        if block["type"] == "section":
            outcome.extend(block["text"]["text"].split("\n"))
        elif block["type"] == "context" and block["elements"][0]["text"].startswith(":warning:"):
            notices.append(block["elements"][0]["text"])
    return header, status, outcome, notices


# --- the table ------------------------------------------------------------------------------------------

Hook = Callable[[RemediatorWorld, Seeded], None]


def _nothing(world: RemediatorWorld, seeded: Seeded) -> None:
    return None


def _overwrite(world: RemediatorWorld, seeded: Seeded) -> None:
    next_second()  # a newer object, by S3's whole-second clock too
    world.moves.put(MEMBER_A, SOURCE, seeded.key, NEW_BODY)


def _older_first(world: RemediatorWorld) -> None:
    world.moves.bucket(MEMBER_A, SOURCE)
    world.moves.put(MEMBER_A, SOURCE, KEY, b"an older upload\n")
    next_second()


def _delete_version(world: RemediatorWorld, seeded: Seeded) -> None:
    world.moves.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key=seeded.key, VersionId=seeded.version_id)


def _delete_marker(world: RemediatorWorld, seeded: Seeded) -> None:
    world.moves.s3(MEMBER_A).delete_object(Bucket=SOURCE, Key=seeded.key)


def _version_since(world: RemediatorWorld, seeded: Seeded) -> None:
    world.moves.s3(MEMBER_A).put_bucket_versioning(Bucket=SOURCE, VersioningConfiguration={"Status": "Enabled"})


def _foreign_copy(world: RemediatorWorld, seeded: Seeded) -> None:
    qkey = quarantine_key(seeded.finding_id, SOURCE, seeded.key)
    world.moves.s3(MEMBER_A).put_object(
        Bucket=QUARANTINE, Key=qkey, Body=b"theirs", Tagging="macie-chatops:finding-id=someone-else"
    )


@dataclass(frozen=True)
class Case:
    id: str
    title: str  # the header, before ": <account>"
    lines: tuple[str, ...]  # the outcome section, exactly ({source} {copy} {version} {etag} {new_etag} {verified})
    state: State
    versioned: bool = True
    bucket: str = SOURCE
    key: str = KEY
    put: dict[str, Any] = field(default_factory=dict)
    before_seed: Callable[[RemediatorWorld], None] | None = None
    after_seed: Hook = _nothing
    between_copy_and_delete: Hook | None = None  # run by the mover's checkpoint right after the copy verified
    policy: dict[str, Any] | None = None  # the member role's policy, under moto's IAM enforcement
    status: str | None = None  # a sentence the status section holds


QUARANTINED_TITLE = ":lock: Quarantined"
DELETED = "The copy was verified (size and checksum) before the source version was deleted."
NOTHING_LEFT = "No other version of this key remains in the bucket."
NEWER_LEFT = (
    "1 newer version of this key remains in the bucket.",
    "The key's current object is a newer version, written after the finding's: it was left untouched.",
)
OVERWRITE_DETAIL = (
    "*Detail:* The key was overwritten after the copy (the delete's If-Match on the finding's ETag failed); "
    "the new object was left in place. The quarantine copy verified: {verified}."
)
KEPT_LOCKED = (
    "*Both copies are kept:* the finding's version is still at {source} (version `{version}`) and a verified "
    "copy is at {copy}.",
    "Once the lock or permission allows it, delete that version by hand, by its version id.",
    NOTHING_LEFT,
    "The key's current object is still the finding's version.",
)
DENY_DELETE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "*"},
    ],
}
DENY_READ = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": f"arn:aws:s3:::{SOURCE}/*"},
    ],
}

HOSTILE_KEY = "exports/`*q3*`_cards_ ~x~ <!here>.csv"

CASES = [
    Case("versioned-untouched", QUARANTINED_TITLE, ("*Now at:* {copy}", DELETED, NOTHING_LEFT), State.QUARANTINED),
    Case(
        # issue 12 item 5: the key's backticks and formatting stay inside one code span
        "versioned-untouched-key-with-backticks",
        QUARANTINED_TITLE,
        ("*Now at:* {copy}", DELETED, NOTHING_LEFT),
        State.QUARANTINED,
        key=HOSTILE_KEY,
    ),
    Case(
        "versioned-older-version-under-it",
        QUARANTINED_TITLE,
        (
            "*Now at:* {copy}",
            DELETED,
            "1 older version of this key remains in the bucket.",
            "The key's current object is an older version, written before the finding's: it was not moved and may "
            "hold the same data.",
        ),
        State.QUARANTINED,
        before_seed=_older_first,
    ),
    Case(
        "versioned-overwritten-before-copy",
        QUARANTINED_TITLE,
        ("*Now at:* {copy}", DELETED, *NEWER_LEFT),
        State.QUARANTINED,
        after_seed=_overwrite,
    ),
    Case(
        "versioned-overwritten-between-copy-and-delete",
        QUARANTINED_TITLE,
        ("*Now at:* {copy}", DELETED, *NEWER_LEFT),
        State.QUARANTINED,
        between_copy_and_delete=_overwrite,
    ),
    Case(
        "versioned-deleted",
        ":no_entry: Blocked: object missing",
        (
            "Nothing was moved: the finding's version is in neither its bucket nor the quarantine bucket.",
            "*Detail:* The object version named by the finding is in neither the source bucket nor the quarantine "
            "bucket; nothing was moved.",
        ),
        State.BLOCKED,
        after_seed=_delete_version,
    ),
    Case(
        "versioned-hidden-by-a-delete-marker",
        QUARANTINED_TITLE,
        ("*Now at:* {copy}", DELETED, NOTHING_LEFT),
        State.QUARANTINED,
        after_seed=_delete_marker,
    ),
    Case(
        "unversioned-untouched",
        QUARANTINED_TITLE,
        ("*Now at:* {copy}", DELETED, NOTHING_LEFT),
        State.QUARANTINED,
        versioned=False,
    ),
    Case(
        "unversioned-overwritten-before-copy",
        ":no_entry: Blocked: object changed",
        (
            "Nothing was moved: the object Macie scanned is no longer in its bucket.",
            *NEWER_LEFT,
            "*Detail:* ETag is now {new_etag}, the finding names {etag}; nothing was moved.",
        ),
        State.BLOCKED,
        versioned=False,
        after_seed=_overwrite,
    ),
    Case(
        # issue 12 item 3: the key now holds the owner's new object, which no one may be told to delete
        "unversioned-overwritten-between-copy-and-delete",
        ":no_entry: Blocked: object changed",
        (
            "*The finding's object is only in quarantine now:* a verified copy is at {copy}; it is no longer in its "
            "bucket.",
            "Do not delete anything at the key by hand for this finding: what the key holds now is not the object "
            "Macie scanned.",
            *NEWER_LEFT,
            OVERWRITE_DETAIL,
        ),
        State.BLOCKED,
        versioned=False,
        between_copy_and_delete=_overwrite,
    ),
    Case(
        # moto evaluates the delete's If-Match on the current object: the null version keeps the finding's bytes
        "unversioned-then-versioned-overwritten-between-copy-and-delete",
        ":no_entry: Blocked: object changed",
        (
            "*Both copies are kept:* the finding's version is still at {source} (version `null`) and a verified "
            "copy is at {copy}.",
            "To finish, delete that version by hand, by its version id, never the key's current object.",
            *NEWER_LEFT,
            OVERWRITE_DETAIL,
        ),
        State.BLOCKED,
        versioned=False,
        after_seed=_version_since,
        between_copy_and_delete=_overwrite,
    ),
    Case(
        "locked-retention",
        ":no_entry: Blocked: object is locked",
        (
            *KEPT_LOCKED,
            "*Detail:* The source version is protected by Object Lock GOVERNANCE retention until {until}; it was "
            "not deleted. The quarantine copy verified: {verified}.",
        ),
        State.BLOCKED,
        bucket=LOCKED,
        put={"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=7)},
    ),
    Case(
        "locked-legal-hold",
        ":no_entry: Blocked: object is locked",
        (
            *KEPT_LOCKED,
            "*Detail:* The source version is protected by a legal hold; it was not deleted. The quarantine copy "
            "verified: {verified}.",
        ),
        State.BLOCKED,
        bucket=LOCKED,
        put={"ObjectLockLegalHoldStatus": "ON"},
    ),
    Case(
        "delete-denied",
        ":no_entry: Blocked: object is locked",
        (
            *KEPT_LOCKED,
            "*Detail:* Deleting the source version was denied (AccessDenied): Object Lock, a legal hold or a policy "
            "protects it. The quarantine copy verified: {verified}.",
        ),
        State.BLOCKED,
        policy=DENY_DELETE,
    ),
    Case(
        "read-denied",
        ":no_entry: Blocked: access denied",
        (
            "Nothing was moved or deleted; where {source} (version `{version}`) stands now was not checked.",
            f"*Detail:* The remediation role may not read s3://{SOURCE} (403); nothing was moved.",
        ),
        State.BLOCKED,
        policy=DENY_READ,
    ),
    Case(
        "failed-foreign-object-at-the-quarantine-key",
        ":x: Quarantine failed",
        (
            f"*Error:* s3://{QUARANTINE}/{{qkey}} holds an object whose tags name another finding or object; "
            "nothing was touched",
            "*To quarantine it:* fix the cause of the error above, then an operator runs `macie-chatops retry "
            "{finding_id}`.",
        ),
        State.FAILED,
        after_seed=_foreign_copy,
        status="Nothing was deleted by this attempt; the object named by the finding is {source} (version "
        "`{version}`).",
    ),
]


def shown(uri: str) -> str:
    """How Slack is sent a name: one code span, Slack's three characters escaped, backticks as ˋ."""
    escaped = uri.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "\u02cb")
    return f"`{escaped}`"


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format(**values)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_outcome_says_exactly_what_s3_holds(world: RemediatorWorld, case: Case) -> None:
    # GIVEN the object situation of the case
    if case.before_seed is not None:
        case.before_seed(world)
    seeded = world.seed(
        f"f-{case.id}"[:60], key=case.key, body=BODY, versioned=case.versioned, bucket=case.bucket, **case.put
    )
    head = world.moves.head(MEMBER_A, case.bucket, case.key, seeded.version_id or None)
    case.after_seed(world, seeded)
    checkpoint = None
    if case.between_copy_and_delete is not None:
        during = case.between_copy_and_delete

        def checkpoint(step: MoveStep) -> None:
            if step is MoveStep.VERIFIED:
                during(world, seeded)

    # WHEN its quarantine job runs
    if case.policy is not None:
        from macie_chatops.sessions import MemberSessions
        from macie_chatops.store import FindingStore
        from tests.functional.remediator_world import TABLE

        member_role(world.moves, MEMBER_A, case.policy)
        user = remediator_user(
            world.moves.aws,
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        )
        session = user.session()
        deps = world.deps(
            sessions=MemberSessions(role_name="macie-chatops-remediation", base_session=session),
            store=FindingStore(session.client("dynamodb"), TABLE),
            kms_session=session,
        )
        with iam_enforced(world.moves.aws):
            handle_job(job("quarantine", seeded.finding_id).body, deps)
    else:
        handle_job(job("quarantine", seeded.finding_id).body, world.deps(checkpoint=checkpoint))

    # THEN the record is in the case's state and the message says exactly the case's sentences
    record = world.record(seeded.finding_id)
    assert record.state is case.state, (record.state, record.outcome_detail)
    current = (
        world.moves.s3(MEMBER_A).head_object(Bucket=case.bucket, Key=case.key)
        if case.id.endswith("before-copy")
        else {}
    )
    until = head.get("ObjectLockRetainUntilDate")
    values = {
        "source": shown(f"s3://{case.bucket}/{case.key}"),
        "copy": shown(f"s3://{QUARANTINE}/{seeded.finding_id}/{case.bucket}/{case.key}"),
        "qkey": f"{seeded.finding_id}/{case.bucket}/{case.key}",
        "version": seeded.version_id,
        "etag": seeded.summary.etag,
        "new_etag": current.get("ETag", "").strip('"'),
        "verified": (record.quarantine or {}).get("verification", ""),
        "until": format_time(until) if isinstance(until, datetime) else "",
        "finding_id": seeded.finding_id,
    }
    header, status, outcome, _ = sections(world, seeded)
    assert header.startswith(case.title + ": ")
    assert outcome == [_fill(line, values) for line in case.lines]
    if case.status is not None:
        assert _fill(case.status, values) in status
    # AND every claim it makes holds in S3 as it is now
    truth = s3_truth(world, seeded, case.bucket, head["LastModified"])
    assert_claims_hold("\n".join([status, *outcome]), truth, seeded)
    # AND the notification's fallback text names the object too
    assert shown(f"s3://{case.bucket}/{case.key}") in world.message(seeded).text


# --- restore outcomes -----------------------------------------------------------------------------------


def test_a_restore_says_where_the_object_is_back(world: RemediatorWorld) -> None:
    # GIVEN a quarantined finding whose restore was requested
    seeded = world.seed("f-restore", key=KEY, body=BODY)
    head = world.moves.head(MEMBER_A, SOURCE, KEY, seeded.version_id)
    handle_job(job("quarantine", seeded.finding_id).body, world.deps())
    world.request_restore(seeded.finding_id)
    # WHEN the restore job runs
    handle_job(job("restore", seeded.finding_id).body, world.deps())
    # THEN RESTORED, and the message names the new version the object is back as
    record = world.record(seeded.finding_id)
    assert record.state is State.RESTORED
    restored = (record.quarantine or {})["restored_version_id"]
    header, status, _, _ = sections(world, seeded)
    assert header.startswith(":leftwards_arrow_with_hook: Restored: ")
    assert f"The object is back at `s3://{SOURCE}/{KEY}` as version `{restored}`." in status.split("\n")
    # AND S3 agrees: that version holds the bytes and is the key's current object
    assert world.moves.read(MEMBER_A, SOURCE, KEY, restored) == BODY
    assert_claims_hold(status, s3_truth(world, seeded, SOURCE, head["LastModified"]), seeded)


def test_a_refused_restore_says_why_and_where_the_object_stays(world: RemediatorWorld) -> None:
    # GIVEN a quarantined finding, and a new object written at its key since
    seeded = world.seed("f-restore-refused", key=KEY, body=BODY)
    head = world.moves.head(MEMBER_A, SOURCE, KEY, seeded.version_id)
    handle_job(job("quarantine", seeded.finding_id).body, world.deps())
    _, new_etag = world.moves.put(MEMBER_A, SOURCE, KEY, NEW_BODY)
    world.request_restore(seeded.finding_id)
    # WHEN the restore job runs
    handle_job(job("restore", seeded.finding_id).body, world.deps())
    # THEN back to QUARANTINED with the reason shown, and the new object untouched
    assert world.record(seeded.finding_id).state is State.QUARANTINED
    header, _, _, notices = sections(world, seeded)
    assert header.startswith(":lock: Quarantined: ")
    assert notices == [
        f":warning: Restore refused: s3://{SOURCE}/{KEY} now holds a different object (ETag {new_etag}); restoring "
        "would replace it. The object stays in quarantine."
    ]
    assert_claims_hold(notices[0], s3_truth(world, seeded, SOURCE, head["LastModified"]), seeded)


# --- records the message cannot fully trust ---------------------------------------------------------------


def test_a_record_without_readable_facts_claims_nothing_it_cannot_know(world: RemediatorWorld) -> None:
    # GIVEN the unversioned key overwritten between the copy and the delete, recorded BLOCKED with its facts
    seeded = world.seed("f-facts-lost", key=KEY, body=BODY, versioned=False)

    def overwrite(step: MoveStep) -> None:
        if step is MoveStep.VERIFIED:
            world.moves.put(MEMBER_A, SOURCE, KEY, NEW_BODY)

    handle_job(job("quarantine", seeded.finding_id).body, world.deps(checkpoint=overwrite))
    record = world.record(seeded.finding_id)
    assert record.state is State.BLOCKED and record.quarantine is not None and "facts" in record.quarantine
    verified = record.quarantine["verification"]
    without = {name: value for name, value in record.quarantine.items() if name != "facts"}
    # WHEN its message is built from a record whose facts are unreadable, or from before there were any
    for quarantine in ({**record.quarantine, "facts": "{not json"}, without):
        message = message_for(dataclasses.replace(record, quarantine=quarantine))
        assert message is not None
        _, _, outcome, _ = block_sections(message.block_dicts())
        # THEN it says where the copy is and never that the original stays or should be deleted
        assert outcome == [
            f"A verified copy is at `s3://{QUARANTINE}/{seeded.finding_id}/{SOURCE}/{KEY}`. Check what "
            f"`s3://{SOURCE}/{KEY}` (unversioned) holds before deleting anything by hand: delete only a version "
            f"whose ETag is `{seeded.summary.etag}`.",
            OVERWRITE_DETAIL.format(verified=verified),
        ]
        assert_claims_hold("\n".join(outcome), s3_truth(world, seeded, SOURCE, datetime.now(UTC)), seeded)
