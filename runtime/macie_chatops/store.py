"""The finding state store: one DynamoDB item per finding id, every state change a conditional write.

The single source of truth for where a finding is in the state machine (``states.py``), what was decided,
which Slack message shows it, who approved it, what happened, and the append-only audit trail. A write that
loses a race is no error: ``WriteResult.applied`` is False and ``record`` is the record as the winner left
it, so the loser can say what happened and by whom. Writes raise :class:`FindingNotFoundError` for a finding
with no record and let every other DynamoDB error propagate.

Combined writes (``transition(..., slack_message=..., release_intake_of=...)``, docs/architecture.md §5): each
part keeps its own condition inside the one write; a part refused on its own (the lease is another owner's,
another ts is already recorded and is kept) is dropped and the write retried without it, as the separate
calls would have behaved. Object-version claims and the sparse pending and approved indexes: §5 ("One object
version, one remediation") and §8.

Timestamps are ISO 8601 UTC with microseconds (fixed width: they sort as strings). Final states get a TTL of
:data:`RETENTION_DAYS` days, so the audit trail outlives Macie's own 90-day finding retention.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypedDict

from macie_chatops.errors import MacieChatOpsError
from macie_chatops.names import (
    APPROVED_INDEX_NAME,
    APPROVED_INDEX_PARTITION,
    APPROVED_INDEX_SORT,
    APPROVED_INDEX_VALUE,
    PENDING_INDEX_NAME,
    PENDING_INDEX_PARTITION,
    PENDING_INDEX_SORT,
    STATE_TABLE_KEY,
    STATE_TABLE_TTL_ATTRIBUTE,
)
from macie_chatops.policy_summary import PolicySummary
from macie_chatops.ports import Clock, utcnow
from macie_chatops.states import FINAL_STATES, State, can_transition
from macie_chatops.summary import OBJECT_CLAIM_PREFIX, FindingSummary, ObjectVersion
from macie_chatops.vocabulary import Action

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

RETENTION_DAYS: Final = 400  # final records expire after this; Macie keeps findings for 90 days
MAX_AUDIT_ENTRIES: Final = 500  # ~100 KB of audit at most; transitions are never refused for it
MAX_TEXT: Final = 1000  # reasons and details are truncated to this many characters

# The one table definition: `client.create_table(TableName=name, **TABLE_DEFINITION)`, then TTL.
TABLE_DEFINITION: Final[Mapping[str, Any]] = {
    "KeySchema": [{"AttributeName": STATE_TABLE_KEY, "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": STATE_TABLE_KEY, "AttributeType": "S"},
        {"AttributeName": PENDING_INDEX_PARTITION, "AttributeType": "S"},
        {"AttributeName": PENDING_INDEX_SORT, "AttributeType": "S"},
        {"AttributeName": APPROVED_INDEX_PARTITION, "AttributeType": "S"},
        {"AttributeName": APPROVED_INDEX_SORT, "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": PENDING_INDEX_NAME,
            "KeySchema": [
                {"AttributeName": PENDING_INDEX_PARTITION, "KeyType": "HASH"},
                {"AttributeName": PENDING_INDEX_SORT, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            # The sweeper's: one partition (APPROVED_INDEX_VALUE) holds the few findings approved and not yet
            # done, sorted by when they were approved, so "approved before T" is one query, never a scan.
            "IndexName": APPROVED_INDEX_NAME,
            "KeySchema": [
                {"AttributeName": APPROVED_INDEX_PARTITION, "KeyType": "HASH"},
                {"AttributeName": APPROVED_INDEX_SORT, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
TTL_SPECIFICATION: Final[Mapping[str, Any]] = {"Enabled": True, "AttributeName": STATE_TABLE_TTL_ATTRIBUTE}


class StoreError(MacieChatOpsError):
    """The state store refused an operation for a reason the caller must handle."""


class FindingNotFoundError(StoreError, KeyError):
    """The finding id has no record in the state table."""


class IllegalTransitionError(StoreError, ValueError):
    """The state machine forbids the requested transition (a programming error: nothing was written)."""


class StateChangeHookError(StoreError):
    """The transition was written, then ``on_state_change`` (a group's counts, §22) failed: ``result`` is the
    applied write, ``__cause__`` the hook's error. A caller with steps that must still follow the write (a job to
    send) finishes them first, then lets this propagate (:func:`macie_chatops.job_request.request_job`)."""

    def __init__(self, result: WriteResult) -> None:
        super().__init__(f"finding {result.record.finding_id}: state written, its group's counts not moved")
        self.result = result


class RecordUpdates(TypedDict, total=False):
    """Non-state fields a write may set alongside its audit entry. ``None`` removes the attribute."""

    approver: str | None  # None: an approval undone (its job could not be queued)
    outcome: str
    outcome_detail: str
    error: str | None
    quarantine: dict[str, str]  # where the quarantined copy is: bucket, key, version_id, region
    job_queued_at: str
    duplicate_of: str  # DUPLICATE: the finding holding the object version's claim
    duplicate_thread: (
        dict[str, str] | None
    )  # DUPLICATE: the first finding's message (channel, ts) a thread reply is due on
    duplicate_reply_ts: str  # DUPLICATE: the ts of that reply, once posted (never a second one)
    policy_shown_count: int  # a policy finding: the occurrence count its Slack message shows (§18)
    public_access: dict[str, str]  # a policy finding's fix: the bucket's configuration before it, and after (§18)
    approval: dict[str, str] | None  # the signed approval the finding's state rests on (approvals.py, §23)
    # The intake took the object version's claim for this finding (first at this time, §5): the remediator then
    # need not claim it again while the claim cannot have expired (only its TTL releases a claim)
    object_claimed_at: str


_UPDATABLE: Final = frozenset(RecordUpdates.__annotations__)


@dataclass(frozen=True)
class AuditEntry:
    """One line of the trail: who did what, when, with which outcome."""

    at: str
    actor: str
    event: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class FindingRecord:
    finding_id: str
    state: State
    received_at: str
    updated_at: str
    event_id: str = ""
    action: Action | None = None
    reason: str = ""
    account_id: str = ""
    team: str = ""
    channel: str = ""
    summary: FindingSummary | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    approver: str | None = None
    # PENDING_APPROVAL with approvals_required > 1 (§15): who has approved each action so far, in order, the
    # approver who completes one not included (they are ``approver``, or the entry into DISMISSED's actor).
    approvals: tuple[str, ...] = ()  # Remediate
    dismissals: tuple[str, ...] = ()  # Dismiss
    outcome: str | None = None
    outcome_detail: str | None = None
    error: str | None = None
    quarantine: Mapping[str, str] | None = None
    job_queued_at: str | None = None
    approved_at: str | None = None  # when it last entered APPROVED; None in every other state
    duplicate_of: str | None = None  # DUPLICATE: the first finding of the same object version
    duplicate_thread: Mapping[str, str] | None = None  # DUPLICATE: {channel, ts} of the first finding's message
    duplicate_reply_ts: str | None = None  # DUPLICATE: the thread reply's ts, once posted
    reminders_sent: int = 0  # PENDING_APPROVAL: reminders claimed so far (docs/architecture.md §14)
    last_reminder_at: str | None = None  # when the last of them was claimed
    escalated_at: str | None = None  # when it was claimed for the daily escalation summary (listed once)
    intake_owner: str | None = None
    intake_until: str | None = None
    expires_at: int | None = None
    audit: tuple[AuditEntry, ...] = ()
    policy: PolicySummary | None = None  # a policy finding's summary (``summary`` is an object finding's)
    policy_shown_count: int | None = None  # the count the policy finding's message shows
    public_access: Mapping[str, str] | None = None  # the fix: the configuration before it (``previous``), …
    group_id: str | None = None  # a member of a finding flood's group (docs/architecture.md §22)
    group_seq: int | None = None  # its number in the group (1: the first, whose message became the digest)
    previous_state: State | None = None  # the state before the last transition (a group's counts move with it)
    approval: Mapping[str, str] | None = None  # the signed approval (action, approver, at, mac...: §23)
    object_claimed_at: str | None = None  # this finding holds its object version's claim, taken then (§5)

    @property
    def last_audit(self) -> AuditEntry | None:
        return self.audit[-1] if self.audit else None

    @property
    def entry_into_state(self) -> AuditEntry | None:
        """The audit entry that moved the finding into its current state (who and when)."""
        for entry in reversed(self.audit):
            if entry.outcome == self.state.value:
                return entry
        return None

    @classmethod
    def from_item(cls, item: Mapping[str, AttributeValueTypeDef]) -> FindingRecord:
        """Parse a raw DynamoDB item (attribute-value form); unknown attributes are ignored."""
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        data = {name: _plain(deserializer.deserialize(value)) for name, value in item.items()}

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        action = text("action")
        summary = data.get("summary")
        quarantine = data.get("quarantine")
        thread = data.get("duplicate_thread")
        expires_at = data.get(STATE_TABLE_TTL_ATTRIBUTE)
        return cls(
            finding_id=str(data[STATE_TABLE_KEY]),
            state=State(data["state"]),
            received_at=str(data[PENDING_INDEX_SORT]),
            updated_at=str(data["updated_at"]),
            event_id=text("event_id") or "",
            action=Action(action) if action else None,
            reason=text("reason") or "",
            account_id=text("account_id") or "",
            team=text("team") or "",
            channel=text("channel") or "",
            summary=FindingSummary.from_dict(summary) if isinstance(summary, dict) else None,
            slack_channel=text("slack_channel"),
            slack_ts=text("slack_ts"),
            approver=text("approver"),
            approvals=tuple(str(user) for user in data.get(APPROVAL_LISTS[0], ())),
            dismissals=tuple(str(user) for user in data.get(APPROVAL_LISTS[1], ())),
            outcome=text("outcome"),
            outcome_detail=text("outcome_detail"),
            error=text("error"),
            quarantine={str(k): str(v) for k, v in quarantine.items()} if isinstance(quarantine, dict) else None,
            job_queued_at=text("job_queued_at"),
            approved_at=text(APPROVED_INDEX_SORT),
            duplicate_of=text("duplicate_of"),
            duplicate_thread={str(k): str(v) for k, v in thread.items()} if isinstance(thread, dict) else None,
            duplicate_reply_ts=text("duplicate_reply_ts"),
            reminders_sent=int(data.get("reminders_sent", 0)),
            last_reminder_at=text("last_reminder_at"),
            escalated_at=text("escalated_at"),
            intake_owner=text("intake_owner"),
            intake_until=text("intake_until"),
            expires_at=int(expires_at) if expires_at is not None else None,
            policy=PolicySummary.from_dict(policy) if isinstance(policy := data.get("policy"), dict) else None,
            policy_shown_count=int(shown) if (shown := data.get("policy_shown_count")) is not None else None,
            public_access={str(k): str(v) for k, v in fix.items()}
            if isinstance(fix := data.get("public_access"), dict)
            else None,
            group_id=text("group_id"),
            group_seq=int(seq) if (seq := data.get("group_seq")) is not None else None,
            previous_state=State(previous) if (previous := text("previous_state")) else None,
            approval={str(k): str(v) for k, v in stamp.items()}
            if isinstance(stamp := data.get("approval"), dict)
            else None,
            object_claimed_at=text("object_claimed_at"),
            audit=tuple(
                AuditEntry(
                    at=str(e["at"]),
                    actor=str(e["actor"]),
                    event=str(e["event"]),
                    outcome=str(e["outcome"]),
                    detail=str(e.get("detail", "")),
                )
                for e in data.get("audit", ())
            ),
        )


@dataclass(frozen=True)
class WriteResult:
    """What a conditional write did: ``applied`` and the record as it now is (the winner's, if we lost)."""

    applied: bool
    record: FindingRecord


# The record's lists of partial approvals, one per action that needs approvals_required approvers (§15).
APPROVAL_LISTS: Final = ("approvals", "dismissals")

CLAIM_ITEM_TYPE: Final = "object_claim"  # the ``item_type`` of claim items (finding records have none)


@dataclass(frozen=True)
class ObjectClaim:
    """The claim of one object version: the first finding that may post it for review and move it."""

    key: str
    finding_id: str  # the holder
    claimed_at: str
    version: ObjectVersion

    @classmethod
    def from_item(cls, item: Mapping[str, AttributeValueTypeDef]) -> ObjectClaim:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        data = {name: deserializer.deserialize(value) for name, value in item.items()}
        return cls(
            key=str(data[STATE_TABLE_KEY]),
            finding_id=str(data["claimed_by"]),
            claimed_at=str(data["claimed_at"]),
            version=ObjectVersion(
                str(data["account_id"]), str(data["bucket"]), str(data["object_key"]), str(data["object_version"])
            ),
        )


@dataclass(frozen=True)
class PostedMessage:
    """A Slack message that shows a finding, to record with a transition (``transition(slack_message=...)``)."""

    channel: str
    ts: str
    actor: str  # who posted it (audited as ``slack_posted``)


@dataclass(frozen=True)
class StepWrite:
    """What one transition writes besides its conditions, as data (:func:`_step_write`): rendered into the
    transition's UpdateItem, or applied to a new item (:meth:`FindingStore.decided_at_creation`), so a record born
    in a state is the record created and then moved into it, by construction."""

    sets: tuple[tuple[str, Any], ...]
    copies: tuple[tuple[str, str], ...]  # attribute = another attribute's value before the write
    removes: tuple[str, ...]
    audit: tuple[AuditEntry, ...]  # appended to the trail

    def render(self, expression: _Expression) -> None:
        for attribute, value in self.sets:
            expression.set(attribute, value)
        for attribute, source in self.copies:
            expression.sets.append(f"{expression.name(attribute)} = {expression.name(source)}")
        for attribute in self.removes:
            expression.remove(attribute)
        expression.audit(*self.audit)

    def applied_to(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """``item`` as DynamoDB leaves it after the UpdateItem :meth:`render` builds (a copy's source is read from
        the item before the write; a missing one is an error, as DynamoDB's)."""
        after = dict(item)
        for attribute, value in self.sets:
            after[attribute] = value
        for attribute, source in self.copies:
            after[attribute] = item[source]
        for attribute in self.removes:
            after.pop(attribute, None)
        after["audit"] = [*item["audit"], *(dict(entry.__dict__) for entry in self.audit)]
        return after


@dataclass(frozen=True)
class NewRecord:
    """A finding's RECEIVED record, built and not yet written (``FindingStore.new_record``), or born decided
    (``FindingStore.decided_at_creation``: ``decided`` is the transition its creation folds in)."""

    finding_id: str
    item: Mapping[str, Any]  # the record's attributes, plain
    claim: ObjectVersion | None  # the object version its creation claims, if any
    moment: datetime  # when it was received
    decided: StepWrite | None = None


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; every number we store is an integer."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class _Expression:
    """Builds one UpdateItem call: placeholders for every name and value, so no reserved-word surprises."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = [f"attribute_exists({self.name(STATE_TABLE_KEY)})"]

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for existing, value in self.names.items():
            if value == attribute:
                return existing
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: Any) -> None:
        self.sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def remove(self, attribute: str) -> None:
        self.removes.append(self.name(attribute))

    def apply(self, updates: RecordUpdates | None) -> None:
        for attribute, value in (updates or {}).items():
            if attribute not in _UPDATABLE:
                raise ValueError(f"{attribute!r} is not an updatable record field")
            if value is None:
                self.remove(attribute)
            else:
                self.set(attribute, value)

    def audit(self, *entries: AuditEntry) -> None:
        audit = self.name("audit")
        values = [dict(entry.__dict__) for entry in entries]
        self.sets.append(f"{audit} = list_append({audit}, {self.value(values)})")

    def update_expression(self) -> str:
        parts = [f"SET {', '.join(self.sets)}"]
        if self.removes:
            parts.append(f"REMOVE {', '.join(self.removes)}")
        return " ".join(parts)


def _message_part(expression: _Expression, message: PostedMessage, *, at: str) -> AuditEntry:
    """Record ``message`` in ``expression`` unless another ts is recorded (its condition); its audit entry."""
    _message_condition(expression, message)
    expression.set("slack_channel", message.channel)
    expression.set("slack_ts", message.ts)
    return _posted_entry(message, at=at)


def _message_condition(expression: _Expression, message: PostedMessage) -> None:
    slack_ts = expression.name("slack_ts")
    expression.conditions.append(f"(attribute_not_exists({slack_ts}) OR {slack_ts} = {expression.value(message.ts)})")


def _posted_entry(message: PostedMessage, *, at: str) -> AuditEntry:
    return AuditEntry(
        at=at, actor=message.actor, event="slack_posted", outcome="posted", detail=f"{message.channel} {message.ts}"
    )


def _release_part(expression: _Expression, owner: str) -> None:
    """Remove the intake lease in ``expression``, on condition that ``owner`` holds it."""
    _release_condition(expression, owner)
    expression.remove("intake_owner")
    expression.remove("intake_until")


def _release_condition(expression: _Expression, owner: str) -> None:
    expression.conditions.append(f"{expression.name('intake_owner')} = {expression.value(owner)}")


def _step_write(
    target: State,
    moment: datetime,
    *,
    actor: str,
    event: str,
    detail: str,
    updates: RecordUpdates | None,
    message: PostedMessage | None,
    release: bool,
) -> StepWrite:
    """Everything a transition into ``target`` at ``moment`` writes but its conditions: the state, the one it leaves
    (``previous_state``: a group's counts move with it), ``updates``, both sparse indexes' keys, a final state's TTL,
    the message (``message``) and the lease's release (``release``), and the audit entries."""
    now = _iso(moment)
    sets: list[tuple[str, Any]] = [("state", target.value), ("updated_at", now)]
    copies: list[tuple[str, str]] = [("previous_state", "state")]
    removes: list[str] = []
    for attribute, value in (updates or {}).items():
        if attribute not in _UPDATABLE:
            raise ValueError(f"{attribute!r} is not an updatable record field")
        if value is None:
            removes.append(attribute)
        else:
            sets.append((attribute, value))
    if target is State.PENDING_APPROVAL:
        # The sparse index: only a pending finding carries its partition key (copied from `team`).
        copies.append((PENDING_INDEX_PARTITION, "team"))
    else:
        removes.append(PENDING_INDEX_PARTITION)
    if target is State.APPROVED:
        # The sweeper's sparse index: only an approved finding carries its keys, from the moment it is.
        sets += [(APPROVED_INDEX_PARTITION, APPROVED_INDEX_VALUE), (APPROVED_INDEX_SORT, now)]
    else:
        removes += [APPROVED_INDEX_PARTITION, APPROVED_INDEX_SORT]
    if target in FINAL_STATES:
        sets.append((STATE_TABLE_TTL_ATTRIBUTE, int((moment + timedelta(days=RETENTION_DAYS)).timestamp())))
    entries: list[AuditEntry] = []
    if message is not None:
        sets += [("slack_channel", message.channel), ("slack_ts", message.ts)]
        entries.append(_posted_entry(message, at=now))
    entries.append(AuditEntry(at=now, actor=actor, event=event, outcome=target.value, detail=_clip(detail)))
    if release:
        removes += ["intake_owner", "intake_until"]
    return StepWrite(tuple(sets), tuple(copies), tuple(removes), tuple(entries))


class FindingStore:
    """The DynamoDB adapter, on a boto3 client and table name passed in (:func:`create_state_table` makes the
    table for the sandbox and the tests; the CDK stack mirrors :data:`TABLE_DEFINITION`)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        clock: Clock = utcnow,
        on_state_change: Callable[[FindingRecord], None] | None = None,
    ) -> None:
        """``on_state_change``: called with the record after each applied transition (a group's counts,
        docs/architecture.md §22); what it raises propagates as :class:`StateChangeHookError`, which carries the
        applied write."""
        from boto3.dynamodb.types import TypeSerializer

        self._client = client
        self._table = table_name
        self._clock = clock
        self._on_state_change = on_state_change
        self._serializer = TypeSerializer()

    # -- reads -------------------------------------------------------------------------------------

    def get(self, finding_id: str) -> FindingRecord | None:
        """A strongly consistent read; None for an unknown finding (and for a claim's or exemptions' key)."""
        if finding_id.startswith(OBJECT_CLAIM_PREFIX) or "#" in finding_id:
            return None  # a claim or an account's exemptions, not a finding (finding ids never hold '#')
        response = self._client.get_item(TableName=self._table, Key=self._key(finding_id), ConsistentRead=True)
        item = response.get("Item")
        return FindingRecord.from_item(item) if item else None

    def pending_approvals(
        self, team: str | None = None, *, limit: int = 50, received_before: datetime | None = None
    ) -> list[FindingRecord]:
        """Findings in PENDING_APPROVAL, oldest first: for one team (a query), or across every team (a scan of
        the sparse index); ``received_before``: only those received before that moment."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        cutoff = None if received_before is None else _iso(received_before)
        if team is not None:
            records = list(self._query_pending(team, limit, cutoff))
        else:
            scanned = (r for r in self._scan_pending() if cutoff is None or r.received_at < cutoff)
            records = sorted(scanned, key=lambda r: (r.received_at, r.finding_id))
        # The index is eventually consistent: a record may linger there for a moment after leaving.
        return [r for r in records if r.state is State.PENDING_APPROVAL][:limit]

    def _query_pending(self, team: str, limit: int, cutoff: str | None = None) -> Iterator[FindingRecord]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": PENDING_INDEX_NAME,
            "KeyConditionExpression": "#team = :team",
            "ExpressionAttributeNames": {"#team": PENDING_INDEX_PARTITION},
            "ExpressionAttributeValues": {":team": {"S": team}},
            "ScanIndexForward": True,
            "Limit": limit,
        }
        if cutoff is not None:
            kwargs["KeyConditionExpression"] += " AND #at < :cutoff"
            kwargs["ExpressionAttributeNames"]["#at"] = PENDING_INDEX_SORT
            kwargs["ExpressionAttributeValues"][":cutoff"] = {"S": cutoff}
        returned = 0
        while True:
            page = self._client.query(**kwargs)
            for item in page.get("Items", ()):
                returned += 1
                yield FindingRecord.from_item(item)
            if returned >= limit or "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def approved_before(self, cutoff: datetime, *, limit: int | None = None) -> list[FindingRecord]:
        """Findings that entered APPROVED before ``cutoff`` and are still APPROVED, oldest approval first.

        One query of the sparse approved index (never a scan of the table); eventually consistent, so a
        record that has just left APPROVED may still be listed by the index: those are dropped here, and a
        caller about to act re-reads the record (``get``) anyway."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": APPROVED_INDEX_NAME,
            "KeyConditionExpression": "#state = :state AND #at < :cutoff",
            "ExpressionAttributeNames": {"#state": APPROVED_INDEX_PARTITION, "#at": APPROVED_INDEX_SORT},
            "ExpressionAttributeValues": {":state": {"S": APPROVED_INDEX_VALUE}, ":cutoff": {"S": _iso(cutoff)}},
            "ScanIndexForward": True,
        }
        records: list[FindingRecord] = []
        while limit is None or len(records) < limit:
            page = self._client.query(**kwargs)
            records.extend(
                record
                for record in map(FindingRecord.from_item, page.get("Items", ()))
                if record.state is State.APPROVED
            )
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return records if limit is None else records[:limit]

    def _scan_pending(self) -> Iterator[FindingRecord]:
        # The index is sparse (only pending findings carry its partition key), so scanning it is cheap.
        kwargs: dict[str, Any] = {"TableName": self._table, "IndexName": PENDING_INDEX_NAME}
        while True:
            page = self._client.scan(**kwargs)
            for item in page.get("Items", ()):
                yield FindingRecord.from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- writes ------------------------------------------------------------------------------------

    def create_received(
        self,
        finding_id: str,
        *,
        event_id: str,
        action: Action,
        reason: str,
        actor: str,
        account_id: str = "",
        team: str = "",
        channel: str = "",
        summary: FindingSummary | None = None,
        intake_owner: str | None = None,
        intake_until: datetime | None = None,
        policy: PolicySummary | None = None,
        claim: ObjectVersion | None = None,
    ) -> WriteResult:
        """The first write for a finding id; a duplicate delivery finds the existing record instead.

        ``claim``: also take that object version's claim in the same transaction when it is free; the record then
        carries ``object_claimed_at`` (§5). When it is not free, the record is created alone (the caller claims)."""
        return self.create(
            self.new_record(
                finding_id,
                event_id=event_id,
                action=action,
                reason=reason,
                actor=actor,
                account_id=account_id,
                team=team,
                channel=channel,
                summary=summary,
                intake_owner=intake_owner,
                intake_until=intake_until,
                policy=policy,
                claim=claim,
            )
        )

    def new_record(
        self,
        finding_id: str,
        *,
        event_id: str,
        action: Action,
        reason: str,
        actor: str,
        account_id: str = "",
        team: str = "",
        channel: str = "",
        summary: FindingSummary | None = None,
        intake_owner: str | None = None,
        intake_until: datetime | None = None,
        policy: PolicySummary | None = None,
        claim: ObjectVersion | None = None,
    ) -> NewRecord:
        """The RECEIVED record :meth:`create_received` writes, built and not written: :meth:`create` writes it, or a
        caller's transaction does with :meth:`creation_items` (a group's join: docs/architecture.md §22)."""
        moment = self._clock()
        now = _iso(moment)
        item: dict[str, Any] = {
            STATE_TABLE_KEY: finding_id,
            "state": State.RECEIVED.value,
            PENDING_INDEX_SORT: now,
            "updated_at": now,
            "event_id": event_id,
            "action": action.value,
            "reason": _clip(reason),
            "account_id": account_id,
            "team": team,
            "channel": channel,
            "audit": [
                AuditEntry(
                    at=now, actor=actor, event="received", outcome=State.RECEIVED.value, detail=_clip(reason)
                ).__dict__
            ],
        }
        if summary is not None:
            item["summary"] = summary.to_dict()
        if policy is not None:
            item["policy"] = policy.to_dict()
        if intake_owner is not None and intake_until is not None:
            item["intake_owner"] = intake_owner
            item["intake_until"] = _iso(intake_until)
        return NewRecord(finding_id, item, claim, moment)

    def create(self, new: NewRecord, *, claiming: bool = True) -> WriteResult:
        """Write ``new`` (with its claim in one transaction when ``claiming`` and the claim is free: see
        :meth:`create_received`); a record that exists is returned unapplied. A record born decided is written by
        :meth:`creation_items` only (a group's join: its claim is taken with it, or it is not born decided)."""
        if new.decided is not None:
            raise ValueError(f"finding {new.finding_id}: a record born decided is created with its group's join only")
        if claiming and new.claim is not None:
            created = self._create_claiming(new)
            if created is not None:
                return created
        client_error = self._client.exceptions.ConditionalCheckFailedException
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._serialize(new.item),
                ConditionExpression="attribute_not_exists(#key)",
                ExpressionAttributeNames={"#key": STATE_TABLE_KEY},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except client_error as exc:
            return WriteResult(False, self._current(new.finding_id, exc.response))
        return WriteResult(True, FindingRecord.from_item(self._serialize(new.item)))

    def creation_items(self, new: NewRecord, *, group: tuple[str, int] | None = None) -> list[Any]:
        """The TransactWriteItems that create ``new``, for a caller's transaction: the record's put (condition: no
        record), then, when ``new`` claims, its claim's put (condition: no claim). ``group``: the record is born a
        member of that group, with that seq (``group_id``, ``group_seq``). :meth:`created` is the record written;
        :meth:`creation_refused` reads the transaction's refusals of these items."""
        names = {"#key": STATE_TABLE_KEY}
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._serialize(self._item_of(new, group)),
                    "ConditionExpression": "attribute_not_exists(#key)",
                    "ExpressionAttributeNames": names,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        ]
        if new.claim is not None:
            item = self._claim_item(new.claim, new.finding_id, new.moment)
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._serialize(item),
                        "ConditionExpression": "attribute_not_exists(#key)",
                        "ExpressionAttributeNames": names,
                    }
                }
            )
        return items

    def created(self, new: NewRecord, *, group: tuple[str, int] | None = None) -> FindingRecord:
        """The record :meth:`creation_items` wrote, once their transaction succeeded. A record born decided is a
        transition applied: ``on_state_change`` is called with it, as :meth:`transition` calls it."""
        record = FindingRecord.from_item(self._serialize(self._item_of(new, group)))
        if new.decided is not None and self._on_state_change is not None:
            try:
                self._on_state_change(record)
            except Exception as exc:
                raise StateChangeHookError(WriteResult(True, record)) from exc
        return record

    def record_of(self, new: NewRecord) -> FindingRecord:
        """``new`` as a record, not written (what an approval of it is signed over: its finding id and target)."""
        return FindingRecord.from_item(self._serialize(new.item))

    def decided_at_creation(
        self,
        new: NewRecord,
        *,
        target: State,
        actor: str,
        event: str,
        updates: RecordUpdates | None = None,
        detail: str = "",
    ) -> NewRecord:
        """``new`` born in ``target``: its creation writes the item that creating it and then making this transition
        (expected RECEIVED, the lease released, no message) would leave, built by the transition's own
        :func:`_step_write` applied to the item, now. For a record with nothing to do between the two (a group's
        later auto member posts nothing: docs/architecture.md §5, issue 18); the write's conditions are the
        creation's (no record yet, so none of the transition's can fail)."""
        if not can_transition(State.RECEIVED, target):
            raise IllegalTransitionError(f"the state machine forbids {State.RECEIVED} -> {target}")
        step = _step_write(
            target,
            self._clock(),
            actor=actor,
            event=event,
            detail=detail,
            updates=updates,
            message=None,
            release="intake_owner" in new.item,
        )
        return replace(new, decided=step)

    def creation_refused(self, new: NewRecord, reasons: Mapping[int, Mapping[str, Any]]) -> WriteResult | None:
        """What the refusals of :meth:`creation_items` (DynamoDB's cancellation reasons, by the item's index among
        them) mean: the record exists (a duplicate delivery: returned unapplied, as :meth:`create` returns it), or
        None: only the claim was refused (another finding holds it; the caller creates the record alone)."""
        if 0 in reasons:
            return WriteResult(False, self._current(new.finding_id, reasons[0]))
        return None

    def _item_of(self, new: NewRecord, group: tuple[str, int] | None) -> dict[str, Any]:
        item = dict(new.item)
        if new.claim is not None:
            item["object_claimed_at"] = _iso(new.moment)
        if group is not None:
            item["group_id"], item["group_seq"] = group
        return item if new.decided is None else new.decided.applied_to(item)  # created, then moved on

    def _claim_item(self, version: ObjectVersion, finding_id: str, moment: datetime) -> dict[str, Any]:
        """A new claim of ``version`` by ``finding_id`` (the item ``claim_object`` writes when it is absent)."""
        return {
            STATE_TABLE_KEY: version.claim_key,
            "claimed_by": finding_id,
            "claimed_at": _iso(moment),
            STATE_TABLE_TTL_ATTRIBUTE: int((moment + timedelta(days=RETENTION_DAYS)).timestamp()),
            "item_type": CLAIM_ITEM_TYPE,
            "account_id": version.account_id,
            "bucket": version.bucket,
            "object_key": version.key,
            "object_version": version.version,
        }

    def _create_claiming(self, new: NewRecord) -> WriteResult | None:
        """The record and a new claim of its version, in one transaction: one call for the two writes (twice the
        write units). None, nothing written, when the claim exists already (another finding's, or ours from a
        delivery before this code) or the transaction met a concurrent one: the caller creates the record alone and
        claims as before. A record that exists is returned unapplied."""
        try:
            self._client.transact_write_items(TransactItems=self.creation_items(new))
        except self._client.exceptions.TransactionCanceledException as exc:
            reasons: list[Mapping[str, Any]] = list(exc.response.get("CancellationReasons", []))
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return WriteResult(False, self._current(new.finding_id, reasons[0]))
            return None
        return WriteResult(True, self.created(new))

    def transition(
        self,
        finding_id: str,
        *,
        expected: Collection[State],
        target: State,
        actor: str,
        event: str,
        updates: RecordUpdates | None = None,
        detail: str = "",
        slack_message: PostedMessage | None = None,
        release_intake_of: str | None = None,
    ) -> WriteResult:
        """One state-machine step as one conditional write (with ``updates`` and one audit entry); a step the
        state machine forbids raises :class:`IllegalTransitionError` before anything is written.

        ``slack_message``: also record the message showing the finding (the first ts wins);
        ``release_intake_of``: also give the intake lease back if that owner holds it."""
        expected = frozenset(expected)
        if not expected:
            raise IllegalTransitionError(f"transition to {target} names no expected state")
        illegal = sorted(state.value for state in expected if not can_transition(state, target))
        if illegal:
            raise IllegalTransitionError(f"the state machine forbids {', '.join(illegal)} -> {target}")
        moment = self._clock()

        def build(with_message: bool, release: bool) -> _Expression:
            expression = _Expression()
            options = ", ".join(expression.value(s.value) for s in sorted(expected))
            expression.conditions.append(f"{expression.name('state')} IN ({options})")
            message = slack_message if with_message else None
            if message is not None:
                _message_condition(expression, message)
            owner = release_intake_of if release else None
            if owner is not None:
                _release_condition(expression, owner)
            step = _step_write(
                target,
                moment,
                actor=actor,
                event=event,
                detail=detail,
                updates=updates,
                message=message,
                release=owner is not None,
            )
            step.render(expression)
            return expression

        result = self._combined(finding_id, build, slack_message=slack_message, release_intake_of=release_intake_of)
        if result.applied and self._on_state_change is not None:
            try:
                self._on_state_change(result.record)
            except Exception as exc:
                raise StateChangeHookError(result) from exc
        return result

    def record_occurrence(self, finding_id: str, *, count: int, updated_at: str, actor: str) -> WriteResult:
        """A policy finding reported again (same id, ``count`` higher than recorded): the new count and time, with
        an audit entry, in any state. Refused (``applied`` False) unless ``count`` is higher than the record's,
        so counts only grow whatever order the deliveries arrive in (docs/architecture.md §18)."""
        now = _iso(self._clock())
        expression = _Expression()
        policy, count_name = expression.name("policy"), expression.name("count")
        expression.conditions.append(f"{policy}.{count_name} < {expression.value(count)}")
        expression.conditions.append(f"size({expression.name('audit')}) < {expression.value(MAX_AUDIT_ENTRIES)}")
        expression.sets.append(f"{policy}.{count_name} = {expression.value(count)}")
        expression.sets.append(f"{policy}.{expression.name('updated_at')} = {expression.value(updated_at)}")
        expression.set("updated_at", now)
        detail = f"Macie reported it again: count {count}" + (f", updated {updated_at}" if updated_at else "")
        expression.audit(AuditEntry(at=now, actor=actor, event="occurred_again", outcome="recorded", detail=detail))
        return self._update(finding_id, expression)

    def set_slack_message(self, finding_id: str, *, channel: str, ts: str, actor: str) -> WriteResult:
        """Remember the message showing this finding; the first ts wins and is never overwritten."""
        now = _iso(self._clock())
        expression = _Expression()
        entry = _message_part(expression, PostedMessage(channel, ts, actor), at=now)
        expression.set("updated_at", now)
        expression.audit(entry)
        return self._update(finding_id, expression)

    def add_approval(
        self, finding_id: str, *, approvals: str, user: str, fewer_than: int, event: str, detail: str
    ) -> WriteResult:
        """Add ``user`` to the record's ``approvals`` list (one of :data:`APPROVAL_LISTS`), with an audit entry, in
        one conditional write: only while PENDING_APPROVAL, only by a user not in the list yet, and only while
        the list holds fewer than ``fewer_than`` users (the approval that would reach it is a transition, not an
        entry). Refused otherwise (``applied`` False, ``record`` as it is): the list only grows, one user once."""
        if approvals not in APPROVAL_LISTS:
            raise ValueError(f"{approvals!r} is not one of {APPROVAL_LISTS}")
        if fewer_than < 1:
            raise ValueError(f"fewer_than must be 1 or more, got {fewer_than}")
        now = _iso(self._clock())
        expression = _Expression()
        listed, state = expression.name(approvals), expression.name("state")
        expression.conditions.append(f"{state} = {expression.value(State.PENDING_APPROVAL.value)}")
        expression.conditions.append(
            f"(attribute_not_exists({listed}) OR (NOT contains({listed}, {expression.value(user)}) "
            f"AND size({listed}) < {expression.value(fewer_than)}))"
        )
        expression.sets.append(
            f"{listed} = list_append(if_not_exists({listed}, {expression.value([])}), {expression.value([user])})"
        )
        expression.set("updated_at", now)
        expression.audit(AuditEntry(at=now, actor=user, event=event, outcome="approval_counted", detail=_clip(detail)))
        return self._update(finding_id, expression)

    def append_audit(
        self,
        finding_id: str,
        *,
        actor: str,
        event: str,
        outcome: str,
        detail: str = "",
        updates: RecordUpdates | None = None,
        release_intake_of: str | None = None,
        expected: Collection[State] | None = None,
    ) -> WriteResult:
        """Audit (and optionally set non-state fields) without changing the state; ``release_intake_of``:
        also give the intake lease back if that owner holds it; ``expected``: only while the finding is in one
        of these states. Refused once the trail holds :data:`MAX_AUDIT_ENTRIES` entries, so a flood of refused
        clicks cannot grow the item past DynamoDB's 400 KB item limit."""
        now = _iso(self._clock())
        states = sorted(frozenset(expected)) if expected is not None else None
        if states == []:
            raise ValueError("append_audit(expected=...) names no state")

        def build(with_message: bool, release: bool) -> _Expression:
            expression = _Expression()
            expression.conditions.append(f"size({expression.name('audit')}) < {expression.value(MAX_AUDIT_ENTRIES)}")
            if states is not None:
                options = ", ".join(expression.value(s.value) for s in states)
                expression.conditions.append(f"{expression.name('state')} IN ({options})")
            expression.set("updated_at", now)
            expression.apply(updates)
            expression.audit(AuditEntry(at=now, actor=actor, event=event, outcome=outcome, detail=_clip(detail)))
            if release and release_intake_of is not None:
                _release_part(expression, release_intake_of)
            return expression

        return self._combined(finding_id, build, slack_message=None, release_intake_of=release_intake_of)

    # -- reminders and escalation (docs/architecture.md §14): each step is marked before Slack is told -------

    def mark_reminder(self, finding_id: str, *, number: int, actor: str, detail: str = "") -> WriteResult:
        """Mark reminder ``number`` as sent now, while the finding is PENDING_APPROVAL and exactly ``number - 1``
        are marked: of two runs, only one marks it (and posts it)."""
        if number < 1:
            raise ValueError(f"reminder numbers start at 1, got {number}")
        now = _iso(self._clock())
        expression = self._step_expression(now, actor, "reminder_due", f"reminder {number}", detail)
        count = expression.name("reminders_sent")
        before = f"{count} = {expression.value(number - 1)}"
        expression.conditions.append(f"(attribute_not_exists({count}) OR {before})" if number == 1 else before)
        expression.set("reminders_sent", number)
        expression.set("last_reminder_at", now)
        return self._update(finding_id, expression)

    def unmark_reminder(
        self, finding_id: str, *, number: int, marked_at: str, previous_at: str | None, actor: str, detail: str
    ) -> WriteResult:
        """Take back the mark of reminder ``number`` (made at ``marked_at``) when its post failed, so a later run
        sends it; refused when another mark has replaced it."""
        now = _iso(self._clock())
        expression = self._step_expression(now, actor, "reminder_failed", f"reminder {number}", detail, pending=False)
        count, at = expression.name("reminders_sent"), expression.name("last_reminder_at")
        expression.conditions.append(f"{count} = {expression.value(number)}")
        expression.conditions.append(f"{at} = {expression.value(marked_at)}")
        expression.set("reminders_sent", number - 1)
        if previous_at is None:
            expression.remove("last_reminder_at")
        else:
            expression.set("last_reminder_at", previous_at)
        return self._update(finding_id, expression)

    def mark_escalation(self, finding_id: str, *, actor: str, detail: str = "") -> WriteResult:
        """Mark the finding as listed in the escalation summary, while it is PENDING_APPROVAL and never was."""
        now = _iso(self._clock())
        expression = self._step_expression(now, actor, "escalation_due", "escalating", detail)
        expression.conditions.append(f"attribute_not_exists({expression.name('escalated_at')})")
        expression.set("escalated_at", now)
        return self._update(finding_id, expression)

    def unmark_escalation(self, finding_id: str, *, marked_at: str, actor: str, detail: str) -> WriteResult:
        """Take back the escalation mark made at ``marked_at`` when the summary could not be posted."""
        now = _iso(self._clock())
        expression = self._step_expression(now, actor, "escalation_failed", "not escalated", detail, pending=False)
        expression.conditions.append(f"{expression.name('escalated_at')} = {expression.value(marked_at)}")
        expression.remove("escalated_at")
        return self._update(finding_id, expression)

    def _step_expression(
        self, now: str, actor: str, event: str, outcome: str, detail: str, *, pending: bool = True
    ) -> _Expression:
        expression = _Expression()
        if pending:
            state = expression.name("state")
            expression.conditions.append(f"{state} = {expression.value(State.PENDING_APPROVAL.value)}")
            expression.conditions.append(f"size({expression.name('audit')}) < {expression.value(MAX_AUDIT_ENTRIES)}")
        expression.set("updated_at", now)
        expression.audit(AuditEntry(at=now, actor=actor, event=event, outcome=outcome, detail=_clip(detail)))
        return expression

    def object_claim(self, version: ObjectVersion) -> ObjectClaim | None:
        """The claim of ``version`` (a strongly consistent read), or None when no finding has claimed it."""
        response = self._client.get_item(TableName=self._table, Key=self._key(version.claim_key), ConsistentRead=True)
        item = response.get("Item")
        return ObjectClaim.from_item(item) if item else None

    def claim_object(self, version: ObjectVersion, *, finding_id: str) -> ObjectClaim:
        """Claim ``version`` for ``finding_id`` unless another finding holds it; the claim as it now is.

        One conditional write: created when absent, rewritten unchanged when ``finding_id`` already holds it
        (its first claim time and expiry are kept), refused when another finding does (DynamoDB returns
        that claim, so the loser learns the holder in the same call)."""
        moment = self._clock()
        ttl = int((moment + timedelta(days=RETENTION_DAYS)).timestamp())
        names = {"#key": STATE_TABLE_KEY, "#by": "claimed_by", "#at": "claimed_at", "#ttl": STATE_TABLE_TTL_ATTRIBUTE}
        values: dict[str, Any] = {":me": finding_id, ":now": _iso(moment), ":ttl": ttl}
        sets = ["#by = :me", "#at = if_not_exists(#at, :now)", "#ttl = if_not_exists(#ttl, :ttl)"]
        fields = {
            "item_type": CLAIM_ITEM_TYPE,
            "account_id": version.account_id,
            "bucket": version.bucket,
            "object_key": version.key,
            "object_version": version.version,
        }
        for n, (attribute, value) in enumerate(fields.items()):
            names[f"#f{n}"], values[f":f{n}"] = attribute, value
            sets.append(f"#f{n} = :f{n}")
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(version.claim_key),
                UpdateExpression=f"SET {', '.join(sets)}",
                ConditionExpression="attribute_not_exists(#key) OR #by = :me",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=self._serialize(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            refused: Mapping[str, Any] = exc.response
            item = refused.get("Item")
            claim = ObjectClaim.from_item(item) if item else self.object_claim(version)
            if claim is None:  # only its TTL deletes a claim, 400 days after it was taken
                raise StoreError(f"the claim of {version.describe()} refused {finding_id} and then vanished") from exc
            return claim
        return ObjectClaim.from_item(response["Attributes"])

    def claim_intake(self, finding_id: str, *, owner: str, until: datetime) -> WriteResult:
        """Take the intake lease unless someone else holds an unexpired one (``applied`` says which)."""
        now = _iso(self._clock())
        expression = _Expression()
        holder, expiry = expression.name("intake_owner"), expression.name("intake_until")
        expression.conditions.append(
            f"(attribute_not_exists({holder}) OR {expiry} < {expression.value(now)} "
            f"OR {holder} = {expression.value(owner)})"
        )
        expression.set("intake_owner", owner)
        expression.set("intake_until", _iso(until))
        return self._update(finding_id, expression)

    def release_intake(self, finding_id: str, *, owner: str) -> None:
        """Give the lease back (a no-op when it is no longer ours)."""
        expression = _Expression()
        expression.conditions.append(f"{expression.name('intake_owner')} = {expression.value(owner)}")
        expression.remove("intake_owner")
        expression.remove("intake_until")
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(finding_id),
                UpdateExpression=f"REMOVE {', '.join(expression.removes)}",
                ConditionExpression=" AND ".join(expression.conditions),
                ExpressionAttributeNames=expression.names,
                ExpressionAttributeValues=self._serialize(expression.values),
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return

    # -- plumbing ----------------------------------------------------------------------------------

    def _combined(
        self,
        finding_id: str,
        build: Callable[[bool, bool], _Expression],
        *,
        slack_message: PostedMessage | None,
        release_intake_of: str | None,
    ) -> WriteResult:
        """One write with its optional parts; a part refused on its own is dropped and the write retried.

        DynamoDB evaluates the whole condition and, when it fails, returns the record it was evaluated
        against: a part whose own condition holds on that record did not cause the failure; when every
        part holds, the write's own condition (the state, the audit cap) refused it."""
        with_message, release = slack_message is not None, release_intake_of is not None
        while True:
            result = self._update(finding_id, build(with_message, release))
            if result.applied:
                return result
            current = result.record
            if release and current.intake_owner != release_intake_of:
                release = False  # the lease is no longer ours: leave it, as release_intake would
            elif with_message and slack_message is not None and current.slack_ts not in (None, slack_message.ts):
                with_message = False  # another message is recorded: keep it, as set_slack_message would
            else:
                return result

    def _update(self, finding_id: str, expression: _Expression) -> WriteResult:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(finding_id),
                UpdateExpression=expression.update_expression(),
                ConditionExpression=" AND ".join(expression.conditions),
                ExpressionAttributeNames=expression.names,
                ExpressionAttributeValues=self._serialize(expression.values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            return WriteResult(False, self._current(finding_id, exc.response))
        return WriteResult(True, FindingRecord.from_item(response["Attributes"]))

    def _current(self, finding_id: str, error_response: Mapping[str, Any]) -> FindingRecord:
        """The record that made a condition fail (returned by DynamoDB itself; read it if not)."""
        item = error_response.get("Item")
        record = FindingRecord.from_item(item) if item else self.get(finding_id)
        if record is None:
            raise FindingNotFoundError(finding_id)
        return record

    def _key(self, finding_id: str) -> dict[str, AttributeValueTypeDef]:
        return {STATE_TABLE_KEY: {"S": finding_id}}

    def _serialize(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self._serializer.serialize(value) for name, value in values.items()}


def create_state_table(client: DynamoDBClient, table_name: str) -> None:
    """Create the state table exactly as the CDK stack deploys it (sandbox and tests), and wait for it."""
    client.create_table(TableName=table_name, **TABLE_DEFINITION)
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=TTL_SPECIFICATION)  # type: ignore[arg-type]
