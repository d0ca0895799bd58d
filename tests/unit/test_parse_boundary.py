"""The one parse boundary for event bytes (``finding.parse_event``): size, encoding, depth, JSON, types, ranges
and names, each refused with a reason and never with an exception (issue 12, items 1, 2, 6 and 8)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from macie_chatops.config import Action, load_config
from macie_chatops.decision import decide
from macie_chatops.finding import (
    MAX_EVENT_BYTES,
    MAX_JSON_DEPTH,
    MAX_OBJECT_SIZE,
    Finding,
    Rejection,
    bucket_name_problem,
    object_key_problem,
    parse_event,
    read_event,
)
from tests.conftest import EVENTS_DIR, ROOT, load_event

CONFIG = load_config(ROOT / "accounts.yaml")
REVIEW = "personal-review"


def event_text(mutate: Callable[[dict[str, Any]], None] | None = None) -> str:
    event = load_event(REVIEW)
    if mutate is not None:
        mutate(event)
    return json.dumps(event, ensure_ascii=False)


def s3_object(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = event["detail"]["resourcesAffected"]["s3Object"]
    return found


def rejected(raw: str | bytes | dict[str, Any]) -> Rejection:
    result = parse_event(raw)
    assert isinstance(result, Rejection), result
    return result


def fixture_bytes(name: str) -> bytes:
    return (EVENTS_DIR / name).read_bytes()


# -- item 1: depth, without RecursionError --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["[" * 5000, "[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000])
def test_deep_nesting_is_a_rejection_not_a_recursion_error(text: str) -> None:
    # GIVEN JSON nested 5,000 deep WHEN parsed as bytes and as text THEN a rejection that says so, no exception
    for raw in (text, text.encode()):
        rejection = rejected(raw)
        assert f"deeper than {MAX_JSON_DEPTH}" in rejection.reason
        assert decide(rejection, CONFIG).action is Action.REJECT


def test_depth_at_the_limit_is_read_and_brackets_inside_strings_do_not_count() -> None:
    # GIVEN a JSON object exactly MAX_JSON_DEPTH deep, and a string full of brackets
    nested = "{" + '"a":{' * (MAX_JSON_DEPTH - 1) + "}" * MAX_JSON_DEPTH
    assert isinstance(read_event(nested), dict)
    assert isinstance(read_event(json.dumps({"s": "[[[[{{{{" * 100})), dict)
    # WHEN one level deeper THEN refused
    assert isinstance(read_event("{" + '"a":{' * MAX_JSON_DEPTH + "}" * (MAX_JSON_DEPTH + 1)), Rejection)


def nested_dict(depth: int) -> dict[str, Any]:
    event: dict[str, Any] = {}
    inner = event
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    return event


def test_a_deeply_nested_dict_is_refused_not_raised() -> None:
    # GIVEN a dict nested past the depth limit, and one past the interpreter's recursion limit
    # THEN the first is refused like its JSON text, the second because it cannot even be written as JSON
    assert f"deeper than {MAX_JSON_DEPTH}" in rejected(nested_dict(100)).reason
    assert rejected(nested_dict(5000)).reason.startswith("not a JSON document: RecursionError")


# -- item 2: ranges DynamoDB and S3 can hold --------------------------------------------------------------------


@pytest.mark.parametrize("size", [10**40 + 7, MAX_OBJECT_SIZE + 1, -1])
def test_an_object_size_s3_cannot_have_is_rejected_with_the_finding_id(size: int) -> None:
    rejection = rejected(event_text(lambda e: s3_object(e).__setitem__("size", size)))
    assert "s3Object.size" in rejection.reason
    assert rejection.finding_id == load_event(REVIEW)["detail"]["id"]


def test_the_largest_s3_object_is_accepted() -> None:
    result = parse_event(event_text(lambda e: s3_object(e).__setitem__("size", MAX_OBJECT_SIZE)))
    assert isinstance(result, Finding) and result.s3_object is not None
    assert result.s3_object.size == MAX_OBJECT_SIZE


@pytest.mark.parametrize(
    "number", ["1e999", "NaN", "Infinity", "-Infinity", "9" * 5000], ids=["1e999", "NaN", "Inf", "-Inf", "5000-digits"]
)
def test_numbers_json_cannot_carry_or_python_cannot_read_are_rejections(number: str) -> None:
    text = event_text()[:-1] + f', "extra": {number}}}'
    assert "not JSON" in rejected(text).reason


def test_counts_beyond_exact_integers_are_rejected() -> None:
    def huge_count(event: dict[str, Any]) -> None:
        event["detail"]["classificationDetails"]["result"]["sensitiveData"][0]["totalCount"] = 2**64

    assert "totalCount" in rejected(event_text(huge_count)).reason


# -- item 6 and 8: names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("region", "us-east-1\n"),
        ("region", "us-east-1 "),
        ("region", "US-EAST-1"),
        ("accountId", "345678901234\n"),
        ("accountId", "\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0663\u0664"),  # Arabic digits
        ("id", "6a1b2c3d4e5f60718293a4b5c6d70005\n"),
        ("id", "x" * 129),
    ],
)
def test_ids_and_regions_must_match_whole_and_in_ascii(field: str, value: str) -> None:
    # re.match(r"^...$") accepts a trailing newline and \d any Unicode digit: fullmatch on ASCII does neither
    rejection = rejected(event_text(lambda e: e["detail"].__setitem__(field, value)))
    assert f"detail.{field}" in rejection.reason


def test_a_rejection_keeps_only_well_formed_ids() -> None:
    # GIVEN a hostile finding id and envelope id (the record key would be built from them)
    def hostile(event: dict[str, Any]) -> None:
        event["id"] = "evt <@U0ALICE>\n"
        event["detail"]["id"] = "x" * 500

    rejection = rejected(event_text(hostile))
    # THEN neither is kept; the well-formed account id is
    assert (rejection.event_id, rejection.finding_id, rejection.account_id) == (None, None, "345678901234")


@pytest.mark.parametrize(
    "name",
    [
        "<!here>*b*",
        "ab",
        "a" * 64,
        "Payments",
        "under_score",
        "-leading",
        "trailing-",
        "two..dots",
        "192.168.1.10",
        "xn--bucket",
        "sthree-bucket",
        "bucket-s3alias",
        "bucket--ol-s3",
        "bucket.mrap",
        "bucket--x-s3",
    ],
)
def test_bucket_names_follow_s3_naming_rules(name: str) -> None:
    assert bucket_name_problem(name) is not None
    rejection = rejected(event_text(lambda e: e["detail"]["resourcesAffected"]["s3Bucket"].__setitem__("name", name)))
    assert "s3Bucket.name" in rejection.reason


@pytest.mark.parametrize("name", ["abc", "payments-prod-exports", "a.b-c.d", "9" * 63, "my.bucket.192"])
def test_valid_bucket_names_are_accepted(name: str) -> None:
    assert bucket_name_problem(name) is None


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\rb", "U+000D"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\u2028b", "U+2028"),
        ("invoice\u202egpj.exe", "U+202E"),
        ("é" * 513, "1,026 UTF-8 bytes"),
        ("", "empty"),
    ],
)
def test_keys_s3_cannot_hold_or_no_message_can_show_are_rejected(key: str, words: str) -> None:
    problem = object_key_problem(key)
    assert problem is not None and words in problem
    rejection = rejected(event_text(lambda e: s3_object(e).__setitem__("key", key)))
    assert "s3Object.key" in rejection.reason
    assert words in rejection.reason or key == ""


@pytest.mark.parametrize("key", ["données/Zoë 顧客.csv", "a+b%20c", "é" * 512, "<!channel> `x` *b* _i_ ~s~", "😀.txt"])
def test_keys_s3_allows_and_messages_can_show_are_kept_raw(key: str) -> None:
    result = parse_event(event_text(lambda e: s3_object(e).__setitem__("key", key)))
    assert isinstance(result, Finding) and result.s3_object is not None and result.s3_object.key == key


def test_a_lone_surrogate_anywhere_is_rejected_and_located() -> None:
    # GIVEN the JSON escape of a lone surrogate in the key (valid JSON text, not valid Unicode)
    text = event_text().replace('"exports/customers.csv"', '"exports/\\ud800.csv"')
    rejection = rejected(text)
    assert rejection.reason == "detail.resourcesAffected.s3Object.key: not valid Unicode (a lone surrogate)"
    assert rejection.finding_id is not None  # the finding id itself is fine: a REJECTED record can be written
    # AND a valid pair of surrogate escapes is one character, kept
    paired = parse_event(event_text().replace('"exports/customers.csv"', '"exports/\\ud83d\\ude00.csv"'))
    assert isinstance(paired, Finding) and paired.s3_object is not None and paired.s3_object.key == "exports/😀.csv"


# -- size, encoding, BOM (item 8) ------------------------------------------------------------------------------


def test_an_event_over_eventbridges_limit_is_rejected_before_it_is_read() -> None:
    text = event_text(lambda e: e["detail"].__setitem__("description", "x" * MAX_EVENT_BYTES))
    for raw in (text, text.encode()):
        assert f"{MAX_EVENT_BYTES:,}" in rejected(raw).reason
    # counted in UTF-8 bytes, not characters
    wide = event_text(lambda e: e["detail"].__setitem__("description", "é" * (MAX_EVENT_BYTES // 2)))
    assert len(wide) < MAX_EVENT_BYTES < len(wide.encode())
    assert isinstance(parse_event(wide), Rejection)


def test_bytes_that_are_not_utf8_are_rejected_with_the_offset() -> None:
    raw = event_text().encode().replace(b"customers", b"custo\xffmers")
    assert rejected(raw).reason.startswith("not UTF-8: byte 0xff at offset ")
    # CESU-style encoded surrogates are not UTF-8 either (json.loads(bytes) would have let them through)
    assert rejected(event_text().encode().replace(b"customers", b"cust\xed\xa0\x80omers")).reason.startswith(
        "not UTF-8"
    )


def test_a_byte_order_mark_is_ignored_the_same_way_for_bytes_text_and_files() -> None:
    # GIVEN the same event with a UTF-8 BOM, as bytes, as text, and as the committed fixture
    plain = parse_event(event_text())
    with_bom_bytes = parse_event(b"\xef\xbb\xbf" + event_text().encode())
    with_bom_text = parse_event("\ufeff" + event_text())
    fixture = parse_event(fixture_bytes("hostile-bom.json"))
    # THEN all are the same finding, decided the same way (review)
    assert isinstance(plain, Finding)
    assert with_bom_bytes == plain and with_bom_text == plain
    assert isinstance(fixture, Finding) and decide(fixture, CONFIG).action is Action.REVIEW
    # AND only one: a second BOM is not JSON
    assert isinstance(parse_event("\ufeff\ufeff" + event_text()), Rejection)


def test_a_dict_gets_the_same_answer_as_its_json_text() -> None:
    for name in sorted(p.name for p in EVENTS_DIR.glob("*.json")):
        raw = fixture_bytes(name)
        from_bytes = parse_event(raw)
        data = read_event(raw)
        if isinstance(data, dict):
            assert parse_event(data) == from_bytes, name


def test_reasons_never_carry_the_input() -> None:
    # GIVEN hostile values in fields that fail validation
    def hostile(event: dict[str, Any]) -> None:
        event["source"] = "<!channel> " + "x" * 5000
        event["detail"]["type"] = "\x00" * 10

    rejection = rejected(event_text(hostile))
    assert len(rejection.reason) <= 500 and "\x00" not in rejection.reason and "x" * 300 not in rejection.reason


# -- the hostile fixtures ---------------------------------------------------------------------------------------

HOSTILE = {
    "hostile-deep-nesting.json": "deeper than 32",
    "hostile-over-256kb.json": "at most 262,144",
    "hostile-not-utf8.json": "not UTF-8",
    "hostile-key-lone-surrogate.json": "lone surrogate",
    "hostile-key-nul.json": "U+0000",
    "hostile-key-newline.json": "U+000A",
    "hostile-bidi-key.json": "U+202E",
    "hostile-region-trailing-newline.json": "detail.region",
    "hostile-account-unicode-digits.json": "detail.accountId",
    "hostile-bucket-name.json": "s3Bucket.name",
    "hostile-size-41-digits.json": "s3Object.size",
    "hostile-finding-id.json": "detail.id",
}


@pytest.mark.parametrize(("name", "words"), sorted(HOSTILE.items()))
def test_each_hostile_fixture_is_one_reasoned_rejection(name: str, words: str) -> None:
    rejection = rejected(fixture_bytes(name))
    assert words in rejection.reason
    assert decide(rejection, CONFIG).action is Action.REJECT
