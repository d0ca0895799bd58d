"""The pure half of the move: what a HEAD, a tag set or a version listing means, and what to do next.

The mover (:mod:`macie_chatops.move`) reads S3 and asks this module; it never decides on its own. The steps
and why they come in that order: docs/architecture.md section 7. The state record always holds the source's
full key; the quarantine copy carries it (:func:`encode_key`) in its user metadata when that fits S3's 2 KB
budget, and in a tag when it fits a tag value (keys of up to 192 bytes), else the tag holds its SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from macie_chatops.checksums import LOCALLY_COMPUTABLE, NO_CHECKSUM, Checksum, full_object_checksum

TAG_PREFIX: Final = "macie-chatops:"
TAG_FINDING_ID: Final = "macie-chatops:finding-id"
TAG_SOURCE_BUCKET: Final = "macie-chatops:source-bucket"
TAG_SOURCE_KEY_B64: Final = "macie-chatops:source-key-b64"
TAG_SOURCE_KEY_SHA256: Final = "macie-chatops:source-key-sha256"
TAG_SOURCE_VERSION: Final = "macie-chatops:source-version"
TAG_SOURCE_ETAG: Final = "macie-chatops:source-etag"
TAG_SOURCE_SIZE: Final = "macie-chatops:source-size"
TAG_SOURCE_CHECKSUM: Final = "macie-chatops:source-checksum"
TAG_APPROVER: Final = "macie-chatops:approver"
TAG_QUARANTINED_AT: Final = "macie-chatops:quarantined-at"
TAG_VERIFIED: Final = "macie-chatops:verified"

METADATA_SOURCE_KEY: Final = "macie-chatops-source-key-b64"

MAX_KEY_BYTES: Final = 1024
MAX_TAGS: Final = 10
MAX_TAG_VALUE: Final = 256
MAX_METADATA_BYTES: Final = 2048
UNVERSIONED: Final = "null"  # what S3 calls the version of an object in an unversioned bucket
HASH_SUFFIX_SEPARATOR: Final = "~"

# S3 object tag values: letters, digits, spaces and _ . : / = + - @ (we keep to ASCII letters).
_TAG_SAFE = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")

# The algorithm asked for on a multipart copy: S3 makes CRC64NVME multipart checksums full-object.
MULTIPART_COPY_ALGORITHM: Final = "CRC64NVME"
DEFAULT_COPY_ALGORITHM: Final = "CRC64NVME"

# Content headers that belong to the object and survive the move both ways (with the user metadata).
CONTENT_HEADERS: Final = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
    "WebsiteRedirectLocation",
)


class BlockReason(StrEnum):
    """Why a move stopped safely (slack_messages.BLOCKED_REASONS)."""

    MISSING = "missing"
    CHANGED = "changed"
    LOCKED = "locked"
    ACCESS_DENIED = "access_denied"


class MoveStatus(StrEnum):
    QUARANTINED = "QUARANTINED"
    BLOCKED = "BLOCKED"
    FAILED = "FAILED"


class RestoreStatus(StrEnum):
    RESTORED = "RESTORED"
    REFUSED = "REFUSED"  # nothing written; the object stays quarantined (the reason says why)
    FAILED = "FAILED"


class MoveStep(StrEnum):
    """The points between the mover's steps; a ``checkpoint`` callback is called after each one."""

    SOURCE_READ = "source_read"
    COPIED = "copied"
    VERIFIED = "verified"  # the verified tag is written: the commit point before the delete
    DELETED = "deleted"
    COUNTED = "counted"  # older versions counted: the move is complete, nothing is recorded yet
    RESTORE_COPIED = "restore_copied"
    RESTORE_VERIFIED = "restore_verified"


class InvalidKeyError(ValueError):
    """A source key S3 cannot hold (not encodable as UTF-8, or empty)."""


# --------------------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------------------


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _utf8(key: str) -> bytes:
    if not key:
        raise InvalidKeyError("an S3 key cannot be empty")
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"the key is not valid Unicode text (position {exc.start}): S3 cannot hold it") from None


def key_digest(key: str) -> str:
    """SHA-256 (hex) of the key's UTF-8 bytes: the stable short name of a key."""
    return hashlib.sha256(_utf8(key)).hexdigest()


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes`` (never splits a character)."""
    if max_bytes <= 0:
        return ""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # errors="ignore" drops the partial multibyte sequence at the cut, so no character is ever split.
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def quarantine_key(finding_id: str, bucket: str, key: str) -> str:
    """``<finding id>/<bucket>/<key>``, shortened with a stable hash when it would exceed 1,024 UTF-8 bytes."""
    _utf8(key)
    prefix = f"{finding_id}/{bucket}/"
    full = prefix + key
    if utf8_len(full) <= MAX_KEY_BYTES:
        return full
    suffix = HASH_SUFFIX_SEPARATOR + key_digest(key)
    room = MAX_KEY_BYTES - utf8_len(prefix) - len(suffix)
    if room < 0:
        raise InvalidKeyError(f"finding id and bucket leave no room for the key ({utf8_len(prefix)} bytes)")
    return prefix + cut_utf8(key, room) + suffix


def encode_key(key: str) -> str:
    """base64url (RFC 4648 section 5) of the key's UTF-8 bytes, without padding: tag- and header-safe."""
    return base64.urlsafe_b64encode(_utf8(key)).decode("ascii").rstrip("=")


def decode_key(encoded: str) -> str:
    """The key :func:`encode_key` encoded (raises ValueError when ``encoded`` is not such a value)."""
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not a base64url-encoded key: {exc}") from None
    return raw.decode("utf-8")


# --------------------------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------------------------


def tag_value(text: str) -> str:
    """``text`` as an S3 tag value: disallowed characters become ``_``, at most 256 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _TAG_SAFE.sub("_", ascii_text)[:MAX_TAG_VALUE]


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Provenance:
    """What the quarantine copy's tags say about where it came from (at most 10 tags, S3's limit).

    ``verified``: the checksum the copy verified with, written after the verification; or, on a single-part
    copy of a source with a checksum, the checksum it must verify as, written with the copy. Never trusted
    alone (every reader checks the copy against it); the source is deleted only after a verification made in
    the same attempt."""

    finding_id: str
    source_bucket: str
    source_version: str  # "null" when unversioned
    source_etag: str
    source_size: int | None
    source_checksum: Checksum | None
    approver: str
    quarantined_at: str
    source_key_b64: str | None = None
    source_key_sha256: str | None = None
    verified: Checksum | None = None

    def names_key(self, key: str) -> bool:
        """True when the tags identify ``key`` (by its encoding, or by its hash when it was too long)."""
        if self.source_key_b64 is not None:
            return self.source_key_b64 == encode_key(key)
        if self.source_key_sha256 is not None:
            return self.source_key_sha256 == key_digest(key)
        return False

    def tag_set(self) -> list[dict[str, str]]:
        """The S3 TagSet (at most 10 tags; every value tag-safe and at most 256 characters)."""
        tags = {
            TAG_FINDING_ID: self.finding_id,
            TAG_SOURCE_BUCKET: self.source_bucket,
            TAG_SOURCE_VERSION: self.source_version,
            TAG_SOURCE_ETAG: self.source_etag,
            TAG_SOURCE_SIZE: "" if self.source_size is None else str(self.source_size),
            TAG_SOURCE_CHECKSUM: str(self.source_checksum) if self.source_checksum else NO_CHECKSUM,
            TAG_APPROVER: self.approver,
            TAG_QUARANTINED_AT: self.quarantined_at,
        }
        if self.source_key_b64 is not None:
            tags[TAG_SOURCE_KEY_B64] = self.source_key_b64
        elif self.source_key_sha256 is not None:
            tags[TAG_SOURCE_KEY_SHA256] = self.source_key_sha256
        if self.verified is not None:
            tags[TAG_VERIFIED] = str(self.verified)
        tag_set = [{"Key": k, "Value": tag_value(v)} for k, v in tags.items()]
        if len(tag_set) > MAX_TAGS:  # pragma: no cover - the set above has at most 10 entries by construction
            raise AssertionError(f"{len(tag_set)} tags exceed S3's limit of {MAX_TAGS}")
        return tag_set

    def tagging(self) -> str:
        """The tag set as the ``Tagging`` header of a copy (URL query encoding)."""
        from urllib.parse import urlencode

        return urlencode([(t["Key"], t["Value"]) for t in self.tag_set()])

    def with_verified(self, checksum: Checksum) -> Provenance:
        return _replace(self, verified=checksum)

    @classmethod
    def from_tag_set(cls, tag_set: Iterable[Mapping[str, Any]]) -> Provenance | None:
        """Our tags back into a Provenance; None when the object carries no finding id tag (not ours)."""
        tags = {str(t["Key"]): str(t["Value"]) for t in tag_set if str(t.get("Key", "")).startswith(TAG_PREFIX)}
        finding_id = tags.get(TAG_FINDING_ID)
        if not finding_id:
            return None
        size_text = tags.get(TAG_SOURCE_SIZE, "")
        return cls(
            finding_id=finding_id,
            source_bucket=tags.get(TAG_SOURCE_BUCKET, ""),
            source_version=tags.get(TAG_SOURCE_VERSION, ""),
            source_etag=tags.get(TAG_SOURCE_ETAG, ""),
            source_size=int(size_text) if size_text.isdigit() else None,
            source_checksum=Checksum.parse(tags.get(TAG_SOURCE_CHECKSUM)),
            approver=tags.get(TAG_APPROVER, ""),
            quarantined_at=tags.get(TAG_QUARANTINED_AT, ""),
            source_key_b64=tags.get(TAG_SOURCE_KEY_B64),
            source_key_sha256=tags.get(TAG_SOURCE_KEY_SHA256),
            verified=Checksum.parse(tags.get(TAG_VERIFIED)),
        )


def _replace(provenance: Provenance, **changes: Any) -> Provenance:
    from dataclasses import replace

    return replace(provenance, **changes)


def provenance(
    *,
    finding_id: str,
    bucket: str,
    key: str,
    version_id: str,
    etag: str,
    size: int,
    checksum: Checksum | None,
    approver: str,
    at: datetime,
) -> Provenance:
    """The provenance tags of a new quarantine copy (before verification)."""
    encoded = encode_key(key)
    fits = len(encoded) <= MAX_TAG_VALUE
    return Provenance(
        finding_id=finding_id,
        source_bucket=bucket,
        source_version=version_id or UNVERSIONED,
        source_etag=normalise_etag(etag),
        source_size=size,
        source_checksum=checksum,
        approver=approver,
        quarantined_at=format_time(at),
        source_key_b64=encoded if fits else None,
        source_key_sha256=None if fits else key_digest(key),
    )


# --------------------------------------------------------------------------------------------------------
# What a HEAD says
# --------------------------------------------------------------------------------------------------------


def normalise_etag(etag: str | None) -> str:
    """ETags compare without their quotes (Macie sends them bare, S3 quoted)."""
    return (etag or "").strip().strip('"')


@dataclass(frozen=True)
class LockState:
    mode: str | None = None  # GOVERNANCE | COMPLIANCE
    retain_until: datetime | None = None
    legal_hold: bool = False

    def active(self, now: datetime) -> bool:
        if self.legal_hold:
            return True
        return self.mode is not None and self.retain_until is not None and self.retain_until > now

    def describe(self, now: datetime) -> str:
        parts = []
        if self.mode and self.retain_until and self.retain_until > now:
            parts.append(f"Object Lock {self.mode} retention until {format_time(self.retain_until)}")
        if self.legal_hold:
            parts.append("a legal hold")
        return " and ".join(parts) if parts else "no lock"


@dataclass(frozen=True)
class ObjectView:
    """The facts of one object version, from a HEAD (``ChecksumMode=ENABLED``)."""

    etag: str
    size: int
    version_id: str | None
    metadata: Mapping[str, str]
    content: Mapping[str, Any]
    checksum: Checksum | None  # the full-object checksum, when S3 has one
    lock: LockState
    storage_class: str | None = None
    last_modified: datetime | None = None  # whole seconds (HEAD's Last-Modified header)

    @classmethod
    def from_head(cls, head: Mapping[str, Any]) -> ObjectView:
        until = head.get("ObjectLockRetainUntilDate")
        if isinstance(until, datetime) and until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        modified = head.get("LastModified")
        return cls(
            etag=normalise_etag(head.get("ETag")),
            size=int(head.get("ContentLength", 0)),
            version_id=head.get("VersionId") or None,
            metadata=dict(head.get("Metadata") or {}),
            content={name: head[name] for name in CONTENT_HEADERS if head.get(name) not in (None, "")},
            checksum=full_object_checksum(head),
            lock=LockState(
                mode=head.get("ObjectLockMode") or None,
                retain_until=until if isinstance(until, datetime) else None,
                legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
            ),
            storage_class=head.get("StorageClass") or None,
            last_modified=_aware(modified) if isinstance(modified, datetime) else None,
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------------------
# Copy arguments
# --------------------------------------------------------------------------------------------------------


def metadata_bytes(metadata: Mapping[str, str]) -> int:
    """User-defined metadata size as S3 counts it: UTF-8 bytes of every key and value."""
    return sum(utf8_len(k) + utf8_len(v) for k, v in metadata.items())


def quarantine_metadata(source_metadata: Mapping[str, str], key: str) -> tuple[dict[str, str], bool]:
    """The copy's user metadata: the source's, plus the encoded full key when it fits the 2 KB budget.

    Returns the metadata and whether the key was added. The source's own metadata always wins: if it
    already uses our name, or is too large for the key to fit, the key is only in the tags and the record.
    """
    metadata = dict(source_metadata)
    if METADATA_SOURCE_KEY in metadata:
        return metadata, False
    candidate = {**metadata, METADATA_SOURCE_KEY: encode_key(key)}
    if metadata_bytes(candidate) > MAX_METADATA_BYTES:
        return metadata, False
    return candidate, True


def restored_metadata(quarantine_metadata_: Mapping[str, str], key: str) -> dict[str, str]:
    """The original metadata again: our one entry removed, only when it holds exactly the encoded key."""
    metadata = dict(quarantine_metadata_)
    if metadata.get(METADATA_SOURCE_KEY) == encode_key(key):
        del metadata[METADATA_SOURCE_KEY]
    return metadata


TagPairs = tuple[tuple[str, str], ...]
MAX_OBJECT_TAGS: Final = 10  # S3's limit per object


def tag_pairs(tag_set: Iterable[Mapping[str, object]]) -> TagPairs:
    """An S3 TagSet (``[{"Key": k, "Value": v}, ...]``) as (key, value) pairs, in S3's order."""
    return tuple((str(tag["Key"]), str(tag["Value"])) for tag in tag_set)


def tagging_header(pairs: TagPairs) -> str:
    """Tags as the ``x-amz-tagging`` header (URL query encoding) that CopyObject/PutObject take."""
    from urllib.parse import urlencode

    return urlencode(list(pairs))


def encode_original_tags(pairs: TagPairs) -> str:
    """The source object's tags as the state record keeps them (a JSON list of [key, value] pairs)."""
    return json.dumps([list(pair) for pair in pairs], ensure_ascii=False, separators=(",", ":"))


def decode_original_tags(text: str) -> TagPairs:
    """The inverse of :func:`encode_original_tags`; ValueError for anything else (a record written otherwise)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"original tags are not JSON: {exc}") from None
    if (
        not isinstance(value, list)
        or len(value) > MAX_OBJECT_TAGS
        or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in value
        )
    ):
        raise ValueError(f"original tags must be at most {MAX_OBJECT_TAGS} [key, value] string pairs")
    return tuple((pair[0], pair[1]) for pair in value)


def copy_checksum_algorithm(source: Checksum | None, *, multipart: bool) -> str:
    """The ChecksumAlgorithm to ask for on the copy, so S3 reports a comparable checksum when it can.

    A single CopyObject computes a full-object checksum of any algorithm: ask for the source's. A multipart
    copy's checksum is full-object only for CRC64NVME (S3 combines the part CRCs); others are composite.
    """
    if multipart:
        return MULTIPART_COPY_ALGORITHM
    return source.algorithm if source is not None else DEFAULT_COPY_ALGORITHM


def copy_extra_args(
    view: ObjectView,
    *,
    metadata: Mapping[str, str],
    checksum_algorithm: str,
    tagging: str | None,
    if_match: str | None,
    storage_class: str | None = None,
) -> dict[str, Any]:
    """ExtraArgs for boto3's managed copy that behave the same on the single and the multipart path.

    ``MetadataDirective=REPLACE`` with the metadata and content headers spelled out: CopyObject takes
    them as given, and s3transfer's multipart path passes them to CreateMultipartUpload (it only copies
    metadata itself when the directive is not REPLACE). No encryption arguments: the destination bucket's
    default (its own KMS key) applies, whatever key the source used. ``TaggingDirective=REPLACE`` keeps the
    source's tags off the copy (``tagging`` sets ours atomically on the single path; the multipart path
    tags separately, see :mod:`macie_chatops.move.quarantine`).
    """
    args: dict[str, Any] = {
        "MetadataDirective": "REPLACE",
        "Metadata": dict(metadata),
        "ChecksumAlgorithm": checksum_algorithm,
        **{name: value for name, value in view.content.items()},
    }
    if tagging is not None:
        args["TaggingDirective"] = "REPLACE"
        args["Tagging"] = tagging
    if if_match:
        args["CopySourceIfMatch"] = f'"{normalise_etag(if_match)}"'
    if storage_class:
        args["StorageClass"] = storage_class
    return args


# --------------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------------


class Verification(StrEnum):
    """How a copy is verified: size always, plus one checksum, the first of these that applies."""

    # The source has a full-object checksum and S3 reports the same algorithm on the copy (S3 computes it
    # over the bytes it wrote when the copy asks for it): compare the two values, no bytes read.
    S3 = "s3"
    # The source has a full-object CRC32, SHA-1 or SHA-256 (computable here): read the copy once and compare.
    STREAM_COPY = "stream-copy"
    # Otherwise (no source checksum, or only CRC32C/CRC64NVME, which need awscrt): read both with SHA-256.
    STREAM_BOTH = "stream-both"


def verification_method(expected: Checksum | None, copy: Checksum | None) -> Verification:
    """How to verify a copy against ``expected`` (the source's full-object checksum), see :class:`Verification`."""
    if expected is not None and copy is not None and expected.algorithm == copy.algorithm:
        return Verification.S3
    if expected is not None and expected.algorithm in LOCALLY_COMPUTABLE:
        return Verification.STREAM_COPY
    return Verification.STREAM_BOTH


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    method: Verification
    checksum: Checksum | None  # what the copy verified as (the tag value), when ok
    detail: str = ""


def compare(expected: Checksum, actual: Checksum, method: Verification) -> VerifyResult:
    if expected.algorithm != actual.algorithm:
        return VerifyResult(False, method, None, f"algorithms differ: {expected.algorithm} vs {actual.algorithm}")
    if expected.value != actual.value:
        return VerifyResult(
            False, method, None, f"{expected.algorithm} differs: expected {expected.value}, copy {actual.value}"
        )
    return VerifyResult(True, method, actual)


# --------------------------------------------------------------------------------------------------------
# Idempotency: what to do, given what the source and the quarantine bucket hold now
# --------------------------------------------------------------------------------------------------------


class SourceState(StrEnum):
    PRESENT = "present"  # the finding's version is there, with the finding's ETag
    MISSING = "missing"
    CHANGED = "changed"  # an object is there, but not the finding's (its ETag differs)


class CopyState(StrEnum):
    ABSENT = "absent"
    UNVERIFIED = "unverified"  # a copy of this finding's object exists, the verified tag is not written
    VERIFIED = "verified"
    FOREIGN = "foreign"  # something else sits at the finding's quarantine key (tags name another object)


class NextStep(StrEnum):
    COPY = "copy"  # copy, verify, tag verified, delete
    VERIFY_THEN_DELETE = "verify_then_delete"  # a copy exists: re-verify against the source, then delete
    CONFIRM_COPY = "confirm_copy"  # the source is gone or changed: verify the copy on its own, then report
    BLOCK_MISSING = "block_missing"
    BLOCK_CHANGED = "block_changed"
    FAIL_FOREIGN = "fail_foreign"


def next_step(source: SourceState, copy: CopyState) -> NextStep:
    """The idempotency table: any crash, at any point, followed by a redelivery lands on the right step.

    ========== =============== ========================================================================
    source     quarantine copy next step
    ========== =============== ========================================================================
    any        foreign         fail loudly (someone else's object at our key: touch nothing)
    present    absent          copy -> verify -> tag verified -> delete
    present    unverified      re-verify against the source (re-copy if it does not verify) -> delete
    present    verified        re-verify against the source -> delete (the crash was before the delete)
    missing    absent          blocked: missing (nothing anywhere; loud if a copy was expected)
    missing    unverified/ver. confirm the copy against its recorded checksum -> quarantined
    changed    absent          blocked: changed, nothing moved
    changed    unverified/ver. confirm the copy -> blocked: changed, both kept (the new object stays)
    ========== =============== ========================================================================
    """
    if copy is CopyState.FOREIGN:
        return NextStep.FAIL_FOREIGN
    if source is SourceState.PRESENT:
        return NextStep.COPY if copy is CopyState.ABSENT else NextStep.VERIFY_THEN_DELETE
    if copy is CopyState.ABSENT:
        return NextStep.BLOCK_MISSING if source is SourceState.MISSING else NextStep.BLOCK_CHANGED
    return NextStep.CONFIRM_COPY


def copy_state(provenance_: Provenance | None, *, finding_id: str, bucket: str, key: str, exists: bool) -> CopyState:
    """Classify what sits at the finding's quarantine key.

    An untagged object there counts as this finding's unverified copy: only the remediator writes the
    quarantine bucket, the key is namespaced by the finding id, and tags are written right after the copy
    (a crash between the two leaves an untagged copy).
    """
    if not exists:
        return CopyState.ABSENT
    if provenance_ is None:
        return CopyState.UNVERIFIED
    if provenance_.finding_id != finding_id or provenance_.source_bucket != bucket or not provenance_.names_key(key):
        return CopyState.FOREIGN
    return CopyState.VERIFIED if provenance_.verified is not None else CopyState.UNVERIFIED


def source_state(view: ObjectView | None, *, finding_etag: str) -> SourceState:
    if view is None:
        return SourceState.MISSING
    expected = normalise_etag(finding_etag)
    if expected and view.etag != expected:
        return SourceState.CHANGED
    return SourceState.PRESENT


# --------------------------------------------------------------------------------------------------------
# What the mover verified: the facts every outcome message is written from
# --------------------------------------------------------------------------------------------------------


class CopyCheck(StrEnum):
    """What is in the quarantine bucket for the finding, as the mover last checked it."""

    NONE = "none"  # no verified copy (nothing was copied, or the copy did not verify and is not trusted)
    CHECKSUM = "checksum"  # a copy whose size and checksum match the finding's version
    SIZE_ONLY = "size_only"  # a copy confirmed by its size only (it carries no checksum record)


class SourceFate(StrEnum):
    """What became of the finding's version in its own bucket."""

    DELETED = "deleted"  # this attempt deleted it (after verifying the copy), and it is not listed any more
    KEPT = "kept"  # it is still in the bucket (listed, or read by this attempt and not deleted)
    GONE = "gone"  # it is not in the bucket and this attempt did not delete it (someone else, an earlier
    # attempt, or an overwrite of an unversioned key)
    UNKNOWN = "unknown"  # the mover could not tell (it may not read the bucket)


class AtKey(StrEnum):
    """What the finding's key shows as its current object when the mover finished."""

    NOTHING = "nothing"  # no object: no version left, or a delete marker on top
    FINDING = "finding"  # the finding's own version
    NEWER = "newer"  # a different object, written after the finding's version
    OLDER = "older"  # a version written before the finding's (current again once the finding's went)
    OTHER = "other"  # a different object whose order relative to the finding's version is not known
    UNKNOWN = "unknown"  # not looked at (the listing failed)


@dataclass(frozen=True)
class KeySurvey:
    """One ListObjectVersions of the exact key, read against the finding's version (see :func:`survey_key`).

    The counts are versions of the key other than the finding's own, the current one included."""

    at_key: AtKey
    kept_version: str | None  # the finding's version id when it is still listed ("null": the null version)
    older: int = 0
    newer: int = 0
    other: int = 0  # order relative to the finding's version not known (the same second, or no time to compare)


def _is_null(version_id: str | None) -> bool:
    return version_id in (None, "", UNVERSIONED)


def survey_key(
    versions: Sequence[Mapping[str, Any]],
    delete_markers: Sequence[Mapping[str, Any]],
    *,
    key: str,
    finding_version: str | None,
    finding_etag: str,
    finding_modified: datetime | None,
) -> KeySurvey:
    """Where the finding's version stands among the versions of its exact key.

    ``versions`` and ``delete_markers`` are ListObjectVersions entries, in S3's order (newest first per
    key); entries of other keys are ignored. The finding's version is the listed ``finding_version``, or,
    for a finding without one (or ``null``), the null version with the finding's ETag (a null version is
    overwritten in place, so only its ETag says whether it still holds the finding's bytes).

    Order: when the finding's version is listed, its position says which versions are newer; when it is
    gone, ``LastModified`` (whole seconds) is compared with ``finding_modified``; a null version that is
    no longer the finding's replaced it, so it is newer; anything else (the same second, or no time to
    compare with) is ``other``: its order is not claimed."""
    mine = [v for v in versions if v.get("Key") == key]
    markers = [m for m in delete_markers if m.get("Key") == key]
    etag = normalise_etag(finding_etag)
    null_finding = _is_null(finding_version)

    def is_finding(entry: Mapping[str, Any]) -> bool:
        if null_finding:
            return _is_null(entry.get("VersionId")) and normalise_etag(entry.get("ETag")) == etag
        return entry.get("VersionId") == finding_version

    position = next((index for index, entry in enumerate(mine) if is_finding(entry)), None)
    kept = None if position is None else str(mine[position].get("VersionId") or UNVERSIONED)
    moment = None if finding_modified is None else _aware(finding_modified).replace(microsecond=0)

    def order(index: int, entry: Mapping[str, Any]) -> AtKey:
        if position is not None:
            return AtKey.NEWER if index < position else AtKey.OLDER
        if null_finding and _is_null(entry.get("VersionId")):
            return AtKey.NEWER  # the null version was the finding's; another object replaced it in place
        modified = entry.get("LastModified")
        if moment is None or not isinstance(modified, datetime):
            return AtKey.OTHER
        modified = _aware(modified).replace(microsecond=0)
        if modified > moment:
            return AtKey.NEWER
        return AtKey.OLDER if modified < moment else AtKey.OTHER

    counts = {AtKey.NEWER: 0, AtKey.OLDER: 0, AtKey.OTHER: 0}
    at_key = AtKey.NOTHING
    for index, entry in enumerate(mine):
        relation = AtKey.FINDING if index == position else order(index, entry)
        if relation is not AtKey.FINDING:
            counts[relation] += 1
        if entry.get("IsLatest"):
            at_key = relation
    if any(marker.get("IsLatest") for marker in markers):
        at_key = AtKey.NOTHING
    return KeySurvey(at_key, kept, counts[AtKey.OLDER], counts[AtKey.NEWER], counts[AtKey.OTHER])


@dataclass(frozen=True)
class MoveFacts:
    """What the mover verified when it finished: the copy, the finding's version, and what its key holds.

    Every outcome message is written from these, never from what a step was expected to do. Kept in the
    state record (``quarantine["facts"]``, see :meth:`encode`)."""

    copy: CopyCheck
    source: SourceFate
    kept_version: str = ""  # the finding's version id when KEPT ("null" for a null version)
    at_key: AtKey = AtKey.UNKNOWN
    older: int = 0  # versions of the key other than the finding's, written before it (the current one included)
    newer: int = 0  # ... written after it
    other: int = 0  # ... whose order is not known
    listed: bool = False  # the key's versions were listed (else at_key is UNKNOWN and the counts are 0)

    @classmethod
    def of(cls, copy: CopyCheck, survey: KeySurvey | None, *, deleted: bool = False, unlisted: SourceFate) -> MoveFacts:
        """The facts from a listing (``survey``), or, when there is none, from the calls' own answers
        (``unlisted``: what the HEAD or the delete of this attempt said of the finding's version)."""
        if survey is None:
            return cls(copy, SourceFate.DELETED if deleted else unlisted)
        if survey.kept_version is not None:
            source = SourceFate.KEPT
        else:
            source = SourceFate.DELETED if deleted else SourceFate.GONE
        return cls(
            copy,
            source,
            kept_version=survey.kept_version or "",
            at_key=survey.at_key,
            older=survey.older,
            newer=survey.newer,
            other=survey.other,
            listed=True,
        )

    def noncurrent(self) -> tuple[int, int, int]:
        """(older, newer, other) versions that are not the key's current object."""
        return (
            self.older - (self.at_key is AtKey.OLDER),
            self.newer - (self.at_key is AtKey.NEWER),
            self.other - (self.at_key is AtKey.OTHER),
        )

    def encode(self) -> str:
        """Compact JSON (the state record keeps strings only)."""
        return json.dumps(
            {
                "copy": self.copy.value,
                "source": self.source.value,
                "kept_version": self.kept_version,
                "at_key": self.at_key.value,
                "older": self.older,
                "newer": self.newer,
                "other": self.other,
                "listed": self.listed,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str) -> MoveFacts:
        """:meth:`encode`'s text back (ValueError when it is not such a text)."""
        try:
            data = json.loads(text)
            facts = cls(
                copy=CopyCheck(data["copy"]),
                source=SourceFate(data["source"]),
                kept_version=str(data["kept_version"]),
                at_key=AtKey(data["at_key"]),
                older=int(data["older"]),
                newer=int(data["newer"]),
                other=int(data["other"]),
                listed=bool(data["listed"]),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not the facts of a move: {exc}") from None
        if min(facts.older, facts.newer, facts.other) < 0:
            raise ValueError("not the facts of a move: a negative count")
        return facts
