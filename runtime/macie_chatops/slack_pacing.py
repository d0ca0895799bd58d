"""Slack's write limits kept across concurrent Lambdas: one pace item per channel (posts) and one for the
workspace (updates) in the state table, taken by conditional writes, so no two writers share a slot.

Each pace is a GCRA (generic cell rate algorithm: the token bucket as one number). The item holds ``tat``, the
theoretical arrival time of the next call at the sustained rate; a call may go when ``tat - now`` is within the
burst allowance, and moves ``tat`` on by one interval. The read and the write are one optimistic step (the
write is conditional on the ``tat`` read), retried when another writer moved first.

Items are keyed ``pace#<channel>`` and ``pace#*`` (channel ids never hold '#' or '*') with ``item_type``
``slack_pace``: they carry none of the indexes' attributes, so no listing of findings sees them, and they expire a
day after their last use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from macie_chatops.names import STATE_TABLE_KEY, STATE_TABLE_TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PACE_PREFIX: Final = "pace#"
WORKSPACE: Final = "*"  # the scope of a workspace-wide pace (chat.update's tier)
PACE_ITEM_LIFETIME_S: Final = 24 * 3600
# Conflicting writers take turns; after this many lost races in one call, the caller comes back a bit later.
MAX_ATTEMPTS: Final = 8
PACE_ITEM_TYPE: Final = "slack_pace"  # item_type, like the store's other non-finding items
TAT: Final = "tat"  # (N) epoch seconds: when the next call is due at the sustained rate


@dataclass(frozen=True)
class Pace:
    """``burst`` calls at once after a quiet spell, then one every ``interval_s``; per channel or per workspace."""

    interval_s: float
    burst: int
    per_channel: bool

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.burst < 1:
            raise ValueError("a pace needs interval_s > 0 and burst >= 1")


# A little under Slack's own limits (chat.postMessage: about 1 per second per channel with short bursts;
# chat.update: Tier 3, 50+ per minute per workspace), so the clocks of Slack and of the writers may differ a
# little and Slack still never answers 429 to a paced writer.
PACES: Final[Mapping[str, Pace]] = {
    "chat.postMessage": Pace(interval_s=1.1, burst=3, per_channel=True),
    "chat.update": Pace(interval_s=1.3, burst=5, per_channel=False),
}


class Pacer(Protocol):
    def reserve(self, channel: str, method: str) -> float:
        """0: the slot is taken, call now; N > 0: no slot, ask again in N seconds."""
        ...


class ChannelPacer:
    """The paces of :data:`PACES` over the state table; a method without a pace is never held back."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        paces: Mapping[str, Pace] = PACES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table_name
        self._paces = paces
        self._clock = clock

    @staticmethod
    def key(channel: str, pace: Pace) -> str:
        return PACE_PREFIX + (channel if pace.per_channel else WORKSPACE)

    def reserve(self, channel: str, method: str) -> float:
        """Take the next slot of ``method`` in ``channel`` if it is due: 0.0 when taken (call Slack now), else
        the seconds until it is due (nothing taken: ask again then)."""
        pace = self._paces.get(method)
        if pace is None:
            return 0.0
        if not channel or "#" in channel:
            raise ValueError(f"not a Slack channel id: {channel!r}")
        key = self.key(channel, pace)
        for _ in range(MAX_ATTEMPTS):
            now = self._clock()
            seen = self._tat(key)
            tat = max(now, float(seen)) if seen is not None else now
            due_at = tat - (pace.burst - 1) * pace.interval_s
            if due_at > now:
                return due_at - now
            if self._advance(key, seen, tat + pace.interval_s, now):
                return 0.0
        return pace.interval_s  # every attempt lost a race: the channel is busy, come back after one slot

    def _tat(self, key: str) -> str | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={STATE_TABLE_KEY: {"S": key}},
            ConsistentRead=True,
            ProjectionExpression="#tat",
            ExpressionAttributeNames={"#tat": TAT},
        ).get("Item")
        value = item.get(TAT) if item else None
        return value["N"] if value is not None and "N" in value else None

    def _advance(self, key: str, seen: str | None, tat: float, now: float) -> bool:
        """Set ``tat`` if it is still what was read (absent included); False when another writer moved first."""
        values = {
            ":tat": {"N": f"{tat:.6f}"},
            ":expires": {"N": str(int(now) + PACE_ITEM_LIFETIME_S)},
            ":type": {"S": PACE_ITEM_TYPE},
        }
        if seen is None:
            condition = "attribute_not_exists(#tat)"
        else:
            condition = "#tat = :seen"
            values[":seen"] = {"N": seen}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={STATE_TABLE_KEY: {"S": key}},
                UpdateExpression="SET #tat = :tat, #expires = :expires, item_type = :type",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#tat": TAT, "#expires": STATE_TABLE_TTL_ATTRIBUTE},
                ExpressionAttributeValues=values,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True
