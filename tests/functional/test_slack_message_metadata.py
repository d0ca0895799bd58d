"""Slack message metadata (docs/architecture.md §22, a page posted once): the stand-in keeps what chat.postMessage
was given and returns it from conversations.* with include_all_metadata, as Slack does; the SlackClient posts a
reply with metadata and reads a thread's metadata back, every page of it."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from slack_sdk.web import WebClient

from macie_chatops import slack_client
from macie_chatops.errors import SlackError
from macie_chatops.slack_client import SlackClient
from macie_chatops.slack_messages import SlackMessage
from macie_chatops_sandbox.slack_standin import SlackStandIn

CHANNEL = "C0PAYMENTS"
PAGE = {"event_type": "macie_chatops_page", "event_payload": {"group_id": "a" * 32, "page": 2}}


def page_metadata(number: int) -> dict[str, Any]:
    return {"event_type": "macie_chatops_page", "event_payload": {"group_id": "a" * 32, "page": number}}


def web(slack: SlackStandIn) -> WebClient:
    return WebClient(token=slack.bot_token, base_url=slack.base_url)


def post_json(slack: SlackStandIn, method: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        slack.base_url + method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {slack.bot_token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read().decode())
        return answer


def test_metadata_is_kept_and_returned_only_when_asked_for(slack: SlackStandIn) -> None:
    client = web(slack)
    parent = client.chat_postMessage(channel=CHANNEL, text="digest")["ts"]
    # GIVEN a reply posted with metadata (slack_sdk sends it in the JSON body)
    reply = client.chat_postMessage(channel=CHANNEL, thread_ts=parent, text="page 2", metadata=PAGE)["ts"]
    # WHEN the thread is read without include_all_metadata THEN no message carries metadata
    plain = client.conversations_replies(channel=CHANNEL, ts=parent)["messages"]
    assert [m["ts"] for m in plain] == [parent, reply] and all("metadata" not in m for m in plain)
    # WHEN it is read with include_all_metadata THEN the reply carries exactly what was posted
    read = client.conversations_replies(channel=CHANNEL, ts=parent, include_all_metadata=True)["messages"]
    assert read[1]["metadata"] == PAGE and "metadata" not in read[0]
    # AND the recorded reply shows it; a message posted with none has none
    assert slack.replies(CHANNEL, parent)[0].metadata == PAGE
    assert slack.message(CHANNEL, parent).metadata is None


def test_top_level_metadata_comes_back_in_the_history(slack: SlackStandIn) -> None:
    client = web(slack)
    ts = client.chat_postMessage(channel=CHANNEL, text="with metadata", metadata=PAGE)["ts"]
    (message,) = client.conversations_history(channel=CHANNEL, include_all_metadata=True)["messages"]
    assert (message["ts"], message["metadata"]) == (ts, PAGE)


def test_a_form_encoded_post_carries_its_metadata_as_json(slack: SlackStandIn) -> None:
    # GIVEN a form-encoded chat.postMessage (metadata as a JSON string, as Slack takes it)
    ts = web(slack).api_call(
        "chat.postMessage", data={"channel": CHANNEL, "text": "form", "metadata": json.dumps(PAGE)}
    )["ts"]
    assert slack.message(CHANNEL, ts).metadata == PAGE


@pytest.mark.parametrize(
    "metadata",
    [
        {"event_payload": {"page": 1}},  # no event_type
        {"event_type": "", "event_payload": {}},
        {"event_type": "macie_chatops_page", "event_payload": "page 1"},  # the payload must be an object
        ["macie_chatops_page"],
    ],
)
def test_malformed_metadata_is_refused_and_nothing_is_posted(slack: SlackStandIn, metadata: Any) -> None:
    answer = post_json(slack, "chat.postMessage", {"channel": CHANNEL, "text": "x", "metadata": metadata})
    assert answer == {"ok": False, "error": "invalid_metadata_format"}
    assert slack.messages(CHANNEL) == []


def test_the_client_posts_a_reply_with_metadata_and_finds_it_in_the_thread(slack: SlackStandIn) -> None:
    client = SlackClient(web(slack))
    parent = client.post(CHANNEL, SlackMessage(text="digest", blocks=()))
    # GIVEN a reply without metadata (a person's, say) and one with
    client.reply(CHANNEL, parent, SlackMessage(text="a comment", blocks=()))
    page = client.reply(CHANNEL, parent, SlackMessage(text="page 2", blocks=()), metadata=PAGE)
    # WHEN the thread's metadata is read THEN only the reply with metadata is listed, the parent never
    assert client.thread_metadata(CHANNEL, parent) == [(page, PAGE)]
    assert slack.request_count("conversations.replies") == 1


def test_the_client_reads_every_page_of_a_long_thread(slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    client = SlackClient(web(slack))
    parent = client.post(CHANNEL, SlackMessage(text="digest", blocks=()))
    posted = [
        client.reply(CHANNEL, parent, SlackMessage(text=f"page {n}", blocks=()), metadata=page_metadata(n))
        for n in range(5)
    ]
    # GIVEN Slack answers two messages a call (the parent counts in the first)
    monkeypatch.setattr(slack_client, "THREAD_PAGE_LIMIT", 2)
    found = client.thread_metadata(CHANNEL, parent)
    # THEN every reply is found, following the cursor, in posting order
    assert found == [(ts, page_metadata(n)) for n, ts in enumerate(posted)]
    assert slack.request_count("conversations.replies") == 3
    # AND a thread longer than the calls allowed is an error, never "not posted"
    monkeypatch.setattr(slack_client, "MAX_THREAD_PAGES", 2)
    with pytest.raises(SlackError, match="not read to its end"):
        client.thread_metadata(CHANNEL, parent)


def test_reading_the_thread_of_a_deleted_message_is_message_not_found(slack: SlackStandIn) -> None:
    from macie_chatops.errors import SlackMessageNotFoundError

    with pytest.raises(SlackMessageNotFoundError):
        SlackClient(web(slack)).thread_metadata(CHANNEL, "1.000001")
