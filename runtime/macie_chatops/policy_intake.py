"""The intake's part for policy findings: one record and one message per finding, whatever its count.

Macie reports a policy finding again under the same id with a higher ``count`` (docs/architecture.md §18). The
new count is recorded first (``FindingStore.record_occurrence``: counts only grow), then the finding's message is
updated in place under the intake lease like any other intake step, and the count it shows is recorded
(``policy_shown_count``), so a Slack failure is retried by the redelivery and never shown twice.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from aws_lambda_powertools import Logger

from macie_chatops.config import Action
from macie_chatops.errors import SlackError, SlackMessageNotFoundError
from macie_chatops.finding import Finding, Rejection
from macie_chatops.job_queue import AUTO_APPROVER
from macie_chatops.policy_summary import PolicySummary
from macie_chatops.states import State

if TYPE_CHECKING:
    from macie_chatops.decision import Decision
    from macie_chatops.intake import IntakeDependencies
    from macie_chatops.slack_messages import SlackMessage
    from macie_chatops.store import FindingRecord

logger = Logger(service="macie-chatops-finding", child=True)

ACTOR: Final = "finding-handler"


def summary_of(parsed: Finding | Rejection, decision: Decision) -> PolicySummary | None:
    """The policy summary of a policy finding that names its bucket (None for anything else)."""
    if not isinstance(parsed, Finding) or parsed.detail.category != "POLICY" or parsed.bucket is None:
        return None
    return PolicySummary.of(parsed, decision)


def occurred_again(record: FindingRecord, policy: PolicySummary, deps: IntakeDependencies) -> FindingRecord:
    """Record a later occurrence's count on the existing record when it is higher; the record as it now is."""
    if record.policy is None or policy.count <= record.policy.count:
        return record
    result = deps.store.record_occurrence(
        record.finding_id, count=policy.count, updated_at=policy.updated_at, actor=ACTOR
    )
    if result.applied:
        deps.metrics.count("PolicyFindingOccurrences", finding_type=policy.finding_type)
        logger.info("policy finding reported again", extra={"count": policy.count, "state": result.record.state})
    return result.record


def update_due(record: FindingRecord) -> bool:
    """The finding's message shows a lower count than the record holds."""
    policy = record.policy
    return (
        policy is not None
        and record.slack_ts is not None
        and record.state is not State.RECEIVED
        and (record.policy_shown_count or 0) < policy.count
    )


def message_to_post(record: FindingRecord, action: Action, target: State) -> SlackMessage:
    """The first message of a policy finding, for the state the intake is about to record."""
    from macie_chatops.policy_messages import policy_message  # with the public access fix's modules: policy only

    approver = AUTO_APPROVER if action is Action.AUTO else record.approver
    message = policy_message(dataclasses.replace(record, state=target, approver=approver))
    if message is None or not record.channel:
        raise ValueError(f"finding {record.finding_id}: {action} of a policy finding needs a channel and a message")
    return message


def show_count(record: FindingRecord, deps: IntakeDependencies, attempt: str) -> FindingRecord:
    """chat.update the message to the record's count, then record the count shown (with the lease's release)."""
    policy, channel, ts = record.policy, record.slack_channel or record.channel, record.slack_ts
    assert policy is not None and ts is not None  # update_due
    from macie_chatops.policy_messages import policy_message

    message = policy_message(record)
    event, detail = "slack_updated", f"count {policy.count}"
    if message is not None:
        try:
            deps.slack.update(channel, ts, message)
        except SlackMessageNotFoundError as exc:
            # The message was deleted in Slack: nothing to update, now or later.
            event, detail = "slack_update_failed", f"{exc.error_code}: {exc}"
        except SlackError as exc:
            deps.metrics.count("SlackFailures", kind="policy_update", error_code=exc.error_code or type(exc).__name__)
            # Audited, then raised: the message returns to the queue and the redelivery updates it.
            deps.store.append_audit(
                record.finding_id, actor=ACTOR, event="slack_update_failed", outcome="error",
                detail=f"{exc.error_code}: {exc}",
            )  # fmt: skip
            raise
        deps.metrics.count("SlackUpdates", state=record.state.value)
    return deps.store.append_audit(
        record.finding_id,
        actor=ACTOR,
        event=event,
        outcome="updated" if event == "slack_updated" else "message_gone",
        detail=detail,
        updates={"policy_shown_count": policy.count},
        release_intake_of=attempt,
    ).record
