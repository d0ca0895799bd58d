"""A bulk approval that one click cannot finish within Slack's 3 s goes on as signed **continuations**
(docs/architecture.md §22, "Bulk decisions"): messages on the interaction function's own queue, each naming the
click's binding from a start, the approver, the workspace, the channel, the action and the click's time.

A continuation authorises nothing by itself. It carries a MAC (``kms:GenerateMac`` with the approval key, over a
domain of its own, :data:`DOMAIN`), which the worker computes again and compares in constant time: HMAC is
deterministic, so the interaction function needs no ``kms:VerifyMac`` (§23 keeps verifying to the remediator and
the sweeper). A continuation older than :data:`MAX_AGE` is refused. Then every member is decided exactly as the
click decides it (``bulk.remediate_member``: the approver's authority, the channel and team on the record, counted
approvals, a signed approval, its own job and audit entry); what the invocation cannot reach goes on in a new
continuation from there.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from macie_chatops.approvals import MAC_ALGORITHM, _netstring, iso
from macie_chatops.digest_messages import GROUP_ID_RE, BulkBinding

if TYPE_CHECKING:
    from macie_chatops.bulk import GroupClick
    from macie_chatops.interaction import Dependencies

DOMAIN: Final = "macie-chatops/bulk-continuation/v1"  # never an approval's MAC, nor an approval one of these
# A continuation acts on its click's authority: now, not whenever a backed-up queue delivers it. Past this age it
# is refused; the members it did not reach stay awaiting approval (the digest offers them again).
MAX_AGE: Final = timedelta(minutes=15)
MAX_CLOCK_SKEW: Final = timedelta(minutes=1)  # a click time further ahead than this is refused too
# Of the invocation's remaining time: members in flight finish, and the next continuation is signed and sent.
WORK_MARGIN_S: Final = 3.0


@dataclass(frozen=True)
class Continuation:
    """What one continuation asks for: the bulk click's binding (from ``binding.start``) by its approver."""

    binding: BulkBinding
    approver: str  # the Slack user who clicked
    team_id: str  # the click's workspace ("" when the payload named only its Enterprise Grid org)
    enterprise_id: str  # its Enterprise Grid org, "" when none
    channel: str  # the channel the click came from (the digest's)
    action: str  # the bulk button's action id
    clicked_at: str  # ISO 8601 UTC with microseconds (``approvals.iso``): the original click's, kept by every hop

    def message(self) -> bytes:
        """The bytes the MAC is computed over: each field a netstring after :data:`DOMAIN` (as §23 encodes an
        approval: no field can spill into the next)."""
        binding = self.binding
        fields = (
            DOMAIN,
            binding.group_id,
            str(binding.upto),
            str(binding.version),
            str(binding.start),
            self.approver,
            self.team_id,
            self.enterprise_id,
            self.channel,
            self.action,
            self.clicked_at,
        )
        return b"".join(_netstring(field) for field in fields)

    def starting_at(self, start: int) -> Continuation:
        return dataclasses.replace(self, binding=dataclasses.replace(self.binding, start=start))


class ContinuationMac:
    """The continuation's MAC: ``kms:GenerateMac`` with the approval key, computed again to check one."""

    def __init__(self, kms: Any, key_id: str) -> None:
        if not key_id:
            raise ValueError("a continuation MAC needs the approval key's id")
        self._kms = kms
        self.key_id = key_id

    def mac(self, continuation: Continuation) -> bytes:
        response = self._kms.generate_mac(Message=continuation.message(), KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM)
        return bytes(response["Mac"])

    def matches(self, continuation: Continuation, mac: bytes) -> bool:
        """Is ``mac`` this continuation's? KMS errors are raised (undecided: the message returns to its queue)."""
        return hmac.compare_digest(self.mac(continuation), mac)


class ContinuationQueue(Protocol):
    def send(self, body: str) -> None: ...


class SqsContinuationQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self.queue_url = queue_url

    def send(self, body: str) -> None:
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)


@dataclass(frozen=True)
class Continuations:
    """Signs and sends continuations (the click, and a worker that runs out of time)."""

    mac: ContinuationMac
    queue: ContinuationQueue

    def enqueue(self, continuation: Continuation) -> None:
        self.queue.send(encode(continuation, self.mac.mac(continuation)))


# --------------------------------------------------------------------------------------------------------
# The message
# --------------------------------------------------------------------------------------------------------

OptionalSlackId = Annotated[str, StringConstraints(pattern=r"^([A-Z0-9]{2,40})?$")]


class ContinuationBody(BaseModel):
    """A continuation as it travels: read strictly (a field more, less, or of another type is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1]
    group: Annotated[str, StringConstraints(pattern=rf"^{GROUP_ID_RE.pattern}$")]
    upto: int = Field(ge=1, le=10**9)
    version: int = Field(ge=0, le=10**12)
    start: int = Field(ge=1, le=10**9)
    approver: Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,40}$")]
    team: OptionalSlackId
    enterprise: OptionalSlackId
    channel: Annotated[str, StringConstraints(pattern=r"^[CG][A-Z0-9]{2,40}$")]
    action: Literal["macie_chatops.bulk_remediate"]  # names.ACTION_BULK_REMEDIATE: only a quarantine continues
    clicked_at: Annotated[str, StringConstraints(max_length=40)]
    mac: Annotated[str, StringConstraints(min_length=1, max_length=100)]


def encode(continuation: Continuation, mac: bytes) -> str:
    binding = continuation.binding
    body = {
        "v": 1,
        "group": binding.group_id,
        "upto": binding.upto,
        "version": binding.version,
        "start": binding.start,
        "approver": continuation.approver,
        "team": continuation.team_id,
        "enterprise": continuation.enterprise_id,
        "channel": continuation.channel,
        "action": continuation.action,
        "clicked_at": continuation.clicked_at,
        "mac": base64.b64encode(mac).decode("ascii"),
    }
    return json.dumps(body, separators=(",", ":"))


def read(body: str) -> tuple[Continuation, bytes] | str:
    """The continuation and its MAC in a message body, or why it cannot be one."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return "the message is not a JSON object"
    try:
        raw = ContinuationBody.model_validate(parsed)
    except ValidationError as exc:  # (a ValueError too: read apart from the JSON's)
        where = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "(body)"
        return f"the message has the wrong shape at {where}"
    if raw.start > raw.upto:
        return "the message starts past its last member"
    try:
        mac = base64.b64decode(raw.mac, validate=True)
    except (binascii.Error, ValueError):
        return "the MAC is not base64"
    binding = BulkBinding(raw.group, raw.upto, raw.version, raw.start)
    continuation = Continuation(
        binding, raw.approver, raw.team, raw.enterprise, raw.channel, raw.action, raw.clicked_at
    )
    return continuation, mac


# --------------------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a continuation did: ``done`` (every member reached), ``continued`` (a new continuation from
    ``resume_at``), or ``refused`` (nothing decided: ``category`` and ``reason`` say why)."""

    status: Literal["done", "continued", "refused"]
    reason: str
    category: str = ""
    tally: str = ""
    resume_at: int | None = None
    group_id: str = ""
    approver: str = ""


def refuse(category: str, reason: str, continuation: Continuation | None = None) -> Outcome:
    group = continuation.binding.group_id if continuation is not None else ""
    approver = continuation.approver if continuation is not None else ""
    return Outcome("refused", reason, category, group_id=group, approver=approver)


def age_refusal(continuation: Continuation, now: datetime) -> Outcome | None:
    """A continuation too old (or from the future) to act on the click's authority now."""
    try:
        clicked = datetime.fromisoformat(continuation.clicked_at.replace("Z", "+00:00"))
    except ValueError:
        return refuse("bad_time", "the click time cannot be read", continuation)
    if clicked.tzinfo is None:
        return refuse("bad_time", "the click time has no time zone", continuation)
    age = now - clicked
    if age > MAX_AGE:
        minutes = int(age.total_seconds() // 60)
        return refuse(
            "stale",
            f"the click was {minutes} minutes ago, over {int(MAX_AGE.total_seconds() // 60)}: a click approves now, "
            "not whenever its queue is delivered; the members not reached stay awaiting approval",
            continuation,
        )
    if age < -MAX_CLOCK_SKEW:
        return refuse("future", "the click time is ahead of this clock", continuation)
    return None


def continue_bulk(
    body: str,
    deps: Dependencies,
    continuations: Continuations,
    *,
    remaining_s: Callable[[], float],
) -> Outcome:
    """Check one continuation (shape, MAC, age, the approver's authority over the group), then decide its members
    as the click would until the invocation's time runs short, and continue from there. ``deps`` is the click's
    ``interaction.Dependencies``. Raises (the message returns to its queue) on KMS, store, queue or Slack
    directory errors: undecided, not refused."""
    from macie_chatops.bulk import GroupClick, _authorise_group, _each, describe, listed, remediate_member
    from macie_chatops.interaction import Answer, DirectoryError

    found = read(body)
    if isinstance(found, str):
        return refuse("malformed", found)
    continuation, mac = found
    if not continuations.mac.matches(continuation, mac):
        return refuse(
            "bad_mac", "the MAC is not this continuation's (forged, or copied from another binding)", continuation
        )
    too_old = age_refusal(continuation, deps.clock())
    if too_old is not None:
        return too_old
    binding = continuation.binding
    click = GroupClick(
        action_id=continuation.action,
        value=binding.encode(),
        user_id=continuation.approver,
        team_id=continuation.team_id,
        enterprise_id=continuation.enterprise_id or None,
        channel_ids=frozenset({continuation.channel}),
        response_url=None,
        trigger_id=None,
    )
    authorised = _authorise_group(click, deps, binding.group_id, click.refuse)
    if isinstance(authorised, Answer):
        if authorised.category == "approver_groups_unavailable":
            raise DirectoryError(authorised.reason)  # Slack could not say: try again, do not refuse
        return refuse(authorised.category, authorised.reason, continuation)
    assert deps.groups is not None  # checked by _authorise_group
    deadline = time.monotonic() + remaining_s() - WORK_MARGIN_S
    act = remediate_member(click, deps, binding, continued=True)
    progress = _each(listed(deps.groups, binding), act, deadline=deadline, upto=binding.upto)
    group, approver = binding.group_id, continuation.approver
    if progress.resume_at is None:
        return Outcome("done", describe(binding), tally=progress.tally(), group_id=group, approver=approver)
    continuations.enqueue(continuation.starting_at(progress.resume_at))
    return Outcome(
        "continued",
        describe(binding),
        tally=progress.tally(),
        resume_at=progress.resume_at,
        group_id=group,
        approver=approver,
    )


def continuation_of(click: GroupClick, binding: BulkBinding, at: datetime) -> Continuation:
    """The continuation of a bulk click (``bulk.GroupClick``) on ``binding``, from ``binding.start``."""
    (channel,) = click.channel_ids
    return Continuation(
        binding, click.user_id, click.team_id or "", click.enterprise_id or "", channel, click.action_id, iso(at)
    )
