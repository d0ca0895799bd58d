"""Macie finding events built from templates, and the sample objects they are about.

The demo and the benchmark make their own findings (they must not depend on tests/): one template per
sensitive-data finding type, filled with the real bucket, key, version, ETag and size of an object the
sandbox uploaded, in the shape Macie publishes to EventBridge (see reference/macie-schema.md).

The sample objects are harmless look-alikes, like the seed's ``sensitive-data-samples``: AWS's documented
example access key pair, a Luhn-valid test card number from the card networks' test ranges, and a
made-up personal record.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from macie_chatops.event_pattern import MACIE_DETAIL_TYPE, MACIE_SOURCE


@dataclass(frozen=True)
class Detection:
    category: str  # CREDENTIALS | FINANCIAL_INFORMATION | PERSONAL_INFORMATION
    type: str  # AWS_CREDENTIALS, CREDIT_CARD_NUMBER, NAME, ...
    count: int


@dataclass(frozen=True)
class FindingTemplate:
    finding_type: str
    title: str
    description: str
    detections: tuple[Detection, ...]
    custom_identifier: tuple[str, int] | None = None  # (name, count)


TEMPLATES: Final[dict[str, FindingTemplate]] = {
    t.finding_type: t
    for t in (
        FindingTemplate(
            "SensitiveData:S3Object/Credentials",
            "The S3 object contains credentials data.",
            "The object contains credentials data such as AWS secret access keys or private keys.",
            (Detection("CREDENTIALS", "AWS_CREDENTIALS", 1),),
        ),
        FindingTemplate(
            "SensitiveData:S3Object/Financial",
            "The S3 object contains financial information.",
            "The object contains financial information such as bank account numbers or credit card numbers.",
            (Detection("FINANCIAL_INFORMATION", "CREDIT_CARD_NUMBER", 1),),
        ),
        FindingTemplate(
            "SensitiveData:S3Object/Personal",
            "The S3 object contains personal information.",
            "The object contains personal information such as names, addresses or identification numbers.",
            (
                Detection("PERSONAL_INFORMATION", "NAME", 1),
                Detection("PERSONAL_INFORMATION", "ADDRESS", 1),
                Detection("PERSONAL_INFORMATION", "USA_PASSPORT_NUMBER", 1),
            ),
        ),
        FindingTemplate(
            "SensitiveData:S3Object/Multiple",
            "The S3 object contains multiple categories of sensitive data.",
            "The object contains more than one category of sensitive data.",
            (Detection("PERSONAL_INFORMATION", "NAME", 1), Detection("FINANCIAL_INFORMATION", "CREDIT_CARD_NUMBER", 1)),
        ),
        FindingTemplate(
            "SensitiveData:S3Object/CustomIdentifier",
            "The S3 object contains text that matches a custom data identifier.",
            "The object contains text that matches the detection criteria of a custom data identifier.",
            (),
            custom_identifier=("EMPLOYEE_ID", 1),
        ),
    )
}

_SCORES: Final = {"Low": 1, "Medium": 2, "High": 3}


@dataclass(frozen=True)
class StoredObject:
    """An object as S3 reports it: what a finding must name to be acted on."""

    bucket: str
    key: str
    version_id: str  # "" for an unversioned bucket
    etag: str  # without quotes, as Macie reports it
    size: int
    content_type: str = "text/plain"


def finding_id_for(*parts: str) -> str:
    """A Macie-like 32-hex finding id, stable for the same parts (so a re-run names the same finding)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def macie_finding_event(
    *,
    account_id: str,
    region: str,
    finding_type: str,
    severity: str,
    stored: StoredObject,
    finding_id: str | None = None,
    job_id: str | None = "b7c2ab1d8e0f1a2b3c4d5e6f7a8b9c0d",
    created_at: datetime | None = None,
    sample: bool = False,
    archived: bool = False,
    published_by: str | None = None,
) -> dict[str, Any]:
    """The EventBridge event Macie publishes for one sensitive-data finding about ``stored``.

    ``account_id`` owns the bucket (``detail.accountId``); ``published_by`` is the account whose bus Macie puts
    the event on (the envelope's ``account``): the bucket owner for its own jobs (the default), the Macie
    administrator for the administrator's jobs and for automated sensitive data discovery (``job_id=None``)."""
    template = TEMPLATES[finding_type]
    if severity not in _SCORES:
        raise ValueError(f"severity must be one of {', '.join(_SCORES)}, not {severity!r}")
    when = (created_at or datetime.now(UTC)).astimezone(UTC)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fid = finding_id or finding_id_for(account_id, region, stored.bucket, stored.key, stored.version_id, finding_type)
    categories: dict[str, list[Detection]] = {}
    for detection in template.detections:
        categories.setdefault(detection.category, []).append(detection)
    sensitive = [
        {
            "category": category,
            "detections": [
                {
                    "count": d.count,
                    "type": d.type,
                    "occurrences": {"lineRanges": [{"start": 1, "end": 1, "startColumn": 1}]},
                }
                for d in detections
            ],
            "totalCount": sum(d.count for d in detections),
        }
        for category, detections in categories.items()
    ]
    custom: dict[str, Any] = {"detections": [], "totalCount": 0}
    if template.custom_identifier is not None:
        name, count = template.custom_identifier
        custom = {
            "detections": [{"arn": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "name": name, "count": count}],
            "totalCount": count,
        }
    extension = stored.key.rsplit(".", 1)[-1] if "." in stored.key.rsplit("/", 1)[-1] else ""
    bucket_arn = f"arn:aws:s3:::{stored.bucket}"
    origin = "SENSITIVE_DATA_DISCOVERY_JOB" if job_id else "AUTOMATED_SENSITIVE_DATA_DISCOVERY"
    publisher = published_by or account_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": MACIE_DETAIL_TYPE,
        "source": MACIE_SOURCE,
        "account": publisher,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": {
            "schemaVersion": "1.0",
            "id": fid,
            "accountId": account_id,
            "partition": "aws",
            "region": region,
            "type": finding_type,
            "title": template.title,
            "description": template.description,
            "severity": {"score": _SCORES[severity], "description": severity},
            "createdAt": stamp,
            "updatedAt": stamp,
            "count": 1,
            "archived": archived,
            "sample": sample,
            "category": "CLASSIFICATION",
            "resourcesAffected": {
                "s3Bucket": {
                    "arn": bucket_arn,
                    "name": stored.bucket,
                    "defaultServerSideEncryption": {"encryptionType": "AES256", "kmsMasterKeyId": None},
                    "publicAccess": {"effectivePermission": "NOT_PUBLIC"},
                    "tags": [],
                },
                "s3Object": {
                    "bucketArn": bucket_arn,
                    "eTag": stored.etag,
                    "extension": extension,
                    "key": stored.key,
                    "lastModified": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "path": f"{stored.bucket}/{stored.key}",
                    "publicAccess": False,
                    "serverSideEncryption": {"encryptionType": "AES256", "kmsMasterKeyId": None},
                    "size": stored.size,
                    "storageClass": "STANDARD",
                    "tags": [],
                    "versionId": stored.version_id,
                },
            },
            "classificationDetails": {
                "detailedResultsLocation": f"s3://[export-config-not-set]/AWSLogs/{account_id}/Macie/{region}/",
                "jobArn": f"arn:aws:macie2:{region}:{publisher}:classification-job/{job_id}" if job_id else None,
                "jobId": job_id,
                "originType": origin,
                "result": {
                    "additionalOccurrences": False,
                    "customDataIdentifiers": custom,
                    "mimeType": stored.content_type,
                    "sensitiveData": sensitive,
                    "sizeClassified": stored.size,
                    "status": {"code": "COMPLETE", "reason": None},
                },
            },
            "policyDetails": None,
        },
    }


def with_object(event: dict[str, Any], stored: StoredObject) -> dict[str, Any]:
    """A copy of ``event`` naming the real version, ETag and size of ``stored`` (the rest untouched)."""
    patched: dict[str, Any] = json.loads(json.dumps(event))
    s3_object = patched["detail"]["resourcesAffected"]["s3Object"]
    s3_object["versionId"] = stored.version_id
    s3_object["eTag"] = stored.etag
    s3_object["size"] = stored.size
    return patched


# ---------------------------------------------------------------------------------------------------------
# Sample objects (dummy data only)
# ---------------------------------------------------------------------------------------------------------

DUMMY_CREDENTIALS: Final = (
    "# deploy settings (sandbox sample: AWS's documented example key pair, not a real credential)\n"
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    "AWS_DEFAULT_REGION=us-east-1\n"
)
# 5555 5555 5555 4444 is a published Mastercard test number; it passes the Luhn check and charges nothing.
DUMMY_CARD: Final = (
    "This file contains a dummy credit card used for testing (sandbox sample).\n"
    "Card Number: 5555555555554444\n"
    "Expiry Date: 12/30\n"
    "CVN: 123\n"
)
DUMMY_PERSONAL: Final = "customer_id,name,address,passport\n1001,Jane Example,1 Sample Street Springfield,X12345678\n"
DUMMY_EMPLOYEE: Final = "employee_id,team\nEMP-004211,payments\n"

SAMPLE_BODIES: Final[dict[str, str]] = {
    "SensitiveData:S3Object/Credentials": DUMMY_CREDENTIALS,
    "SensitiveData:S3Object/Financial": DUMMY_CARD,
    "SensitiveData:S3Object/Personal": DUMMY_PERSONAL,
    "SensitiveData:S3Object/Multiple": DUMMY_PERSONAL + DUMMY_CARD,
    "SensitiveData:S3Object/CustomIdentifier": DUMMY_EMPLOYEE,
}


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    checksum = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        checksum += digit
    return bool(digits) and checksum % 10 == 0


def sample_body(finding_type: str | None) -> bytes:
    """Dummy content that fits a finding type (a neutral line for anything else)."""
    text = SAMPLE_BODIES.get(finding_type or "", "sandbox sample object without sensitive data\n")
    return text.encode("utf-8")
