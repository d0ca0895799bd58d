"""Quarantine: the finding's object version into its account's quarantine bucket (docs/architecture.md
section 7, steps 1 to 5). A redelivery runs the same code: its copy, conditional on the quarantine key holding
nothing, is refused, then the two HEADs of step 1 tell it how far an earlier attempt got, and
:func:`~macie_chatops.quarantine_plan.next_step` says what is left."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from macie_chatops.move.outcomes import MoveOutcome, MoveRequest
from macie_chatops.move.s3_objects import (
    ACCESS_DENIED_CODES,
    ARCHIVED_CODES,
    BAD_REQUEST_CODES,
    CONFLICT_CODES,
    NO_BUCKET_CODES,
    NOT_FOUND_CODES,
    PRECONDITION_CODES,
    Located,
    S3Objects,
    copy_precondition_failed,
    error_code,
    error_message,
)
from macie_chatops.move.verification import Verifier
from macie_chatops.ports import Clock
from macie_chatops.quarantine_plan import (
    UNVERSIONED,
    BlockReason,
    CopyCheck,
    KeySurvey,
    MoveFacts,
    MoveStatus,
    MoveStep,
    NextStep,
    ObjectView,
    Provenance,
    SourceFate,
    SourceState,
    TagPairs,
    Verification,
    VerifyResult,
    copy_checksum_algorithm,
    copy_extra_args,
    copy_state,
    next_step,
    normalise_etag,
    provenance,
    quarantine_metadata,
    source_state,
    survey_key,
    tag_pairs,
)

if TYPE_CHECKING:
    from macie_chatops.checksums import Checksum

logger = logging.getLogger(__name__)

Checkpoint = Callable[[MoveStep], None]
CHANGED_WHILE_COPYING = "The object changed while it was being copied; nothing was moved."


@dataclass(frozen=True)
class _KeptCopy:
    """A verified copy in the quarantine bucket: what every outcome after step 3 says about it."""

    target: Located
    version_id: str | None
    how: str  # e.g. "s3 CRC32:Xg5djw=="
    resumed: bool
    original_tags: TagPairs | None

    def outcome(
        self, status: MoveStatus, facts: MoveFacts, reason: BlockReason | None = None, detail: str = ""
    ) -> MoveOutcome:
        return MoveOutcome(
            status,
            self.target.bucket,
            self.target.key,
            reason=reason,
            detail=detail,
            quarantine_version_id=self.version_id,
            copy_kept=True,
            verification=self.how,
            resumed=self.resumed,
            original_tags=self.original_tags,
            facts=facts,
        )


class _KeyOccupiedError(Exception):
    """A copy made only if the quarantine key held nothing was refused: it holds an object (or the source
    changed: S3's 412 does not say which condition failed), so both sides are read and next_step decides.
    Raised by the exclusive copy, caught in :meth:`Quarantine.run`: it never leaves the mover."""


def _copied_view(copied: Mapping[str, Any], source: ObjectView, metadata: Mapping[str, str]) -> ObjectView:
    """The copy as a single CopyObject's response describes it (no HEAD after the copy): its version id, ETag and
    the checksum S3 computed over the bytes it wrote; its size is the source version's, since CopyObject copies
    that exact version whole (by version id, or If-Match on its ETag) or fails."""
    return replace(ObjectView.from_head(copied), size=source.size, metadata=dict(metadata), content=source.content)


class Quarantine:
    def __init__(
        self,
        objects: S3Objects,
        verifier: Verifier,
        *,
        multipart_threshold: int,
        clock: Clock,
        checkpoint: Checkpoint,
    ) -> None:
        self._objects = objects
        self._verifier = verifier
        self._multipart_threshold = multipart_threshold
        self._clock = clock
        self._checkpoint = checkpoint

    def run(self, request: MoveRequest) -> MoveOutcome:
        """Move the finding's object version into quarantine, or say truthfully why not."""
        from macie_chatops.quarantine_plan import InvalidKeyError

        try:
            target = Located(request.quarantine_bucket, request.quarantine_key, None)
        except InvalidKeyError as exc:
            return self._failed(request, f"the finding's key cannot be quarantined: {exc}", key="")
        source_at = Located(request.bucket, request.key, request.version_id or None)

        source = self._head_source(request, source_at)
        if isinstance(source, MoveOutcome):
            return source
        self._checkpoint(MoveStep.SOURCE_READ)
        if source is not None and self._copies_first(request, source):
            # A first attempt does not look at the quarantine key: the copy is made only if the key holds nothing
            # (If-None-Match), and only when S3 refuses it (an earlier attempt's copy, say) is the key read.
            try:
                return self._copy_verify_delete(
                    request, source, source_at, target, None, None, resumed=False, exclusive=True
                )
            except _KeyOccupiedError:
                logger.info("the quarantine key is not free: reading it", extra={"finding_id": request.finding_id})
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
        if step is NextStep.CONFIRM_COPY:
            assert copy_view is not None
            return self._confirm_copy(request, src_state, target, copy_view, copy_tags)
        if step in (NextStep.COPY, NextStep.VERIFY_THEN_DELETE):
            assert source is not None
            resumed = step is NextStep.VERIFY_THEN_DELETE
            return self._copy_verify_delete(request, source, source_at, target, copy_view, copy_tags, resumed=resumed)
        return self._nothing_to_move(request, step, source, target)

    def _copies_first(self, request: MoveRequest, source: ObjectView) -> bool:
        """The finding's version is there and small enough for one CopyObject, which can be made conditional on
        the quarantine key holding nothing (a multipart copy could only fail at its completion, all parts copied)."""
        present = source_state(source, finding_etag=request.etag) is SourceState.PRESENT
        return present and source.size < self._multipart_threshold

    def _nothing_to_move(
        self, request: MoveRequest, step: NextStep, source: ObjectView | None, target: Located
    ) -> MoveOutcome:
        """The plan's three stops before anything is copied: a foreign object at our key, missing, changed."""
        if step is NextStep.FAIL_FOREIGN:
            logger.error(
                "the quarantine key holds an object that is not this finding's copy: nothing touched",
                extra={"finding_id": request.finding_id, "quarantine_key": target.key},
            )
            return self._failed(
                request,
                f"s3://{target.bucket}/{target.key} holds an object whose tags name another finding or object; "
                "nothing was touched",
            )
        if step is NextStep.BLOCK_MISSING:
            if request.version_id or request.etag:
                logger.warning(
                    "source object is gone and no quarantine copy exists",
                    extra={"finding_id": request.finding_id, "bucket": request.bucket},
                )
            return self._blocked(
                request,
                BlockReason.MISSING,
                "The object version named by the finding is in neither the source bucket nor the "
                "quarantine bucket; nothing was moved.",
                MoveFacts.of(CopyCheck.NONE, None, unlisted=SourceFate.GONE),
            )
        assert step is NextStep.BLOCK_CHANGED and source is not None
        return self._blocked(
            request,
            BlockReason.CHANGED,
            f"ETag is now {source.etag}, the finding names {normalise_etag(request.etag)}; nothing was moved.",
            self._facts(request, None, CopyCheck.NONE, unlisted=SourceFate.GONE),
        )

    # -- the source is present: copy, verify, commit, delete, count ----------------------------------------

    def _copy_verify_delete(
        self,
        request: MoveRequest,
        source: ObjectView,
        source_at: Located,
        target: Located,
        copy_view: ObjectView | None,
        copy_tags: Provenance | None,
        *,
        resumed: bool,
        exclusive: bool = False,
    ) -> MoveOutcome:
        """Steps 2-5 while the source version is present: (re-)copy, verify, tag verified, delete, count.
        ``exclusive``: copy only if the quarantine key holds nothing (raises _KeyOccupiedError if it does)."""
        original_tags = self._source_tags(request, source_at, source)
        checked = self._verified_copy(
            request, source, source_at, target, copy_view, copy_tags, resumed=resumed, exclusive=exclusive
        )
        if isinstance(checked, MoveOutcome):
            return checked
        copy_view, copy_tags, verified = checked
        assert verified.checksum is not None
        tags = copy_tags or self._provenance(request, source)
        if tags.verified != verified.checksum:  # a single-part copy was tagged with it in the copy request
            self._objects.put_tags(target.version(copy_view.version_id), tags.with_verified(verified.checksum))
        self._checkpoint(MoveStep.VERIFIED)
        kept = _KeptCopy(target, copy_view.version_id, f"{verified.method} {verified.checksum}", resumed, original_tags)
        return self._delete_source(request, source, source_at, kept)

    def _verified_copy(
        self,
        request: MoveRequest,
        source: ObjectView,
        source_at: Located,
        target: Located,
        copy_view: ObjectView | None,
        copy_tags: Provenance | None,
        *,
        resumed: bool,
        exclusive: bool = False,
    ) -> tuple[ObjectView, Provenance | None, VerifyResult] | MoveOutcome:
        """An earlier attempt's copy when it verifies against the source, else a new copy, verified."""
        # An unversioned source is read with If-Match, so a stream never mixes in an object written since.
        if_match = None if source_at.version_id else source.etag
        if resumed:
            assert copy_view is not None
            verified = self._verifier.verify(
                copy_view,
                target.version(copy_view.version_id),
                expected=source.checksum,
                size=source.size,
                source=source_at,
                source_etag=if_match,
            )
            if verified.ok:
                return copy_view, copy_tags, verified
            logger.warning(
                "an earlier copy does not verify against the source; copying again",
                extra={"finding_id": request.finding_id, "detail": verified.detail},
            )
        copied = self._copy_to_quarantine(request, source, source_at, target, exclusive=exclusive)
        if isinstance(copied, MoveOutcome):
            return copied
        copy_view, copy_tags = copied
        self._checkpoint(MoveStep.COPIED)
        copy_at = target.version(copy_view.version_id)
        verified = self._verifier.verify(
            copy_view, copy_at, expected=source.checksum, size=source.size, source=source_at, source_etag=if_match
        )
        if not verified.ok:
            return self._verification_failed(request, source_at, copy_at, verified)
        return copy_view, copy_tags, verified

    def _delete_source(self, request: MoveRequest, source: ObjectView, at: Located, kept: _KeptCopy) -> MoveOutcome:
        """Step 4 and 5: delete the verified source version, unless a lock or S3 says no; then count."""
        now = self._clock()
        if source.lock.active(now):
            return kept.outcome(
                MoveStatus.BLOCKED,
                self._facts(request, source, CopyCheck.CHECKSUM, unlisted=SourceFate.KEPT),
                BlockReason.LOCKED,
                f"The source version is protected by {source.lock.describe(now)}; it was not deleted. "
                f"The quarantine copy verified: {kept.how}.",
            )
        refused = self._delete_version(request, source, at)
        if refused is not None:
            reason, detail = refused
            # What the refused delete left is listed, not assumed: an overwrite may have replaced the bytes.
            # S3 refusing the delete keeps the version; a failed If-Match says nothing about it.
            fate = SourceFate.KEPT if reason is BlockReason.LOCKED else SourceFate.UNKNOWN
            return kept.outcome(
                MoveStatus.BLOCKED,
                self._facts(request, source, CopyCheck.CHECKSUM, unlisted=fate),
                reason,
                f"{detail} The quarantine copy verified: {kept.how}.",
            )
        self._checkpoint(MoveStep.DELETED)
        facts = self._facts(request, source, CopyCheck.CHECKSUM, deleted=True, unlisted=SourceFate.DELETED)
        self._checkpoint(MoveStep.COUNTED)
        return kept.outcome(MoveStatus.QUARANTINED, facts)

    def _delete_version(self, request: MoveRequest, source: ObjectView, at: Located) -> tuple[BlockReason, str] | None:
        """Delete the source version permanently; the reason it was refused, if it was."""
        from botocore.exceptions import ClientError

        version = request.version_id or source.version_id
        try:
            if version and version != UNVERSIONED:
                # Immutable: deleting it can only ever remove these bytes.
                self._objects.delete(at.version(version))
            else:
                # No version id: an unversioned bucket, or an object written before versioning was enabled (real
                # S3 names that version "null" on HEAD; moto does not). A delete without a version id would, in
                # a versioned bucket, only hide the bytes behind a delete marker while the record says
                # QUARANTINED; deleting version "null" removes them in either kind of bucket. IfMatch: never
                # delete an object written since the copy.
                self._objects.delete(at.version(UNVERSIONED), if_match=source.etag)
        except ClientError as exc:
            code = error_code(exc)
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

    # -- step 1: what the source and the quarantine bucket hold ----------------------------------------------

    def _head_source(self, request: MoveRequest, at: Located) -> ObjectView | MoveOutcome | None:
        from botocore.exceptions import ClientError

        try:
            return self._objects.head(at)
        except ClientError as exc:
            code = error_code(exc)
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
            if code in BAD_REQUEST_CODES:
                return self._failed(
                    request,
                    f"S3 refused to read the object ({code}): an SSE-C object, or a version id S3 does not accept",
                )
            raise

    def _source_tags(self, request: MoveRequest, at: Located, source: ObjectView | None) -> TagPairs | None:
        """The finding's version's own tags, so a restore can put them back (the copy carries ours instead).

        None when they cannot be known: no such version (the plan decides what that means), a version that
        is no longer the finding's, or a read the bucket denies (the move goes on; a restore records that
        it put the object back without tags)."""
        from botocore.exceptions import ClientError

        if source is None or source.etag != normalise_etag(request.etag):
            return None
        try:
            return tag_pairs(self._objects.tag_set(at.version(source.version_id)))
        except ClientError as exc:
            code = error_code(exc)
            if code in ACCESS_DENIED_CODES | NOT_FOUND_CODES:
                logger.warning(
                    "the source's tags cannot be read: a restore will not bring them back",
                    extra={"finding_id": request.finding_id, "code": code},
                )
                return None
            raise

    def _head_copy(
        self, request: MoveRequest, at: Located
    ) -> tuple[ObjectView | None, Provenance | None] | MoveOutcome:
        from botocore.exceptions import ClientError

        try:
            view = self._objects.head(at)
            if view is None:
                return None, None
            tag_set = self._objects.tag_set(at.version(view.version_id))
        except ClientError as exc:
            code = error_code(exc)
            if code in NO_BUCKET_CODES:
                return self._no_quarantine_bucket(request)
            if code in ACCESS_DENIED_CODES:
                return self._failed(
                    request,
                    f"the remediation role may not read its quarantine bucket {at.bucket} ({code}): check the member "
                    "stack's role policy",
                )
            raise
        return view, Provenance.from_tag_set(tag_set)

    # -- step 2: the copy ------------------------------------------------------------------------------------

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
        self, request: MoveRequest, source: ObjectView, source_at: Located, target: Located, *, exclusive: bool = False
    ) -> tuple[ObjectView, Provenance] | MoveOutcome:
        from botocore.exceptions import ClientError

        multipart = source.size >= self._multipart_threshold
        tags = self._provenance(request, source)
        if not multipart and source.checksum is not None:
            # The checksum the copy must verify as is the source's, known before copying: written with the copy
            # instead of in a tagging call after. Never trusted on its own: every reader checks the copy against
            # it, and the source is deleted only after a verification made in the same attempt.
            tags = tags.with_verified(source.checksum)
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
        elif exclusive:
            extra["IfNoneMatch"] = "*"
        try:
            if not multipart:
                copied = self._objects.copy(source_at, target, extra)
                return _copied_view(copied, source, metadata), tags
            self._objects.managed_copy(source_at, target, extra, source)
        except ClientError as exc:
            if exclusive and error_code(exc) in PRECONDITION_CODES | CONFLICT_CODES:
                raise _KeyOccupiedError from exc
            return self._copy_refused(request, source, exc)
        except Exception as exc:
            if copy_precondition_failed(exc):
                return self._blocked(
                    request,
                    BlockReason.CHANGED,
                    CHANGED_WHILE_COPYING,
                    self._facts(request, source, CopyCheck.NONE, unlisted=SourceFate.UNKNOWN),
                )
            raise
        # s3transfer does not return the multipart copy's response: read the copy back.
        view = self._objects.head(target)
        if view is None:
            raise RuntimeError(f"the copy to s3://{target.bucket}/{target.key} completed but cannot be read back")
        if multipart:
            self._objects.put_tags(target.version(view.version_id), tags)
        return view, tags

    def _copy_refused(self, request: MoveRequest, source: ObjectView, exc: Exception) -> MoveOutcome:
        """What S3 refusing the copy means (raises what it does not say)."""
        code = error_code(exc)
        if code in PRECONDITION_CODES:
            return self._blocked(
                request,
                BlockReason.CHANGED,
                CHANGED_WHILE_COPYING,
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
                f"Copying into the quarantine bucket was denied ({code}: {error_message(exc)}); check the source "
                "object's KMS key policy and the remediation role; nothing was moved.",
                self._facts(request, source, CopyCheck.NONE, unlisted=SourceFate.KEPT),
            )
        if code in ARCHIVED_CODES:
            return self._failed(
                request,
                f"the object is in an archive storage class ({code}): restore it from the archive first, then "
                "re-queue the finding",
            )
        raise exc

    # -- step 3: verification that failed, or a copy without its source ----------------------------------------

    def _verification_failed(
        self, request: MoveRequest, source_at: Located, copy_at: Located, result: VerifyResult
    ) -> MoveOutcome:
        """The copy is not the source's bytes: left where it is, never trusted, and the source untouched.

        Not deleted: the member role may not delete quarantine versions (a stolen role could otherwise destroy
        quarantined copies, the only copy once a source is gone), and it need not. Every reader verifies a copy
        against its checksum tag before relying on it; the retry finds this one at the key (S3 refuses its
        exclusive copy), fails to verify it against the source and copies again, so this version becomes
        noncurrent and the bucket's lifecycle removes it (``stacksets/quarantine.py``, NONCURRENT_COPY_DAYS)."""
        logger.error(
            "quarantine copy failed verification; left unverified in quarantine, the source is untouched",
            extra={"finding_id": request.finding_id, "detail": result.detail, "copy_version": copy_at.version_id},
        )
        left = (
            f" A copy that did not verify ({result.detail}) was left in quarantine at "
            f"s3://{copy_at.bucket}/{copy_at.key}: it is not trusted."
        )
        now_source = self._objects.head(source_at)
        if now_source is None:
            return self._blocked(
                request,
                BlockReason.MISSING,
                "The object disappeared while it was being copied." + left,
                self._facts(request, None, CopyCheck.NONE, unlisted=SourceFate.GONE),
            )
        if now_source.etag != normalise_etag(request.etag):
            return self._blocked(
                request,
                BlockReason.CHANGED,
                CHANGED_WHILE_COPYING + left,
                self._facts(request, None, CopyCheck.NONE, unlisted=SourceFate.UNKNOWN),
            )
        return self._failed(
            request,
            f"the quarantine copy did not verify ({result.detail}); it was left unverified in quarantine, and the "
            "retry replaces it",
            retryable=True,
        )

    def _confirm_copy(
        self,
        request: MoveRequest,
        src_state: SourceState,
        target: Located,
        copy: ObjectView,
        tags: Provenance | None,
    ) -> MoveOutcome:
        """The source is gone or replaced and our copy exists: verify the copy on its own, report the truth."""
        copy_at = target.version(copy.version_id)
        expected = (tags.verified or tags.source_checksum) if tags else None
        result, how = self._check_copy_alone(request, copy, copy_at, expected, tags)
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
            self._objects.put_tags(copy_at, tags.with_verified(result.checksum))
        elif tags is None:
            logger.warning(
                "quarantine copy had no tags; confirmed by size only", extra={"finding_id": request.finding_id}
            )
        checked = CopyCheck.CHECKSUM if expected is not None else CopyCheck.SIZE_ONLY
        facts = self._facts(request, None, checked, unlisted=SourceFate.GONE)
        self._checkpoint(MoveStep.COUNTED)
        kept = _KeptCopy(target, copy.version_id, how, resumed=True, original_tags=None)
        if src_state is SourceState.CHANGED:
            return kept.outcome(
                MoveStatus.BLOCKED,
                facts,
                BlockReason.CHANGED,
                "The finding's version is in quarantine (verified), but a different object was written to "
                "the key since; that new object was left in place.",
            )
        return kept.outcome(MoveStatus.QUARANTINED, facts)

    def _check_copy_alone(
        self,
        request: MoveRequest,
        copy: ObjectView,
        copy_at: Located,
        expected: Checksum | None,
        tags: Provenance | None,
    ) -> tuple[VerifyResult, str]:
        """The copy against what its tags recorded (an untagged copy: its size only), and how it was checked."""
        size = tags.source_size if tags and tags.source_size is not None else request.size
        if expected is None:
            # An untagged copy (a crash between a multipart copy and its tagging): only the size is known.
            ok = copy.size == size
            result = VerifyResult(ok, Verification.STREAM_BOTH, None, "" if ok else f"size {copy.size} != {size}")
            return result, "size only (the copy carries no checksum record)"
        result = self._verifier.verify(copy, copy_at, expected=expected, size=size, source=None)
        return result, f"{result.method} {result.checksum}" if result.ok else ""

    # -- step 5: what the key holds at the end -----------------------------------------------------------------

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

        try:
            versions, markers = self._objects.key_versions(request.bucket, request.key)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "could not list the key's versions: what remains at the key is not reported",
                extra={"finding_id": request.finding_id, "code": error_code(exc) or type(exc).__name__},
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

    # -- outcomes that never reached step 3 --------------------------------------------------------------------

    def _failed(
        self, request: MoveRequest, detail: str, *, retryable: bool = False, key: str | None = None
    ) -> MoveOutcome:
        qkey = request.quarantine_key if key is None else key
        return MoveOutcome(MoveStatus.FAILED, request.quarantine_bucket, qkey, detail=detail, retryable=retryable)

    def _blocked(self, request: MoveRequest, reason: BlockReason, detail: str, facts: MoveFacts) -> MoveOutcome:
        return MoveOutcome(
            MoveStatus.BLOCKED, request.quarantine_bucket, request.quarantine_key, reason, detail, facts=facts
        )

    def _no_quarantine_bucket(self, request: MoveRequest) -> MoveOutcome:
        return self._failed(
            request,
            f"quarantine bucket {request.quarantine_bucket} does not exist: deploy the member stack to account "
            f"{request.account_id} in {request.region}, then re-queue the finding",
        )
