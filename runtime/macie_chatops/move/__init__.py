"""The S3 mover: the exact object version into its account's quarantine bucket, and back, never losing a byte.

``ObjectMover`` works with one member account's S3 client (from ``sessions.MemberSessions``); every decision
comes from :mod:`macie_chatops.quarantine_plan` (pure). Outcomes S3 tells us about (missing, changed, locked,
access denied, no quarantine bucket) are returned as :class:`MoveOutcome` / :class:`RestoreOutcome`; anything
else (throttling after botocore's retries, 5xx, network) raises, so the caller records FAILED and the job is
retried. ``checkpoint`` is called after each step (:class:`~macie_chatops.quarantine_plan.MoveStep`), so tests
can crash the mover there. Which module does which step: docs/architecture.md section 7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from macie_chatops.move.outcomes import MoveOutcome, MoveRequest, RestoreOutcome, RestoreRequest
from macie_chatops.move.quarantine import Checkpoint, Quarantine
from macie_chatops.move.restore import Restore
from macie_chatops.move.s3_objects import S3Objects
from macie_chatops.move.verification import Verifier
from macie_chatops.ports import Clock, utcnow
from macie_chatops.quarantine_plan import MoveStep

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MB: Final = 1024 * 1024
STREAM_CHUNK_BYTES: Final = 8 * MB
# Parallel verification reads ranges of at least this size (below it, one stream is as fast).
VERIFY_RANGE_BYTES: Final = 256 * MB


def _no_checkpoint(step: MoveStep) -> None:
    return None


class ObjectMover:
    """Quarantine and restore for one member account's S3 client."""

    def __init__(
        self,
        s3: S3Client,
        *,
        multipart_threshold_bytes: int,
        multipart_chunksize_bytes: int | None = None,
        max_concurrency: int = 10,
        stream_chunk_bytes: int = STREAM_CHUNK_BYTES,
        verify_range_bytes: int = VERIFY_RANGE_BYTES,
        clock: Clock = utcnow,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        if multipart_threshold_bytes < 5 * MB:
            raise ValueError("the multipart threshold must be at least 5 MiB (S3's smallest part)")
        from boto3.s3.transfer import TransferConfig

        transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold_bytes,
            multipart_chunksize=multipart_chunksize_bytes or multipart_threshold_bytes,
            max_concurrency=max_concurrency,
            preferred_transfer_client="classic",  # deterministic: never the CRT client
        )
        objects = S3Objects(s3, transfer_config=transfer_config, stream_chunk_bytes=stream_chunk_bytes)
        verifier = Verifier(
            objects, max_concurrency=max_concurrency, verify_range_bytes=max(verify_range_bytes, stream_chunk_bytes)
        )
        checkpoint = checkpoint or _no_checkpoint
        self.multipart_threshold = multipart_threshold_bytes
        self._quarantine = Quarantine(
            objects, verifier, multipart_threshold=multipart_threshold_bytes, clock=clock, checkpoint=checkpoint
        )
        self._restore = Restore(objects, verifier, multipart_threshold=multipart_threshold_bytes, checkpoint=checkpoint)

    def quarantine(self, request: MoveRequest) -> MoveOutcome:
        """Move the finding's object version into quarantine, or say truthfully why not."""
        return self._quarantine.run(request)

    def restore(self, request: RestoreRequest) -> RestoreOutcome:
        """Copy the quarantined bytes back to the original bucket and key, or say why not."""
        return self._restore.run(request)


__all__ = ["MoveOutcome", "MoveRequest", "ObjectMover", "RestoreOutcome", "RestoreRequest"]
