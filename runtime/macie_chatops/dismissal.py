"""Dismiss with a reason: the form a Dismiss click opens, and its signed submission (docs/architecture.md §16).

The click (already authorised by ``interaction``) opens the modal with ``views.open`` and the click's
``trigger_id``. The submission is untrusted input like any click: its signature was checked by the handler,
and everything in it, the private metadata included, is read strictly and checked again against the record
(the workspace, the finding's message, an approver of the finding's team, PENDING_APPROVAL). Slack shows
what we answer to a ``view_submission`` in the modal itself: ``response_action: errors`` under a field, or
``clear`` to close it; there is no ``response_url``, so the finding's message is updated with ``chat.update``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final, Literal, Protocol
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from macie_chatops.errors import SlackError
from macie_chatops.exemption_store import ExemptionError, new_exemption_id
from macie_chatops.exemptions import (
    MAX_DAYS_AHEAD,
    MAX_REASON_CHARS,
    Exemption,
    Scope,
    Target,
    end_of,
    parent_prefix,
    scoped,
    until_text,
)
from macie_chatops.interaction import (
    FINDING_ID_RE,
    MAX_FORM_FIELDS,
    Answer,
    Click,
    ClickAction,
    Counted,
    Dependencies,
    DirectoryError,
    PayloadTeam,
    PayloadUser,
    _Context,
    authorise,
    bad_request,
    count_approval,
    refused,
    same_workspace,
    shows_digest,
    what_happened,
)
from macie_chatops.job_request import StateChange, apply_change
from macie_chatops.policy_messages import policy_message
from macie_chatops.slack_messages import (
    SlackMessage,
    build_dismissed_with_reason_message,
    build_review_message,
    code_span,
)
from macie_chatops.states import State
from macie_chatops.store import FindingNotFoundError, FindingRecord

logger = logging.getLogger(__name__)

CALLBACK_ID: Final = "macie_chatops.dismiss_form"
SUBMIT_ACTION: Final = "macie_chatops.dismiss_submit"  # the Answer's action: metrics say "dismiss_submit"
BLOCK_REASON, BLOCK_SCOPE, BLOCK_DURATION, BLOCK_UNTIL = "reason", "scope", "duration", "until"
DURATIONS: Final = {"7": 7, "30": 30, "90": 90}
ON_A_DATE: Final = "date"
DEFAULT_DURATION: Final = "30"
MAX_METADATA_CHARS: Final = 3000  # Slack's limit for private_metadata
TRIGGER_ERRORS: Final = frozenset({"expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id"})
# Newlines are welcome in a reason; other controls, line/paragraph separators and direction overrides are not.
_UNSHOWABLE_IN_REASON: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_TS_RE: Final = re.compile(r"[0-9]{1,12}\.[0-9]{1,8}")
_OWN_TS_RE: Final = re.compile(rf"^(?:{_TS_RE.pattern})?$")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SCOPE_WORDS: Final = {
    Scope.FINDING: "This finding (this version of the object)",
    Scope.OBJECT: "This object, all versions",
    Scope.PREFIX: "Everything under this prefix",
    Scope.BUCKET: "Everything in this bucket",
}
# A policy finding concerns a bucket (§18): this finding, or this bucket for this finding type.
_POLICY_SCOPE_WORDS: Final = {
    Scope.FINDING: "This finding",
    Scope.BUCKET: "This bucket, for this finding type",
}


class ModalOpener(Protocol):
    """``SlackClient.open_view``: opens a modal for a click's trigger id, returns the view id."""

    def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> str: ...


# --------------------------------------------------------------------------------------------------------
# The form
# --------------------------------------------------------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": _plain(text[:75]), "value": value}


def dismissal_form(record: FindingRecord, *, channel: str, ts: str) -> dict[str, Any]:
    """The modal for dismissing ``record``'s finding; the private metadata binds it to the finding's message."""
    summary, policy = record.summary, record.policy
    if summary is not None:
        scopes = [s for s in Scope if s is not Scope.PREFIX or parent_prefix(summary.key) is not None]
        scope_options = [_option(s.value, _SCOPE_WORDS[s]) for s in scopes]
        question = f"Dismiss the finding on {code_span(f's3://{summary.bucket}/{summary.key}', 600)}?"
    elif policy is not None:
        scope_options = [_option(s.value, words) for s, words in _POLICY_SCOPE_WORDS.items()]
        kind = code_span(policy.finding_type, 200)
        question = f"Dismiss the {kind} finding on bucket {code_span(f's3://{policy.bucket}/', 300)}?"
    else:
        raise ValueError(f"finding {record.finding_id} has no summary to dismiss")
    durations = [_option(value, f"{value} days") for value in DURATIONS] + [_option(ON_A_DATE, "Until a date…")]
    metadata = {"finding_id": record.finding_id, "channel": channel, "ts": ts}
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain("Dismiss finding"),
        "submit": _plain("Dismiss"),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "verbatim": True, "text": question},
            },
            {
                "type": "input",
                "block_id": BLOCK_REASON,
                "label": _plain("Why is this fine?"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": BLOCK_REASON,
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                },
            },
            {
                "type": "input",
                "block_id": BLOCK_SCOPE,
                "label": _plain("Exempt from now on"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": BLOCK_SCOPE,
                    "options": scope_options,
                    "initial_option": scope_options[0],
                },
            },
            {
                "type": "input",
                "block_id": BLOCK_DURATION,
                "label": _plain("For"),
                "element": {
                    "type": "static_select",
                    "action_id": BLOCK_DURATION,
                    "options": durations,
                    "initial_option": durations[list(DURATIONS).index(DEFAULT_DURATION)],
                },
            },
            {
                "type": "input",
                "block_id": BLOCK_UNTIL,
                "optional": True,
                "label": _plain("Until (with “Until a date…”, at most a year ahead)"),
                "element": {"type": "datepicker", "action_id": BLOCK_UNTIL},
            },
        ],
    }


def open_form(context: _Context, record: FindingRecord) -> Answer:
    """Open the dismissal form for an authorised click on a pending finding; nothing changes on the record
    but its audit line. The click's own answer is empty: the modal is the answer."""
    click, opener = context.click, context.deps.modals
    if opener is None:
        raise ValueError("open_form needs Dependencies.modals")
    channel, ts = record.slack_channel or record.channel, record.slack_ts or ""
    if not click.trigger_id:
        return context.refuse(
            "click without a trigger id",
            "Slack did not allow a form to open; click Dismiss again.",
            category="no_trigger",
        )
    try:
        view_id = opener.open_view(click.trigger_id, dismissal_form(record, channel=channel, ts=ts))
    except SlackError as exc:
        if exc.error_code in TRIGGER_ERRORS:
            return context.refuse(
                f"dismissal form not opened: {exc.error_code}",
                "The dismissal form could not be opened in time (Slack allows 3 seconds); click Dismiss again.",
                category="trigger_expired",
            )
        return context.refuse(
            f"dismissal form not opened: {exc.error_code or type(exc).__name__}",
            "The dismissal form could not be opened just now; nothing was changed. Please try again.",
            category="form_not_opened",
        )
    context.audit("form_opened", f"dismissal form {view_id} opened")
    return context.answer(200, {}, "accepted", "dismissal form opened", "form_opened")


# --------------------------------------------------------------------------------------------------------
# The submission: untrusted input, read strictly
# --------------------------------------------------------------------------------------------------------


class _Slack(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


Short = Annotated[str, StringConstraints(max_length=255)]


class SelectedOption(_Slack):
    value: Short


class StateValue(_Slack):
    type: Short
    value: Annotated[str, StringConstraints(max_length=3000)] | None = None
    selected_option: SelectedOption | None = None
    selected_date: Short | None = None


class SubmittedView(_Slack):
    callback_id: Short
    private_metadata: Annotated[str, StringConstraints(max_length=MAX_METADATA_CHARS)] = ""
    state: dict[Literal["values"], dict[Short, dict[Short, StateValue]]]


class ViewSubmissionPayload(_Slack):
    type: Literal["view_submission"]
    user: PayloadUser
    team: PayloadTeam | None = None
    view: SubmittedView


class FormMetadata(_Slack):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    finding_id: Annotated[str, StringConstraints(pattern=rf"^{FINDING_ID_RE.pattern}$")]  # pydantic searches
    channel: Annotated[str, StringConstraints(pattern=r"^[CG][A-Z0-9]{2,40}$")]
    # Empty for a finding of a group that has no message of its own (its group's digest lists it, §22).
    ts: Annotated[str, StringConstraints(pattern=_OWN_TS_RE.pattern)]


@dataclass(frozen=True)
class Submission:
    """A form's values, valid: why, what, until when."""

    reason: str
    scope: Scope
    until: datetime


def _value(values: Mapping[str, Mapping[str, StateValue]], block: str) -> StateValue | None:
    return values.get(block, {}).get(block)


def read_values(
    values: Mapping[str, Mapping[str, StateValue]], record: FindingRecord, now: datetime
) -> Submission | dict[str, str]:
    """The submission, or the errors to show under each field (``response_action: errors``)."""
    errors: dict[str, str] = {}
    reason_value = _value(values, BLOCK_REASON)
    reason = (reason_value.value if reason_value is not None else None) or ""
    reason = reason.strip()
    if not reason:
        errors[BLOCK_REASON] = "Say why this finding is fine: a reason is required."
    elif len(reason) > MAX_REASON_CHARS:
        errors[BLOCK_REASON] = f"At most {MAX_REASON_CHARS} characters ({len(reason)} given)."
    elif _UNSHOWABLE_IN_REASON.search(reason):
        errors[BLOCK_REASON] = "The reason holds a control or text-direction character; please retype it."
    scope = _scope(_value(values, BLOCK_SCOPE), record, errors)
    until = _until(_value(values, BLOCK_DURATION), _value(values, BLOCK_UNTIL), now, errors)
    if errors or scope is None or until is None:
        return errors
    return Submission(reason, scope, until)


def _scope(value: StateValue | None, record: FindingRecord, errors: dict[str, str]) -> Scope | None:
    chosen = value.selected_option.value if value is not None and value.selected_option is not None else ""
    try:
        scope = Scope(chosen)
    except ValueError:
        errors[BLOCK_SCOPE] = "Choose what the exemption covers."
        return None
    if record.summary is None and record.policy is not None and scope not in _POLICY_SCOPE_WORDS:
        errors[BLOCK_SCOPE] = "A bucket's finding exempts this finding, or this bucket for this finding type."
        return None
    if scope is Scope.PREFIX and (record.summary is None or parent_prefix(record.summary.key) is None):
        errors[BLOCK_SCOPE] = "This object is at the bucket's root: there is no prefix to exempt."
        return None
    return scope


def _until(
    duration: StateValue | None, picked: StateValue | None, now: datetime, errors: dict[str, str]
) -> datetime | None:
    chosen = duration.selected_option.value if duration is not None and duration.selected_option is not None else ""
    if chosen in DURATIONS:
        return now + timedelta(days=DURATIONS[chosen])
    if chosen != ON_A_DATE:
        errors[BLOCK_DURATION] = "Choose for how long."
        return None
    text = picked.selected_date if picked is not None else None
    if not text:
        errors[BLOCK_UNTIL] = "Pick the date the exemption ends (or choose 7, 30 or 90 days)."
        return None
    try:
        day = date.fromisoformat(text) if _DATE_RE.fullmatch(text) else None
    except ValueError:
        day = None
    today = now.date()
    if day is None:
        errors[BLOCK_UNTIL] = "That is not a date."
    elif day < today:
        errors[BLOCK_UNTIL] = "That date has passed: pick today or a later day."
    elif day > today + timedelta(days=MAX_DAYS_AHEAD):
        errors[BLOCK_UNTIL] = f"At most a year ahead (until {(today + timedelta(days=MAX_DAYS_AHEAD)).isoformat()})."
    else:
        return end_of(day)
    return None


def read_submission(body: bytes) -> ViewSubmissionPayload | Answer:
    """The ``view_submission`` in a verified body, or the answer when it cannot be read."""
    try:
        form = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FORM_FIELDS
        )
        raw = json.loads(form["payload"][0]) if len(form.get("payload", ())) == 1 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return bad_request(400, "view_submission body is not a form with one JSON payload")
    if not isinstance(raw, dict):
        return bad_request(400, "view_submission payload is not a JSON object")
    try:
        return ViewSubmissionPayload.model_validate(raw)
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "(payload)"
        return bad_request(400, f"view_submission payload has the wrong shape at {where}")


def is_view_submission(body: bytes) -> bool:
    """Does the verified body carry a ``view_submission`` (cheap: the full read is ``read_submission``)?"""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        raw = json.loads(form["payload"][0]) if len(form.get("payload", ())) == 1 else None
    except (UnicodeDecodeError, ValueError, RecursionError, KeyError):
        return False
    return isinstance(raw, dict) and raw.get("type") == "view_submission"


# --------------------------------------------------------------------------------------------------------
# Applying a submission
# --------------------------------------------------------------------------------------------------------


def modal_errors(errors: Mapping[str, str]) -> dict[str, Any]:
    return {"response_action": "errors", "errors": dict(errors)}


def _in_the_form(answer: Answer) -> Answer:
    """A refusal shown in the modal, under the reason (Slack shows no ephemeral message for a submission)."""
    text = str(answer.body.get("text", "Nothing was changed."))
    return Answer(
        answer.status,
        modal_errors({BLOCK_REASON: text[:1000]}),
        answer.outcome,
        answer.reason,
        answer.finding_id,
        answer.user_id,
        SUBMIT_ACTION,
        category=answer.category,
    )


def handle_submission(body: bytes, deps: Dependencies) -> Answer:
    """Everything after the signature for a ``view_submission`` of the dismissal form."""
    payload = read_submission(body)
    if isinstance(payload, Answer):
        return payload
    if payload.view.callback_id != CALLBACK_ID:
        return refused("unknown view", "This form does not belong to this app.", "unknown_view")
    try:
        metadata = FormMetadata.model_validate(json.loads(payload.view.private_metadata))
    except (ValueError, RecursionError, ValidationError):
        return _in_the_form(refused("private metadata unreadable", "This form cannot be read.", "bad_metadata"))
    click = Click(
        action=ClickAction.DISMISS,
        value=metadata.finding_id,
        user_id=payload.user.id,
        team_id=payload.team.id if payload.team else None,
        enterprise_id=payload.team.enterprise_id if payload.team else None,
        channel_ids=frozenset({metadata.channel}),
    )
    context = _Context(click, metadata.finding_id, deps)
    answer = dataclasses.replace(_submit(context, metadata, payload.view.state.get("values", {})), action=SUBMIT_ACTION)
    if answer.outcome == "accepted" or answer.status != 200 or "response_action" in answer.body:
        return answer
    return _in_the_form(answer)


def _submit(context: _Context, metadata: FormMetadata, values: Mapping[str, Mapping[str, StateValue]]) -> Answer:
    deps, click = context.deps, context.click
    if not same_workspace(click, deps.config.slack.team_id):
        return context.refuse(
            "wrong workspace", "This app does not act on forms from this workspace.", category="wrong_workspace"
        )
    record = deps.store.get(metadata.finding_id)
    if record is None:
        return context.refuse(
            "unknown finding",
            "This form names a finding this app does not know.",
            category="unknown_finding",
            audit=False,
        )
    if (record.slack_channel or record.channel, record.slack_ts or "") != (metadata.channel, metadata.ts):
        return context.refuse(
            "form not bound to the finding's message",
            "This form does not belong to this finding's message; nothing was changed.",
            category="wrong_message",
        )
    team = deps.config.teams.get(record.team)
    try:
        authorisation = authorise(click.user_id, team, deps.directory) if team is not None else None
    except DirectoryError as exc:
        return context.refuse(
            f"approver groups unavailable: {exc}",
            "Could not check the approver groups just now; please try again.",
            category="approver_groups_unavailable",
        )
    if authorisation is None or not authorisation.allowed:
        return context.refuse(
            f"not an approver for team {record.team}",
            "You are not an approver for this finding's team; nothing was changed.",
            category="not_an_approver",
        )
    if record.state is not State.PENDING_APPROVAL:
        return context.refuse(f"finding is {record.state.value}", what_happened(record), category="already_handled")
    now = deps.clock()
    read = read_values(values, record, now)
    if not isinstance(read, Submission):
        return context.answer(
            200, modal_errors(read), "refused", f"form invalid: {', '.join(sorted(read))}", "form_invalid"
        )
    return _count(context, record, read, now, f"approver via {authorisation.via}")


def _count(context: _Context, record: FindingRecord, submission: Submission, now: datetime, via: str) -> Answer:
    """Dismissing needs as many approvers as remediating (``interaction.count_approval``, §15): a submission
    short of the count is recorded with its reason and shown on the message; the one that completes it
    dismisses and creates its exemption (that dismisser's scope and duration)."""
    deps, user = context.deps, context.click.user_id
    try:
        count = count_approval(
            deps.store,
            record,
            action=ClickAction.DISMISS,
            user_id=user,
            detail=f"form, {via}, reason: {submission.reason}",
        )
    except FindingNotFoundError:
        return context.refuse("finding record vanished", "This finding no longer exists.", category="unknown_finding")
    if count.counted is Counted.NOT_PENDING:
        return context.refuse(
            f"lost the race: finding is {count.record.state.value}",
            what_happened(count.record),
            category="lost_the_race",
        )
    if count.counted is Counted.ALREADY_COUNTED:
        return context.refuse(
            f"already counted: {count.words}",
            f"You have already dismissed this finding ({len(count.approvers)} of {count.required}); "
            f"{count.required} different approvers are needed, so someone else must confirm it.",
            category="already_counted",
        )
    if count.counted is Counted.RECORDED:
        counted = count.record
        message: SlackMessage | None = None
        if counted.summary is not None:
            message = build_review_message(
                counted.summary, reason=counted.reason, approvals=counted.approvals, dismissals=counted.dismissals
            )
        elif counted.policy is not None:
            message = policy_message(counted)
        if deps.updater is not None and message is not None and counted.slack_channel and counted.slack_ts:
            _update(context, counted, message)
        return context.answer(200, {"response_action": "clear"}, "accepted", count.words, "approval_counted")
    return _dismiss(context, record, submission, now, f"{count.words}, {via}" if count.required > 1 else via)


def exemption_for(submission: Submission, target: Target, *, finding_id: str, by: str, at: datetime) -> Exemption:
    """The exemption a submitted form asks for (its scope, reason and end) on ``target``, naming the finding whose
    dismissal made it: one form, one exemption, a single or a bulk dismissal alike."""
    exemption = scoped(
        submission.scope,
        target,
        exemption_id=new_exemption_id(target.account_id),
        until=submission.until,
        reason=submission.reason,
        by=by,
        at=at,
    )
    return Exemption(**{**exemption.__dict__, "finding_id": finding_id})


def _dismiss(context: _Context, record: FindingRecord, submission: Submission, now: datetime, counted: str) -> Answer:
    """The transition (with the reason and the exemption in its audit line), then the exemption, then the
    finding's message. A dismissal that lost the race records no exemption."""
    deps, click, summary, policy = context.deps, context.click, record.summary, record.policy
    if summary is not None:
        target = Target.of(summary)
    elif policy is not None:
        target = Target.of_policy(policy)
    else:
        raise ValueError("a dismissal with a reason needs the finding's summary")
    if deps.exemptions is None:
        raise ValueError("a dismissal with a reason needs Dependencies.exemptions")
    exemption = exemption_for(submission, target, finding_id=record.finding_id, by=click.user_id, at=now)
    token = f"form {uuid.uuid4().hex[:16]}"
    scope = f"exemption {exemption.id}: {exemption.describe_scope()} until {until_text(exemption.until)}"
    detail = f"{counted}, reason: {submission.reason}; {scope}, {token}"
    change = StateChange(
        expected=State.PENDING_APPROVAL,
        target=State.DISMISSED,
        actor=click.user_id,
        event="form:dismiss",
        detail=detail,
        undo_event="form:dismiss:undone",
        undo_detail=lambda exc: f"not undone ({type(exc).__name__})",
        token=token,
        # A policy finding's message is rendered from its record, later occurrences included: it keeps the reason.
        updates={"outcome_detail": submission.reason} if policy is not None else None,
    )
    try:
        changed = apply_change(deps.store, record.finding_id, change)
    except FindingNotFoundError:
        return context.refuse(
            "finding record vanished", "This finding no longer exists.", category="unknown_finding", audit=False
        )
    if not changed.applied:
        return context.refuse(
            f"lost the race: finding is {changed.record.state.value}",
            what_happened(changed.record),
            category="lost_the_race",
        )
    return _record_exemption(context, changed.record, exemption, submission, now)


def _record_exemption(
    context: _Context, record: FindingRecord, exemption: Exemption, submission: Submission, now: datetime
) -> Answer:
    deps = context.deps
    assert deps.exemptions is not None  # checked by _dismiss
    try:
        deps.exemptions.add(exemption)
    except ExemptionError as exc:
        context.audit("exemption_not_recorded", str(exc))
        logger.error("dismissed %s, but its exemption was refused: %s", record.finding_id, exc)
        text = f"The finding is dismissed, but no exemption was recorded: {exc}"
        return context.answer(
            200, modal_errors({BLOCK_SCOPE: text[:1000]}), "failed", "exemption refused", "exemption_refused"
        )
    words = f"{exemption.describe_scope()}, until {until_text(exemption.until)} (exemption {exemption.id})"
    _update_message(context, record, submission, words, now)
    return context.answer(
        200, {"response_action": "clear"}, "accepted", f"{State.DISMISSED.value} with exemption {exemption.id}"
    )


def _update_message(
    context: _Context, record: FindingRecord, submission: Submission, words: str, now: datetime
) -> None:
    """The finding's message says who dismissed it, why and what is exempted."""
    if context.deps.updater is None or not record.slack_channel or not record.slack_ts:
        return
    message: SlackMessage | None = None
    if record.summary is not None:
        message = build_dismissed_with_reason_message(
            record.summary, by=context.click.user_id, at=now, reason=submission.reason, exemption=words
        )
    elif record.policy is not None:
        message = policy_message(record, exemption=words)
    if message is not None:
        _update(context, record, message)


def _update(context: _Context, record: FindingRecord, message: SlackMessage) -> None:
    """chat.update of the finding's message; a Slack failure is logged and audited (what was decided stands)."""
    updater = context.deps.updater
    if updater is None or not record.slack_channel or not record.slack_ts:
        return
    if shows_digest(context.deps, record):  # the digest writer shows the group's counts instead (§22)
        return
    try:
        updater.update(record.slack_channel, record.slack_ts, message)
    except SlackError as exc:
        logger.warning("%s: its message was not updated: %s", record.finding_id, exc)
        context.audit("slack_update_failed", f"{exc.error_code or type(exc).__name__}: {exc}")
