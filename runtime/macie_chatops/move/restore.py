"""Restore: the exact quarantined bytes back to the original bucket and key, as a new version, never over
someone's newer data (docs/architecture.md section 7, "Restore"). The quarantine copy is kept: it is the
audit evidence, it keeps the restore idempotent, and the quarantine bucket's retention expires it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from macie_chatops.move.outcomes import RestoreOutcome, RestoreRequest
from macie_chatops.move.s3_objects import (
    ACCESS_DENIED_CODES,
    NO_BUCKET_CODES,
    NOT_FOUND_CODES,
    PRECONDITION_CODES,
    Located,
    S3Objects,
    error_code,
    error_message,
)
from macie_chatops.move.verification import Verifier
from macie_chatops.quarantine_plan import (
    MoveStep,
    ObjectView,
    Provenance,
    RestoreStatus,
    copy_checksum_algorithm,
    copy_extra_args,
    restored_metadata,
    tagging_header,
)

if TYPE_CHECKING:
    from macie_chatops.checksums import Checksum

logger = logging.getLogger(__name__)

# Storage classes a restore may ask for again (the archive classes would make the object unreadable).
RESTORABLE_STORAGE_CLASSES: Final = frozenset(
    {"STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY"}
)


@dataclass(frozen=True)
class _Restoring:
    """One restore, once the quarantine copy is read: what goes where, and what it must verify as."""

    request: RestoreRequest
    copy: ObjectView  # the quarantine copy
    copy_at: Located
    destination: Located  # the original bucket and key
    expected: Checksum | None  # what the copy verified as when it was quarantined (else S3's checksum of it)


class Restore:
    def __init__(
        self,
        objects: S3Objects,
        verifier: Verifier,
        *,
        multipart_threshold: int,
        checkpoint: Callable[[MoveStep], None],
    ) -> None:
        self._objects = objects
        self._verifier = verifier
        self._multipart_threshold = multipart_threshold
        self._checkpoint = checkpoint

    def run(self, request: RestoreRequest) -> RestoreOutcome:
        """Copy the quarantined bytes back, or adopt an earlier attempt's restore, or refuse and say why."""
        from botocore.exceptions import ClientError

        quarantined_at = Located(request.quarantine_bucket, request.quarantine_key, None)
        destination = Located(request.bucket, request.key, None)
        try:
            copy = self._objects.head(quarantined_at)
        except ClientError as exc:
            return _refused(f"cannot read the quarantine copy ({error_code(exc)}: {error_message(exc)})", exc)
        if copy is None:
            logger.error("restore: the quarantine copy is missing", extra={"finding_id": request.finding_id})
            return RestoreOutcome(
                RestoreStatus.FAILED,
                f"the quarantine copy s3://{quarantined_at.bucket}/{quarantined_at.key} does not exist",
            )
        quarantined_at = quarantined_at.version(copy.version_id)
        tags = Provenance.from_tag_set(self._objects.tag_set(quarantined_at))
        expected = (tags.verified or tags.source_checksum) if tags else None
        restoring = _Restoring(request, copy, quarantined_at, destination, expected or copy.checksum)

        try:
            present = self._objects.head(destination)
        except ClientError as exc:
            return _refused(f"cannot read s3://{request.bucket}/{request.key} ({error_code(exc)})", exc)
        if present is not None:
            return self._adopt_or_refuse(restoring, present)
        return self._copy_back(restoring)

    def _copy_back(self, restoring: _Restoring) -> RestoreOutcome:
        """Copy with ``If-None-Match: *`` (S3 refuses the write if an object appeared meanwhile), then verify."""
        from botocore.exceptions import ClientError

        request, copy, expected = restoring.request, restoring.copy, restoring.expected
        multipart = copy.size >= self._multipart_threshold
        algorithm = expected.algorithm if expected is not None and not multipart else None
        extra = copy_extra_args(
            copy,
            metadata=restored_metadata(copy.metadata, request.key),
            checksum_algorithm=algorithm or copy_checksum_algorithm(None, multipart=multipart),
            # The object's own tags again, never the quarantine's: atomically on a single copy; a multipart
            # copy is tagged right after it (as the quarantine copy is).
            tagging=tagging_header(request.original_tags) if not multipart else "",
            if_match=copy.etag,
            storage_class=request.storage_class if request.storage_class in RESTORABLE_STORAGE_CLASSES else None,
        )
        try:
            with self._objects.if_none_match(restoring.destination):
                self._objects.managed_copy(restoring.copy_at, restoring.destination, extra, copy)
        except ClientError as exc:
            code = error_code(exc)
            if code in PRECONDITION_CODES:
                # If-None-Match: an object appeared at the key while we copied. Look again.
                present = self._objects.head(restoring.destination)
                if present is not None:
                    return self._adopt_or_refuse(restoring, present)
            if code in ACCESS_DENIED_CODES | NO_BUCKET_CODES:
                return _refused(f"the copy back was refused ({code}: {error_message(exc)})", exc)
            raise
        self._checkpoint(MoveStep.RESTORE_COPIED)
        return self._verify_restored(restoring, multipart=multipart)

    def _verify_restored(self, restoring: _Restoring, *, multipart: bool) -> RestoreOutcome:
        """Tag a multipart restore, verify it against the quarantine copy, and remove it if it is not the same."""
        request = restoring.request
        restored = self._objects.head(restoring.destination)
        if restored is None:
            raise RuntimeError(f"the restored object s3://{request.bucket}/{request.key} cannot be read back")
        restored_at = restoring.destination.version(restored.version_id)
        if multipart and request.original_tags:
            self._objects.put_tag_pairs(restored_at, request.original_tags)
        result = self._verifier.verify(
            restored, restored_at, expected=restoring.expected, size=restoring.copy.size, source=restoring.copy_at
        )
        if not result.ok:
            logger.error(
                "restored copy failed verification; removing it (the quarantine copy is kept)",
                extra={"finding_id": request.finding_id, "detail": result.detail},
            )
            # Without a version id (an unversioned bucket), only if it is still the object we wrote.
            self._objects.delete(restored_at, if_match=None if restored.version_id else restored.etag)
            return RestoreOutcome(
                RestoreStatus.FAILED, f"the restored copy did not verify ({result.detail})", retryable=True
            )
        self._checkpoint(MoveStep.RESTORE_VERIFIED)
        return RestoreOutcome(
            RestoreStatus.RESTORED,
            restored_version_id=restored.version_id,
            verification=f"{result.method} {result.checksum}",
        )

    def _adopt_or_refuse(self, restoring: _Restoring, present: ObjectView) -> RestoreOutcome:
        """An object is at the original key: the same bytes (an earlier attempt's restore) or someone's new data."""
        request = restoring.request
        at = restoring.destination.version(present.version_id)
        result = self._verifier.verify(
            present, at, expected=restoring.expected, size=restoring.copy.size, source=restoring.copy_at
        )
        if result.ok:
            if request.original_tags and not self._objects.tag_set(at):
                # An earlier attempt died between a multipart copy and its tagging: finish it.
                self._objects.put_tag_pairs(at, request.original_tags)
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


def _refused(detail: str, exc: Exception) -> RestoreOutcome:
    """REFUSED when S3 says the role may not, or there is no such bucket or object; anything else raises."""
    if error_code(exc) in ACCESS_DENIED_CODES | NO_BUCKET_CODES | NOT_FOUND_CODES:
        return RestoreOutcome(RestoreStatus.REFUSED, detail)
    raise exc
