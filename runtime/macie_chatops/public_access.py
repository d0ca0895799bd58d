"""A policy finding's fix and its Undo, run by the remediator through the member role (docs/architecture.md §18).

The fix puts the bucket's public access block with all four settings on, after the configuration it replaces is
recorded on the finding (``public_access.previous``: the four settings as they were, or ``none``); the Undo puts
exactly that back (a partial configuration as it was, or no configuration at all), and refuses when the bucket's
configuration is no longer the one the fix put (someone changed it since: theirs is kept). Each step reads the
configuration back before its outcome is recorded. Account-level settings are never read or written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.errors import SlackError
from macie_chatops.session_policy import for_public_access
from macie_chatops.sessions import ACCESS_DENIED_CODES, AssumeRoleDeniedError
from macie_chatops.states import Failure, State

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PublicAccessBlockConfigurationTypeDef

    from macie_chatops.jobs import RemediationJob
    from macie_chatops.remediation import JobResult, RemediationDependencies
    from macie_chatops.store import FindingRecord, RecordUpdates

logger = Logger(service="macie-chatops-remediator", child=True)  # the remediator's logger, as configured there

SETTINGS: Final = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
ALL_BLOCKED: Final[Mapping[str, bool]] = dict.fromkeys(SETTINGS, True)
NO_CONFIGURATION: Final = "none"  # how the record spells "the bucket had no public access block"
NO_SUCH_CONFIGURATION: Final = "NoSuchPublicAccessBlockConfiguration"  # S3's error code for it

BLOCK_READY: Final = frozenset({State.APPROVED, State.FAILED})
BLOCK_DONE: Final = frozenset({State.PUBLIC_ACCESS_BLOCKED, State.UNDO_REQUESTED, State.UNDONE})

# A bucket's public access block: the four settings, or None when the bucket has no configuration at all.
Configuration = Mapping[str, bool] | None


def encode(configuration: Configuration) -> str:
    """The record's text for a configuration: ``none``, or the four settings as JSON (in S3's order)."""
    if configuration is None:
        return NO_CONFIGURATION
    return json.dumps({name: bool(configuration.get(name, False)) for name in SETTINGS})


def decode(text: str) -> Configuration:
    """The configuration the record's text names (raises ValueError for text ``encode`` never wrote)."""
    if text == NO_CONFIGURATION:
        return None
    values = json.loads(text)
    if (
        not isinstance(values, dict)
        or set(values) != set(SETTINGS)
        or not all(isinstance(v, bool) for v in values.values())
    ):
        raise ValueError(f"not a public access block configuration: {text[:200]!r}")
    return {name: values[name] for name in SETTINGS}


def describe(configuration: Configuration) -> str:
    """The configuration in words, for the message and the audit trail."""
    if configuration is None:
        return "no public access block (none of the four settings)"
    on = [name for name in SETTINGS if configuration.get(name)]
    if len(on) == len(SETTINGS):
        return "all four settings on"
    if not on:
        return "a public access block with all four settings off"
    return ", ".join(f"{name} {'on' if configuration.get(name) else 'off'}" for name in SETTINGS)


def _normalised(configuration: Configuration) -> Configuration:
    return None if configuration is None else {name: bool(configuration.get(name, False)) for name in SETTINGS}


@dataclass(frozen=True)
class BucketPublicAccess:
    """One bucket's public access block through the member role's S3 client (only this bucket, only its owner)."""

    s3: S3Client
    bucket: str
    account_id: str

    def read(self) -> Configuration:
        from botocore.exceptions import ClientError

        try:
            response = self.s3.get_public_access_block(Bucket=self.bucket, ExpectedBucketOwner=self.account_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == NO_SUCH_CONFIGURATION:
                return None
            raise
        settings: Mapping[str, Any] = response.get("PublicAccessBlockConfiguration", {})
        return {name: bool(settings.get(name, False)) for name in SETTINGS}  # an unset setting is off

    def write(self, configuration: Configuration) -> None:
        """Put ``configuration`` exactly; None removes the bucket's configuration (S3 checks the same permission,
        s3:PutBucketPublicAccessBlock, for both)."""
        if configuration is None:
            self.s3.delete_public_access_block(Bucket=self.bucket, ExpectedBucketOwner=self.account_id)
            return
        settings: PublicAccessBlockConfigurationTypeDef = {
            "BlockPublicAcls": bool(configuration.get("BlockPublicAcls", False)),
            "IgnorePublicAcls": bool(configuration.get("IgnorePublicAcls", False)),
            "BlockPublicPolicy": bool(configuration.get("BlockPublicPolicy", False)),
            "RestrictPublicBuckets": bool(configuration.get("RestrictPublicBuckets", False)),
        }
        self.s3.put_public_access_block(
            Bucket=self.bucket, ExpectedBucketOwner=self.account_id, PublicAccessBlockConfiguration=settings
        )


class _Refused(Exception):
    """The step cannot be done as asked (a permanent outcome, recorded with this reason)."""


# --------------------------------------------------------------------------------------------------------
# The fix
# --------------------------------------------------------------------------------------------------------


def block(job: RemediationJob, record: FindingRecord, deps: RemediationDependencies) -> JobResult:
    """APPROVED (or FAILED, a retry) -> PUBLIC_ACCESS_BLOCKED: record the configuration, then block all four."""
    from macie_chatops.remediation import JobResult, RemediationError, update_slack

    if record.state in BLOCK_DONE:
        update_slack(record, deps)
        return JobResult.ALREADY_DONE
    policy = record.policy
    if record.state not in BLOCK_READY or policy is None:
        logger.warning("block job for a finding that is not approved: acknowledged", extra={"state": record.state})
        return JobResult.STALE
    if not policy.fixable:
        return _failed(record, deps, f"{policy.finding_type} has no fix: blocking public access does not close it")
    approver = record.approver or job.requested_by
    try:
        clients = deps.sessions.clients(
            policy.account_id, policy.region, actor=approver, finding_id=record.finding_id,
            scope=for_public_access(policy.bucket, record.finding_id),  # this bucket's public access block only
        )  # fmt: skip
    except AssumeRoleDeniedError as exc:
        return _failed(record, deps, str(exc), failure=Failure.ROLE_DENIED)
    bucket = BucketPublicAccess(clients.s3, policy.bucket, policy.account_id)
    try:
        record, previous = _previous_recorded(record, bucket, deps)
        bucket.write(ALL_BLOCKED)
        after = bucket.read()
    except _RecordMovedOn as exc:
        logger.warning("block job acknowledged: the finding moved on", extra={"error": str(exc)})
        return JobResult.STALE
    except _aws_errors() as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if _denied(exc):  # a retry cannot fix a missing permission: say which, and how to get it
            return _failed(record, deps, f"{detail}. {_permission_fix(policy.account_id)}")
        _failed(record, deps, detail, failure=Failure.RETRYING)
        raise RemediationError(f"blocking public access for {record.finding_id} failed: {detail}") from exc
    if after != ALL_BLOCKED:
        return _failed(record, deps, f"after the block was put, the bucket reads {describe(after)}")
    logger.info("public access blocked", extra={"bucket": policy.bucket, "previous": encode(previous)})
    result = deps.store.transition(
        record.finding_id,
        expected=BLOCK_READY,
        target=State.PUBLIC_ACCESS_BLOCKED,
        actor=_actor(),
        event="public_access_blocked",
        updates={"outcome": "public_access_blocked", "outcome_detail": f"before: {describe(previous)}", "error": None},
        detail=f"s3://{policy.bucket}: all four settings on; before: {describe(previous)}",
    )
    if not result.applied:
        logger.warning("the record moved on before the block was recorded", extra={"state": result.record.state})
    update_slack(result.record, deps)
    return JobResult.PUBLIC_ACCESS_BLOCKED


def _previous_recorded(
    record: FindingRecord, bucket: BucketPublicAccess, deps: RemediationDependencies
) -> tuple[FindingRecord, Configuration]:
    """The configuration before the fix: the one an earlier attempt recorded (the bucket may already read as
    blocked, by that attempt), else read now and recorded before anything is written."""
    recorded = (record.public_access or {}).get("previous")
    if recorded is not None:
        return record, decode(recorded)
    previous = _normalised(bucket.read())
    result = deps.store.append_audit(
        record.finding_id,
        actor=_actor(),
        event="public_access_recorded",
        outcome="recorded",
        detail=f"s3://{bucket.bucket} before the fix: {describe(previous)}",
        updates={"public_access": {"previous": encode(previous), "bucket": bucket.bucket}},
        expected=BLOCK_READY,
    )
    if not result.applied:
        raise _RecordMovedOn(result.record.state)
    return result.record, previous


class _RecordMovedOn(Exception):
    def __init__(self, state: State) -> None:
        super().__init__(f"the finding moved on to {state.value} before the configuration was recorded")


def _failed(
    record: FindingRecord, deps: RemediationDependencies, detail: str, *, failure: Failure = Failure.PERMANENT
) -> JobResult:
    """Record a failed fix (APPROVED -> FAILED, or a FAILED record's new error) and show it."""
    from macie_chatops.remediation import JobResult, update_slack

    updates: RecordUpdates = {"outcome": failure.value, "outcome_detail": detail, "error": detail}
    if record.state is State.FAILED:
        result = deps.store.append_audit(
            record.finding_id, actor=_actor(), event="block_failed", outcome=State.FAILED.value, detail=detail,
            updates=updates, expected={State.FAILED},
        )  # fmt: skip
    else:
        result = deps.store.transition(
            record.finding_id, expected={State.APPROVED}, target=State.FAILED, actor=_actor(), event="block_failed",
            updates=updates, detail=detail,
        )  # fmt: skip
    logger.warning("blocking public access failed", extra={"error": detail[:500], "failure": failure.value})
    try:
        update_slack(result.record, deps)
    except SlackError:
        if not failure.retryable:
            raise
        logger.warning("Slack update of the failed attempt failed too")  # the job returns to the queue anyway
    return JobResult.FAILED


# --------------------------------------------------------------------------------------------------------
# The Undo
# --------------------------------------------------------------------------------------------------------


def undo(job: RemediationJob, record: FindingRecord, deps: RemediationDependencies) -> JobResult:
    """UNDO_REQUESTED -> UNDONE: put back exactly the configuration recorded before the fix (or remove the one
    the fix created); refused (back to PUBLIC_ACCESS_BLOCKED) when the bucket no longer reads as the fix left it."""
    from macie_chatops.remediation import JobResult, RemediationError, update_slack

    if record.state is State.UNDONE:
        update_slack(record, deps)
        return JobResult.ALREADY_DONE
    policy = record.policy
    if record.state is not State.UNDO_REQUESTED or policy is None:
        logger.warning("undo job for a finding with no undo requested: acknowledged", extra={"state": record.state})
        return JobResult.STALE
    requester = _undo_requested_by(record) or job.requested_by
    try:
        previous = decode((record.public_access or {})["previous"])
        clients = deps.sessions.clients(
            policy.account_id, policy.region, actor=requester, finding_id=record.finding_id,
            scope=for_public_access(policy.bucket, record.finding_id),  # this bucket's public access block only
        )  # fmt: skip
        bucket = BucketPublicAccess(clients.s3, policy.bucket, policy.account_id)
        _put_back(bucket, previous)
    except (KeyError, ValueError, AssumeRoleDeniedError, _Refused) as exc:
        reason = "no configuration was recorded before the fix" if isinstance(exc, KeyError) else str(exc)
        return _undo_refused(record, deps, reason)
    except _aws_errors() as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if _denied(exc):
            return _undo_refused(record, deps, f"{detail}. {_permission_fix(policy.account_id)}")
        deps.store.append_audit(
            record.finding_id, actor=_actor(), event="undo_attempt_failed", outcome="retrying", detail=detail,
            updates={"error": detail},
        )  # fmt: skip
        raise RemediationError(f"undo for {record.finding_id} failed: {detail}") from exc
    result = deps.store.transition(
        record.finding_id,
        expected={State.UNDO_REQUESTED},
        target=State.UNDONE,
        actor=_actor(),
        event="public_access_restored",
        updates={"outcome": "undone", "outcome_detail": f"restored: {describe(previous)}", "error": None},
        detail=f"s3://{policy.bucket} is again: {describe(previous)}",
    )
    if not result.applied:
        logger.warning("the record moved on before the undo was recorded", extra={"state": result.record.state})
    update_slack(result.record, deps)
    return JobResult.UNDONE


def _put_back(bucket: BucketPublicAccess, previous: Configuration) -> None:
    """Write ``previous`` unless the bucket already reads so (an earlier attempt did it); refuse when the bucket
    reads neither as the fix left it nor as ``previous``; check it reads ``previous`` afterwards."""
    current = bucket.read()
    if current == previous:
        return
    if current != ALL_BLOCKED:
        raise _Refused(
            f"the bucket's configuration changed since the fix (it is now {describe(current)}): not overwritten"
        )
    bucket.write(previous)
    after = bucket.read()
    if after != previous:
        raise _Refused(f"after the Undo the bucket reads {describe(after)}, not {describe(previous)}")


def _undo_refused(record: FindingRecord, deps: RemediationDependencies, reason: str) -> JobResult:
    from macie_chatops.remediation import JobResult, update_slack

    logger.warning("undo not done: public access stays blocked", extra={"reason": reason[:500]})
    result = deps.store.transition(
        record.finding_id,
        expected={State.UNDO_REQUESTED},
        target=State.PUBLIC_ACCESS_BLOCKED,
        actor=_actor(),
        event="undo_refused",
        updates={"error": f"undo not done: {reason}"},
        detail=reason,
    )
    update_slack(result.record, deps)
    return JobResult.UNDO_REFUSED


def _undo_requested_by(record: FindingRecord) -> str | None:
    """Who asked for the Undo (its SourceIdentity), from the audit entry into UNDO_REQUESTED."""
    for entry in reversed(record.audit):
        if entry.outcome == State.UNDO_REQUESTED.value:
            return entry.actor
    return None


def _actor() -> str:
    from macie_chatops.remediation import ACTOR

    return ACTOR


def _denied(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ACCESS_DENIED_CODES


def _permission_fix(account_id: str) -> str:
    return (
        "The member remediation role needs s3:GetBucketPublicAccessBlock and s3:PutBucketPublicAccessBlock on this "
        f"bucket: deploy the current {names.MEMBER_ROLES_STACKSET_NAME} StackSet to account {account_id}"
    )


def _aws_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)
