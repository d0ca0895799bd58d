"""SlackClient against the real Slack stand-in over HTTP: delivery, rate limits within the deadline, errors."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from macie_chatops import slack_messages as sm
from macie_chatops.config import load_config
from macie_chatops.decision import decide
from macie_chatops.errors import (
    SlackConfigurationError,
    SlackError,
    SlackMessageNotFoundError,
    SlackRetryableError,
)
from macie_chatops.finding import Finding, parse_event
from macie_chatops.slack_client import DeadlineRateLimitRetryHandler, SlackClient, SlackIdentity, build_web_client
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.slack_standin import ManualClock, RateLimit, SlackStandIn
from tests.conftest import ROOT, load_event

TOKEN = "xoxb-test-token"


@pytest.fixture(autouse=True)
def _quiet_sdk_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIP_SLACK_SDK_WARNING", "1")


@pytest.fixture(scope="module")
def summary() -> FindingSummary:
    finding = parse_event(load_event("key-slack-markup"))
    assert isinstance(finding, Finding)
    return FindingSummary.of(finding, decide(finding, load_config(ROOT / "accounts.yaml")))


@pytest.fixture
def review(summary: FindingSummary) -> sm.SlackMessage:
    return sm.build_review_message(summary, reason="Personal data needs review")


class FakeLambdaTime:
    """The Lambda context's remaining time, and a sleep that spends it (and moves the stand-in's clock)."""

    def __init__(self, remaining_s: float, clock: ManualClock | None = None) -> None:
        self.remaining_s = remaining_s
        self.clock = clock
        self.sleeps: list[float] = []

    def remaining(self) -> float:
        return self.remaining_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.remaining_s -= seconds
        if self.clock is not None:
            self.clock.advance(seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def paced(clock: ManualClock) -> Iterator[SlackStandIn]:
    """Slack's real posting pace for one channel (1/s, burst 1) on a manual clock."""
    with SlackStandIn(channels=("C0PAYMENTS",), post_limit=RateLimit(per_second=1.0, burst=1), clock=clock) as standin:
        yield standin


def client_for(standin: SlackStandIn, token: str = TOKEN, **kwargs: object) -> SlackClient:
    return SlackClient(build_web_client(token, base_url=standin.base_url), **kwargs)  # type: ignore[arg-type]


# --- the happy paths --------------------------------------------------------------------------------------


def test_post_delivers_text_and_blocks_and_returns_the_ts(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    # GIVEN a review message / WHEN posted / THEN Slack holds exactly its fallback text and validated blocks
    ts = client_for(slack).post("C0PAYMENTS", review)
    recorded = slack.message("C0PAYMENTS", ts)
    assert recorded.text == review.text
    assert recorded.blocks == review.block_dicts()
    assert len(slack.messages("C0PAYMENTS")) == 1


def test_update_replaces_the_message(slack: SlackStandIn, review: sm.SlackMessage, summary: FindingSummary) -> None:
    client = client_for(slack)
    ts = client.post("C0PAYMENTS", review)
    dismissed = sm.build_dismissed_message(summary, by="U0BOB", at="2026-11-20T10:30:00Z")
    # WHEN the message is updated / THEN the same ts now shows the new state
    client.update("C0PAYMENTS", ts, dismissed)
    recorded = slack.message("C0PAYMENTS", ts)
    assert recorded.text == dismissed.text
    assert recorded.blocks == dismissed.block_dicts()
    assert len(recorded.updates) == 1


def test_update_of_a_deleted_message(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    with pytest.raises(SlackMessageNotFoundError, match=r"message 1\.000001 is not in channel C0PAYMENTS"):
        client_for(slack).update("C0PAYMENTS", "1.000001", review)


def test_reply_posts_in_the_thread_of_a_message_and_returns_its_own_ts(
    slack: SlackStandIn, review: sm.SlackMessage, summary: FindingSummary
) -> None:
    # GIVEN a message in the channel
    client = client_for(slack)
    ts = client.post("C0PAYMENTS", review)
    reply = sm.build_duplicate_reply(summary, first_finding_id="6a1b2c3d4e5f60718293a4b5c6d70005")
    # WHEN a reply is posted in its thread
    reply_ts = client.reply("C0PAYMENTS", ts, reply)
    # THEN it is in that thread with its own ts, and the channel still shows one message, unchanged
    (recorded,) = slack.replies("C0PAYMENTS", ts)
    assert (recorded.ts, recorded.thread_ts, recorded.text) == (reply_ts, ts, reply.text)
    assert recorded.blocks == reply.block_dicts()
    assert reply_ts != ts
    assert [m.ts for m in slack.messages("C0PAYMENTS")] == [ts]
    assert slack.message("C0PAYMENTS", ts).updates == ()


def test_a_reply_to_a_deleted_message_is_message_not_found(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    with pytest.raises(SlackMessageNotFoundError, match=r"message 1\.000001 is not in channel C0PAYMENTS") as caught:
        client_for(slack).reply("C0PAYMENTS", "1.000001", review)
    assert caught.value.error_code == "thread_not_found"


def test_reply_failures_are_sorted_like_posts(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    client = client_for(slack)
    ts = client.post("C0PAYMENTS", review)
    slack.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackRetryableError):
        client.reply("C0PAYMENTS", ts, review)
    slack.archive("C0PAYMENTS")
    with pytest.raises(SlackConfigurationError, match="archived"):
        client.reply("C0PAYMENTS", ts, review)
    assert slack.replies("C0PAYMENTS", ts) == []


def test_usergroup_members_and_auth_test(slack: SlackStandIn) -> None:
    client = client_for(slack)
    assert client.usergroup_members("S0SECOPS") == frozenset({"U0BOB"})
    slack.set_usergroup("S0SECOPS", ["U0BOB", "U0DAVE"])
    assert client.usergroup_members("S0SECOPS") == frozenset({"U0BOB", "U0DAVE"})
    assert client.auth_test() == SlackIdentity(
        team_id="T0EXAMPLE",
        user_id=slack.bot_user_id,
        bot_id=slack.bot_id,
        team="example",
        url="https://example.slack.com/",
    )


def test_unknown_usergroup_is_a_configuration_error(slack: SlackStandIn) -> None:
    with pytest.raises(SlackConfigurationError, match=r"user group S0GONE does not exist.*accounts\.yaml"):
        client_for(slack).usergroup_members("S0GONE")


def test_base_url_without_trailing_slash(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    client = SlackClient(build_web_client(TOKEN, base_url=slack.base_url.rstrip("/")))
    assert client.post("C0ANALYTIC", review)


def test_empty_token_is_refused_before_any_call() -> None:
    with pytest.raises(SlackConfigurationError, match="bot token is empty"):
        build_web_client("  ")


# --- rate limits and the deadline -------------------------------------------------------------------------


def test_429_within_the_deadline_is_waited_out_and_delivered_once(
    paced: SlackStandIn, clock: ManualClock, review: sm.SlackMessage
) -> None:
    # GIVEN a channel that just got a message (1/s, burst 1) and plenty of Lambda time left
    lambda_time = FakeLambdaTime(remaining_s=60.0, clock=clock)
    client = client_for(paced, remaining_time_s=lambda_time.remaining, sleep=lambda_time.sleep)
    client.post("C0PAYMENTS", review)
    # WHEN a second message is posted at once
    ts = client.post("C0PAYMENTS", review)
    # THEN the client waited Retry-After once and the message was delivered exactly once
    assert lambda_time.sleeps == [1.0]
    assert [m.ts for m in paced.messages("C0PAYMENTS")][-1] == ts
    assert len(paced.messages("C0PAYMENTS")) == 2
    assert [c.status for c in paced.history] == [200, 429, 200]


def test_429_beyond_the_deadline_goes_back_to_the_queue(
    paced: SlackStandIn, clock: ManualClock, review: sm.SlackMessage
) -> None:
    # GIVEN a Retry-After of 20 s and only 10 s of Lambda time left
    lambda_time = FakeLambdaTime(remaining_s=10.0, clock=clock)
    client = client_for(paced, remaining_time_s=lambda_time.remaining, sleep=lambda_time.sleep)
    paced.fail_next("chat.postMessage", status=429, retry_after=20)
    # WHEN posting / THEN a retryable error says how long to wait, nothing was slept and nothing posted
    with pytest.raises(SlackRetryableError, match="rate limited") as caught:
        client.post("C0PAYMENTS", review)
    assert caught.value.retry_after_s == 20.0
    assert caught.value.error_code == "ratelimited"
    assert lambda_time.sleeps == []
    assert paced.messages("C0PAYMENTS") == []


def test_the_safety_margin_counts(paced: SlackStandIn, clock: ManualClock, review: sm.SlackMessage) -> None:
    # GIVEN Retry-After 1 s with 5.5 s left and a 5 s margin: 5.5 - 1 < 5, so no wait
    lambda_time = FakeLambdaTime(remaining_s=5.5, clock=clock)
    client = client_for(paced, remaining_time_s=lambda_time.remaining, sleep=lambda_time.sleep, safety_margin_s=5.0)
    paced.fail_next("chat.postMessage", status=429, retry_after=1)
    with pytest.raises(SlackRetryableError):
        client.post("C0PAYMENTS", review)
    assert lambda_time.sleeps == []


def test_retries_are_capped(paced: SlackStandIn, clock: ManualClock, review: sm.SlackMessage) -> None:
    # GIVEN Slack keeps answering 429 and time is plentiful
    lambda_time = FakeLambdaTime(remaining_s=600.0, clock=clock)
    client = client_for(
        paced, remaining_time_s=lambda_time.remaining, sleep=lambda_time.sleep, max_rate_limit_retries=2
    )
    paced.fail_next("chat.postMessage", 5, status=429, retry_after=2)
    # WHEN posting / THEN two waits, three attempts, then the work goes back to the queue
    with pytest.raises(SlackRetryableError):
        client.post("C0PAYMENTS", review)
    assert lambda_time.sleeps == [2.0, 2.0]
    assert paced.request_count("chat.postMessage") == 3
    assert paced.messages("C0PAYMENTS") == []


def test_no_retries_when_asked(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    # The interaction endpoint has 3 s in all: it never waits for Slack.
    lambda_time = FakeLambdaTime(remaining_s=600.0)
    client = client_for(
        slack, max_rate_limit_retries=0, remaining_time_s=lambda_time.remaining, sleep=lambda_time.sleep
    )
    slack.fail_next("usergroups.users.list", status=429, retry_after=1)
    with pytest.raises(SlackRetryableError):
        client.usergroup_members("S0SECOPS")
    assert lambda_time.sleeps == []


def test_without_a_deadline_long_waits_are_refused(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    sleeps: list[float] = []
    client = client_for(slack, sleep=sleeps.append)
    slack.fail_next("chat.update", status=429, retry_after=3)
    ts = client.post("C0PAYMENTS", review)
    client.update("C0PAYMENTS", ts, review)
    assert sleeps == [3.0]
    slack.fail_next("chat.update", status=429, retry_after=120)
    with pytest.raises(SlackRetryableError) as caught:
        client.update("C0PAYMENTS", ts, review)
    assert caught.value.retry_after_s == 120.0
    assert sleeps == [3.0]


def test_a_new_client_takes_over_the_rate_limit_handler(slack: SlackStandIn) -> None:
    # GIVEN one cached WebClient wrapped by a SlackClient per invocation
    web_client = build_web_client(TOKEN, base_url=slack.base_url)
    SlackClient(web_client, remaining_time_s=lambda: 1.0)
    second = SlackClient(web_client, remaining_time_s=lambda: 100.0)
    # THEN only the latest deadline applies, and the connection retry stays
    rate_handlers = [h for h in web_client.retry_handlers if isinstance(h, RateLimitErrorRetryHandler)]
    assert len(rate_handlers) == 1
    assert isinstance(rate_handlers[0], DeadlineRateLimitRetryHandler)
    assert rate_handlers[0].fits(10.0)
    assert any(isinstance(h, ConnectionErrorRetryHandler) for h in web_client.retry_handlers)
    assert second.web_client is web_client


# --- server and network errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(slack: SlackStandIn, review: sm.SlackMessage, status: int) -> None:
    slack.fail_next("chat.postMessage", status=status)
    with pytest.raises(SlackRetryableError, match=f"HTTP {status}") as caught:
        client_for(slack).post("C0PAYMENTS", review)
    assert caught.value.error_code == f"http_{status}"
    assert slack.messages("C0PAYMENTS") == []


@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "service_unavailable", "request_timeout"])
def test_slack_transient_errors_are_retryable(slack: SlackStandIn, review: sm.SlackMessage, error: str) -> None:
    slack.fail_next("chat.postMessage", status=200, error=error)
    with pytest.raises(SlackRetryableError, match=error):
        client_for(slack).post("C0PAYMENTS", review)


def test_an_unreachable_slack_is_retryable(review: sm.SlackMessage) -> None:
    # GIVEN a loopback port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SlackClient(build_web_client(TOKEN, base_url=f"http://127.0.0.1:{port}/api/", timeout=2))
    with pytest.raises(SlackRetryableError, match="network"):
        client.post("C0PAYMENTS", review)


# --- configuration errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "channel", "words"),
    [
        (None, "C0NOWHERE", r"channel C0NOWHERE does not exist.*fix the team's channel id"),
        ("not_member", "C0SECRET", r"bot is not a member of Slack channel C0SECRET: invite it"),
        ("archived", "C0PAYMENTS", r"channel C0PAYMENTS is archived"),
    ],
)
def test_channel_problems_tell_the_operator_what_to_do(
    slack: SlackStandIn, review: sm.SlackMessage, setup: str | None, channel: str, words: str
) -> None:
    if setup == "not_member":
        slack.add_channel("C0SECRET", bot_member=False)
    if setup == "archived":
        slack.archive("C0PAYMENTS")
    with pytest.raises(SlackConfigurationError, match=words):
        client_for(slack).post(channel, review)
    assert slack.messages(channel) == []


def test_a_wrong_token_is_a_configuration_error_that_never_shows_the_token(
    slack: SlackStandIn, review: sm.SlackMessage, caplog: pytest.LogCaptureFixture
) -> None:
    secret_token = "xoxb-9999-wrong-SECRETVALUE"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SlackConfigurationError, match=r"invalid_auth.*bot_token") as caught:
        client_for(slack, token=secret_token).post("C0PAYMENTS", review)
    assert caught.value.error_code == "invalid_auth"
    assert secret_token not in str(caught.value)
    assert "SECRETVALUE" not in caplog.text


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("not_authed", "bot_token"),
        ("token_revoked", "revoked"),
        ("account_inactive", "inactive"),
        ("missing_scope", "lacks the scope"),
        ("invalid_blocks", "bug in macie-chatops"),
        ("msg_too_long", "bug in macie-chatops"),
        ("restricted_action", "Slack admin"),
    ],
)
def test_configuration_errors(slack: SlackStandIn, review: sm.SlackMessage, error: str, words: str) -> None:
    slack.fail_next("chat.postMessage", status=200, error=error)
    with pytest.raises(SlackConfigurationError, match=words) as caught:
        client_for(slack).post("C0PAYMENTS", review)
    assert caught.value.method == "chat.postMessage"
    assert caught.value.error_code == error


def test_plan_without_user_groups(slack: SlackStandIn) -> None:
    slack.fail_next("usergroups.users.list", status=200, error="plan_upgrade_required")
    with pytest.raises(SlackConfigurationError, match="list approvers by user id"):
        client_for(slack).usergroup_members("S0SECOPS")


def test_other_refusals_are_plain_slack_errors(slack: SlackStandIn, review: sm.SlackMessage) -> None:
    slack.fail_next("chat.postMessage", status=200, error="something_new")
    with pytest.raises(SlackError, match=r"chat\.postMessage for channel C0PAYMENTS failed: something_new") as caught:
        client_for(slack).post("C0PAYMENTS", review)
    assert type(caught.value) is SlackError


def test_blocks_the_stand_in_would_refuse_never_leave_the_builders(slack: SlackStandIn) -> None:
    # GIVEN the worst-case finding (1,000-byte key) rendered in every state / WHEN posted and updated
    finding = parse_event(load_event("key-1000-bytes"))
    assert isinstance(finding, Finding)
    summary = FindingSummary.of(finding, decide(finding, load_config(ROOT / "accounts.yaml")))
    client = client_for(slack)
    ts = client.post("C0PAYMENTS", sm.build_review_message(summary, reason="r"))
    client.update(
        "C0PAYMENTS",
        ts,
        sm.build_quarantined_message(
            summary,
            approver="U0ALICE",
            at="2026-11-20T10:30:00Z",
            quarantine_bucket="q",
            quarantine_key="k" * 1000,
            older_versions=1,
        ),
    )
    # THEN Slack's own block checks (as the stand-in applies them) accepted both
    assert len(slack.message("C0PAYMENTS", ts).revisions) == 2


def test_a_block_that_fails_validation_is_raised_before_any_call(slack: SlackStandIn) -> None:
    # GIVEN a message whose block breaks Slack's limits (only a bug could build it)
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import SectionBlock

    broken = sm.SlackMessage(text="t", blocks=(SectionBlock(text="x" * 3001),))
    # WHEN posted / THEN slack_sdk's validator error surfaces as is, and Slack saw nothing
    with pytest.raises(SlackObjectFormationError):
        client_for(slack).post("C0PAYMENTS", broken)
    assert slack.requests == {}
