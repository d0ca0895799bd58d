"""Exemptions recorded from Slack, in the state table: one item per account (docs/architecture.md §16).

The item ``exemptions#<account id>`` holds a map from exemption id to exemption. It carries none of the
indexes' keys, so no finding listing sees it, and ``#`` never occurs in a finding id. The intake reads the
finding's account's item (one consistent GetItem) and the CLI reads the listed accounts' items (BatchGetItem):
no index, no scan. Exemption ids are ``<account id>-<12 hex>``, so a revocation finds its item without a
search. An item keeps its exemptions after they end (``list --all``, the audit) until
:data:`PRUNE_AFTER_DAYS` later, when the next one added for the account drops them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from macie_chatops.errors import MacieChatOpsError
from macie_chatops.exemptions import Exemption, Scope
from macie_chatops.names import STATE_TABLE_KEY
from macie_chatops.ports import Clock, utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ITEM_PREFIX: Final = "exemptions#"
ITEM_TYPE: Final = "exemptions"
MAX_ACTIVE_PER_ACCOUNT: Final = 100  # ~1.5 KB each: the account's item stays far below DynamoDB's 400 KB
PRUNE_AFTER_DAYS: Final = 90
EXEMPTION_ID: Final = re.compile(r"([0-9]{12})-[0-9a-f]{12}")
_BATCH: Final = 100  # BatchGetItem's limit


class ExemptionError(MacieChatOpsError):
    """An exemption operation the caller must report (unknown id, already revoked, too many)."""


def new_exemption_id(account_id: str) -> str:
    return f"{account_id}-{secrets.token_hex(6)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def to_attribute(exemption: Exemption) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": exemption.id,
        "account_id": exemption.account_id,
        "bucket": exemption.bucket,
        "scope": exemption.scope.value,
        "key": exemption.key,
        "version": exemption.version,
        "types": list(exemption.types),
        "until": _iso(exemption.until),
        "reason": exemption.reason,
        "created_by": exemption.created_by,
        "created_at": _iso(exemption.created_at),
        "finding_id": exemption.finding_id,
        "source": exemption.source,
    }
    if exemption.revoked_by is not None and exemption.revoked_at is not None:
        data["revoked_by"], data["revoked_at"] = exemption.revoked_by, _iso(exemption.revoked_at)
    return data


def from_attribute(data: Mapping[str, Any]) -> Exemption:
    revoked_at = data.get("revoked_at")
    return Exemption(
        id=str(data["id"]),
        account_id=str(data["account_id"]),
        bucket=str(data["bucket"]),
        scope=Scope(str(data["scope"])),
        key=str(data.get("key", "")),
        version=str(data.get("version", "")),
        types=tuple(str(t) for t in data.get("types", ())),
        until=_moment(str(data["until"])),
        reason=str(data["reason"]),
        created_by=str(data["created_by"]),
        created_at=_moment(str(data["created_at"])),
        finding_id=str(data.get("finding_id", "")),
        source=str(data.get("source", "slack")),
        revoked_by=str(data["revoked_by"]) if data.get("revoked_by") is not None else None,
        revoked_at=_moment(str(revoked_at)) if revoked_at is not None else None,
    )


class ExemptionStore:
    """The exemptions of the state table, on a boto3 client and table name passed in."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, clock: Clock = utcnow) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._client = client
        self._table = table_name
        self._clock = clock
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    def for_account(self, account_id: str) -> tuple[Exemption, ...]:
        """Every exemption recorded for the account (active or not), oldest first; a consistent read."""
        response = self._client.get_item(TableName=self._table, Key=self._key(account_id), ConsistentRead=True)
        return self._exemptions(response.get("Item"))

    def for_accounts(self, account_ids: Iterable[str]) -> list[Exemption]:
        """Every exemption recorded for these accounts, oldest first (BatchGetItem, unprocessed keys retried)."""
        wanted = sorted(set(account_ids))
        found: list[Exemption] = []
        for start in range(0, len(wanted), _BATCH):
            keys: list[Any] = [self._key(account) for account in wanted[start : start + _BATCH]]
            while keys:
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    found.extend(self._exemptions(item))
                unprocessed: Any = response.get("UnprocessedKeys") or {}
                keys = list(unprocessed.get(self._table, {}).get("Keys", []))
        return sorted(found, key=lambda e: (e.created_at, e.id))

    def add(self, exemption: Exemption) -> Exemption:
        """Record ``exemption``; refused (ExemptionError) when its account already has
        :data:`MAX_ACTIVE_PER_ACCOUNT` active ones. Exemptions that ended long ago are dropped in the same write."""
        if not EXEMPTION_ID.fullmatch(exemption.id) or not exemption.id.startswith(exemption.account_id):
            raise ValueError(f"exemption id {exemption.id!r} is not <account id>-<12 hex> of its account")
        now = self._clock()
        existing = self.for_account(exemption.account_id)
        active = [e for e in existing if e.active(now)]
        if len(active) >= MAX_ACTIVE_PER_ACCOUNT:
            raise ExemptionError(
                f"account {exemption.account_id} already has {len(active)} active exemptions (at most "
                f"{MAX_ACTIVE_PER_ACCOUNT}); revoke some first (macie-chatops exemptions list / revoke)"
            )
        cutoff = now - timedelta(days=PRUNE_AFTER_DAYS)
        stale = [e.id for e in existing if min(e.until, e.revoked_at or e.until) < cutoff]
        value = self._serializer.serialize(to_attribute(exemption))
        conditional = self._client.exceptions.ConditionalCheckFailedException
        for _ in range(3):  # the map exists or not; a concurrent first write flips which branch applies
            try:
                if existing:  # only ever written with one exemption at least
                    self._add_to_map(exemption, value, stale)
                else:
                    self._create_map(exemption, value)
                return exemption
            except conditional:
                existing = self.for_account(exemption.account_id)
        raise ExemptionError(f"could not record exemption {exemption.id}: its account's item kept changing")

    def revoke(self, exemption_id: str, *, by: str) -> Exemption:
        """Mark the exemption revoked by ``by`` now; ExemptionError when unknown or already revoked."""
        match = EXEMPTION_ID.fullmatch(exemption_id)
        if match is None:
            raise ExemptionError(f"{exemption_id!r} is not an exemption id recorded from Slack (<account>-<12 hex>)")
        names = {"#ex": "exemptions", "#id": exemption_id, "#by": "revoked_by", "#at": "revoked_at"}
        values = {":by": {"S": by}, ":at": {"S": _iso(self._clock())}}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(match.group(1)),
                UpdateExpression="SET #ex.#id.#by = :by, #ex.#id.#at = :at",
                ConditionExpression="attribute_exists(#ex.#id) AND attribute_not_exists(#ex.#id.#at)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            known = {e.id: e for e in self.for_account(match.group(1))}
            if exemption_id not in known:
                raise ExemptionError(f"no exemption {exemption_id}") from None
            revoked = known[exemption_id]
            raise ExemptionError(
                f"exemption {exemption_id} was already revoked by {revoked.revoked_by} at {revoked.revoked_at}"
            ) from None
        return next(e for e in self._exemptions(response["Attributes"]) if e.id == exemption_id)

    # -- plumbing ------------------------------------------------------------------------------------------

    def _create_map(self, exemption: Exemption, value: Any) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(exemption.account_id),
            UpdateExpression="SET #ex = :map, #type = :type, #account = :account",
            ConditionExpression="attribute_not_exists(#ex)",
            ExpressionAttributeNames={"#ex": "exemptions", "#type": "item_type", "#account": "account_id"},
            ExpressionAttributeValues={
                ":map": {"M": {exemption.id: value}},
                ":type": {"S": ITEM_TYPE},
                ":account": {"S": exemption.account_id},
            },
        )

    def _add_to_map(self, exemption: Exemption, value: Any, stale: list[str]) -> None:
        names = {"#ex": "exemptions", "#id": exemption.id}
        removes = []
        for n, old in enumerate(stale):
            names[f"#old{n}"] = old
            removes.append(f"#ex.#old{n}")
        expression = "SET #ex.#id = :value" + (f" REMOVE {', '.join(removes)}" if removes else "")
        self._client.update_item(
            TableName=self._table,
            Key=self._key(exemption.account_id),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(#ex) AND attribute_not_exists(#ex.#id)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":value": value},
        )

    def _exemptions(self, item: Mapping[str, Any] | None) -> tuple[Exemption, ...]:
        if not item or "exemptions" not in item:
            return ()
        entries = self._deserializer.deserialize(item["exemptions"])
        parsed = [from_attribute(entry) for entry in entries.values()]
        return tuple(sorted(parsed, key=lambda e: (e.created_at, e.id)))

    @staticmethod
    def _key(account_id: str) -> dict[str, Any]:
        return {STATE_TABLE_KEY: {"S": ITEM_PREFIX + account_id}}
