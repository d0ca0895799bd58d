"""Property-based fuzzing of the real interaction handler (moto + the Slack stand-in).

Properties, over arbitrary bodies, headers and events, and over signed clicks with arbitrary fields:
- the answer is never a 5xx, and always a JSON body Slack understands;
- nothing changes (no record, no job, no Slack message) without a valid signature;
- a finding's state changes only for a signed click from the configured workspace, in the finding's channel,
  by an approver of its team, on the button whose rule allows it; and then exactly as that rule says;
- Dismiss never changes a state by itself: it opens the dismissal form (docs/architecture.md §16), and only for
  such a click on a finding awaiting approval (the form's submission is fuzzed in tests/e2e/test_dismiss_form.py).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macie_chatops import names
from macie_chatops.states import State
from macie_chatops_sandbox.slack_clicks import api_gateway_event, click_payload, form_body, sign
from macie_chatops_sandbox.slack_standin import SlackStandIn
from tests.conftest import AwsSandbox
from tests.functional.interaction_world import (
    PAYMENTS_CHANNEL,
    SECOPS_MEMBERS,
    SIGNING_SECRET,
    TEAM_ID,
    World,
    interaction_world,
)

FID = "6a1b2c3d4e5f60718293a4b5c6d7f000"
APPROVERS = frozenset({"U0ALICE", *SECOPS_MEMBERS})
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with interaction_world(slack, tmp_path, monkeypatch, FID) as built:
        yield built


def _check_answer(response: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(response, dict)
    assert 200 <= response["statusCode"] < 500, response
    assert response["headers"]["Content-Type"].startswith("application/json")
    body: dict[str, Any] = json.loads(response["body"])
    assert isinstance(body.get("text"), str) and body["text"]
    assert isinstance(body.get("replace_original"), bool)
    return body


# --------------------------------------------------------------------------------------------------------
# Unsigned (or wrongly signed) input: nothing may change, ever
# --------------------------------------------------------------------------------------------------------

SLACK_HEADER_NAMES = st.sampled_from(
    [
        "X-Slack-Signature",
        "x-slack-signature",
        "X-SLACK-SIGNATURE",
        "X-Slack-Request-Timestamp",
        "x-slack-request-timestamp",
        "Content-Type",
    ]
)
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"v0=[0-9a-f]{64}", fullmatch=True),
    st.integers(min_value=0, max_value=2**40).map(str),
    st.just(str(int(time.time()))),
)
HEADERS = st.dictionaries(st.one_of(SLACK_HEADER_NAMES, st.text(max_size=20)), HEADER_VALUES, max_size=6)
BODIES = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=600).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(lambda p: form_body(p), st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)),
    st.just(
        form_body(
            click_payload(
                action_id=names.ACTION_REMEDIATE,
                value=FID,
                user_id="U0ALICE",
                team_id=TEAM_ID,
                channel_id=PAYMENTS_CHANNEL,
            )
        )
    ),
)


@st.composite
def unsigned_events(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["event", "event", "event", "odd"]))
    if kind == "odd":
        return draw(st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3)))
    body = draw(BODIES)
    encoded = draw(st.booleans())
    try:
        text: Any = base64.b64encode(body).decode() if encoded else body.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode()
        encoded = True
    if draw(st.booleans()):
        encoded = not encoded  # the flag lies
    event: dict[str, Any] = {
        "headers": draw(st.one_of(HEADERS, st.none(), st.just("not-a-dict"))),
        "multiValueHeaders": draw(
            st.one_of(st.none(), st.dictionaries(SLACK_HEADER_NAMES, st.lists(HEADER_VALUES, max_size=3), max_size=3))
        ),
        "body": draw(st.one_of(st.just(text), st.none(), st.integers())),
        "isBase64Encoded": draw(st.one_of(st.just(encoded), st.none(), st.sampled_from(["true", 1]))),
        "requestContext": {"requestId": "fuzz"},
    }
    return event


def test_unsigned_input_never_5xx_and_changes_nothing(world: World) -> None:
    # GIVEN a finding awaiting approval; the whole world before the fuzzing
    before = world.snapshot()
    record, writes = world.store.get(FID), world.slack_writes()

    @FUZZ
    @given(event=unsigned_events())
    def one(event: Any) -> None:
        # WHEN any event without a valid signature arrives
        # THEN the answer is not a 5xx, and nothing moved: no write on the record, no job, no Slack message
        _check_answer(world.invoke(event))
        assert world.store.get(FID) == record
        assert world.queued() == 0 and world.slack_writes() == writes

    one()
    # AND nothing anywhere changed (no record created or touched, nothing queued)
    assert world.snapshot() == before


# --------------------------------------------------------------------------------------------------------
# Signed input: a state change only for an approver's well-formed click, and only the one the rule allows
# --------------------------------------------------------------------------------------------------------

APPROVER_IDS = st.sampled_from(sorted(APPROVERS))
OUR_ACTIONS = st.sampled_from([names.ACTION_REMEDIATE, names.ACTION_DISMISS, names.ACTION_RESTORE])
OTHER_USERS = st.sampled_from(["U0CAROL", "U0MALLORY", "W0GUEST", "S0SECOPS"]) | st.text(max_size=12)
OTHER_TEAMS = st.sampled_from(["T0OTHERORG", "E0GRID"]) | st.text(max_size=12)
OTHER_CHANNELS = st.sampled_from(["C0ANALYTIC", "C0ELSEWHERE"]) | st.text(max_size=12)
JUNK = st.one_of(st.none(), st.integers(), st.text(max_size=30), st.lists(st.integers(), max_size=2), st.booleans())
BREAKABLE = [
    ("type",),
    ("user",),
    ("user", "id"),
    ("team",),
    ("team", "id"),
    ("actions",),
    ("channel",),
    ("container",),
]
FLAWS = ["user", "team", "channel", "container", "value", "action", "break", "body"]


@st.composite
def signed_clicks(draw: st.DrawFn, finding_id: str, trigger_id: str) -> bytes:
    """A body to sign: a click every rule would allow, with any set of flaws (often none, often several);
    ``trigger_id``: one the Slack stand-in issued, so that a Dismiss it allows really opens the form."""
    flaws = draw(st.sets(st.sampled_from(FLAWS), max_size=4))
    payload = click_payload(
        trigger_id=trigger_id,
        action_id=draw(OUR_ACTIONS) if "action" not in flaws else draw(st.text(max_size=30)),
        value=finding_id if "value" not in flaws else draw(st.sampled_from(["f" * 32, ""]) | st.text(max_size=40)),
        user_id=draw(APPROVER_IDS) if "user" not in flaws else draw(OTHER_USERS),
        team_id=TEAM_ID if "team" not in flaws else draw(OTHER_TEAMS),
        channel_id=PAYMENTS_CHANNEL if "channel" not in flaws else draw(OTHER_CHANNELS),
    )
    if "container" in flaws:
        payload["container"]["channel_id"] = draw(OTHER_CHANNELS)
    if "break" in flaws:
        path = draw(st.sampled_from(BREAKABLE))
        target: Any = payload
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = draw(JUNK)
    return draw(BODIES) if "body" in flaws else form_body(payload)


def test_signed_input_never_5xx_and_only_approvers_change_state(world: World) -> None:
    # The finding under fuzz, and what we know of the world (nothing else writes to it meanwhile).
    known: dict[str, Any] = {
        "finding": FID,
        "record": world.store.get(FID),
        "queued": 0,
        "changes": 0,
        "writes": world.slack_writes(),  # chat.* calls: only seeding makes them, never a click
        "forms": 0,
    }

    @FUZZ
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        finding_id, before = known["finding"], known["record"]
        # WHEN a correctly signed body arrives: mostly a plausible click with arbitrary choices
        body = data.draw(signed_clicks(finding_id, world.slack.trigger_id("U0ALICE")))
        # (drawn every time, so the draws never depend on the world: the next finding's state, if needed)
        next_state = data.draw(st.sampled_from([State.PENDING_APPROVAL, State.QUARANTINED]))
        event = api_gateway_event(body, sign(SIGNING_SECRET, int(time.time()), body))
        forms = len(world.slack.views())
        response = world.invoke(event)
        form_opened = len(world.slack.views()) > forms
        # THEN it is never a 5xx, never writes to Slack, and ...
        after = world.store.get(finding_id)
        queued = world.queued()
        assert after is not None and world.slack_writes() == known["writes"]
        new_jobs, known["record"], known["queued"] = queued - known["queued"], after, queued
        if form_opened:
            # ... a form opened (the click's own answer empty) changed no state and queued nothing, ...
            assert response["statusCode"] == 200 and json.loads(response["body"]) == {}
            assert after.state is before.state is State.PENDING_APPROVAL and new_jobs == 0
        else:
            answer = _check_answer(response)
            if after.state is before.state:
                # ... a click that changed no state and opened no form queued nothing and replaced no message
                assert new_jobs == 0 and answer["replace_original"] is False
                return
            assert answer["replace_original"] is True
        # ... a state change, or a form, comes only from a well-formed click that every rule allows
        sent = json.loads(parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][0])
        action = sent["actions"][0]
        # (channel may be absent: the container alone then says where the message is)
        channels = {
            c for c in ((sent.get("channel") or {}).get("id"), (sent.get("container") or {}).get("channel_id")) if c
        }
        assert sent["type"] == "block_actions" and sent["team"]["id"] == TEAM_ID
        assert sent["user"]["id"] in APPROVERS
        assert channels == {PAYMENTS_CHANNEL} and action["value"] == finding_id
        if form_opened:
            # ... and only Dismiss opens one: it never dismisses by itself (the form's submission does)
            assert action["action_id"] == names.ACTION_DISMISS
            known["forms"] += 1
            return
        # ... and is exactly the one its button stands for (Dismiss is not one: it opens the form)
        expected = {
            names.ACTION_REMEDIATE: (State.PENDING_APPROVAL, State.APPROVED, 1),
            names.ACTION_RESTORE: (State.QUARANTINED, State.RESTORE_REQUESTED, 1),
        }[action["action_id"]]
        assert (before.state, after.state, new_jobs) == expected
        # The next examples get a fresh finding: awaiting approval, or now and then a quarantined one.
        known["changes"] += 1
        fresh = f"fuzz{known['changes']:04d}{time.monotonic_ns()}"
        known["record"] = world.seed(fresh, state=next_state)
        known["finding"] = fresh
        known["writes"] = world.slack_writes()

    one()
    # AND the property was exercised: some clicks did change a finding
    print(f"fuzz: {known['changes']} accepted clicks, {known['forms']} dismissal forms opened")
    assert known["changes"] >= 1
