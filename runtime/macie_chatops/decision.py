"""decide(finding, config): what to do with one finding, and why, in words a person can read."""

from __future__ import annotations

from dataclasses import dataclass, replace

from macie_chatops.config import POLICY_TYPES, SENSITIVE_DATA_TYPES, Action, Config, Severity
from macie_chatops.finding import Finding, Rejection


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    account_name: str | None = None
    team: str | None = None
    channel: str | None = None
    approvers: tuple[str, ...] = ()
    approvals_required: int = 1  # different approvers a review needs, to remediate or to dismiss (§15)

    @property
    def posts_to_slack(self) -> bool:
        return self.action in (Action.AUTO, Action.REVIEW, Action.NOTIFY)


def _reject(reason: str) -> Decision:
    return Decision(Action.REJECT, reason)


def _no_action(finding_type: str, *, is_policy: bool) -> str:
    if is_policy:
        return f"policy finding {finding_type}: no action configured (ignored by default)"
    return f"no action configured for {finding_type}"


def decide(finding: Finding | Rejection, config: Config) -> Decision:
    """The whole policy: no I/O, no clock, no randomness; the same input always gives the same answer."""
    if isinstance(finding, Rejection):
        return _reject(finding.reason)
    account = config.account(finding.account_id)
    if account is None:
        return _reject(f"account {finding.account_id} is not listed in accounts.yaml")
    team = config.teams[account.team]

    def out(action: Action, reason: str) -> Decision:
        return Decision(action, reason, account.name, account.team, team.channel, team.approvers)

    if finding.region not in config.regions_for(account):
        return out(Action.REJECT, f"region {finding.region} is not configured for account {account.name}")
    detail = finding.detail
    # A policy finding concerns a bucket (no s3Object): its actions are listed like any type's, and none is
    # listed by default, so it is ignored unless accounts.yaml says otherwise (docs/architecture.md §18).
    is_policy = detail.category == "POLICY"
    if detail.type not in (POLICY_TYPES if is_policy else SENSITIVE_DATA_TYPES):
        return out(Action.IGNORE, f"unknown finding type {detail.type!r}")
    if is_policy and finding.bucket is None:
        return out(Action.REJECT, "policy finding without resourcesAffected.s3Bucket")
    if not is_policy and finding.s3_object is None:
        return out(Action.REJECT, "sensitive-data finding without resourcesAffected.s3Object")
    policy = config.policy_for(account)
    if detail.sample:
        if policy.include_samples:
            return out(Action.NOTIFY, "sample finding (include_samples): notify only, never moved")
        return out(Action.IGNORE, "sample finding")
    if detail.archived:
        return out(Action.IGNORE, "archived (suppressed) finding")
    severity = Severity(detail.severity.description)
    if severity.rank < policy.min_severity.rank:
        return out(Action.IGNORE, f"severity {severity} is below min_severity {policy.min_severity}")
    spec = policy.actions.get(detail.type)  # type: ignore[call-overload]
    if spec is None:
        return out(Action.IGNORE, _no_action(detail.type, is_policy=is_policy))
    if isinstance(spec, dict):
        if severity not in spec:
            return out(Action.IGNORE, f"{detail.type} at {severity}: severity not listed in the action map")
        action, why = Action(spec[severity]), f"{detail.type} at {severity}"
    else:
        action, why = Action(spec), detail.type
    decided = out(action, f"{why} -> {action} (policy for {account.name}, team {account.team})")
    return replace(decided, approvals_required=policy.approvals_for(severity))
