"""`macie-chatops pending [--team T]`: the findings awaiting approval, oldest first, from the real state table."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from macie_chatops import names
from macie_chatops.cli import main
from macie_chatops.config import Action, load_config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, parse_event
from macie_chatops.states import State
from macie_chatops.store import FindingStore, create_state_table
from macie_chatops.summary import FindingSummary
from tests.conftest import ROOT, AwsSandbox, load_event

TABLE = "cli-pending-findings"


@pytest.fixture
def table(aws: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client("dynamodb", region_name=aws.region)
    create_state_table(client, TABLE)
    monkeypatch.setenv(names.ENV_STATE_TABLE, TABLE)
    return client


@pytest.fixture
def template() -> FindingSummary:
    finding = parse_event(load_event("personal-review"))
    assert isinstance(finding, Finding)
    return FindingSummary.of(finding, decide(finding, load_config(ROOT / "accounts.yaml")))


def _finding(
    table: Any,
    template: FindingSummary,
    finding_id: str,
    *,
    team: str,
    waited: timedelta,
    target: State = State.PENDING_APPROVAL,
) -> None:
    """A finding received ``waited`` ago, moved to ``target`` (the store's clock set back, no sleeping)."""
    store = FindingStore(table, TABLE, clock=lambda: datetime.now(UTC) - waited)
    summary = dataclasses.replace(template, finding_id=finding_id, team=team, key=f"exports/{finding_id}.csv")
    store.create_received(
        finding_id,
        event_id=f"event-{finding_id}",
        action=Action.REVIEW,
        reason="review",
        actor="finding-handler",
        account_id=summary.account_id,
        team=team,
        channel="C0PAYMENTS",
        summary=summary,
    )
    store.transition(
        finding_id, expected={State.RECEIVED}, target=State.PENDING_APPROVAL, actor="finding-handler", event="posted"
    )
    if target is State.APPROVED:
        store.transition(finding_id, expected={State.PENDING_APPROVAL}, target=target, actor="U0ALICE", event="click")


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_pending_lists_every_teams_waiting_findings_oldest_first(
    table: Any, template: FindingSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN findings of two teams waiting for different times, and one already approved
    _finding(table, template, "f-new", team="payments", waited=timedelta(minutes=10, seconds=30))
    _finding(table, template, "f-old", team="analytics", waited=timedelta(days=2, hours=3, minutes=30))
    _finding(table, template, "f-mid", team="payments", waited=timedelta(hours=5, minutes=20, seconds=30))
    _finding(table, template, "f-done", team="payments", waited=timedelta(days=9), target=State.APPROVED)
    # WHEN an operator lists them
    assert main(["pending"]) == 0
    # THEN one JSON line per pending finding, oldest first, with where the object is and how long it waited
    captured = capsys.readouterr()
    lines = _lines(captured.out)
    assert [line["finding_id"] for line in lines] == ["f-old", "f-mid", "f-new"]
    assert [line["age"] for line in lines] == ["2d3h", "5h20m", "10m"]
    old = lines[0]
    assert set(old) == {
        "finding_id",
        "team",
        "account",
        "bucket",
        "key",
        "received_at",
        "age",
        "link",
        "reminders",
        "escalated_at",
    }
    assert (old["link"], old["reminders"], old["escalated_at"]) == (None, 0, None)  # no workspace named, none sent
    assert (old["team"], old["account"], old["bucket"], old["key"]) == (
        "analytics",
        template.account_id,
        template.bucket,
        "exports/f-old.csv",
    )
    assert datetime.fromisoformat(old["received_at"]) < datetime.fromisoformat(lines[1]["received_at"])
    assert "3 finding(s) awaiting approval for all teams" in captured.err
    assert "no message links: pass --workspace-url" in captured.err


def test_pending_for_one_team_with_a_limit_says_there_may_be_more(
    table: Any, template: FindingSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN three payments findings and one of analytics
    for index, finding_id in enumerate(["p-1", "p-2", "p-3"]):
        _finding(table, template, finding_id, team="payments", waited=timedelta(hours=3 - index))
    _finding(table, template, "a-1", team="analytics", waited=timedelta(hours=9))
    # WHEN the payments team's two oldest are asked for
    assert main(["pending", "--team", "payments", "--limit", "2"]) == 0
    # THEN only theirs, oldest first, and stderr says the list was cut
    captured = capsys.readouterr()
    assert [line["finding_id"] for line in _lines(captured.out)] == ["p-1", "p-2"]
    assert "2 finding(s) awaiting approval for team payments (the oldest 2; --limit shows more)" in captured.err
    # AND a team with nothing pending gets no lines and exit 0
    assert main(["pending", "--team", "nobody"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "0 finding(s)" in captured.err


def test_pending_takes_the_table_flag_over_the_environment(
    table: Any, template: FindingSummary, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _finding(table, template, "f-1", team="payments", waited=timedelta(minutes=5, seconds=30))
    monkeypatch.setenv(names.ENV_STATE_TABLE, "not-this-table")
    # WHEN the environment names a table that does not exist / THEN a clear error, exit 1
    assert main(["pending"]) == 1
    assert "pending: the state table not-this-table could not be used" in capsys.readouterr().err
    # WHEN --table names the right one / THEN it is used
    assert main(["pending", "--table", TABLE, "--region", "us-east-1"]) == 0
    assert [line["finding_id"] for line in _lines(capsys.readouterr().out)] == ["f-1"]


def test_pending_rejects_a_limit_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pending", "--limit", "0"])
    assert exited.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_pending_older_than_lists_only_the_reviews_waiting_longer(
    table: Any, template: FindingSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN findings of two teams waiting 2 days, 30 hours and 5 hours
    _finding(table, template, "p-2d", team="payments", waited=timedelta(days=2))
    _finding(table, template, "a-30h", team="analytics", waited=timedelta(hours=30))
    _finding(table, template, "p-5h", team="payments", waited=timedelta(hours=5))
    # WHEN an operator asks for those older than 24 hours, for every team and then for one
    assert main(["pending", "--older-than", "24h"]) == 0
    captured = capsys.readouterr()
    # THEN only the two older ones, oldest first; for payments (the index query), only its own
    assert [line["finding_id"] for line in _lines(captured.out)] == ["p-2d", "a-30h"]
    assert "2 finding(s) awaiting approval older than 1d0h for all teams" in captured.err
    assert main(["pending", "--older-than", "1d", "--team", "payments"]) == 0
    assert [line["finding_id"] for line in _lines(capsys.readouterr().out)] == ["p-2d"]
    assert main(["pending", "--older-than", "3d"]) == 0
    assert capsys.readouterr().out == ""


def test_pending_links_each_review_to_its_slack_message(
    table: Any, template: FindingSummary, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a review whose message was posted in C0PAYMENTS at ts 1700000000.123456
    _finding(table, template, "f-linked", team="payments", waited=timedelta(hours=2))
    FindingStore(table, TABLE).set_slack_message("f-linked", channel="C0PAYMENTS", ts="1700000000.123456", actor="t")
    # WHEN the operator names the workspace
    assert main(["pending", "--workspace-url", "https://acme.slack.com/"]) == 0
    # THEN the line carries the message's permalink
    (line,) = _lines(capsys.readouterr().out)
    assert line["link"] == "https://acme.slack.com/archives/C0PAYMENTS/p1700000000123456"


def test_pending_reads_the_workspace_from_slack_with_the_bot_token(
    table: Any,
    template: FindingSummary,
    slack: Any,
    aws: AwsSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a review with its message, and the Slack secret holding the bot token
    _finding(table, template, "f-auth", team="payments", waited=timedelta(hours=2))
    FindingStore(table, TABLE).set_slack_message("f-auth", channel="C0PAYMENTS", ts="1700000000.000001", actor="t")
    secret = boto3.client("secretsmanager", region_name=aws.region).create_secret(
        Name="pending-slack", SecretString=json.dumps({"bot_token": "xoxb-test-token", "signing_secret": "s"})
    )
    monkeypatch.setenv(names.ENV_SLACK_API_URL, slack.base_url)
    # WHEN pending runs with the secret / THEN auth.test names the workspace and the link is built on it
    assert main(["pending", "--slack-secret", secret["ARN"]]) == 0
    (line,) = _lines(capsys.readouterr().out)
    assert line["link"] == f"https://{slack.team_domain}.slack.com/archives/C0PAYMENTS/p1700000000000001"
    # WHEN Slack refuses the token / THEN the list is still printed without links, and the exit status says so
    slack.fail_next("auth.test", status=200, error="invalid_auth")
    assert main(["pending", "--slack-secret", secret["ARN"]]) == 1
    captured = capsys.readouterr()
    assert _lines(captured.out)[0]["link"] is None
    assert "the Slack workspace could not be read" in captured.err


@pytest.mark.parametrize("bad", ["", "24", "h", "-1h", "0m", "1h2d", "24 hours"])
def test_pending_refuses_an_older_than_that_is_not_a_duration(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pending", "--older-than", bad])
    assert exited.value.code == 2
    assert "--older-than" in capsys.readouterr().err
