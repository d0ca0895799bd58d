"""Inline session policies: a member-role session that can touch one finding's object and nothing else.

Passed as ``Policy`` on the AssumeRole of every move and restore, and of a policy finding's fix and its Undo (its
bucket's public access block only), by ``sessions.MemberSessions``. A session's
permissions are the intersection of the role's policies and this document, so the role stays the ceiling.
The actions are the ones the mover's S3 calls need (``move/s3_objects.py``), named as S3 authorises them.
Why each fallback is safe, and how the size is measured: docs/architecture.md section 24.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from macie_chatops.move.outcomes import MoveRequest, RestoreRequest

# STS's documented limit on an inline session policy's plaintext (characters \u0020-\u00FF, tab, LF, CR).
MAX_POLICY_CHARS: Final = 2048
# Characters that mean something in a Resource ARN or a condition value: the IAM wildcards, and '$' (a policy
# variable, ``${...}``). A key holding one cannot be named exactly, so its scope stops before the first.
SPECIAL_CHARACTERS: Final = frozenset("*?$")

# The finding's object, to quarantine it: HEAD and the verification reads (with and without a version id), its
# own tags (kept for a restore), its lock state (HEAD shows retention and legal hold only to a caller allowed to
# read them), and the delete (by version id; a null version with If-Match).
MOVE_SOURCE_ACTIONS: Final = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:GetObjectRetention",
    "s3:GetObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
)
# The finding's quarantine prefix, to quarantine: the copy (single or multipart, with its tags), its read-back,
# its tags by version and an aborted multipart upload. No delete: a copy that does not verify is left, untrusted,
# for the retry's copy to replace (a session that could delete quarantine versions could destroy the only copy).
MOVE_QUARANTINE_ACTIONS: Final = (
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:AbortMultipartUpload",
)
# The original key, to restore: the copy back (with the object's own tags), its read-back and verification,
# tags by version after a multipart copy, and the removal of a restored copy that does not verify.
RESTORE_DESTINATION_ACTIONS: Final = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
)
# The quarantine copy, to restore: read it, its tags, and copy from it (a copy source is a read).
RESTORE_QUARANTINE_ACTIONS: Final = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
)
# Source objects may use any key of their bucket; S3 does the KMS work of a copy (decrypt the source, a data key
# for the destination) on the session's behalf, so KMS only through S3 in the finding's region.
KMS_ACTIONS: Final = ("kms:Decrypt", "kms:GenerateDataKey")
# A policy finding's fix and its Undo: the bucket's own public access block, read and put back (S3 authorises
# DeletePublicAccessBlock as s3:PutBucketPublicAccessBlock).
PUBLIC_ACCESS_ACTIONS: Final = ("s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock")

JobKind = Literal["quarantine", "restore"]


class Scope(StrEnum):
    """How much of the finding's bucket the session may touch."""

    OBJECT = "object"  # exactly the finding's key
    PREFIX = "prefix"  # the key's longest prefix that can be named (see :func:`session_policy`)
    BUCKET = "bucket"  # every key of the bucket (the role's own policy is then the only limit)
    PUBLIC_ACCESS_BLOCK = "public-access-block"  # no object: one bucket's public access block


@dataclass(frozen=True)
class JobScope:
    """What one job touches: the finding's object, and the finding's quarantine keys."""

    kind: JobKind
    finding_id: str
    region: str
    bucket: str
    key: str
    quarantine_bucket: str
    quarantine_key: str  # the quarantine copy's key (a move: the finding's namespace, ``<finding id>/``)


@dataclass(frozen=True)
class BucketScope:
    """What a policy finding's fix (or its Undo) touches: one bucket's public access block."""

    finding_id: str
    bucket: str


SessionScope = JobScope | BucketScope


def for_public_access(bucket: str, finding_id: str) -> BucketScope:
    return BucketScope(finding_id, bucket)


def for_move(request: MoveRequest) -> JobScope:
    # Every quarantine key of the finding lies under its id (quarantine_plan.quarantine_key); the key itself is
    # not computed here: a key S3 cannot hold is the mover's to refuse, with the session it gets.
    namespace = f"{request.finding_id}/"
    return JobScope(
        "quarantine",
        request.finding_id,
        request.region,
        request.bucket,
        request.key,
        request.quarantine_bucket,
        namespace,
    )


def for_restore(request: RestoreRequest) -> JobScope:
    return JobScope(
        "restore", request.finding_id, request.region, request.bucket, request.key, request.quarantine_bucket,
        request.quarantine_key,
    )  # fmt: skip


@dataclass(frozen=True)
class SessionPolicy:
    """The policy document (compact JSON, non-ASCII escaped) and how narrow it is."""

    document: str
    scope: Scope
    resource: str  # the object ARN pattern of the finding's bucket the session may touch
    reason: str  # why the scope is wider than the object ("" when it is the object)
    wider: SessionPolicy | None = None  # the same job scoped to the whole bucket (None: this is it)

    @property
    def chars(self) -> int:
        return len(self.document)


def session_policy(job: SessionScope, *, partition: str = "aws") -> SessionPolicy:
    """The narrowest policy for ``job`` that can be written and fits :data:`MAX_POLICY_CHARS`.

    The finding's key is named exactly (``arn:aws:s3:::bucket/key``) unless it holds a character of
    :data:`SPECIAL_CHARACTERS` or the document would be too long; then the key's longest prefix before the first
    such character that fits (``bucket/prefix*``), and when there is none, the bucket (``bucket/*``).
    Quarantine keys are ``<finding id>/...``: the session gets that prefix (the bucket, if the finding id itself
    holds a special character or a restore's recorded key lies outside it). A :class:`BucketScope`: the bucket's
    public access block, and nothing else."""
    if isinstance(job, BucketScope):
        return _public_access_policy(job, partition)
    bucket_wide = _render(job, partition, key_scope=Scope.BUCKET, prefix="")
    if bucket_wide.chars > MAX_POLICY_CHARS:  # bucket names and finding ids are short: never, unless they are not
        raise ValueError(f"even the bucket-wide session policy is {bucket_wide.chars} characters")
    special = _cut(job.key)
    if special is None:
        exact = _render(job, partition, key_scope=Scope.OBJECT, prefix=job.key)
        if exact.chars <= MAX_POLICY_CHARS:
            return SessionPolicy(exact.document, exact.scope, exact.resource, "", wider=bucket_wide)
    named = job.key if special is None else job.key[:special]
    longest = _longest_fitting_prefix(job, partition, named)
    if special is not None:
        why = f"the key holds {job.key[special]!r}, which IAM would read as a wildcard or a policy variable"
    else:
        why = f"the policy naming the exact key would pass {MAX_POLICY_CHARS} characters"
    if longest:
        policy = _render(job, partition, key_scope=Scope.PREFIX, prefix=longest)
        reason = f"{why}: scoped to the key's first {len(longest)} characters"
        return SessionPolicy(policy.document, policy.scope, policy.resource, reason, wider=bucket_wide)
    reason = f"{why}: scoped to the bucket"
    return SessionPolicy(bucket_wide.document, Scope.BUCKET, bucket_wide.resource, reason)


def _cut(text: str) -> int | None:
    """The index of the first special character in ``text`` (None: there is none)."""
    return next((index for index, char in enumerate(text) if char in SPECIAL_CHARACTERS), None)


def _longest_fitting_prefix(job: JobScope, partition: str, named: str) -> str:
    """The longest prefix of ``named`` whose PREFIX policy fits (the size grows with the prefix: bisect)."""
    low, high = 0, len(named)  # the answer's length lies in [low, high]; a prefix of length low always fits
    while low < high:
        middle = (low + high + 1) // 2
        if _render(job, partition, key_scope=Scope.PREFIX, prefix=named[:middle]).chars <= MAX_POLICY_CHARS:
            low = middle
        else:
            high = middle - 1
    return named[:low]


def _render(job: JobScope, partition: str, *, key_scope: Scope, prefix: str) -> SessionPolicy:
    s3 = f"arn:{partition}:s3:::"
    if key_scope is Scope.OBJECT:
        resource = f"{s3}{job.bucket}/{prefix}"
        listing: dict[str, Any] = {"StringEquals": {"s3:prefix": prefix}}
    elif key_scope is Scope.PREFIX and prefix:
        resource = f"{s3}{job.bucket}/{prefix}*"
        listing = {"StringLike": {"s3:prefix": f"{prefix}*"}}
    else:
        key_scope, resource, listing = Scope.BUCKET, f"{s3}{job.bucket}/*", {}
    namespace = f"{job.finding_id}/"
    in_namespace = _cut(job.finding_id) is None and job.quarantine_key.startswith(namespace)
    quarantine = f"{s3}{job.quarantine_bucket}/{namespace if in_namespace else ''}*"
    move = job.kind == "quarantine"
    statements: list[dict[str, Any]] = [
        _allow("FindingObject", MOVE_SOURCE_ACTIONS if move else RESTORE_DESTINATION_ACTIONS, resource),
        _allow("FindingQuarantine", MOVE_QUARANTINE_ACTIONS if move else RESTORE_QUARANTINE_ACTIONS, quarantine),
        # A HEAD of a key that is not there answers 404 only to a caller that may list the bucket (else 403).
        _allow("NotFoundIsNotDenied", ("s3:ListBucket",), [f"{s3}{job.bucket}", f"{s3}{job.quarantine_bucket}"]),
    ]
    if move:
        versions = _allow("FindingKeyVersions", ("s3:ListBucketVersions",), f"{s3}{job.bucket}")
        if listing:
            versions["Condition"] = listing
        statements.append(versions)
    kms = _allow("KmsThroughS3", KMS_ACTIONS, "*")
    kms["Condition"] = {"StringEquals": {"kms:ViaService": f"s3.{job.region}.amazonaws.com"}}
    statements.append(kms)
    document = json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))
    return SessionPolicy(document, key_scope, resource, "")


def _public_access_policy(job: BucketScope, partition: str) -> SessionPolicy:
    resource = f"arn:{partition}:s3:::{job.bucket}"
    statement = _allow("FindingBucketPublicAccessBlock", PUBLIC_ACCESS_ACTIONS, resource)
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))
    return SessionPolicy(document, Scope.PUBLIC_ACCESS_BLOCK, resource, "")


def _allow(sid: str, actions: tuple[str, ...], resource: str | list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resource}
