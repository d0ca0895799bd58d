"""Faults S3 itself could commit, injected into a real client's responses (botocore's after-call events), so a
test drives the move's own verification against them on moto."""

from __future__ import annotations

from typing import Any

# Not the checksum of anything the tests write.
WRONG_CHECKSUM = "AAAAAA=="


class CorruptCopies:
    """S3 writing a corrupt copy: while ``writing`` is on, every CopyObject response, and every later HEAD of a
    version it wrote, reports a checksum that is not the source's. ``corrupt`` holds those versions' ids.
    :meth:`attach` puts it on an S3 client; ``writing = False`` makes S3 honest again (a retry's copy)."""

    def __init__(self) -> None:
        self.writing = True
        self.corrupt: set[str] = set()

    def attach(self, s3: Any) -> None:
        s3.meta.events.register("after-call.s3.CopyObject", self._copied, unique_id="corrupt-copies-copy")
        s3.meta.events.register("after-call.s3.HeadObject", self._headed, unique_id="corrupt-copies-head")

    def _copied(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.writing and "VersionId" in parsed:
            self.corrupt.add(parsed["VersionId"])
            _misreport(parsed.get("CopyObjectResult", {}))

    def _headed(self, parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("VersionId") in self.corrupt:
            _misreport(parsed)

    def __repr__(self) -> str:
        return f"CorruptCopies(writing={self.writing}, corrupt={sorted(self.corrupt)})"


def _misreport(response: dict[str, Any]) -> None:
    for name in [n for n in response if n.startswith("Checksum") and n != "ChecksumType"]:
        response[name] = WRONG_CHECKSUM
