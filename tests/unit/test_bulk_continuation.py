"""A bulk approval's continuation without AWS (docs/architecture.md §22, "Bulk decisions"): what its MAC covers, how
its message is read (strictly), and when it is too old to act on."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.bulk_continuation import (
    DOMAIN,
    MAX_AGE,
    Continuation,
    ContinuationBody,
    age_refusal,
    encode,
    read,
)
from macie_chatops.digest_messages import BulkBinding

GROUP = "0123456789abcdef0123456789abcdef"
CLICKED_AT = "2026-12-05T11:00:00.000000Z"
CONTINUATION = Continuation(
    BulkBinding(GROUP, 300, 7, start=51),
    "U0ALICE",
    "T0EXAMPLE",
    "",
    "C0PAYMENTS",
    names.ACTION_BULK_REMEDIATE,
    CLICKED_AT,
)
MAC = bytes(range(32))


def test_the_mac_covers_every_field_each_as_a_netstring_after_its_own_domain() -> None:
    # GIVEN a continuation  WHEN it is encoded for its MAC  THEN the bytes are pinned: the domain first, then each field
    assert CONTINUATION.message() == (
        b"34:macie-chatops/bulk-continuation/v1,32:0123456789abcdef0123456789abcdef,3:300,1:7,2:51,7:U0ALICE,"
        b"9:T0EXAMPLE,0:,10:C0PAYMENTS,28:macie_chatops.bulk_remediate,27:2026-12-05T11:00:00.000000Z,"
    )
    assert DOMAIN != "macie-chatops/approval/v1"  # an approval's MAC is never a continuation's, nor the reverse


@pytest.mark.parametrize(
    "changed",
    [
        dataclasses.replace(CONTINUATION, binding=BulkBinding(GROUP, 301, 7, start=51)),
        dataclasses.replace(CONTINUATION, binding=BulkBinding(GROUP, 300, 8, start=51)),
        CONTINUATION.starting_at(52),
        dataclasses.replace(CONTINUATION, approver="U0MALLORY"),
        dataclasses.replace(CONTINUATION, team_id="T0OTHER"),
        dataclasses.replace(CONTINUATION, enterprise_id="E0ORG"),
        dataclasses.replace(CONTINUATION, channel="C0ANALYTIC"),
        dataclasses.replace(CONTINUATION, clicked_at="2026-12-05T11:10:00.000000Z"),
    ],
)
def test_any_other_field_is_another_message(changed: Continuation) -> None:
    assert changed.message() != CONTINUATION.message()


def test_a_message_is_read_back_exactly() -> None:
    assert read(encode(CONTINUATION, MAC)) == (CONTINUATION, MAC)


def _body(**changes: Any) -> str:
    body = json.loads(encode(CONTINUATION, MAC))
    body.update(changes)
    return json.dumps({key: value for key, value in body.items() if value is not None})


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("{", "the message is not a JSON object"),
        (_body(extra="field"), "the message has the wrong shape at extra"),
        (_body(mac=None), "the message has the wrong shape at mac"),
        (_body(upto="300"), "the message has the wrong shape at upto"),
        (_body(group="../" + GROUP[3:]), "the message has the wrong shape at group"),
        (_body(action=names.ACTION_BULK_DISMISS), "the message has the wrong shape at action"),
        (_body(approver="U0alice"), "the message has the wrong shape at approver"),
        (_body(start=301), "the message starts past its last member"),
        (_body(mac="not base64!"), "the MAC is not base64"),
    ],
    ids=["not-json", "extra", "no-mac", "string-number", "group", "dismiss", "approver", "start", "mac"],
)
def test_anything_but_a_continuation_is_refused_with_the_reason(body: str, why: str) -> None:
    assert read(body) == why


def test_only_a_quarantine_continues() -> None:
    assert ContinuationBody.model_fields["action"].annotation.__args__ == (names.ACTION_BULK_REMEDIATE,)  # type: ignore[union-attr]


def test_a_continuation_is_refused_past_15_minutes_from_its_click_and_ahead_of_the_clock() -> None:
    clicked = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    assert age_refusal(CONTINUATION, clicked + MAX_AGE) is None
    stale = age_refusal(CONTINUATION, clicked + MAX_AGE + timedelta(seconds=1))
    assert stale is not None and stale.category == "stale" and stale.reason.startswith("the click was 15 minutes ago")
    assert age_refusal(CONTINUATION, clicked - timedelta(seconds=30)) is None  # a clock a little behind
    ahead = age_refusal(CONTINUATION, clicked - timedelta(minutes=2))
    assert ahead is not None and ahead.category == "future"
    unreadable = age_refusal(dataclasses.replace(CONTINUATION, clicked_at="yesterday"), clicked)
    assert unreadable is not None and unreadable.category == "bad_time"
