"""The Slack stand-in's reading methods (conversations.history / conversations.replies) through slack_sdk's
WebClient, and its 429 window."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient

from macie_chatops_sandbox.slack_standin import ManualClock, RateLimit, SlackStandIn

TOKEN = "xoxb-test-token"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def standin(clock: ManualClock) -> Iterator[SlackStandIn]:
    with SlackStandIn(
        channels=("C0PAYMENTS", "C0PRIVATE"),
        bot_channels=("C0PAYMENTS",),
        post_limit=RateLimit(per_second=1.0, burst=4),
        update_limit=RateLimit(per_second=50 / 60, burst=50),
        clock=clock,
    ) as running:
        yield running


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.base_url)


def _post(client: WebClient, clock: ManualClock, text: str, thread_ts: str | None = None) -> str:
    clock.advance(1.0)  # one per second: within Slack's posting limit
    ts = client.chat_postMessage(channel="C0PAYMENTS", text=text, thread_ts=thread_ts)["ts"]
    assert isinstance(ts, str)
    return ts


def test_history_lists_top_level_messages_newest_first_across_cursor_pages(
    client: WebClient, clock: ManualClock
) -> None:
    # GIVEN five messages in a channel, one of them with two thread replies and one updated
    tops = [_post(client, clock, f"message {n}") for n in range(5)]
    replies = [_post(client, clock, f"reply {n}", thread_ts=tops[1]) for n in range(2)]
    client.chat_update(channel="C0PAYMENTS", ts=tops[3], text="message 3, updated")
    # WHEN a tool reads the channel with slack_sdk's own pagination, two messages a page
    # (slack_sdk iterates by replacing the response's data in place: keep a copy of each page)
    pages = [dict(page.data) for page in client.conversations_history(channel="C0PAYMENTS", limit=2)]
    # THEN it gets Slack's shape: ok, messages newest first, has_more and next_cursor until the last page
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert all(page["ok"] for page in pages)
    assert [bool(page["response_metadata"]["next_cursor"]) for page in pages] == [True, True, False]
    messages = [message for page in pages for message in page["messages"]]
    assert [m["ts"] for m in messages] == list(reversed(tops))
    # AND the replies stay in their thread, counted on the parent; an update shows as the latest text, edited
    by_ts = {m["ts"]: m for m in messages}
    assert by_ts[tops[1]]["reply_count"] == 2
    assert by_ts[tops[1]]["latest_reply"] == replies[-1]
    assert by_ts[tops[1]]["thread_ts"] == tops[1]
    assert by_ts[tops[3]]["text"] == "message 3, updated"
    assert "edited" in by_ts[tops[3]]
    assert "edited" not in by_ts[tops[0]] and "reply_count" not in by_ts[tops[0]]


def test_replies_list_the_parent_then_the_thread_oldest_first(client: WebClient, clock: ManualClock) -> None:
    # GIVEN a message with three thread replies
    parent = _post(client, clock, "digest")
    replies = [_post(client, clock, f"page {n}", thread_ts=parent) for n in range(3)]
    # WHEN a tool reads the thread, two a page
    pages = [dict(page.data) for page in client.conversations_replies(channel="C0PAYMENTS", ts=parent, limit=2)]
    # THEN the parent comes first, then every reply in posting order, each naming its thread
    messages = [message for page in pages for message in page["messages"]]
    assert [m["ts"] for m in messages] == [parent, *replies]
    assert [m["text"] for m in messages[1:]] == ["page 0", "page 1", "page 2"]
    assert all(m["thread_ts"] == parent for m in messages)
    assert [page["has_more"] for page in pages] == [True, False]


def test_oldest_and_latest_bound_the_history(client: WebClient, clock: ManualClock) -> None:
    tops = [_post(client, clock, f"message {n}") for n in range(4)]
    # WHEN the history is read between the second and the fourth message, exclusive then inclusive
    exclusive = client.conversations_history(channel="C0PAYMENTS", oldest=tops[1], latest=tops[3])
    inclusive = client.conversations_history(channel="C0PAYMENTS", oldest=tops[1], latest=tops[3], inclusive=True)
    # THEN Slack's bounds apply
    assert [m["ts"] for m in exclusive["messages"]] == [tops[2]]
    assert [m["ts"] for m in inclusive["messages"]] == [tops[3], tops[2], tops[1]]


@pytest.mark.parametrize(
    ("method", "params", "error"),
    [
        ("conversations_history", {"channel": "C0NOWHERE"}, "channel_not_found"),
        ("conversations_history", {"channel": "C0PRIVATE"}, "not_in_channel"),
        ("conversations_history", {"channel": "C0PAYMENTS", "cursor": "bm90LWEtY3Vyc29y"}, "invalid_cursor"),
        ("conversations_history", {"channel": "C0PAYMENTS", "limit": 0}, "invalid_limit"),
        ("conversations_history", {"channel": "C0PAYMENTS", "oldest": "yesterday"}, "invalid_ts_oldest"),
        ("conversations_replies", {"channel": "C0PAYMENTS", "ts": "1.000001"}, "thread_not_found"),
        ("conversations_replies", {"channel": "C0PRIVATE", "ts": "1.000001"}, "not_in_channel"),
    ],
)
def test_reading_errors_are_slacks(client: WebClient, method: str, params: dict[str, object], error: str) -> None:
    # GIVEN a channel that does not exist, one the bot is not in, a forged cursor, a bad limit or bound, no thread
    # WHEN a tool reads it / THEN Slack's error code, as slack_sdk raises it
    with pytest.raises(SlackApiError) as caught:
        getattr(client, method)(**params)
    assert caught.value.response["error"] == error


def test_rate_limit_window_refuses_writes_with_retry_after_then_recovers(
    standin: SlackStandIn, client: WebClient, clock: ManualClock
) -> None:
    # GIVEN a posted message, then Slack rate-limiting every write for 10 seconds, Retry-After 3
    ts = _post(client, clock, "before")
    standin.rate_limit_during(10.0, retry_after=3)
    # WHEN the app posts and updates inside the window
    for call in (
        lambda: client.chat_postMessage(channel="C0PAYMENTS", text="during"),
        lambda: client.chat_update(channel="C0PAYMENTS", ts=ts, text="during"),
    ):
        with pytest.raises(SlackApiError) as caught:
            call()
        # THEN HTTP 429 + Retry-After, and nothing is written
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["Retry-After"] == "3"
    assert [m.text for m in standin.messages("C0PAYMENTS")] == ["before"]
    assert standin.rate_limited == 2
    # AND reading is not refused
    assert client.conversations_history(channel="C0PAYMENTS")["ok"] is True
    # WHEN the window has passed / THEN writes are taken again
    clock.advance(10.0)
    client.chat_update(channel="C0PAYMENTS", ts=ts, text="after")
    assert standin.message("C0PAYMENTS", ts).text == "after"


def test_the_posting_limit_is_counted_among_the_429s(standin: SlackStandIn, client: WebClient) -> None:
    # GIVEN Slack's burst allowance of 4 posts per channel / WHEN a fifth follows at once
    for n in range(4):
        client.chat_postMessage(channel="C0PAYMENTS", text=str(n))
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0PAYMENTS", text="5")
    # THEN it is refused and counted
    assert standin.rate_limited == 1
    assert len(standin.messages("C0PAYMENTS")) == 4


def test_every_call_is_recorded_with_its_time_and_thread(
    standin: SlackStandIn, client: WebClient, clock: ManualClock
) -> None:
    # GIVEN a post, then a reply in its thread 2 seconds later (on the stand-in's clock)
    parent = _post(client, clock, "digest")
    posted_at = clock()
    clock.advance(2.0)
    client.chat_postMessage(channel="C0PAYMENTS", text="page 1", thread_ts=parent)
    # THEN the history says when each was answered, and which thread the reply went to
    post, reply = standin.history
    assert (post.at, post.thread_ts) == (posted_at, None)
    assert (reply.at, reply.thread_ts) == (posted_at + 2.0, parent)
