"""The pure part of reminders and escalation: the settings, when a step is due, the messages, the schedule's event."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from macie_chatops.config import ConfigError, parse_config
from macie_chatops.handlers.reminders import ScheduledRunError, scheduled_run
from macie_chatops.reminders import (
    EVENT_REMINDER_FAILED,
    NO_MESSAGE,
    ReminderPolicy,
    age_text,
    build_escalation_summary,
    build_reminder,
    escalation_due,
    link_for,
    mention,
    permalink,
    reminder_due,
)
from macie_chatops.slack_messages import MAX_MESSAGE_TEXT_CHARS, text_chars
from macie_chatops.states import State
from macie_chatops.store import AuditEntry, FindingRecord
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.testkit.world import review_summary
from tests.conftest import ROOT, load_event

EXAMPLE = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = ReminderPolicy(escalation_channel="C0SECOPS")


def _with_slack(lines: str) -> str:
    anchor = "  secret_name: macie-chatops/slack        # Secrets Manager"
    assert anchor in EXAMPLE
    return EXAMPLE.replace(anchor, lines + "\n" + anchor)


def _record(**changes: object) -> FindingRecord:
    base = FindingRecord(
        finding_id="f-1",
        state=State.PENDING_APPROVAL,
        received_at=RECEIVED.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        updated_at=RECEIVED.isoformat(),
        account_id="345678901234",
        team="payments",
        slack_channel="C0PAYMENTS",
        slack_ts="1772442000.000100",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _summary() -> FindingSummary:
    return review_summary(parse_config(EXAMPLE), load_event("personal-review"))


# --- settings -------------------------------------------------------------------------------------------------


def test_the_settings_default_to_a_day_two_reminders_three_days_and_no_escalation() -> None:
    slack = parse_config(EXAMPLE).slack
    assert (slack.remind_after_hours, slack.max_reminders, slack.escalate_after_hours) == (24, 2, 72)
    assert slack.escalation_channel is None
    assert ReminderPolicy.from_settings(slack) == ReminderPolicy()


def test_the_settings_are_read_from_accounts_yaml() -> None:
    config = parse_config(
        _with_slack(
            "  remind_after_hours: 8\n  max_reminders: 3\n  escalate_after_hours: 48\n  escalation_channel: C0SECOPS"
        )
    )
    assert ReminderPolicy.from_settings(config.slack) == ReminderPolicy(
        timedelta(hours=8), 3, timedelta(hours=48), "C0SECOPS"
    )


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("  remind_after_hours: 0", "slack.remind_after_hours", "greater than or equal to 1"),
        ('  remind_after_hours: "24"', "slack.remind_after_hours", "valid integer"),
        ("  max_reminders: 11", "slack.max_reminders", "less than or equal to 10"),
        ("  escalate_after_hours: 2161", "slack.escalate_after_hours", "less than or equal to 2160"),
        ("  escalation_channel: '#secops'", "slack.escalation_channel", "not a Slack channel id"),
        ("  escalation_channel: C0SECOPS\n  escalation_chanel: C0X", "slack.escalation_chanel", "unknown key"),
    ],
)
def test_a_wrong_setting_is_reported_at_its_line(line: str, field: str, message: str) -> None:
    text = _with_slack(line)
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "accounts.yaml")
    (issue,) = raised.value.issues
    expected_line = text.splitlines().index(line.splitlines()[-1]) + 1
    assert (issue.field, issue.line) == (field, expected_line)
    assert message in issue.message


# --- when a step is due ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waited", "sent", "last", "due"),
    [
        (timedelta(hours=23, minutes=59), 0, None, None),
        (timedelta(hours=24), 0, None, 1),
        (timedelta(hours=40), 1, timedelta(hours=25), None),  # 15 hours since the first reminder
        (timedelta(hours=49), 1, timedelta(hours=25), 2),
        (timedelta(days=30), 2, timedelta(hours=49), None),  # the maximum was sent
    ],
)
def test_a_reminder_is_due_one_interval_after_the_message_or_the_last_reminder(
    waited: timedelta, sent: int, last: timedelta | None, due: int | None
) -> None:
    last_at = None if last is None else (RECEIVED + last).isoformat()
    record = _record(reminders_sent=sent, last_reminder_at=last_at)
    assert reminder_due(record, now=RECEIVED + waited, policy=POLICY) == due


def test_no_reminder_without_a_pending_state_a_message_or_reminders_at_all() -> None:
    late = RECEIVED + timedelta(days=3)
    assert reminder_due(_record(state=State.APPROVED), now=late, policy=POLICY) is None
    assert reminder_due(_record(slack_ts=None), now=late, policy=POLICY) is None
    assert reminder_due(_record(), now=late, policy=dataclasses.replace(POLICY, max_reminders=0)) is None
    deleted = AuditEntry(at=late.isoformat(), actor="reminders", event=EVENT_REMINDER_FAILED, outcome=NO_MESSAGE)
    assert reminder_due(_record(reminders_sent=1, audit=(deleted,)), now=late, policy=POLICY) is None


def test_escalation_is_due_once_past_its_time_and_only_with_a_channel() -> None:
    assert not escalation_due(_record(), now=RECEIVED + timedelta(hours=71), policy=POLICY)
    assert escalation_due(_record(), now=RECEIVED + timedelta(hours=72), policy=POLICY)
    late = RECEIVED + timedelta(days=5)
    assert not escalation_due(_record(escalated_at=late.isoformat()), now=late, policy=POLICY)
    assert not escalation_due(_record(state=State.DISMISSED), now=late, policy=POLICY)
    assert not escalation_due(_record(), now=late, policy=ReminderPolicy())


# --- the messages ---------------------------------------------------------------------------------------------


def test_mentions_and_links_use_slacks_syntax() -> None:
    assert [mention(a) for a in ("U0ALICE", "W0GRID", "S0SECOPS")] == ["<@U0ALICE>", "<@W0GRID>", "<!subteam^S0SECOPS>"]
    assert permalink("https://acme.slack.com/", "C0PAYMENTS", "1772442000.000100") == (
        "https://acme.slack.com/archives/C0PAYMENTS/p1772442000000100"
    )
    assert link_for(_record(), None) is None and link_for(_record(slack_ts=None), "https://acme.slack.com") is None
    assert [age_text(s) for s in (59, 3600 * 5 + 60 * 7, 86400 * 3 + 3600)] == ["0m", "5h7m", "3d1h"]


def test_the_reminder_names_its_number_the_wait_and_mentions_every_approver() -> None:
    message = build_reminder(
        _record(), number=2, of=2, approvers=("U0ALICE", "S0SECOPS"), now=RECEIVED + timedelta(hours=49)
    )
    assert message.text.startswith("Reminder 2 of 2: this review has waited 2d1h.")
    (block,) = message.to_dict()["blocks"]
    assert "<@U0ALICE> <!subteam^S0SECOPS>" in block["text"]["text"] and block["text"]["verbatim"] is True


def test_the_summary_lists_each_review_escaped_with_its_link_within_slacks_limits() -> None:
    # GIVEN 30 reviews (a summary's most), one with a key that holds Slack markup and a very long key
    summary = _summary()
    hostile = dataclasses.replace(summary, key="<!channel> *bold* " + "x" * 1000)
    records = [_record(finding_id=f"f-{n}", summary=hostile if n == 0 else summary) for n in range(30)]
    # WHEN the summary is built
    message = build_escalation_summary(
        records, now=RECEIVED + timedelta(hours=80), policy=POLICY, workspace_url="https://acme.slack.com"
    )
    rendered = message.to_dict()
    text = str(rendered)
    # THEN every line has the team, account, object, age and link; markup is escaped; Slack's limits hold
    assert text.count("https://acme.slack.com/archives/C0PAYMENTS/p1772442000000100") == 30
    assert "3d8h" in text and "*payments*" in text and "345678901234" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert text_chars(rendered["blocks"]) <= MAX_MESSAGE_TEXT_CHARS
    assert all(len(block["text"]["text"]) <= 3000 for block in rendered["blocks"][1:])


# --- the schedule's event -------------------------------------------------------------------------------------


def test_the_schedules_event_gives_the_runs_time_and_task() -> None:
    assert scheduled_run({"time": "2026-03-05T08:00:00Z", "escalate": True}) == (
        datetime(2026, 3, 5, 8, tzinfo=UTC),
        True,
    )
    assert scheduled_run({"version": "0", "detail-type": "Scheduled Event"}) == (None, False)  # a console test


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "not a JSON object"),
        ({"escalate": "true"}, "escalate must be true or false"),
        ({"time": "tomorrow"}, "not an ISO 8601 time"),
        ({"time": "2026-03-05T08:00:00"}, "no time zone"),
    ],
)
def test_an_event_that_is_not_a_schedules_is_refused(event: object, message: str) -> None:
    with pytest.raises(ScheduledRunError, match=message):
        scheduled_run(event)
