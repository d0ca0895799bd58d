"""The S3 calls the mover is built from, each on one located object (bucket, key, version), answering in
:class:`~macie_chatops.quarantine_plan.ObjectView` terms; which error codes mean what is decided here once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from macie_chatops.checksums import StreamHasher
from macie_chatops.quarantine_plan import ObjectView, Provenance, TagPairs

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client

NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NotFound", "405", "MethodNotAllowed"})
ACCESS_DENIED_CODES: Final = frozenset({"403", "AccessDenied", "AllAccessDisabled", "KMS.AccessDeniedException"})
PRECONDITION_CODES: Final = frozenset({"412", "PreconditionFailed"})
CONFLICT_CODES: Final = frozenset({"409", "ConditionalRequestConflict"})  # a conditional write raced another
NO_BUCKET_CODES: Final = frozenset({"NoSuchBucket"})
ARCHIVED_CODES: Final = frozenset({"InvalidObjectState"})
BAD_REQUEST_CODES: Final = frozenset({"400", "InvalidArgument", "BadRequest"})
_CONDITIONAL_WRITES: Final = (
    "before-parameter-build.s3.CopyObject",
    "before-parameter-build.s3.CompleteMultipartUpload",
)


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "") or exc)


def copy_precondition_failed(exc: Exception) -> bool:
    """s3transfer turns a part copy's 412 into S3CopyFailedError; CopyObject's 412 stays a ClientError."""
    from s3transfer.exceptions import S3CopyFailedError

    return isinstance(exc, S3CopyFailedError) and "did not match expected ETag" in str(exc)


@dataclass(frozen=True)
class Located:
    """One object (``version_id`` None: the key's current object)."""

    bucket: str
    key: str
    version_id: str | None

    def args(self) -> dict[str, str]:
        args = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            args["VersionId"] = self.version_id
        return args

    def version(self, version_id: str | None) -> Located:
        return Located(self.bucket, self.key, version_id)


class S3Objects:
    """One member account's S3 client, as the mover uses it."""

    def __init__(self, s3: S3Client, *, transfer_config: TransferConfig, stream_chunk_bytes: int) -> None:
        self._s3 = s3
        self._transfer_config = transfer_config
        self._chunk = stream_chunk_bytes

    def head(self, at: Located) -> ObjectView | None:
        """The object's facts, or None when it is not there (404, or 405: the version is a delete marker)."""
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(**at.args(), ChecksumMode="ENABLED")  # type: ignore[arg-type]
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return ObjectView.from_head(head)

    def tag_set(self, at: Located) -> list[Mapping[str, Any]]:
        return list(self._s3.get_object_tagging(**at.args()).get("TagSet", []))  # type: ignore[arg-type]

    def put_tags(self, at: Located, tags: Provenance) -> None:
        args: dict[str, Any] = {**at.args(), "Tagging": {"TagSet": tags.tag_set()}}
        self._s3.put_object_tagging(**args)

    def put_tag_pairs(self, at: Located, pairs: TagPairs) -> None:
        self._s3.put_object_tagging(
            **at.args(),  # type: ignore[arg-type]
            Tagging={"TagSet": [{"Key": key, "Value": value} for key, value in pairs]},
        )

    def delete(self, at: Located, *, if_match: str | None = None) -> None:
        """Delete the version (or, without one, the current object), only if it still has ETag ``if_match``."""
        args: dict[str, Any] = at.args()
        if if_match:
            args["IfMatch"] = f'"{if_match}"'
        self._s3.delete_object(**args)

    def key_versions(self, bucket: str, key: str) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
        """The versions and delete markers of exactly ``key`` (and perhaps a few of the next key), newest first."""
        versions: list[Mapping[str, Any]] = []
        markers: list[Mapping[str, Any]] = []
        for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
            page_versions = page.get("Versions", [])
            page_markers = page.get("DeleteMarkers", [])
            versions.extend(page_versions)
            markers.extend(page_markers)
            # Keys are listed in UTF-8 byte order, so once a longer key appears the exact key is done.
            if any(e.get("Key") != key for e in itertools.chain(page_versions, page_markers)):
                break
        return versions, markers

    def read(
        self, at: Located, algorithm: str, byte_range: tuple[int, int] | None, if_match: str | None
    ) -> StreamHasher:
        """Read the object (or an inclusive byte range of it) once, with a bounded buffer, into a hasher."""
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

    def copy(self, source: Located, target: Located, extra: Mapping[str, Any]) -> Mapping[str, Any]:
        """One CopyObject (an object below the multipart threshold), answering S3's response: the new version's
        id, ETag and the checksum S3 computed over the bytes it wrote (``CopyObjectResult``)."""
        response = self._s3.copy_object(CopySource=source.args(), **target.args(), **extra)  # type: ignore[arg-type]
        return {**response.get("CopyObjectResult", {}), "VersionId": response.get("VersionId")}

    def managed_copy(self, source: Located, target: Located, extra: Mapping[str, Any], known: ObjectView) -> None:
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

        with create_transfer_manager(self._s3, self._transfer_config) as manager:
            future = manager.copy(
                copy_source=source.args(),
                bucket=target.bucket,
                key=target.key,
                extra_args=dict(extra),
                subscribers=[_Known()],
                source_client=self._s3,
            )
            future.result()

    @contextmanager
    def if_none_match(self, destination: Located) -> Iterator[None]:
        """Make a copy's final write conditional (``If-None-Match: *``): S3 refuses it if an object
        appeared at the key since we looked. s3transfer does not pass IfNoneMatch through, so a botocore
        ``before-parameter-build`` handler adds it to CopyObject / CompleteMultipartUpload for this key."""

        def add(params: dict[str, Any], **_: Any) -> None:
            if params.get("Bucket") == destination.bucket and params.get("Key") == destination.key:
                params["IfNoneMatch"] = "*"

        events = self._s3.meta.events
        handler_id = f"macie-chatops-if-none-match-{id(destination)}"
        for event in _CONDITIONAL_WRITES:
            events.register(event, add, unique_id=f"{handler_id}-{event}")
        try:
            yield
        finally:
            for event in _CONDITIONAL_WRITES:
                events.unregister(event, unique_id=f"{handler_id}-{event}")
