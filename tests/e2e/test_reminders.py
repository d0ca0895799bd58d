"""Reminders and the escalation summary in the sandbox: the sandbox clock moves forward (no waiting) and the
reminders job runs as its schedules invoke it (the sandbox has no scheduler: ``Sandbox.remind()``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest

from macie_chatops.config import Config
from macie_chatops.states import State
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from tests.conftest import ROOT
from tests.e2e.world import PAYMENTS_CHANNEL, PAYMENTS_PROD, PERSONAL, report

ESCALATION_CHANNEL = "C0SECOPS"


@pytest.fixture(scope="module")
def sandbox(config: Config, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    # The example organisation, with the security team's channel for the escalation summary.
    escalating = config.model_copy(
        update={"slack": config.slack.model_copy(update={"escalation_channel": ESCALATION_CHANNEL})}
    )
    with Sandbox(escalating, sandbox_settings) as running:
        yield running


def test_a_review_nobody_answers_is_reminded_then_escalated_once(sandbox: Sandbox) -> None:
    # GIVEN a review finding posted to the payments team
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=PERSONAL)
    record = sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    assert record.slack_ts is not None
    # WHEN the hourly job runs now / THEN nothing is due
    assert sandbox.remind()["RemindersPosted"] == 0
    # WHEN a day and an hour pass on the sandbox clock and the hourly job runs (twice: a retry)
    sandbox.advance_clock(timedelta(hours=25))
    first, again = sandbox.remind(), sandbox.remind()
    # THEN one thread reply under the review message mentions the team's approvers (a user and a user group)
    assert (first["RemindersPosted"], again["RemindersPosted"]) == (1, 0)
    (reminder,) = sandbox.slack.replies(PAYMENTS_CHANNEL, record.slack_ts)
    assert "Reminder 1 of 2" in reminder.text
    assert "<@U0ALICE>" in reminder.text and "<!subteam^S0SECOPS>" in reminder.text
    # WHEN three days have passed and the daily job runs (twice)
    sandbox.advance_clock(timedelta(hours=48))
    summary_run, next_day = sandbox.remind(escalate=True), sandbox.remind(escalate=True)
    # THEN the second reminder was posted, and one summary in the security team's channel lists the review with
    # its team, account, object, age and the link to its message; the second run lists nothing again
    assert (summary_run["RemindersPosted"], summary_run["ReviewsEscalated"], next_day["ReviewsEscalated"]) == (1, 1, 0)
    assert len(sandbox.slack.replies(PAYMENTS_CHANNEL, record.slack_ts)) == 2
    (summary,) = sandbox.slack.messages(ESCALATION_CHANNEL)
    listed = str(summary.blocks)
    link = (
        f"https://{sandbox.slack.team_domain}.slack.com/archives/{PAYMENTS_CHANNEL}/p{record.slack_ts.replace('.', '')}"
    )
    assert link in listed and "payments" in listed and PAYMENTS_PROD in listed
    assert finding.stored.key in listed and "3d1h" in listed
    # AND both are on the finding and in its audit trail; it still waits for its approvers
    after = finding.record(sandbox)
    assert (after.state, after.reminders_sent) == (State.PENDING_APPROVAL, 2)
    assert after.escalated_at is not None
    assert [e.event for e in after.audit].count("reminded") == 2 and "escalated" in [e.event for e in after.audit]
    # AND the operator's `pending` (a real CLI process on the sandbox's table and Slack secret) shows the review with
    # its link, its reminders and when it was escalated
    listed_by_cli = subprocess.run(
        [sys.executable, "-m", "macie_chatops", "pending", "--team", "payments"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed_by_cli.returncode == 0, listed_by_cli.stderr
    (line,) = [json.loads(text) for text in listed_by_cli.stdout.splitlines() if finding.finding_id in text]
    assert (line["link"], line["reminders"], line["escalated_at"]) == (link, 2, after.escalated_at)
