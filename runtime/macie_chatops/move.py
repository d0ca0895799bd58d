"""The S3 mover: the exact object version into the account's quarantine bucket, and back, never losing a byte.

``ObjectMover(s3, multipart_threshold_bytes=...)`` works with one member account's S3 client (from
``sessions.MemberSessions``); every decision comes from :mod:`macie_chatops.quarantine_plan` (pure).

Quarantine, step by step (``checkpoint`` is called after each step, so tests can crash the mover there):

1. HEAD the source version the finding names (``VersionId``; none when the finding's ``versionId`` is "")
   and HEAD the finding's quarantine key (plus its tags when it exists). Gone -> BLOCKED(missing); ETag no
   longer the finding's -> BLOCKED(changed); nothing is touched. ``SOURCE_READ``.
2. Copy that version with boto3's managed copy (the s3transfer TransferManager behind ``client.copy``,
   told the size and ETag step 1 read; multipart from ``multipart_threshold_bytes``, so objects over 5 GB
   work) into the quarantine bucket, in the same region:
   no encryption arguments (the bucket's own KMS key applies, whatever key the source used), metadata and
   content headers spelled out with ``MetadataDirective=REPLACE`` (the same on both paths of the managed
   copy), ``CopySourceIfMatch`` the finding's ETag, a ``ChecksumAlgorithm`` so S3 computes a comparable
   checksum. Provenance tags go on atomically (single copy) or right after (multipart). ``COPIED``.
3. Verify: size, and a checksum (S3's own, or streamed; see quarantine_plan). Then write the
   ``macie-chatops:verified`` tag: the commit point. ``VERIFIED``.
4. Object Lock retention or legal hold on the source version -> BLOCKED(locked), both copies kept, no delete
   attempted. Else delete the source version (``VersionId``; when there is none, the ``null`` version with
   ``IfMatch`` its ETag, so an object written since is never deleted and a bucket versioned since the
   object was written keeps neither the bytes nor a delete marker). AccessDenied -> BLOCKED(locked)
   (Object Lock, legal hold or a policy: both copies kept). ``DELETED``.
5. List the versions of the exact key and read them against the finding's version (``MoveOutcome.facts``:
   whether that version is gone or still there, what the key's current object is, how many versions older
   and newer than the finding's remain). ``COUNTED``. Every outcome that got as far as the bucket carries
   such facts, listed at its end, and the messages are written from them, never from what a step was
   expected to do (an overwrite between the copy and the delete, say, leaves the key holding a new object).

A redelivery runs the same code: the HEADs of step 1 tell it how far an earlier attempt got, and
``quarantine_plan.next_step`` says what is left (see its table). The source is only ever deleted right
after a verification made in the same attempt, so no crash point can lose the object.

Restore is the reverse copy of the exact quarantined bytes to the original bucket and key, as a new version
(metadata, content type and the object's own tags as they were; the bucket's default encryption). The tags
are read from the source version before the copy (``MoveOutcome.original_tags``: the copy carries ours, so
the state record keeps them; None when S3 would not show them) and handed back in
``RestoreRequest.original_tags``. Steps: HEAD the quarantine copy, HEAD
the original key (an object there with the same bytes = an earlier attempt's restore: adopt it; any other
object = refuse, never replace someone's newer data), copy with ``If-None-Match: *`` (S3 refuses the write
if an object appeared meanwhile), verify. The quarantine copy is kept (decision): it is the audit evidence,
it keeps the restore idempotent, and the quarantine bucket's retention lifecycle expires it.

Errors: outcomes S3 tells us about (missing, changed, locked, access denied, no quarantine bucket) are
returned as :class:`MoveOutcome` / :class:`RestoreOutcome`; anything else (throttling after botocore's
retries, 5xx, network) raises, so the caller records FAILED and the job is retried.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import (
    STREAM_ALGORITHM,
    UNVERSIONED,
    BlockReason,
    Checksum,
    CopyCheck,
    KeySurvey,
    MoveFacts,
    MoveStatus,
    MoveStep,
    NextStep,
    ObjectView,
    Provenance,
    RestoreStatus,
    SourceFate,
    SourceState,
    StreamHasher,
    TagPairs,
    Verification,
    VerifyResult,
    byte_ranges,
    compare,
    copy_checksum_algorithm,
    copy_extra_args,
    copy_state,
    crc32_checksum,
    crc32_combine,
    encode_original_tags,
    full_object_checksum,
    next_step,
    normalise_etag,
    provenance,
    quarantine_key,
    quarantine_metadata,
    restored_metadata,
    source_state,
    survey_key,
    tag_pairs,
    tagging_header,
    verification_method,
)
from macie_chatops.summary import FindingSummary

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

MB: Final = 1024 * 1024
STREAM_CHUNK_BYTES: Final = 8 * MB
# Parallel verification reads ranges of at least this size (below it, one stream is as fast).
VERIFY_RANGE_BYTES: Final = 256 * MB
NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NotFound", "405", "MethodNotAllowed"})
ACCESS_DENIED_CODES: Final = frozenset({"403", "AccessDenied", "AllAccessDisabled", "KMS.AccessDeniedException"})
PRECONDITION_CODES: Final = frozenset({"412", "PreconditionFailed"})
NO_BUCKET_CODES: Final = frozenset({"NoSuchBucket"})
ARCHIVED_CODES: Final = frozenset({"InvalidObjectState"})
# Storage classes a restore may ask for again (the archive classes would make the object unreadable).
RESTORABLE_STORAGE_CLASSES: Final = frozenset(
    {"STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY"}
)

Checkpoint = Callable[[MoveStep], None]


def _no_checkpoint(step: MoveStep) -> None:
    return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "") or exc)


def _copy_precondition_failed(exc: Exception) -> bool:
    """s3transfer turns a part copy's 412 into S3CopyFailedError; CopyObject's 412 stays a ClientError."""
    from s3transfer.exceptions import S3CopyFailedError

    return isinstance(exc, S3CopyFailedError) and "did not match expected ETag" in str(exc)


def _parse_time(text: str) -> datetime | None:
    """An ISO 8601 time (a trailing Z included); None when absent or unreadable (then no order is claimed)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass(frozen=True)
class MoveRequest:
    """One object version to quarantine (from the state record's summary, never from the job message)."""

    finding_id: str
    account_id: str
    region: str
    bucket: str
    key: str  # raw UTF-8
    version_id: str  # "" when unversioned
    etag: str
    size: int
    approver: str
    last_modified: datetime | None = None  # the version's time as Macie read it (orders what remains at the key)

    @classmethod
    def of(cls, summary: FindingSummary, *, approver: str) -> MoveRequest:
        return cls(
            finding_id=summary.finding_id,
            account_id=summary.account_id,
            region=summary.region,
            bucket=summary.bucket,
            key=summary.key,
            version_id=summary.version_id,
            etag=summary.etag,
            size=summary.size,
            approver=approver,
            last_modified=_parse_time(summary.last_modified),
        )

    @property
    def quarantine_bucket(self) -> str:
        return quarantine_bucket_name(self.account_id, self.region)

    @property
    def quarantine_key(self) -> str:
        return quarantine_key(self.finding_id, self.bucket, self.key)


@dataclass(frozen=True)
class MoveOutcome:
    status: MoveStatus
    quarantine_bucket: str
    quarantine_key: str
    reason: BlockReason | None = None
    detail: str = ""
    quarantine_version_id: str | None = None
    copy_kept: bool = False  # a verified copy is in the quarantine bucket
    verification: str | None = None  # e.g. "s3 CRC32:Xg5djw=="
    resumed: bool = False  # an earlier attempt had already done part of the move
    retryable: bool = False  # FAILED only: a retry may succeed
    original_tags: TagPairs | None = None  # the source version's tags (None: not known), for a restore
    facts: MoveFacts | None = None  # what the mover verified at the end (None: it never reached the bucket)

    @property
    def older_versions(self) -> int | None:
        """Versions of the key written before the finding's that remain (None: not listed)."""
        return self.facts.older if self.facts is not None and self.facts.listed else None

    def location(self, region: str) -> dict[str, str]:
        """The move's result for the state record (``RecordUpdates.quarantine``: strings only): where the copy
        is (only when there is one) and what the mover verified (``facts``, :meth:`MoveFacts.encode`)."""
        location = {"region": region}
        if self.copy_kept:
            location.update(bucket=self.quarantine_bucket, key=self.quarantine_key)
        if self.quarantine_version_id:
            location["version_id"] = self.quarantine_version_id
        if self.older_versions is not None:
            location["older_versions"] = str(self.older_versions)
        if self.verification:
            location["verification"] = self.verification
        if self.original_tags is not None:
            location["original_tags"] = encode_original_tags(self.original_tags)
        if self.facts is not None:
            location["facts"] = self.facts.encode()
        return location


@dataclass(frozen=True)
class RestoreRequest:
    finding_id: str
    account_id: str
    region: str
    bucket: str
    key: str
    quarantine_key: str
    storage_class: str = "STANDARD"
    original_tags: TagPairs = ()  # put back on the restored object (what the quarantine read from the source)

    @classmethod
    def of(
        cls, summary: FindingSummary, *, quarantine_key_: str | None = None, original_tags: TagPairs = ()
    ) -> RestoreRequest:
        return cls(
            finding_id=summary.finding_id,
            account_id=summary.account_id,
            region=summary.region,
            bucket=summary.bucket,
            key=summary.key,
            quarantine_key=quarantine_key_ or quarantine_key(summary.finding_id, summary.bucket, summary.key),
            storage_class=summary.storage_class,
            original_tags=original_tags,
        )

    @property
    def quarantine_bucket(self) -> str:
        return quarantine_bucket_name(self.account_id, self.region)


@dataclass(frozen=True)
class RestoreOutcome:
    status: RestoreStatus
    detail: str = ""
    restored_version_id: str | None = None
    verification: str | None = None
    resumed: bool = False
    retryable: bool = False


@dataclass(frozen=True)
class _Located:
    bucket: str
    key: str
    version_id: str | None

    def args(self) -> dict[str, str]:
        args = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            args["VersionId"] = self.version_id
        return args


class ObjectMover:
    """Quarantine and restore for one member account's S3 client (see the module docstring)."""

    def __init__(
        self,
        s3: S3Client,
        *,
        multipart_threshold_bytes: int,
        multipart_chunksize_bytes: int | None = None,
        max_concurrency: int = 10,
        stream_chunk_bytes: int = STREAM_CHUNK_BYTES,
        verify_range_bytes: int = VERIFY_RANGE_BYTES,
        clock: Callable[[], datetime] = _utcnow,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        if multipart_threshold_bytes < 5 * MB:
            raise ValueError("the multipart threshold must be at least 5 MiB (S3's smallest part)")
        from boto3.s3.transfer import TransferConfig

        self._s3 = s3
        self.multipart_threshold = multipart_threshold_bytes
        self._transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold_bytes,
            multipart_chunksize=multipart_chunksize_bytes or multipart_threshold_bytes,
            max_concurrency=max_concurrency,
            preferred_transfer_client="classic",  # deterministic: never the CRT client
        )
        self._chunk = stream_chunk_bytes
        self._concurrency = max_concurrency
        self._verify_range = max(verify_range_bytes, stream_chunk_bytes)
        self._clock = clock
        self._checkpoint = checkpoint or _no_checkpoint

    # ----------------------------------------------------------------------------------------------------
    # Quarantine
    # ----------------------------------------------------------------------------------------------------

    def quarantine(self, request: MoveRequest) -> MoveOutcome:
        """Move the finding's object version into quarantine, or say truthfully why not."""
        from macie_chatops.quarantine_plan import InvalidKeyError

        try:
            qkey = request.quarantine_key
        except InvalidKeyError as exc:
            return self._failed(request, f"the finding's key cannot be quarantined: {exc}", key="")
        target = _Located(request.quarantine_bucket, qkey, None)
        source_at = _Located(request.bucket, request.key, request.version_id or None)

        source = self._head_source(request, source_at)
        if isinstance(source, MoveOutcome):
            return source
        self._checkpoint(MoveStep.SOURCE_READ)
        existing = self._head_copy(request, target)
        if isinstance(existing, MoveOutcome):
            return existing
        copy_view, copy_tags = existing
        src_state = source_state(source, finding_etag=request.etag)
        cstate = copy_state(
            copy_tags,
            finding_id=request.finding_id,
            bucket=request.bucket,
            key=request.key,
            exists=copy_view is not None,
        )
        step = next_step(src_state, cstate)
        logger.info(
            "quarantine plan",
            extra={"finding_id": request.finding_id, "source": src_state.value, "copy": cstate.value, "step": step},
        )

        if step is NextStep.FAIL_FOREIGN:
            logger.error(
                "the quarantine key holds an object that is not this finding's copy: nothing touched",
                extra={"finding_id": request.finding_id, "quarantine_key": qkey},
            )
            return self._failed(
                request,
                f"s3://{target.bucket}/{qkey} holds an object whose tags name another finding or object; "
                "nothing was touched",
            )
        if step is NextStep.BLOCK_MISSING:
            if request.version_id or request.etag:
                logger.warning(
                    "source object is gone and no quarantine copy exists",
                    extra={"finding_id": request.finding_id, "bucket": request.bucket},
                )
            return MoveOutcome(
                MoveStatus.BLOCKED,
                target.bucket,
                qkey,
                reason=BlockReason.MISSING,
                detail="The object version named by the finding is in neither the source bucket nor the "
                "quarantine bucket; nothing was moved.",
                facts=MoveFacts.of(CopyCheck.NONE, None, unlisted=SourceFate.GONE),
            )
        if step is NextStep.BLOCK_CHANGED:
            assert source is not None
            return MoveOutcome(
                MoveStatus.BLOCKED,
                target.bucket,
                qkey,
                reason=BlockReason.CHANGED,
                detail=f"ETag is now {source.etag}, the finding names {normalise_etag(request.etag)}; nothing was "
                "moved.",
                facts=self._facts(request, None, CopyCheck.NONE, unlisted=SourceFate.GONE),
            )
        if step is NextStep.CONFIRM_COPY:
            assert copy_view is not None
            return self._confirm_copy(request, src_state, target, copy_view, copy_tags)

        assert source is not None  # COPY or VERIFY_THEN_DELETE: the source is present
        return self._copy_verify_delete(
            request, source, source_at, target, copy_view, copy_tags, resumed=step is NextStep.VERIFY_THEN_DELETE
        )

    def _copy_verify_delete(
        self,
        request: MoveRequest,
        source: ObjectView,
        source_at: _Located,
        target: _Located,
        copy_view: ObjectView | None,
        copy_tags: Provenance | None,
        *,
        resumed: bool,
    ) -> MoveOutcome:
        """Steps 2-5 while the source version is present: (re-)copy, verify, tag verified, delete, count."""
        qkey = target.key
        original_tags = self._source_tags(request, source_at, source)
        # An unversioned source is read with If-Match, so a stream never mixes in an object written since.
        if_match = None if source_at.version_id else source.etag
        verified = None
        if resumed:
            assert copy_view is not None
            copy_at = _Located(target.bucket, target.key, copy_view.version_id)
            verified = self._verify(
                copy_view, copy_at, expected=source.checksum, size=source.size, source=source_at, source_etag=if_match
            )
            if not verified.ok:
                logger.warning(
                    "an earlier copy does not verify against the source; copying again",
                    extra={"finding_id": request.finding_id, "detail": verified.detail},
                )
                verified = None
        if verified is None:
            copied = self._copy_to_quarantine(request, source, source_at, target)
            if isinstance(copied, MoveOutcome):
                return copied
            copy_view, copy_tags = copied
            self._checkpoint(MoveStep.COPIED)
            copy_at = _Located(target.bucket, target.key, copy_view.version_id)
            verified = self._verify(
                copy_view, copy_at, expected=source.checksum, size=source.size, source=source_at, source_etag=if_match
            )
            if not verified.ok:
                return self._verification_failed(request, source_at, copy_at, verified)
        assert copy_view is not None and verified.checksum is not None
        copy_at = _Located(target.bucket, target.key, copy_view.version_id)
        tags = copy_tags or self._provenance(request, source)
        self._put_tags(copy_at, tags.with_verified(verified.checksum))
        self._checkpoint(MoveStep.VERIFIED)
        how = f"{verified.method} {verified.checksum}"

        now = self._clock()
        if source.lock.active(now):
            return MoveOutcome(
                MoveStatus.BLOCKED,
                target.bucket,
                qkey,
                reason=BlockReason.LOCKED,
                detail=f"The source version is protected by {source.lock.describe(now)}; it was not deleted. "
                f"The quarantine copy verified: {how}.",
                quarantine_version_id=copy_view.version_id,
                copy_kept=True,
                verification=how,
                resumed=resumed,
                original_tags=original_tags,
                facts=self._facts(request, source, CopyCheck.CHECKSUM, unlisted=SourceFate.KEPT),
            )
        blocked = self._delete_source(request, source, source_at)
        if blocked is not None:
            # What the refused delete left is listed, not assumed: an overwrite may have replaced the bytes.
            return MoveOutcome(
                MoveStatus.BLOCKED,
                target.bucket,
                qkey,
                reason=blocked[0],
                detail=f"{blocked[1]} The quarantine copy verified: {how}.",
                quarantine_version_id=copy_view.version_id,
                copy_kept=True,
                verification=how,
                resumed=resumed,
                original_tags=original_tags,
                facts=self._facts(
                    request,
                    source,
                    CopyCheck.CHECKSUM,
                    # S3 refusing the delete keeps the version; a failed If-Match says nothing about it.
                    unlisted=SourceFate.KEPT if blocked[0] is BlockReason.LOCKED else SourceFate.UNKNOWN,
                ),
            )
        self._checkpoint(MoveStep.DELETED)
        facts = self._facts(request, source, CopyCheck.CHECKSUM, deleted=True, unlisted=SourceFate.DELETED)
        self._checkpoint(MoveStep.COUNTED)
        return MoveOutcome(
            MoveStatus.QUARANTINED,
            target.bucket,
            qkey,
            quarantine_version_id=copy_view.version_id,
            copy_kept=True,
            verification=how,
            resumed=resumed,
            original_tags=original_tags,
            facts=facts,
        )

    # -- quarantine steps ---------------------------------------------------------------------------------

    def _failed(
        self, request: MoveRequest, detail: str, *, retryable: bool = False, key: str | None = None
    ) -> MoveOutcome:
        qkey = request.quarantine_key if key is None else key
        return MoveOutcome(MoveStatus.FAILED, request.quarantine_bucket, qkey, detail=detail, retryable=retryable)

    def _blocked(
        self, request: MoveRequest, reason: BlockReason, detail: str, facts: MoveFacts | None = None
    ) -> MoveOutcome:
        return MoveOutcome(
            MoveStatus.BLOCKED, request.quarantine_bucket, request.quarantine_key, reason, detail, facts=facts
        )

    def _head(self, at: _Located, **extra: str) -> ObjectView | None:
        """The object's facts, or None when it is not there (404, or 405: the version is a delete marker)."""
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(**at.args(), ChecksumMode="ENABLED", **extra)  # type: ignore[arg-type]
        except ClientError as exc:
            if _code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return ObjectView.from_head(head)

    def _head_source(self, request: MoveRequest, at: _Located) -> ObjectView | MoveOutcome | None:
        from botocore.exceptions import ClientError

        try:
            return self._head(at)
        except ClientError as exc:
            code = _code(exc)
            if code in ACCESS_DENIED_CODES:
                return self._blocked(
                    request,
                    BlockReason.ACCESS_DENIED,
                    f"The remediation role may not read s3://{request.bucket} ({code}); nothing was moved.",
                    MoveFacts.of(CopyCheck.NONE, None, unlisted=SourceFate.UNKNOWN),
                )
            if code in NO_BUCKET_CODES:
                return self._blocked(
                    request,
                    BlockReason.MISSING,
                    f"Bucket {request.bucket} no longer exists.",
                    MoveFacts.of(CopyCheck.NONE, None, unlisted=SourceFate.GONE),
                )
            if code in {"400", "InvalidArgument", "BadRequest"}:
                return self._failed(
                    request,
                    f"S3 refused to read the object ({code}): an SSE-C object, or a version id S3 does not accept",
                )
            raise

    def _source_tags(self, request: MoveRequest, at: _Located, source: ObjectView | None) -> TagPairs | None:
        """The finding's version's own tags, so a restore can put them back (the copy carries ours instead).

        None when they cannot be known: no such version (the plan decides what that means), a version that
        is no longer the finding's, or a read the bucket denies (the move goes on; a restore records that
        it put the object back without tags)."""
        from botocore.exceptions import ClientError

        if source is None or source.etag != normalise_etag(request.etag):
            return None
        args: dict[str, Any] = {"Bucket": at.bucket, "Key": at.key}
        if source.version_id:
            args["VersionId"] = source.version_id
        try:
            return tag_pairs(self._s3.get_object_tagging(**args).get("TagSet", []))
        except ClientError as exc:
            code = _code(exc)
            if code in ACCESS_DENIED_CODES | NOT_FOUND_CODES:
                logger.warning(
                    "the source's tags cannot be read: a restore will not bring them back",
                    extra={"finding_id": request.finding_id, "code": code},
                )
                return None
            raise

    def _head_copy(
        self, request: MoveRequest, at: _Located
    ) -> tuple[ObjectView | None, Provenance | None] | MoveOutcome:
        from botocore.exceptions import ClientError

        try:
            view = self._head(at)
            if view is None:
                return None, None
            tagging = self._s3.get_object_tagging(**_Located(at.bucket, at.key, view.version_id).args())  # type: ignore[arg-type]
        except ClientError as exc:
            code = _code(exc)
            if code in NO_BUCKET_CODES:
                return self._no_quarantine_bucket(request)
            if code in ACCESS_DENIED_CODES:
                return self._failed(
                    request,
                    f"the remediation role may not read its quarantine bucket {at.bucket} ({code}): check the member "
                    "stack's role policy",
                )
            raise
        return view, Provenance.from_tag_set(tagging.get("TagSet", []))

    def _no_quarantine_bucket(self, request: MoveRequest) -> MoveOutcome:
        return self._failed(
            request,
            f"quarantine bucket {request.quarantine_bucket} does not exist: deploy the member stack to account "
            f"{request.account_id} in {request.region}, then re-queue the finding",
        )

    def _provenance(self, request: MoveRequest, source: ObjectView) -> Provenance:
        return provenance(
            finding_id=request.finding_id,
            bucket=request.bucket,
            key=request.key,
            version_id=source.version_id or request.version_id,
            etag=source.etag,
            size=source.size,
            checksum=source.checksum,
            approver=request.approver,
            at=self._clock(),
        )

    def _copy_to_quarantine(
        self, request: MoveRequest, source: ObjectView, source_at: _Located, target: _Located
    ) -> tuple[ObjectView, Provenance] | MoveOutcome:
        from botocore.exceptions import ClientError

        multipart = source.size >= self.multipart_threshold
        tags = self._provenance(request, source)
        metadata, _ = quarantine_metadata(source.metadata, request.key)
        extra = copy_extra_args(
            source,
            metadata=metadata,
            checksum_algorithm=copy_checksum_algorithm(source.checksum, multipart=multipart),
            # Single copy: tags atomically with the object. Multipart: s3transfer would put them with the
            # copy's ChecksumAlgorithm (CRC64NVME needs awscrt), so we tag right after the copy instead.
            tagging=None if multipart else tags.tagging(),
            if_match=source.etag,
        )
        if multipart:
            extra["TaggingDirective"] = "REPLACE"
            extra["Tagging"] = ""
        try:
            self._managed_copy(source_at, target, extra, source)
        except ClientError as exc:
            code = _code(exc)
            if code in PRECONDITION_CODES:
                return self._blocked(
                    request,
                    BlockReason.CHANGED,
                    "The object changed while it was being copied; nothing was moved.",
                    self._facts(request, source, CopyCheck.NONE, unlisted=SourceFate.UNKNOWN),
                )
            if code in NOT_FOUND_CODES:
                return self._blocked(
                    request,
                    BlockReason.MISSING,
                    "The object version disappeared while it was being copied.",
                    self._facts(request, source, CopyCheck.NONE, unlisted=SourceFate.GONE),
                )
            if code in NO_BUCKET_CODES:
                return self._no_quarantine_bucket(request)
            if code in ACCESS_DENIED_CODES:
                return self._blocked(
                    request,
                    BlockReason.ACCESS_DENIED,
                    f"Copying into the quarantine bucket was denied ({code}: {_message(exc)}); check the source "
                    "object's KMS key policy and the remediation role; nothing was moved.",
                    self._facts(request, source, CopyCheck.NONE, unlisted=SourceFate.KEPT),
                )
            if code in ARCHIVED_CODES:
                return self._failed(
                    request,
                    f"the object is in an archive storage class ({code}): restore it from the archive first, then "
                    "re-queue the finding",
                )
            raise
        except Exception as exc:
            if _copy_precondition_failed(exc):
                return self._blocked(
                    request,
                    BlockReason.CHANGED,
                    "The object changed while it was being copied; nothing was moved.",
                    self._facts(request, source, CopyCheck.NONE, unlisted=SourceFate.UNKNOWN),
                )
            raise
        view = self._head(target)
        if view is None:
            raise RuntimeError(f"the copy to s3://{target.bucket}/{target.key} completed but cannot be read back")
        copy_at = _Located(target.bucket, target.key, view.version_id)
        if multipart:
            self._put_tags(copy_at, tags)
        return view, tags

    def _managed_copy(self, source: _Located, target: _Located, extra: Mapping[str, Any], known: ObjectView) -> None:
        """boto3's managed copy (the s3transfer TransferManager behind ``client.copy``): CopyObject below the
        threshold, a multipart copy (UploadPartCopy, each part with ``CopySourceIfMatch``) above it.

        The source was just read, so its size and ETag are handed to the manager (s3transfer's documented
        ``provide_transfer_size`` / ``provide_object_etag``) instead of letting it HEAD the object again."""
        from boto3.s3.transfer import create_transfer_manager
        from s3transfer.subscribers import BaseSubscriber

        class _Known(BaseSubscriber):
            def on_queued(self, future: Any, **kwargs: Any) -> None:
                future.meta.provide_transfer_size(known.size)
                future.meta.provide_object_etag(f'"{known.etag}"')

        copy_source: dict[str, str] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            copy_source["VersionId"] = source.version_id
        with create_transfer_manager(self._s3, self._transfer_config) as manager:
            future = manager.copy(
                copy_source=copy_source,
                bucket=target.bucket,
                key=target.key,
                extra_args=dict(extra),
                subscribers=[_Known()],
                source_client=self._s3,
            )
            future.result()

    def _put_tags(self, at: _Located, tags: Provenance) -> None:
        args: dict[str, Any] = {"Bucket": at.bucket, "Key": at.key, "Tagging": {"TagSet": tags.tag_set()}}
        if at.version_id:
            args["VersionId"] = at.version_id
        self._s3.put_object_tagging(**args)

    def _stream(self, at: _Located, algorithm: str, *, size: int, if_match: str | None = None) -> Checksum:
        """The object's checksum, computed here, reading it once with bounded buffers.

        CRC-32 of an object larger than ``verify_range_bytes`` is read as up to ``max_concurrency`` byte
        ranges in parallel (each with an 8 MiB buffer) and the range CRCs joined with ``crc32_combine``, so
        a multi-GB object verifies in a fraction of one stream's time within the Lambda's 15 minutes.
        SHA digests cannot be joined, so they are read as one stream."""
        ranges = byte_ranges(size, self._concurrency, self._verify_range)
        if algorithm != "CRC32" or len(ranges) < 2:
            return self._stream_range(at, algorithm, None, if_match).checksum()
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="verify") as pool:
            parts = list(pool.map(lambda r: self._stream_range(at, algorithm, r, if_match).crc, ranges))
        crc = parts[0]
        for (start, end), part in zip(ranges[1:], parts[1:], strict=True):
            crc = crc32_combine(crc, part, end - start + 1)
        return crc32_checksum(crc)

    def _stream_range(
        self, at: _Located, algorithm: str, byte_range: tuple[int, int] | None, if_match: str | None
    ) -> StreamHasher:
        args: dict[str, Any] = at.args()
        if if_match:
            args["IfMatch"] = f'"{if_match}"'
        if byte_range is not None:
            args["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        body = self._s3.get_object(**args)["Body"]
        hasher = StreamHasher(algorithm)
        try:
            for chunk in body.iter_chunks(self._chunk):
                hasher.update(chunk)
        finally:
            body.close()
        return hasher

    def _verify(
        self,
        copy: ObjectView,
        copy_at: _Located,
        *,
        expected: Checksum | None,
        size: int,
        source: _Located | None,
        source_etag: str | None = None,
    ) -> VerifyResult:
        """Size, then one checksum (quarantine_plan.verification_method says which)."""
        method = verification_method(expected, copy.checksum)
        if copy.size != size:
            return VerifyResult(False, method, None, f"size differs: expected {size} bytes, copy has {copy.size}")
        if method is Verification.S3:
            assert expected is not None and copy.checksum is not None
            return compare(expected, copy.checksum, method)
        if method is Verification.STREAM_COPY:
            assert expected is not None
            return compare(expected, self._stream(copy_at, expected.algorithm, size=copy.size), method)
        if source is None:
            return VerifyResult(False, method, None, "no checksum to compare with and no source to read")
        return compare(
            self._stream(source, STREAM_ALGORITHM, size=size, if_match=source_etag),
            self._stream(copy_at, STREAM_ALGORITHM, size=copy.size),
            method,
        )

    def _verification_failed(
        self, request: MoveRequest, source_at: _Located, copy_at: _Located, result: VerifyResult
    ) -> MoveOutcome:
        """The copy is not the source's bytes: drop it (the source still holds them) and say why."""
        logger.error(
            "quarantine copy failed verification; discarding it, the source is untouched",
            extra={"finding_id": request.finding_id, "detail": result.detail},
        )
        self._s3.delete_object(**copy_at.args())  # type: ignore[arg-type]
        now_source = self._head(source_at)
        if now_source is None:
            return self._blocked(
                request,
                BlockReason.MISSING,
                "The object disappeared while it was being copied.",
                self._facts(request, None, CopyCheck.NONE, unlisted=SourceFate.GONE),
            )
        if now_source.etag != normalise_etag(request.etag):
            return self._blocked(
                request,
                BlockReason.CHANGED,
                "The object changed while it was being copied; nothing was moved.",
                self._facts(request, None, CopyCheck.NONE, unlisted=SourceFate.UNKNOWN),
            )
        return self._failed(
            request, f"the quarantine copy did not verify ({result.detail}); it was discarded", retryable=True
        )

    def _confirm_copy(
        self,
        request: MoveRequest,
        src_state: SourceState,
        target: _Located,
        copy: ObjectView,
        tags: Provenance | None,
    ) -> MoveOutcome:
        """The source is gone or replaced and our copy exists: verify the copy on its own, report the truth."""
        copy_at = _Located(target.bucket, target.key, copy.version_id)
        expected = (tags.verified or tags.source_checksum) if tags else None
        size = tags.source_size if tags and tags.source_size is not None else request.size
        if expected is None:
            # An untagged copy (a crash between a multipart copy and its tagging): only the size is known.
            ok = copy.size == size
            result = VerifyResult(ok, Verification.STREAM_BOTH, None, "" if ok else f"size {copy.size} != {size}")
            how = "size only (the copy carries no checksum record)"
        else:
            result = self._verify(copy, copy_at, expected=expected, size=size, source=None)
            how = f"{result.method} {result.checksum}" if result.ok else ""
        if not result.ok:
            logger.error(
                "source gone and the quarantine copy does not verify: both kept as they are",
                extra={"finding_id": request.finding_id, "detail": result.detail},
            )
            return self._failed(
                request,
                f"the source version is gone and the quarantine copy s3://{target.bucket}/{target.key} does not "
                f"verify ({result.detail}); nothing was deleted, investigate by hand",
            )
        if tags is not None and tags.verified is None and result.checksum is not None:
            self._put_tags(copy_at, tags.with_verified(result.checksum))
        elif tags is None:
            logger.warning(
                "quarantine copy had no tags; confirmed by size only", extra={"finding_id": request.finding_id}
            )
        checked = CopyCheck.CHECKSUM if expected is not None else CopyCheck.SIZE_ONLY
        facts = self._facts(request, None, checked, unlisted=SourceFate.GONE)
        self._checkpoint(MoveStep.COUNTED)
        if src_state is SourceState.CHANGED:
            return MoveOutcome(
                MoveStatus.BLOCKED,
                target.bucket,
                target.key,
                reason=BlockReason.CHANGED,
                detail="The finding's version is in quarantine (verified), but a different object was written to "
                "the key since; that new object was left in place.",
                quarantine_version_id=copy.version_id,
                copy_kept=True,
                verification=how,
                resumed=True,
                facts=facts,
            )
        return MoveOutcome(
            MoveStatus.QUARANTINED,
            target.bucket,
            target.key,
            quarantine_version_id=copy.version_id,
            copy_kept=True,
            verification=how,
            resumed=True,
            facts=facts,
        )

    def _delete_source(self, request: MoveRequest, source: ObjectView, at: _Located) -> tuple[BlockReason, str] | None:
        """Delete the source version permanently; the reason it was refused, if it was."""
        from botocore.exceptions import ClientError

        args: dict[str, Any] = {"Bucket": at.bucket, "Key": at.key}
        version = request.version_id or source.version_id
        if version and version != UNVERSIONED:
            args["VersionId"] = version  # immutable: deleting it can only ever remove these bytes
        else:
            # No version id: an unversioned bucket, or an object written before versioning was enabled (real
            # S3 names that version "null" on HEAD; moto does not). A delete without a version id would, in
            # a versioned bucket, only hide the bytes behind a delete marker while the record says
            # QUARANTINED; deleting version "null" removes them in either kind of bucket. IfMatch: never
            # delete an object written since the copy.
            args["VersionId"] = UNVERSIONED
            args["IfMatch"] = f'"{source.etag}"'
        try:
            self._s3.delete_object(**args)
        except ClientError as exc:
            code = _code(exc)
            if code in NOT_FOUND_CODES:
                return None  # already gone (a concurrent delivery of the same job)
            if code in ACCESS_DENIED_CODES:
                return (
                    BlockReason.LOCKED,
                    f"Deleting the source version was denied ({code}): Object Lock, a legal hold or a policy "
                    "protects it.",
                )
            if code in PRECONDITION_CODES:
                return (
                    BlockReason.CHANGED,
                    "The key was overwritten after the copy (the delete's If-Match on the finding's ETag failed); "
                    "the new object was left in place.",
                )
            raise
        return None

    def _facts(
        self,
        request: MoveRequest,
        finding: ObjectView | None,
        copy: CopyCheck,
        *,
        deleted: bool = False,
        unlisted: SourceFate,
    ) -> MoveFacts:
        """What the mover can say for sure at the end: one listing of the key's versions, read against the
        finding's version (``finding``: this attempt's HEAD of it, for its time; else the time Macie read);
        ``unlisted`` is what the attempt's own calls said of that version, used only when the listing fails."""
        seen = finding is not None and finding.etag == normalise_etag(request.etag)
        modified = finding.last_modified if finding is not None and seen else request.last_modified
        return MoveFacts.of(copy, self._survey(request, modified), deleted=deleted, unlisted=unlisted)

    def _survey(self, request: MoveRequest, finding_modified: datetime | None) -> KeySurvey | None:
        """The versions of exactly the finding's key (None when S3 would not list them: the move stands)."""
        from botocore.exceptions import BotoCoreError, ClientError

        versions: list[Mapping[str, Any]] = []
        markers: list[Mapping[str, Any]] = []
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(Bucket=request.bucket, Prefix=request.key)
            for page in pages:
                page_versions = page.get("Versions", [])
                page_markers = page.get("DeleteMarkers", [])
                versions.extend(page_versions)
                markers.extend(page_markers)
                # Keys are listed in UTF-8 byte order, so once a longer key appears the exact key is done.
                if any(e.get("Key") != request.key for e in itertools.chain(page_versions, page_markers)):
                    break
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "could not list the key's versions: what remains at the key is not reported",
                extra={"finding_id": request.finding_id, "code": _code(exc) or type(exc).__name__},
            )
            return None
        return survey_key(
            versions,
            markers,
            key=request.key,
            finding_version=request.version_id or None,
            finding_etag=request.etag,
            finding_modified=finding_modified,
        )

    # ----------------------------------------------------------------------------------------------------
    # Restore
    # ----------------------------------------------------------------------------------------------------

    def restore(self, request: RestoreRequest) -> RestoreOutcome:
        """Copy the quarantined bytes back to the original bucket and key (see the module docstring)."""
        from botocore.exceptions import ClientError

        quarantined_at = _Located(request.quarantine_bucket, request.quarantine_key, None)
        destination = _Located(request.bucket, request.key, None)
        try:
            copy = self._head(quarantined_at)
        except ClientError as exc:
            return self._restore_refused(f"cannot read the quarantine copy ({_code(exc)}: {_message(exc)})", exc)
        if copy is None:
            logger.error("restore: the quarantine copy is missing", extra={"finding_id": request.finding_id})
            return RestoreOutcome(
                RestoreStatus.FAILED,
                f"the quarantine copy s3://{quarantined_at.bucket}/{quarantined_at.key} does not exist",
            )
        quarantined_at = _Located(quarantined_at.bucket, quarantined_at.key, copy.version_id)
        tagging = self._s3.get_object_tagging(**quarantined_at.args())  # type: ignore[arg-type]
        tags = Provenance.from_tag_set(tagging.get("TagSet", []))
        expected = (tags.verified or tags.source_checksum) if tags else None
        if expected is None:
            expected = copy.checksum

        try:
            present = self._head(destination)
        except ClientError as exc:
            return self._restore_refused(f"cannot read s3://{request.bucket}/{request.key} ({_code(exc)})", exc)
        if present is not None:
            return self._adopt_or_refuse(request, present, destination, copy, quarantined_at, expected)

        multipart = copy.size >= self.multipart_threshold
        algorithm = expected.algorithm if expected is not None and not multipart else None
        extra = copy_extra_args(
            copy,
            metadata=restored_metadata(copy.metadata, request.key),
            checksum_algorithm=algorithm or copy_checksum_algorithm(None, multipart=multipart),
            # The object's own tags again, never the quarantine's: atomically on a single copy; a multipart
            # copy is tagged right after it (as the quarantine copy is, see _copy_to_quarantine).
            tagging=tagging_header(request.original_tags) if not multipart else "",
            if_match=copy.etag,
            storage_class=request.storage_class if request.storage_class in RESTORABLE_STORAGE_CLASSES else None,
        )
        try:
            with self._if_none_match(destination):
                self._managed_copy(quarantined_at, destination, extra, copy)
        except ClientError as exc:
            code = _code(exc)
            if code in PRECONDITION_CODES:
                # If-None-Match: an object appeared at the key while we copied. Look again.
                present = self._head(destination)
                if present is not None:
                    return self._adopt_or_refuse(request, present, destination, copy, quarantined_at, expected)
            if code in ACCESS_DENIED_CODES | NO_BUCKET_CODES:
                return self._restore_refused(f"the copy back was refused ({code}: {_message(exc)})", exc)
            raise
        self._checkpoint(MoveStep.RESTORE_COPIED)
        restored = self._head(destination)
        if restored is None:
            raise RuntimeError(f"the restored object s3://{request.bucket}/{request.key} cannot be read back")
        restored_at = _Located(destination.bucket, destination.key, restored.version_id)
        if multipart and request.original_tags:
            self._put_tag_pairs(restored_at, request.original_tags)
        result = self._verify(restored, restored_at, expected=expected, size=copy.size, source=quarantined_at)
        if not result.ok:
            logger.error(
                "restored copy failed verification; removing it (the quarantine copy is kept)",
                extra={"finding_id": request.finding_id, "detail": result.detail},
            )
            if restored.version_id:
                self._s3.delete_object(**restored_at.args())  # type: ignore[arg-type]
            else:
                self._s3.delete_object(Bucket=restored_at.bucket, Key=restored_at.key, IfMatch=f'"{restored.etag}"')
            return RestoreOutcome(
                RestoreStatus.FAILED, f"the restored copy did not verify ({result.detail})", retryable=True
            )
        self._checkpoint(MoveStep.RESTORE_VERIFIED)
        return RestoreOutcome(
            RestoreStatus.RESTORED,
            restored_version_id=restored.version_id,
            verification=f"{result.method} {result.checksum}",
        )

    def _adopt_or_refuse(
        self,
        request: RestoreRequest,
        present: ObjectView,
        present_at: _Located,
        copy: ObjectView,
        copy_at: _Located,
        expected: Checksum | None,
    ) -> RestoreOutcome:
        """An object is at the original key: the same bytes (an earlier attempt's restore) or someone's new data."""
        at = _Located(present_at.bucket, present_at.key, present.version_id)
        result = self._verify(present, at, expected=expected, size=copy.size, source=copy_at)
        if result.ok:
            if request.original_tags and not self._s3.get_object_tagging(**at.args()).get("TagSet"):  # type: ignore[arg-type]
                # An earlier attempt died between a multipart copy and its tagging: finish it.
                self._put_tag_pairs(at, request.original_tags)
            return RestoreOutcome(
                RestoreStatus.RESTORED,
                "the original key already holds the quarantined bytes",
                restored_version_id=present.version_id,
                verification=f"{result.method} {result.checksum}",
                resumed=True,
            )
        return RestoreOutcome(
            RestoreStatus.REFUSED,
            f"s3://{request.bucket}/{request.key} now holds a different object (ETag {present.etag}); restoring "
            "would replace it. The object stays in quarantine.",
        )

    def _put_tag_pairs(self, at: _Located, pairs: TagPairs) -> None:
        self._s3.put_object_tagging(
            **at.args(),  # type: ignore[arg-type]
            Tagging={"TagSet": [{"Key": key, "Value": value} for key, value in pairs]},
        )

    def _restore_refused(self, detail: str, exc: Exception) -> RestoreOutcome:
        code = _code(exc)
        if code in ACCESS_DENIED_CODES | NO_BUCKET_CODES | NOT_FOUND_CODES:
            return RestoreOutcome(RestoreStatus.REFUSED, detail)
        raise exc

    @contextmanager
    def _if_none_match(self, destination: _Located) -> Iterator[None]:
        """Make the copy's final write conditional (``If-None-Match: *``): S3 refuses it if an object
        appeared at the key since we looked. s3transfer does not pass IfNoneMatch through, so a botocore
        ``before-parameter-build`` handler adds it to CopyObject / CompleteMultipartUpload for this key."""

        def add(params: dict[str, Any], **_: Any) -> None:
            if params.get("Bucket") == destination.bucket and params.get("Key") == destination.key:
                params["IfNoneMatch"] = "*"

        events = self._s3.meta.events
        handler_id = f"macie-chatops-if-none-match-{id(destination)}"
        for event in ("before-parameter-build.s3.CopyObject", "before-parameter-build.s3.CompleteMultipartUpload"):
            events.register(event, add, unique_id=f"{handler_id}-{event}")
        try:
            yield
        finally:
            for event in ("before-parameter-build.s3.CopyObject", "before-parameter-build.s3.CompleteMultipartUpload"):
                events.unregister(event, unique_id=f"{handler_id}-{event}")


__all__ = [
    "MoveOutcome",
    "MoveRequest",
    "ObjectMover",
    "RestoreOutcome",
    "RestoreRequest",
    "full_object_checksum",
]
