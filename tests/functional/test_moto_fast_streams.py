"""moto_fast serves DynamoDB Streams GetRecords with its memoized serializer: the same bytes as moto's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3

from macie_chatops_sandbox import moto_fast
from tests.conftest import AwsSandbox
from tests.functional.test_moto_fast import NO_RETRIES, Recorder, store_like_item

TABLE = "streamed"


def streamed_table(aws: AwsSandbox) -> tuple[Any, Any, str]:
    """A table streaming new and old images, written every way (records of INSERT, MODIFY and REMOVE with
    store-like images: nested maps and lists, binary, sets, numbers, unicode); its streams client and a
    TRIM_HORIZON iterator."""
    dynamodb = boto3.client("dynamodb", region_name=aws.region, config=NO_RETRIES)
    streams = boto3.client("dynamodbstreams", region_name=aws.region, config=NO_RETRIES)
    stream_arn = dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    for n in range(3):
        dynamodb.put_item(TableName=TABLE, Item=store_like_item(f"f-{n}"))
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "f-0"}},
        UpdateExpression="SET #s = :s, audit = list_append(audit, :a) REMOVE attr_00",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "APPROVED"}, ":a": {"L": [{"M": {"n": {"N": "12"}}}]}},
    )
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "f-1"}})
    shard_id = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    return dynamodb, streams, iterator["ShardIterator"]


def test_get_records_answers_as_moto_does(aws: AwsSandbox, without_moto_fast: None) -> None:
    # GIVEN a stream holding records of every kind, and one iterator at its start
    _, streams, iterator = streamed_table(aws)
    recorder = Recorder(streams)
    # WHEN the same iterator is read without and with moto_fast (a read does not move an iterator)
    streams.get_records(ShardIterator=iterator)
    moto_fast.install()
    try:
        before = moto_fast.stream_reads_serialized()
        streams.get_records(ShardIterator=iterator)
        streams.get_records(ShardIterator=iterator, Limit=2)
        after = moto_fast.stream_reads_serialized()
    finally:
        moto_fast.uninstall()
    streams.get_records(ShardIterator=iterator, Limit=2)
    baseline, fast, fast_limited, baseline_limited = recorder.responses
    # THEN the responses are the same bytes but for the next iterator (a new random one on every read)
    for expected, actual in ((baseline, fast), (baseline_limited, fast_limited)):
        assert (actual[0], actual[1], actual[2]) == (expected[0], expected[1], expected[2])
        expected_iterator = json.loads(expected[3])["NextShardIterator"]
        actual_iterator = json.loads(actual[3])["NextShardIterator"]
        assert actual[3].replace(actual_iterator.encode(), b"<next>") == expected[3].replace(
            expected_iterator.encode(), b"<next>"
        )
    records = json.loads(baseline[3])["Records"]
    assert [record["eventName"] for record in records] == ["INSERT"] * 3 + ["MODIFY", "REMOVE"]
    assert all(isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float | int) for record in records)
    # AND the patched reads took the fast path
    assert (after["fast"] - before["fast"], after["moto"] - before["moto"]) == (2, 0)


def test_records_the_fast_path_cannot_prove_are_serialized_by_moto(without_moto_fast: None) -> None:
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker, get_serializer_class
    from moto.core.utils import get_service_model

    operation = get_service_model("dynamodbstreams").operation_model("GetRecords")

    def serialize(serializer_class: type, result: Any) -> Any:
        serializer = serializer_class(
            operation_model=operation, value_picker=XFormedAttributePicker(response_transformers={})
        )
        return serializer.serialize(result)

    def result(created: Any) -> dict[str, Any]:
        image = {"pk": {"S": "f"}, "n": {"N": "1"}, "b": {"B": "AQI="}, "l": {"L": [{"M": {"x": {"NULL": True}}}]}}
        return {
            "NextShardIterator": "next",
            "Records": [
                {
                    "eventID": "e1",
                    "eventName": "MODIFY",
                    "eventSource": "aws:dynamodb",
                    "eventVersion": "1.0",
                    "awsRegion": "us-east-1",
                    "dynamodb": {
                        "StreamViewType": "NEW_AND_OLD_IMAGES",
                        "ApproximateCreationDateTime": created,
                        "SequenceNumber": "1100000000017454423009",
                        "SizeBytes": 120,
                        "Keys": {"pk": {"S": "f"}},
                        "NewImage": image,
                        "OldImage": image,
                    },
                }
            ],
        }

    # GIVEN records timestamped the ways moto can hold a time: naive, aware, with and without microseconds
    # (the fast path), and as text or a number (moto parses those itself: its own path)
    fast_ones = [
        datetime(2026, 12, 5, 14, 0, 0),  # naive, as moto's own utcnow() makes them
        datetime(2026, 12, 5, 14, 0, 0, 123456),
        datetime(2026, 12, 5, 14, 0, 0, 999, tzinfo=UTC),
    ]
    moto_ones = ["2026-12-05T14:00:00Z", 1764943200]
    moto_fast.install()
    try:
        fast_class = get_serializer_class("dynamodbstreams", "json")
        before = moto_fast.stream_reads_serialized()
        # WHEN serialized by moto_fast's serializer and by moto's THEN the responses are the same
        for created in fast_ones + moto_ones:
            assert serialize(fast_class, result(created)) == serialize(JSONSerializer, result(created)), created
        after = moto_fast.stream_reads_serialized()
    finally:
        moto_fast.uninstall()
    # AND the datetimes took the fast path, the others moto's own
    assert (after["fast"] - before["fast"], after["moto"] - before["moto"]) == (len(fast_ones), len(moto_ones))
    # AND uninstalled, moto's own serializer serves the streams again
    assert get_serializer_class("dynamodbstreams", "json") is JSONSerializer
