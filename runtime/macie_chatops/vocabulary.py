"""The policy's plain vocabulary: actions, severities and finding types, as enums and tuples.

Apart from ``config`` (which re-exports every name here) so that what only stores or compares these values (the
store, the groups, the summaries) does not import pydantic and the config models with them (docs/architecture.md §6).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Severity(StrEnum):
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


class Action(StrEnum):
    """What the pipeline does with a finding. ``reject`` is never configured: it is for bad input."""

    AUTO = "auto"
    REVIEW = "review"
    NOTIFY = "notify"
    IGNORE = "ignore"
    REJECT = "reject"


SENSITIVE_DATA_TYPES: Final = (
    "SensitiveData:S3Object/Credentials",
    "SensitiveData:S3Object/CustomIdentifier",
    "SensitiveData:S3Object/Financial",
    "SensitiveData:S3Object/Multiple",
    "SensitiveData:S3Object/Personal",
)
POLICY_TYPES: Final = (
    "Policy:IAMUser/S3BlockPublicAccessDisabled",
    "Policy:IAMUser/S3BucketEncryptionDisabled",
    "Policy:IAMUser/S3BucketPublic",
    "Policy:IAMUser/S3BucketReplicatedExternally",
    "Policy:IAMUser/S3BucketSharedExternally",
    "Policy:IAMUser/S3BucketSharedWithCloudFront",
)
# The policy findings the one fix we have (the bucket's public access block, all four settings) closes: only
# these may be `review` or `auto`; the others may only be `notify` or `ignore`.
PUBLIC_ACCESS_FIX_TYPES: Final = ("Policy:IAMUser/S3BlockPublicAccessDisabled", "Policy:IAMUser/S3BucketPublic")
