"""moto_fast's TransactWriteItems path: copies of the named items instead of the whole table, with the same
outcomes as moto's own code (items, stream records, errors), and atomic with other writes under moto_atomic."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from macie_chatops_sandbox import moto_atomic, moto_fast
from tests.conftest import AwsSandbox

TABLE = "transactions"
NO_RETRIES = BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def clean() -> Iterator[None]:
    """Neither patch installed by anyone else; none left behind by a failed test."""
    assert not moto_fast.installed()
    yield
    while moto_fast.installed():
        moto_fast.uninstall()
    while moto_atomic.dynamodb_write_lock() is not None:
        moto_atomic.uninstall()


def reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def create_table(dynamodb: Any) -> str:
    table = dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(table["TableDescription"]["LatestStreamArn"])


def observe(dynamodb: Any, streams: Any, stream_arn: str) -> dict[str, Any]:
    """The table's items and its stream's records (event name and keys), in order."""
    items = sorted(dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"], key=lambda i: i["pk"]["S"])
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
    return {
        "items": items,
        "stream": [(r["eventName"], r["dynamodb"]["Keys"], r["dynamodb"].get("NewImage")) for r in records],
    }


def scenario(dynamodb: Any, streams: Any, stream_arn: str) -> list[Any]:
    """Two items; a transaction that fails on its last condition (after a Put and an Update ran in moto), then
    the same writes in one that succeeds, and one naming an item twice (refused before anything is written)."""
    seen: list[Any] = []
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "b"}, "n": {"N": "1"}})
    writes: list[dict[str, Any]] = [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "c"}, "n": {"N": "9"}}}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "a"}},
                "UpdateExpression": "SET n = n + :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]
    failing = {
        "ConditionCheck": {
            "TableName": TABLE,
            "Key": {"pk": {"S": "b"}},
            "ConditionExpression": "n = :two",
            "ExpressionAttributeValues": {":two": {"N": "2"}},
        }
    }
    twice = {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "a"}}}}
    for items in ([*writes, failing], [*writes[1:], twice], writes):
        try:
            dynamodb.transact_write_items(TransactItems=items)
            seen.append("ok")
        except ClientError as exc:
            seen.append((exc.response["Error"]["Code"], exc.response.get("CancellationReasons")))
        seen.append(observe(dynamodb, streams, stream_arn))
    return seen


def both_ways(aws: AwsSandbox, run: Callable[[Any, Any, str], list[Any]]) -> list[Any]:
    observed = []
    for patched in (False, True):
        reset(aws.endpoint)
        if patched:
            moto_fast.install()
        try:
            dynamodb = boto3.client("dynamodb", region_name=aws.region, config=NO_RETRIES)
            streams = boto3.client("dynamodbstreams", region_name=aws.region, config=NO_RETRIES)
            observed.append(run(dynamodb, streams, create_table(dynamodb)))
        finally:
            if patched:
                moto_fast.uninstall()
    assert observed[1] == observed[0]
    return observed[1]


def test_transactions_answer_and_roll_back_as_moto_does(aws: AwsSandbox, clean: None) -> None:
    before = moto_fast.transactions_without_table_copy()
    # GIVEN / WHEN a failing transaction, one refused for naming an item twice, and a succeeding one, with and
    # without moto_fast
    seen = both_ways(aws, scenario)
    # THEN the same answers, items and stream records both ways (compared inside both_ways), and they are right:
    # a failed transaction leaves nothing, not even stream records; the successful one writes both items
    failed, after_failed, refused, after_refused, succeeded, after_success = seen
    assert failed[0] == "TransactionCanceledException"
    assert [i["pk"]["S"] for i in after_failed["items"]] == ["a", "b"]
    assert len(after_failed["stream"]) == 2
    assert refused[0] == "ValidationException"
    assert after_refused == after_failed
    assert succeeded == "ok"
    assert [(i["pk"]["S"], i["n"]["N"]) for i in after_success["items"]] == [("a", "2"), ("b", "1"), ("c", "9")]
    assert len(after_success["stream"]) == 4
    # AND the patched run took the item-copy path for every transaction
    assert moto_fast.transactions_without_table_copy() - before == 3


def test_a_failing_transaction_never_undoes_a_concurrent_write(aws: AwsSandbox, clean: None) -> None:
    # GIVEN moto made atomic and fast, as in the sandbox, and a counter item
    moto_atomic.install()
    moto_fast.install()
    dynamodb = boto3.client("dynamodb", region_name=aws.region, config=NO_RETRIES)
    create_table(dynamodb)
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    increment: dict[str, Any] = {
        "TableName": TABLE,
        "Key": {"pk": {"S": "counter"}},
        "UpdateExpression": "SET n = n + :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    doomed: list[Any] = [  # TransactWriteItemTypeDef
        {"Update": increment},
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "absent"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
    ]

    # WHEN one thread increments it 60 times while another keeps running transactions that increment it too and
    # then fail (each rolled back)
    def increments() -> None:
        for _ in range(60):
            dynamodb.update_item(**increment)

    def failures() -> None:
        for _ in range(60):
            with pytest.raises(ClientError, match="TransactionCanceled"):
                dynamodb.transact_write_items(TransactItems=doomed)

    threads = [threading.Thread(target=increments), threading.Thread(target=failures)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN (no deadlock between the two locks) every plain increment counts and no rolled-back one does
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "counter"}}, ConsistentRead=True)["Item"]
    assert item["n"]["N"] == "60"


def test_install_and_uninstall_restore_the_transaction_path(clean: None) -> None:
    from moto.dynamodb import models
    from moto.dynamodb.responses import DynamoHandler

    handler, copy_module = DynamoHandler.__dict__["transact_write_items"], models.copy
    moto_fast.install()
    assert DynamoHandler.__dict__["transact_write_items"] is not handler
    assert models.copy is not copy_module
    moto_fast.uninstall()
    assert DynamoHandler.__dict__["transact_write_items"] is handler
    assert models.copy is copy_module
