"""A verified Slack button click: read it, authorise it, apply it, answer it.

Called by ``handlers.interaction`` only after ``slack_request.verify`` accepted the signature. The record,
never the payload, says which object and which team. The rules:

1. Only ``block_actions`` with one of our action ids, from the configured workspace (``team.id``, or
   ``team.enterprise_id`` when the configured id is an Enterprise Grid org ``E…``), is acted on.
2. The button's value names the finding; unknown ids are refused and logged (there is no record to audit).
3. The click must come from the channel the finding was posted to, by an approver of the finding's team: a
   listed user id, or a member of a listed user group (looked up through Slack, cached with a short TTL).
4. Each button is one conditional transition (:data:`RULES`), then its job, if any
   (``job_request.request_job``, undone when the queue refuses it). The loser of a race, a second click or a
   click on a finding already handled is told what happened, by whom and when.
5. Every click on a known finding, accepted or refused, is in its audit trail.
6. The answer is the HTTP body and is also posted to the click's ``response_url``: Slack ignores the HTTP
   body for ``block_actions``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Protocol
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from macie_chatops import names
from macie_chatops.config import MAX_APPROVALS, Config, Team
from macie_chatops.job_request import JobRequest, Requested, StateChange, apply_change, describe, request_job
from macie_chatops.jobs import AUTO_APPROVER, RemediationJob
from macie_chatops.ports import Clock, JobQueue, SlackUpdater, utcnow
from macie_chatops.slack_messages import (
    build_approved_message,
    build_dismissed_message,
    build_restoring_message,
    build_review_message,
    code_span,
    escape_mrkdwn,
)
from macie_chatops.states import Failure, State
from macie_chatops.store import FindingNotFoundError, FindingRecord, FindingStore, StoreError

if TYPE_CHECKING:
    from macie_chatops.approvals import ApprovalSigner
    from macie_chatops.bulk import GroupReader
    from macie_chatops.bulk_continuation import Continuation
    from macie_chatops.dismissal import ModalOpener
    from macie_chatops.exemptions import Exemption

logger = logging.getLogger(__name__)

FINDING_ID_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # finding.py's pattern for Macie ids
_USER_RE: Final = re.compile(r"[UW][A-Z0-9]{2,40}")
MAX_FORM_FIELDS: Final = 8
INTERNAL_ERROR_TEXT: Final = "Something went wrong on our side; the click may not have been recorded."
GROUP_CACHE_TTL_SECONDS: Final = 60.0
# What handle_interaction dispatches to bulk.py on (§22): a digest's or a page's element, the "Dismiss all" form.
GROUP_ACTIONS: Final = frozenset({names.ACTION_BULK_REMEDIATE, names.ACTION_BULK_DISMISS, names.ACTION_ACT_ON_ONE})
BULK_FORM_CALLBACK: Final = "macie_chatops.bulk_dismiss_form"


# --------------------------------------------------------------------------------------------------------
# Response bodies (what Slack understands)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to one request, and what to log about it (never the body or a secret)."""

    status: int
    body: Mapping[str, Any]
    outcome: str  # accepted | refused | rejected (bad input) | failed (could not complete)
    reason: str
    finding_id: str | None = None
    user_id: str | None = None
    action: str | None = None
    response_url: str | None = field(default=None, repr=False)  # a capability: never logged
    delivered: bool | None = None  # the answer reached Slack through response_url (None: not attempted)
    category: str = ""  # the reason's kind in a word, for metrics (few values; "" when accepted)

    def to_http(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": {"Content-Type": "application/json; charset=utf-8"},
            "body": json.dumps(self.body, ensure_ascii=False, separators=(",", ":")),
        }


def ephemeral(text: str) -> dict[str, Any]:
    """A reply only the clicker sees, leaving the original message as it is."""
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def replacement(message: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the clicked message (``message`` is ``SlackMessage.to_dict()``: text + blocks)."""
    return {"replace_original": True, "text": message["text"], "blocks": message["blocks"]}


def bad_request(status: int, reason: str, text: str = "This request could not be read.") -> Answer:
    return Answer(status, ephemeral(text), "rejected", reason, category="bad_request")


def refused(reason: str, text: str, category: str) -> Answer:
    return Answer(200, ephemeral(text), "refused", reason, category=category)


# --------------------------------------------------------------------------------------------------------
# The payload
# --------------------------------------------------------------------------------------------------------


class _Slack(BaseModel):
    # Slack adds fields over time: ignore what we do not use, but type what we do, strictly.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


SlackId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,40}$")]
Short = Annotated[str, StringConstraints(max_length=255)]


class PayloadUser(_Slack):
    id: SlackId
    username: Short | None = None
    name: Short | None = None


class PayloadTeam(_Slack):
    id: SlackId
    enterprise_id: SlackId | None = None


class PayloadChannel(_Slack):
    id: SlackId


class PayloadContainer(_Slack):
    type: Short
    channel_id: SlackId | None = None
    message_ts: Short | None = None
    is_ephemeral: bool | None = None


class PayloadAction(_Slack):
    action_id: Short
    type: Short
    value: Annotated[str, StringConstraints(max_length=2000)] | None = None


class BlockActionsPayload(_Slack):
    """The fields of a ``block_actions`` payload that decide anything (Slack's reference, trimmed)."""

    type: Literal["block_actions"]
    user: PayloadUser
    team: PayloadTeam | None = None
    channel: PayloadChannel | None = None
    container: PayloadContainer | None = None
    actions: list[PayloadAction] = Field(min_length=1, max_length=1)
    response_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    trigger_id: Annotated[str, StringConstraints(max_length=255)] | None = None  # opens a modal (3 s, once)


class ClickAction(StrEnum):
    REMEDIATE = names.ACTION_REMEDIATE
    DISMISS = names.ACTION_DISMISS
    RESTORE = names.ACTION_RESTORE
    BLOCK_PUBLIC_ACCESS = names.ACTION_BLOCK_PUBLIC_ACCESS  # a policy finding's fix (§18)
    UNDO_BLOCK_PUBLIC_ACCESS = names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS


@dataclass(frozen=True)
class Click:
    """One button click, as far as the payload can say: who, where, which button, which finding id."""

    action: ClickAction
    value: str
    user_id: str
    team_id: str | None
    enterprise_id: str | None
    channel_ids: frozenset[str]  # channel.id and container.channel_id (both, when both are present)
    response_url: str | None = None  # where Slack takes the answer for block_actions (it ignores the body)
    trigger_id: str | None = field(default=None, repr=False, compare=False)  # lets it open a modal (dismissal.py)
    from_ephemeral: bool = field(default=False, compare=False)  # clicked in a message only the clicker sees

    @property
    def finding_id(self) -> str | None:
        """The button's value, when it can be a finding id at all."""
        return self.value if FINDING_ID_RE.fullmatch(self.value) else None


def parse_click(body: bytes) -> Click | Answer:
    """The click in a verified body, or the answer to give when there is none we act on."""
    try:
        text = body.decode("utf-8")
        form = parse_qs(text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return bad_request(400, "body is not form-encoded")
    values = form.get("payload")
    if not values:
        return bad_request(400, "form has no payload field")
    if len(values) > 1:
        return bad_request(400, "form has more than one payload field")
    try:
        raw = json.loads(values[0])
    except (ValueError, RecursionError):
        return bad_request(400, "payload is not JSON")
    if not isinstance(raw, dict):
        return bad_request(400, "payload is not a JSON object")
    kind = raw.get("type")
    if kind != "block_actions":
        shown = kind if isinstance(kind, str) and len(kind) <= 40 and kind.isidentifier() else "?"
        return refused(
            f"unsupported interaction type {shown}", "This app only handles its own buttons.", "unsupported_interaction"
        )
    try:
        payload = BlockActionsPayload.model_validate(raw)
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "(payload)"
        return bad_request(400, f"block_actions payload has the wrong shape at {where}")
    action = payload.actions[0]
    try:
        click_action = ClickAction(action.action_id)
    except ValueError:
        return refused("unknown action id", "This button does not belong to this app.", "unknown_action")
    channels = {c for c in (payload.channel.id if payload.channel else None,) if c}
    if payload.container is not None and payload.container.channel_id:
        channels.add(payload.container.channel_id)
    return Click(
        action=click_action,
        value=action.value or "",
        user_id=payload.user.id,
        team_id=payload.team.id if payload.team else None,
        enterprise_id=payload.team.enterprise_id if payload.team else None,
        channel_ids=frozenset(channels),
        response_url=payload.response_url,
        trigger_id=payload.trigger_id,
        from_ephemeral=bool(payload.container is not None and payload.container.is_ephemeral),
    )


def same_workspace(click: Click, team_id: str) -> bool:
    """Clicks count only from the configured workspace (or the configured Enterprise Grid org)."""
    if click.team_id == team_id:
        return True
    return team_id.startswith("E") and click.enterprise_id == team_id


# --------------------------------------------------------------------------------------------------------
# Approvers
# --------------------------------------------------------------------------------------------------------


class DirectoryError(Exception):
    """Group membership could not be read (Slack down, rate-limited, missing scope): decide nothing."""


@dataclass
class ApproverDirectory:
    """Members of Slack user groups, cached per container for ``ttl`` seconds (usergroups.users.list is Tier 2).

    ``lookup`` is ``SlackClient.usergroup_members``; any exception it raises becomes a DirectoryError, so a
    Slack failure refuses the click (nothing changes) instead of failing the request. Concurrent clicks
    that miss the cache wait for one lookup per group instead of each asking Slack (single flight).
    """

    lookup: Callable[[str], Iterable[str]]
    ttl: float = GROUP_CACHE_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _inflight: dict[str, threading.Lock] = field(default_factory=dict, init=False, repr=False)

    def _fresh(self, group_id: str) -> frozenset[str] | None:
        with self._lock:
            cached = self._cache.get(group_id)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        return None

    def members(self, group_id: str) -> frozenset[str]:
        members = self._fresh(group_id)
        if members is not None:
            return members
        with self._lock:
            flight = self._inflight.setdefault(group_id, threading.Lock())
        with flight:
            members = self._fresh(group_id)  # filled while we waited for the lookup in flight
            if members is not None:
                return members
            asked_at = self.clock()
            try:
                members = frozenset(self.lookup(group_id))
            except Exception as exc:  # any Slack/transport failure: cannot decide, refuse the click
                raise DirectoryError(f"members of {group_id} unavailable ({type(exc).__name__})") from exc
            with self._lock:
                self._cache[group_id] = (asked_at, members)
            return members


@dataclass(frozen=True)
class Authorisation:
    allowed: bool
    via: str  # "user" or the group id that granted it, or why not


def authorise(user_id: str, team: Team, directory: ApproverDirectory) -> Authorisation:
    """Is ``user_id`` an approver of ``team``: listed by id, or a member of a listed user group?

    Listed users are checked first so Slack is asked only when the answer depends on a group. If a group
    cannot be read and no other group grants, DirectoryError propagates (the caller refuses the click).
    """
    if user_id in team.approver_users:
        return Authorisation(True, "user")
    failure: DirectoryError | None = None
    for group in sorted(team.approver_groups):
        try:
            if user_id in directory.members(group):
                return Authorisation(True, group)
        except DirectoryError as exc:
            failure = exc
    if failure is not None:
        raise failure
    return Authorisation(False, "not listed")


# --------------------------------------------------------------------------------------------------------
# Applying a click
# --------------------------------------------------------------------------------------------------------


class Responder(Protocol):
    """Delivers an answer to a click's ``response_url`` (Slack ignores the HTTP body for block_actions)."""

    def allows(self, url: str) -> bool: ...

    def send(self, url: str, body: Mapping[str, Any]) -> None: ...


class ContinuationSender(Protocol):
    """Signs and sends a bulk approval's continuation (``bulk_continuation.Continuations``; the interaction
    handler's builds that only when a bulk click sends one, docs/architecture.md §6)."""

    def enqueue(self, continuation: Continuation) -> None: ...


class ExemptionRecorder(Protocol):
    """Records a dismissal's exemption (``exemption_store.ExemptionStore``; the interaction handler's builds that
    only when a dismissal first records one, docs/architecture.md §6)."""

    def add(self, exemption: Exemption) -> Exemption: ...


SLACK_RESPONSE_URL_PREFIXES: Final = ("https://hooks.slack.com/", "https://hooks.slack-gov.com/")


class WebhookResponder:
    """slack_sdk's WebhookClient, only towards ``allowed_prefixes`` (Slack's hooks host, or the sandbox's
    stand-in): the URL comes in a signed payload, but we still never POST to a host Slack would not use."""

    def __init__(self, allowed_prefixes: Iterable[str] = SLACK_RESPONSE_URL_PREFIXES, *, timeout_s: int = 2) -> None:
        self._prefixes = tuple(p if p.endswith("/") else p + "/" for p in allowed_prefixes)
        self._timeout = timeout_s

    def allows(self, url: str) -> bool:
        return url.startswith(self._prefixes) and not any(c in url for c in "\r\n\t @")

    def send(self, url: str, body: Mapping[str, Any]) -> None:
        from slack_sdk.webhook import WebhookClient

        response = WebhookClient(url, timeout=self._timeout).send_dict(dict(body))
        if response.status_code != 200:
            answer = str(response.body)[:60] if response.body else ""
            raise ResponseUrlError(f"response_url answered HTTP {response.status_code} {answer}".strip())


class ResponseUrlError(Exception):
    """Slack did not take the answer posted to a response_url."""


@dataclass(frozen=True)
class Dependencies:
    config: Config
    store: FindingStore
    queue: JobQueue
    directory: ApproverDirectory
    responder: Responder | None = None
    clock: Clock = field(default=utcnow)
    # Dismiss with a reason (docs/architecture.md §16): the form, the exemptions it creates, and the finding's
    # message (a form's submission has no response_url). Without the first two, a Dismiss (an object or a policy
    # finding's) is refused: it never dismisses without a reason.
    modals: ModalOpener | None = None
    exemptions: ExemptionRecorder | None = None
    updater: SlackUpdater | None = None
    # Signs every approval a click makes (Remediate, Restore, Block public access, Undo: §23); without it such a
    # click fails before anything is written.
    signer: ApprovalSigner | None = None
    # A finding flood's groups (§22): the digest's bulk buttons and a page's "act on one" read them.
    groups: GroupReader | None = None
    # A bulk approval one click cannot finish goes on as signed continuations on this function's own queue (§22).
    continuations: ContinuationSender | None = None


@dataclass(frozen=True)
class _Rule:
    """What one button does: from which state, to which, and which job (if any) follows."""

    verb: str
    expected: State
    target: State
    job: Literal["quarantine", "restore", "block_public_access", "undo_block_public_access"] | None


RULES: Final[Mapping[ClickAction, _Rule]] = {
    ClickAction.REMEDIATE: _Rule("remediate", State.PENDING_APPROVAL, State.APPROVED, "quarantine"),
    ClickAction.DISMISS: _Rule("dismiss", State.PENDING_APPROVAL, State.DISMISSED, None),
    ClickAction.RESTORE: _Rule("restore", State.QUARANTINED, State.RESTORE_REQUESTED, "restore"),
    ClickAction.BLOCK_PUBLIC_ACCESS: _Rule(
        "block_public_access", State.PENDING_APPROVAL, State.APPROVED, "block_public_access"
    ),
    ClickAction.UNDO_BLOCK_PUBLIC_ACCESS: _Rule(
        "undo_block_public_access", State.PUBLIC_ACCESS_BLOCKED, State.UNDO_REQUESTED, "undo_block_public_access"
    ),
}
SEND_ATTEMPTS: Final = 2  # each attempt already carries botocore's own retries


def _mention(actor: str | None) -> str:
    if not actor or actor == AUTO_APPROVER:
        return "automatically (policy)"
    if _USER_RE.fullmatch(actor):
        return f"<@{actor}>"
    return escape_mrkdwn(actor[:80])


def _time(iso: str | None) -> str:
    """A Slack date token (each reader's time zone) with a UTC fallback; the raw text if unparseable."""
    if not iso:
        return "an unknown time"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return escape_mrkdwn(iso[:40])
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def what_happened(record: FindingRecord, *, first: FindingRecord | None = None) -> str:
    """One sentence for a clicker who came too late: what the finding's state is, by whom, since when.

    ``first``: for a DUPLICATE, the record of the finding that holds its object version (its state is said)."""
    if record.state is State.DUPLICATE:
        held = f"This object version is already handled under finding {code_span(record.duplicate_of or '?', 200)}"
        return f"{held} ({first.state.value.lower().replace('_', ' ')})." if first is not None else f"{held}."
    entry = record.entry_into_state
    who = _mention(entry.actor if entry else record.approver)
    when = _time(entry.at if entry else record.updated_at)
    state = record.state
    if state is State.APPROVED:
        return f"This finding was already approved by {who} on {when}; the quarantine is under way."
    if state is State.DISMISSED:
        return f"This finding was already dismissed by {who} on {when}."
    if state is State.QUARANTINED:
        return f"This finding was already quarantined (approved by {_mention(record.approver)}; moved on {when})."
    if state is State.BLOCKED:
        return f"The quarantine of this finding was blocked on {when} (approved by {_mention(record.approver)})."
    if state is State.FAILED:
        # What the remediator recorded: only a transient failure goes back to the queue by itself.
        if Failure.of(record.outcome).retryable:
            return f"The quarantine of this finding failed on {when}; it will be retried automatically."
        return (
            f"The quarantine of this finding failed on {when} and will not be retried automatically: "
            "an operator fixes the cause, then retries it."
        )
    if state is State.RESTORE_REQUESTED:
        return f"A restore of this finding was already requested by {who} on {when}."
    if state is State.RESTORED:
        return f"This finding's object was already restored (requested by {who}, done on {when})."
    if state is State.PUBLIC_ACCESS_BLOCKED:
        return f"This bucket's public access was already blocked on {when} (approved by {_mention(record.approver)})."
    if state is State.UNDO_REQUESTED:
        return f"An Undo of this finding's block was already requested by {who} on {when}."
    if state is State.UNDONE:
        return f"This finding's block was already undone (requested by {who}, done on {when})."
    if state is State.PENDING_APPROVAL:
        return "This finding is awaiting approval: there is nothing to restore."
    return f"This finding is not awaiting approval (it is {state.value.lower().replace('_', ' ')})."


def _message_for(rule: _Rule, record: FindingRecord, user_id: str, at: datetime) -> dict[str, Any]:
    """The replacement for the clicked message in the finding's new state (no buttons)."""
    if record.policy is not None:  # a policy finding's message is rendered from its record (§18)
        from macie_chatops.policy_messages import policy_message

        message = policy_message(record)
        if message is not None:
            return replacement(message.to_dict())
    summary = record.summary
    if summary is not None:
        try:
            if rule.target is State.APPROVED:
                approved = build_approved_message(summary, approver=user_id, at=at, earlier_approvers=record.approvals)
                return replacement(approved.to_dict())
            if rule.target is State.DISMISSED:
                return replacement(build_dismissed_message(summary, by=user_id, at=at).to_dict())
            return replacement(build_restoring_message(summary, by=user_id, at=at).to_dict())
        except Exception:  # the state has changed already: answer with plain text rather than not at all
            logger.exception("could not render the %s message for %s", rule.target.value, record.finding_id)
    words = {
        State.APPROVED: f"Approved by <@{user_id}>; quarantining…",
        State.DISMISSED: f"Dismissed by <@{user_id}>.",
        State.RESTORE_REQUESTED: f"Restore requested by <@{user_id}>; restoring…",
    }[rule.target]
    text = f"{words} (finding {code_span(record.finding_id, 200)})"
    return {"replace_original": True, "text": text, "blocks": []}


@dataclass(frozen=True)
class _Context:
    click: Click
    finding_id: str
    deps: Dependencies
    note: str = ""  # added to the audit detail of what the click does (a bulk click names its group, §22)

    def answer(self, status: int, body: Mapping[str, Any], outcome: str, reason: str, category: str = "") -> Answer:
        click = self.click
        return Answer(
            status, body, outcome, reason, self.finding_id, click.user_id, click.action.value, category=category
        )

    def refuse(self, reason: str, text: str, *, category: str, audit: bool = True) -> Answer:
        """Refuse the click; audit it on the record (when there is one)."""
        if audit:
            self.audit("refused", reason)
        return self.answer(200, ephemeral(text), "refused", reason, category)

    def audit(self, outcome: str, detail: str) -> None:
        try:
            result = self.deps.store.append_audit(
                self.finding_id, actor=self.click.user_id, event=_event(self.click), outcome=outcome, detail=detail
            )
        except FindingNotFoundError:
            logger.warning("audit skipped: finding %s has no record", self.finding_id)
            return
        except Exception:  # the refusal stands; the trail misses one line, which the log records
            logger.exception("could not audit a %s click on %s", outcome, self.finding_id)
            return
        if not result.applied:
            logger.warning("audit trail of %s is full; refused click logged only: %s", self.finding_id, detail)


def _event(click: Click) -> str:
    return f"click:{RULES[click.action].verb}"


def handle_click(body: bytes, deps: Dependencies) -> Answer:
    """Everything after the signature: read the click, authorise it, apply it, answer within Slack's 3 s.

    The answer is returned (the HTTP body) and, for a click, also posted to its ``response_url``: for
    ``block_actions`` Slack ignores the HTTP body, so the replacement message or the ephemeral refusal
    reaches the channel or the clicker only that way. A failed delivery changes nothing already decided.
    """
    parsed = parse_click(body)
    if isinstance(parsed, Answer):
        return parsed
    try:
        answer = _handle(parsed, deps)
    except Exception:
        # The caller logs and answers; the clicker, who never sees the HTTP body, hears it in Slack.
        sorry = ephemeral(f"{INTERNAL_ERROR_TEXT} Please try again: a second click is safe.")
        failed = Answer(
            200, sorry, "failed", "internal error", response_url=parsed.response_url, category="internal_error"
        )
        _deliver(failed, deps)
        raise
    answer = _not_over_a_digest(answer, parsed, deps)
    return _deliver(dataclasses.replace(answer, response_url=parsed.response_url), deps)


def _not_over_a_digest(answer: Answer, click: Click, deps: Dependencies) -> Answer:
    """The answer replaces the clicked message, unless that message has become its group's digest (§22; a click
    on the first finding's own buttons before the digest replaced them): then only the clicker is told, and the
    digest writer shows the finding's new state."""
    if click.from_ephemeral or deps.groups is None or answer.finding_id is None:
        return answer
    if not answer.body.get("replace_original"):
        return answer
    record = deps.store.get(answer.finding_id)
    if record is None or not shows_digest(deps, record):
        return answer
    return dataclasses.replace(answer, body=ephemeral(str(answer.body.get("text") or "Done.")))


def shows_digest(deps: Dependencies, record: FindingRecord) -> bool:
    """Is ``record``'s message its group's digest now (a group's first member, once a second joined)? Then a
    single finding's rendering must not replace it: the digest writer shows the member's new state."""
    if record.group_id is None or record.group_seq != 1 or deps.groups is None:
        return False
    view = deps.groups.view(record.group_id)
    return view is not None and view.member_count > 1


def _deliver(answer: Answer, deps: Dependencies) -> Answer:
    url, responder = answer.response_url, deps.responder
    if url is None or responder is None or not answer.body:  # an empty body: nothing to say (a modal opened)
        return answer
    if not responder.allows(url):
        logger.warning("response_url of a %s click is not a Slack hooks URL; not used", answer.outcome)
        return dataclasses.replace(answer, delivered=False)
    try:
        responder.send(url, answer.body)
    except Exception as exc:  # the decision stands; the remediator's chat.update will show the outcome
        logger.warning("answer to a %s click not delivered to response_url: %s", answer.outcome, type(exc).__name__)
        return dataclasses.replace(answer, delivered=False)
    return dataclasses.replace(answer, delivered=True)


def _handle(click: Click, deps: Dependencies) -> Answer:
    finding_id = click.finding_id
    if finding_id is None:
        return Answer(
            200,
            ephemeral("This button does not name a finding this app knows."),
            "refused",
            f"button value is not a finding id ({len(click.value)} chars)",
            None,
            click.user_id,
            click.action.value,
            category="no_finding_id",
        )
    context = _Context(click, finding_id, deps)
    if not same_workspace(click, deps.config.slack.team_id):
        # Audited on the record if the id names one (the store refuses an unknown id; the log keeps it).
        shown = click.team_id if click.team_id and len(click.team_id) <= 40 else "none"
        return context.refuse(
            f"wrong workspace {shown}",
            "This app does not act on clicks from this Slack workspace.",
            category="wrong_workspace",
        )
    record = deps.store.get(finding_id)
    if record is None:
        return context.refuse(
            "unknown finding",
            "This button names a finding this app does not know.",
            category="unknown_finding",
            audit=False,
        )
    return _apply(context, record)


def _apply(context: _Context, record: FindingRecord) -> Answer:
    click, deps = context.click, context.deps
    posted_in = record.slack_channel or record.channel
    if not click.channel_ids or click.channel_ids != {posted_in}:
        return context.refuse(
            "click from another channel than the finding's message",
            "This finding can only be handled from the channel it was posted to.",
            category="wrong_channel",
        )
    team = deps.config.teams.get(record.team)
    if team is None:
        return context.refuse(
            f"team {record.team!r} is not configured",
            f"The team of this finding ({escape_mrkdwn(record.team or 'none')}) is no longer configured.",
            category="team_not_configured",
        )
    team_name = escape_mrkdwn(record.team)
    try:
        authorisation = authorise(click.user_id, team, deps.directory)
    except DirectoryError as exc:
        return context.refuse(
            f"approver groups unavailable: {exc}",
            "Could not check the approver groups just now; nothing was changed. Please try again in a minute.",
            category="approver_groups_unavailable",
        )
    if not authorisation.allowed:
        return context.refuse(
            f"not an approver for team {record.team}",
            f"You are not an approver for team {team_name}; nothing was changed.",
            category="not_an_approver",
        )
    rule = RULES[click.action]
    if record.state is not rule.expected:
        first = deps.store.get(record.duplicate_of) if record.state is State.DUPLICATE and record.duplicate_of else None
        return context.refuse(
            f"finding is {record.state.value}", what_happened(record, first=first), category="already_handled"
        )
    if click.action is ClickAction.DISMISS:  # an object or a policy finding: asks why (§16)
        if not asks_reason(deps):
            return context.refuse(
                "dismissal form unavailable (no modals or exemption store)",
                "The dismissal form cannot be opened here; nothing was changed.",
                category="form_not_opened",
            )
        from macie_chatops.dismissal import open_form

        return open_form(context, record)
    where = f"in {posted_in}, approver via {authorisation.via}{context.note}"
    if click.action in APPROVAL_LISTS:
        return _count_then_request(context, rule, record, where)
    return _request(context, rule, where, record=record)


# --------------------------------------------------------------------------------------------------------
# Approvals: how many different approvers Remediate and Dismiss need (docs/architecture.md §15)
# --------------------------------------------------------------------------------------------------------

# The record's list of partial approvals for each action that needs approvals_required approvers.
# A policy finding's Block public access is its Remediate: the same list, the same count (§15, §18).
APPROVAL_LISTS: Final[Mapping[ClickAction, str]] = {
    ClickAction.REMEDIATE: "approvals",
    ClickAction.DISMISS: "dismissals",
    ClickAction.BLOCK_PUBLIC_ACCESS: "approvals",
}
_APPROVAL_WORDS: Final[Mapping[ClickAction, tuple[str, str]]] = {
    ClickAction.REMEDIATE: ("approval", "approved"),
    ClickAction.DISMISS: ("dismissal", "dismissed"),
    ClickAction.BLOCK_PUBLIC_ACCESS: ("approval", "approved"),
}


class Counted(StrEnum):
    COMPLETES = "completes"  # the last approval needed: the caller makes the transition now (nothing written)
    RECORDED = "recorded"  # an approval short of the count, written on the record (``record`` after it)
    ALREADY_COUNTED = "already_counted"  # this user has already approved this action: nothing written
    NOT_PENDING = "not_pending"  # the finding is no longer awaiting approval: nothing written


@dataclass(frozen=True)
class ApprovalCount:
    """What :func:`count_approval` did. ``approvers``: who has approved the action so far, in order, with the
    clicker last when their approval was recorded or completes it."""

    counted: Counted
    record: FindingRecord
    approvers: tuple[str, ...]
    required: int
    action: ClickAction

    @property
    def words(self) -> str:
        """``approval 2 of 2 (U1, U2)``: for audit details and logs (user ids, never mentions)."""
        noun = _APPROVAL_WORDS[self.action][0]
        return f"{noun} {len(self.approvers)} of {self.required} ({', '.join(self.approvers)})"


def approvals_required(record: FindingRecord) -> int:
    """The number of different approvers the record's finding needs, as decided at intake (1 before §15): an
    object finding's summary or a policy finding's carries it."""
    if record.summary is not None:
        return record.summary.approvals_required
    return record.policy.approvals_required if record.policy is not None else 1


def approvals_so_far(record: FindingRecord, action: ClickAction) -> tuple[str, ...]:
    return record.dismissals if action is ClickAction.DISMISS else record.approvals


def count_approval(
    store: FindingStore, record: FindingRecord, *, action: ClickAction, user_id: str, detail: str
) -> ApprovalCount:
    """Count ``user_id``'s approval of ``action`` (Remediate or Dismiss) on a finding awaiting approval.

    The one rule for both actions, whatever asks (a button click, a modal's submission): an approval short of
    the finding's count is one conditional write on the record (``FindingStore.add_approval``: the list grows
    only by a user not in it yet, only while PENDING_APPROVAL, audited); the approval that reaches the count
    writes nothing here, and the caller's transition (conditional on PENDING_APPROVAL) is the one that wins or
    loses the race. With one approver required, every approval completes at once. A write refused because
    another approval came first is counted again on the record DynamoDB returned, so two different users
    clicking at once become "1 of 2" and a completion, never two partial approvals of the same slot."""
    required = approvals_required(record)
    noun = _APPROVAL_WORDS[action][0]
    for _ in range(MAX_APPROVALS + 1):  # a refused write always leads to an answer on the next pass
        so_far = approvals_so_far(record, action)
        if record.state is not State.PENDING_APPROVAL:
            return ApprovalCount(Counted.NOT_PENDING, record, so_far, required, action)
        if user_id in so_far:
            return ApprovalCount(Counted.ALREADY_COUNTED, record, so_far, required, action)
        if len(so_far) + 1 >= required:
            return ApprovalCount(Counted.COMPLETES, record, (*so_far, user_id), required, action)
        written = store.add_approval(
            record.finding_id,
            approvals=APPROVAL_LISTS[action],
            user=user_id,
            fewer_than=required - 1,
            event=f"click:{RULES[action].verb}",
            detail=f"{noun} {len(so_far) + 1} of {required}: {detail}",
        )
        if written.applied:
            return ApprovalCount(
                Counted.RECORDED, written.record, approvals_so_far(written.record, action), required, action
            )
        record = written.record
    raise StoreError(f"the {noun}s of {record.finding_id} kept changing under {user_id}'s click")


def _count_then_request(context: _Context, rule: _Rule, record: FindingRecord, detail: str) -> Answer:
    """Remediate and Dismiss: count the approval; the one that reaches the count makes the transition."""
    click = context.click
    try:
        count = count_approval(context.deps.store, record, action=click.action, user_id=click.user_id, detail=detail)
    except FindingNotFoundError:
        return context.refuse(
            "finding record vanished", "This finding no longer exists.", category="unknown_finding", audit=False
        )
    done = _APPROVAL_WORDS[click.action][1]
    if count.counted is Counted.NOT_PENDING:
        return _lost_the_race(context, count.record)
    if count.counted is Counted.ALREADY_COUNTED:
        return context.refuse(
            f"already counted: {count.words}",
            f"You have already {done} this finding ({len(count.approvers)} of {count.required}); "
            f"{count.required} different approvers are needed, so someone else must confirm it.",
            category="already_counted",
        )
    if count.counted is Counted.RECORDED:
        return context.answer(200, _partial_message(count), "accepted", count.words, "approval_counted")
    if count.required > 1:
        detail = f"{count.words}, {detail}"
    return _request(context, rule, detail, record=count.record)


def _partial_message(count: ApprovalCount) -> dict[str, Any]:
    """The review message again, buttons and all, saying who has approved (or dismissed) so far."""
    record = count.record
    if record.policy is not None:  # a policy finding's review, rendered from its record (§18)
        from macie_chatops.policy_messages import policy_message

        policy = policy_message(record)
        if policy is not None:
            return replacement(policy.to_dict())
    if record.summary is not None:
        try:
            message = build_review_message(
                record.summary, reason=record.reason, approvals=record.approvals, dismissals=record.dismissals
            )
            return replacement(message.to_dict())
        except Exception:  # the approval is recorded already: answer with plain text rather than not at all
            logger.exception("could not render the review message for %s", record.finding_id)
    noun = _APPROVAL_WORDS[count.action][0]
    mentions = ", ".join(_mention(user) for user in count.approvers)
    return ephemeral(f"{len(count.approvers)} of {count.required} {noun}s by {mentions}; waiting for the next.")


def _request(context: _Context, rule: _Rule, detail: str, *, record: FindingRecord) -> Answer:
    """Make the click's transition and queue its job (undone when the queue refuses it); answer the clicker.
    A click that approves a job signs its approval of ``record``'s finding and target (§23)."""
    from macie_chatops.approvals import action_for, approval_for, iso

    click, deps = context.click, context.deps
    now = deps.clock()
    approval = None
    action = action_for(record, rule.job) if rule.job is not None else None
    if action is not None:
        approval = approval_for(record, action=action, approver=click.user_id, at=iso(now))
    # A token unique to this click, kept in the audit entry: if the SDK retried a write whose first attempt
    # was applied (response lost), the retry fails its condition, and the token says the win was ours.
    token = f"click {uuid.uuid4().hex[:16]}"
    change = StateChange(
        expected=rule.expected,
        target=rule.target,
        actor=click.user_id,
        event=_event(click),
        detail=f"{detail}, {token}",
        updates={"approver": click.user_id} if rule.target is State.APPROVED else None,
        # The store removes an attribute given as None: the approval is undone.
        undo_updates={"approver": None} if rule.target is State.APPROVED else None,
        undo_event=f"{_event(click)}:undone",
        undo_detail=lambda exc: f"remediation job not queued ({describe(exc)}); back to {rule.expected.value}",
        token=token,
        approval=approval,
    )
    try:
        if rule.job is None:  # a dismissal: the transition is all there is to it
            changed = apply_change(deps.store, context.finding_id, change)
            if not changed.applied:
                return _lost_the_race(context, changed.record)
            return _accepted(context, rule, changed.record, now)
        job = RemediationJob(kind=rule.job, finding_id=context.finding_id, requested_by=click.user_id, requested_at=now)
        requested = request_job(deps.store, deps.queue, job, change=change, attempts=SEND_ATTEMPTS, signer=deps.signer)
    except FindingNotFoundError:
        return context.refuse(
            "finding record vanished", "This finding no longer exists.", category="unknown_finding", audit=False
        )
    return _answer(context, rule, requested, now)


def _accepted(context: _Context, rule: _Rule, record: FindingRecord, now: datetime) -> Answer:
    message = _message_for(rule, record, context.click.user_id, now)
    return context.answer(200, message, "accepted", rule.target.value)


def _lost_the_race(context: _Context, record: FindingRecord) -> Answer:
    return context.refuse(
        f"lost the race: finding is {record.state.value}", what_happened(record), category="lost_the_race"
    )


def _answer(context: _Context, rule: _Rule, requested: JobRequest, now: datetime) -> Answer:
    """The answer to a click whose job was requested: accepted, lost the race, or the queue refused the job."""
    record, error = requested.record, requested.reason
    if requested.status is Requested.QUEUED:
        return _accepted(context, rule, record, now)
    if requested.status is Requested.NOT_IN_EXPECTED_STATE:
        return _lost_the_race(context, record)
    if requested.status is Requested.REFUSED_UNDO_FAILED:
        return context.answer(
            200,
            ephemeral(
                "Your click was recorded but the work could not be queued, and undoing it failed. "
                "The operators have been alerted through the logs; please tell them the finding id."
            ),
            "failed",
            f"job not queued ({error}) and revert failed",
            "revert_failed",
        )
    if requested.status is Requested.REFUSED_MOVED_ON:  # e.g. a remediator with a job that did arrive
        return context.answer(
            200,
            ephemeral(what_happened(record)),
            "failed",
            f"job not queued ({error}); revert lost the race",
            "job_not_queued",
        )
    return context.answer(
        200,
        ephemeral("Could not queue the work just now; nothing was changed. Please try again."),
        "failed",
        f"job not queued ({error}); reverted to {rule.expected.value}",
        "job_not_queued",
    )


# --------------------------------------------------------------------------------------------------------
# Dismiss with a reason (docs/architecture.md §16): the form is in dismissal.py
# --------------------------------------------------------------------------------------------------------


def asks_reason(deps: Dependencies) -> bool:
    """Can this endpoint take a dismissal through its form (open modals and record exemptions)? Always so in
    the deployed handler; a Dismiss (object or policy finding) is refused without it, never done without a reason."""
    return deps.modals is not None and deps.exemptions is not None


def _peek_payload(body: bytes) -> dict[str, Any] | None:
    """The form's one JSON payload as a dict, only to choose its handler (which reads it strictly); else None."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        values = form.get("payload", ())
        raw = json.loads(values[0]) if len(values) == 1 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return raw if isinstance(raw, dict) else None


def _first_action_id(payload: Mapping[str, Any]) -> str | None:
    actions = payload.get("actions")
    first = actions[0] if isinstance(actions, list) and len(actions) == 1 else None
    action_id = first.get("action_id") if isinstance(first, dict) else None
    return action_id if isinstance(action_id, str) else None


def handle_interaction(body: bytes, deps: Dependencies) -> Answer:
    """A verified request: the dismissal form's submission, or a button click.

    The payload's type chooses the module, imported only then: a single finding's click (the common one) loads
    neither the forms' nor the groups' (about 45 ms of a cold start, docs/architecture.md §6)."""
    payload = _peek_payload(body) or {}
    if asks_reason(deps) and payload.get("type") == "view_submission":
        view = payload.get("view")
        if isinstance(view, dict) and view.get("callback_id") == BULK_FORM_CALLBACK:  # "Dismiss all" (§22)
            from macie_chatops.bulk import handle_bulk_submission

            return handle_bulk_submission(body, deps)
        from macie_chatops.dismissal import handle_submission

        return handle_submission(body, deps)
    if payload.get("type") == "block_actions" and _first_action_id(payload) in GROUP_ACTIONS:
        from macie_chatops.bulk import handle_group_click  # a digest's bulk button or a page's "act on one" (§22)

        return handle_group_click(body, deps)
    return handle_click(body, deps)  # a submission to an endpoint without the form is refused there
