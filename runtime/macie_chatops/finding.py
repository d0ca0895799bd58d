"""The Macie finding, parsed at the edge: ``parse_event`` (with ``read_event``, its byte-level half) is the one
parse boundary for event bytes (docs/architecture.md §11: the limits, the names, exactly one outcome).

It never raises on bad input (RecursionError included): a :class:`Rejection` says why, never quoting the
input. The model types, strictly, only the fields the pipeline uses; everything else Macie sends is tolerated
and ignored. Macie's traps it expects: raw keys, "" version ids (unversioned buckets), null job ids
(automated discovery), an absent vs a null ``s3Object``, 1-3 severity scores.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
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

from macie_chatops.event_pattern import FINDING_ID, MACIE_DETAIL_TYPE, MACIE_SOURCE

MAX_EVENT_BYTES: Final = 256 * 1024  # EventBridge's limit for one event (PutEvents entry)
MAX_JSON_DEPTH: Final = 32  # a Macie event nests about 10 deep (occurrences in detections in results)
MAX_KEY_BYTES: Final = 1024  # S3's limit for an object key
MAX_OBJECT_SIZE: Final = 5 * 1024**4  # 5 TiB: S3's largest object
MAX_COUNT: Final = 2**53 - 1  # any count a JSON reader and DynamoDB hold exactly
MAX_REASON_CHARS: Final = 500

# Always re.fullmatch, and ASCII only: `$` in re.match accepts a trailing newline, `\d` any Unicode digit.
# FINDING_ID is event_pattern's (imported above).
EVENT_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,120}")  # "event:<id>" must still fit a finding-id-sized key
ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")
REGION: Final = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]")
PARTITION: Final = re.compile(r"aws(-[a-z]+){0,3}")
_PRINTABLE_ASCII: Final = re.compile(r"[\x21-\x7e]*")  # version ids, ETags, storage classes, job ids
_BUCKET_NAME: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_RESERVED_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES: Final = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# Characters no Slack message, CLI line or log line can show faithfully: C0 and C1 controls, DEL, the
# Unicode line and paragraph separators, and the bidirectional embeddings, overrides and isolates.
_UNSHOWABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # json.loads pairs valid surrogates: any left is alone
_JSON_STRUCTURE: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_BOM: Final = "\ufeff"


def _code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{what} must match {pattern.pattern}")
        return value

    return AfterValidator(check)


def _showable(value: str) -> str:
    bad = _UNSHOWABLE.search(value)
    if bad is not None:
        raise ValueError(f"contains {_code_point(bad.group())}, a character no message can show faithfully")
    return value


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 general purpose bucket name (S3's naming rules), or None."""
    if not _BUCKET_NAME.fullmatch(name):
        return "a bucket name is 3-63 lowercase letters, digits, '.' and '-', starting and ending alphanumeric"
    if ".." in name:
        return "a bucket name has no two adjacent periods"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "a bucket name is not formatted as an IP address"
    if name.startswith(_BUCKET_RESERVED_PREFIXES) or name.endswith(_BUCKET_RESERVED_SUFFIXES):
        return "the bucket name uses a prefix or suffix S3 reserves"
    return None


def _bucket_name(value: str) -> str:
    problem = bucket_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def object_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be acted on (not a valid S3 key, or not showable), or None."""
    if not key:
        return "the key is empty"
    if _SURROGATE.search(key):
        return "the key is not valid UTF-8 (a lone surrogate)"
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        return f"the key is {size:,} UTF-8 bytes; S3 allows {MAX_KEY_BYTES:,}"
    bad = _UNSHOWABLE.search(key)
    if bad is not None:
        return (
            f"the key contains {_code_point(bad.group())} (a control or direction character): no message can "
            "show it faithfully, so it is not acted on; handle this object by hand"
        )
    return None


def _object_key(value: str) -> str:
    problem = object_key_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Text = Annotated[StrictStr, StringConstraints(max_length=1024), AfterValidator(_showable)]
ShortText = Annotated[StrictStr, StringConstraints(max_length=256), AfterValidator(_showable)]
AsciiToken = Annotated[StrictStr, StringConstraints(max_length=1024), _matching(_PRINTABLE_ASCII, "the value")]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
ByteSize = Annotated[StrictInt, Field(ge=0, le=MAX_OBJECT_SIZE)]

SEVERITY_BY_SCORE = {1: "Low", 2: "Medium", 3: "High"}


class _Tolerant(BaseModel):
    # defer_build: the validation schemas are built on the first parse, so the handlers that never parse an event
    # (every one but the finding handler, which import these models through the store) do not pay for them at a
    # cold start (docs/architecture.md §6).
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


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
    key: Annotated[StrictStr, AfterValidator(_object_key)]
    path: StrictStr | None = None
    extension: StrictStr | None = None
    versionId: AsciiToken | None = None  # "" (or absent) means an unversioned bucket
    eTag: AsciiToken | None = None
    size: ByteSize = 0
    storageClass: Annotated[AsciiToken, StringConstraints(max_length=64)] | None = None
    lastModified: datetime | None = None
    serverSideEncryption: ServerSideEncryption | None = None

    @property
    def version_id(self) -> str | None:
        return self.versionId or None

    @property
    def key_bytes(self) -> int:
        return len(self.key.encode("utf-8"))


class BucketPublicAccess(_Tolerant):
    effectivePermission: ShortText | None = None  # PUBLIC | NOT_PUBLIC | UNKNOWN


class S3Bucket(_Tolerant):
    name: Annotated[StrictStr, AfterValidator(_bucket_name)]
    arn: StrictStr | None = None
    publicAccess: BucketPublicAccess | None = None  # policy findings: what Macie saw of the bucket's exposure


class ResourcesAffected(_Tolerant):
    s3Bucket: S3Bucket
    s3Object: S3Object | None = None


class Detection(_Tolerant):
    type: ShortText
    count: Count = 0


class SensitiveDataItem(_Tolerant):
    category: ShortText
    totalCount: Count = 0
    detections: list[Detection] = Field(default_factory=list)


class CustomDetection(_Tolerant):
    name: ShortText | None = None
    arn: ShortText | None = None
    count: Count = 0


class CustomDataIdentifiers(_Tolerant):
    totalCount: Count = 0
    detections: list[CustomDetection] = Field(default_factory=list)


class ClassificationResult(_Tolerant):
    mimeType: ShortText | None = None
    sizeClassified: ByteSize | None = None
    sensitiveData: list[SensitiveDataItem] | None = None
    customDataIdentifiers: CustomDataIdentifiers | None = None


class ClassificationDetails(_Tolerant):
    jobId: Annotated[AsciiToken, StringConstraints(max_length=128)] | None = None  # null for automated discovery
    jobArn: StrictStr | None = None
    originType: ShortText | None = None
    result: ClassificationResult | None = None


class ApiCallDetails(_Tolerant):
    api: ShortText | None = None
    apiServiceName: ShortText | None = None
    lastSeen: datetime | None = None


class PolicyAction(_Tolerant):
    apiCallDetails: ApiCallDetails | None = None


class PolicyDetails(_Tolerant):
    """What a policy finding says about the change that caused it (policy findings only)."""

    action: PolicyAction | None = None


class FindingDetail(_Tolerant):
    id: Annotated[StrictStr, _matching(FINDING_ID, "a finding id")]
    accountId: Annotated[StrictStr, _matching(ACCOUNT_ID, "an account id")]
    region: Annotated[StrictStr, _matching(REGION, "a region")]
    partition: Annotated[StrictStr, _matching(PARTITION, "a partition")] = "aws"
    type: Annotated[ShortText, StringConstraints(min_length=1)]
    title: Text = ""
    description: StrictStr = ""
    severity: FindingSeverity
    createdAt: datetime
    updatedAt: datetime | None = None
    archived: StrictBool = False
    sample: StrictBool = False
    # Occurrences: always 1 for sensitive data; a policy finding keeps its id and counts up (§18).
    count: Annotated[StrictInt, Field(ge=1, le=MAX_COUNT)] = 1
    category: Literal["CLASSIFICATION", "POLICY"]
    resourcesAffected: ResourcesAffected | None = None
    classificationDetails: ClassificationDetails | None = None
    policyDetails: PolicyDetails | None = None


class MacieEvent(_Tolerant):
    """The EventBridge envelope (Powertools' EventBridgeModel shape) around a Macie finding.

    ``account`` is optional: EventBridge sets it, but events re-delivered by some targets (and moto) do
    not carry it, and routing never uses it anyway (``detail.accountId`` owns the bucket).
    """

    version: ShortText = "0"
    id: Annotated[StrictStr, _matching(EVENT_ID, "an event id")]
    source: ShortText
    detail_type: ShortText = Field(validation_alias=AliasChoices("detail-type", "detail_type"))
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
    """Input that is not a usable Macie finding, and why; each id is kept only when it is well formed."""

    reason: str
    event_id: str | None = None
    finding_id: str | None = None
    account_id: str | None = None


def _clip(text: str, limit: int = MAX_REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_error(exc: ValidationError, prefix: str) -> str:
    # Never the input itself: the loc holds field names and list indexes, the messages our own words.
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return _clip(f"{prefix}{where}: {message}{more}")


def _peek(data: Any, key: str, pattern: re.Pattern[str]) -> str | None:
    """A field read from input that failed validation, only when it is a well-formed id (safe to keep)."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


def _ids_of(event: Any) -> tuple[str | None, str | None, str | None]:
    """The event id, finding id and account id of a raw event, each only if well formed."""
    detail = event.get("detail") if isinstance(event, dict) else None
    return _peek(event, "id", EVENT_ID), _peek(detail, "id", FINDING_ID), _peek(detail, "accountId", ACCOUNT_ID)


def _nesting_depth(text: str, limit: int) -> int:
    """How deep ``text`` nests JSON arrays and objects, counted without recursion (stops past ``limit``)."""
    depth = deepest = 0
    for token in _JSON_STRUCTURE.finditer(text):
        char = token.group()[0]
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def _not_a_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {_clip(text, 40)} is out of range")
    return value


def _lone_surrogate_at(event: dict[str, Any]) -> str | None:
    """Where a string (or a member name) of the parsed event holds a lone surrogate, or None. No recursion."""
    stack: list[tuple[str, Any]] = [("", event)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where or "(the event)"
        elif isinstance(value, dict):
            members = list(value.items())
            for name, member in reversed(members):  # reversed onto the stack: checked in document order
                if _SURROGATE.search(name):
                    return f"a member name in {where or '(the event)'}"
                shown = name if FINDING_ID.fullmatch(name) else "?"
                stack.append((f"{where}.{shown}" if where else shown, member))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", value[index]) for index in reversed(range(len(value))))
    return None


def read_event(raw: str | bytes | Mapping[str, Any]) -> dict[str, Any] | Rejection:
    """The event's JSON object, checked for size, encoding, depth and JSON itself; or why it is unusable.

    Bytes are decoded as strict UTF-8; text and bytes lose one leading byte order mark; a mapping is read
    as the JSON text it would be sent as, so a dict and its bytes always get the same answer.
    """
    if isinstance(raw, Mapping):
        try:
            raw = json.dumps(raw, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            return Rejection(_clip(f"not a JSON document: {type(exc).__name__}: {exc}"))
    if isinstance(raw, bytes | bytearray):
        if len(raw) > MAX_EVENT_BYTES:
            return Rejection(f"the event is {len(raw):,} bytes; an event is at most {MAX_EVENT_BYTES:,}")
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}: {exc.reason}")
    elif isinstance(raw, str):
        text = raw
        if len(text) > MAX_EVENT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_EVENT_BYTES:
            return Rejection(f"the event is over {MAX_EVENT_BYTES:,} bytes, the most an event can be")
    else:
        return Rejection(f"an event is JSON text or bytes, not {type(raw).__name__}")
    text = text.removeprefix(_BOM)
    if _nesting_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return Rejection(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels; a Macie event nests about 10")
    try:
        event = json.loads(text, parse_constant=_not_a_constant, parse_float=_finite)
    except RecursionError:  # the depth check should make this impossible; never let it escape
        return Rejection(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels; a Macie event nests about 10")
    except ValueError as exc:  # JSONDecodeError, integers too long to read, NaN, Infinity, 1e999
        return Rejection(_clip(f"not JSON: {exc}"))
    if not isinstance(event, dict):
        return Rejection(f"an event must be a JSON object, not {type(event).__name__}")
    where = _lone_surrogate_at(event)
    if where is not None:
        return Rejection(f"{where}: not valid Unicode (a lone surrogate)", *_ids_of(event))
    return event


def parse_event(raw: str | bytes | Mapping[str, Any]) -> Finding | Rejection:
    """Parse an EventBridge event (its bytes, its JSON text, or the JSON object) into a Finding, or say why not.

    Never raises on any input. A Rejection keeps the event id, finding id and account id only when each is
    well formed, so its caller can key a record on them.
    """
    event = read_event(raw)
    if isinstance(event, Rejection):
        return event
    event_id, finding_id, account_id = _ids_of(event)
    try:
        envelope = MacieEvent.model_validate(event)
    except ValidationError as exc:
        return Rejection(_first_error(exc, "envelope: "), event_id, finding_id, account_id)
    if envelope.source != MACIE_SOURCE or envelope.detail_type != MACIE_DETAIL_TYPE:
        return Rejection(
            _clip(f"not a Macie finding event: source {envelope.source!r}, detail-type {envelope.detail_type!r}"),
            event_id,
            finding_id,
            account_id,
        )
    try:
        parsed = FindingDetail.model_validate(envelope.detail)
    except ValidationError as exc:
        return Rejection(_first_error(exc, "detail."), event_id, finding_id, account_id)
    return Finding(event_id=envelope.id, detail=parsed)
