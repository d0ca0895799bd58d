"""Cross-account sessions: the member account's remediation role, assumed with the approver as SourceIdentity.

STS is called in the finding's region (``sts.<region>.amazonaws.com``; the sandbox's ``AWS_ENDPOINT_URL``
overrides it natively), so a member region works even when another region's STS is down or deactivated.
CloudTrail records the SourceIdentity (:func:`source_identity`) on every call the session makes, through role
chaining too, and the session name (:func:`session_name`) carries the finding id. Credentials are cached per
(account, region, source identity, session name) until :data:`REFRESH_MARGIN` before they expire; the margin
is longer than a Lambda invocation (15 minutes), so credentials handed out outlive the invocation that uses
them. Why one session per finding, ``auto`` jobs included: docs/architecture.md section 7. A move or a restore
passes its :class:`~macie_chatops.session_policy.JobScope` (a policy finding's fix its ``BucketScope``): the
session then carries an inline session policy allowing that one object and the finding's quarantine keys (that
bucket's public access block), section 24. AccessDenied on AssumeRole raises
:class:`AssumeRoleDeniedError` (permanent: reported, not retried); other STS errors propagate (botocore already
retried throttling and 5xx).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from macie_chatops.errors import MacieChatOpsError
from macie_chatops.ports import Clock, utcnow
from macie_chatops.session_policy import SessionPolicy, SessionScope, session_policy

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config as BotocoreConfig
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

REFRESH_MARGIN: Final = timedelta(minutes=20)
SESSION_DURATION_SECONDS: Final = 3600  # the most a chained role session may last
SESSION_NAME_PREFIX: Final = "macie-chatops-"

_SOURCE_IDENTITY_SAFE = re.compile(r"[A-Za-z0-9_.,+@-]")  # '=' is STS-legal but is our escape character
_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]", re.ASCII)
MIN_LEN: Final = 2
MAX_LEN: Final = 64
ACCESS_DENIED_CODES: Final = frozenset({"AccessDenied", "AccessDeniedException"})
# STS packs the session policy into a binary form whose limit it does not document: past it, this code.
PACKED_POLICY_TOO_LARGE: Final = "PackedPolicyTooLarge"

logger = logging.getLogger(__name__)


class AssumeRoleDeniedError(MacieChatOpsError):
    """STS refused to let the remediator assume a member account's remediation role."""

    def __init__(self, *, account_id: str, role_arn: str, message: str) -> None:
        super().__init__(
            f"AccessDenied assuming {role_arn} in account {account_id}: {message}. Check that the member "
            f"stack is deployed in {account_id}, that the role trusts the remediator role and allows "
            "sts:SetSourceIdentity, and that the remediator's policy allows sts:AssumeRole on it."
        )
        self.account_id = account_id
        self.role_arn = role_arn


def source_identity(actor: str) -> str:
    """``actor`` as a valid STS SourceIdentity (2-64 chars of ``[A-Za-z0-9_.,+=@-]``), injectively.

    Slack user ids and ``auto`` pass through unchanged. Any other character becomes ``=XX`` per UTF-8 byte
    (``=`` itself included), so two different actors never map to the same identity; a 1-character actor
    gets a trailing ``=`` (never produced by escaping); a value longer than 64 characters is cut (not
    inside an escape) and ends with ``=`` + 16 hex digits of its SHA-256.
    """
    escaped = "".join(
        ch if _SOURCE_IDENTITY_SAFE.fullmatch(ch) else "".join(f"={b:02X}" for b in ch.encode("utf-8")) for ch in actor
    )
    if len(escaped) < MIN_LEN:
        escaped = escaped + "=" * (MIN_LEN - len(escaped))
    if len(escaped) > MAX_LEN:
        digest = "=" + hashlib.sha256(actor.encode("utf-8")).hexdigest()[:16]
        head = escaped[: MAX_LEN - len(digest)]
        # Do not end inside an "=XX" escape: drop a trailing partial one.
        cut = head.rfind("=")
        if cut != -1 and cut >= len(head) - 2:
            head = head[:cut]
        escaped = head + digest
    return escaped


def session_name(finding_id: str) -> str:
    """``macie-chatops-<finding id>`` as a RoleSessionName (2-64 chars of ``[\\w+=,.@-]``)."""
    name = SESSION_NAME_PREFIX + _SESSION_NAME_UNSAFE.sub("_", finding_id)
    if len(name) <= MAX_LEN:
        return name
    digest = hashlib.sha256(finding_id.encode("utf-8")).hexdigest()[:12]
    return name[: MAX_LEN - len(digest) - 1] + "-" + digest


def role_arn(account_id: str, role_name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"


@dataclass(frozen=True)
class MemberClients:
    """Clients acting as a member account's remediation role in one region."""

    account_id: str
    region: str
    role_arn: str
    source_identity: str
    session_name: str
    expires_at: datetime
    s3: S3Client
    _session: boto3.Session = field(repr=False)
    _credentials: Mapping[str, str] = field(repr=False)
    session_policy: SessionPolicy | None = None  # None: the role's own permissions (a policy finding's fix)

    @property
    def kms(self) -> KMSClient:
        """A KMS client with the same credentials (built on use; S3 does the KMS work of a copy itself)."""
        kms: KMSClient = self.client("kms")
        return kms

    def client(self, service: str) -> Any:
        """A client of ``service`` acting as the same role session in the same region (built on use)."""
        return self._session.client(service, region_name=self.region, **self._credentials)  # type: ignore[call-overload]


def default_s3_config() -> BotocoreConfig:
    """Standard retries with more attempts (a move is worth waiting for), and no automatic response
    checksum validation: the mover verifies with its own checksums and must not need awscrt for CRC64NVME."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": 6},
        max_pool_connections=20,
        response_checksum_validation="when_required",
        connect_timeout=10,
        read_timeout=120,
    )


class MemberSessions:
    """Assumes member remediation roles and caches the resulting clients (see the module docstring)."""

    def __init__(
        self,
        *,
        role_name: str,
        base_session: boto3.Session | None = None,
        sts_client_factory: Callable[[str], STSClient] | None = None,
        s3_config: BotocoreConfig | None = None,
        clock: Clock = utcnow,
        refresh_margin: timedelta = REFRESH_MARGIN,
        duration_seconds: int = SESSION_DURATION_SECONDS,
        partition: str = "aws",
    ) -> None:
        self._role_name = role_name
        self._base_session = base_session
        self._sts_client_factory = sts_client_factory
        self._s3_config = s3_config if s3_config is not None else default_s3_config()
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._duration = duration_seconds
        self._partition = partition
        self._sts_clients: dict[str, STSClient] = {}
        self._cache: dict[tuple[str, str, str, str, SessionScope | None], MemberClients] = {}
        self._lock = threading.Lock()
        self.assume_role_calls = 0  # for tests and metrics: how often STS was actually called

    def _session(self) -> boto3.Session:
        if self._base_session is None:
            import boto3

            self._base_session = boto3.Session()
        return self._base_session

    def sts_client(self, region: str) -> STSClient:
        """The STS client the roles are assumed with in ``region`` (its regional endpoint unless overridden)."""
        client = self._sts_clients.get(region)
        if client is None:
            if self._sts_client_factory is not None:
                client = self._sts_client_factory(region)
            else:
                # A regional client: botocore's default sts_regional_endpoints is "regional".
                client = self._session().client("sts", region_name=region)
            self._sts_clients[region] = client
        return client

    def clients(
        self, account_id: str, region: str, *, actor: str, finding_id: str, scope: SessionScope | None = None
    ) -> MemberClients:
        """Clients for ``account_id``/``region`` whose calls CloudTrail attributes to ``actor`` and the finding;
        with ``scope``, limited by its session policy to that job's object and quarantine keys."""
        identity = source_identity(actor)
        name = session_name(finding_id)
        key = (account_id, region, identity, name, scope)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.expires_at - self._refresh_margin > now:
                return cached
        policy = None if scope is None else session_policy(scope, partition=self._partition)
        fresh = self._assume(account_id, region, identity, name, policy)
        with self._lock:
            self._cache[key] = fresh
            # Drop expired entries so a long-lived container does not accumulate one per finding.
            for stale in [k for k, v in self._cache.items() if v.expires_at - self._refresh_margin <= now]:
                del self._cache[stale]
        return fresh

    def _assume(
        self, account_id: str, region: str, identity: str, name: str, policy: SessionPolicy | None
    ) -> MemberClients:
        from botocore.exceptions import ClientError

        arn = role_arn(account_id, self._role_name, self._partition)
        args: dict[str, Any] = {
            "RoleArn": arn,
            "RoleSessionName": name,
            "SourceIdentity": identity,
            "DurationSeconds": self._duration,
        }
        try:
            response, policy = self._assume_with(region, args, policy, session=name)
        except ClientError as exc:
            error: dict[str, Any] = dict(exc.response.get("Error", {}))
            if error.get("Code") in ACCESS_DENIED_CODES:
                raise AssumeRoleDeniedError(
                    account_id=account_id, role_arn=arn, message=str(error.get("Message") or "access denied")
                ) from exc
            raise
        credentials = response["Credentials"]
        expires = credentials["Expiration"]
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        keys = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
        # Clients from the one base session share its loaded service models (a new boto3.Session per
        # assumed role would load them again, ~0.3 s each); the credentials are the member role's.
        session = self._session()
        return MemberClients(
            account_id=account_id,
            region=region,
            role_arn=arn,
            source_identity=identity,
            session_name=name,
            expires_at=expires,
            s3=session.client("s3", region_name=region, config=self._s3_config, **keys),
            _session=session,
            _credentials=keys,
            session_policy=policy,
        )

    def _assume_with(
        self, region: str, args: dict[str, Any], policy: SessionPolicy | None, *, session: str
    ) -> tuple[Any, SessionPolicy | None]:
        """AssumeRole with ``policy`` (logged when it is wider than the object); when STS finds its packed form too
        large, once more with the same job scoped to the bucket. Returns STS's response and the policy used."""
        from botocore.exceptions import ClientError

        if policy is not None and policy.reason:
            logger.warning(
                "session policy wider than the finding's object",
                extra={"session_name": session, "scope": policy.scope.value, "resource": policy.resource,
                       "reason": policy.reason},
            )  # fmt: skip
        try:
            self.assume_role_calls += 1
            with_policy = {**args, "Policy": policy.document} if policy is not None else args
            response = self.sts_client(region).assume_role(**with_policy)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code != PACKED_POLICY_TOO_LARGE or policy is None or policy.wider is None:
                raise
            wider = SessionPolicy(
                policy.wider.document,
                policy.wider.scope,
                policy.wider.resource,
                f"STS found the packed session policy too large ({policy.chars} characters): scoped to the bucket",
            )
            return self._assume_with(region, args, wider, session=session)
        if policy is not None:
            logger.info(
                "session policy",
                extra={"session_name": session, "scope": policy.scope.value, "policy_chars": policy.chars,
                       "packed_policy_percent": response.get("PackedPolicySize")},
            )  # fmt: skip
        return response, policy
