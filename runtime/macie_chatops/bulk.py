"""A group's decisions (docs/architecture.md §22, "Bulk decisions"): the digest's "Quarantine all N" and
"Dismiss all N", and "Act on one finding…" from a thread page.

A bulk click acts on exactly the members 1..``upto`` its button was bound to (``digest_messages.BulkBinding``),
each as if its own Remediate had been clicked (``interaction._apply``: the channel, the team's approvers, the
finding's count of approvers, its own job, signed approval and audit entry). Members that arrived since are
only counted. The work is done within :data:`BULK_BUDGET_S` so Slack gets its answer in time; what the click
cannot reach goes on as signed continuations on the interaction function's own queue (``bulk_continuation``),
or, when one cannot be queued, behind a "Continue from finding K" button. A bulk Dismiss
opens one reason form; its submission dismisses each listed member still awaiting approval with that reason.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Protocol
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from macie_chatops import names
from macie_chatops.config import Team
from macie_chatops.digest_messages import GROUP_ID_RE, BulkBinding
from macie_chatops.dismissal import Submission, exemption_for
from macie_chatops.exemptions import Scope
from macie_chatops.groups import GroupMember, GroupPage, GroupView, page_number
from macie_chatops.interaction import (  # GROUP_ACTIONS, BULK_FORM_CALLBACK: what the click dispatches on
    BULK_FORM_CALLBACK,
    FINDING_ID_RE,
    GROUP_ACTIONS,
    MAX_FORM_FIELDS,
    Answer,
    Click,
    ClickAction,
    Counted,
    Dependencies,
    DirectoryError,
    PayloadChannel,
    PayloadContainer,
    PayloadTeam,
    PayloadUser,
    _apply,
    _Context,
    _deliver,
    authorise,
    bad_request,
    count_approval,
    ephemeral,
    refused,
    same_workspace,
    what_happened,
)
from macie_chatops.job_request import StateChange, apply_change
from macie_chatops.slack_messages import build_review_message, code_span, escape_mrkdwn
from macie_chatops.states import State
from macie_chatops.store import FindingNotFoundError, FindingRecord

logger = logging.getLogger(__name__)

BULK_BUDGET_S: Final = 2.0  # of Slack's 3 s: the rest is the request's own reads and the answer
# A click hands a range larger than this straight to a continuation (bulk_continuation): no click reaches a page of
# members within its budget (~50 on the loaded sandbox), so it answers at once instead of after 2 s of partial work.
BULK_INLINE_MAX: Final = 100
CONTINUATION_RESERVE_S: Final = 0.4  # of the click's budget: sign (GenerateMac) and send the continuation
BULK_WORKERS: Final = 10  # botocore keeps 10 connections per client: more threads would open and drop extra ones
# The scopes a bulk dismissal offers: the findings themselves (their reason on each record, no exemption: one per
# finding would exceed an account's 100), or the bucket for this finding type (one exemption).
BULK_SCOPES: Final = {
    Scope.FINDING.value: "Only these findings",
    Scope.BUCKET.value: "Everything in this bucket, for this finding type",
}


class GroupReader(Protocol):
    """``group_store.GroupStore``: a group as its digest shows it, and its thread pages of members."""

    def view(self, group_id: str) -> GroupView | None: ...

    def page(self, group_id: str, number: int) -> GroupPage | None: ...


# --------------------------------------------------------------------------------------------------------
# The click
# --------------------------------------------------------------------------------------------------------


class _Slack(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


Short = Annotated[str, StringConstraints(max_length=255)]


class SelectedOption(_Slack):
    value: Annotated[str, StringConstraints(max_length=150)]


class GroupAction(_Slack):
    action_id: Short
    type: Short
    value: Annotated[str, StringConstraints(max_length=2000)] | None = None
    selected_option: SelectedOption | None = None  # a static_select's choice


class GroupClickPayload(_Slack):
    type: Literal["block_actions"]
    user: PayloadUser
    team: PayloadTeam | None = None
    channel: PayloadChannel | None = None
    container: PayloadContainer | None = None
    actions: list[GroupAction] = Field(min_length=1, max_length=1)
    response_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    trigger_id: Annotated[str, StringConstraints(max_length=255)] | None = None


@dataclass(frozen=True)
class GroupClick:
    action_id: str
    value: str  # a bulk button's binding, or the finding id chosen in a page's select
    user_id: str
    team_id: str | None
    enterprise_id: str | None
    channel_ids: frozenset[str]
    response_url: str | None
    trigger_id: str | None

    def as_click(self, action: ClickAction, finding_id: str) -> Click:
        """The same person's click of ``action`` on one finding, from the same channel (no response_url: a bulk
        click answers once, for all)."""
        return Click(
            action=action,
            value=finding_id,
            user_id=self.user_id,
            team_id=self.team_id,
            enterprise_id=self.enterprise_id,
            channel_ids=self.channel_ids,
        )

    def answer(self, status: int, body: Mapping[str, Any], outcome: str, reason: str, category: str = "") -> Answer:
        return Answer(
            status, body, outcome, reason, None, self.user_id, self.action_id, self.response_url, category=category
        )

    def refuse(self, reason: str, text: str, category: str) -> Answer:
        return self.answer(200, ephemeral(text), "refused", reason, category)


def _same_workspace(click: GroupClick, deps: Dependencies) -> bool:
    """``interaction.same_workspace``: the one rule for every click."""
    return same_workspace(click.as_click(ClickAction.REMEDIATE, ""), deps.config.slack.team_id)


def _form_payload(body: bytes) -> Any:
    form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    values = form.get("payload", ())
    return json.loads(values[0]) if len(values) == 1 else None


def is_group_click(body: bytes) -> bool:
    """Is the verified body a click on a digest's or a page's element (cheap: ``handle_group_click`` reads it)?"""
    try:
        raw = _form_payload(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not isinstance(raw, dict) or raw.get("type") != "block_actions":
        return False
    actions = raw.get("actions")
    first = actions[0] if isinstance(actions, list) and len(actions) == 1 else None
    return isinstance(first, dict) and first.get("action_id") in GROUP_ACTIONS


def parse_group_click(body: bytes) -> GroupClick | Answer:
    try:
        raw = _form_payload(body)
        payload = GroupClickPayload.model_validate(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return bad_request(400, "group click is not a form with one JSON payload")
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "(payload)"
        return bad_request(400, f"group click payload has the wrong shape at {where}")
    action = payload.actions[0]
    channels = {payload.channel.id} if payload.channel else set()
    if payload.container is not None and payload.container.channel_id:
        channels.add(payload.container.channel_id)
    chosen = action.selected_option.value if action.selected_option is not None else None
    return GroupClick(
        action_id=action.action_id,
        value=(chosen if action.action_id == names.ACTION_ACT_ON_ONE else action.value) or "",
        user_id=payload.user.id,
        team_id=payload.team.id if payload.team else None,
        enterprise_id=payload.team.enterprise_id if payload.team else None,
        channel_ids=frozenset(channels),
        response_url=payload.response_url,
        trigger_id=payload.trigger_id,
    )


def handle_group_click(body: bytes, deps: Dependencies) -> Answer:
    """A verified click on a digest's bulk button or a page's select: authorise, act, answer (response_url too)."""
    parsed = parse_group_click(body)
    if isinstance(parsed, Answer):
        return parsed
    try:
        on_one = parsed.action_id == names.ACTION_ACT_ON_ONE
        answer = act_on_one(parsed, deps) if on_one else _bulk_click(parsed, deps)
    except Exception:
        sorry = ephemeral("Something went wrong on our side; please try again: a second click is safe.")
        _deliver(parsed.answer(200, sorry, "failed", "internal error", "internal_error"), deps)
        raise
    return _deliver(dataclasses.replace(answer, response_url=parsed.response_url), deps)


# --------------------------------------------------------------------------------------------------------
# Who may decide for a group
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authorised:
    view: GroupView
    team_name: str
    via: str


def _authorise_group(
    click: GroupClick, deps: Dependencies, group_id: str, refuse: Callable[[str, str, str], Answer]
) -> Authorised | Answer:
    """The workspace, the group's channel, an approver of the group's team: as a single click checks them (each
    member is checked again on its own record when it is acted on)."""
    if not _same_workspace(click, deps):
        return refuse(
            "wrong workspace", "This app does not act on clicks from this Slack workspace.", "wrong_workspace"
        )
    if deps.groups is None:
        return refuse("no group store", "Group decisions are not available here; nothing was changed.", "no_groups")
    view = deps.groups.view(group_id)
    if view is None:
        return refuse("unknown group", "This message names a group this app does not know.", "unknown_group")
    if not click.channel_ids or click.channel_ids != {view.channel}:
        return refuse(
            "click from another channel than the group's digest",
            "This group can only be handled from the channel it was posted to.",
            "wrong_channel",
        )
    account = deps.config.account(view.account_id)
    team: Team | None = deps.config.teams.get(account.team) if account is not None else None
    if account is None or team is None:
        return refuse("team not configured", "The team of this group is no longer configured.", "team_not_configured")
    try:
        authorisation = authorise(click.user_id, team, deps.directory)
    except DirectoryError as exc:
        return refuse(
            f"approver groups unavailable: {exc}",
            "Could not check the approver groups just now; nothing was changed. Please try again in a minute.",
            "approver_groups_unavailable",
        )
    if not authorisation.allowed:
        return refuse(
            f"not an approver for team {account.team}",
            f"You are not an approver for team {code_span(account.team, 64)}; nothing was changed.",
            "not_an_approver",
        )
    return Authorised(view, account.team, authorisation.via)


def _bulk_click(click: GroupClick, deps: Dependencies) -> Answer:
    deadline = time.monotonic() + BULK_BUDGET_S  # the reads before the members count too
    binding = BulkBinding.decode(click.value)
    if binding is None:
        return click.refuse(
            f"bulk button value is not a binding ({len(click.value)} chars)",
            "This button does not name a group this app knows.",
            "no_binding",
        )
    authorised = _authorise_group(click, deps, binding.group_id, click.refuse)
    if isinstance(authorised, Answer):
        return authorised
    if click.action_id == names.ACTION_BULK_DISMISS:
        return _open_bulk_form(click, deps, binding, authorised)
    return _bulk_remediate(click, deps, binding, authorised, deadline)


# --------------------------------------------------------------------------------------------------------
# Acting on each member
# --------------------------------------------------------------------------------------------------------


class Done(StrEnum):
    APPROVED = "approved"  # this click completed its approvals: its job is queued (or it is dismissed)
    COUNTED = "counted"  # an approval short of the finding's count, recorded
    ALREADY_COUNTED = "already_counted"  # this approver had approved it already
    HANDLED = "handled"  # no longer awaiting approval (decided before, or by someone else meanwhile)
    REFUSED = "refused"  # this member may not be decided by this click (another group, channel or team)
    FAILED = "failed"  # its job could not be queued (nothing changed for it), or an error
    NOT_REACHED = "not_reached"  # out of time: a second click picks it up


_BY_CATEGORY: Final = {
    "": Done.APPROVED,
    "approval_counted": Done.COUNTED,
    "already_counted": Done.ALREADY_COUNTED,
    "already_handled": Done.HANDLED,
    "lost_the_race": Done.HANDLED,
}


def _in_group(record: FindingRecord | None, binding: BulkBinding, member: GroupMember) -> bool:
    return record is not None and record.group_id == binding.group_id and record.group_seq == member.seq


def listed(groups: GroupReader, binding: BulkBinding) -> Iterator[list[GroupMember]]:
    """The members ``binding.start``..``binding.upto``, a page at a time (read only when asked for)."""
    for number in range(page_number(binding.start), page_number(binding.upto) + 1):
        page = groups.page(binding.group_id, number)
        if page is not None:
            yield [member for member in page.members if binding.start <= member.seq <= binding.upto]


@dataclass(frozen=True)
class Progress:
    """What a bulk decision did to each member it reached; ``resume_at``: the first member it did not reach."""

    done: Mapping[Done, Sequence[GroupMember]]
    not_reached: int
    resume_at: int | None

    def counts(self) -> dict[Done, int]:
        counted = {done: len(members) for done, members in self.done.items() if members}
        if self.not_reached:
            counted[Done.NOT_REACHED] = self.not_reached
        return counted

    def tally(self) -> str:
        return ", ".join(f"{done.value} {count}" for done, count in self.counts().items()) or "nothing"


def _each(
    pages: Iterable[Sequence[GroupMember]], act: Callable[[GroupMember], Done], *, deadline: float, upto: int
) -> Progress:
    """``act`` on each member, :data:`BULK_WORKERS` at a time, the next page read while the last is worked on; no
    member is started, and no page read, after ``deadline`` (``time.monotonic``)."""

    def one(member: GroupMember) -> Done:
        if time.monotonic() > deadline:
            return Done.NOT_REACHED
        try:
            return act(member)
        except Exception:  # one member's failure is reported with the others; the log has the cause
            logger.exception("bulk decision failed for finding %s", member.finding_id)
            return Done.FAILED

    submitted: list[tuple[GroupMember, Future[Done]]] = []
    with ThreadPoolExecutor(max_workers=BULK_WORKERS, thread_name_prefix="bulk") as pool:
        for page in pages:
            submitted += [(member, pool.submit(one, member)) for member in page]
            if time.monotonic() > deadline:
                break
    done: dict[Done, list[GroupMember]] = {outcome: [] for outcome in Done}
    for member, future in submitted:
        done[future.result()].append(member)
    unread = upto - submitted[-1][0].seq if submitted else 0
    skipped = done.pop(Done.NOT_REACHED)
    resume_at = skipped[0].seq if skipped else (submitted[-1][0].seq + 1 if unread > 0 else None)
    return Progress(done, len(skipped) + unread, resume_at)


def remediate_member(
    click: GroupClick, deps: Dependencies, binding: BulkBinding, *, continued: bool = False
) -> Callable[[GroupMember], Done]:
    """Decide one listed member as its own Remediate click would (``interaction._apply``): one job, one audit
    entry naming the clicker and the binding. A member decided already is counted, not clicked (no refusal written
    on its record). The click and its continuations (``bulk_continuation``) decide members only through this."""
    note = f", bulk: {describe(binding)}{', continued' if continued else ''}"

    def act(member: GroupMember) -> Done:
        record = deps.store.get(member.finding_id)
        if record is None or not _in_group(record, binding, member):
            logger.warning("bulk: %s is not member %d of group %s", member.finding_id, member.seq, binding.group_id)
            return Done.REFUSED
        if record.state is not State.PENDING_APPROVAL:
            return Done.HANDLED
        context = _Context(click.as_click(ClickAction.REMEDIATE, member.finding_id), member.finding_id, deps, note)
        answer = _apply(context, record)
        if answer.outcome == "failed":
            return Done.FAILED
        return _BY_CATEGORY.get(answer.category, Done.REFUSED)

    return act


def _bulk_remediate(
    click: GroupClick, deps: Dependencies, binding: BulkBinding, authorised: Authorised, deadline: float
) -> Answer:
    """Each listed member still awaiting approval as its own Remediate click. A range larger than one click can
    reach (:data:`BULK_INLINE_MAX`) goes straight to a continuation; a smaller one is decided here, and what the
    budget did not reach continues on the queue (or, without one, behind a "Continue from finding K" button)."""
    assert deps.groups is not None  # checked by _authorise_group
    since = max(0, authorised.view.member_count - binding.upto)
    if deps.continuations is not None and binding.upto - binding.start + 1 > BULK_INLINE_MAX:
        started = _continue_later(click, deps, binding)
        if started:
            logger.info("bulk remediate of %s by %s: continued on the queue", describe(binding), click.user_id)
            text = _continuing(binding, since=since)
            return click.answer(200, ephemeral(text), "accepted", f"bulk remediate {describe(binding)}: continued")
    if deps.continuations is not None:
        deadline -= CONTINUATION_RESERVE_S  # the continuation is signed and sent within the click's time
    progress = _each(
        listed(deps.groups, binding), remediate_member(click, deps, binding), deadline=deadline, upto=binding.upto
    )
    rest = dataclasses.replace(binding, start=progress.resume_at) if progress.resume_at is not None else None
    continued = rest is not None and _continue_later(click, deps, rest)
    text = report(progress.counts(), verb="quarantine", listed=binding.upto, since=since, continued=continued)
    body = ephemeral(text)
    if rest is not None and not continued:
        body["blocks"] = [{"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": text}}, _go_on(rest)]
    logger.info("bulk remediate of %s by %s: %s", describe(binding), click.user_id, progress.tally())
    return click.answer(200, body, "accepted", f"bulk remediate {describe(binding)}: {progress.tally()}")


def _continue_later(click: GroupClick, deps: Dependencies, rest: BulkBinding) -> bool:
    """Hand the members ``rest.start``..``rest.upto`` to a signed continuation; False when it could not be sent
    (the clicker is then offered the "Continue" button: nothing is lost)."""
    from macie_chatops.bulk_continuation import continuation_of

    if deps.continuations is None:
        return False
    try:
        deps.continuations.enqueue(continuation_of(click, rest, deps.clock()))
    except Exception:  # the click's answer offers the button instead; the log has the cause
        logger.exception("bulk: the continuation of %s could not be queued", describe(rest))
        return False
    return True


def _continuing(binding: BulkBinding, *, since: int) -> str:
    """The answer to a click whose members are all decided by continuations."""
    lines = [
        f"*Approving the listed findings {binding.start:,}–{binding.upto:,} still awaiting approval*, as you: "
        "each gets its own job and audit entry. The digest shows them as they are queued."
    ]
    if since:
        lines.append(f"{since:,} more since the digest was rendered: they are not included and need their own click.")
    return "\n".join(lines)


def _go_on(rest: BulkBinding) -> dict[str, Any]:
    """The button that continues a bulk quarantine where the time ran out (the same binding, from ``start``)."""
    button = {
        "type": "button",
        "action_id": names.ACTION_BULK_REMEDIATE,
        "text": {"type": "plain_text", "text": f"Continue from finding {rest.start:,}"[:75]},
        "value": rest.encode(),
        "style": "danger",
    }
    return {"type": "actions", "block_id": f"macie_chatops.bulk.continue.{rest.start}", "elements": [button]}


def describe(binding: BulkBinding) -> str:
    """Which group and which members a bulk click was bound to, for audit lines and logs."""
    return f"group {binding.group_id} findings {binding.start}-{binding.upto} (version {binding.version})"


def report(counts: Mapping[Done, int], *, verb: str, listed: int, since: int, continued: bool = False) -> str:
    """The clicker's answer: what this click did to the listed findings, and what it left to do."""

    def count(done: Done) -> int:
        return counts.get(done, 0)

    past = "queued for quarantine" if verb == "quarantine" else "dismissed"
    lines = [f"*{count(Done.APPROVED):,} of the {listed:,} listed findings {past}* by you."]
    if count(Done.APPROVED) and verb == "quarantine":
        lines.append("Each has its own job; the digest shows the outcomes as they come.")
    if count(Done.COUNTED):
        lines.append(
            f"{count(Done.COUNTED):,} need another approver: your approval is recorded on each, and someone else "
            f"must {verb} them too."
        )
    if count(Done.ALREADY_COUNTED):
        lines.append(f"{count(Done.ALREADY_COUNTED):,} you had approved already: they wait for another approver.")
    if count(Done.HANDLED):
        lines.append(f"{count(Done.HANDLED):,} already handled (no longer awaiting approval): left as they are.")
    if count(Done.REFUSED):
        lines.append(f"{count(Done.REFUSED):,} could not be decided from this message: act on them one by one.")
    if count(Done.FAILED):
        lines.append(f"{count(Done.FAILED):,} failed: nothing changed for them; click again to retry them.")
    if count(Done.NOT_REACHED) and continued:
        lines.append(
            f"{count(Done.NOT_REACHED):,} more are being approved in the background, as you: the digest shows them "
            "as they are queued."
        )
    elif count(Done.NOT_REACHED):
        again = "continue with the button below" if verb == "quarantine" else f"{verb} all again"
        lines.append(f"{count(Done.NOT_REACHED):,} not reached in time (Slack waits 3 s): {again}.")
    if since:
        lines.append(f"{since:,} more since the digest was rendered: they are not included and need their own click.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Act on one finding from a thread page
# --------------------------------------------------------------------------------------------------------


def act_on_one(click: GroupClick, deps: Dependencies) -> Answer:
    """The chosen member's own review message, buttons and all, for the clicker only: its Remediate and Dismiss
    are then single clicks like any other (from the same channel, checked on the record)."""
    finding_id = click.value if FINDING_ID_RE.fullmatch(click.value) else None
    if finding_id is None:
        return click.refuse(
            "chosen option is not a finding id", "This option does not name a finding.", "no_finding_id"
        )
    if not _same_workspace(click, deps):
        return click.refuse(
            "wrong workspace", "This app does not act on clicks from this Slack workspace.", "wrong_workspace"
        )
    record = deps.store.get(finding_id)
    if record is None or record.group_id is None:
        return click.refuse(
            "not a group member", "This option names a finding this app does not know.", "unknown_finding"
        )
    if click.channel_ids != {record.slack_channel or record.channel}:
        return click.refuse(
            "choice from another channel than the finding's group",
            "This finding can only be handled from the channel it was posted to.",
            "wrong_channel",
        )
    if record.state is not State.PENDING_APPROVAL or record.summary is None:
        return click.answer(200, ephemeral(what_happened(record)), "accepted", f"shown: {record.state.value}")
    message = build_review_message(
        record.summary, reason=record.reason, approvals=record.approvals, dismissals=record.dismissals
    ).to_dict()
    body = {**ephemeral(message["text"]), "blocks": message["blocks"]}
    return click.answer(200, body, "accepted", f"shown the buttons of {finding_id}")


# --------------------------------------------------------------------------------------------------------
# Dismiss all: one form, applied to each member
# --------------------------------------------------------------------------------------------------------


class BulkFormMetadata(_Slack):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    group: Annotated[str, StringConstraints(pattern=rf"^{GROUP_ID_RE.pattern}$")]  # pydantic searches: anchor it
    upto: int = Field(ge=1, le=10**9)
    version: int = Field(ge=0, le=10**12)
    channel: Annotated[str, StringConstraints(pattern=r"^[CG][A-Z0-9]{2,40}$")]


def bulk_form(view: GroupView, binding: BulkBinding) -> dict[str, Any]:
    """The dismissal form (``dismissal.dismissal_form``'s fields) for the members 1..upto of a group."""
    from macie_chatops.dismissal import DEFAULT_DURATION, DURATIONS, ON_A_DATE
    from macie_chatops.exemptions import MAX_REASON_CHARS

    def plain(text: str) -> dict[str, Any]:
        return {"type": "plain_text", "text": text, "emoji": False}

    def option(value: str, text: str) -> dict[str, Any]:
        return {"text": plain(text[:75]), "value": value}

    scopes = [option(value, words) for value, words in BULK_SCOPES.items()]
    durations = [option(value, f"{value} days") for value in DURATIONS] + [option(ON_A_DATE, "Until a date…")]
    metadata = {"group": binding.group_id, "upto": binding.upto, "version": binding.version, "channel": view.channel}
    question = (
        f"Dismiss the findings 1–{binding.upto:,} of this group still awaiting approval "
        f"({code_span(view.finding_type, 200)} in {code_span(f's3://{view.bucket}/', 300)})? "
        "The reason is recorded on each."
    )
    return {
        "type": "modal",
        "callback_id": BULK_FORM_CALLBACK,
        "title": plain("Dismiss findings"),
        "submit": plain("Dismiss all"),
        "close": plain("Cancel"),
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": question}},
            {
                "type": "input",
                "block_id": "reason",
                "label": plain("Why are these fine?"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason",
                    "multiline": True,
                    "max_length": MAX_REASON_CHARS,
                },
            },
            {
                "type": "input",
                "block_id": "scope",
                "label": plain("Exempt from now on"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": "scope",
                    "options": scopes,
                    "initial_option": scopes[0],
                },
            },
            {
                "type": "input",
                "block_id": "duration",
                "label": plain("For (the bucket's exemption)"),
                "element": {
                    "type": "static_select",
                    "action_id": "duration",
                    "options": durations,
                    "initial_option": durations[list(DURATIONS).index(DEFAULT_DURATION)],
                },
            },
            {
                "type": "input",
                "block_id": "until",
                "optional": True,
                "label": plain("Until (with “Until a date…”, at most a year ahead)"),
                "element": {"type": "datepicker", "action_id": "until"},
            },
        ],
    }


def _open_bulk_form(click: GroupClick, deps: Dependencies, binding: BulkBinding, authorised: Authorised) -> Answer:
    from macie_chatops.dismissal import TRIGGER_ERRORS
    from macie_chatops.errors import SlackError

    if deps.modals is None or deps.exemptions is None:
        return click.refuse(
            "dismissal form unavailable", "The dismissal form cannot be opened here; nothing was changed.", "no_form"
        )
    if not click.trigger_id:
        return click.refuse(
            "click without a trigger id", "Slack did not allow a form to open; click again.", "no_trigger"
        )
    try:
        view_id = deps.modals.open_view(click.trigger_id, bulk_form(authorised.view, binding))
    except SlackError as exc:
        expired = exc.error_code in TRIGGER_ERRORS
        return click.refuse(
            f"bulk dismissal form not opened: {exc.error_code or type(exc).__name__}",
            "The dismissal form could not be opened in time; click again."
            if expired
            else "The dismissal form could not be opened just now; nothing was changed. Please try again.",
            "trigger_expired" if expired else "form_not_opened",
        )
    logger.info("bulk dismissal form %s opened for %s by %s", view_id, describe(binding), click.user_id)
    return click.answer(200, {}, "accepted", f"bulk dismissal form opened for {describe(binding)}", "form_opened")


def is_bulk_submission(body: bytes) -> bool:
    try:
        raw = _form_payload(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    view = raw.get("view") if isinstance(raw, dict) else None
    return isinstance(view, dict) and view.get("callback_id") == BULK_FORM_CALLBACK


def handle_bulk_submission(body: bytes, deps: Dependencies) -> Answer:
    """The bulk dismissal form's signed submission: read strictly, authorised again, applied to each member."""
    from macie_chatops.dismissal import modal_errors, read_submission

    payload = read_submission(body)
    if isinstance(payload, Answer):
        return payload
    click = GroupClick(
        action_id=names.ACTION_BULK_DISMISS,
        value="",
        user_id=payload.user.id,
        team_id=payload.team.id if payload.team else None,
        enterprise_id=payload.team.enterprise_id if payload.team else None,
        channel_ids=frozenset(),
        response_url=None,
        trigger_id=None,
    )

    def in_the_form(reason: str, text: str, category: str) -> Answer:
        return click.answer(200, modal_errors({"reason": text[:1000]}), "refused", reason, category)

    if payload.view.callback_id != BULK_FORM_CALLBACK:
        return refused("unknown view", "This form does not belong to this app.", "unknown_view")
    try:
        metadata = BulkFormMetadata.model_validate(json.loads(payload.view.private_metadata))
    except (ValueError, RecursionError, ValidationError):
        return in_the_form("private metadata unreadable", "This form cannot be read.", "bad_metadata")
    binding = BulkBinding(metadata.group, metadata.upto, metadata.version)
    click = dataclasses.replace(click, channel_ids=frozenset({metadata.channel}))
    authorised = _authorise_group(click, deps, binding.group_id, in_the_form)
    if isinstance(authorised, Answer):
        return authorised
    return _submit_bulk(click, deps, binding, authorised, payload.view.state.get("values", {}))


def _read_bulk_values(values: Mapping[str, Mapping[str, Any]], now: datetime) -> Submission | dict[str, str]:
    """The form's values, by the single dismissal's rules (``dismissal.read_values``: the reason, the duration);
    the scope is one of :data:`BULK_SCOPES`."""
    from macie_chatops.dismissal import read_values

    read = read_values(values, _NO_RECORD, now)
    if isinstance(read, dict) or read.scope in (Scope.FINDING, Scope.BUCKET):
        return read
    return {"scope": "Choose these findings or this bucket."}


_NO_RECORD: Final = FindingRecord(finding_id="-", state=State.PENDING_APPROVAL, received_at="", updated_at="")


def _submit_bulk(
    click: GroupClick,
    deps: Dependencies,
    binding: BulkBinding,
    authorised: Authorised,
    values: Mapping[str, Mapping[str, Any]],
) -> Answer:
    from macie_chatops.dismissal import modal_errors

    deadline = time.monotonic() + BULK_BUDGET_S
    now = deps.clock()
    read = _read_bulk_values(values, now)
    if not isinstance(read, Submission):
        return click.answer(
            200, modal_errors(read), "refused", f"form invalid: {', '.join(sorted(read))}", "form_invalid"
        )
    assert deps.groups is not None  # checked by _authorise_group
    if read.scope is Scope.BUCKET and deps.exemptions is None:  # before any member is dismissed
        raise ValueError("a bucket-wide dismissal needs Dependencies.exemptions")
    dismissed: list[FindingRecord] = []
    detail = f"bulk form, {describe(binding)}, in {authorised.view.channel}, approver via {authorised.via}"

    def act(member: GroupMember) -> Done:
        record = deps.store.get(member.finding_id)
        if record is None or not _in_group(record, binding, member) or record.team != authorised.team_name:
            return Done.REFUSED
        if (record.slack_channel or record.channel) != authorised.view.channel:
            return Done.REFUSED
        done, final = _dismiss_one(click, deps, record, read, detail)
        if final is not None:
            dismissed.append(final)
        return done

    progress = _each(listed(deps.groups, binding), act, deadline=deadline, upto=binding.upto)
    exemption = (
        _bucket_exemption(click, deps, dismissed, read, now) if read.scope is Scope.BUCKET and dismissed else None
    )
    since = max(0, authorised.view.member_count - binding.upto)
    text = report(progress.counts(), verb="dismiss", listed=binding.upto, since=since)
    if exemption:
        text += f"\n{escape_mrkdwn(exemption)}"
    logger.info("bulk dismiss of %s by %s: %s", describe(binding), click.user_id, progress.tally())
    return click.answer(200, _result_view(text), "accepted", f"bulk dismiss {describe(binding)}: {progress.tally()}")


def _dismiss_one(
    click: GroupClick, deps: Dependencies, record: FindingRecord, read: Submission, detail: str
) -> tuple[Done, FindingRecord | None]:
    """Count this dismissal (``interaction.count_approval``); the one that completes it dismisses."""
    try:
        count = count_approval(
            deps.store,
            record,
            action=ClickAction.DISMISS,
            user_id=click.user_id,
            detail=f"{detail}, reason: {read.reason}",
        )
    except FindingNotFoundError:
        return Done.REFUSED, None
    if count.counted is Counted.NOT_PENDING:
        return Done.HANDLED, None
    if count.counted is Counted.ALREADY_COUNTED:
        return Done.ALREADY_COUNTED, None
    if count.counted is Counted.RECORDED:
        return Done.COUNTED, None
    words = f"{count.words}, " if count.required > 1 else ""
    scope = "this bucket's exemption follows" if read.scope is Scope.BUCKET else "no exemption (these findings only)"
    token = f"form {uuid.uuid4().hex[:16]}"
    change = StateChange(
        expected=State.PENDING_APPROVAL,
        target=State.DISMISSED,
        actor=click.user_id,
        event="form:dismiss",
        detail=f"{words}{detail}, reason: {read.reason}; {scope}, {token}",
        undo_event="form:dismiss:undone",
        undo_detail=lambda exc: f"not undone ({type(exc).__name__})",
        token=token,
    )
    changed = apply_change(deps.store, record.finding_id, change)
    if not changed.applied:
        return Done.HANDLED, None
    return Done.APPROVED, changed.record


def _bucket_exemption(
    click: GroupClick, deps: Dependencies, dismissed: Sequence[FindingRecord], read: Submission, now: datetime
) -> str:
    """The one exemption a bucket-wide bulk dismissal creates (this finding type); what to tell the clicker."""
    from macie_chatops.exemption_store import ExemptionError
    from macie_chatops.exemptions import Target, until_text

    assert deps.exemptions is not None  # checked by _submit_bulk before any dismissal
    first = next((record for record in dismissed if record.summary is not None), None)
    if first is None or first.summary is None:
        return "No exemption was recorded: none of these findings names a bucket."
    exemption = exemption_for(read, Target.of(first.summary), finding_id=first.finding_id, by=click.user_id, at=now)
    try:
        deps.exemptions.add(exemption)
    except ExemptionError as exc:
        logger.error("bulk dismissal done, but its exemption was refused: %s", exc)
        return f"No exemption was recorded: {exc}"
    return f"Exemption {exemption.id}: {exemption.describe_scope()}, until {until_text(exemption.until)}."


def _result_view(text: str) -> dict[str, Any]:
    """What the modal shows once submitted (a view_submission has no response_url)."""
    return {
        "response_action": "update",
        "view": {
            "type": "modal",
            "title": {"type": "plain_text", "text": "Findings dismissed"},
            "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": text[:3000]}}],
        },
    }
