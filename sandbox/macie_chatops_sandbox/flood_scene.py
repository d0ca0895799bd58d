"""The demo's flood scene (docs/architecture.md §22): a few hundred findings about one bucket arrive at once; the
team sees one digest message (its members listed in thread replies, at Slack's pace), an approver clicks
"Quarantine all N" once, and every object is moved, each by its own job. What is told is read back: the channel
through the Slack stand-in's recorded calls, the outcomes from the state table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from macie_chatops import names
from macie_chatops.config import Account
from macie_chatops.digest_messages import BulkBinding
from macie_chatops.group_store import GroupStore
from macie_chatops.groups import PAGE_SIZE
from macie_chatops.states import State
from macie_chatops_sandbox.findings import StoredObject, macie_finding_event, sample_body

if TYPE_CHECKING:
    from macie_chatops_sandbox.sandbox import Sandbox

PERSONAL: Final = "SensitiveData:S3Object/Personal"
SEVERITIES: Final = ("High", "Medium", "Low")
# Two full pages: more than one click decides inline (so the click hands the group to a continuation), few enough
# that the chapter takes seconds, not minutes (the demo is not a flood bench: bench/bench_flood.py is).
FLOOD_SIZE: Final = 200
WAIT_S: Final = 240.0  # a loaded machine takes minutes where an idle one takes seconds
MAX_BULK_CLICKS: Final = 20
STALL_S: Final = 3.0  # approvals that stop falling for this long have stopped
SETTLED: Final = frozenset({State.QUARANTINED, State.BLOCKED, State.FAILED})


@dataclass(frozen=True)
class FloodOutcome:
    findings: int
    group_id: str
    channel: str
    digest_ts: str
    writes: int  # Slack writes for the flood (posts, thread replies, updates)
    states: dict[State, int]


class FloodScene:
    """``tell(account, region)``: the flood, the one digest, the one bulk approval, the outcomes."""

    def __init__(
        self,
        sandbox: Sandbox,
        detail: Callable[[str, str], None],
        progress: Callable[[str], AbstractContextManager[None]],
        *,
        size: int = FLOOD_SIZE,
    ) -> None:
        self.sandbox = sandbox
        self.detail = detail
        self.progress = progress
        self.size = size
        self.groups = GroupStore(sandbox.client("dynamodb"), sandbox.provisioned.table_name)

    def tell(
        self, account: Account, region: str, approver: str, severities: tuple[str, ...] = SEVERITIES
    ) -> FloodOutcome:
        """``severities``: those the account's policy sends for review (the findings cycle through them)."""
        bucket = f"{account.name}-exports-{region}"
        with self.progress(f"uploading {self.size} exports to s3://{bucket}/"):
            stored = self._upload(account, region, bucket)
        writes_before = self._writes()
        finding_ids = self._report(account, region, stored, severities)
        self.detail("Macie", f"{self.size} Personal findings about s3://{bucket}/ put on {account.name}'s default bus")
        with self.progress("posting the digest and listing every finding in its thread"):
            group_id, channel, digest_ts, binding = self._digest_with_all(finding_ids)
        replies = self.sandbox.slack.replies(channel, digest_ts)
        self.detail(
            "Slack",
            f"#{channel}: ONE message for the {self.size} (a digest, updated in place) and {len(replies)} thread "
            f"replies listing {PAGE_SIZE} findings each; {self._writes() - writes_before} Slack writes so far, "
            f"not {self.size}",
        )
        self.detail("digest", _first_line(self.sandbox.slack.message(channel, digest_ts).text))
        self._approve_all(approver, channel, digest_ts, group_id, binding)
        with self.progress(f"quarantining {binding.upto} objects, one job each"):
            states = self._settle(finding_ids, group_id)
            self._digest_shows(channel, digest_ts, group_id, states)
        return FloodOutcome(
            findings=self.size,
            group_id=group_id,
            channel=channel,
            digest_ts=digest_ts,
            writes=self._writes() - writes_before,
            states=states,
        )

    # --- steps --------------------------------------------------------------------------------------------

    def _upload(self, account: Account, region: str, bucket: str) -> list[StoredObject]:
        self.sandbox.ensure_bucket(account.id, region, bucket)
        s3 = self.sandbox.client("s3", account.id, region)
        body = sample_body(PERSONAL)

        def put(index: int) -> StoredObject:
            key = f"crm/2026-12/customers-{index:04d}.csv"
            written = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
            return StoredObject(bucket, key, written["VersionId"], written["ETag"].strip('"'), len(body))

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(put, range(self.size)))

    def _report(
        self, account: Account, region: str, stored: list[StoredObject], severities: tuple[str, ...]
    ) -> list[str]:
        """Each finding published where Macie publishes it (the member's default bus, and Security Hub)."""
        events = [
            macie_finding_event(
                account_id=account.id,
                region=region,
                finding_type=PERSONAL,
                severity=severities[index % len(severities)],
                stored=item,
                finding_id=uuid.uuid4().hex,
            )
            for index, item in enumerate(stored)
        ]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.sandbox.publish, events))
        return [str(e["detail"]["id"]) for e in events]

    def _digest_with_all(self, finding_ids: list[str]) -> tuple[str, str, str, BulkBinding]:
        """Wait until the digest's "Quarantine all" button is bound to every member; its group, message, binding."""

        def probe() -> tuple[str, str, str, BulkBinding] | None:
            record = self.sandbox.record(finding_ids[0])
            if record is None or record.group_id is None:
                return None
            item = self.groups.item(record.group_id)
            if item is None or item.digest_channel is None or item.digest_ts is None:
                return None
            message = self.sandbox.slack.message(item.digest_channel, item.digest_ts)
            binding = _bulk_binding(message.blocks)
            if binding is None or binding.upto < len(finding_ids):
                return None
            return record.group_id, item.digest_channel, item.digest_ts, binding

        return self.sandbox.wait_for(probe, WAIT_S, "the digest listing every finding")

    def _approve_all(self, approver: str, channel: str, ts: str, group_id: str, binding: BulkBinding) -> None:
        """Click "Quarantine all N" once and wait until no listed member awaits approval; should the approvals stop
        short (a click acts on as many as Slack's 3 seconds allow), click again where they stopped."""
        for click in range(1, MAX_BULK_CLICKS + 1):
            answer = self.sandbox.click(
                binding.encode(), names.ACTION_BULK_REMEDIATE, user_id=approver, channel_id=channel, message_ts=ts
            )
            if answer.status != 200:
                raise RuntimeError(f"the bulk click answered HTTP {answer.status}: {answer.text[:200]}")
            what = f"clicks 'Quarantine all {binding.upto}' and confirms" if click == 1 else "clicks it again"
            self.detail("click", f"approver {approver} {what}")
            self.detail("", f"answer, ephemeral: {_first_line(answer.text.replace(chr(10), ' '), 150)}")
            if self._pending_settles(group_id) == 0:
                return
        raise RuntimeError(f"{MAX_BULK_CLICKS} bulk clicks left findings awaiting approval")

    def _pending_settles(self, group_id: str) -> int:
        """The members still awaiting approval once that count stops falling (or reaches 0)."""
        last, since = -1, time.monotonic()
        while True:
            view = self.groups.view(group_id)
            pending = max(0, view.state_counts.get(State.PENDING_APPROVAL, 0)) if view is not None else 0
            if pending == 0:
                return 0
            if pending != last:
                last, since = pending, time.monotonic()
            elif time.monotonic() - since > STALL_S:
                return pending
            time.sleep(0.25)

    def _settle(self, finding_ids: list[str], group_id: str) -> dict[State, int]:
        def probe() -> dict[State, int] | None:
            # The group's counts first (one read): every record is read only once they say all have settled.
            view = self.groups.view(group_id)
            if view is None or sum(view.state_counts.get(state, 0) for state in SETTLED) < len(finding_ids):
                return None
            states: dict[State, int] = {}
            for finding_id in finding_ids:
                record = self.sandbox.record(finding_id)
                if record is None or record.state not in SETTLED:
                    return None
                states[record.state] = states.get(record.state, 0) + 1
            return states

        return self.sandbox.wait_for(probe, WAIT_S, "every finding of the flood moved")

    def _digest_shows(self, channel: str, ts: str, group_id: str, states: dict[State, int]) -> None:
        """Wait until the digest's latest render counts every outcome (the writer's last coalesced update)."""
        quarantined = states.get(State.QUARANTINED, 0)

        def probe() -> bool | None:
            view = self.groups.view(group_id)
            shown = f"{quarantined:,}" in self.sandbox.slack.message(channel, ts).text
            done = view is not None and view.state_counts.get(State.QUARANTINED, 0) == quarantined
            return True if shown and done else None

        self.sandbox.wait_for(probe, WAIT_S, "the digest showing the outcomes")

    def _writes(self) -> int:
        return sum(
            1
            for call in self.sandbox.slack.history
            if call.method in ("chat.postMessage", "chat.update") and call.status == 200
        )


def _bulk_binding(blocks: list[Any]) -> BulkBinding | None:
    """The binding of the digest's "Quarantine all N" button, as the message shows it now."""
    for element in _elements(blocks):
        if element.get("action_id") == names.ACTION_BULK_REMEDIATE and isinstance(element.get("value"), str):
            return BulkBinding.decode(element["value"])
    return None


def _elements(blocks: list[Any]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "actions":
            yield from (e for e in block.get("elements", []) if isinstance(e, dict))


def _first_line(text: str, limit: int = 110) -> str:
    line = " ".join(text.split("\n", 1)[0].split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
