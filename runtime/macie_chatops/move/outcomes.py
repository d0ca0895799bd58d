"""What the mover is asked to do and what it answers: one object version, from the state record's summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import (
    BlockReason,
    MoveFacts,
    MoveStatus,
    RestoreStatus,
    TagPairs,
    encode_original_tags,
    quarantine_key,
)
from macie_chatops.summary import FindingSummary


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
