"""Slack messages of a policy finding (a bucket, not an object), one per state, rendered from the record.

One message per finding, updated in place: by the intake when Macie reports the finding again (its count), by
the remediator for the fix and its Undo, by the click that changed its state. Same escaping rules as
``slack_messages`` (whose helpers it uses): the bucket, account and types are untrusted text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    PlainTextObject,
    SectionBlock,
)

from macie_chatops import names
from macie_chatops.public_access import decode, describe
from macie_chatops.slack_messages import (
    MAX_HEADER_TEXT,
    SlackMessage,
    code_span,
    escape_url,
    shorten,
)
from macie_chatops.slack_messages import _all_of as all_of
from macie_chatops.slack_messages import _approvals_so_far as approvals_so_far
from macie_chatops.slack_messages import _field as field
from macie_chatops.slack_messages import _fit as fit
from macie_chatops.slack_messages import _md as md
from macie_chatops.slack_messages import _when as when
from macie_chatops.slack_messages import _who as who
from macie_chatops.states import Failure, State

if TYPE_CHECKING:
    from macie_chatops.policy_summary import PolicySummary
    from macie_chatops.store import FindingRecord

_WHAT: Final = {
    "Policy:IAMUser/S3BlockPublicAccessDisabled": "block public access was turned off for",
    "Policy:IAMUser/S3BucketEncryptionDisabled": "default encryption was turned off for",
    "Policy:IAMUser/S3BucketPublic": "anyone on the internet can reach",
    "Policy:IAMUser/S3BucketReplicatedExternally": "objects are replicated outside the organisation from",
    "Policy:IAMUser/S3BucketSharedExternally": "an account outside the organisation can reach",
    "Policy:IAMUser/S3BucketSharedWithCloudFront": "a CloudFront distribution can reach",
}


def _fields(policy: PolicySummary) -> SectionBlock:
    account = code_span(policy.account_id, 40)
    if policy.account_name:
        account = f"{fit(policy.account_name, 200)} ({account})"
    return SectionBlock(
        fields=[
            field("Account", account),
            field("Team", code_span(policy.team, 200) if policy.team else "none"),
            field("Region", code_span(policy.region, 50)),
            field("Bucket", code_span(policy.bucket, 300)),
            field("Finding type", fit(policy.finding_type, 200)),
            field("Severity", fit(policy.severity, 50)),
            field("Reported", f"{policy.count:,} time{'' if policy.count == 1 else 's'}"),
            field("Seen by Macie as", fit(policy.effective_permission or "unknown", 50)),
        ]
    )


def _context(policy: PolicySummary) -> ContextBlock:
    elements = [md(f"Finding {code_span(policy.finding_id, 200)}"), md(f"Created: {when(policy.created_at)}")]
    if policy.updated_at and policy.updated_at != policy.created_at:
        elements.append(md(f"Last reported: {when(policy.updated_at)}"))
    if policy.api:
        elements.append(md(f"Caused by {code_span(policy.api, 100)}"))
    elements.append(md(f"<{escape_url(policy.console_url)}|Open in the Macie console>"))
    return ContextBlock(elements=elements)


def _render(
    policy: PolicySummary, *, title: str, status: str, notice: str | None = None, buttons: Sequence[ButtonElement] = ()
) -> SlackMessage:
    where = policy.account_name or policy.account_id
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=shorten(f"{title}: {where}", MAX_HEADER_TEXT), emoji=True)),
        SectionBlock(text=md(status)),
        _fields(policy),
    ]
    if notice:
        blocks.append(ContextBlock(elements=[md(f":warning: {fit(notice, 1500)}")]))
    blocks.append(_context(policy))
    if buttons:
        blocks.append(ActionsBlock(elements=list(buttons)))
    text = f"{title}: {fit(policy.finding_type, 100)} on bucket {code_span(policy.bucket, 100)} in {fit(where, 100)}"
    return SlackMessage(text=text, blocks=tuple(blocks))


def _finding_line(policy: PolicySummary) -> str:
    what = _WHAT.get(policy.finding_type, "Macie reports a policy finding on")
    times = f" (reported {policy.count:,} times)" if policy.count > 1 else ""
    return f"Macie reports that {what} bucket {code_span(policy.bucket, 300)}{times}."


def _block_button(policy: PolicySummary) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text="Block public access"),
        action_id=names.ACTION_BLOCK_PUBLIC_ACCESS,
        value=policy.finding_id,
        style="danger",
        confirm=ConfirmObject(
            title=PlainTextObject(text="Block public access?"),
            text=md(
                f"Turn on all four block public access settings of {code_span(policy.bucket, 150)}? The current "
                "configuration is recorded first; Undo puts it back."
            ),
            confirm=PlainTextObject(text="Block"),
            deny=PlainTextObject(text="Cancel"),
            style="danger",
        ),
    )


def _undo_button(policy: PolicySummary) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text="Undo"),
        action_id=names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS,
        value=policy.finding_id,
        confirm=ConfirmObject(
            title=PlainTextObject(text="Reopen this bucket?"),
            text=md(
                f"Put back the public access configuration {code_span(policy.bucket, 150)} had before the block? "
                "The bucket may be public again."
            ),
            confirm=PlainTextObject(text="Undo"),
            deny=PlainTextObject(text="Cancel"),
        ),
    )


def _dismiss_button(policy: PolicySummary) -> ButtonElement:
    return ButtonElement(text=PlainTextObject(text="Dismiss"), action_id=names.ACTION_DISMISS, value=policy.finding_id)


def _entered(record: FindingRecord) -> tuple[str | None, str]:
    entry = record.entry_into_state
    return (entry.actor, entry.at) if entry is not None else (record.approver, record.updated_at)


def _previous(record: FindingRecord) -> str:
    text = (record.public_access or {}).get("previous")
    if text is None:
        return "not recorded"
    try:
        return describe(decode(text))
    except ValueError:
        return "unreadable on the record"


def _needed(policy: PolicySummary) -> str | None:
    """How many approvers the review needs (§15), when more than one."""
    if policy.approvals_required <= 1:
        return None
    what = "block the bucket's public access, or to dismiss the finding" if policy.fixable else "dismiss the finding"
    return f"*{policy.approvals_required} different approvers* of this team must agree to {what}."


def _dismissers(record: FindingRecord, by: str | None) -> str:
    """Who dismissed it: every counted dismissal, the one who completed it last (§15)."""
    return all_of([*record.dismissals, by or ""]) if record.dismissals and by else who(by)


def _approvers(record: FindingRecord) -> str:
    """Who approved the block: every counted approver, the one who completed it last (§15)."""
    if record.approvals and record.approver:
        return all_of([*record.approvals, record.approver])
    return who(record.approver)


def policy_message(record: FindingRecord, *, exemption: str | None = None) -> SlackMessage | None:
    """The message for the policy finding's current state (None: a record with no policy summary, or a state
    that is never shown). ``exemption``: what a dismissal just exempted, in words (its form's submission)."""
    policy = record.policy
    if policy is None:
        return None
    by, at = _entered(record)
    line = _finding_line(policy)
    state = record.state
    if state is State.PENDING_APPROVAL:
        status = "\n".join(
            part
            for part in (
                f"{line}\n*Approval needed:* {fit(record.reason, 1000)}",
                _needed(policy),
                approvals_so_far(record.approvals, policy.approvals_required, "approval"),
                approvals_so_far(record.dismissals, policy.approvals_required, "dismissal"),
            )
            if part
        )
        buttons = (_block_button(policy), _dismiss_button(policy)) if policy.fixable else (_dismiss_button(policy),)
        return _render(policy, title=":warning: Approval needed", status=status, buttons=buttons)
    if state is State.NOTIFIED:
        status = f"{line}\n*For information:* {fit(record.reason, 1000)}\nNothing will be changed on the bucket."
        return _render(policy, title=":information_source: Bucket policy finding", status=status)
    if state is State.APPROVED:
        status = f"{line}\nApproved {_approvers(record)} on {when(at)}; blocking public access…"
        return _render(policy, title=":hourglass_flowing_sand: Blocking public access", status=status)
    if state is State.PUBLIC_ACCESS_BLOCKED:
        status = (
            f"{line}\n*Public access blocked* (all four settings on), approved {_approvers(record)}; "
            f"done on {when(at)}.\nBefore the block: {_previous(record)}. Undo puts that back."
        )
        notice = record.error if record.error and record.error.startswith("undo not done") else None
        return _render(
            policy, title=":lock: Public access blocked", status=status, notice=notice, buttons=(_undo_button(policy),)
        )
    if state is State.UNDO_REQUESTED:
        status = f"{line}\n*Undo requested* by {who(by)} on {when(at)}; putting back: {_previous(record)}…"
        return _render(policy, title=":arrows_counterclockwise: Undoing the block", status=status)
    if state is State.UNDONE:
        requested = next((e.actor for e in reversed(record.audit) if e.outcome == State.UNDO_REQUESTED.value), None)
        status = (
            f"{line}\n*Undone* (requested by {who(requested)}, done on {when(at)}): the bucket's configuration is "
            f"again {_previous(record)}."
        )
        return _render(policy, title=":leftwards_arrow_with_hook: Block undone", status=status)
    if state is State.DISMISSED:
        status = f"{line}\n*Dismissed* by {_dismissers(record, by)} on {when(at)}. Nothing was changed on the bucket."
        if record.outcome_detail:  # the dismissal form's reason (§16)
            status += f"\n*Reason:* {fit(record.outcome_detail, 1000)}"
        if exemption:
            status += f"\n*Exempted from now on:* {fit(exemption, 600)}"
        return _render(policy, title=":white_check_mark: Dismissed", status=status)
    if state is State.FAILED:
        failure = Failure.of(record.outcome)
        then = "it will be retried automatically." if failure.retryable else "an operator fixes the cause, then runs "
        if not failure.retryable:
            then += code_span(f"macie-chatops retry {policy.finding_id}", 300) + "."
        status = (
            f"{line}\n*Blocking public access failed* on {when(at)}: {fit(record.error or 'unknown error', 1000)}\n"
            f"Approved {who(record.approver)}; {then}"
        )
        return _render(policy, title=":x: Block failed", status=status)
    return None


def build_policy_stuck_message(record: FindingRecord, *, at: str, requeues: int) -> SlackMessage | None:
    """APPROVED with no outcome: the sweeper re-queued the block job ``requeues`` times and stopped (operators
    are alerted). It does not guess whether the block was put: the record says what was recorded."""
    policy = record.policy
    if policy is None:
        return None
    command = code_span(f"macie-chatops sweep --requeue {policy.finding_id}", 300)
    times = f"{requeues} time{'s' if requeues != 1 else ''}"
    status = (
        f"{_finding_line(policy)}\n*Approved {who(record.approver)} on {when(at)}, but no outcome was recorded.* The "
        f"job blocking public access was re-queued {times} without one; it is no longer retried automatically.\n"
        "Operators have been alerted. *To finish it:* an operator finds the cause in the remediator's logs (search "
        f"for the finding id), fixes it, then runs {command}."
    )
    return _render(policy, title=":warning: Block stuck", status=status)
