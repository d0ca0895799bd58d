"""A group's digest and thread pages: Slack's limits hold for any size, untrusted keys stay inert, and the bulk
buttons are bound to what the digest listed."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Action
from macie_chatops.digest_messages import (
    MIN_KEY_CHARS,
    BulkBinding,
    offers_bulk,
    render_digest,
    render_page,
)
from macie_chatops.groups import PAGE_SIZE, GroupMember, GroupPage, GroupView, key_prefix
from macie_chatops.slack_messages import (
    MAX_BLOCKS,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_MESSAGE_TEXT_CHARS,
    MAX_SECTION_TEXT,
    SlackMessage,
    text_chars,
)
from macie_chatops.states import State

NOW = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
GROUP_ID = "0123456789abcdef0123456789abcdef"
HOSTILE = "<!channel> <!here> <https://evil.example|click> <@U0ALICE> *bold* _it_ `tick` &amp; \n> quote @here"
CONTROL = re.compile(r"<[!@#]|<https?:|<mailto:")
DATE_TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time_secs\}\|[^<>|]*>")


def member(seq: int, *, key: str | None = None, state: State = State.PENDING_APPROVAL) -> GroupMember:
    return GroupMember(seq, f"{seq:032x}", key or f"reports/2026/q4/customers-{seq:05d}.csv", "High", state)


def view(
    members: int,
    *,
    listed: int | None = None,
    action: Action = Action.REVIEW,
    keys: tuple[str, ...] | None = None,
    states: dict[State, int] | None = None,
    version: int = 7,
) -> GroupView:
    first_keys = keys if keys is not None else tuple(member(seq).key for seq in range(1, min(members, 5) + 1))
    return GroupView(
        group_id=GROUP_ID,
        channel="C0PAYMENTS",
        account_id="345678901234",
        account_name="payments-prod",
        bucket="payments-exports",
        finding_type="SensitiveData:S3Object/Personal",
        action=action,
        opened_at="2026-12-05T10:00:00+00:00",
        last_joined_at="2026-12-05T10:04:00+00:00",
        member_count=members,
        listed_count=members if listed is None else listed,
        state_counts=states if states is not None else {State.PENDING_APPROVAL: members},
        severity_counts={"High": members // 2 + members % 2, "Low": members // 2},
        first_keys=first_keys,
        prefixes={key_prefix(key): 1 for key in first_keys},
        version=version,
    )


def page(number: int, members: list[GroupMember]) -> GroupPage:
    return GroupPage(GROUP_ID, number, tuple(members), None)


def walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def assert_within_limits(message: SlackMessage) -> dict[str, Any]:
    """slack_sdk's validators pass, and the limits it does not check hold too."""
    body = message.to_dict()
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= MAX_BLOCKS
    assert text_chars(blocks) + len(body["text"]) <= MAX_MESSAGE_TEXT_CHARS
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= MAX_SECTION_TEXT
            for item in block.get("fields", []):
                assert len(item["text"]) <= MAX_FIELD_TEXT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER_TEXT
    return body


def assert_inert(body: dict[str, Any]) -> None:
    """No Slack control sequence but the date tokens we write; nothing hostile outside a code span."""
    for obj in walk(body["blocks"]):
        if obj.get("type") == "mrkdwn":
            assert obj.get("verbatim") is True
            assert not CONTROL.search(DATE_TOKEN.sub("", obj["text"])), obj["text"]
    assert not CONTROL.search(body["text"])


def bulk_block(body: dict[str, Any]) -> dict[str, Any] | None:
    actions = [block for block in body["blocks"] if block["type"] == "actions"]
    return actions[0] if actions else None


# --- the digest -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("members", [1, 100, 10_000])
def test_a_review_digest_of_any_size_fits_slack_and_offers_the_bulk_buttons(members: int) -> None:
    # GIVEN a review group of 1, 100 or 10,000 findings
    group = view(members)
    # WHEN its digest is rendered
    body = assert_within_limits(render_digest(group, now=NOW))
    # THEN it says how many, in which state, and has both bulk buttons bound to the listed members
    assert f"{members:,} finding" in body["blocks"][0]["text"]["text"]
    assert f"Awaiting approval: {members:,}" in json.dumps(body, ensure_ascii=False)
    actions = bulk_block(body)
    assert actions is not None
    ids = [element["action_id"] for element in actions["elements"]]
    assert ids == [names.ACTION_BULK_REMEDIATE, names.ACTION_BULK_DISMISS]
    for element in actions["elements"]:
        assert BulkBinding.decode(element["value"]) == BulkBinding(GROUP_ID, members, 7)
        assert f"all {members:,}" in element["text"]["text"]


def test_the_bulk_buttons_bind_listed_count_not_member_count() -> None:
    # GIVEN 120 members of which only 100 are listed (the rest still being written)
    body = assert_within_limits(render_digest(view(120, listed=100, version=12), now=NOW))
    # THEN the buttons act on 1..100 at version 12, and the digest says 20 more are being listed
    actions = bulk_block(body)
    assert actions is not None
    values = {BulkBinding.decode(element["value"]) for element in actions["elements"]}
    assert values == {BulkBinding(GROUP_ID, 100, 12)}
    assert "Quarantine all 100" in json.dumps(body)
    assert "20 more are being listed" in json.dumps(body)
    assert actions["block_id"].endswith(".100.12")  # a new block id for each rendering


def test_the_buttons_count_the_listed_findings_still_awaiting_approval() -> None:
    # GIVEN 50 listed findings of which 20 were dismissed and 3 approved one by one
    group = view(50, states={State.PENDING_APPROVAL: 27, State.DISMISSED: 20, State.APPROVED: 3})
    actions = bulk_block(render_digest(group, now=NOW).to_dict())
    assert actions is not None
    quarantine, dismiss = actions["elements"]
    # THEN they say 27, and stay bound to members 1..50 (those decided meanwhile are reported, not acted on)
    assert quarantine["text"]["text"] == "Quarantine all 27" and dismiss["text"]["text"] == "Dismiss all 27"
    assert quarantine["confirm"]["title"]["text"] == "Quarantine 27 findings?"
    assert BulkBinding.decode(quarantine["value"]) == BulkBinding(GROUP_ID, 50, 7)


def test_both_bulk_buttons_ask_for_confirmation_within_the_dialog_limits() -> None:
    body = render_digest(view(10_000), now=NOW).to_dict()
    actions = bulk_block(body)
    assert actions is not None
    quarantine, dismiss = actions["elements"]
    for button in (quarantine, dismiss):
        confirm = button["confirm"]
        assert len(confirm["title"]["text"]) <= 100 and len(confirm["text"]["text"]) <= 300
        assert len(confirm["confirm"]["text"]) <= 30 and len(confirm["deny"]["text"]) <= 30
        assert "arrived later are not included" in confirm["text"]["text"]
    assert quarantine["style"] == "danger" and quarantine["confirm"]["style"] == "danger"
    assert "10,000 findings" in quarantine["confirm"]["title"]["text"]
    assert "asked why, once" in dismiss["confirm"]["text"]["text"]


@pytest.mark.parametrize(
    ("group", "why"),
    [
        (view(50, action=Action.AUTO, states={State.QUARANTINED: 47, State.BLOCKED: 3}), "auto"),
        (view(50, action=Action.NOTIFY, states={State.NOTIFIED: 50}), "notify"),
        (view(50, states={State.DISMISSED: 20, State.APPROVED: 30}), "nothing pending"),
        (view(50, listed=0), "nothing listed yet"),
    ],
)
def test_no_bulk_buttons_where_there_is_nothing_to_decide(group: GroupView, why: str) -> None:
    body = assert_within_limits(render_digest(group, now=NOW))
    assert bulk_block(body) is None, why
    assert not offers_bulk(group)


def test_an_auto_digest_shows_the_running_tally() -> None:
    # GIVEN an auto group of 50: 44 quarantined, 3 blocked, 1 failed, 2 under way
    states = {State.QUARANTINED: 44, State.BLOCKED: 3, State.FAILED: 1, State.APPROVED: 2}
    body = assert_within_limits(render_digest(view(50, action=Action.AUTO, states=states), now=NOW))
    text = json.dumps(body, ensure_ascii=False)
    # THEN the tally and the per-state lines say it
    assert "*Tally:* quarantined 44 · blocked 3 · failed 1 · being quarantined 2" in text
    assert "Automatic quarantine of 50 findings" in body["blocks"][0]["text"]["text"]
    assert "• Blocked: 3" in text
    assert body["text"].endswith(": 2 being quarantined, 44 quarantined, 3 blocked, 1 failed")  # notifications


@pytest.mark.parametrize(
    ("group", "shortcode"),
    [
        (view(3), ":warning:"),
        (view(3, states={State.QUARANTINED: 3}), ":card_file_box:"),
        (view(3, action=Action.AUTO), ":rotating_light:"),
        (view(3, action=Action.NOTIFY), ":information_source:"),
    ],
)
def test_the_fallback_text_keeps_its_emoji_shortcode_and_escapes_the_rest(group: GroupView, shortcode: str) -> None:
    # GIVEN a group whose account name and finding type are hostile and contain underscores
    hostile = dataclasses.replace(group, account_name=f"payments_prod {HOSTILE}", finding_type=f"x_y {HOSTILE}")
    # WHEN its digest is rendered
    body = assert_within_limits(render_digest(hostile, now=NOW))
    # THEN the notification text starts with the shortcode as Slack reads it (not escaped to ":cardˍfileˍbox:")
    assert body["text"].startswith(shortcode + " ")
    # AND what the finding says is still escaped: inert, its underscores no emphasis
    assert_inert(body)
    assert "payments_prod" not in body["text"] and "x_y" not in body["text"]
    assert len(body["text"]) <= 600


def test_a_count_dipping_below_zero_shows_as_zero() -> None:
    # GIVEN an ADD -1 that landed before its +1 (the counts are adjusted, not recomputed)
    body = render_digest(view(3, states={State.PENDING_APPROVAL: -1, State.APPROVED: 4}), now=NOW).to_dict()
    text = json.dumps(body)
    assert ": -1" not in text and "Awaiting approval" not in text
    assert bulk_block(body) is None


def test_the_digest_lists_the_first_keys_and_the_prefix_summary() -> None:
    prefixes = {f"folder-{index:02d}/": 100 - index for index in range(12)}
    group = dataclasses.replace(view(1_000), prefixes=prefixes)
    text = json.dumps(render_digest(group, now=NOW).to_dict(), ensure_ascii=False)
    assert "`reports/2026/q4/customers-00001.csv`" in text
    assert "`folder-00/` 100 · `folder-01/` 99" in text  # most first
    assert "and 4 more prefixes" in text and "folder-11/" not in text


def test_long_and_hostile_keys_stay_inert_and_within_limits() -> None:
    # GIVEN first keys and prefixes of 1,024 hostile characters, a hostile bucket-adjacent type and account name
    long_hostile = (HOSTILE * 20)[:1024]
    keys = tuple(f"{index}{long_hostile}" for index in range(5))
    group = dataclasses.replace(
        view(10_000, keys=keys),
        prefixes={f"{index}{long_hostile}/": index for index in range(20)},
        finding_type=HOSTILE,
        account_name=HOSTILE,
        severity_counts={HOSTILE: 3, "High": 2},
    )
    # WHEN rendered / THEN within limits, and every control sequence inert
    body = assert_within_limits(render_digest(group, now=NOW))
    assert_inert(body)


# --- the binding ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [1, 2, 10_000])
def test_a_binding_round_trips_and_stays_short(start: int) -> None:
    binding = BulkBinding(GROUP_ID, 10_000, 123_456, start=start)
    encoded = binding.encode()
    assert BulkBinding.decode(encoded) == binding
    assert len(encoded) < 2000  # a button value's limit
    assert ('"from"' in encoded) is (start > 1)  # the digest's own buttons start at 1


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not json",
        "[]",
        "{}",
        json.dumps({"group": GROUP_ID, "upto": 3}),
        json.dumps({"group": GROUP_ID, "upto": 3, "version": 1, "extra": 1}),
        json.dumps({"group": GROUP_ID, "upto": 3, "version": 1, "from": 4}),
        json.dumps({"group": GROUP_ID, "upto": 3, "version": 1, "from": 0}),
        json.dumps({"group": GROUP_ID, "upto": 3, "version": 1, "from": 1}),
        json.dumps({"group": GROUP_ID, "upto": 3, "version": 1, "from": "2"}),
        json.dumps({"group": GROUP_ID, "upto": True, "version": 1}),
        json.dumps({"group": GROUP_ID, "upto": 0, "version": 1}),
        json.dumps({"group": GROUP_ID, "upto": 3, "version": -1}),
        json.dumps({"group": GROUP_ID, "upto": 3.0, "version": 1}),
        json.dumps({"group": "../" + GROUP_ID, "upto": 3, "version": 1}),
        json.dumps({"group": GROUP_ID.upper(), "upto": 3, "version": 1}),
        json.dumps({"group": 5, "upto": 3, "version": 1}),
        "[" * 100_000,
    ],
)
def test_anything_but_a_binding_is_refused(value: str) -> None:
    assert BulkBinding.decode(value) is None


# --- a page ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 37, PAGE_SIZE])
def test_a_review_page_lists_every_member_with_a_select_to_act_on_one(count: int) -> None:
    # GIVEN a page of 1, 37 or 100 members
    members = [member(seq) for seq in range(101, 101 + count)]
    body = assert_within_limits(render_page(view(300), page(2, members)))
    text = json.dumps(body, ensure_ascii=False)
    # THEN each member is listed with its key, severity and finding id, and the select offers each one
    for item in members:
        assert f"`{item.key}`" in text and f"`{item.finding_id}`" in text
    actions = bulk_block(body)
    assert actions is not None
    (select,) = actions["elements"]
    assert select["type"] == "static_select" and select["action_id"] == names.ACTION_ACT_ON_ONE
    assert [option["value"] for option in select["options"]] == [item.finding_id for item in members]
    assert all(len(option["text"]["text"]) <= 75 for option in select["options"])
    assert f"Findings 101–{100 + count}" in text


def test_a_page_shows_a_state_only_where_it_differs_from_the_usual_one() -> None:
    members = [member(seq) for seq in range(1, 11)]
    members[3] = member(4, state=State.DISMISSED)
    text = json.dumps(render_page(view(10), page(1, members)).to_dict(), ensure_ascii=False)
    assert "all awaiting approval unless said" in text
    assert text.count("· dismissed ·") == 1
    assert "· awaiting approval ·" not in text


def test_an_auto_page_has_no_select() -> None:
    members = [member(seq, state=State.APPROVED) for seq in range(1, PAGE_SIZE + 1)]
    body = assert_within_limits(render_page(view(100, action=Action.AUTO), page(1, members)))
    assert bulk_block(body) is None


def test_a_page_of_long_hostile_keys_shortens_them_evenly_and_stays_inert() -> None:
    # GIVEN 100 members whose keys are 1,024 characters of Slack markup
    long_hostile = (HOSTILE * 20)[:1024]
    members = [member(seq, key=f"{seq}/{long_hostile}") for seq in range(1, PAGE_SIZE + 1)]
    # WHEN rendered
    body = assert_within_limits(render_page(view(100), page(1, members)))
    # THEN every member is still listed (by seq and finding id), keys shortened to a readable minimum
    text = json.dumps(body, ensure_ascii=False)
    for item in members:
        assert f"`{item.finding_id}`" in text
    assert_inert(body)
    lines = [
        line for block in body["blocks"] if block["type"] == "section" for line in block["text"]["text"].split("\n")
    ]
    keys = [re.search(r"^\d+\. `([^`]*)`", line) for line in lines]
    assert sum(1 for found in keys if found) == PAGE_SIZE
    assert all(len(found.group(1)) >= MIN_KEY_CHARS for found in keys if found)


def test_a_page_of_ordinary_keys_shows_them_whole() -> None:
    members = [member(seq) for seq in range(1, PAGE_SIZE + 1)]
    body = render_page(view(100), page(1, members)).to_dict()
    listed = "\n".join(block["text"]["text"] for block in body["blocks"] if block["type"] == "section")
    assert "…" not in listed
    assert all(f"`{item.key}`" in listed for item in members)
