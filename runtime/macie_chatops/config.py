"""accounts.yaml as a validated, typed model.

One loader serves the CLI, the CDK app, the sandbox and the tests (YAML, with located errors), and the
Lambdas (the JSON document generated from it at synth time). Every mistake is reported as
``FILE:LINE: field: message``; nothing half-valid is ever returned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from macie_chatops.bundled_document import bundled_document, not_a_bundled_config
from macie_chatops.names import DEFAULT_REMEDIATION_ROLE_NAME, ENV_CONFIG_FILE

# Re-exported: the plain vocabulary lives apart from the models (docs/architecture.md §6).
from macie_chatops.vocabulary import POLICY_TYPES as POLICY_TYPES
from macie_chatops.vocabulary import PUBLIC_ACCESS_FIX_TYPES as PUBLIC_ACCESS_FIX_TYPES
from macie_chatops.vocabulary import SENSITIVE_DATA_TYPES as SENSITIVE_DATA_TYPES
from macie_chatops.vocabulary import Action as Action
from macie_chatops.vocabulary import Severity as Severity

DEFAULT_CONFIG_FILE: Final = "accounts.yaml"
_M = TypeVar("_M", bound=BaseModel)


ConfiguredAction = Literal["auto", "review", "notify", "ignore"]

FindingType = Literal[
    "SensitiveData:S3Object/Credentials",
    "SensitiveData:S3Object/CustomIdentifier",
    "SensitiveData:S3Object/Financial",
    "SensitiveData:S3Object/Multiple",
    "SensitiveData:S3Object/Personal",
    # Policy findings (a bucket, not an object): ignored unless listed (docs/architecture.md §18).
    "Policy:IAMUser/S3BlockPublicAccessDisabled",
    "Policy:IAMUser/S3BucketEncryptionDisabled",
    "Policy:IAMUser/S3BucketPublic",
    "Policy:IAMUser/S3BucketReplicatedExternally",
    "Policy:IAMUser/S3BucketSharedExternally",
    "Policy:IAMUser/S3BucketSharedWithCloudFront",
]

# Regions where the partition is "aws" and Macie exists; kept as a pattern so a new region needs no
# release, while typos such as "us-east1" or "eu-west" are caught.
_REGION_RE: Final = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx)-(gov-)?(north|south|east|west|central|northeast|southeast|northwest|southwest)-[1-9]$"
)

AccountId = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{12}$")]  # \d: any Unicode digit
Region = Annotated[str, StringConstraints(strict=True)]
ChannelId = Annotated[str, StringConstraints(strict=True)]


def _check_region(value: str) -> str:
    if not _REGION_RE.fullmatch(value):  # match() with $ accepts a trailing newline
        raise ValueError(f"{value!r} is not an AWS region name (e.g. us-east-1)")
    return value


class _Strict(BaseModel):
    # defer_build: the validation schemas are built on first validation, not at import, so the Lambdas (which
    # load the bundled config with `trusted_config`, never validating it) do not pay for them (docs/architecture.md §6).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


SeverityActions = dict[Severity, ConfiguredAction]
ActionSpec = ConfiguredAction | SeverityActions

# approvals_required: how many different approvers a review needs (docs/architecture.md §15): a number, or a
# severity -> number map (unlisted severities: DEFAULT_APPROVALS). Three at most: a team rarely has more on call.
DEFAULT_APPROVALS: Final = 1
MAX_APPROVALS: Final = 3
ApprovalCount = Annotated[StrictInt, Field(ge=1, le=MAX_APPROVALS)]
ApprovalsSpec = ApprovalCount | Annotated[dict[Severity, ApprovalCount], Field(min_length=1)]

# The seed's policy: credentials and card data are moved at once, everything else asks the team.
DEFAULT_ACTIONS: Final[dict[FindingType, ActionSpec]] = {
    "SensitiveData:S3Object/Credentials": "auto",
    "SensitiveData:S3Object/Financial": "auto",
    "SensitiveData:S3Object/Personal": "review",
    "SensitiveData:S3Object/Multiple": "review",
    "SensitiveData:S3Object/CustomIdentifier": "review",
}


class _PolicyNames(_Strict):
    """Turns severity names into Severity members in both policy shapes (see ``_severity_value``)."""

    @field_validator("min_severity", mode="before", check_fields=False)
    @classmethod
    def _severity_name(cls, value: Any) -> Any:
        return _severity_value(value)

    @field_validator("actions", mode="before", check_fields=False)
    @classmethod
    def _action_names(cls, value: Any) -> Any:
        return _normalise_actions(value)

    @field_validator("actions", mode="after", check_fields=False)
    @classmethod
    def _policy_finding_actions(cls, value: Any) -> Any:
        return _check_policy_finding_actions(value)

    @field_validator("approvals_required", mode="before", check_fields=False)
    @classmethod
    def _approvals_shape(cls, value: Any) -> Any:
        return _approvals_value(value)


class PolicyOverride(_PolicyNames):
    """A partial policy: only the keys given replace the level above (organisation, team, account)."""

    min_severity: Severity | None = None
    include_samples: StrictBool | None = None
    actions: dict[FindingType, ActionSpec] | None = None
    approvals_required: ApprovalsSpec | None = None


class Policy(_PolicyNames):
    """The effective policy for one account, after merging."""

    min_severity: Severity = Severity.LOW
    include_samples: StrictBool = False
    actions: dict[FindingType, ActionSpec] = Field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    approvals_required: ApprovalsSpec = 1

    def merged(self, override: PolicyOverride | None) -> Policy:
        if override is None:
            return self
        actions = dict(self.actions)
        actions.update(override.actions or {})
        # Both levels are validated already, so the merge is too: built without validating (no schema needed).
        return Policy.model_construct(
            min_severity=override.min_severity or self.min_severity,
            include_samples=self.include_samples if override.include_samples is None else override.include_samples,
            actions=actions,
            approvals_required=self._merged_approvals(override.approvals_required),
        )

    def approvals_for(self, severity: Severity) -> int:
        """How many different approvers a review of this severity needs (to remediate, and to dismiss)."""
        if isinstance(self.approvals_required, int):
            return self.approvals_required
        return self.approvals_required.get(severity, DEFAULT_APPROVALS)

    def _merged_approvals(self, override: ApprovalsSpec | None) -> ApprovalsSpec:
        # A number replaces the level above; a map replaces it per severity (like `actions` per finding type).
        if override is None:
            return self.approvals_required
        if isinstance(override, int):
            return override
        return {severity: override.get(severity, self.approvals_for(severity)) for severity in Severity}


def _severity_value(value: Any) -> Any:
    # Strings become Severity members so that models built in code and from YAML compare equal; an unknown
    # name is left for pydantic to report at its exact location.
    if isinstance(value, str) and value in Severity._value2member_map_:
        return Severity(value)
    return value


def _approvals_value(value: Any) -> Any:
    # Checked here rather than by the union's branches, which would each report the same mistake in their own
    # words; severity names become Severity members, as in `actions`.
    if value is None:
        return value
    if not isinstance(value, Mapping):
        return _approvals_count(value, "")
    if not value:
        raise ValueError("an empty map: give a number of approvers, or a number for at least one severity")
    counts: dict[Severity, int] = {}
    for severity, count in value.items():
        if not isinstance(severity, str) or severity not in Severity._value2member_map_:
            raise ValueError(f"{severity!r} is not one of 'Low', 'Medium' or 'High'")
        counts[Severity(severity)] = _approvals_count(count, f"{severity}: ")
    return counts


def _approvals_count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"{where}must be a number of approvers from 1 to {MAX_APPROVALS} (unquoted), or a severity -> number "
            f"map such as {{High: 2}}; got {value!r}"
        )
    if not 1 <= value <= MAX_APPROVALS:
        raise ValueError(f"{where}must be from 1 to {MAX_APPROVALS} approvers; got {value}")
    return value


def _normalise_actions(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    out: dict[Any, Any] = {}
    for finding_type, spec in value.items():
        if isinstance(spec, Mapping):
            out[finding_type] = {_severity_value(sev): act for sev, act in spec.items()}
        else:
            out[finding_type] = spec
    return out


def _check_policy_finding_actions(actions: Mapping[str, ActionSpec] | None) -> Mapping[str, ActionSpec] | None:
    """A policy finding may ask for approval (`review`) or act (`auto`) only when a fix exists for it."""
    for finding_type, spec in (actions or {}).items():
        if not finding_type.startswith("Policy:") or finding_type in PUBLIC_ACCESS_FIX_TYPES:
            continue
        chosen = set(spec.values()) if isinstance(spec, Mapping) else {spec}
        if chosen & {"review", "auto"}:
            raise ValueError(
                f"{finding_type} can only be notify or ignore: the one fix (blocking the bucket's public access) "
                f"does not close it; review and auto are for {', '.join(PUBLIC_ACCESS_FIX_TYPES)}"
            )
    return actions


class SecurityAccount(_Strict):
    id: AccountId
    region: Region

    _region = field_validator("region")(_check_region)


class MacieAdministrator(_Strict):
    """The account that is the organisation's Macie administrator, when it is not the security account.

    Findings of the administrator's jobs and of automated sensitive data discovery are published there (in
    the bucket's region), so that account's default bus forwards them to the central bus.
    """

    id: AccountId


class SlackSettings(_Strict):
    team_id: Annotated[str, StringConstraints(strict=True, pattern=r"^[TE][A-Z0-9]{2,}$")]
    secret_name: Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")]
    # Reviews left PENDING_APPROVAL (docs/architecture.md §14): a thread reply mentioning the approvers every
    # remind_after_hours, at most max_reminders times (0: none); past escalate_after_hours, one line in the daily
    # summary posted to escalation_channel (none without a channel).
    remind_after_hours: StrictInt = Field(default=24, ge=1, le=24 * 30)
    max_reminders: StrictInt = Field(default=2, ge=0, le=10)
    escalate_after_hours: StrictInt = Field(default=72, ge=1, le=24 * 90)
    escalation_channel: ChannelId | None = None
    # Finding floods (docs/architecture.md §22): findings of one channel, account, bucket, type and decision that
    # arrive within group_window_seconds of the last one form a group shown by one digest message (0: no groups,
    # every finding posted); a group takes members for group_max_age_seconds at most.
    group_window_seconds: StrictInt = Field(default=60, ge=0, le=900)
    group_max_age_seconds: StrictInt = Field(default=3600, ge=60, le=24 * 3600)
    # An AWS WAF web ACL in front of the Slack endpoint (docs/architecture.md §25, docs/deploy.md: its cost): it
    # drops requests without Slack's signature headers and rate-limits each source address before API Gateway's
    # throttle counts them.
    waf: StrictBool = False

    @field_validator("escalation_channel")
    @classmethod
    def _escalation_channel_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            raise ValueError(
                f"{value!r} is not a Slack channel id; use the id (C… or G…, from the channel's About panel), "
                "not its name"
            )
        return value


class QuarantineSettings(_Strict):
    retention_days: StrictInt = Field(default=90, ge=1, le=3650)
    encryption: Literal["kms"] = "kms"
    break_glass_principals: tuple[
        Annotated[str, StringConstraints(strict=True, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")], ...
    ] = ()
    multipart_threshold_mb: StrictInt = Field(default=256, ge=5, le=5120)


_APPROVER_RE: Final = re.compile(r"^[UWS][A-Z0-9]{2,}$")


class Team(_Strict):
    channel: ChannelId
    approvers: tuple[str, ...] = Field(min_length=1)
    policy: PolicyOverride | None = None

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        if value.startswith("#") or not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            raise ValueError(
                f"{value!r} is not a Slack channel id; use the id (C… or G…, from the channel's About panel), "
                "not its name"
            )
        return value

    @field_validator("approvers")
    @classmethod
    def _approver_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for approver in value:
            if not isinstance(approver, str) or not _APPROVER_RE.fullmatch(approver):
                raise ValueError(
                    f"{approver!r} is not a Slack user id (U…/W…) or user-group id (S…); names and emails do not work"
                )
        if len(set(value)) != len(value):
            raise ValueError("an approver is listed twice")
        return value

    @property
    def approver_users(self) -> frozenset[str]:
        return frozenset(a for a in self.approvers if not a.startswith("S"))

    @property
    def approver_groups(self) -> frozenset[str]:
        return frozenset(a for a in self.approvers if a.startswith("S"))


class Account(_Strict):
    id: AccountId
    name: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
    team: str
    regions: tuple[Region, ...] | None = None
    policy: PolicyOverride | None = None

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            for region in value:
                _check_region(region)
        return value


MAX_EXEMPTION_REASON_CHARS: Final = 500
MAX_EXEMPTION_DAYS_AHEAD: Final = 366  # "at most one year ahead", a leap year included


class ConfigExemption(_Strict):
    """An exemption written in accounts.yaml: findings of ``account`` in ``bucket`` (under ``prefix``, of
    ``types``) are ignored until the end of ``until`` (UTC), with ``reason`` (docs/architecture.md §16)."""

    account: AccountId
    bucket: Annotated[str, StringConstraints(strict=True)]
    prefix: Annotated[str, StringConstraints(strict=True)] | None = None
    types: tuple[FindingType, ...] | None = Field(default=None, min_length=1)
    until: date
    reason: Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]

    @field_validator("until", mode="before")
    @classmethod
    def _a_date(cls, value: Any) -> Any:
        # YAML reads 2027-03-01 as a date and 2027-03-01T10:00:00 as a datetime: only whole days are meant.
        if isinstance(value, datetime) or not isinstance(value, date | str):
            raise ValueError("must be a date (YYYY-MM-DD): the exemption runs to the end of that day, UTC")
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        from macie_chatops.finding import bucket_name_problem

        problem = bucket_name_problem(value)
        if problem is not None:
            raise ValueError(f"{value!r}: {problem}")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        from macie_chatops.finding import object_key_problem

        if value is None:
            return value
        if not value.endswith("/") or value.startswith("/"):
            raise ValueError(
                f"{value!r}: a prefix is a folder, ending with '/' and not starting with one (e.g. 'exports/2024/'), "
                "so 'exports/' never covers 'exports-old/'"
            )
        problem = object_key_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if len(value) > MAX_EXEMPTION_REASON_CHARS:
            raise ValueError(f"at most {MAX_EXEMPTION_REASON_CHARS} characters (got {len(value)})")
        return value


class Deployment(_Strict):
    permission_model: Literal["SERVICE_MANAGED", "SELF_MANAGED"] = "SERVICE_MANAGED"
    call_as: Literal["DELEGATED_ADMIN", "SELF"] = "DELEGATED_ADMIN"
    organizational_units: tuple[
        Annotated[
            str, StringConstraints(strict=True, pattern=r"^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$")
        ],
        ...,
    ] = ()
    remediation_role_name: Annotated[str, StringConstraints(strict=True, pattern=r"^[\w+=,.@-]{1,64}$")] = (
        DEFAULT_REMEDIATION_ROLE_NAME
    )
    # StackSets auto-deployment (SERVICE_MANAGED only; docs/architecture.md §19). Off: accounts.yaml is the only
    # source of targets. On: StackSets deploys to any account added to a target OU, listed or not.
    auto_deploy: StrictBool = False

    @model_validator(mode="after")
    def _targets(self) -> Deployment:
        if self.permission_model == "SERVICE_MANAGED" and not self.organizational_units:
            raise ValueError("SERVICE_MANAGED needs organizational_units (the OUs the StackSets target)")
        if self.auto_deploy and self.permission_model != "SERVICE_MANAGED":
            raise ValueError("auto_deploy applies to SERVICE_MANAGED only (SELF_MANAGED has no auto-deployment)")
        return self


class SecurityHubSettings(_Strict):
    """Security Hub in the loop (docs/architecture.md §17): each outcome sets the Macie finding's workflow status
    in Security Hub, from the security account (it must be the Security Hub administrator), in the finding's
    region. Off by default: nothing is deployed for it then."""

    enabled: StrictBool = False


class ReconcileSettings(_Strict):
    """The reconciler (docs/architecture.md §13): how often it lists the Macie administrator's findings, and how far
    back a region's first run looks (Macie keeps findings for 90 days)."""

    every_minutes: StrictInt = Field(default=60, ge=5, le=24 * 60)
    backfill_days: StrictInt = Field(default=7, ge=1, le=90)


class Config(_Strict):
    version: Literal[1]
    organization_id: Annotated[str, StringConstraints(strict=True, pattern=r"^o-[a-z0-9]{10,32}$")]
    security_account: SecurityAccount
    macie_administrator: MacieAdministrator | None = None
    regions: tuple[Region, ...] = Field(min_length=1)
    slack: SlackSettings
    policy: Policy = Field(default_factory=Policy)
    quarantine: QuarantineSettings = Field(default_factory=QuarantineSettings)
    teams: dict[Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")], Team] = Field(
        min_length=1
    )
    accounts: tuple[Account, ...] = Field(min_length=1)
    deployment: Deployment
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    exemptions: tuple[ConfigExemption, ...] = ()
    security_hub: SecurityHubSettings = Field(default_factory=SecurityHubSettings)

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for region in value:
            _check_region(region)
        if len(set(value)) != len(value):
            raise ValueError("a region is listed twice")
        return value

    @property
    def macie_administrator_id(self) -> str:
        """The Macie administrator account: ``macie_administrator.id``, by default the security account."""
        return self.security_account.id if self.macie_administrator is None else self.macie_administrator.id

    @property
    def administrator_is_security_account(self) -> bool:
        """True when the security account (the pipeline's) is also the Macie administrator (the default)."""
        return self.macie_administrator_id == self.security_account.id

    def administrator_forwarding_regions(self) -> tuple[str, ...]:
        """The listed regions where the Macie administrator's default bus needs a forwarding rule of its own: all
        of them, except those where the administrator is also a member (its member rule forwards that bus)."""
        member = self.account(self.macie_administrator_id)
        covered = set(self.regions_for(member)) if member is not None else set()
        return tuple(region for region in self.regions if region not in covered)

    @property
    def accounts_by_id(self) -> dict[str, Account]:
        return {account.id: account for account in self.accounts}

    def account(self, account_id: str) -> Account | None:
        return self.accounts_by_id.get(account_id)

    def policy_for(self, account: Account) -> Policy:
        """Organisation defaults, then the team's override, then the account's."""
        team = self.teams[account.team]
        return self.policy.merged(team.policy).merged(account.policy)

    def regions_for(self, account: Account) -> tuple[str, ...]:
        return account.regions if account.regions is not None else self.regions

    def to_json(self) -> str:
        """The document bundled with the Lambda asset (environment variables cannot hold 1,000 accounts)."""
        return self.model_dump_json(exclude_none=True)


# --------------------------------------------------------------------------------------------------------
# Errors with locations
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        line = "" if self.line is None else f"{self.line}:"
        return f"{self.file}:{line} {self.field}: {self.message}"


class ConfigError(Exception):
    """accounts.yaml (or the bundled config JSON) is not valid; ``issues`` says where and why."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.field))
        super().__init__("\n".join(str(i) for i in self.issues))


Path_ = tuple[str | int, ...]


def _field_name(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


@dataclass
class _Located:
    """Line numbers for each path in the YAML document, and which scalars were written unquoted."""

    lines: dict[Path_, int]
    plain_scalars: set[Path_]

    def line_for(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _syntax_issue(exc: Any, text: str, file: str) -> ConfigIssue:
    """A YAML syntax error at the line to fix: where an unclosed bracket or quote was opened, not the line
    where the parser noticed (for an unclosed ``[``, the next key's line)."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    opened = _unclosed_opening(exc, text)
    if opened is None:
        return ConfigIssue(file, line, "(syntax)", f"YAML syntax error: {problem}")
    what, opened_line = opened
    noticed = f" (noticed on line {line})" if line is not None and line != opened_line else ""
    return ConfigIssue(
        file, opened_line, "(syntax)", f"YAML syntax error: {what} opened here is not closed: {problem}{noticed}"
    )


def _unclosed_opening(exc: Any, text: str) -> tuple[str, int] | None:
    """The innermost quote, ``[`` or ``{`` still open where the parser failed, and its line; None if none."""
    import yaml

    context_mark = getattr(exc, "context_mark", None)
    if getattr(exc, "context", None) == "while scanning a quoted scalar" and context_mark is not None:
        return "the quoted string", context_mark.line + 1
    problem_mark = getattr(exc, "problem_mark", None)
    if problem_mark is None:
        return None
    starts = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)
    ends = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)
    open_brackets: list[Any] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= problem_mark.index:
                break
            if isinstance(token, starts):
                open_brackets.append(token)
            elif isinstance(token, ends) and open_brackets:
                open_brackets.pop()
    except yaml.YAMLError:
        pass  # the tokens read before the scanner failed are the ones that count
    if not open_brackets:
        return None
    innermost = open_brackets[-1]
    bracket = "[" if isinstance(innermost, yaml.FlowSequenceStartToken) else "{"
    return f"the '{bracket}'", innermost.start_mark.line + 1


def _compose(text: str, file: str) -> tuple[Any, _Located]:
    import yaml  # only where YAML is read: the Lambda reads the bundled JSON

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_syntax_issue(exc, text, file)]) from None
    located = _Located(lines={}, plain_scalars=set())
    issues: list[ConfigIssue] = []
    if root is None:
        raise ConfigError([ConfigIssue(file, 1, "(document)", "the file is empty")])

    constructor = yaml.SafeLoader("")

    def build(node: yaml.Node, path: Path_) -> Any:
        located.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool):
                    issues.append(
                        ConfigIssue(file, key_node.start_mark.line + 1, _field_name(path), "mapping keys must be plain")
                    )
                    continue
                key_path = (*path, str(key))
                if str(key) in out:
                    issues.append(
                        ConfigIssue(file, key_node.start_mark.line + 1, _field_name(key_path), "duplicate key")
                    )
                    continue
                located.lines[key_path] = key_node.start_mark.line + 1
                out[str(key) if not isinstance(key, str) else key] = build(value_node, key_path)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.style is None:
            located.plain_scalars.add(path)
        return constructor.construct_object(node, deep=True)

    data = build(root, ())
    if issues:
        raise ConfigError(issues)
    return data, located


def _account_id_paths(data: Any) -> Iterator[Path_]:
    if isinstance(data, dict):
        yield ("security_account", "id")
        yield ("macie_administrator", "id")
        accounts = data.get("accounts")
        if isinstance(accounts, list):
            for index in range(len(accounts)):
                yield ("accounts", index, "id")
        exemptions = data.get("exemptions")
        if isinstance(exemptions, list):
            for index in range(len(exemptions)):
                yield ("exemptions", index, "account")


def _friendly(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (a typo?)"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"{error['msg'].replace('Input should be', 'must be')}; got {error.get('input')!r}"
    if kind == "string_pattern_mismatch":
        return f"{error.get('input')!r} does not have the expected form ({error['ctx']['pattern']})"
    if kind == "enum":
        return f"{error.get('input')!r} is not one of {error['ctx']['expected']}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "string_type" and isinstance(error.get("input"), int | float):
        return f"must be a quoted string; YAML read {error.get('input')!r} as a number"
    return str(error["msg"])


def _pydantic_issues(exc: ValidationError, file: str, located: _Located | None) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors():
        loc: list[str | int] = []
        for part in error["loc"]:
            # Union branches add their type name to the location ("str", "dict[...]"); they are noise.
            if isinstance(part, str) and (part in {"str", "int"} or "[" in part or part.startswith("function-")):
                continue
            loc.append(part)
        path = tuple(loc)
        line = located.line_for(path) if located else None
        issues.append(ConfigIssue(file, line, _field_name(path), _friendly(error)))
    # One wrong value in a union gives one error per branch; keep one line per field and message.
    unique: dict[tuple[str, str], ConfigIssue] = {}
    for issue in issues:
        unique.setdefault((issue.field, issue.message), issue)
    return list(unique.values())


def _cross_checks(config: Config, file: str, located: _Located | None) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []

    def add(path: Path_, message: str) -> None:
        issues.append(ConfigIssue(file, located.line_for(path) if located else None, _field_name(path), message))

    seen: dict[str, int] = {}
    for index, account in enumerate(config.accounts):
        if account.id in seen:
            add(
                ("accounts", index, "id"),
                f"account {account.id} is listed twice (first at accounts[{seen[account.id]}])",
            )
        else:
            seen[account.id] = index
        if account.team not in config.teams:
            known = ", ".join(sorted(config.teams))
            add(("accounts", index, "team"), f"team {account.team!r} is not defined under teams (known: {known})")
        if account.regions is not None:
            for r_index, region in enumerate(account.regions):
                if region not in config.regions:
                    add(("accounts", index, "regions", r_index), f"{region} is not in the top-level regions list")
    for path, message in _approver_shortfalls(config):
        add(path, message)
    if config.security_account.region not in config.regions:
        add(("security_account", "region"), "the home region must also be listed in regions")
    for index, exemption in enumerate(config.exemptions):
        if config.account(exemption.account) is None:
            add(("exemptions", index, "account"), f"account {exemption.account} is not listed under accounts")
    return issues


def _exemption_dates(config: Config, file: str, located: _Located | None, today: date) -> list[ConfigIssue]:
    """An exemption ends at most one year ahead: a longer one is a permanent suppression in disguise."""
    last = today + timedelta(days=MAX_EXEMPTION_DAYS_AHEAD)
    issues = []
    for index, exemption in enumerate(config.exemptions):
        if exemption.until > last:
            path: Path_ = ("exemptions", index, "until")
            issues.append(
                ConfigIssue(
                    file,
                    located.line_for(path) if located else None,
                    _field_name(path),
                    f"{exemption.until} is more than one year ahead (at most {last.isoformat()})",
                )
            )
    return issues


def expired_exemptions(config: Config, now: datetime | None = None) -> list[tuple[int, ConfigExemption]]:
    """The exemptions of accounts.yaml that have run out (after the end of their ``until`` day, UTC)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return [(index, e) for index, e in enumerate(config.exemptions) if e.until < today]


def _approver_shortfalls(config: Config) -> Iterator[tuple[Path_, str]]:
    """Teams that could never complete a review: fewer listed users than its accounts' approvals_required,
    and no user group (a group's members are only known at click time, so a group always might)."""
    for team_name, team in config.teams.items():
        if team.approver_groups:
            continue
        needs = [
            (config.policy_for(account).approvals_for(severity), account.name)
            for account in config.accounts
            if account.team == team_name
            for severity in Severity
            if severity.rank >= config.policy_for(account).min_severity.rank
        ]
        needed, account_name = max(needs, default=(DEFAULT_APPROVALS, ""))
        if needed > len(team.approver_users):
            yield (
                ("teams", team_name, "approvers"),
                f"account {account_name} needs {needed} different approvers (approvals_required) but team "
                f"{team_name} lists {len(team.approver_users)} and no user group: no review could be completed",
            )


def parse_config(text: str, file: str = DEFAULT_CONFIG_FILE, *, now: datetime | None = None) -> Config:
    """Validate accounts.yaml text; raise ConfigError listing every problem found (``now``: for the
    exemptions' one-year limit; default the current time)."""
    data, located = _compose(text, file)
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, "(document)", "the top level must be a mapping")])
    issues: list[ConfigIssue] = []
    for path in _account_id_paths(data):
        value: Any = data
        for part in path:
            if isinstance(value, dict) and isinstance(part, str):
                value = value.get(part)
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                value = None
                break
        if value is not None and path in located.plain_scalars:
            issues.append(
                ConfigIssue(
                    file,
                    located.line_for(path),
                    _field_name(path),
                    f'account ids must be quoted ("{value}"): YAML reads unquoted digits as a number '
                    "and drops leading zeros",
                )
            )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        issues.extend(i for i in _pydantic_issues(exc, file, located) if i.field not in {x.field for x in issues})
        raise ConfigError(issues) from None
    issues.extend(_cross_checks(config, file, located))
    issues.extend(_exemption_dates(config, file, located, (now or datetime.now(UTC)).astimezone(UTC).date()))
    if issues:
        raise ConfigError(issues)
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, None, "(file)", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(file, None, "(file)", "not UTF-8 text")]) from None
    return parse_config(text, file)


def config_path(explicit: str | None = None) -> Path:
    """``--config`` / CDK context, else $MACIE_CHATOPS_CONFIG, else accounts.yaml in the working directory."""
    return Path(explicit or os.environ.get(ENV_CONFIG_FILE) or DEFAULT_CONFIG_FILE)


def config_from_json(text: str, source: str = "config.json") -> Config:
    """The bundled document the Lambdas read (generated from a validated accounts.yaml)."""
    try:
        config = Config.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(_pydantic_issues(exc, source, None)) from None
    issues = _cross_checks(config, source, None)
    if issues:
        raise ConfigError(issues)
    return config


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to check accounts.yaml (committed as accounts.schema.json)."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/macie-chatops/macie-chatops/accounts.schema.json"
    schema["title"] = "macie-chatops accounts.yaml"
    return schema


def load_bundled_config() -> Config:
    """The Lambdas' config: $MACIE_CHATOPS_CONFIG_JSON, else config.json bundled beside the package.

    Built with :func:`trusted_config`, not validated again: the document is our own synthesized artifact, written
    by ``Config.to_json`` from a config validated at synth time (or by the sandbox from one it validated)."""
    path, document = bundled_document()
    try:
        return trusted_config(document)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # Not the document Config.to_json writes: say where, and what broke.
        not_a_bundled_config(path, exc)


def trusted_config(data: Mapping[str, Any]) -> Config:
    """The Config ``Config.to_json`` wrote, built without validation (equal to ``config_from_json`` of it).

    Validation happened when the document was written; building the models' validation schemas for the same
    document again would cost a Lambda's cold start most of a ``import boto3`` (docs/architecture.md §6). Only
    for that artifact: anything else comes through ``parse_config`` or ``config_from_json``."""
    return _construct(Config, data)


def _construct(model: type[_M], data: Mapping[str, Any]) -> _M:
    fields = model.model_fields
    values = {name: _built(fields[name].annotation, value) for name, value in data.items()}
    return model.model_construct(**values)


def _built(annotation: Any, value: Any) -> Any:
    """``value`` (JSON) as the field's type holds it: models, tuples, enum members (keys too) and dates."""
    import types
    import typing

    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _built(typing.get_args(annotation)[0], value)
    if origin in (typing.Union, types.UnionType):
        # X | None, or a number-or-map spec (ApprovalsSpec, ActionSpec): the JSON's shape says which member.
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        shaped = [a for a in members if _holds_mapping(a) == isinstance(value, Mapping)]
        return _built((shaped or members)[0], value)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        return tuple(_built(item, v) for v in value)
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        return {_built(key_type, k): _built(value_type, v) for k, v in value.items()}
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return _construct(annotation, value)
        if issubclass(annotation, StrEnum):
            return annotation(value)
        if annotation is date:
            return date.fromisoformat(value)
    return value


def _holds_mapping(annotation: Any) -> bool:
    import typing

    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _holds_mapping(typing.get_args(annotation)[0])
    return origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel))
