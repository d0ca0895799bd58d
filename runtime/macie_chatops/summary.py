"""FindingSummary: what the pipeline keeps of a finding and shows people.

Built once from the parsed finding and its decision, stored in the state record, and rendered by every
Slack message builder, so each state of a finding renders from the same facts. Pure data: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

if TYPE_CHECKING:  # the store imports this module: no pydantic model on its import path (§6)
    from macie_chatops.decision import Decision
    from macie_chatops.finding import Finding


@dataclass(frozen=True)
class DetectionCount:
    type: str
    count: int


@dataclass(frozen=True)
class DataCategory:
    """One category of sensitive data (CREDENTIALS, FINANCIAL_INFORMATION, ..., or CUSTOM_IDENTIFIER)."""

    category: str
    total: int
    detections: tuple[DetectionCount, ...] = ()


def _epoch_seconds(iso: str) -> int | None:
    """Whole seconds since the epoch of an ISO 8601 time (naive = UTC), so two spellings of one moment agree."""
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


OBJECT_CLAIM_PREFIX: Final = "object#"  # state-table keys of object-version claims; finding ids never hold '#'


@dataclass(frozen=True)
class ObjectVersion:
    """One version of one S3 object, whichever finding names it: the unit of remediation.

    ``version`` is the S3 version id; for an object in an unversioned bucket (Macie sends ``versionId: ""``)
    it is ``etag:<ETag>@<last modified, epoch seconds>``: the ETag tells this content from other content
    written under the key later, and the write time tells this write from a later write of the same bytes
    (a secret uploaded again after its quarantine is a new object to remediate, not a duplicate of the one
    already moved). The bucket's region is not part of it (bucket names are global)."""

    account_id: str
    bucket: str
    key: str  # raw UTF-8, up to 1,024 bytes
    version: str

    @classmethod
    def of(cls, summary: FindingSummary) -> ObjectVersion:
        if summary.version_id:
            return cls(summary.account_id, summary.bucket, summary.key, summary.version_id)
        etag = summary.etag.strip('"')  # Macie sends it bare; S3 quotes it
        written = _epoch_seconds(summary.last_modified)
        version = f"etag:{etag}" if written is None else f"etag:{etag}@{written}"
        return cls(summary.account_id, summary.bucket, summary.key, version)

    @property
    def claim_key(self) -> str:
        """The state-table key of this version's claim: a fixed-size hash (keys reach 1,024 bytes, and the
        partition key allows 2,048), of an unambiguous encoding (a JSON list: no separator can be forged)."""
        identity = json.dumps([self.account_id, self.bucket, self.key, self.version], ensure_ascii=False)
        return OBJECT_CLAIM_PREFIX + hashlib.sha256(identity.encode("utf-8")).hexdigest()

    def describe(self) -> str:
        """``s3://bucket/key`` and the version, for logs and audit details (raw text: escape before Slack)."""
        return f"s3://{self.bucket}/{self.key} ({self.version or 'no version'}) in account {self.account_id}"


@dataclass(frozen=True)
class FindingSummary:
    finding_id: str
    finding_type: str
    severity: str
    account_id: str
    region: str
    bucket: str
    key: str  # raw UTF-8, exactly as Macie sent it
    version_id: str  # "" for an unversioned bucket
    etag: str
    size: int
    storage_class: str
    created_at: str  # ISO 8601 as Macie sent it
    origin: str  # "job <id>" or "automated sensitive data discovery"
    account_name: str = ""
    team: str = ""
    channel: str = ""
    title: str = ""
    categories: tuple[DataCategory, ...] = field(default_factory=tuple)
    last_modified: str = ""  # ISO 8601, as Macie read it from S3 ("" when absent; records written before it)
    approvals_required: int = 1  # different approvers to remediate or dismiss, decided at intake (§15)

    @property
    def console_url(self) -> str:
        region = quote(self.region, safe="")
        return (
            f"https://{region}.console.aws.amazon.com/macie/home?region={region}"
            f"#findings?search=resourcesAffected.s3Bucket.name%3D{quote(self.bucket, safe='')}"
            f"&macros=current&itemId={quote(self.finding_id, safe='')}"
        )

    @property
    def object_version(self) -> ObjectVersion:
        return ObjectVersion.of(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FindingSummary:
        values = dict(data)
        values["categories"] = tuple(
            DataCategory(
                category=str(c["category"]),
                total=int(c["total"]),
                detections=tuple(DetectionCount(str(d["type"]), int(d["count"])) for d in c.get("detections", ())),
            )
            for c in values.get("categories", ())
        )
        values["size"] = int(values["size"])
        return cls(**values)

    @classmethod
    def of(cls, finding: Finding, decision: Decision) -> FindingSummary:
        """The summary of a finding that has an S3 object (callers check ``finding.s3_object`` first)."""
        s3_object = finding.s3_object
        if s3_object is None:
            raise ValueError(f"finding {finding.id} has no s3Object to summarise")
        detail = finding.detail
        categories: list[DataCategory] = []
        result = detail.classificationDetails.result if detail.classificationDetails else None
        if result is not None:
            for item in result.sensitiveData or ():
                detections = tuple(DetectionCount(d.type, d.count) for d in item.detections)
                categories.append(DataCategory(item.category, item.totalCount, detections))
            custom = result.customDataIdentifiers
            if custom is not None and custom.totalCount:
                detections = tuple(DetectionCount(d.name or d.arn or "custom", d.count) for d in custom.detections)
                categories.append(DataCategory("CUSTOM_IDENTIFIER", custom.totalCount, detections))
        return cls(
            finding_id=finding.id,
            finding_type=detail.type,
            severity=detail.severity.description,
            account_id=finding.account_id,
            region=finding.region,
            bucket=finding.bucket or "",
            key=s3_object.key,
            version_id=s3_object.versionId or "",
            etag=s3_object.eTag or "",
            size=s3_object.size,
            storage_class=s3_object.storageClass or "STANDARD",
            created_at=detail.createdAt.isoformat().replace("+00:00", "Z"),
            origin=finding.origin,
            account_name=decision.account_name or "",
            team=decision.team or "",
            channel=decision.channel or "",
            title=detail.title,
            categories=tuple(categories),
            last_modified=s3_object.lastModified.isoformat().replace("+00:00", "Z") if s3_object.lastModified else "",
            approvals_required=decision.approvals_required,
        )
