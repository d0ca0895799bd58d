"""Reminders and the escalation summary through the real ``lambda_handler`` (invoked as its schedules invoke it,
with the schedule's time moved forward instead of waiting) against moto (the state table and its pending index,
the Slack secret) and the Slack stand-in."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.handlers import reminders as reminders_handler
from macie_chatops.reminders import EVENT_ESCALATED, EVENT_REMINDED
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import (
    LambdaContext,
    aws_client,
    provision_handler,
    review_summary,
    seed_review,
)
from tests.conftest import ROOT, AwsSandbox, load_event

TABLE = "reminders-test-findings"
ESCALATION_CHANNEL = "C0SECOPS"
START = datetime.now(UTC).replace(microsecond=0)  # schedule times are whole seconds


@dataclasses.dataclass(frozen=True)
class World:
    config: Config
    store: FindingStore
    slack: SlackStandIn


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    example = load_config(ROOT / "accounts.yaml")
    config = example.model_copy(
        update={"slack": example.slack.model_copy(update={"escalation_channel": ESCALATION_CHANNEL})}
    )
    slack.add_channel(ESCALATION_CHANNEL)
    resources = provision_handler(
        config=config, config_dir=tmp_path, table=TABLE, slack=slack, setenv=monkeypatch.setenv
    )
    reminders_handler.clear_caches()
    try:
        yield World(config, resources.store, slack)
    finally:
        reminders_handler.clear_caches()


def _seed(world: World, finding_id: str, *, received: datetime = START) -> tuple[FindingRecord, str]:
    """A review finding of the payments team (approvers U0ALICE and S0SECOPS), received at ``received``, its
    message posted in C0PAYMENTS and PENDING_APPROVAL since."""
    summary = dataclasses.replace(review_summary(world.config, load_event("personal-review")), finding_id=finding_id)
    store = FindingStore(aws_client("dynamodb"), TABLE, clock=lambda: received)
    return seed_review(store, world.slack, summary, state=State.PENDING_APPROVAL)


def _run(at: timedelta, *, escalate: bool = False) -> dict[str, Any]:
    """The handler as its schedule invokes it, at ``START + at``."""
    event = {"time": (START + at).strftime("%Y-%m-%dT%H:%M:%SZ"), "escalate": escalate}
    context = LambdaContext(names.REMINDERS_FUNCTION_NAME, memory_limit_in_mb=512, timeout_s=60.0)
    answer: dict[str, Any] = reminders_handler.lambda_handler(event, context)
    return answer


def _record(world: World, finding_id: str) -> FindingRecord:
    record = world.store.get(finding_id)
    assert record is not None
    return record


def _events(record: FindingRecord) -> list[str]:
    return [entry.event for entry in record.audit]


def test_a_review_waiting_past_the_interval_gets_one_reminder_mentioning_its_approvers(world: World) -> None:
    # GIVEN a review waiting since START
    _, ts = _seed(world, "f-remind")
    # WHEN the hourly run comes 23 hours later / THEN nothing is due yet
    assert _run(timedelta(hours=23))["RemindersPosted"] == 0
    assert world.slack.replies("C0PAYMENTS", ts) == []
    # WHEN it runs 25 hours later
    answer = _run(timedelta(hours=25))
    # THEN one thread reply under the review message mentions the team's approvers, user and user group
    assert answer == {"RemindersPosted": 1, "ReviewsEscalated": 0, "EscalationSummaries": 0, "ReminderErrors": 0}
    (reply,) = world.slack.replies("C0PAYMENTS", ts)
    assert "Reminder 1 of 2" in reply.text and "1d1h" in reply.text
    assert "<@U0ALICE>" in reply.text and "<!subteam^S0SECOPS>" in reply.text
    # AND it is recorded on the finding and in its audit trail (marked, then posted)
    record = _record(world, "f-remind")
    assert record.reminders_sent == 1 and record.state is State.PENDING_APPROVAL
    assert _events(record)[-2:] == ["reminder_due", EVENT_REMINDED]
    assert reply.ts in record.audit[-1].detail
    # AND the next runs in the same interval post nothing more
    assert _run(timedelta(hours=26))["RemindersPosted"] == 0
    assert len(world.slack.replies("C0PAYMENTS", ts)) == 1


def test_reminders_are_spaced_by_the_interval_and_stop_at_the_maximum(world: World) -> None:
    # GIVEN a review waiting since START (max_reminders 2, every 24 hours)
    _, ts = _seed(world, "f-spaced")
    # WHEN runs come at 25h, 40h (15h after the first reminder), 50h and 100h
    posted = [_run(timedelta(hours=hours))["RemindersPosted"] for hours in (25, 40, 50, 100)]
    # THEN the first and the second reminder only, each one interval after the one before
    assert posted == [1, 0, 1, 0]
    replies = world.slack.replies("C0PAYMENTS", ts)
    assert ["Reminder 1 of 2" in replies[0].text, "Reminder 2 of 2" in replies[1].text] == [True, True]
    assert _record(world, "f-spaced").reminders_sent == 2


def test_a_decided_review_is_not_reminded(world: World) -> None:
    # GIVEN a review that was dismissed a day after it was posted
    _seed(world, "f-decided")
    world.store.transition(
        "f-decided", expected={State.PENDING_APPROVAL}, target=State.DISMISSED, actor="U0ALICE", event="click"
    )
    # WHEN the run comes / THEN no reminder: the pending index no longer lists it
    assert _run(timedelta(hours=30))["RemindersPosted"] == 0
    assert _record(world, "f-decided").reminders_sent == 0


@pytest.mark.usefixtures("atomic_moto")
def test_two_runs_at_once_post_one_reminder(world: World) -> None:
    # GIVEN a review due for its first reminder
    _, ts = _seed(world, "f-race")
    answers: list[dict[str, Any]] = []
    # WHEN two runs start at the same moment (a scheduled run and a retry)
    runs = [threading.Thread(target=lambda: answers.append(_run(timedelta(hours=25)))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    # THEN one reply: only one run's conditional mark was applied
    assert len(answers) == 2 and sum(answer["RemindersPosted"] for answer in answers) == 1
    assert len(world.slack.replies("C0PAYMENTS", ts)) == 1
    assert _record(world, "f-race").reminders_sent == 1


def test_a_reminder_slack_refused_is_taken_back_and_sent_by_the_next_run(world: World) -> None:
    # GIVEN a review due for a reminder, and Slack failing the next post
    _, ts = _seed(world, "f-slack-down")
    world.slack.fail_next("chat.postMessage", status=200, error="internal_error")
    # WHEN the run comes / THEN it fails loudly, the mark is taken back and the failure audited
    with pytest.raises(Exception, match="1 reminder/escalation step"):
        _run(timedelta(hours=25))
    record = _record(world, "f-slack-down")
    assert record.reminders_sent == 0 and record.last_reminder_at is None
    assert _events(record)[-2:] == ["reminder_due", "reminder_failed"]
    assert world.slack.replies("C0PAYMENTS", ts) == []
    # WHEN the next run comes / THEN the reminder is posted
    assert _run(timedelta(hours=26))["RemindersPosted"] == 1
    assert len(world.slack.replies("C0PAYMENTS", ts)) == 1


def test_a_deleted_review_message_gets_no_reminder_and_is_not_retried(world: World) -> None:
    # GIVEN a review whose recorded message no longer exists in Slack
    _seed(world, "f-deleted")
    aws_client("dynamodb").update_item(
        TableName=TABLE,
        Key={"finding_id": {"S": "f-deleted"}},
        UpdateExpression="SET slack_ts = :ts",
        ExpressionAttributeValues={":ts": {"S": "1700000000.000001"}},
    )
    # WHEN the run comes / THEN no error, the step is audited as failed for good, and no later run tries again
    assert _run(timedelta(hours=25))["ReminderErrors"] == 0
    record = _record(world, "f-deleted")
    assert record.reminders_sent == 1 and _events(record)[-1] == "reminder_failed"
    assert _run(timedelta(hours=50))["RemindersPosted"] == 0
    assert _record(world, "f-deleted").reminders_sent == 1


def test_the_daily_summary_lists_each_review_past_the_escalation_time_once(world: World) -> None:
    # GIVEN a review waiting since START, and one received two days later
    _, ts = _seed(world, "f-old")
    _seed(world, "f-young", received=START + timedelta(days=2))
    # WHEN the hourly (not the daily) run comes 73 hours later / THEN no summary
    assert _run(timedelta(hours=73))["EscalationSummaries"] == 0
    assert world.slack.messages(ESCALATION_CHANNEL) == []
    # WHEN the daily run comes
    answer = _run(timedelta(hours=74), escalate=True)
    # THEN one summary in the escalation channel lists the old review: team, account, object, age, message link
    assert (answer["EscalationSummaries"], answer["ReviewsEscalated"]) == (1, 1)
    (summary,) = world.slack.messages(ESCALATION_CHANNEL)
    text = str(summary.blocks)
    link = f"https://{world.slack.team_domain}.slack.com/archives/C0PAYMENTS/p{ts.replace('.', '')}"
    assert link in text and "payments" in text and "345678901234" in text and "3d2h" in text
    old = _record(world, "f-old")
    assert "f-young" not in text and old.escalated_at is not None
    assert _events(old)[-1] == EVENT_ESCALATED and summary.ts in old.audit[-1].detail
    # WHEN the next daily run comes / THEN the old review is not listed again; the young one is, now past 72h
    answer = _run(timedelta(hours=74 + 48), escalate=True)
    assert (answer["EscalationSummaries"], answer["ReviewsEscalated"]) == (1, 1)
    latest = world.slack.messages(ESCALATION_CHANNEL)[-1]
    assert "f-old" not in str(latest.blocks) and "archives/C0PAYMENTS" in str(latest.blocks)
    assert _run(timedelta(hours=74 + 72), escalate=True)["EscalationSummaries"] == 0


def test_a_summary_slack_refused_takes_its_marks_back_and_the_next_run_posts_it(world: World) -> None:
    # GIVEN a review past the escalation time, reminded by the hourly run, and Slack failing the next post
    _seed(world, "f-escalate-fails")
    assert _run(timedelta(hours=80))["RemindersPosted"] == 1
    world.slack.fail_next("chat.postMessage", status=200, error="internal_error")
    # WHEN the daily run comes / THEN it fails loudly and the finding is not marked as listed
    with pytest.raises(Exception, match="reminder/escalation step"):
        _run(timedelta(hours=81), escalate=True)
    record = _record(world, "f-escalate-fails")
    assert record.escalated_at is None and "escalation_failed" in _events(record)
    # WHEN the next daily run comes / THEN it is listed
    assert _run(timedelta(hours=104), escalate=True)["ReviewsEscalated"] == 1
    assert len(world.slack.messages(ESCALATION_CHANNEL)) == 1


def test_the_handler_refuses_an_event_that_is_not_a_schedule(world: World) -> None:
    context = LambdaContext(names.REMINDERS_FUNCTION_NAME, memory_limit_in_mb=512, timeout_s=60.0)
    with pytest.raises(reminders_handler.ScheduledRunError, match="escalate"):
        reminders_handler.lambda_handler({"escalate": "yes"}, context)
    with pytest.raises(reminders_handler.ScheduledRunError, match="time zone"):
        reminders_handler.lambda_handler({"time": "2026-01-01T00:00:00"}, context)
