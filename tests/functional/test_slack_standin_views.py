"""The Slack stand-in's modals, through slack_sdk's WebClient: views.open takes a trigger id it issued once and
within 3 seconds, refuses what Slack refuses in a modal, and builds the view_submission Slack would send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from macie_chatops.slack_client import SlackClient, build_web_client
from macie_chatops_sandbox.slack_standin import EXAMPLE_BOT_TOKEN, ManualClock, SlackStandIn

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "cb",
    "title": {"type": "plain_text", "text": "Dismiss finding"},
    "submit": {"type": "plain_text", "text": "Dismiss"},
    "private_metadata": '{"finding_id": "f-1"}',
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Why?"},
            "element": {"type": "plain_text_input", "action_id": "reason"},
        },
        {
            "type": "input",
            "block_id": "duration",
            "label": {"type": "plain_text", "text": "For"},
            "element": {
                "type": "static_select",
                "action_id": "duration",
                "options": [{"text": {"type": "plain_text", "text": "7 days"}, "value": "7"}],
                "initial_option": {"text": {"type": "plain_text", "text": "7 days"}, "value": "7"},
            },
        },
        {
            "type": "input",
            "block_id": "until",
            "optional": True,
            "label": {"type": "plain_text", "text": "Until"},
            "element": {"type": "datepicker", "action_id": "until"},
        },
    ],
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def standin(clock: ManualClock) -> Iterator[SlackStandIn]:
    with SlackStandIn(channels=("C0PAYMENTS",), clock=clock) as running:
        yield running


def web(standin: SlackStandIn) -> WebClient:
    return build_web_client(EXAMPLE_BOT_TOKEN, base_url=standin.base_url)


def error_of(standin: SlackStandIn, trigger_id: str, view: dict[str, Any] = MODAL) -> str:
    with pytest.raises(SlackApiError) as caught:
        web(standin).views_open(trigger_id=trigger_id, view=view)
    return str(caught.value.response["error"])


def test_a_trigger_id_opens_one_modal_once_within_three_seconds(standin: SlackStandIn, clock: ManualClock) -> None:
    # GIVEN a trigger id issued for a click by U0ALICE
    trigger = standin.trigger_id("U0ALICE")
    # WHEN the app opens a modal with it 2.9 s later THEN it opens, for that user, with an id
    clock.advance(2.9)
    view_id = SlackClient(web(standin)).open_view(trigger, MODAL)
    assert [(v.id, v.user_id) for v in standin.views()] == [(view_id, "U0ALICE")]
    # AND the same trigger id is refused a second time, an unknown one is invalid, an old one expired
    assert error_of(standin, trigger) == "exchanged_trigger_id"
    assert error_of(standin, "1.2.3") == "invalid_trigger_id"
    late = standin.trigger_id("U0ALICE")
    clock.advance(3.01)
    assert error_of(standin, late) == "expired_trigger_id"


@pytest.mark.parametrize(
    "change",
    [
        {"type": "home"},
        {"title": {"type": "plain_text", "text": "A title longer than 24 chars"}},
        {"blocks": []},
        {"private_metadata": "x" * 3001},
        {"submit": None},
    ],
)
def test_a_modal_slack_would_refuse_is_refused(standin: SlackStandIn, change: dict[str, Any]) -> None:
    view = {key: value for key, value in {**MODAL, **change}.items() if value is not None}
    assert error_of(standin, standin.trigger_id("U0ALICE"), view) == "invalid_arguments"
    assert standin.views() == []


def test_a_submission_carries_the_values_in_slacks_shapes(standin: SlackStandIn) -> None:
    view_id = SlackClient(web(standin)).open_view(standin.trigger_id("U0BOB"), MODAL)
    payload = standin.view_submission(view_id, {"reason": "fixtures", "until": "2027-01-01"})
    assert payload["type"] == "view_submission" and payload["user"]["id"] == "U0BOB"
    assert payload["team"]["id"] == standin.team_id
    view = payload["view"]
    assert (view["id"], view["callback_id"], view["private_metadata"]) == (view_id, "cb", '{"finding_id": "f-1"}')
    values = view["state"]["values"]
    assert values["reason"]["reason"] == {"type": "plain_text_input", "value": "fixtures"}
    assert values["duration"]["duration"]["selected_option"]["value"] == "7"  # the initial option, kept
    assert values["until"]["until"] == {"type": "datepicker", "selected_date": "2027-01-01"}
    # an option the modal does not offer is sent as given (a forged payload)
    forged = standin.view_submission(view_id, {"duration": "3650"})
    assert forged["view"]["state"]["values"]["duration"]["duration"]["selected_option"]["value"] == "3650"
