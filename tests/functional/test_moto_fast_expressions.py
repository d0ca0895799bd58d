"""moto_fast's expression caches change no response: the same raw responses with and without them.

Every corpus runs each expression text at least twice with different values, so the patched run answers the
second from the cache; the raw responses (errors included, message text and all) must equal moto's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from macie_chatops_sandbox import moto_expressions, moto_fast
from tests.conftest import AwsSandbox
from tests.functional.test_moto_fast import NO_RETRIES, Raw, Recorder, reset

TABLE = "expressions"


Corpus = Callable[[Any], None]


@pytest.fixture
def compare(aws: AwsSandbox, without_moto_fast: None) -> Callable[[Corpus], tuple[list[Raw], dict[str, int]]]:
    """Run ``corpus(client)`` from a clean state without and with moto_fast; the responses once equal, and how
    many parses the patched run answered from the caches."""

    def run(corpus: Corpus) -> tuple[list[Raw], dict[str, int]]:
        recorded: list[list[Raw]] = []
        hits: dict[str, int] = {}
        for patched in (False, True):
            reset(aws.endpoint)
            before = moto_expressions.expression_cache_counts()
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
            after = moto_expressions.expression_cache_counts()
            if patched:
                hits = {name: after[name] - before[name] for name in after}
            else:
                assert after == before  # uninstalled, moto parses on its own
        baseline, fast = recorded
        assert [r[:2] for r in fast] == [r[:2] for r in baseline]
        for expected, actual in zip(baseline, fast, strict=True):
            assert actual == expected, expected[0]
        return baseline, hits

    return run


def create_table(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def record(n: int) -> dict[str, Any]:
    return {
        "pk": {"S": "f"},
        "sk": {"N": str(n)},
        "state": {"S": "PENDING_APPROVAL"},
        "count": {"N": str(n)},
        "team": {"S": f"team-{n % 2}"},
        "tags": {"SS": ["pii", "prod"]},
        "labels": {"SS": ["blue", "green"]},
        "audit": {"L": [{"M": {"actor": {"S": "auto"}, "n": {"N": "0"}}}]},
        "summary": {"M": {"bucket": {"S": "payments"}, "bytes": {"N": "42"}}},
    }


def key(n: int) -> dict[str, Any]:
    return {"pk": {"S": "f"}, "sk": {"N": str(n)}}


# (update expression, condition expression or None, names, values for round 0 and 1); every one is run twice,
# each time on a fresh copy of the record, with the round's values.
UPDATES: list[tuple[str, str | None, dict[str, str], Callable[[int], dict[str, Any]]]] = [
    (
        "SET #s = :s, #u = :u, #p = #s, audit = list_append(audit, :a) REMOVE #t, summary.#b",
        "attribute_exists(pk) AND #s IN (:e1, :e2) AND (attribute_not_exists(#x) OR #x = :x)",
        {"#s": "state", "#u": "updated_at", "#p": "previous_state", "#t": "team", "#b": "bucket", "#x": "slack_ts"},
        lambda r: {
            ":s": {"S": f"APPROVED-{r}"},
            ":u": {"S": f"2026-12-05T1{r}:00:00Z"},
            ":a": {"L": [{"M": {"actor": {"S": f"U{r}"}, "n": {"N": str(r + 1)}}}]},
            ":e1": {"S": "RECEIVED"},
            ":e2": {"S": "PENDING_APPROVAL"},
            ":x": {"S": f"170000000{r}.0001"},
        },
    ),
    (
        "SET #c = #c + :one, made = if_not_exists(made, :now), audit = list_append(:a, audit)",
        "NOT (#c > :max) AND size(audit) < :cap AND #c BETWEEN :low AND :high",
        {"#c": "count"},
        lambda r: {
            ":one": {"N": str(r + 1)},
            ":now": {"S": f"now-{r}"},
            ":a": {"L": [{"S": f"first-{r}"}]},
            ":max": {"N": "100"},
            ":cap": {"N": str(5 + r)},
            ":low": {"N": "0"},
            ":high": {"N": "99"},
        },
    ),
    (
        "ADD tags :more, #c :n DELETE labels :less",
        "contains(tags, :tag) OR begins_with(#t, :prefix)",
        {"#c": "count", "#t": "team"},
        lambda r: {
            ":more": {"SS": [f"added-{r}"]},
            ":n": {"N": str(-r)},
            ":less": {"SS": ["green"]},
            ":tag": {"S": "pii"},
            ":prefix": {"S": "team"},
        },
    ),
    (
        "SET summary.bytes = summary.bytes - :d, audit[0].actor = :who REMOVE audit[0].n",
        "summary.bytes >= :d AND audit[0].actor <> :who AND attribute_type(summary, :type)",
        {},
        lambda r: {":d": {"N": str(r + 2)}, ":who": {"S": f"U{r}"}, ":type": {"S": "M"}},
    ),
    ("REMOVE #t, summary", None, {"#t": "team"}, lambda r: {}),
]


def updates_corpus(client: Any) -> None:
    create_table(client)
    for n, (update, condition, names, values) in enumerate(UPDATES):
        for round_ in (0, 1):
            client.put_item(TableName=TABLE, Item=record(n))
            arguments: dict[str, Any] = {"UpdateExpression": update}
            if condition is not None:
                arguments["ConditionExpression"] = condition
            if names:
                arguments["ExpressionAttributeNames"] = names
            if values(round_):
                arguments["ExpressionAttributeValues"] = values(round_)
            client.update_item(TableName=TABLE, Key=key(n), ReturnValues="ALL_NEW", **arguments)
    # The same texts refused by their condition (the item left as it is, with its ALL_OLD), twice each
    for round_ in (0, 1):
        client.put_item(TableName=TABLE, Item={**record(9), "state": {"S": "QUARANTINED"}})
        update, condition, names, values = UPDATES[0]
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=TABLE,
                Key=key(9),
                UpdateExpression=update,
                ConditionExpression=str(condition),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values(round_),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )


def test_update_and_condition_expressions_answer_as_moto_does(compare: Callable[..., Any]) -> None:
    # GIVEN SET/REMOVE/ADD/DELETE, list_append, if_not_exists, arithmetic, nested paths and indexes, and
    # conditions with AND/OR/NOT, IN, BETWEEN, size, attribute_exists/not_exists/type, begins_with, contains
    # WHEN each text runs twice with different values, without and with moto_fast
    responses, hits = compare(updates_corpus)
    # THEN every raw response is the same, the updated items included
    assert sum(1 for operation, status, _, _ in responses if operation == "UpdateItem" and status == 200) == 10
    assert sum(1 for operation, status, _, _ in responses if operation == "UpdateItem" and status == 400) == 2
    # AND the second run of a text was answered from the caches (moto parses each text twice per UpdateItem)
    assert hits["update_hits"] >= 3 * len(UPDATES) and hits["update_parses"] == len(UPDATES)
    assert hits["condition_hits"] >= 3 * 4 and hits["condition_parses"] == 4


# (update, condition, names, values): each refused by moto, run twice; the texts that are valid with other
# maps were first run with those maps (so the refusal comes on a cache hit). moto 5.2.5 answers some of them
# (a condition's missing placeholder, its syntax errors) with a 500 from its own KeyError/ValueError: the
# patched run must answer those the same way too.
OK = {"S": "PENDING_APPROVAL"}
INVALID: list[tuple[str, str | None, dict[str, str], dict[str, Any]]] = [
    ("SET #s = :s", "#s = :e", {"#s": "state"}, {":s": {"S": "x"}}),  # a condition value missing
    ("SET #s = :s", "#s = :e", {}, {":s": {"S": "x"}, ":e": OK}),  # every name missing
    ("SET #s = :s", "#s = :e", {"#s": "state", "#z": "unused"}, {":s": {"S": "x"}, ":e": OK}),
    ("SET #s = :s", "#s = :e", {"#s": "state"}, {":s": {"S": "x"}, ":e": OK, ":z": {"S": "unused"}}),
    ("SET #s = :missing", "#s = :e", {"#s": "state"}, {":e": OK}),  # an update value missing
    ("SET #s = :s", "((#s = :e))", {"#s": "state"}, {":s": {"S": "x"}, ":e": OK}),  # redundant parentheses
    ("SET #s = :s,", None, {"#s": "state"}, {":s": {"S": "x"}}),  # a trailing comma
    ("SET #s = :s SET #s = :s", None, {"#s": "state"}, {":s": {"S": "x"}}),  # two SET clauses
    ("SET #s = :s, #s = :s", None, {"#s": "state"}, {":s": {"S": "x"}}),  # overlapping paths
    ("SET sk = :s", None, {}, {":s": {"N": "1"}}),  # the range key
    ("SET #s = :s", "#s = :e AND", {"#s": "state"}, {":s": {"S": "x"}, ":e": OK}),
    ("SET #s = :s", "#s BETWEEN :e", {"#s": "state"}, {":s": {"S": "x"}, ":e": OK}),
    ("SET #s = :s", "size = :e", {"#s": "state"}, {":s": {"S": "x"}, ":e": OK}),
    ("SET #c = #c + :s", "attribute_exists(pk)", {"#c": "count"}, {":s": {"S": "not a number"}}),  # types
]
VALID_FIRST: list[tuple[str, str | None, dict[str, str], dict[str, Any]]] = [
    ("SET #s = :s", "#s = :e", {"#s": "state"}, {":s": {"S": "x"}, ":e": OK}),
    ("SET #s = :s", "(#s = :e)", {"#s": "state"}, {":s": {"S": "x"}, ":e": OK}),
    ("SET #c = #c + :s", "attribute_exists(pk)", {"#c": "count"}, {":s": {"N": "1"}}),
]


def invalid_corpus(client: Any) -> None:
    create_table(client)
    for update, condition, names, values in [*VALID_FIRST, *INVALID]:
        for _ in (0, 1):
            client.put_item(TableName=TABLE, Item=record(0))
            arguments: dict[str, Any] = {"UpdateExpression": update, "ExpressionAttributeValues": values}
            if condition is not None:
                arguments["ConditionExpression"] = condition
            if names:
                arguments["ExpressionAttributeNames"] = names
            with contextlib.suppress(client.exceptions.ClientError):  # recorded: raw responses are compared
                client.update_item(TableName=TABLE, Key=key(0), **arguments)


def test_invalid_expressions_fail_as_moto_does_every_time(compare: Callable[..., Any]) -> None:
    # GIVEN texts moto refuses (syntax, missing or unused names and values, redundant parentheses, reserved
    # words, key updates, type errors), some of them texts it accepted a moment before with other maps
    # WHEN each is sent twice, without and with moto_fast
    responses, hits = compare(invalid_corpus)
    # THEN every response is the same as moto's, message and all
    updates = [(status, body) for operation, status, _, body in responses if operation == "UpdateItem"]
    assert [status for status, _ in updates[: 2 * len(VALID_FIRST)]] == [200] * 2 * len(VALID_FIRST)
    refused = updates[2 * len(VALID_FIRST) :]
    assert len(refused) == 2 * len(INVALID) and all(status >= 400 for status, _ in refused)
    assert sum(1 for _, body in refused if b"ValidationException" in body) >= 2 * 9
    # AND the second refusal of a text is the first one's (an error is never cached as a success)
    assert refused[0::2] == refused[1::2]
    # AND the texts accepted before were looked up in the caches (a refusal on a hit fell back to moto's parse)
    assert hits["condition_hits"] > 0 and hits["update_hits"] > 0


def transactions_and_reads_corpus(client: Any) -> None:
    create_table(client)
    for n in range(6):
        client.put_item(TableName=TABLE, Item=record(n))
    for round_ in (0, 1):
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key(round_),
                    "UpdateExpression": "SET #s = :s, audit = list_append(audit, :a)",
                    "ConditionExpression": "#s = :e",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {
                        ":s": {"S": f"APPROVED-{round_}"},
                        ":a": {"L": [{"S": f"joined-{round_}"}]},
                        ":e": {"S": "PENDING_APPROVAL"},
                    },
                }
            },
            {
                "ConditionCheck": {
                    "TableName": TABLE,
                    "Key": key(5),
                    "ConditionExpression": "#c < :limit",
                    "ExpressionAttributeNames": {"#c": "count"},
                    "ExpressionAttributeValues": {":limit": {"N": str(10 - round_)}},
                }
            },
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": record(10 + round_),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        client.transact_write_items(TransactItems=items)
        # the same transaction again: refused on the first item's condition, nothing written
        with pytest.raises(client.exceptions.TransactionCanceledException):
            client.transact_write_items(TransactItems=items)
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            FilterExpression="#t = :team OR #c IN (:c1, :c2)",
            ProjectionExpression="sk, #t, audit[0]",
            ExpressionAttributeNames={"#t": "team", "#c": "count"},
            ExpressionAttributeValues={
                ":pk": {"S": "f"},
                ":low": {"N": "0"},
                ":high": {"N": str(20 - round_)},
                ":team": {"S": f"team-{round_}"},
                ":c1": {"N": "3"},
                ":c2": {"N": str(4 + round_)},
            },
        )
        client.scan(
            TableName=TABLE,
            FilterExpression="NOT begins_with(#s, :p) AND attribute_exists(summary.#b)",
            ExpressionAttributeNames={"#s": "state", "#b": "bucket"},
            ExpressionAttributeValues={":p": {"S": "APPROVED" if round_ else "RECEIVED"}},
        )


def test_transactions_queries_and_scans_answer_as_moto_does(compare: Callable[..., Any]) -> None:
    # GIVEN transactions (Update, ConditionCheck, Put; one refused), a Query and a Scan with filters
    # WHEN each runs twice with different values, without and with moto_fast
    responses, hits = compare(transactions_and_reads_corpus)
    # THEN every raw response is the same
    statuses = [(operation, status) for operation, status, _, _ in responses]
    assert statuses.count(("TransactWriteItems", 200)) == 2 and statuses.count(("TransactWriteItems", 400)) == 2
    assert statuses.count(("Query", 200)) == 2 and statuses.count(("Scan", 200)) == 2
    # AND the repeated texts came from the caches
    assert hits["update_hits"] > 0 and hits["condition_hits"] > 0


def ast_dump(node: Any) -> Any:
    """Everything an update expression's AST holds, as plain data (the parent links as their node types)."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    if isinstance(node, Node):
        fields = {name: value for name, value in vars(node).items() if name != "parent"}
        parent = type(node.parent).__name__ if node.parent is not None else None
        return (type(node).__name__, parent, {name: ast_dump(value) for name, value in fields.items()})
    if isinstance(node, list):
        return [ast_dump(child) for child in node]
    return repr(node)


def test_a_cached_update_ast_is_not_changed_by_executing_it(aws: AwsSandbox, without_moto_fast: None) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    existing, _, names, values = UPDATES[0]
    missing = "SET #s = :s, #u = :u, made = if_not_exists(made, :u)"  # moto validates it twice on a new item
    client = boto3.client("dynamodb", region_name=aws.region, config=NO_RETRIES)
    create_table(client)
    moto_fast.install()
    try:
        # GIVEN the ASTs moto_fast caches for two texts (the server runs in this process: the same cache)
        cached = {text: UpdateExpressionParser.make(text) for text in (existing, missing)}
        pristine = {text: ast_dump(ast) for text, ast in cached.items()}
        results = []
        # WHEN they are executed twice each with different values, one on an existing item, one on a new one
        for round_ in (0, 1):
            client.put_item(TableName=TABLE, Item=record(0))
            for text, item_key in ((existing, key(0)), (missing, key(100 + round_))):
                results.append(
                    client.update_item(
                        TableName=TABLE,
                        Key=item_key,
                        UpdateExpression=text,
                        ExpressionAttributeNames={k: v for k, v in names.items() if k in text},
                        ExpressionAttributeValues={k: v for k, v in values(round_).items() if k in text},
                        ReturnValues="ALL_NEW",
                    )["Attributes"]
                )
        # THEN the cached ASTs are the ones every parse of their text returns, unchanged
        assert all(UpdateExpressionParser.make(text) is ast for text, ast in cached.items())
        assert {text: ast_dump(ast) for text, ast in cached.items()} == pristine
    finally:
        moto_fast.uninstall()
    # AND each execution applied its own values
    assert [result["state"] for result in results] == [{"S": "APPROVED-0"}] * 2 + [{"S": "APPROVED-1"}] * 2
    assert [result["audit"]["L"][-1] for result in results[0::2]] == [values(0)[":a"]["L"][0], values(1)[":a"]["L"][0]]


def test_a_condition_parsed_from_the_cache_is_moto_s_own(without_moto_fast: None) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    condition = "attribute_exists(#k) AND #s IN (:a, :b) AND NOT (size(#l) > :n OR #m.#k BETWEEN :a AND :b)"
    names = {"#k": "pk", "#s": "state", "#l": "audit", "#m": "summary"}

    def parse(values: dict[str, Any]) -> tuple[str, list[str], list[str]]:
        parser = ConditionExpressionParser(condition, names, values)
        op = parser.parse()
        return repr(op), parser.expr_attr_names_found, parser.expr_attr_values_found

    first = {":a": {"S": "A"}, ":b": {"S": "B"}, ":n": {"N": "3"}}
    second = {":a": {"S": "X"}, ":b": {"S": "Y"}, ":n": {"N": "9"}}
    expected = [parse(first), parse(second)]
    moto_fast.install()
    try:
        before = moto_expressions.expression_cache_counts()
        # GIVEN a condition parsed once WHEN it is parsed again with other values THEN the Op trees, names and
        # values found are moto's own for those values
        assert [parse(first), parse(second)] == expected
        after = moto_expressions.expression_cache_counts()
        # AND a placeholder missing from the maps is moto's own KeyError, not a cached success
        with pytest.raises(KeyError):
            ConditionExpressionParser(condition, names, {":a": {"S": "A"}}).parse()
        with pytest.raises(KeyError):
            ConditionExpressionParser(condition, {}, first).parse()
    finally:
        moto_fast.uninstall()
    assert after["condition_hits"] - before["condition_hits"] == 1
    assert after["condition_parses"] - before["condition_parses"] == 1


def test_the_validators_copy_of_an_ast_is_copy_deepcopy_s(without_moto_fast: None) -> None:
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DDBTypedValue  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    typed = DDBTypedValue(DynamoType({"L": [{"S": "x"}]}))
    moto_fast.install()
    try:
        copy_ast = validators.deepcopy
        for update, _, _, _ in UPDATES:
            # GIVEN an update expression's AST WHEN the validators copy it THEN it is what copy.deepcopy makes:
            # the same data, new nodes, the parent links pointing into the copy
            ast = UpdateExpressionParser.make(update)
            copied = copy_ast(ast)
            assert ast_dump(copied) == ast_dump(copy.deepcopy(ast)) == ast_dump(ast)
            assert copied is not ast and all(a is not b for a, b in zip(copied.children, ast.children, strict=True))
            assert all(child.parent is copied for child in copied.children)
        # AND a node holding a DynamoType gets copy.deepcopy's copy of it
        copied_typed = copy_ast(typed)
        assert copied_typed.get_value() == typed.get_value() and copied_typed.get_value() is not typed.get_value()
        assert copy_ast({"a": [1]}) == {"a": [1]}
    finally:
        moto_fast.uninstall()
    assert validators.deepcopy is copy.deepcopy
