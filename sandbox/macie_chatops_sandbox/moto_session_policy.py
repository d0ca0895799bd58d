"""Make moto's IAM enforcement apply the inline session policy of an assumed role, as STS does.

moto (5.2.5, and its main branch in August 2026) stores the ``Policy`` passed to AssumeRole and never reads it:
under IAM enforcement an assumed role's request is checked against the role's policies only. AWS documents a
session's permissions as the intersection of the role's identity-based policies and the session policy: an
explicit Deny in either denies, and a request must be allowed by both ("Session policies", IAM User Guide).

Installed, the request check first runs moto's own (the role's policies, moto's evaluation), then, for a
session with a policy, evaluates that policy here for what the request really needs, as AWS would:
- S3: the IAM actions S3 authorises the request as ("Required permissions for Amazon S3 API operations"), not
  moto's operation name: a HEAD or GET with a version id needs ``s3:GetObjectVersion``, tags by version
  ``s3:GetObjectVersionTagging``, a delete by version ``s3:DeleteObjectVersion``, a copy also needs to read its
  source (``x-amz-copy-source``; moto checks only the destination), a write with tags ``s3:PutObjectTagging``,
  a multipart upload ``s3:PutObject``, ListObjectVersions ``s3:ListBucketVersions`` with ``s3:prefix``, and a
  bucket's public access block ``s3:Get/PutBucketPublicAccessBlock``;
- other services: moto's action on moto's resource (``*`` for most); no request carries ``kms:ViaService``, as
  no direct KMS call does on AWS.
The evaluation covers what session policies of this project use: Allow/Deny, Action/NotAction and
Resource/NotResource with ``*`` and ``?`` (every other character literal), and the String, Arn, Null and Bool
condition operators (with ``IfExists``). A policy variable (``${...}``) or a set operator raises: the
extension says it cannot decide rather than deciding wrongly. Not emulated: S3 answering 403 instead of 404 for
a missing key when the caller may not list the bucket. ``install()`` / ``uninstall()`` are reference counted
(``moto_patches``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlparse

from macie_chatops_sandbox.moto_patches import Patches

ALWAYS_ALLOWED: Final = frozenset({"sts:GetCallerIdentity"})  # AWS allows it whatever the policies say


class Decision(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"  # an explicit Deny
    NOT_ALLOWED = "not allowed"  # no statement allows it (implicit deny)


@dataclass(frozen=True)
class Need:
    """One permission a request needs: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


# -- the policy language ---------------------------------------------------------------------------------------


def evaluate(document: Mapping[str, Any], need: Need) -> Decision:
    """What ``document`` says about ``need``: an explicit Deny wins, then any Allow, else not allowed."""
    statements = document["Statement"]
    allowed = False
    for statement in [statements] if isinstance(statements, Mapping) else statements:
        if not _applies(statement, need):
            continue
        if statement["Effect"] == "Deny":
            return Decision.DENIED
        allowed = True
    return Decision.ALLOWED if allowed else Decision.NOT_ALLOWED


def _applies(statement: Mapping[str, Any], need: Need) -> bool:
    if "NotAction" in statement:
        action_matches = not _any_match(statement["NotAction"], need.action, ignore_case=True)
    else:
        action_matches = _any_match(statement["Action"], need.action, ignore_case=True)
    if not action_matches:
        return False
    if "NotResource" in statement:
        resource_matches = not _any_match(statement["NotResource"], need.resource, ignore_case=False)
    else:
        resource_matches = _any_match(statement["Resource"], need.resource, ignore_case=False)
    return resource_matches and _conditions_hold(statement.get("Condition", {}), need.context)


def _values(element: str | Sequence[str]) -> list[str]:
    return [element] if isinstance(element, str) else list(element)


def _any_match(patterns: str | Sequence[str], value: str, *, ignore_case: bool) -> bool:
    return any(wildcard_match(pattern, value, ignore_case=ignore_case) for pattern in _values(patterns))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's matching: ``*`` any run of characters, ``?`` any one character, everything else literal."""
    if "${" in pattern:
        raise ValueError(f"policy variables are not emulated: {pattern!r}")
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(regex, value, flags) is not None


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    """Every operator's every key must hold (AND); a key's values are alternatives (OR)."""
    for operator, keys in conditions.items():
        if operator.startswith(("ForAnyValue:", "ForAllValues:")):
            raise ValueError(f"set operators are not emulated: {operator}")
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        for key, expected in keys.items():
            present = key in context
            if base == "Null":
                if any(str(value).lower() == ("false" if present else "true") for value in _values(expected)):
                    continue
                return False
            if not present:
                if if_exists or base.startswith(("StringNot", "ArnNot")):
                    continue
                return False
            if not _operator_holds(base, context[key], _values(expected)):
                return False
    return True


def _operator_holds(operator: str, actual: str, expected: list[str]) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual in expected
    if operator in ("StringNotEquals", "ArnNotEquals"):
        return actual not in expected
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() in {value.lower() for value in expected}
    if operator == "StringNotEqualsIgnoreCase":
        return actual.lower() not in {value.lower() for value in expected}
    if operator in ("StringLike", "ArnLike"):
        return any(wildcard_match(value, actual) for value in expected)
    if operator in ("StringNotLike", "ArnNotLike"):
        return not any(wildcard_match(value, actual) for value in expected)
    if operator == "Bool":
        return actual.lower() in {value.lower() for value in expected}
    raise ValueError(f"condition operator not emulated: {operator}")


# -- what an S3 request needs ---------------------------------------------------------------------------------


def s3_needs(
    method: str,
    resource: str,
    query: Mapping[str, Sequence[str]],
    headers: Mapping[str, str],
    *,
    moto_action: str,
) -> list[Need]:
    """The permissions S3 checks for one request on ``resource`` (``arn:<partition>:s3:::bucket[/key]``, as moto
    computed it), from its method, query parameters and headers (``headers`` keys lower-case). A bucket request
    other than a listing keeps moto's action (``moto_action``, e.g. ``s3:GetBucketVersioning``)."""
    base, _, path = resource.partition(":::")
    if "/" not in path:
        return _bucket_needs(method, resource, query, moto_action)
    versioned = "versionId" in query
    if method in ("HEAD", "GET"):
        parameter = next((p for p in _OBJECT_GETS if p in query), None) if method == "GET" else None
        plain, by_version = _OBJECT_GETS[parameter] if parameter else ("GetObject", "GetObjectVersion")
        return [Need(f"s3:{by_version if versioned else plain}", resource)]
    if method == "DELETE":
        if "uploadId" in query:
            return [Need("s3:AbortMultipartUpload", resource)]
        plain, by_version = (
            ("DeleteObjectTagging", "DeleteObjectVersionTagging") if "tagging" in query
            else ("DeleteObject", "DeleteObjectVersion")
        )  # fmt: skip
        return [Need(f"s3:{by_version if versioned else plain}", resource)]
    if method == "PUT":
        parameter = next((p for p in _OBJECT_PUTS if p in query), None)
        if parameter:
            plain, by_version = _OBJECT_PUTS[parameter]
            return [Need(f"s3:{by_version if versioned else plain}", resource)]
        return _write_needs(resource, headers, copy_source_base=f"{base}:::")
    if method == "POST" and not {"restore", "select"} & set(query):
        return _write_needs(resource, headers, copy_source_base=f"{base}:::")  # create / complete multipart
    raise ValueError(f"an S3 object request this extension does not know: {method} {path} {sorted(query)}")


_OBJECT_GETS: Final = {
    "tagging": ("GetObjectTagging", "GetObjectVersionTagging"),
    "acl": ("GetObjectAcl", "GetObjectVersionAcl"),
    "attributes": ("GetObjectAttributes", "GetObjectVersionAttributes"),
    "retention": ("GetObjectRetention", "GetObjectRetention"),
    "legal-hold": ("GetObjectLegalHold", "GetObjectLegalHold"),
    "uploadId": ("ListMultipartUploadParts", "ListMultipartUploadParts"),
}
_OBJECT_PUTS: Final = {
    "tagging": ("PutObjectTagging", "PutObjectVersionTagging"),
    "acl": ("PutObjectAcl", "PutObjectVersionAcl"),
    "retention": ("PutObjectRetention", "PutObjectRetention"),
    "legal-hold": ("PutObjectLegalHold", "PutObjectLegalHold"),
}


def _write_needs(resource: str, headers: Mapping[str, str], *, copy_source_base: str) -> list[Need]:
    """PutObject, and for a copy (or a part copy) reading its source; with tags, PutObjectTagging too."""
    needs = [Need("s3:PutObject", resource)]
    if headers.get("x-amz-tagging"):
        needs.append(Need("s3:PutObjectTagging", resource))
    source = headers.get("x-amz-copy-source")
    if source:
        parsed = urlparse(source)
        source_path = unquote(parsed.path).lstrip("/")
        versioned = "versionId" in parse_qs(parsed.query)
        action = "s3:GetObjectVersion" if versioned else "s3:GetObject"
        needs.append(Need(action, f"{copy_source_base}{source_path}"))
    return needs


def _bucket_needs(method: str, resource: str, query: Mapping[str, Sequence[str]], moto_action: str) -> list[Need]:
    context = {"s3:prefix": query["prefix"][0]} if query.get("prefix") else {}
    if "publicAccessBlock" in query:  # a delete is authorised as a put
        return [Need("s3:GetBucketPublicAccessBlock" if method == "GET" else "s3:PutBucketPublicAccessBlock", resource)]
    if method == "GET" and "versions" in query:
        return [Need("s3:ListBucketVersions", resource, context)]
    if method == "GET" and "uploads" in query:
        return [Need("s3:ListBucketMultipartUploads", resource)]
    if method == "HEAD" or (method == "GET" and set(query) <= {"list-type", "prefix", "delimiter", "max-keys",
                                                                 "marker", "continuation-token", "start-after",
                                                                 "encoding-type", "fetch-owner"}):  # fmt: skip
        return [Need("s3:ListBucket", resource, context)]
    return [Need(moto_action, resource)]


# -- the patch --------------------------------------------------------------------------------------------------


def _session_policy(access_key: Any) -> dict[str, Any] | None:
    """The session policy of the assumed-role credentials ``access_key`` (None: not a session, or no policy)."""
    from moto.iam.access_control import AssumedRoleAccessKey
    from moto.sts.models import sts_backends

    if not isinstance(access_key, AssumedRoleAccessKey):
        return None
    key_id = access_key._access_key_id
    for role in sts_backends[access_key.account_id][access_key.partition].assumed_roles:
        if role.access_key_id == key_id and role.policy:
            document: dict[str, Any] = json.loads(role.policy)
            return document
    return None


def _request_needs(request: Any, resource: str) -> list[Need]:
    if request._service != "s3":
        return [Need(request._action, resource)]
    query = parse_qs(urlparse(request._path).query, keep_blank_values=True)
    headers = {str(name).lower(): str(value) for name, value in request._headers.items()}
    return s3_needs(request._method, resource, query, headers, moto_action=request._action)


def _checking_session_policy(check_action_permitted: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    """IAMRequestBase.check_action_permitted, then the session policy of an assumed role's session."""

    @functools.wraps(check_action_permitted)
    def check_with_session_policy(self: Any, resource: str) -> None:
        check_action_permitted(self, resource)  # the role's own policies (moto's evaluation): the ceiling
        policy = _session_policy(self._access_key)
        if policy is None or self._action in ALWAYS_ALLOWED:
            return
        for need in _request_needs(self, resource):
            if evaluate(policy, need) is not Decision.ALLOWED:
                self._raise_access_denied()

    return check_with_session_policy


def _apply(patches: Patches) -> None:
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase.__dict__["check_action_permitted"]
    patches.replace(IAMRequestBase, "check_action_permitted", _checking_session_policy(original))


_PATCHES = Patches(_apply)
install = _PATCHES.install
uninstall = _PATCHES.uninstall
