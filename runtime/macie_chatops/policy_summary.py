"""PolicySummary: what the pipeline keeps of a policy finding (a bucket, not an object) and shows people.

Stored in the state record beside the object findings' ``summary`` (which a policy finding never has: no object
version, no claim). ``count`` grows when Macie reports the finding again under the same id (§18). Pure data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from macie_chatops.vocabulary import PUBLIC_ACCESS_FIX_TYPES

if TYPE_CHECKING:  # the store imports this module: no pydantic model on its import path (§6)
    from macie_chatops.decision import Decision
    from macie_chatops.finding import Finding


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else ""


@dataclass(frozen=True)
class PolicySummary:
    finding_id: str
    finding_type: str
    severity: str
    account_id: str
    region: str
    bucket: str
    count: int  # Macie's occurrences of this finding, as last recorded
    created_at: str  # ISO 8601 as Macie sent it
    updated_at: str  # the latest occurrence's updatedAt ("" when Macie sent none)
    effective_permission: str = ""  # PUBLIC | NOT_PUBLIC | UNKNOWN, as Macie saw the bucket ("" when absent)
    api: str = ""  # the API call that caused it, e.g. PutBucketPolicy ("" when absent)
    account_name: str = ""
    team: str = ""
    channel: str = ""
    title: str = ""
    approvals_required: int = 1  # different approvers to block or dismiss, decided at intake (§15; 1 before it)

    @property
    def fixable(self) -> bool:
        """Whether blocking the bucket's public access closes this finding (the one fix there is)."""
        return self.finding_type in PUBLIC_ACCESS_FIX_TYPES

    @property
    def console_url(self) -> str:
        region = quote(self.region, safe="")
        return (
            f"https://{region}.console.aws.amazon.com/macie/home?region={region}"
            f"#findings?search=resourcesAffected.s3Bucket.name%3D{quote(self.bucket, safe='')}"
            f"&macros=current&itemId={quote(self.finding_id, safe='')}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySummary:
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        values["count"] = int(values["count"])
        if "approvals_required" in values:
            values["approvals_required"] = int(values["approvals_required"])
        return cls(**values)

    @classmethod
    def of(cls, finding: Finding, decision: Decision) -> PolicySummary:
        """The summary of a policy finding (callers check ``category == "POLICY"`` and the bucket first)."""
        detail = finding.detail
        resources = detail.resourcesAffected
        if resources is None:
            raise ValueError(f"finding {finding.id} names no bucket to summarise")
        public = resources.s3Bucket.publicAccess
        action = detail.policyDetails.action if detail.policyDetails else None
        api = action.apiCallDetails.api if action and action.apiCallDetails else None
        return cls(
            finding_id=finding.id,
            finding_type=detail.type,
            severity=detail.severity.description,
            account_id=finding.account_id,
            region=finding.region,
            bucket=resources.s3Bucket.name,
            count=detail.count,
            created_at=_iso(detail.createdAt),
            updated_at=_iso(detail.updatedAt),
            effective_permission=(public.effectivePermission or "") if public else "",
            api=api or "",
            account_name=decision.account_name or "",
            team=decision.team or "",
            channel=decision.channel or "",
            title=detail.title,
            approvals_required=decision.approvals_required,
        )
