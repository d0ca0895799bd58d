"""moto_fast changes no response: the same raw HTTP responses from moto's server with and without it.

Every DynamoDB case runs a corpus of real calls through boto3 against the session's moto server twice, from
the same clean state: once with moto's own serializer, once with ``moto_fast`` installed; the raw responses
(status, headers, body bytes, captured from botocore's ``after-call`` event) must be equal. The SQS cases
check receive semantics with the patch (retention, dead-letter redrive, visibility, a long queue) against
the same scenario without it.
"""

from __future__ import annotations

import string
import threading
import types
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macie_chatops.config import Action
from macie_chatops.states import State
from macie_chatops.store import FindingStore, PostedMessage, create_state_table
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox import moto_fast
from tests.conftest import AwsSandbox

# A call that fails must fail once: a retry would record two responses in one mode and one in the other.
NO_RETRIES = BotoConfig(retries={"total_max_attempts": 1})
# Headers that differ between any two calls whatever the serializer (the clock, a fresh request id).
VOLATILE_HEADERS = frozenset({"date", "x-amzn-requestid", "x-amz-request-id"})
# Table descriptions carry the creation time; they are not item operations (moto serializes them anyway).
UNRECORDED = frozenset({"CreateTable", "DescribeTable"})

Raw = tuple[str, int, dict[str, str], bytes]


class Recorder:
    """The raw HTTP responses a boto3 client received, in order, as (operation, status, headers, body)."""

    def __init__(self, client: Any) -> None:
        self.responses: list[Raw] = []
        client.meta.events.register("after-call", self._record)

    def _record(self, http_response: Any, model: Any, **_: Any) -> None:
        if model.name in UNRECORDED:
            return
        headers = {k.lower(): v for k, v in http_response.headers.items() if k.lower() not in VOLATILE_HEADERS}
        self.responses.append((model.name, http_response.status_code, headers, http_response.content))


def reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture
def compare(aws: AwsSandbox, without_moto_fast: None) -> Callable[[Callable[[Any], None]], list[Raw]]:
    """Run ``corpus(client)`` from a clean state without and with moto_fast; return the responses once equal."""

    def run(corpus: Callable[[Any], None]) -> list[Raw]:
        recorded: list[list[Raw]] = []
        fast_before = moto_fast.serialized_counts()["fast"]
        for patched in (False, True):
            reset(aws.endpoint)
            if patched:
                moto_fast.install()
            try:
                client = boto3.client("dynamodb", region_name=aws.region, config=NO_RETRIES)
                recorder = Recorder(client)
                corpus(client)
                recorded.append(recorder.responses)
            finally:
                if patched:
                    moto_fast.uninstall()
        baseline, fast = recorded
        assert [r[:2] for r in fast] == [r[:2] for r in baseline]
        for expected, actual in zip(baseline, fast, strict=True):
            assert actual == expected, expected[0]
        # The comparison proves something only if the corpus really took the fast path: every successful
        # item operation did (errors and other operations are moto's own path in both runs).
        fast_path = [r for r in fast if r[1] == 200 and r[0] in moto_fast.FAST_DYNAMODB_OPERATIONS]
        assert fast_path
        assert moto_fast.serialized_counts()["fast"] - fast_before == len(fast_path)
        return baseline

    return run


# -- the corpus -------------------------------------------------------------------------------------------

TABLE = "corpus"
KEYED = "corpus-keyed"


def create_tables(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=KEYED,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def store_like_item(key: str) -> dict[str, Any]:
    """~30 attributes, a list of audit maps and a summary map, with every AttributeValue type."""
    item: dict[str, Any] = {
        "pk": {"S": key},
        "state": {"S": "PENDING_APPROVAL"},
        "version": {"N": "7"},
        "size": {"N": "6442450944"},
        "ratio": {"N": "-0.000125"},
        "empty": {"S": ""},
        "unicode": {"S": 'ünïcode key+%20 ✓ 𝄞 "quoted" \\ back\nline'},
        "blob": {"B": bytes(range(256))},
        "empty_blob": {"B": b""},
        "strings": {"SS": ["a", "b", "ü"]},
        "numbers": {"NS": ["1", "2.5", "-3"]},
        "blobs": {"BS": [b"\x00", b"\xff\xfe"]},
        "nothing": {"NULL": True},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
        "empty_map": {"M": {}},
        "empty_list": {"L": []},
        "audit": {
            "L": [
                {
                    "M": {
                        "at": {"S": f"2026-11-27T12:00:{i:02d}.000000+00:00"},
                        "actor": {"S": "U0ALICE" if i % 2 else "auto"},
                        "event": {"S": "transition"},
                        "outcome": {"S": "QUARANTINED"},
                        "detail": {"S": "x" * i},
                        "n": {"N": str(i)},
                    }
                }
                for i in range(12)
            ]
        },
        "summary": {
            "M": {
                "bucket": {"S": "payments-data"},
                "key": {"S": "exports/ünïcode key+%20.csv"},
                "size": {"N": "6442450944"},
                "nested": {"M": {"deeper": {"L": [{"N": "1"}, {"S": "two"}, {"M": {"three": {"BOOL": True}}}]}}},
                "tags": {"SS": ["pii", "prod"]},
            }
        },
    }
    for i in range(12):
        item[f"attr_{i:02d}"] = {"S": f"value {i}"}
    return item


def item_corpus(client: Any) -> None:
    create_tables(client)
    key = {"pk": {"S": "f-1"}}
    # PutItem: new, overwrite with ALL_OLD, refused with and without ALL_OLD, consumed capacity
    client.put_item(TableName=TABLE, Item=store_like_item("f-1"))
    client.put_item(TableName=TABLE, Item=store_like_item("f-1"), ReturnValues="ALL_OLD")
    client.put_item(
        TableName=TABLE, Item=store_like_item("f-2"), ReturnValues="ALL_OLD", ReturnConsumedCapacity="TOTAL"
    )
    for failure in ("ALL_OLD", "NONE"):
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(
                TableName=TABLE,
                Item=store_like_item("f-1"),
                ConditionExpression="attribute_not_exists(#key)",
                ExpressionAttributeNames={"#key": "pk"},
                ReturnValuesOnConditionCheckFailure=failure,
            )
    # GetItem: present (consistent), missing, projected (nested paths), consumed capacity
    client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
    client.get_item(TableName=TABLE, Key={"pk": {"S": "missing"}}, ConsistentRead=True)
    client.get_item(
        TableName=TABLE,
        Key=key,
        ProjectionExpression="#s, audit[1].actor, summary.nested, #b",
        ExpressionAttributeNames={"#s": "state", "#b": "blob"},
        ReturnConsumedCapacity="INDEXES",
    )
    # UpdateItem: every ReturnValues, the store's conditional transition with ALL_OLD on failure
    updates = [
        ("SET #v = #v + :one", {"#v": "version"}, "NONE"),
        ("SET audit = list_append(audit, :entry), #s = :state", {"#s": "state"}, "ALL_NEW"),
        ("SET #m.nested.added = :state REMOVE attr_00", {"#m": "summary"}, "UPDATED_NEW"),
        ("ADD strings :more, numbers :nums DELETE blobs :blob", {}, "UPDATED_OLD"),
        ("SET ratio = :one, #e = :empty", {"#e": "empty"}, "ALL_OLD"),
    ]
    values = {
        ":one": {"N": "1"},
        ":entry": {"L": [{"M": {"actor": {"S": "U0BOB"}, "n": {"N": "99"}}}]},
        ":state": {"S": "APPROVED"},
        ":more": {"SS": ["c"]},
        ":nums": {"NS": ["4"]},
        ":blob": {"BS": [b"\x00"]},
        ":empty": {"S": ""},
    }
    for expression, names, return_values in updates:
        used = {name: value for name, value in values.items() if name in expression}
        client.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression=expression,
            ExpressionAttributeValues=used,
            **({"ExpressionAttributeNames": names} if names else {}),
            ReturnValues=return_values,
        )
    for failure in ("ALL_OLD", "NONE"):
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET #s = :target",
                ConditionExpression="#s IN (:expected)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":target": {"S": "QUARANTINED"}, ":expected": {"S": "RECEIVED"}},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure=failure,
            )
    # UpdateItem on a missing item (creates it): ALL_OLD has nothing to return
    client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "f-3"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"M": {"deep": {"L": [{"NULL": True}]}}}},
        ReturnValues="ALL_OLD",
    )
    # DeleteItem: missing, present with ALL_OLD, refused with ALL_OLD
    client.delete_item(TableName=TABLE, Key={"pk": {"S": "missing"}}, ReturnValues="ALL_OLD")
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.delete_item(
            TableName=TABLE,
            Key={"pk": {"S": "f-2"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    client.delete_item(TableName=TABLE, Key={"pk": {"S": "f-2"}}, ReturnValues="ALL_OLD")
    # a validation error and an operation that is not an item operation: moto's own path in both runs
    with pytest.raises(client.exceptions.ClientError):
        client.put_item(TableName=TABLE, Item=store_like_item("f-4"), ReturnValues="ALL_NEW")
    client.list_tables()


def read_corpus(client: Any) -> None:
    """Query and Scan pages (LastEvaluatedKey), batches and transactions."""
    create_tables(client)
    client.batch_write_item(
        RequestItems={
            KEYED: [{"PutRequest": {"Item": {**store_like_item("team-a"), "sk": {"N": str(i)}}}} for i in range(7)]
            + [{"PutRequest": {"Item": {"pk": {"S": "team-b"}, "sk": {"N": "1.5"}, "x": {"S": "é"}}}}]
        }
    )
    for forward in (True, False):
        start: dict[str, Any] | None = None
        while True:
            page = client.query(
                TableName=KEYED,
                KeyConditionExpression="pk = :pk AND sk >= :low",
                ExpressionAttributeValues={":pk": {"S": "team-a"}, ":low": {"N": "1"}},
                Limit=3,
                ScanIndexForward=forward,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            start = page.get("LastEvaluatedKey")
            if not start:
                break
    client.query(
        TableName=KEYED,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "team-a"}},
        Select="COUNT",
        ReturnConsumedCapacity="TOTAL",
    )
    client.query(TableName=KEYED, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "nobody"}})
    start = None
    while True:
        page = client.scan(TableName=KEYED, Limit=2, **({"ExclusiveStartKey": start} if start else {}))
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    client.scan(
        TableName=KEYED,
        FilterExpression="attribute_exists(x) OR sk > :n",
        ExpressionAttributeValues={":n": {"N": "5"}},
        ProjectionExpression="pk, sk, x, audit[0]",
    )
    client.batch_get_item(
        RequestItems={
            KEYED: {
                "Keys": [
                    {"pk": {"S": "team-a"}, "sk": {"N": "2"}},
                    {"pk": {"S": "team-b"}, "sk": {"N": "1.5"}},
                    {"pk": {"S": "nobody"}, "sk": {"N": "0"}},
                ]
            }
        }
    )
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": store_like_item("t-1")}},
            {
                "Update": {
                    "TableName": KEYED,
                    "Key": {"pk": {"S": "team-b"}, "sk": {"N": "1.5"}},
                    "UpdateExpression": "SET y = :y",
                    "ExpressionAttributeValues": {":y": {"N": "1"}},
                }
            },
        ]
    )
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": store_like_item("t-1"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            ]
        )
    client.transact_get_items(
        TransactItems=[
            {"Get": {"TableName": TABLE, "Key": {"pk": {"S": "t-1"}}}},
            {"Get": {"TableName": TABLE, "Key": {"pk": {"S": "missing"}}}},
        ]
    )


class SteppingClock:
    """Each reading one second after the previous: both runs write exactly the same timestamps."""

    def __init__(self) -> None:
        self._now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=1)
            return self._now


def finding_summary(finding_id: str) -> FindingSummary:
    return FindingSummary(
        finding_id=finding_id,
        finding_type="SensitiveData:S3Object/Personal",
        severity="High",
        account_id="345678901234",
        region="us-east-1",
        bucket="payments-data",
        key="exports/ünïcode key+%20.csv",
        version_id="",
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


def store_corpus(client: Any) -> None:
    """The state store's own calls, as the pipeline makes them (including a lost race: ALL_OLD on failure)."""
    create_state_table(client, "findings")
    store = FindingStore(client, "findings", clock=SteppingClock())
    for finding_id, action in (("f-auto", Action.AUTO), ("f-review", Action.REVIEW)):
        assert store.create_received(
            finding_id,
            event_id=f"event-{finding_id}",
            action=action,
            reason="SensitiveData:S3Object/Personal",
            actor="finding-handler",
            account_id="345678901234",
            team="payments",
            channel="C0PAYMENTS",
            summary=finding_summary(finding_id),
        ).applied
    assert not store.create_received(
        "f-auto", event_id="again", action=Action.AUTO, reason="duplicate", actor="finding-handler"
    ).applied
    assert store.transition(
        "f-review",
        expected={State.RECEIVED},
        target=State.PENDING_APPROVAL,
        actor="finding-handler",
        event="posted",
        slack_message=PostedMessage("C0PAYMENTS", "1700000000.000100", "finding-handler"),
    ).applied
    assert not store.transition(
        "f-review", expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="finding-handler", event="again"
    ).applied
    assert store.get("f-review") is not None
    assert store.get("missing") is None
    store.pending_approvals("payments")
    store.pending_approvals()


# -- DynamoDB: identical responses ------------------------------------------------------------------------


def test_item_operations_answer_byte_for_byte_as_moto_does(compare: Callable[..., list[Raw]]) -> None:
    # GIVEN store-like items (nested maps and lists, numbers, binary, sets, empty strings, unicode) and every
    # PutItem/GetItem/UpdateItem/DeleteItem variant, conditional failures with ALL_OLD included
    # WHEN the corpus runs without and with moto_fast THEN every raw response is the same
    responses = compare(item_corpus)
    statuses = [(operation, status) for operation, status, _, _ in responses]
    assert ("UpdateItem", 400) in statuses and ("PutItem", 400) in statuses and ("DeleteItem", 400) in statuses
    failed_with_item = [body for operation, status, _, body in responses if status == 400 and b'"Item"' in body]
    assert len(failed_with_item) == 3  # ALL_OLD returns the item in the error, in both runs


def test_query_scan_batches_and_transactions_answer_as_moto_does(compare: Callable[..., list[Raw]]) -> None:
    # GIVEN Query and Scan read page by page (LastEvaluatedKey), batches and transactions
    # WHEN the corpus runs without and with moto_fast THEN every raw response is the same
    responses = compare(read_corpus)
    assert sum(1 for operation, _, _, body in responses if operation == "Query" and b"LastEvaluatedKey" in body) >= 2
    assert any(operation == "TransactWriteItems" and status == 400 for operation, status, _, _ in responses)


def test_the_state_stores_calls_answer_as_moto_does(compare: Callable[..., list[Raw]]) -> None:
    # GIVEN the state store's own writes and reads (a duplicate create and a lost transition among them)
    # WHEN they run without and with moto_fast THEN every raw response is the same
    responses = compare(store_corpus)
    assert {operation for operation, _, _, _ in responses} >= {"PutItem", "UpdateItem", "GetItem", "Query", "Scan"}


_names = st.text(alphabet=string.ascii_letters + "_-.é", min_size=1, max_size=8)
_scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=12)),
    st.builds(lambda d: {"N": str(d)}, st.decimals(min_value=-(10**9), max_value=10**9, places=3)),
    st.builds(lambda b: {"B": b}, st.binary(max_size=12)),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda s: {"SS": sorted(s)}, st.sets(st.text(min_size=1, max_size=5), min_size=1, max_size=3)),
    st.builds(lambda s: {"NS": sorted(str(n) for n in s)}, st.sets(st.integers(-999, 999), min_size=1, max_size=3)),
    st.builds(lambda s: {"BS": sorted(s)}, st.sets(st.binary(min_size=1, max_size=4), min_size=1, max_size=3)),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.builds(lambda items: {"L": items}, st.lists(children, max_size=4)),
        st.builds(lambda fields: {"M": fields}, st.dictionaries(_names, children, max_size=4)),
    ),
    max_leaves=20,
)
_items = st.dictionaries(_names.filter(lambda name: name != "pk"), _values, max_size=8)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attributes=_items)
def test_any_item_reads_back_byte_for_byte_as_moto_does(
    aws: AwsSandbox, without_moto_fast: None, attributes: dict[str, Any]
) -> None:
    # GIVEN any item of any shape stored in moto
    reset(aws.endpoint)
    client = boto3.client("dynamodb", region_name=aws.region, config=NO_RETRIES)
    create_tables(client)
    recorder = Recorder(client)
    item = {"pk": {"S": "any"}, **attributes}
    client.put_item(TableName=TABLE, Item=item)

    def read() -> None:
        client.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "any"}},
            UpdateExpression="SET copied = :v",
            ExpressionAttributeValues={":v": {"S": "same"}},
            ReturnValues="ALL_NEW",
        )
        client.get_item(TableName=TABLE, Key={"pk": {"S": "any"}}, ConsistentRead=True)
        client.scan(TableName=TABLE)

    # WHEN it is read (after an update that, done twice, changes nothing) without and with moto_fast
    read()
    baseline = recorder.responses[1:]
    recorder.responses.clear()
    moto_fast.install()
    try:
        fast_before = moto_fast.serialized_counts()["fast"]
        read()
        fast_after = moto_fast.serialized_counts()["fast"]
    finally:
        moto_fast.uninstall()
    # THEN the raw responses are the same, and the patched ones all took the fast path
    assert recorder.responses == baseline
    assert fast_after - fast_before == 3
    assert all(status == 200 for _, status, _, _ in baseline)


def test_results_the_fast_path_cannot_prove_are_serialized_by_moto(without_moto_fast: None) -> None:
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker, get_serializer_class
    from moto.core.utils import get_service_model

    operation = get_service_model("dynamodb").operation_model("Query")

    def serialize(serializer_class: type, result: Any) -> Any:
        serializer = serializer_class(
            operation_model=operation, value_picker=XFormedAttributePicker(response_transformers={})
        )
        return serializer.serialize(result)

    item = {"a": {"S": "x"}, "b": {"B": b"\x01"}}
    results = [
        # plain data: the fast path, aliases included (moto also finds "items" as Items, "count" as Count)
        {"Count": 1, "ScannedCount": 1, "Items": [item]},
        {"items": [item], "count": 1, "scanned_count": 2},
        # what it hands to moto: an object, an Enum, None in a list of strings, a bool as an integer,
        # a Decimal as a double, an empty attribute name (moto writes that value into the map itself)
        types.SimpleNamespace(Count=1, ScannedCount=2, Items=[item]),
        {"Count": 1, "Items": [{"a": {"S": State.RECEIVED}}]},
        {"Count": 1, "Items": [{"a": {"SS": ["x", None]}}]},
        {"Count": True, "Items": [item]},
        {"Count": 1, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": Decimal("0.5")}},
        {"Count": 1, "Items": [{"": {"S": "x"}}]},
        None,
    ]
    moto_fast.install()
    try:
        fast_class = get_serializer_class("dynamodb", "json")
        before = moto_fast.serialized_counts()
        # GIVEN results of every kind WHEN serialized by moto_fast's serializer and by moto's
        for result in results:
            # THEN the responses are the same
            assert serialize(fast_class, result) == serialize(JSONSerializer, result), result
        after = moto_fast.serialized_counts()
    finally:
        moto_fast.uninstall()
    # AND the plain ones took the fast path, the others moto's own (None: the empty structure, fast)
    assert (after["fast"] - before["fast"], after["moto"] - before["moto"]) == (3, 6)


def test_uninstall_restores_moto_and_installs_are_counted(without_moto_fast: None) -> None:
    import jsonpath_ng.ext
    from moto.core import serialize
    from moto.s3.models import S3Backend
    from moto.s3.utils import _VersionedKeyStore
    from moto.sqs.models import Queue, SQSBackend

    original_check = SQSBackend.__dict__["is_message_valid_based_on_retention_period"]
    original_messages = Queue.__dict__["messages"]
    originals = [
        (_VersionedKeyStore, "iterlists", _VersionedKeyStore.__dict__["iterlists"]),
        (S3Backend, "list_object_versions", S3Backend.__dict__["list_object_versions"]),
        (jsonpath_ng.ext, "parse", jsonpath_ng.ext.__dict__["parse"]),
    ]
    registry_before = dict(serialize.SERIALIZERS)
    specific_before = {s: dict(p) for s, p in serialize.SERVICE_SPECIFIC_SERIALIZERS.items()}
    # GIVEN moto_fast installed twice (the sandbox and a fixture, say)
    moto_fast.install()
    moto_fast.install()
    assert serialize.get_serializer_class("dynamodb", "json") is not serialize.JSONSerializer
    assert SQSBackend.__dict__["is_message_valid_based_on_retention_period"] is not original_check
    assert Queue.__dict__["messages"] is not original_messages
    assert all(target.__dict__[name] is not original for target, name, original in originals)
    # WHEN one of them uninstalls THEN it stays installed
    moto_fast.uninstall()
    assert moto_fast.installed()
    assert serialize.get_serializer_class("dynamodb", "json") is not serialize.JSONSerializer
    # WHEN the other one does THEN moto is exactly as it was
    moto_fast.uninstall()
    assert not moto_fast.installed()
    assert serialize.get_serializer_class("dynamodb", "json") is serialize.JSONSerializer
    assert SQSBackend.__dict__["is_message_valid_based_on_retention_period"] is original_check
    assert Queue.__dict__["messages"] is original_messages
    assert all(target.__dict__[name] is original for target, name, original in originals)
    assert {s: dict(p) for s, p in serialize.SERVICE_SPECIFIC_SERIALIZERS.items()} == specific_before
    assert dict(serialize.SERIALIZERS) == registry_before
    # AND an extra uninstall changes nothing
    moto_fast.uninstall()
    assert not moto_fast.installed()


# -- SQS: receive semantics unchanged ---------------------------------------------------------------------


def sqs_backend_queue(queue_url: str) -> Any:
    """The moto backend's queue object (the server runs in this process)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    return sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[queue_url.rsplit("/", 1)[1]]


def bodies(response: dict[str, Any]) -> list[str]:
    return [message["Body"] for message in response.get("Messages", [])]


def both_ways(aws: AwsSandbox, scenario: Callable[[Any], list[Any]]) -> list[Any]:
    """The scenario's observations without and with moto_fast, asserted equal."""
    observed = []
    for patched in (False, True):
        reset(aws.endpoint)
        if patched:
            moto_fast.install()
        try:
            observed.append(scenario(boto3.client("sqs", region_name=aws.region, config=NO_RETRIES)))
        finally:
            if patched:
                moto_fast.uninstall()
    assert observed[1] == observed[0]
    return observed[1]


def test_an_expired_message_is_still_not_delivered(aws: AwsSandbox, without_moto_fast: None) -> None:
    def scenario(sqs: Any) -> list[Any]:
        # GIVEN a queue keeping messages 60 s, with a message sent two minutes ago (aged in moto's backend)
        url = sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="old")
        sqs_backend_queue(url)._messages[0].sent_timestamp -= 120_000
        sqs.send_message(QueueUrl=url, MessageBody="new")
        # WHEN it is received, then again
        return [bodies(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)) for _ in range(3)]

    # THEN the expired message is never delivered (moto hides it in flight), the fresh one is, once
    assert both_ways(aws, scenario) == [[], ["new"], []]


def test_dead_letter_redrive_still_moves_the_message(aws: AwsSandbox, without_moto_fast: None) -> None:
    def scenario(sqs: Any) -> list[Any]:
        # GIVEN a queue that redrives after one receive to a dead-letter queue, holding one message
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 1}}'
        url = sqs.create_queue(QueueName="source", Attributes={"RedrivePolicy": policy})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="job")
        # WHEN it is received and not deleted, received again, and the dead-letter queue read
        first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, AttributeNames=["ApproximateReceiveCount"])
        second = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
        dead = sqs.receive_message(QueueUrl=dlq)
        return [bodies(first), first["Messages"][0]["Attributes"], bodies(second), bodies(dead)]

    # THEN the second receive finds nothing: the message is in the dead-letter queue
    assert both_ways(aws, scenario) == [["job"], {"ApproximateReceiveCount": "1"}, [], ["job"]]


def test_visibility_still_hides_and_returns_messages(aws: AwsSandbox, without_moto_fast: None) -> None:
    def scenario(sqs: Any) -> list[Any]:
        # GIVEN a queue holding one message (and one delayed for a minute)
        url = sqs.create_queue(QueueName="visibility")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
        sqs.send_message(
            QueueUrl=url, MessageBody="m", MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}}
        )
        # WHEN it is received for 30 s, received again, made visible again, then received
        first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30, MessageAttributeNames=["All"])
        hidden = sqs.receive_message(QueueUrl=url)
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=first["Messages"][0]["ReceiptHandle"], VisibilityTimeout=0
        )
        again = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])
        message = again["Messages"][0]
        return [
            bodies(first),
            first["Messages"][0]["MessageAttributes"],
            bodies(hidden),
            bodies(again),
            message["Attributes"],
            "MessageAttributes" in message,
        ]

    # THEN it is hidden while in flight and comes back counted twice (attributes only when asked); the delayed
    # message is never delivered
    assert both_ways(aws, scenario) == [
        ["m"],
        {"k": {"StringValue": "v", "DataType": "String"}},
        [],
        ["m"],
        {"ApproximateReceiveCount": "2"},
        False,
    ]


def test_a_long_queue_is_drained_once_in_order(aws: AwsSandbox, without_moto_fast: None) -> None:
    def scenario(sqs: Any) -> list[Any]:
        # GIVEN 100 messages in one queue
        url = sqs.create_queue(QueueName="long")["QueueUrl"]
        for batch in range(10):
            entries = [{"Id": str(i), "MessageBody": f"m-{batch * 10 + i:03d}"} for i in range(10)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        # WHEN it is drained ten at a time, deleting what was received
        received: list[str] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
                "Messages", []
            )
            if not messages:
                break
            received += [m["Body"] for m in messages]
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return received

    # THEN every message arrives exactly once, in order
    assert both_ways(aws, scenario) == [f"m-{i:03d}" for i in range(100)]


# -- S3: ListObjectVersions answers the same --------------------------------------------------------------

LISTING_BUCKET = "listing"
LISTED_KEYS = ("a", "a/", "a/1", "a/1/x", "a/15", "a/2", "a/2/y", "a0", "ab", "b/1", "b/2", "b/2/z", "c")


def listing_calls() -> list[dict[str, Any]]:
    """ListObjectVersions arguments: prefixes, delimiters, page sizes and markers inside and outside the prefix."""
    calls: list[dict[str, Any]] = [{}]
    for prefix in ("a", "a/", "a/1", "a/15", "a/2/y", "b/", "nothing-here"):
        calls += [
            {"Prefix": prefix},
            {"Prefix": prefix, "Delimiter": "/"},
            {"Prefix": prefix, "MaxKeys": 1},
            {"Prefix": prefix, "MaxKeys": 2},
        ]
    calls += [
        {"Prefix": "a/", "KeyMarker": "a/1"},  # a marker that is a key
        {"Prefix": "a/", "KeyMarker": "a/10"},  # inside the prefix, not a key
        {"Prefix": "b/", "KeyMarker": "a/zz"},  # outside the prefix: the filter stays off
        {"Prefix": "a/", "KeyMarker": "b"},
        {"Prefix": "a/", "Delimiter": "/", "KeyMarker": "a/1/"},
    ]
    return calls


def listings(s3: Any, version_markers: dict[str, str]) -> list[Any]:
    recorder_bodies: list[Any] = []
    calls = listing_calls()
    # A page boundary given as KeyMarker + VersionIdMarker, for each key's newest version
    calls += [{"Prefix": "a/", "KeyMarker": key, "VersionIdMarker": vid} for key, vid in version_markers.items()]
    for call in calls:
        response = s3.list_object_versions(Bucket=LISTING_BUCKET, **call)
        response.pop("ResponseMetadata")
        recorder_bodies.append((call, response))
    return recorder_bodies


def test_list_object_versions_answers_as_moto_does(aws: AwsSandbox, without_moto_fast: None) -> None:
    # GIVEN a versioned bucket with nested keys, several versions, and delete markers
    reset(aws.endpoint)
    s3 = boto3.client("s3", region_name=aws.region, config=NO_RETRIES)
    s3.create_bucket(Bucket=LISTING_BUCKET)
    s3.put_bucket_versioning(Bucket=LISTING_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    newest: dict[str, str] = {}
    for round_ in range(2):
        for key in LISTED_KEYS:
            newest[key] = s3.put_object(Bucket=LISTING_BUCKET, Key=key, Body=f"{key}:{round_}".encode())["VersionId"]
    for key in ("a/15", "b/2"):
        s3.delete_object(Bucket=LISTING_BUCKET, Key=key)
    markers = {key: vid for key, vid in newest.items() if key.startswith("a/")}
    # WHEN the same listings are made without and with moto_fast
    baseline = listings(s3, markers)
    filtered_before = moto_fast.filtered_listings()
    moto_fast.install()
    try:
        fast = listings(s3, markers)
    finally:
        moto_fast.uninstall()
    # (the comparison proves something only if the filter ran: for every call with a prefix, bar those
    # whose KeyMarker lies outside it; each marker call has prefix "a/" and a key under it)
    filterable = [
        call
        for call in listing_calls()
        if call.get("Prefix") and str(call.get("KeyMarker", call["Prefix"])).startswith(call["Prefix"])
    ]
    assert moto_fast.filtered_listings() - filtered_before == len(filterable) + len(markers)
    # THEN every answer is the same, and the corpus saw versions, delete markers, prefixes and truncation
    for expected, actual in zip(baseline, fast, strict=True):
        assert actual == expected, expected[0]
    answers = [response for _, response in baseline]
    assert any(r.get("DeleteMarkers") for r in answers)
    assert any(r.get("CommonPrefixes") for r in answers)
    assert any(r.get("IsTruncated") for r in answers)
    assert any(not r.get("Versions") for r in answers)


# -- EventBridge: the same events reach the targets -------------------------------------------------------


def test_event_bridge_targets_get_the_same_events(aws: AwsSandbox, without_moto_fast: None) -> None:
    import json

    def deliveries() -> list[Any]:
        # GIVEN a rule with a plain SQS target and an InputTransformer target
        reset(aws.endpoint)
        sqs = boto3.client("sqs", region_name=aws.region, config=NO_RETRIES)
        events = boto3.client("events", region_name=aws.region, config=NO_RETRIES)
        urls = [sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("plain", "transformed")]
        arns = [
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for url in urls
        ]
        events.put_rule(Name="macie", EventPattern='{"source": ["aws.macie"]}')
        transformer: dict[str, Any] = {
            "InputPathsMap": {"finding": "$.detail.id", "severity": "$.detail.severity.description"},
            "InputTemplate": '{"finding": "<finding>", "severity": "<severity>"}',
        }
        targets: list[Any] = [
            {"Id": "plain", "Arn": arns[0]},
            {"Id": "t", "Arn": arns[1], "InputTransformer": transformer},
        ]
        events.put_targets(Rule="macie", Targets=targets)
        # WHEN the same findings are put on the bus, twice
        detail = {"id": "f-2", "severity": {"description": "High"}, "list": [1, "two", {"k": "v"}]}
        for _ in range(2):
            events.put_events(
                Entries=[{"Source": "aws.macie", "DetailType": "Macie Finding", "Detail": json.dumps(detail)}]
            )
        received = []
        for url in urls:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
            for message in messages:
                body = json.loads(message["Body"])
                if isinstance(body, dict):
                    body.pop("id", None)  # fresh per event
                    body.pop("time", None)
                received.append(body)
        return received

    baseline = deliveries()
    moto_fast.install()
    try:
        import jsonpath_ng.ext

        fast = deliveries()
        remembered = jsonpath_ng.ext.parse.cache_info().hits  # type: ignore[attr-defined]
    finally:
        moto_fast.uninstall()
    # (and the events really went through the remembered expressions)
    assert remembered > 0
    # THEN both targets received the same events with moto_fast as without it
    assert fast == baseline
    assert len(baseline) == 4
    assert baseline[0]["detail"]["list"] == [1, "two", {"k": "v"}]
