"""moto_fast sizes DynamoDB items as moto does (the 400 KB check on every attribute set), without rebuilding them."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macie_chatops_sandbox import moto_fast
from tests.functional.test_moto_fast import _values, store_like_item


def sizes(values: list[Any]) -> list[Any]:
    """Each value's ``DynamoType(value).size()``, or the type of the error it raised."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    answers: list[Any] = []
    for value in values:
        try:
            answers.append(DynamoType(value).size())
        except Exception as error:  # the error is the answer compared
            answers.append(type(error))
    item = Item(DynamoType({"S": "pk"}), None, {f"a{i}": value for i, value in enumerate(values)})
    answers.append(item.size())
    return answers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_values, min_size=1, max_size=6))
def test_any_value_has_moto_s_size(without_moto_fast: None, values: list[dict[str, Any]]) -> None:
    # GIVEN any AttributeValues (nested lists and maps, sets, numbers, binary, unicode)
    # WHEN they are sized without and with moto_fast THEN the sizes are the same
    expected = sizes(values)
    moto_fast.install()
    try:
        assert sizes(values) == expected
    finally:
        moto_fast.uninstall()


def test_values_moto_holds_after_updates_have_moto_s_size(without_moto_fast: None) -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    record = store_like_item("f-1")
    # GIVEN values as moto's executors leave them: DynamoType members, plain dicts under maps and lists, a
    # DynamoType subclass (moto rebuilds map members: the subclass is refused there, sized in a list)
    nested = DynamoType({"M": {"a": {"L": [{"S": "x"}]}}})
    nested.value["raw"] = {"M": {"deep": {"N": "12.5"}}}
    nested.value["a"].value.append({"S": "plain"})
    listed = DynamoType({"L": [{"N": "1"}]})

    class Typed(DynamoType):
        pass

    listed.value.append(Typed({"S": "sub"}))
    mapped = DynamoType({"M": {}})
    mapped.value["sub"] = Typed({"S": "sub"})
    values = [nested, listed, mapped, DynamoType({"NULL": True}), DynamoType({"BOOL": False})]

    def observed() -> list[Any]:
        answers: list[Any] = []
        for value in [*values, *(DynamoType(v) for v in record.values())]:
            try:
                answers.append(value.size())
            except Exception as error:  # the error is the answer compared
                answers.append(type(error))
        # AND the 400 KB check refuses the same attribute
        limited = LimitedSizeDict()
        for n in range(300):
            try:
                limited[f"attr-{n}"] = DynamoType({"L": [{"S": "x" * 1500}, {"M": {"k": {"B": b"\x00" * 1500}}}]})
            except ItemSizeTooLarge:
                answers.append(("refused at", n))
                break
        return answers

    moto_size = DynamoType.__dict__["size"]
    expected = observed()
    moto_fast.install()
    try:
        # WHEN they are sized without and with moto_fast THEN the sizes (and errors) are the same
        assert DynamoType.__dict__["size"] is not moto_size
        assert observed() == expected
    finally:
        moto_fast.uninstall()
    assert DynamoType.__dict__["size"] is moto_size  # uninstalled: moto's own again
    # AND the corpus holds what it means to: a refused subclass, sized values, the limit reached
    assert TypeError in expected and any(isinstance(answer, tuple) for answer in expected)
