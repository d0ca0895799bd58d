"""moto's server with and without ``moto_fast``, side by side in one run: the two emulator-only costs it removes.

- UpdateItem with ReturnValues=ALL_NEW and ReturnValuesOnConditionCheckFailure=ALL_OLD on a store-like item
  (written by the real ``FindingStore``: ~25 attributes, a summary map, a list of audit maps), the write the
  pipeline makes at every step: moto's generic response serializer against moto_fast's memoized one.
- ReceiveMessage (one message, VisibilityTimeout 0 so the queue keeps its length) on a queue holding N
  messages (default 200): moto's retention check, which builds every queue attribute (approximate counts
  scan the whole queue) per message received, against moto_fast's, which reads the one it needs.

Rounds alternate without/with so drift hits both alike; the median per-call time is printed with the ratio.
Timings only print; nothing asserts on them. Run: ``.venv/bin/python bench/bench_moto_fast.py [--calls N]
[--rounds N] [--queue N] [--audit N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

REGION = "us-east-1"
TABLE = "bench-findings"
FINDING = "bench-finding-0001"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=40, help="calls per round and case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queue", type=int, default=200, help="messages sitting in the queue")
    parser.add_argument("--audit", type=int, default=8, help="audit entries on the item")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    try:
        run(args)
    finally:
        server.stop()
    return 0


def store_like_item(dynamodb: Any, audit_entries: int) -> None:
    """The finding's record as the pipeline leaves it: created, then moved along with audit entries."""
    from macie_chatops.config import Action
    from macie_chatops.states import State
    from macie_chatops.store import FindingStore, PostedMessage, create_state_table
    from macie_chatops.summary import FindingSummary

    create_state_table(dynamodb, TABLE)
    now = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(seconds=1)
        return now[0]

    store = FindingStore(dynamodb, TABLE, clock=clock)
    summary = FindingSummary(
        finding_id=FINDING,
        finding_type="SensitiveData:S3Object/Personal",
        severity="High",
        account_id="345678901234",
        region=REGION,
        bucket="payments-data",
        key="exports/customers-2026-11.csv",
        version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=6 * 1024**3,
        storage_class="STANDARD",
        created_at="2026-11-27T11:00:00Z",
        origin="automated sensitive data discovery",
        account_name="payments-prod",
        team="payments",
        channel="C0PAYMENTS",
        title="Personal data in an object",
    )
    store.create_received(
        FINDING,
        event_id="event-1",
        action=Action.AUTO,
        reason="SensitiveData:S3Object/Personal -> auto",
        actor="finding-handler",
        account_id="345678901234",
        team="payments",
        channel="C0PAYMENTS",
        summary=summary,
    )
    store.transition(
        FINDING,
        expected={State.RECEIVED},
        target=State.PENDING_APPROVAL,
        actor="finding-handler",
        event="posted",
        slack_message=PostedMessage("C0PAYMENTS", "1700000000.000100", "finding-handler"),
    )
    for i in range(max(0, audit_entries - 3)):
        store.append_audit(FINDING, actor="U0ALICE", event="refused", outcome="PENDING_APPROVAL", detail=f"#{i}")


def timed(call: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def run(args: argparse.Namespace) -> None:
    import boto3

    from macie_chatops.names import STATE_TABLE_KEY
    from macie_chatops_sandbox import moto_fast

    dynamodb: Any = boto3.client("dynamodb", region_name=REGION)
    sqs: Any = boto3.client("sqs", region_name=REGION)
    store_like_item(dynamodb, args.audit)
    size = len(dynamodb.get_item(TableName=TABLE, Key={STATE_TABLE_KEY: {"S": FINDING}})["Item"])

    def update_all_new() -> None:
        dynamodb.update_item(
            TableName=TABLE,
            Key={STATE_TABLE_KEY: {"S": FINDING}},
            UpdateExpression="SET #u = :u",
            ConditionExpression="attribute_exists(#k)",
            ExpressionAttributeNames={"#u": "updated_at", "#k": STATE_TABLE_KEY},
            ExpressionAttributeValues={":u": {"S": "2026-11-27T12:30:00.000000+00:00"}},
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    queue_url = sqs.create_queue(QueueName="bench-queue")["QueueUrl"]
    for start in range(0, args.queue, 10):
        entries = [{"Id": str(i), "MessageBody": f'{{"n": {start + i}}}'} for i in range(min(10, args.queue - start))]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    def receive_one() -> None:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, VisibilityTimeout=0)["Messages"]
        assert len(messages) == 1

    cases: list[tuple[str, Callable[[], None]]] = [
        (f"UpdateItem ALL_NEW ({size} attributes, {args.audit} audit entries)", update_all_new),
        (f"ReceiveMessage (queue of {args.queue})", receive_one),
    ]
    samples: dict[tuple[str, bool], list[float]] = {
        (name, patched): [] for name, _ in cases for patched in (False, True)
    }
    for _name, call in cases:  # warm up both paths (service models, plan cache, connections)
        for patched in (False, True):
            if patched:
                moto_fast.install()
            try:
                timed(call, 3)
            finally:
                if patched:
                    moto_fast.uninstall()
    for _ in range(args.rounds):
        for patched in (False, True):
            if patched:
                moto_fast.install()
            try:
                for name, call in cases:
                    samples[(name, patched)].append(timed(call, args.calls))
            finally:
                if patched:
                    moto_fast.uninstall()

    counts = moto_fast.serialized_counts()
    print(f"median per call over {args.rounds} rounds x {args.calls} calls (client round trip, one process)")
    print(f"{'case':<58} {'moto':>10} {'moto_fast':>10} {'ratio':>7}")
    for name, _ in cases:
        without = statistics.median(samples[(name, False)])
        with_fast = statistics.median(samples[(name, True)])
        print(f"{name:<58} {without * 1000:>8.2f}ms {with_fast * 1000:>8.2f}ms {without / with_fast:>6.2f}x")
    print(f"DynamoDB results serialized by moto_fast: {counts['fast']}, handed to moto's serializer: {counts['moto']}")


if __name__ == "__main__":
    raise SystemExit(main())
