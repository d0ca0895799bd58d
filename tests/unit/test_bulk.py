"""The parts of a bulk decision that need no AWS: reading a group click, the time budget, and the answer's words."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import ValidationError

from macie_chatops import names
from macie_chatops.bulk import (
    BulkFormMetadata,
    Done,
    GroupClick,
    _each,
    is_bulk_submission,
    is_group_click,
    parse_group_click,
    report,
)
from macie_chatops.groups import GroupMember
from macie_chatops.interaction import Answer
from macie_chatops.states import State

GROUP_ID = "0123456789abcdef0123456789abcdef"


def member(seq: int) -> GroupMember:
    return GroupMember(seq, f"{seq:032x}", f"k/{seq}", "High", State.PENDING_APPROVAL)


def body(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def click_payload(action: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": "U0ALICE"},
        "team": {"id": "T0EXAMPLE"},
        "channel": {"id": "C0PAYMENTS"},
        "container": {"type": "message", "channel_id": "C0PAYMENTS", "message_ts": "1.2", "is_ephemeral": False},
        "actions": [action],
        "response_url": "https://hooks.slack.com/actions/T0EXAMPLE/1/x",
        **extra,
    }


# --- reading a click --------------------------------------------------------------------------------------


def test_a_bulk_button_and_a_page_select_are_group_clicks_and_read_as_such() -> None:
    button = {"action_id": names.ACTION_BULK_REMEDIATE, "type": "button", "value": "v"}
    select = {
        "action_id": names.ACTION_ACT_ON_ONE,
        "type": "static_select",
        "selected_option": {"value": "f" * 32, "text": {"type": "plain_text", "text": "1. k"}},
    }
    for action, value in ((button, "v"), (select, "f" * 32)):
        raw = body(click_payload(action))
        assert is_group_click(raw)
        parsed = parse_group_click(raw)
        assert isinstance(parsed, GroupClick)
        assert (parsed.action_id, parsed.value, parsed.channel_ids) == (
            action["action_id"],
            value,
            frozenset({"C0PAYMENTS"}),
        )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"payload=not-json",
        body([]),
        body({"type": "view_submission"}),
        body(click_payload({"action_id": names.ACTION_REMEDIATE, "type": "button", "value": "x"})),
        body({**click_payload({"action_id": names.ACTION_BULK_REMEDIATE, "type": "button"}), "actions": []}),
        b"\xff\xfe",
    ],
)
def test_anything_else_is_not_a_group_click(raw: bytes) -> None:
    assert not is_group_click(raw)


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions"},
        click_payload({"action_id": names.ACTION_BULK_REMEDIATE, "type": "button", "value": "v" * 2001}),
        {**click_payload({"action_id": names.ACTION_BULK_REMEDIATE, "type": "button"}), "user": {"id": "alice"}},
    ],
)
def test_a_group_click_of_the_wrong_shape_is_a_bad_request(payload: dict[str, Any]) -> None:
    parsed = parse_group_click(body(payload))
    assert isinstance(parsed, Answer) and parsed.status == 400


def test_only_the_bulk_form_is_a_bulk_submission() -> None:
    assert is_bulk_submission(
        body({"type": "view_submission", "view": {"callback_id": "macie_chatops.bulk_dismiss_form"}})
    )
    assert not is_bulk_submission(
        body({"type": "view_submission", "view": {"callback_id": "macie_chatops.dismiss_form"}})
    )
    assert not is_bulk_submission(b"payload=%5B%5D")


@pytest.mark.parametrize(
    "metadata",
    [
        {"group": GROUP_ID, "upto": 3, "version": 1, "channel": "C0PAYMENTS", "finding_id": "x"},
        {"group": GROUP_ID, "upto": 0, "version": 1, "channel": "C0PAYMENTS"},
        {"group": GROUP_ID, "upto": "3", "version": 1, "channel": "C0PAYMENTS"},
        {"group": "../" + GROUP_ID, "upto": 3, "version": 1, "channel": "C0PAYMENTS"},
        {"group": GROUP_ID, "upto": 3, "version": 1, "channel": "#payments"},
    ],
)
def test_the_bulk_forms_metadata_is_read_strictly(metadata: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BulkFormMetadata.model_validate(metadata)


# --- the budget -----------------------------------------------------------------------------------------


def pages(count: int, size: int = 3) -> Iterator[list[GroupMember]]:
    for first in range(1, count + 1, size):
        yield [member(seq) for seq in range(first, min(count, first + size - 1) + 1)]


def test_no_member_is_started_and_no_page_read_after_the_deadline() -> None:
    # GIVEN 9 members in pages of 3, and a deadline already past
    started: list[int] = []
    read: list[int] = []

    def reading() -> Iterator[list[GroupMember]]:
        for page in pages(9):
            read.append(page[0].seq)
            yield page

    def act(item: GroupMember) -> Done:
        started.append(item.seq)
        return Done.APPROVED

    progress = _each(reading(), act, deadline=time.monotonic() - 1, upto=9)
    # THEN only the first page was read, nobody was acted on, and the decision resumes at member 1
    assert read == [1] and started == []
    assert (progress.not_reached, progress.resume_at) == (9, 1)
    assert progress.counts() == {Done.NOT_REACHED: 9}


def test_members_are_all_reached_within_the_deadline() -> None:
    progress = _each(pages(7), lambda item: Done.APPROVED, deadline=time.monotonic() + 60, upto=7)
    assert progress.counts() == {Done.APPROVED: 7} and progress.resume_at is None


def test_a_member_that_raises_is_reported_failed_and_the_others_go_on() -> None:
    lock = threading.Lock()
    done: list[int] = []

    def act(item: GroupMember) -> Done:
        if item.seq == 2:
            raise RuntimeError("DynamoDB is down for this one")
        with lock:
            done.append(item.seq)
        return Done.APPROVED

    progress = _each(pages(4), act, deadline=time.monotonic() + 60, upto=4)
    assert [m.seq for m in progress.done[Done.FAILED]] == [2]
    assert sorted(done) == [1, 3, 4] and [m.seq for m in progress.done[Done.APPROVED]] == [1, 3, 4]


# --- the answer -----------------------------------------------------------------------------------------


def test_the_answer_says_what_was_done_and_what_is_left() -> None:
    counts = {
        Done.APPROVED: 2,
        Done.COUNTED: 1,
        Done.ALREADY_COUNTED: 1,
        Done.HANDLED: 2,
        Done.REFUSED: 1,
        Done.FAILED: 1,
        Done.NOT_REACHED: 1,
    }
    text = report(counts, verb="quarantine", listed=9, since=4)
    assert text.splitlines() == [
        "*2 of the 9 listed findings queued for quarantine* by you.",
        "Each has its own job; the digest shows the outcomes as they come.",
        "1 need another approver: your approval is recorded on each, and someone else must quarantine them too.",
        "1 you had approved already: they wait for another approver.",
        "2 already handled (no longer awaiting approval): left as they are.",
        "1 could not be decided from this message: act on them one by one.",
        "1 failed: nothing changed for them; click again to retry them.",
        "1 not reached in time (Slack waits 3 s): continue with the button below.",
        "4 more since the digest was rendered: they are not included and need their own click.",
    ]


def test_a_dismissal_answer_with_nothing_else_to_say_is_one_line() -> None:
    assert report({Done.APPROVED: 1}, verb="dismiss", listed=1, since=0) == (
        "*1 of the 1 listed findings dismissed* by you."
    )


def test_the_single_dismissal_forms_finding_id_is_matched_whole() -> None:
    from macie_chatops.dismissal import FormMetadata

    good = {"finding_id": "f" * 32, "channel": "C0PAYMENTS", "ts": "1700000000.000100"}
    assert FormMetadata.model_validate(good).finding_id == "f" * 32
    assert FormMetadata.model_validate({**good, "ts": ""}).ts == ""  # a group member with no message of its own
    for bad in ({**good, "finding_id": "../" + "f" * 32}, {**good, "ts": "x1.2"}):
        with pytest.raises(ValidationError):
            FormMetadata.model_validate(bad)
