"""Exemptions: a team's "this is fine" for a scope of objects, until a date (docs/architecture.md §16).

Pure: what an exemption is, what it covers, whether it is active at a moment, and what a decision becomes
when one covers the finding. Matching compares keys code point by code point, as S3 does (no Unicode
normalisation: ``café`` written with a combining accent is another key), and a prefix always ends with
``/``, so ``reports/`` never covers ``reports-2024/``. ``until`` is exclusive: at ``until`` it has run out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Protocol

from macie_chatops.config import Action

if TYPE_CHECKING:
    from macie_chatops.config import Config
    from macie_chatops.decision import Decision
    from macie_chatops.finding import Finding
    from macie_chatops.policy_summary import PolicySummary
    from macie_chatops.summary import FindingSummary

MAX_REASON_CHARS: Final = 500
MAX_DAYS_AHEAD: Final = 366  # "at most one year ahead", a leap year included
CONFIG_SOURCE: Final = "accounts.yaml"
POLICY_TYPE_PREFIX: Final = "Policy:"  # a bucket-level finding (§18): no object, matched by bucket and type


class Scope(StrEnum):
    FINDING = "finding"  # this object version
    OBJECT = "object"  # every version of this key
    PREFIX = "prefix"  # every key under a prefix ending in "/"
    BUCKET = "bucket"  # every key of the bucket


@dataclass(frozen=True)
class Target:
    """What an exemption is compared with: the finding's object, and its type."""

    account_id: str
    bucket: str
    key: str
    version: str  # ObjectVersion.version: the version id, or etag:<ETag>@<seconds>
    finding_type: str

    @classmethod
    def of(cls, summary: FindingSummary) -> Target:
        version = summary.object_version
        return cls(version.account_id, version.bucket, version.key, version.version, summary.finding_type)

    @classmethod
    def of_policy(cls, policy: PolicySummary) -> Target:
        """A policy finding's target (§18): its bucket and no object; ``version`` holds the finding id, so the
        FINDING scope covers that finding only (an object's key is never empty, so neither covers the other)."""
        return cls(policy.account_id, policy.bucket, "", policy.finding_id, policy.finding_type)

    @property
    def is_policy(self) -> bool:
        return self.finding_type.startswith(POLICY_TYPE_PREFIX)


@dataclass(frozen=True)
class Exemption:
    """Who exempted what, why, and until when (exclusive). ``key`` holds the key (finding, object) or the
    prefix (prefix); ``types`` empty means every finding type."""

    id: str
    account_id: str
    bucket: str
    scope: Scope
    until: datetime
    reason: str
    created_by: str
    created_at: datetime
    key: str = ""
    version: str = ""
    types: tuple[str, ...] = ()
    finding_id: str = ""  # the dismissed finding that created it ("" for accounts.yaml)
    source: str = "slack"  # "slack" or CONFIG_SOURCE
    revoked_by: str | None = None
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.until

    def covers(self, target: Target) -> bool:
        """Does the scope cover ``target`` (whatever the time)?"""
        if target.account_id != self.account_id or target.bucket != self.bucket:
            return False
        if self.types and target.finding_type not in self.types:
            return False
        if not self.types and target.is_policy:
            # "every finding type" (accounts.yaml without types) means the objects' types: a bucket made public
            # is only exempted by an exemption that names its type (§16, §18).
            return False
        if self.scope is Scope.BUCKET:
            return True
        if self.scope is Scope.PREFIX:
            return target.key.startswith(self.key)
        if self.scope is Scope.OBJECT:
            return target.key == self.key
        return target.key == self.key and target.version == self.version

    def describe_scope(self) -> str:
        """The scope in words (raw text: escape before Slack)."""
        where = f"s3://{self.bucket}/"
        types = f" ({', '.join(t.rsplit('/', 1)[-1] for t in self.types)} findings)" if self.types else ""
        if self.types and all(t.startswith(POLICY_TYPE_PREFIX) for t in self.types):
            if self.scope is Scope.FINDING:
                return f"finding {self.version} on bucket {where} in account {self.account_id}{types}"
            return f"bucket {where} in account {self.account_id}{types}"
        if self.scope is Scope.BUCKET:
            text = f"every object in {where}"
        elif self.scope is Scope.PREFIX:
            text = f"every object under {where}{self.key}"
        elif self.scope is Scope.OBJECT:
            text = f"every version of {where}{self.key}"
        else:
            text = f"{where}{self.key} ({self.version or 'no version'})"
        return f"{text} in account {self.account_id}{types}"

    def ignore_reason(self) -> str:
        """The IGNORED reason of a finding this exemption covers."""
        return f"exempted by {self.created_by} until {until_text(self.until)}: {self.reason} (exemption {self.id})"


class ExemptionSource(Protocol):
    """Where the exemptions recorded from Slack are read (``ExemptionStore``)."""

    def for_account(self, account_id: str) -> tuple[Exemption, ...]: ...


def until_text(until: datetime) -> str:
    """``until`` for people: the date when it is a midnight UTC (the last covered day is the day before)."""
    moment = until.astimezone(UTC)
    if moment.time() == time(0, 0):
        return (moment.date() - timedelta(days=1)).isoformat() + " (end of day, UTC)"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def end_of(day: date) -> datetime:
    """The exclusive end of ``day`` (UTC): an exemption "until 2027-03-01" covers all of March 1st."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=UTC)


def first_covering(exemptions: Iterable[Exemption], target: Target, now: datetime) -> Exemption | None:
    """The active exemption covering ``target`` that runs longest (ties: the earliest created), or None."""
    covering = [e for e in exemptions if e.active(now) and e.covers(target)]
    if not covering:
        return None
    return min(covering, key=lambda e: (-e.until.timestamp(), e.created_at.timestamp(), e.id))


def exempted(decision: Decision, target: Target | None, exemptions: Iterable[Exemption], now: datetime) -> Decision:
    """``decision`` unchanged, or IGNORED with the exemption's reason when an active one covers the finding.

    Only decisions that would tell or ask a team (auto, review, notify) are exempted: a reject or an ignore
    already says why nothing happens, and says it better."""
    if target is None or not decision.posts_to_slack:
        return decision
    exemption = first_covering(exemptions, target, now)
    if exemption is None:
        return decision
    return replace(decision, action=Action.IGNORE, reason=exemption.ignore_reason())


def target_of(finding: Finding) -> Target | None:
    """The target of a parsed finding with an S3 object, or of a policy finding with its bucket (the same
    identity its summary gives), else None."""
    from macie_chatops.decision import Decision
    from macie_chatops.policy_summary import PolicySummary
    from macie_chatops.summary import FindingSummary

    if not finding.bucket:
        return None
    if finding.detail.category == "POLICY":
        return Target.of_policy(PolicySummary.of(finding, Decision(Action.IGNORE, "")))
    if finding.s3_object is None:
        return None
    return Target.of(FindingSummary.of(finding, Decision(Action.IGNORE, "")))


def from_config(config: Config) -> tuple[Exemption, ...]:
    """The exemptions written in accounts.yaml (ids ``accounts.yaml#<index>``; created_at unknown: epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out = []
    for index, entry in enumerate(config.exemptions):
        out.append(
            Exemption(
                id=f"{CONFIG_SOURCE}#{index}",
                account_id=entry.account,
                bucket=entry.bucket,
                scope=Scope.PREFIX if entry.prefix else Scope.BUCKET,
                key=entry.prefix or "",
                types=tuple(entry.types or ()),
                until=end_of(entry.until),
                reason=entry.reason,
                created_by=CONFIG_SOURCE,
                created_at=epoch,
                source=CONFIG_SOURCE,
            )
        )
    return tuple(out)


def parent_prefix(key: str) -> str | None:
    """The "folder" of ``key`` (up to and including its last ``/``), or None for a key at the bucket's root."""
    cut = key.rfind("/")
    return key[: cut + 1] if cut > 0 else None


def scoped(
    scope: Scope, target: Target, *, exemption_id: str, until: datetime, reason: str, by: str, at: datetime
) -> Exemption:
    """The exemption a dismissal of ``target`` creates for ``scope`` (its finding type only)."""
    key, version = "", ""
    if target.is_policy and scope not in (Scope.FINDING, Scope.BUCKET):
        raise ValueError("a policy finding (a bucket) is exempted as this finding or as its bucket")
    if scope is Scope.FINDING:
        key, version = target.key, target.version
    elif scope is Scope.OBJECT:
        key = target.key
    elif scope is Scope.PREFIX:
        prefix = parent_prefix(target.key)
        if prefix is None:
            raise ValueError("a key at the bucket's root has no prefix")
        key = prefix
    return Exemption(
        id=exemption_id,
        account_id=target.account_id,
        bucket=target.bucket,
        scope=scope,
        key=key,
        version=version,
        types=(target.finding_type,),
        until=until,
        reason=reason,
        created_by=by,
        created_at=at,
        source="slack",
    )
