"""The Slack Web API stand-in, spoken to over real HTTP (raw requests and slack_sdk's WebClient)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from macie_chatops_sandbox.slack_standin import ManualClock, RateLimit, SlackStandIn, block_problems
from tests.conftest import ROOT

TOKEN = "xoxb-test-token"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}


def call(
    standin: SlackStandIn,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    token: str | None = TOKEN,
    form: bool = False,
) -> tuple[int, dict[str, str], Any]:
    """One raw HTTP call: JSON body by default, form-encoded with ``form``; returns status, headers, body."""
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if form:
        data = urlencode(
            {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in (params or {}).items()}
        ).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        data = json.dumps(params or {}).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    request = urllib.request.Request(standin.base_url + method, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
            return response.status, dict(response.headers.items()), json.loads(body)
    except urllib.error.HTTPError as error:
        body = error.read().decode()
        try:
            parsed: Any = json.loads(body)
        except json.JSONDecodeError:
            parsed = body
        return error.code, dict(error.headers.items()), parsed


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limited(clock: ManualClock) -> Iterator[SlackStandIn]:
    """A stand-in with Slack's real pace (1/s per channel, burst 2) on a manual clock."""
    with SlackStandIn(
        channels=("C0PAYMENTS", "C0ANALYTIC"),
        post_limit=RateLimit(per_second=1.0, burst=2),
        update_limit=RateLimit(per_second=1.0, burst=1),
        clock=clock,
    ) as standin:
        yield standin


# --- the API ----------------------------------------------------------------------------------------------


def test_a_post_with_thread_ts_is_a_reply_kept_in_its_thread(slack: SlackStandIn) -> None:
    # GIVEN a message in a channel
    _, _, posted = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "parent"})
    parent = posted["ts"]
    # WHEN two replies are posted in its thread
    answers = [
        call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "thread_ts": parent, "text": text})[2]
        for text in ("first reply", "second reply")
    ]
    # THEN they answer like Slack (their own ts, the parent's as thread_ts) and are kept apart from the channel
    assert all(a["ok"] and a["message"]["thread_ts"] == parent and a["ts"] != parent for a in answers)
    replies = slack.replies("C0PAYMENTS", parent)
    assert [(r.ts, r.thread_ts, r.text) for r in replies] == [
        (answers[0]["ts"], parent, "first reply"),
        (answers[1]["ts"], parent, "second reply"),
    ]
    assert [m.ts for m in slack.messages("C0PAYMENTS")] == [parent]
    assert slack.request_count("chat.postMessage") == 3


@pytest.mark.parametrize("thread_ts", ["1.000001", 12.5])
def test_a_reply_to_no_message_of_the_channel_is_thread_not_found(slack: SlackStandIn, thread_ts: object) -> None:
    # GIVEN a message in another channel only
    _, _, posted = call(slack, "chat.postMessage", {"channel": "C0ANALYTIC", "text": "elsewhere"})
    for parent in (thread_ts, posted["ts"]):
        status, _, body = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "thread_ts": parent, "text": "x"})
        assert (status, body) == (200, {"ok": False, "error": "thread_not_found"})
    assert slack.messages("C0PAYMENTS") == []


def test_auth_test_answers_for_the_workspace(slack: SlackStandIn) -> None:
    status, headers, body = call(slack, "auth.test")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body["ok"] is True
    assert body["team_id"] == "T0EXAMPLE"
    assert body["user_id"] == slack.bot_user_id
    assert body["bot_id"] == slack.bot_id


@pytest.mark.parametrize(("token", "error"), [("xoxb-wrong", "invalid_auth"), (None, "not_authed"), ("", "not_authed")])
def test_wrong_or_missing_token_is_refused_like_slack(slack: SlackStandIn, token: str | None, error: str) -> None:
    # GIVEN a wrong or missing bearer token / WHEN any method is called / THEN HTTP 200 with Slack's error
    status, _, body = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"}, token=token)
    assert (status, body) == (200, {"ok": False, "error": error})
    assert slack.messages("C0PAYMENTS") == []


def test_token_in_a_form_body_is_accepted(slack: SlackStandIn) -> None:
    status, _, body = call(slack, "auth.test", {"token": TOKEN}, token=None, form=True)
    assert status == 200
    assert body["ok"] is True


def test_post_and_update_are_recorded_in_order(slack: SlackStandIn) -> None:
    # GIVEN a message posted with JSON (as WebClient sends chat.*)
    _, _, posted = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "first", "blocks": [SECTION]})
    assert posted["ok"] is True
    ts = posted["ts"]
    assert posted["channel"] == "C0PAYMENTS"
    assert posted["message"]["text"] == "first"
    # WHEN it is updated twice, once form-encoded
    call(slack, "chat.update", {"channel": "C0PAYMENTS", "ts": ts, "text": "second", "blocks": [SECTION]})
    call(slack, "chat.update", {"channel": "C0PAYMENTS", "ts": ts, "text": "third"}, form=True)
    # THEN the message keeps every revision, the latest first in view; text without blocks drops the blocks
    message = slack.message("C0PAYMENTS", ts)
    assert [r.text for r in message.revisions] == ["first", "second", "third"]
    assert [r.method for r in message.revisions] == ["chat.postMessage", "chat.update", "chat.update"]
    assert message.text == "third"
    assert message.blocks == []
    assert [u.text for u in message.updates] == ["second", "third"]
    assert message.revisions[0].blocks == (SECTION,)


def test_form_encoded_blocks_are_parsed(slack: SlackStandIn) -> None:
    _, _, body = call(slack, "chat.postMessage", {"channel": "C0ANALYTIC", "text": "t", "blocks": [SECTION]}, form=True)
    assert body["ok"] is True
    assert slack.message("C0ANALYTIC", body["ts"]).blocks == [SECTION]


def test_messages_are_per_channel_and_ts_are_unique(slack: SlackStandIn) -> None:
    stamps = [call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": f"m{i}"})[2]["ts"] for i in range(3)]
    call(slack, "chat.postMessage", {"channel": "C0ANALYTIC", "text": "other"})
    assert len(set(stamps)) == 3
    assert [m.text for m in slack.messages("C0PAYMENTS")] == ["m0", "m1", "m2"]
    assert [m.ts for m in slack.messages("C0PAYMENTS")] == stamps
    assert [m.text for m in slack.messages("C0ANALYTIC")] == ["other"]
    with pytest.raises(KeyError):
        slack.message("C0ANALYTIC", stamps[0])


@pytest.mark.parametrize(
    ("setup", "params", "error"),
    [
        (None, {"channel": "C0NOWHERE", "text": "x"}, "channel_not_found"),
        (None, {"text": "x"}, "channel_not_found"),
        ("not_member", {"channel": "C0SECRET", "text": "x"}, "not_in_channel"),
        ("archived", {"channel": "C0PAYMENTS", "text": "x"}, "is_archived"),
        (None, {"channel": "C0PAYMENTS"}, "no_text"),
        (None, {"channel": "C0PAYMENTS", "text": "x" * 40_001}, "msg_too_long"),
        (None, {"channel": "C0PAYMENTS", "text": "x", "blocks": [SECTION] * 51}, "invalid_blocks"),
    ],
)
def test_post_errors(slack: SlackStandIn, setup: str | None, params: dict[str, Any], error: str) -> None:
    if setup == "not_member":
        slack.add_channel("C0SECRET", bot_member=False)
    if setup == "archived":
        slack.archive("C0PAYMENTS")
    status, _, body = call(slack, "chat.postMessage", params)
    assert status == 200
    assert body["ok"] is False
    assert body["error"] == error
    assert slack.messages(params.get("channel", "C0PAYMENTS")) == []


def test_bot_membership_can_change(slack: SlackStandIn) -> None:
    slack.set_bot_membership("C0PAYMENTS", False)
    assert call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})[2]["error"] == "not_in_channel"
    slack.set_bot_membership("C0PAYMENTS", True)
    assert call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})[2]["ok"] is True


def test_update_of_an_unknown_message(slack: SlackStandIn) -> None:
    _, _, posted = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})
    for params in (
        {"channel": "C0PAYMENTS", "ts": "1.000001", "text": "y"},
        {"channel": "C0ANALYTIC", "ts": posted["ts"], "text": "y"},
        {"channel": "C0PAYMENTS", "text": "y"},
    ):
        assert call(slack, "chat.update", params)[2] == {"ok": False, "error": "message_not_found"}
    assert slack.message("C0PAYMENTS", posted["ts"]).updates == ()


def test_usergroups_and_users(slack: SlackStandIn) -> None:
    assert call(slack, "usergroups.users.list", {"usergroup": "S0SECOPS"}, form=True)[2] == {
        "ok": True,
        "users": ["U0BOB"],
    }
    assert call(slack, "usergroups.users.list", {"usergroup": "S0NOPE"})[2] == {"ok": False, "error": "no_such_subteam"}
    slack.set_usergroup("S0SECOPS", ["U0BOB", "U0DAVE"])
    assert call(slack, "usergroups.users.list", {"usergroup": "S0SECOPS"})[2]["users"] == ["U0BOB", "U0DAVE"]
    slack.remove_usergroup("S0SECOPS")
    assert call(slack, "usergroups.users.list", {"usergroup": "S0SECOPS"})[2]["error"] == "no_such_subteam"
    user = call(slack, "users.info", {"user": "U0ALICE"})[2]
    assert user["ok"] is True
    assert user["user"]["id"] == "U0ALICE"
    assert user["user"]["team_id"] == "T0EXAMPLE"
    assert call(slack, "users.info", {"user": "U0MALLORY"})[2] == {"ok": False, "error": "user_not_found"}


def test_unknown_method(slack: SlackStandIn) -> None:
    assert call(slack, "chat.delete", {"channel": "C0PAYMENTS"})[2]["error"] == "unknown_method"


def test_slack_sdk_web_client_works_against_it(slack: SlackStandIn) -> None:
    # GIVEN slack_sdk's own client / WHEN it calls every supported method / THEN it gets Slack's shapes
    client = WebClient(token=TOKEN, base_url=slack.base_url)
    posted = client.chat_postMessage(channel="C0PAYMENTS", text="hi", blocks=[SECTION])
    client.chat_update(channel="C0PAYMENTS", ts=posted["ts"], text="bye", blocks=[SECTION])
    assert client.usergroups_users_list(usergroup="S0SECOPS")["users"] == ["U0BOB"]
    assert client.users_info(user="U0BOB")["user"]["id"] == "U0BOB"
    assert client.auth_test()["team_id"] == "T0EXAMPLE"
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C0NOWHERE", text="hi")
    assert caught.value.response["error"] == "channel_not_found"
    assert slack.message("C0PAYMENTS", posted["ts"]).text == "bye"
    assert slack.requests == {
        "chat.postMessage": 2,
        "chat.update": 1,
        "usergroups.users.list": 1,
        "users.info": 1,
        "auth.test": 1,
    }
    assert slack.request_count("chat.postMessage") == 2
    assert [(c.method, c.status, c.error) for c in slack.history] == [
        ("chat.postMessage", 200, None),
        ("chat.update", 200, None),
        ("usergroups.users.list", 200, None),
        ("users.info", 200, None),
        ("auth.test", 200, None),
        ("chat.postMessage", 200, "channel_not_found"),
    ]
    assert slack.history[0].ts == posted["ts"]
    assert slack.history[0].channel == "C0PAYMENTS"


# --- rate limits ------------------------------------------------------------------------------------------


def test_posting_is_limited_per_channel_with_retry_after(limited: SlackStandIn, clock: ManualClock) -> None:
    # GIVEN a burst of 2 at 1/s / WHEN a third message follows at once
    for text in ("a", "b"):
        assert call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": text})[2]["ok"] is True
    status, headers, body = call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "c"})
    # THEN HTTP 429 with Retry-After in whole seconds, and nothing posted
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert body == {"ok": False, "error": "ratelimited"}
    assert [m.text for m in limited.messages("C0PAYMENTS")] == ["a", "b"]
    # AND another channel has its own allowance
    assert call(limited, "chat.postMessage", {"channel": "C0ANALYTIC", "text": "x"})[2]["ok"] is True
    # WHEN the clock moves on by Retry-After / THEN posting works again
    clock.advance(1.0)
    assert call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "c"})[2]["ok"] is True
    assert call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "d"})[0] == 429


def test_retry_after_covers_the_whole_wait(clock: ManualClock) -> None:
    with SlackStandIn(channels=("C1",), post_limit=RateLimit(per_second=0.25, burst=1), clock=clock) as standin:
        call(standin, "chat.postMessage", {"channel": "C1", "text": "a"})
        status, headers, _ = call(standin, "chat.postMessage", {"channel": "C1", "text": "b"})
        assert (status, headers["Retry-After"]) == (429, "4")


def test_updates_have_their_own_limit(limited: SlackStandIn, clock: ManualClock) -> None:
    ts = call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "a"})[2]["ts"]
    assert call(limited, "chat.update", {"channel": "C0PAYMENTS", "ts": ts, "text": "b"})[0] == 200
    assert call(limited, "chat.update", {"channel": "C0PAYMENTS", "ts": ts, "text": "c"})[0] == 429
    clock.advance(1.0)
    assert call(limited, "chat.update", {"channel": "C0PAYMENTS", "ts": ts, "text": "c"})[0] == 200
    assert [r.text for r in limited.message("C0PAYMENTS", ts).revisions] == ["a", "b", "c"]


def test_limits_can_be_switched_off() -> None:
    with SlackStandIn(channels=("C1",), post_limit=None, update_limit=None) as standin:
        assert all(call(standin, "chat.postMessage", {"channel": "C1", "text": str(i)})[0] == 200 for i in range(20))


def test_rate_limit_and_clock_validation() -> None:
    with pytest.raises(ValueError, match="per_second"):
        RateLimit(per_second=0, burst=1)
    with pytest.raises(ValueError, match="backwards"):
        ManualClock().advance(-1)


# --- faults -----------------------------------------------------------------------------------------------


def test_fail_next_answers_500_then_recovers(slack: SlackStandIn) -> None:
    slack.fail_next("chat.postMessage", 2, status=500)
    for _ in range(2):
        status, _, body = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})
        assert status == 500
        assert "Server Error" in body  # an HTML page, like Slack's edge
    assert call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})[0] == 200
    assert len(slack.messages("C0PAYMENTS")) == 1
    assert [c.status for c in slack.history] == [500, 500, 200]


def test_fail_next_with_429_and_a_slack_error(slack: SlackStandIn) -> None:
    slack.fail_next("chat.update", status=429, retry_after=7)
    slack.fail_next("usergroups.users.list", status=200, error="plan_upgrade_required")
    status, headers, _ = call(slack, "chat.update", {"channel": "C0PAYMENTS", "ts": "1.1", "text": "x"})
    assert (status, headers["Retry-After"]) == (429, "7")
    assert call(slack, "usergroups.users.list", {"usergroup": "S0SECOPS"})[2] == {
        "ok": False,
        "error": "plan_upgrade_required",
    }
    assert call(slack, "usergroups.users.list", {"usergroup": "S0SECOPS"})[2]["ok"] is True


def test_faults_apply_to_one_method_or_all(slack: SlackStandIn) -> None:
    slack.fail_next("auth.test", status=503)
    assert call(slack, "users.info", {"user": "U0BOB"})[0] == 200
    assert call(slack, "auth.test")[0] == 503
    slack.fail_next("*", 2, status=502)
    assert call(slack, "users.info", {"user": "U0BOB"})[0] == 502
    assert call(slack, "auth.test")[0] == 502
    assert call(slack, "auth.test")[0] == 200


def test_fail_during_a_window_on_the_clock(limited: SlackStandIn, clock: ManualClock) -> None:
    limited.fail_during("chat.postMessage", 5.0, status=500)
    assert call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})[0] == 500
    clock.advance(4.9)
    assert call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})[0] == 500
    clock.advance(0.2)
    assert call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "x"})[0] == 200


def test_clear_faults(slack: SlackStandIn) -> None:
    slack.fail_next("auth.test", 10, status=500)
    slack.clear_faults()
    assert call(slack, "auth.test")[0] == 200


def test_bad_fault_requests_are_refused(slack: SlackStandIn) -> None:
    with pytest.raises(ValueError, match="unknown Slack method"):
        slack.fail_next("chat.delete")
    with pytest.raises(ValueError, match="non-200 status or a Slack error"):
        slack.fail_next("auth.test", status=200)


# --- response URLs ----------------------------------------------------------------------------------------


def test_response_url_replaces_the_original_message(slack: SlackStandIn) -> None:
    ts = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "review", "blocks": [SECTION]})[2]["ts"]
    url = slack.response_url("C0PAYMENTS", ts)
    assert url.startswith(slack.base_url.removesuffix("api/"))
    response = WebhookClient(url).send(text="approved", blocks=[SECTION], replace_original=True)
    assert (response.status_code, response.body) == (200, "ok")
    message = slack.message("C0PAYMENTS", ts)
    assert [(r.method, r.text) for r in message.revisions] == [
        ("chat.postMessage", "review"),
        ("response_url", "approved"),
    ]


def test_response_url_ephemeral_new_and_delete(slack: SlackStandIn) -> None:
    ts = call(slack, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "review"})[2]["ts"]
    webhook = WebhookClient(slack.response_url("C0PAYMENTS", ts))
    # GIVEN an ephemeral reply / THEN only the clicker's list holds it, the message is unchanged
    assert webhook.send(text="not an approver", response_type="ephemeral", replace_original=False).body == "ok"
    (reply,) = slack.ephemeral("C0PAYMENTS")
    assert (reply.ts, reply.text) == (ts, "not an approver")
    assert slack.message("C0PAYMENTS", ts).updates == ()
    # GIVEN replace_original false / THEN a new message appears in the channel
    assert webhook.send(text="new message", replace_original=False).body == "ok"
    assert [m.text for m in slack.messages("C0PAYMENTS")] == ["review", "new message"]
    # GIVEN delete_original / THEN the message is gone
    assert webhook.send_dict({"delete_original": True}).body == "ok"
    assert [m.text for m in slack.messages("C0PAYMENTS")] == ["new message"]
    assert slack.request_count("response_url") == 3


def test_response_url_allows_five_uses_in_thirty_minutes(limited: SlackStandIn, clock: ManualClock) -> None:
    ts = call(limited, "chat.postMessage", {"channel": "C0PAYMENTS", "text": "review"})[2]["ts"]
    webhook = WebhookClient(limited.response_url("C0PAYMENTS", ts))
    assert [webhook.send(text=str(i), response_type="ephemeral").status_code for i in range(5)] == [200] * 5
    response = webhook.send(text="sixth", response_type="ephemeral")
    assert (response.status_code, response.body) == (404, "used_url")
    late = WebhookClient(limited.response_url("C0PAYMENTS", ts))
    clock.advance(30 * 60 + 1)
    assert late.send(text="late").body == "expired_url"
    assert WebhookClient(limited.base_url.removesuffix("api/") + "actions/T0/unknown").send(text="x").status_code == 404
    assert (
        WebhookClient(limited.response_url("C0PAYMENTS", ts)).send_dict({"response_type": "ephemeral"}).body
        == "no_text"
    )


# --- lifecycle and packaging ------------------------------------------------------------------------------


def test_start_stop_leave_no_threads_behind() -> None:
    before = {t.ident for t in threading.enumerate()}
    standin = SlackStandIn(channels=("C1",))
    with pytest.raises(RuntimeError, match="start the Slack stand-in first"):
        _ = standin.base_url
    with standin:
        assert standin.running
        assert standin.base_url.endswith("/api/")
        with pytest.raises(RuntimeError, match="already running"):
            standin.start()
        call(standin, "chat.postMessage", {"channel": "C1", "text": "x"})
    assert not standin.running
    standin.stop()  # a second stop is harmless
    assert {t.ident for t in threading.enumerate()} <= before
    # AND the recordings outlive the server, for assertions after the test's with-block
    assert len(standin.messages("C1")) == 1


def test_bot_channels_must_be_known_channels() -> None:
    with pytest.raises(ValueError, match="bot_channels not in channels"):
        SlackStandIn(channels=("C1",), bot_channels=("C2",))


def test_the_lambda_package_never_imports_the_stand_in() -> None:
    # The stand-in lives in the sandbox package, which is not in the Lambda asset; only the sandbox and the
    # tests reach it (the CLI's sandbox commands import the sandbox lazily, never the stand-in directly).
    offenders = [
        str(path.relative_to(ROOT))
        for path in Path(ROOT / "runtime" / "macie_chatops").rglob("*.py")
        if "slack_standin" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_block_problems_reports_slack_limits() -> None:
    assert block_problems([SECTION]) == []
    assert block_problems("nope") == ["blocks must be an array [json-pointer:/blocks]"]
    problems = block_problems(
        [
            {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}] * 11},
            {"type": "header", "text": {"type": "mrkdwn", "text": "x"}},
            {"type": "context", "elements": []},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}},
                    {
                        "type": "button",
                        "action_id": "a",
                        "text": {"type": "plain_text", "text": "ok"},
                        "value": "v" * 2001,
                    },
                ],
            },
            {"type": "section", "block_id": "b"},
            {"type": "divider", "block_id": "b"},
            {"no": "type"},
        ]
    )
    for expected in (
        "/blocks/0]/text",
        "/blocks/1]/fields",
        "/blocks/1]/fields/0",
        "/blocks/2]/text",
        "/blocks/3]/elements",
        "/blocks/4]/elements/0/text",
        "/blocks/4]/elements/1",
        "/blocks/4]/elements/1/value",
        "a section needs text or fields [json-pointer:/blocks/5]",
        "block_id must be unique and at most 255 characters [json-pointer:/blocks/6]",
        "each block needs a type [json-pointer:/blocks/7]",
    ):
        assert any(expected in problem for problem in problems), expected
