"""Slack pacing across concurrent writers: the pace items in the state table (moto's server), the SlackClient
waiting for its slot against the Slack stand-in, and a record Slack cannot take yet re-sent with a delay."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from slack_sdk.models.blocks import SectionBlock

from macie_chatops.errors import SlackRetryableError, SlackRetryLaterError
from macie_chatops.handlers._root import DEFERRALS_ATTRIBUTE, MAX_DEFERRALS, run_sqs_batch
from macie_chatops.names import STATE_TABLE_KEY, STATE_TABLE_TTL_ATTRIBUTE
from macie_chatops.slack_client import SlackClient, build_web_client
from macie_chatops.slack_messages import SlackMessage
from macie_chatops.slack_pacing import PACE_ITEM_LIFETIME_S, PACE_ITEM_TYPE, PACES, ChannelPacer, Pace
from macie_chatops.store import FindingStore, create_state_table
from macie_chatops_sandbox.lambda_runtime import sqs_event
from macie_chatops_sandbox.slack_standin import RateLimit, SlackStandIn
from macie_chatops_sandbox.testkit.world import LambdaContext
from tests.conftest import AwsSandbox

TABLE = "test-findings"
CHANNEL = "C0PAYMENTS"
OTHER_CHANNEL = "C0ANALYTIC"
# Slack's paces at 8x speed, a little under the stand-in's limits below (as PACES is under Slack's), so the
# time between taking a slot and reaching Slack never turns into a 429.
FAST = {
    "chat.postMessage": Pace(interval_s=0.125, burst=1, per_channel=True),
    "chat.update": Pace(interval_s=0.125, burst=1, per_channel=False),
}


class FrozenClock:
    """Epoch seconds that only move when told to, read by many threads."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.fixture
def dynamodb(aws: AwsSandbox, atomic_moto: None) -> Any:
    client = boto3.client("dynamodb", region_name=aws.region)
    create_state_table(client, TABLE)
    return client


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def pacer(dynamodb: Any, clock: FrozenClock) -> ChannelPacer:
    return ChannelPacer(dynamodb, TABLE, clock=clock)


def _reserve_at_once(pacer: ChannelPacer, writers: int, method: str = "chat.postMessage") -> list[float]:
    """``writers`` threads asking for a slot at the same moment; their answers, sorted."""
    start = threading.Barrier(writers)

    def one(_: int) -> float:
        start.wait()
        return pacer.reserve(CHANNEL, method)

    with ThreadPoolExecutor(writers) as pool:
        return sorted(pool.map(one, range(writers)))


# --- the pace items ---------------------------------------------------------------------------------------


def test_concurrent_writers_get_exactly_the_burst_then_one_slot_per_interval(
    pacer: ChannelPacer, clock: FrozenClock
) -> None:
    pace = PACES["chat.postMessage"]
    # GIVEN a quiet channel / WHEN ten writers (Lambdas) ask for a posting slot at the same moment
    answers = _reserve_at_once(pacer, 10)
    # THEN exactly the burst allowance goes, and every other writer is told when the next slot is due
    assert answers.count(0.0) == pace.burst
    assert [round(a, 6) for a in answers[pace.burst :]] == [pace.interval_s] * (10 - pace.burst)
    # WHEN they all ask again one interval later / THEN exactly one more goes: the rate is never exceeded
    clock.advance(pace.interval_s)
    assert _reserve_at_once(pacer, 10).count(0.0) == 1
    # AND after a long quiet spell the burst is available again, not more
    clock.advance(3600)
    assert _reserve_at_once(pacer, 10).count(0.0) == pace.burst


def test_posts_are_paced_per_channel_and_updates_per_workspace(pacer: ChannelPacer) -> None:
    post, update = PACES["chat.postMessage"], PACES["chat.update"]
    # GIVEN one channel's posting burst used up
    for _ in range(post.burst):
        assert pacer.reserve(CHANNEL, "chat.postMessage") == 0.0
    # THEN another channel still posts at once, the first waits
    assert pacer.reserve(CHANNEL, "chat.postMessage") > 0
    assert pacer.reserve(OTHER_CHANNEL, "chat.postMessage") == 0.0
    # AND updates (Tier 3, per workspace) have their own allowance, shared by every channel
    granted = [pacer.reserve(channel, "chat.update") for channel in [CHANNEL, OTHER_CHANNEL] * update.burst]
    assert granted.count(0.0) == update.burst
    # AND a method with no pace (views.open) is never held back
    assert all(pacer.reserve(CHANNEL, "views.open") == 0.0 for _ in range(20))


def test_pace_items_stay_out_of_the_findings_and_expire(pacer: ChannelPacer, dynamodb: Any) -> None:
    # GIVEN a post and an update reserved
    pacer.reserve(CHANNEL, "chat.postMessage")
    pacer.reserve(CHANNEL, "chat.update")
    # THEN two pace items exist, with a TTL a day ahead and none of the indexes' attributes
    items = {item[STATE_TABLE_KEY]["S"]: item for item in dynamodb.scan(TableName=TABLE)["Items"]}
    assert set(items) == {f"pace#{CHANNEL}", "pace#*"}
    for item in items.values():
        assert set(item) == {STATE_TABLE_KEY, "tat", STATE_TABLE_TTL_ATTRIBUTE, "item_type"}
        assert item["item_type"] == {"S": PACE_ITEM_TYPE}
        assert int(item[STATE_TABLE_TTL_ATTRIBUTE]["N"]) == 1_800_000_000 + PACE_ITEM_LIFETIME_S
    # AND the finding store sees no finding among them
    store = FindingStore(dynamodb, TABLE)
    assert store.get(f"pace#{CHANNEL}") is None
    assert store.pending_approvals() == []
    assert store.approved_before(datetime(2100, 1, 1, tzinfo=UTC)) == []


@pytest.mark.parametrize("channel", ["", "C0#X"])
def test_a_channel_that_is_no_channel_id_is_refused(pacer: ChannelPacer, channel: str) -> None:
    with pytest.raises(ValueError, match="not a Slack channel id"):
        pacer.reserve(channel, "chat.postMessage")


def test_a_pace_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError, match="interval_s > 0"):
        Pace(interval_s=0, burst=1, per_channel=True)
    with pytest.raises(ValueError, match="burst >= 1"):
        Pace(interval_s=1, burst=0, per_channel=True)


# --- the SlackClient with a pacer, against the stand-in ----------------------------------------------------


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    # Slack's limits at 10x speed (10 posts a second per channel, bursts of 2).
    with SlackStandIn(
        channels=(CHANNEL, OTHER_CHANNEL),
        post_limit=RateLimit(per_second=10.0, burst=2),
        update_limit=RateLimit(per_second=10.0, burst=2),
    ) as running:
        yield running


def _message(text: str) -> SlackMessage:
    return SlackMessage(text=text, blocks=(SectionBlock(text=text),))


def test_concurrent_paced_writers_are_never_refused_and_post_everything_once(
    dynamodb: Any, standin: SlackStandIn
) -> None:
    # GIVEN four writers (Lambdas) with their own clients, sharing only the state table's pace
    def writer(number: int) -> list[str]:
        client = SlackClient(
            build_web_client("xoxb-test-token", base_url=standin.base_url),
            pacer=ChannelPacer(dynamodb, TABLE, paces=FAST),
        )
        return [client.post(CHANNEL, _message(f"{number}-{n}")) for n in range(4)]

    # WHEN they post 16 messages to one channel at once
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        posted = [ts for batch in pool.map(writer, range(4)) for ts in batch]
    elapsed = time.monotonic() - started
    # THEN Slack never answered 429, every message is there once, and the pace (1 per 0.125 s) held
    assert standin.rate_limited == 0
    assert sorted(m.text for m in standin.messages(CHANNEL)) == sorted(f"{w}-{n}" for w in range(4) for n in range(4))
    assert len(set(posted)) == 16
    assert elapsed >= (16 - 1) * 0.125 - 0.05


def test_a_slot_beyond_the_deadline_is_a_retry_later_and_nothing_is_posted(
    pacer: ChannelPacer, standin: SlackStandIn
) -> None:
    # GIVEN the channel's burst used up, and an invocation with 5.5 s left (5 s of safety margin)
    for _ in range(PACES["chat.postMessage"].burst):
        assert pacer.reserve(CHANNEL, "chat.postMessage") == 0.0
    client = SlackClient(
        build_web_client("xoxb-test-token", base_url=standin.base_url), pacer=pacer, remaining_time_s=lambda: 5.5
    )
    # WHEN it posts / THEN it is told to retry later after the slot's wait, and nothing reached Slack
    with pytest.raises(SlackRetryLaterError) as caught:
        client.post(CHANNEL, _message("late"))
    assert caught.value.error_code == "paced"
    assert PACES["chat.postMessage"].interval_s <= caught.value.retry_after_s < 1.2
    assert standin.request_count("chat.postMessage") == 0


def test_a_429_that_does_not_fit_is_a_retry_later(standin: SlackStandIn) -> None:
    # GIVEN Slack rate-limiting writes for a minute (Retry-After 60) / WHEN a post is made with 20 s left
    standin.rate_limit_during(60, retry_after=60)
    client = SlackClient(build_web_client("xoxb-test-token", base_url=standin.base_url), remaining_time_s=lambda: 20)
    # THEN a retry-later of 60 s (still a retryable error for the callers that only know those), nothing posted
    with pytest.raises(SlackRetryLaterError) as caught:
        client.post(CHANNEL, _message("x"))
    assert isinstance(caught.value, SlackRetryableError)
    assert caught.value.retry_after_s == 60
    assert standin.messages(CHANNEL) == []


# --- a record Slack cannot take yet: re-sent with the delay ------------------------------------------------


@pytest.fixture
def queue(aws: AwsSandbox) -> tuple[Any, str, str]:
    sqs = boto3.client("sqs", region_name=aws.region)
    url = sqs.create_queue(QueueName="macie-chatops-intake")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def _batch(sqs: Any, url: str, arn: str, region: str) -> dict[str, Any]:
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    return sqs_event(messages, arn, region)


def _run(event: dict[str, Any], sqs: Any | None, error: Exception) -> dict[str, Any]:
    from aws_lambda_powertools import Logger

    def handle(record: Any) -> str:
        raise error

    failures: list[str] = []
    context = LambdaContext("f", memory_limit_in_mb=256, timeout_s=60.0)
    answer = run_sqs_batch(
        event,
        context,
        handle=handle,
        failed=lambda record, exc, fields: failures.append(type(exc).__name__),
        logger=Logger(service="test"),
        sqs=sqs,
    )
    return {"answer": answer, "failures": failures}


def test_a_record_slack_cannot_take_yet_is_re_sent_with_the_delay_and_acknowledged(
    aws: AwsSandbox, queue: tuple[Any, str, str]
) -> None:
    sqs, url, arn = queue
    # GIVEN a record on the intake queue, and a handler that is told Slack can take it in 2.3 s
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "finding-1"}))
    event = _batch(sqs, url, arn, aws.region)
    later = SlackRetryLaterError("paced", retry_after_s=2.3, method="chat.postMessage")
    # WHEN the batch runs
    result = _run(event, sqs, later)
    # THEN the record is acknowledged (not a failure), and a copy waits on the queue for 3 s with one deferral
    assert result == {"answer": {"batchItemFailures": []}, "failures": []}
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=event["Records"][0]["receiptHandle"])
    time.sleep(3.2)
    copy = _batch(sqs, url, arn, aws.region)["Records"]
    assert [(r["body"], r["messageAttributes"][DEFERRALS_ATTRIBUTE]["stringValue"]) for r in copy] == [
        (json.dumps({"id": "finding-1"}), "1")
    ]


def test_a_record_deferred_too_often_or_without_a_queue_client_fails_like_any_other(
    aws: AwsSandbox, queue: tuple[Any, str, str]
) -> None:
    sqs, url, arn = queue
    later = SlackRetryLaterError("paced", retry_after_s=1, method="chat.postMessage")
    attributes = {DEFERRALS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(MAX_DEFERRALS)}}
    # GIVEN a record deferred MAX_DEFERRALS times already
    sqs.send_message(QueueUrl=url, MessageBody="{}", MessageAttributes=attributes)
    event = _batch(sqs, url, arn, aws.region)
    message_id = event["Records"][0]["messageId"]
    # WHEN Slack still cannot take it / THEN it returns to its queue as a failure (its receives, then the DLQ)
    assert _run(event, sqs, later) == {
        "answer": {"batchItemFailures": [{"itemIdentifier": message_id}]},
        "failures": ["SlackRetryLaterError"],
    }
    # AND a consumer that gives no queue client (it cannot re-send) fails it too
    assert _run(event, None, later)["failures"] == ["SlackRetryLaterError"]
    # AND nothing was re-sent
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert depth["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "0"
