"""Checksums in S3's format: read from a HEAD, computed in chunks, and CRC-32 joined across byte ranges."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macie_chatops.checksums import (
    Checksum,
    StreamHasher,
    byte_ranges,
    crc32_checksum,
    crc32_combine,
    full_object_checksum,
)

# --- what S3 reports ---------------------------------------------------------------------------------------


def test_full_object_checksum_prefers_crc64nvme_and_skips_composites() -> None:
    assert full_object_checksum({"ChecksumCRC32": "AAAA", "ChecksumCRC64NVME": "BBBB"}) == Checksum("CRC64NVME", "BBBB")
    assert full_object_checksum({"ChecksumSHA256": "abc=-3"}) is None
    assert full_object_checksum({"ChecksumCRC32": "AAAA", "ChecksumType": "COMPOSITE"}) is None
    assert full_object_checksum({"ChecksumCRC32": "AAAA", "ChecksumType": "FULL_OBJECT"}) == Checksum("CRC32", "AAAA")
    assert full_object_checksum({}) is None


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_stream_hasher_matches_s3_format_in_chunks(algorithm: str) -> None:
    data = bytes(range(256)) * 1000
    hasher = StreamHasher(algorithm)
    for start in range(0, len(data), 4096):
        hasher.update(data[start : start + 4096])
    if algorithm == "CRC32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    else:
        digest = hashlib.new(algorithm.lower(), data).digest()
    assert hasher.checksum() == Checksum(algorithm, base64.b64encode(digest).decode())


def test_stream_hasher_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="cannot be computed"):
        StreamHasher("CRC64NVME")


def test_checksum_text_round_trip() -> None:
    assert Checksum.parse("CRC32:Xg5djw==") == Checksum("CRC32", "Xg5djw==")
    assert Checksum.parse("none") is None
    assert Checksum.parse("MD5:abc") is None
    assert Checksum.parse("") is None
    assert str(Checksum("SHA256", "x/y+z=")) == "SHA256:x/y+z="


# --- parallel CRC-32 ---------------------------------------------------------------------------------------


@given(first=st.binary(max_size=3000), second=st.binary(max_size=3000))
def test_crc32_combine_matches_zlib_on_the_concatenation(first: bytes, second: bytes) -> None:
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def test_crc32_combine_over_many_ranges() -> None:
    data = bytes(range(256)) * 4099
    ranges = byte_ranges(len(data), 7, 1000)
    crc = zlib.crc32(data[ranges[0][0] : ranges[0][1] + 1])
    for start, end in ranges[1:]:
        crc = crc32_combine(crc, zlib.crc32(data[start : end + 1]), end - start + 1)
    assert crc32_checksum(crc) == crc32_checksum(zlib.crc32(data))


@pytest.mark.parametrize(
    ("size", "parts", "minimum", "expected"),
    [
        (0, 4, 10, []),
        (100, 4, 10, [(0, 24), (25, 49), (50, 74), (75, 99)]),
        (100, 4, 40, [(0, 39), (40, 79), (80, 99)]),
        (10, 4, 100, [(0, 9)]),
    ],
)
def test_byte_ranges_cover_the_object_exactly(
    size: int, parts: int, minimum: int, expected: list[tuple[int, int]]
) -> None:
    assert byte_ranges(size, parts, minimum) == expected
