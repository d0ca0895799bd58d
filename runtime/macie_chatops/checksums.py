"""Checksums in S3's format, computed here or read from a HEAD, and CRC-32 joined across byte ranges.

A value is ``<ALGORITHM>:<base64 of the big-endian digest>``, as S3 reports it in ``Checksum<ALGORITHM>``.
Only CRC32, SHA1 and SHA256 can be computed in the Lambda runtime without awscrt; of those only CRC-32 can
be computed over ranges in parallel and joined (:func:`crc32_combine`), so a large object is verified
within the Lambda's 15 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# Checksum algorithms in S3's response field names, most preferred first (CRC64NVME is S3's default).
CHECKSUM_ALGORITHMS: Final = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")
LOCALLY_COMPUTABLE: Final = frozenset({"CRC32", "SHA1", "SHA256"})
STREAM_ALGORITHM: Final = "SHA256"  # what both sides are read with when no stored checksum can be compared
NO_CHECKSUM: Final = "none"  # the text of "no checksum" (a tag value)

_COMPOSITE = re.compile(r"-\d+$")


@dataclass(frozen=True)
class Checksum:
    """A full-object checksum as S3 reports it: algorithm (``CRC32``...) and base64 value."""

    algorithm: str
    value: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"

    @classmethod
    def parse(cls, text: str | None) -> Checksum | None:
        """``ALGORITHM:value`` back into a Checksum; None for ``none``, empty or malformed text."""
        if not text or text == NO_CHECKSUM or ":" not in text:
            return None
        algorithm, value = text.split(":", 1)
        if algorithm not in (*CHECKSUM_ALGORITHMS, STREAM_ALGORITHM) or not value:
            return None
        return cls(algorithm, value)


def full_object_checksum(head: Mapping[str, Any]) -> Checksum | None:
    """The object's full-object checksum from a HEAD/copy response; None when it has none or only a
    composite one (a multipart object's checksum-of-checksums, ``...-N``, which says nothing about the
    object's bytes as a whole)."""
    if head.get("ChecksumType") == "COMPOSITE":
        return None
    for algorithm in CHECKSUM_ALGORITHMS:
        value = head.get(f"Checksum{algorithm}")
        if isinstance(value, str) and value and not _COMPOSITE.search(value):
            return Checksum(algorithm, value)
    return None


def crc32_checksum(crc: int) -> Checksum:
    """A CRC-32 value in S3's format (base64 of the 4 big-endian bytes)."""
    return Checksum("CRC32", base64.b64encode(crc.to_bytes(4, "big")).decode("ascii"))


class StreamHasher:
    """Incremental hashing in S3's checksum formats (base64 of the big-endian digest)."""

    def __init__(self, algorithm: str) -> None:
        if algorithm not in LOCALLY_COMPUTABLE:
            raise ValueError(f"{algorithm} cannot be computed here (only {sorted(LOCALLY_COMPUTABLE)})")
        self.algorithm = algorithm
        self._crc = 0
        self._hash = hashlib.new(algorithm.lower()) if algorithm != "CRC32" else None

    def update(self, chunk: bytes) -> None:
        if self._hash is not None:
            self._hash.update(chunk)
        else:
            import zlib

            self._crc = zlib.crc32(chunk, self._crc)

    @property
    def crc(self) -> int:
        return self._crc

    def checksum(self) -> Checksum:
        if self._hash is None:
            return crc32_checksum(self._crc)
        return Checksum(self.algorithm, base64.b64encode(self._hash.digest()).decode("ascii"))


# --------------------------------------------------------------------------------------------------------
# CRC-32 over byte ranges
# --------------------------------------------------------------------------------------------------------


def byte_ranges(size: int, parts: int, minimum: int) -> list[tuple[int, int]]:
    """``size`` bytes split into at most ``parts`` inclusive (start, end) ranges of at least ``minimum``."""
    if size <= 0:
        return []
    length = max(minimum, -(-size // max(1, parts)))
    return [(start, min(size, start + length) - 1) for start in range(0, size, length)]


def _gf2_times(matrix: Sequence[int], vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: Sequence[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from CRC-32(A), CRC-32(B) and len(B) (zlib's crc32_combine), so ranges of one
    object can be checksummed in parallel and joined: the same value ``zlib.crc32(a + b)`` gives.

    Appending a zero bit to the message is a linear map on the CRC register (a 32x32 matrix over GF(2));
    appending ``length2`` zero bytes is that map's power, applied by squaring once per bit of the length."""
    if length2 <= 0:
        return crc1
    one_zero_bit = [0xEDB88320] + [1 << n for n in range(31)]
    operator = _gf2_square(_gf2_square(_gf2_square(one_zero_bit)))  # one zero byte (8 bits)
    while length2:
        if length2 & 1:
            crc1 = _gf2_times(operator, crc1)
        length2 >>= 1
        if length2:
            operator = _gf2_square(operator)  # twice as many zero bytes
    return (crc1 ^ crc2) & 0xFFFFFFFF
