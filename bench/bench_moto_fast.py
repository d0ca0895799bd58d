"""moto's server with and without ``moto_fast``, side by side in one run: the two emulator-only costs it removes.

- UpdateItem with ReturnValues=ALL_NEW and ReturnValuesOnConditionCheckFailure=ALL_OLD on a store-like item
  (written by the real ``FindingStore``: ~25 attributes, a summary map, a list of audit maps), the write the
  pipeline makes at every step: moto's generic response serializer against moto_fast's memoized one.
- ReceiveMessage (one message, VisibilityTimeout 0 so the queue keeps its length) on a queue holding N
  messages (default 200): moto's retention check, which builds every queue attribute (approximate counts
  scan the whole queue) per message received, against moto_fast's, which reads the one it needs.
- A transition's UpdateItem (the store's shape: a dozen SETs and REMOVEs, a condition with IN and OR, new
  values every call) and a two-item TransactWriteItems (a conditional Update and a ConditionCheck): moto's
  parsing and validation of the expressions on every call against moto_expressions' (parsed once per text).
- GetRecords of N stream records (default 50) with the item's old and new images: moto's generic serializer
  against the memoized one.

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
    parser.add_argument("--records", type=int, default=50, help="stream records read by GetRecords")
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


def expression_calls(dynamodb: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """A transition's UpdateItem and a two-item transaction on the bench's record; new values every call, the
    state left as it was (the conditions hold every time)."""
    from macie_chatops.names import STATE_TABLE_KEY

    key = {STATE_TABLE_KEY: {"S": FINDING}}
    names = {f"#n{i}": name for i, name in enumerate((STATE_TABLE_KEY, *TRANSITION_ATTRIBUTES))}
    calls = [0]

    def values() -> dict[str, Any]:
        calls[0] += 1
        now = f"2026-11-27T12:{calls[0] // 60 % 60:02d}:{calls[0] % 60:02d}.000000+00:00"
        return {
            ":v0": {"S": "PENDING_APPROVAL"},
            ":v1": {"S": "RECEIVED"},
            ":v2": {"S": now},
            ":v3": {"S": f"U{calls[0]}"},
            ":v4": {"N": str(calls[0])},
            ":v5": {"S": "1700000000.000100"},  # the ts recorded: the condition holds
            ":v6": {"S": "C0PAYMENTS"},
        }

    def transition() -> None:
        dynamodb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression=(
                "SET #n1 = :v0, #n2 = :v2, #n3 = #n1, #n4 = #n5, #n6 = :v3, #n7 = :v4, #n8 = :v2, #n9 = :v6 "
                "REMOVE #n10, #n11, #n12"
            ),
            ConditionExpression=(
                "attribute_exists(#n0) AND #n1 IN (:v0, :v1) AND (attribute_not_exists(#n13) OR #n13 = :v5)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values(),
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def transaction() -> None:
        current = values()
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": key,
                        "UpdateExpression": "SET #n2 = :v2, #n6 = :v3, #n7 = :v4",
                        "ConditionExpression": "attribute_exists(#n0) AND #n1 IN (:v0, :v1)",
                        "ExpressionAttributeNames": {k: names[k] for k in ("#n0", "#n1", "#n2", "#n6", "#n7")},
                        "ExpressionAttributeValues": {k: current[k] for k in (":v0", ":v1", ":v2", ":v3", ":v4")},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {STATE_TABLE_KEY: {"S": "bench-absent"}},
                        "ConditionExpression": "attribute_not_exists(#n0)",
                        "ExpressionAttributeNames": {"#n0": STATE_TABLE_KEY},
                    }
                },
            ]
        )

    return transition, transaction


# The attributes a transition names (#n1..#n13; #n0 is the key), as the store's transition writes them.
TRANSITION_ATTRIBUTES = (
    "state",
    "updated_at",
    "previous_state",
    "pending_team",
    "team",
    "approver",
    "approvals",
    "decided_at",
    "slack_channel",
    "approved_index",
    "approved_at",
    "expires_at",
    "slack_ts",
)


def stream_reads(dynamodb: Any, records: int, audit_entries: int) -> Callable[[], None]:
    """A streamed table holding ``records`` MODIFY records of a store-like item; a read of all of them."""
    import boto3

    streams: Any = boto3.client("dynamodbstreams", region_name=REGION)
    table = "bench-stream"
    stream_arn = dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    from macie_chatops.names import STATE_TABLE_KEY

    item = dynamodb.get_item(TableName=TABLE, Key={STATE_TABLE_KEY: {"S": FINDING}})["Item"]
    item = {**{k: v for k, v in item.items() if k != STATE_TABLE_KEY}, "pk": {"S": "streamed"}}
    dynamodb.put_item(TableName=table, Item=item)
    for n in range(records - 1):
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "streamed"}},
            UpdateExpression="SET #u = :u",
            ExpressionAttributeNames={"#u": "updated_at"},
            ExpressionAttributeValues={":u": {"S": f"update {n} of {audit_entries}"}},
        )
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")

    def read() -> None:
        got = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
        assert len(got) == records

    return read


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

    transition, transaction = expression_calls(dynamodb)
    read_records = stream_reads(dynamodb, args.records, args.audit)
    cases: list[tuple[str, Callable[[], None]]] = [
        (f"UpdateItem ALL_NEW ({size} attributes, {args.audit} audit entries)", update_all_new),
        (f"ReceiveMessage (queue of {args.queue})", receive_one),
        ("UpdateItem, a transition's expressions", transition),
        ("TransactWriteItems, Update + ConditionCheck", transaction),
        (f"GetRecords ({args.records} records, old and new images)", read_records),
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
    from macie_chatops_sandbox import moto_expressions

    parses = moto_expressions.expression_cache_counts()
    print(f"median per call over {args.rounds} rounds x {args.calls} calls (client round trip, one process)")
    print(f"{'case':<58} {'moto':>10} {'moto_fast':>10} {'ratio':>7}")
    for name, _ in cases:
        without = statistics.median(samples[(name, False)])
        with_fast = statistics.median(samples[(name, True)])
        print(f"{name:<58} {without * 1000:>8.2f}ms {with_fast * 1000:>8.2f}ms {without / with_fast:>6.2f}x")
    print(f"DynamoDB results serialized by moto_fast: {counts['fast']}, handed to moto's serializer: {counts['moto']}")
    streams = moto_fast.stream_reads_serialized()
    print(f"GetRecords serialized by moto_fast: {streams['fast']}, handed to moto's serializer: {streams['moto']}")
    print(
        "expressions answered from the caches / parsed by moto, patched: "
        f"update {parses['update_hits']}/{parses['update_parses']}, "
        f"condition {parses['condition_hits']}/{parses['condition_parses']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
