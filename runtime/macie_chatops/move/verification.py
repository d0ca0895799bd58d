"""Verification of a copy: its size, then one checksum, compared without reading or computed by reading.

Which checksum is :func:`~macie_chatops.quarantine_plan.verification_method`'s choice. A CRC-32 of an object
larger than ``verify_range_bytes`` is read as up to ``max_concurrency`` byte ranges in parallel (each with
its own bounded buffer) and the range CRCs joined, so a multi-GB object verifies in a fraction of one
stream's time within the Lambda's 15 minutes; SHA digests cannot be joined, so they are read as one stream.
"""

from __future__ import annotations

from macie_chatops.checksums import STREAM_ALGORITHM, Checksum, byte_ranges, crc32_checksum, crc32_combine
from macie_chatops.move.s3_objects import Located, S3Objects
from macie_chatops.quarantine_plan import ObjectView, Verification, VerifyResult, compare, verification_method


class Verifier:
    def __init__(self, objects: S3Objects, *, max_concurrency: int, verify_range_bytes: int) -> None:
        self._objects = objects
        self._concurrency = max_concurrency
        self._verify_range = verify_range_bytes

    def verify(
        self,
        copy: ObjectView,
        copy_at: Located,
        *,
        expected: Checksum | None,
        size: int,
        source: Located | None,
        source_etag: str | None = None,
    ) -> VerifyResult:
        """Is ``copy`` (at ``copy_at``) ``size`` bytes with checksum ``expected``? Without ``expected``, both
        ``source`` (read with If-Match ``source_etag`` when given) and the copy are read and hashed."""
        method = verification_method(expected, copy.checksum)
        if copy.size != size:
            return VerifyResult(False, method, None, f"size differs: expected {size} bytes, copy has {copy.size}")
        if method is Verification.S3:
            assert expected is not None and copy.checksum is not None
            return compare(expected, copy.checksum, method)
        if method is Verification.STREAM_COPY:
            assert expected is not None
            return compare(expected, self.checksum(copy_at, expected.algorithm, size=copy.size), method)
        if source is None:
            return VerifyResult(False, method, None, "no checksum to compare with and no source to read")
        return compare(
            self.checksum(source, STREAM_ALGORITHM, size=size, if_match=source_etag),
            self.checksum(copy_at, STREAM_ALGORITHM, size=copy.size),
            method,
        )

    def checksum(self, at: Located, algorithm: str, *, size: int, if_match: str | None = None) -> Checksum:
        """The object's checksum, computed here, reading it once (CRC-32 of a large object: by ranges)."""
        ranges = byte_ranges(size, self._concurrency, self._verify_range)
        if algorithm != "CRC32" or len(ranges) < 2:
            return self._objects.read(at, algorithm, None, if_match).checksum()
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="verify") as pool:
            parts = list(pool.map(lambda r: self._objects.read(at, algorithm, r, if_match).crc, ranges))
        crc = parts[0]
        for (start, end), part in zip(ranges[1:], parts[1:], strict=True):
            crc = crc32_combine(crc, part, end - start + 1)
        return crc32_checksum(crc)
