"""The Macie finding, parsed at the edge.

Only the fields the pipeline uses are modelled, strictly; everything else Macie sends is tolerated and
ignored. Parsing never raises on bad input: it returns a :class:`Rejection` that says why, so the caller
can record and log it (see reference/macie-schema.md for the traps: raw keys, "" version ids, null job
ids, absent vs null s3Object, 1-3 severity scores).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from macie_chatops.event_pattern import MACIE_DETAIL_TYPE, MACIE_SOURCE

SEVERITY_BY_SCORE = {1: "Low", 2: "Medium", 3: "High"}


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class FindingSeverity(_Tolerant):
    score: Annotated[StrictInt, Field(ge=1, le=3)]
    description: Literal["Low", "Medium", "High"]

    @model_validator(mode="after")
    def _consistent(self) -> FindingSeverity:
        if SEVERITY_BY_SCORE[self.score] != self.description:
            raise ValueError(f"score {self.score} does not match description {self.description!r}")
        return self


class ServerSideEncryption(_Tolerant):
    encryptionType: StrictStr | None = None
    kmsMasterKeyId: StrictStr | None = None


class S3Object(_Tolerant):
    bucketArn: StrictStr
    # The raw UTF-8 key exactly as Macie sent it: never URL-decoded, never derived from `path`.
    key: Annotated[StrictStr, StringConstraints(min_length=1)]
    path: StrictStr | None = None
    extension: StrictStr | None = None
    versionId: StrictStr | None = None  # "" (or absent) means an unversioned bucket
    eTag: StrictStr | None = None
    size: Annotated[StrictInt, Field(ge=0)] = 0
    storageClass: StrictStr | None = None
    lastModified: datetime | None = None
    serverSideEncryption: ServerSideEncryption | None = None

    @property
    def version_id(self) -> str | None:
        return self.versionId or None

    @property
    def key_bytes(self) -> int:
        return len(self.key.encode("utf-8"))


class S3Bucket(_Tolerant):
    name: Annotated[StrictStr, StringConstraints(min_length=3, max_length=63)]
    arn: StrictStr | None = None


class ResourcesAffected(_Tolerant):
    s3Bucket: S3Bucket
    s3Object: S3Object | None = None


class Detection(_Tolerant):
    type: StrictStr
    count: StrictInt = 0


class SensitiveDataItem(_Tolerant):
    category: StrictStr
    totalCount: StrictInt = 0
    detections: list[Detection] = Field(default_factory=list)


class CustomDetection(_Tolerant):
    name: StrictStr | None = None
    arn: StrictStr | None = None
    count: StrictInt = 0


class CustomDataIdentifiers(_Tolerant):
    totalCount: StrictInt = 0
    detections: list[CustomDetection] = Field(default_factory=list)


class ClassificationResult(_Tolerant):
    mimeType: StrictStr | None = None
    sizeClassified: StrictInt | None = None
    sensitiveData: list[SensitiveDataItem] | None = None
    customDataIdentifiers: CustomDataIdentifiers | None = None


class ClassificationDetails(_Tolerant):
    jobId: StrictStr | None = None  # null for automated sensitive data discovery
    jobArn: StrictStr | None = None
    originType: StrictStr | None = None
    result: ClassificationResult | None = None


class FindingDetail(_Tolerant):
    id: Annotated[StrictStr, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
    accountId: Annotated[StrictStr, StringConstraints(pattern=r"^\d{12}$")]
    region: Annotated[StrictStr, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
    partition: StrictStr = "aws"
    type: Annotated[StrictStr, StringConstraints(min_length=1)]
    title: StrictStr = ""
    description: StrictStr = ""
    severity: FindingSeverity
    createdAt: datetime
    updatedAt: datetime | None = None
    archived: StrictBool = False
    sample: StrictBool = False
    category: Literal["CLASSIFICATION", "POLICY"]
    resourcesAffected: ResourcesAffected | None = None
    classificationDetails: ClassificationDetails | None = None


class MacieEvent(_Tolerant):
    """The EventBridge envelope (Powertools' EventBridgeModel shape) around a Macie finding.

    ``account`` is optional: EventBridge sets it, but events re-delivered by some targets (and moto) do
    not carry it, and routing never uses it anyway (``detail.accountId`` owns the bucket).
    """

    version: StrictStr = "0"
    id: StrictStr
    source: StrictStr
    detail_type: StrictStr = Field(validation_alias=AliasChoices("detail-type", "detail_type"))
    account: StrictStr | None = None
    time: datetime | None = None
    region: StrictStr | None = None
    resources: list[Any] = Field(default_factory=list)
    detail: dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """A parsed finding: the envelope's event id plus the typed detail."""

    event_id: str
    detail: FindingDetail

    @property
    def id(self) -> str:
        return self.detail.id

    @property
    def account_id(self) -> str:
        return self.detail.accountId

    @property
    def region(self) -> str:
        return self.detail.region

    @property
    def type(self) -> str:
        return self.detail.type

    @property
    def s3_object(self) -> S3Object | None:
        resources = self.detail.resourcesAffected
        return resources.s3Object if resources else None

    @property
    def bucket(self) -> str | None:
        resources = self.detail.resourcesAffected
        return resources.s3Bucket.name if resources else None

    @property
    def job_id(self) -> str | None:
        details = self.detail.classificationDetails
        return details.jobId if details else None

    @property
    def origin(self) -> str:
        """Where the finding came from, for people: a job id, or automated discovery."""
        details = self.detail.classificationDetails
        if details is None:
            return "unknown"
        if details.jobId:
            return f"job {details.jobId}"
        if details.originType == "AUTOMATED_SENSITIVE_DATA_DISCOVERY":
            return "automated sensitive data discovery"
        return details.originType or "unknown"


@dataclass(frozen=True)
class Rejection:
    """Input that is not a usable Macie finding. ``finding_id``/``account_id`` are kept when readable."""

    reason: str
    event_id: str | None = None
    finding_id: str | None = None
    account_id: str | None = None


def _first_error(exc: ValidationError, prefix: str) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{prefix}{where}: {error['msg']}{more}"


def _peek(detail: Any, key: str) -> str | None:
    value = detail.get(key) if isinstance(detail, dict) else None
    return value if isinstance(value, str) else None


def parse_event(raw: Any) -> Finding | Rejection:
    """Parse an EventBridge event (a dict, or its JSON text) into a Finding, or say why not."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return Rejection(f"not JSON: {exc}")
    if not isinstance(raw, dict):
        return Rejection(f"an event must be a JSON object, not {type(raw).__name__}")
    try:
        envelope = MacieEvent.model_validate(raw)
    except ValidationError as exc:
        return Rejection(_first_error(exc, "envelope: "), event_id=_peek(raw, "id"))
    detail = envelope.detail
    finding_id, account_id = _peek(detail, "id"), _peek(detail, "accountId")
    if envelope.source != MACIE_SOURCE or envelope.detail_type != MACIE_DETAIL_TYPE:
        return Rejection(
            f"not a Macie finding event: source {envelope.source!r}, detail-type {envelope.detail_type!r}",
            envelope.id,
            finding_id,
            account_id,
        )
    try:
        parsed = FindingDetail.model_validate(detail)
    except ValidationError as exc:
        return Rejection(_first_error(exc, "detail."), envelope.id, finding_id, account_id)
    return Finding(event_id=envelope.id, detail=parsed)
