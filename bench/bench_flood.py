"""A finding flood through the sandbox, with the Slack stand-in enforcing Slack's limits (issue 14).

10,000 findings (by default) over 5 buckets of one account, all for one team channel: 3 buckets of Personal data
(policy: review) and 2 of Credentials (policy: auto, so each is quarantined, which moves its group's counts),
severities mixed. The events go straight onto the intake queue, ten per SendMessageBatch call, as fast as SQS
takes them; the sandbox runs the real handlers (intake, digest writer, remediator) against moto, and the stand-in
answers chat.postMessage at Slack's pace (1 a second per channel, bursts of 4) and chat.update at its Tier 3
(50 a minute per workspace), with HTTP 429 + Retry-After beyond that.

Printed per run: Slack write calls (posts, thread replies, updates; and how many Slack refused with 429), the
findings recorded in the state table, the findings reachable from a message (read back with slack_sdk's
WebClient through conversations.history and conversations.replies: a finding is reachable when its id is in a
message or a reply), the findings lost (sent and not recorded, or recorded and not reachable), and the wall time
from the first event sent to the last Slack write. Then the same without grouping (``slack.group_window_seconds:
0``): every finding its own message at one a second, so by default that run takes ``--ungrouped`` findings
(100) and its writes and time are extrapolated to the full count (said so in the output).

Target: at most 200 Slack write calls per 10,000 findings (2%), 0 lost. Nothing asserts; the exit code is 1 when
a finding is lost or the sandbox fails, else 0.

Run: ``.venv/bin/python bench/bench_flood.py [--findings N] [--ungrouped N (0: none)] [--skip-grouped]
[--timeout S]``. Progress (and the Slack writes so far) goes to stderr every 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from slack_sdk.web import WebClient

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.states import State
from macie_chatops_sandbox.commands import handler_logs_to
from macie_chatops_sandbox.findings import StoredObject, macie_finding_event, sample_body
from macie_chatops_sandbox.provision import QueueSettings
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from macie_chatops_sandbox.slack_standin import RecordedCall

ROOT: Final = Path(__file__).resolve().parent.parent
ACCOUNT: Final = "345678901234"  # payments-prod: Personal -> review, Credentials -> auto, team channel C0PAYMENTS
REGION: Final = "us-east-1"
CHANNEL: Final = "C0PAYMENTS"
PERSONAL: Final = "SensitiveData:S3Object/Personal"
CREDENTIALS: Final = "SensitiveData:S3Object/Credentials"
BUCKETS: Final = (
    ("flood-customers", PERSONAL),
    ("flood-crm-exports", PERSONAL),
    ("flood-support-tickets", PERSONAL),
    ("flood-ci-artifacts", CREDENTIALS),
    ("flood-deploy-configs", CREDENTIALS),
)
SEVERITIES: Final = ("High", "Medium", "Low", "Medium")
TARGET_WRITES_PER_10K: Final = 200
FINDING_ID: Final = re.compile(r"\b[0-9a-f]{32}\b")
SETTLED: Final = frozenset({State.PENDING_APPROVAL, State.QUARANTINED, State.BLOCKED, State.FAILED})


@dataclass(frozen=True)
class Flood:
    """The events of one run, and which objects the auto ones need in S3."""

    events: list[dict[str, Any]]
    auto_objects: list[tuple[str, str]]  # (bucket, key) to upload before sending

    @property
    def finding_ids(self) -> set[str]:
        return {str(event["detail"]["id"]) for event in self.events}


@dataclass(frozen=True)
class Result:
    findings: int
    posts: int
    replies: int
    updates: int
    refused: int
    recorded: int
    reachable: int
    lost: int
    not_settled: int
    seconds_to_last_write: float

    @property
    def writes(self) -> int:
        return self.posts + self.replies + self.updates


def plan(count: int) -> Flood:
    """``count`` findings spread evenly over :data:`BUCKETS` (one group each), severities mixed."""
    events: list[dict[str, Any]] = []
    auto_objects: list[tuple[str, str]] = []
    for index in range(count):
        bucket, finding_type = BUCKETS[index % len(BUCKETS)]
        key = f"exports/{index // 1000:02d}/part-{index:05d}.{'env' if finding_type == CREDENTIALS else 'csv'}"
        version = uuid.uuid4().hex  # replaced by the uploaded version for auto findings
        if finding_type == CREDENTIALS:
            auto_objects.append((bucket, key))
        stored = StoredObject(bucket, key, version, "0" * 32, 128)
        events.append(
            macie_finding_event(
                account_id=ACCOUNT,
                region=REGION,
                finding_type=finding_type,
                severity=SEVERITIES[index % len(SEVERITIES)],
                stored=stored,
                finding_id=uuid.uuid4().hex,
            )
        )
    return Flood(events, auto_objects)


def upload(sandbox: Sandbox, flood: Flood) -> None:
    """Put the auto findings' objects in their buckets, and point each event at the version S3 made (not timed)."""
    body = sample_body(CREDENTIALS)
    for bucket, _ in BUCKETS:
        sandbox.ensure_bucket(ACCOUNT, REGION, bucket)
    s3 = sandbox.client("s3", ACCOUNT, REGION)

    def put(target: tuple[str, str]) -> tuple[tuple[str, str], StoredObject]:
        bucket, key = target
        written = s3.put_object(Bucket=bucket, Key=key, Body=body)
        return target, StoredObject(bucket, key, written["VersionId"], written["ETag"].strip('"'), len(body))

    with ThreadPoolExecutor(4) as pool:
        stored = dict(pool.map(put, flood.auto_objects))
    for event in flood.events:
        s3_object = event["detail"]["resourcesAffected"]["s3Object"]
        target = (event["detail"]["resourcesAffected"]["s3Bucket"]["name"], s3_object["key"])
        if target in stored:
            s3_object.update(versionId=stored[target].version_id, eTag=stored[target].etag, size=stored[target].size)


def send(sandbox: Sandbox, flood: Flood) -> None:
    """Every event onto the intake queue (as EventBridge delivers it: the event's JSON is the body), 10 a call."""
    sqs = sandbox.client("sqs")
    url = sandbox.provisioned.intake.url

    def batch(start: int) -> None:
        entries = [
            {"Id": str(n), "MessageBody": json.dumps(event)} for n, event in enumerate(flood.events[start : start + 10])
        ]
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"SendMessageBatch refused {len(failed)} messages: {failed[0]}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batch, range(0, len(flood.events), 10)))


def recorded_states(sandbox: Sandbox, finding_ids: set[str]) -> dict[str, State]:
    """The state of every finding record of this run (a scan of the state table: the bench's, not the pipeline's)."""
    dynamodb = sandbox.client("dynamodb")
    states: dict[str, State] = {}
    paginator = dynamodb.get_paginator("scan")
    for page in paginator.paginate(
        TableName=sandbox.provisioned.table_name,
        ProjectionExpression="#id, #state",
        ExpressionAttributeNames={"#id": names.STATE_TABLE_KEY, "#state": "state"},
    ):
        for item in page["Items"]:
            finding_id = item[names.STATE_TABLE_KEY]["S"]
            if finding_id in finding_ids and "state" in item:
                states[finding_id] = State(item["state"]["S"])
    return states


def channel_messages(sandbox: Sandbox) -> Iterator[dict[str, Any]]:
    """Every message and thread reply of the channel, read as any Slack tool would (slack_sdk's WebClient)."""
    client = WebClient(token=sandbox.secret.bot_token, base_url=sandbox.slack.base_url)
    for page in client.conversations_history(channel=CHANNEL, limit=200):
        for message in list(page["messages"]):
            yield message
            if message.get("reply_count"):
                for thread in client.conversations_replies(channel=CHANNEL, ts=message["ts"], limit=200):
                    yield from [reply for reply in thread["messages"] if reply["ts"] != message["ts"]]


def reachable(sandbox: Sandbox, finding_ids: set[str]) -> set[str]:
    found: set[str] = set()
    for message in channel_messages(sandbox):
        found.update(FINDING_ID.findall(json.dumps(message)))
    return found & finding_ids


def acknowledged(sandbox: Sandbox, function_name: str) -> int:
    """Messages a handler's poller has acknowledged so far (an in-process counter: no AWS call)."""
    return sum(p.stats.deleted for p in sandbox.pollers if p.function.name == function_name)


def wait_until_done(sandbox: Sandbox, flood: Flood, timeout_s: float, started: float) -> None:
    """Until every finding is recorded in a settled state (review: asked; auto: moved) and nothing is queued (the
    digest writer's wake-ups wait, delayed, on its queue until their update). The pollers' counters say when that
    is plausible; only then is the table scanned (a scan holds every write back while it runs)."""
    deadline = time.monotonic() + timeout_s
    ids = flood.finding_ids
    while time.monotonic() < deadline:
        intake = acknowledged(sandbox, names.FINDING_FUNCTION_NAME)
        moved = acknowledged(sandbox, names.REMEDIATOR_FUNCTION_NAME)
        taken = writes(sandbox)
        replies = sum(1 for c in taken if c.thread_ts is not None)
        print(
            f"  … {time.monotonic() - started:.0f} s: intake {intake}, moves {moved}; Slack writes {len(taken)} "
            f"({replies} thread replies), {sandbox.slack.rate_limited} 429s",
            file=sys.stderr,
            flush=True,
        )
        if intake >= len(ids) and moved >= len(flood.auto_objects):
            states = recorded_states(sandbox, ids)
            if sum(1 for state in states.values() if state in SETTLED) == len(ids):
                break
        time.sleep(10)
    sandbox.wait_until_idle(timeout_s=max(1.0, deadline - time.monotonic()), poll_s=0.5)


def run(config: Config, count: int, timeout_s: float) -> Result:
    settings = SandboxSettings(
        # Visibility as the stacks set it (6x the function's timeout), so a busy handler's batch never reappears.
        queues=QueueSettings(visibility_timeout_s=6 * 60),
        log_level="ERROR",
    )
    flood = plan(count)
    sandbox = Sandbox(config, settings).start()
    try:
        upload(sandbox, flood)
        started = time.monotonic()
        send(sandbox, flood)
        wait_until_done(sandbox, flood, timeout_s, started)
        taken = writes(sandbox)
        ids = flood.finding_ids
        states = recorded_states(sandbox, ids)
        seen = reachable(sandbox, ids)
        return Result(
            findings=count,
            posts=sum(1 for c in taken if c.method == "chat.postMessage" and c.thread_ts is None),
            replies=sum(1 for c in taken if c.method == "chat.postMessage" and c.thread_ts is not None),
            updates=sum(1 for c in taken if c.method == "chat.update"),
            refused=sandbox.slack.rate_limited,
            recorded=len(states),
            reachable=len(seen),
            lost=len(ids - (set(states) & seen)),
            not_settled=sum(1 for state in states.values() if state not in SETTLED),
            seconds_to_last_write=max((c.at for c in taken), default=started) - started,
        )
    finally:
        try:
            sandbox.stop()
        except Exception as exc:  # what was measured stands; a moto reset of a big table may outlast its timeout
            print(f"  (stopping the sandbox: {type(exc).__name__}: {exc})", file=sys.stderr)


def writes(sandbox: Sandbox) -> list[RecordedCall]:
    """The Slack writes Slack took so far (posts, thread replies, updates)."""
    return [c for c in sandbox.slack.history if c.method in ("chat.postMessage", "chat.update") and c.status == 200]


def report(out: TextIO, label: str, result: Result, *, scale: float = 1.0) -> None:
    def n(value: float) -> int:
        return round(value * scale)

    scaled = "" if scale == 1.0 else f" (measured on {result.findings} and extrapolated x{scale:g})"
    lines = [
        f"{label}: {n(result.findings)} findings{scaled}",
        f"  Slack write calls: {n(result.writes)} (posts {n(result.posts)}, thread replies {n(result.replies)}, "
        f"updates {n(result.updates)}) = {100 * result.writes / result.findings:.2f}% of the findings",
        f"  429s seen and retried: {n(result.refused)}",
        f"  findings recorded: {n(result.recorded)}, reachable from a message: {n(result.reachable)}, "
        f"lost: {n(result.lost)}, not settled: {n(result.not_settled)}",
        f"  wall time from the first event to the last Slack write: {result.seconds_to_last_write * scale:.0f} s",
    ]
    print("\n".join(lines), file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--ungrouped", type=int, default=100, help="findings of the run without grouping")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds each run may take")
    parser.add_argument("--skip-grouped", action="store_true", help="only the run without grouping")
    args = parser.parse_args(argv)
    config = load_config(ROOT / "accounts.yaml")
    ungrouped = config.model_copy(update={"slack": config.slack.model_copy(update={"group_window_seconds": 0})})
    # The handlers' own log lines (Powertools writes them to stdout) are discarded.
    with open(os.devnull, "w") as sink, handler_logs_to(sink) as out:
        mix = ", ".join(f"{bucket} ({'auto' if kind == CREDENTIALS else 'review'})" for bucket, kind in BUCKETS)
        print(f"finding flood: {args.findings} findings, one channel ({CHANNEL}), 5 buckets: {mix}", file=out)
        print("Slack's limits enforced by the stand-in: 1 post/s per channel (bursts of 4), 50 updates/min", file=out)
        lost = 0
        if not args.skip_grouped:
            grouped = run(config, args.findings, args.timeout)
            report(out, "grouping on", grouped)
            budget = TARGET_WRITES_PER_10K * args.findings / 10_000
            verdict = "within" if grouped.writes <= budget else "ABOVE"
            print(f"  target: at most {budget:.0f} writes, 0 lost: writes {verdict} it, {grouped.lost} lost", file=out)
            lost += grouped.lost
        if args.ungrouped:
            plain = run(ungrouped, args.ungrouped, args.timeout)
            report(out, "grouping off (slack.group_window_seconds: 0)", plain, scale=args.findings / args.ungrouped)
            lost += plain.lost
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
