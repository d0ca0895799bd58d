"""Security Hub in the loop: each outcome recorded on a finding sets the workflow status of the same Macie finding
in Security Hub (docs/architecture.md §17).

The updater reads the state table's stream, so it runs after the outcome is recorded and never inside the
handler that recorded it: a Security Hub outage cannot delay, fail or undo a quarantine. Each attempt, updated
or failed, is audited on the finding; a failed one raises, so the stream's event source mapping retries it (then
keeps it in the dead-letter queue), and the failures are counted for the alarm.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

from aws_lambda_powertools import Logger

from macie_chatops.errors import MacieChatOpsError
from macie_chatops.job_queue import AUTO_APPROVER
from macie_chatops.names import SECURITY_HUB_UPDATES_METRIC, STATE_TABLE_KEY
from macie_chatops.ports import Counter
from macie_chatops.states import State
from macie_chatops.store import CLAIM_ITEM_TYPE, FindingRecord, FindingStore
from macie_chatops.summary import OBJECT_CLAIM_PREFIX

logger = Logger(service="macie-chatops-security-hub", child=True)  # the updater handler's logger

ACTOR: Final = "security-hub-updater"
UPDATED_BY: Final = "macie-chatops"  # the note's UpdatedBy in Security Hub
NOTE_LIMIT: Final = 512  # Security Hub keeps at most 512 characters of a note
# The token a click or form submission leaves at the end of its audit detail (job_request.StateChange.token).
_CLICK_TOKEN: Final = re.compile(r",? *(click|form) [0-9a-f]{16}$")


def macie_product_arn(region: str) -> str:
    """The ProductArn of Macie's findings in Security Hub (the product is regional, owned by no account)."""
    partition = "aws-us-gov" if region.startswith("us-gov-") else "aws"  # the config's regions: aws or GovCloud
    return f"arn:{partition}:securityhub:{region}::product/aws/macie"


class Workflow(StrEnum):
    """Security Hub's workflow statuses (ASFF ``Workflow.Status``)."""

    NEW = "NEW"
    NOTIFIED = "NOTIFIED"
    RESOLVED = "RESOLVED"
    SUPPRESSED = "SUPPRESSED"


@dataclass(frozen=True)
class WorkflowUpdate:
    """One BatchUpdateFindings request: the Macie finding (same id in Security Hub), its region, status and note."""

    finding_id: str
    region: str
    status: Workflow
    note: str
    state: State  # the outcome it reports

    @property
    def identifier(self) -> dict[str, str]:
        return {"Id": self.finding_id, "ProductArn": macie_product_arn(self.region)}

    def request(self) -> dict[str, Any]:
        """The BatchUpdateFindings arguments."""
        return {
            "FindingIdentifiers": [self.identifier],
            "Workflow": {"Status": self.status.value},
            "Note": {"Text": self.note, "UpdatedBy": UPDATED_BY},
        }


def _clip(text: str) -> str:
    text = " ".join(text.split())  # one line: the console shows the note as a paragraph
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "…"


def _approver(record: FindingRecord) -> str:
    if record.approver in (None, "", AUTO_APPROVER):
        return "by policy (auto)"
    return f"by Slack user {record.approver}"


def _quarantine_location(record: FindingRecord) -> str:
    where = record.quarantine or {}
    location = f"s3://{where.get('bucket', '?')}/{where.get('key', '?')}"
    version = where.get("version_id")
    return f"{location} (version {version})" if version else location


def _entry(record: FindingRecord, state: State | None = None) -> tuple[str, str, str]:
    """Who last moved the finding into ``state`` (default: its current state), when, and the detail they gave."""
    wanted = (state or record.state).value
    entry = next((e for e in reversed(record.audit) if e.outcome == wanted), None)
    return (entry.actor, entry.at, entry.detail) if entry is not None else ("?", record.updated_at, "")


def _note(record: FindingRecord) -> tuple[Workflow, str] | None:
    """The workflow status and note for the record's state; None for a state Security Hub is not told about."""
    state, team = record.state, record.team or "?"
    if state is State.QUARANTINED:
        return Workflow.RESOLVED, (
            f"Quarantined by macie-chatops, approved {_approver(record)}; the object is now at "
            f"{_quarantine_location(record)} in account {record.account_id}."
        )
    if state is State.DISMISSED:
        actor, at, detail = _entry(record)
        reason = record.outcome_detail or _CLICK_TOKEN.sub("", detail)  # the dismissal form's reason is in it
        said = f": {reason}" if reason else ""
        return Workflow.SUPPRESSED, f"Dismissed by {actor} (team {team}) at {at}, no quarantine{said}."
    if state is State.NOTIFIED:
        return Workflow.NOTIFIED, f"Team {team} was told in Slack (policy: notify); macie-chatops takes no action."
    if state is State.PENDING_APPROVAL:
        return Workflow.NOTIFIED, f"Awaiting approval by team {team} in Slack (macie-chatops)."
    if state is State.BLOCKED:
        return Workflow.NEW, (
            f"Not quarantined by macie-chatops ({record.outcome or 'blocked'}): {record.outcome_detail or '?'}."
        )
    if state is State.FAILED:
        fix = "Blocking the bucket's public access" if record.policy is not None else "Quarantine"
        return Workflow.NEW, (
            f"{fix} by macie-chatops failed ({record.outcome or 'failed'}): "
            f"{record.error or record.outcome_detail or '?'}."
        )
    if state in (State.PUBLIC_ACCESS_BLOCKED, State.UNDONE):
        return _public_access_note(record)
    if state is State.RESTORED:
        _, at, _ = _entry(record)
        requester, _, _ = _entry(record, State.RESTORE_REQUESTED)
        return Workflow.NOTIFIED, (
            f"Restored from quarantine by macie-chatops at {at} (requested by {requester}): the object is back "
            "where Macie found it, so the finding is open again."
        )
    return None


def _public_access_note(record: FindingRecord) -> tuple[Workflow, str]:
    """A policy finding's fix (docs/architecture.md §18): RESOLVED while the block holds, open again once undone."""
    bucket = f"s3://{record.policy.bucket}" if record.policy is not None else "the bucket"
    if record.state is State.PUBLIC_ACCESS_BLOCKED:
        return Workflow.RESOLVED, (
            f"Public access to {bucket} blocked by macie-chatops (all four settings), approved {_approver(record)}; "
            f"the configuration {record.outcome_detail or 'before it'} is recorded, and Undo puts it back."
        )
    _, at, _ = _entry(record)
    requester, _, _ = _entry(record, State.UNDO_REQUESTED)
    return Workflow.NOTIFIED, (
        f"The public access block of {bucket} was undone by macie-chatops at {at} (requested by {requester}), "
        f"{record.outcome_detail or 'as before the fix'}: the finding is open again."
    )


def _region(record: FindingRecord) -> str:
    """The finding's region: its object's, or (a policy finding) its bucket's."""
    if record.summary is not None:
        return record.summary.region
    return record.policy.region if record.policy is not None else ""


def update_for(record: FindingRecord) -> WorkflowUpdate | None:
    """What Security Hub is told about the record's current state (None: nothing, or no region to tell it in)."""
    note, region = _note(record), _region(record)
    if note is None or not region:
        return None
    status, text = note
    return WorkflowUpdate(record.finding_id, region, status, _clip(text), record.state)


# --------------------------------------------------------------------------------------------------------
# The state table's stream
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateChange:
    """A finding record entering a state, from one stream record (``previous`` is None for a new record)."""

    previous: State | None
    record: FindingRecord


def change_of(stream_record: Mapping[str, Any]) -> StateChange | None:
    """The state change a DynamoDB stream record shows; None when it shows none (a write that kept the state,
    a deletion, an object-version claim, any other item that is not a finding)."""
    images = stream_record.get("dynamodb") or {}
    new, old = images.get("NewImage"), images.get("OldImage")
    if not new:
        return None
    key = new.get(STATE_TABLE_KEY, {}).get("S", "")
    if key.startswith(OBJECT_CLAIM_PREFIX) or new.get("item_type", {}).get("S") == CLAIM_ITEM_TYPE:
        return None
    if "#" in key:  # not a finding (finding ids never hold '#'): a Slack pace, a group, an account's exemptions...
        return None
    record = FindingRecord.from_item(new)
    previous = State(old["state"]["S"]) if old and "state" in old else None
    if previous is record.state:
        return None
    return StateChange(previous, record)


# --------------------------------------------------------------------------------------------------------
# Sending, and recording what happened
# --------------------------------------------------------------------------------------------------------


class SecurityHubApi(Protocol):
    """The one call of boto3's ``securityhub`` client the updater makes."""

    def batch_update_findings(self, **kwargs: Any) -> Mapping[str, Any]: ...


class SecurityHubUpdateError(MacieChatOpsError):
    """Security Hub did not update the finding (refused it, or could not be reached); the update is retried."""


@dataclass(frozen=True)
class SyncDependencies:
    store: FindingStore
    security_hub: Callable[[str], SecurityHubApi]  # the client for a region
    metrics: Counter


class SyncResult(StrEnum):
    UPDATED = "updated"
    SKIPPED = "skipped"  # no state change, or a state Security Hub is not told about


def _aws_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def send(client: SecurityHubApi, update: WorkflowUpdate) -> None:
    """BatchUpdateFindings for one finding; raises SecurityHubUpdateError when Security Hub did not process it."""
    response = client.batch_update_findings(**update.request())
    for unprocessed in response.get("UnprocessedFindings") or ():
        raise SecurityHubUpdateError(
            f"{unprocessed.get('ErrorCode', 'Unprocessed')}: {unprocessed.get('ErrorMessage', '')}".strip()
        )


def sync(change: StateChange, deps: SyncDependencies) -> SyncResult:
    """Tell Security Hub the outcome ``change`` records; raises SecurityHubUpdateError (after auditing it) when
    Security Hub did not take it, so the stream record is retried."""
    update = update_for(change.record)
    if update is None:
        return SyncResult.SKIPPED
    logger.thread_safe_append_keys(finding_id=update.finding_id, correlation_id=update.finding_id)
    failures: tuple[type[BaseException], ...] = (SecurityHubUpdateError, *_aws_errors())
    try:
        send(deps.security_hub(update.region), update)
    except failures as exc:
        detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        # One dimension set for every failure, the one the alarm watches.
        deps.metrics.count(SECURITY_HUB_UPDATES_METRIC, result="failed")
        logger.warning(
            "Security Hub update failed: retried by the stream", extra={"status": update.status.value, "error": detail}
        )
        _audit(deps.store, update, failed=detail)
        raise SecurityHubUpdateError(f"finding {update.finding_id} -> {update.status.value}: {detail}") from exc
    deps.metrics.count(SECURITY_HUB_UPDATES_METRIC, result="updated", status=update.status.value)
    logger.info("Security Hub updated", extra={"status": update.status.value, "state": update.state.value})
    _audit(deps.store, update, failed=None)
    return SyncResult.UPDATED


def _audit(store: FindingStore, update: WorkflowUpdate, *, failed: str | None) -> None:
    """Audit the attempt on the finding (its outcome is never a state name, so it is never read as an entry
    into a state). A failed audit of a failed attempt is logged: the Security Hub error is the one raised."""
    event = "security_hub_update_failed" if failed else "security_hub_updated"
    outcome = f"securityhub_{'failed' if failed else 'updated'}"
    detail = f"{update.state.value} -> {update.status.value} in {update.region}: " + (failed or update.note)
    try:
        store.append_audit(update.finding_id, actor=ACTOR, event=event, outcome=outcome, detail=detail)
    except Exception:
        if failed is None:
            raise  # the update is sent again on the retry; it is idempotent
        logger.exception("could not audit the failed Security Hub update")
