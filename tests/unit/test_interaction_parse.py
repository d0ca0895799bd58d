"""Reading a verified click: form, JSON, block_actions shape, our action ids, the workspace rule."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from macie_chatops import names
from macie_chatops.interaction import Answer, Click, ClickAction, parse_click, same_workspace
from macie_chatops_sandbox.slack_clicks import click_payload, form_body

FINDING = "6a1b2c3d4e5f60718293a4b5c6d70001"


def _payload(**overrides: Any) -> dict[str, Any]:
    payload = click_payload(
        action_id=names.ACTION_REMEDIATE, value=FINDING, user_id="U0ALICE", team_id="T0EXAMPLE", channel_id="C0PAYMENTS"
    )
    payload.update(overrides)
    return payload


def _answer(body: bytes) -> Answer:
    answer = parse_click(body)
    assert isinstance(answer, Answer), answer
    return answer


def test_a_remediate_click_is_read() -> None:
    # GIVEN the body Slack posts for a click on Remediate
    click = parse_click(form_body(_payload()))
    # THEN we know who clicked what, where, on which finding
    assert click == Click(
        action=ClickAction.REMEDIATE,
        value=FINDING,
        user_id="U0ALICE",
        team_id="T0EXAMPLE",
        enterprise_id=None,
        channel_ids=frozenset({"C0PAYMENTS"}),
        response_url="https://hooks.slack.com/actions/T0EXAMPLE/1/stand-in",
    )
    assert isinstance(click, Click) and click.finding_id == FINDING


@pytest.mark.parametrize("action_id", [names.ACTION_REMEDIATE, names.ACTION_DISMISS, names.ACTION_RESTORE])
def test_each_of_our_action_ids_is_read(action_id: str) -> None:
    payload = _payload()
    payload["actions"][0]["action_id"] = action_id
    click = parse_click(form_body(payload))
    assert isinstance(click, Click) and click.action.value == action_id


def test_channel_and_container_channel_are_both_kept() -> None:
    payload = _payload(container={"type": "message", "channel_id": "C0OTHER", "message_ts": "1.2"})
    click = parse_click(form_body(payload))
    assert isinstance(click, Click) and click.channel_ids == {"C0PAYMENTS", "C0OTHER"}


def test_extra_fields_slack_may_add_are_ignored() -> None:
    payload = _payload(state={"values": {}}, new_field_2030={"x": 1})
    payload["user"]["is_restricted"] = False
    assert isinstance(parse_click(form_body(payload)), Click)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "no payload"),
        (b"payload", "form-encoded"),  # strict parsing: a field without '='
        (b"a=1&&b=2", "form-encoded"),
        (b"\xff\xfepayload=x", "form-encoded"),
        (b"token=abc&user=U0ALICE", "no payload"),
        (urlencode([("payload", "{}"), ("payload", "{}")]).encode(), "more than one"),
        (b"&".join([b"f%d=1" % i for i in range(20)]), "form-encoded"),  # too many fields
        (urlencode({"payload": "not json"}).encode(), "not JSON"),
        (urlencode({"payload": "[" * 5000 + "]" * 5000}).encode(), "not"),  # deep nesting is refused, not a crash
        (urlencode({"payload": "[1, 2]"}).encode(), "not a JSON object"),
        (urlencode({"payload": '"block_actions"'}).encode(), "not a JSON object"),
        (urlencode({"payload": '{"type": "block_actions"}'}).encode(), "wrong shape"),
    ],
)
def test_unreadable_bodies_are_400_with_an_ephemeral_error(body: bytes, reason: str) -> None:
    answer = _answer(body)
    assert answer.status == 400 and reason in answer.reason
    assert answer.body == {"response_type": "ephemeral", "replace_original": False, "text": answer.body["text"]}


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda p: p.pop("user"), "user"),
        (lambda p: p["user"].update(id=42), "user.id"),
        (lambda p: p["user"].update(id="u0alice"), "user.id"),  # Slack ids are upper case
        (lambda p: p["user"].update(id="U0<!channel>"), "user.id"),
        (lambda p: p.update(actions=[]), "actions"),
        (lambda p: p.update(actions=[p["actions"][0], p["actions"][0]]), "actions"),
        (lambda p: p.update(actions="remediate"), "actions"),
        (lambda p: p["actions"][0].pop("action_id"), "actions.0.action_id"),
        (lambda p: p["actions"][0].update(value=7), "actions.0.value"),
        (lambda p: p["actions"][0].update(value="x" * 2001), "actions.0.value"),
        (lambda p: p["actions"][0].update(action_id="a" * 256), "actions.0.action_id"),
        (lambda p: p.update(team={"id": None}), "team.id"),
        (lambda p: p.update(channel={"id": "#payments"}), "channel.id"),
        (lambda p: p.update(container="C0PAYMENTS"), "container"),
        (lambda p: p.update(response_url=["https://hooks.slack.com/x"]), "response_url"),
        (lambda p: p.update(response_url="https://hooks.slack.com/" + "x" * 2000), "response_url"),
    ],
)
def test_wrong_shapes_are_400_and_name_the_field(mutate: Any, where: str) -> None:
    payload = _payload()
    mutate(payload)
    answer = _answer(form_body(payload))
    assert answer.status == 400
    assert answer.reason.endswith(where), answer.reason


@pytest.mark.parametrize("kind", ["view_submission", "shortcut", "message_action", "block_suggestion", None, 5])
def test_other_interaction_types_are_acknowledged_and_ignored(kind: object) -> None:
    answer = _answer(form_body(_payload(type=kind)))
    assert (answer.status, answer.outcome) == (200, "refused")
    assert answer.body["replace_original"] is False


def test_unknown_action_id_is_refused() -> None:
    payload = _payload()
    payload["actions"][0]["action_id"] = "someone_elses.button"
    answer = _answer(form_body(payload))
    assert (answer.status, answer.reason) == (200, "unknown action id")


@pytest.mark.parametrize(
    "value",
    ["", "<!channel>", "x" * 129, "ünïcödé", "id\x00with-null", "../etc/passwd", "a b", "<https://evil|click>"],
)
def test_values_that_cannot_be_finding_ids_have_none(value: str) -> None:
    payload = _payload()
    payload["actions"][0]["value"] = value
    click = parse_click(form_body(payload))
    assert isinstance(click, Click) and click.finding_id is None


def test_the_reason_never_echoes_an_unexpected_type_name() -> None:
    answer = _answer(form_body(_payload(type="<!channel> " + "x" * 100)))
    assert "<!channel>" not in answer.reason and "?" in answer.reason


@pytest.mark.parametrize(
    ("team_id", "enterprise_id", "configured", "same"),
    [
        ("T0EXAMPLE", None, "T0EXAMPLE", True),
        ("T0OTHER", None, "T0EXAMPLE", False),
        (None, None, "T0EXAMPLE", False),
        ("T0OTHER", "E0GRID", "E0GRID", True),  # Enterprise Grid: the org id is configured
        ("T0OTHER", "E0GRID", "T0EXAMPLE", False),
        ("T0EXAMPLE", "E0GRID", "T0EXAMPLE", True),
        ("E0GRID", None, "T0EXAMPLE", False),
    ],
)
def test_workspace_rule(team_id: str | None, enterprise_id: str | None, configured: str, same: bool) -> None:
    click = Click(ClickAction.DISMISS, FINDING, "U0ALICE", team_id, enterprise_id, frozenset({"C0PAYMENTS"}))
    assert same_workspace(click, configured) is same


def test_answers_serialise_as_api_gateway_responses() -> None:
    answer = _answer(form_body(_payload(type="shortcut")))
    http = answer.to_http()
    assert http["statusCode"] == 200
    assert http["headers"]["Content-Type"].startswith("application/json")
    assert json.loads(http["body"]) == answer.body
