"""The two metrics the dashboard needed and no handler published (architecture §25): every HTTP 429 Slack answers
(``SlackRateLimited``, by method) and the remediator's seconds per job (``JobSeconds``, by result)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import SectionBlock

from macie_chatops import names
from macie_chatops import slack_messages as sm
from macie_chatops.errors import SlackRetryableError
from macie_chatops.slack_client import SlackClient, build_web_client
from macie_chatops.states import State
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import emf_metrics
from tests.conftest import AwsSandbox
from tests.functional.remediator_world import RemediatorWorld, job, remediator_world

TOKEN = "xoxb-test-token"
MESSAGE = sm.SlackMessage(text="a finding", blocks=(SectionBlock(text="a finding"),))


class Counted:
    """The use cases' Counter, keeping what it was given."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, dict[str, str]]] = []

    def count(self, name: str, **dimensions: str) -> None:
        self.counts.append((name, dimensions))


def test_every_429_is_counted_by_method_waited_out_or_not(slack: SlackStandIn) -> None:
    # GIVEN a client with a metrics sink, one wait allowed, and Slack answering 429 twice in a row
    counted = Counted()
    sleeps: list[float] = []
    client = SlackClient(
        build_web_client(TOKEN, base_url=slack.base_url),
        metrics=counted,
        max_rate_limit_retries=1,
        sleep=sleeps.append,
    )
    slack.fail_next("chat.postMessage", 2, status=429, retry_after=1)
    # WHEN a message is posted: the first 429 is waited out, the second ends the attempt
    with pytest.raises(SlackRetryableError):
        client.post("C0PAYMENTS", MESSAGE)
    # THEN both 429s Slack answered were counted, each naming the method, and only one was waited out
    assert sleeps == [1.0]
    assert counted.counts == [(names.SLACK_RATE_LIMITED_METRIC, {"method": "chat.postMessage"})] * 2
    # AND a call Slack answers at once counts nothing
    counted.counts.clear()
    assert client.post("C0PAYMENTS", MESSAGE)
    assert counted.counts == []


def test_a_client_that_never_waits_still_counts_the_429(slack: SlackStandIn) -> None:
    # GIVEN the interaction endpoint's client (no waiting for Slack) and a 429 on the approvers' lookup
    counted = Counted()
    client = SlackClient(build_web_client(TOKEN, base_url=slack.base_url), metrics=counted, max_rate_limit_retries=0)
    slack.fail_next("usergroups.users.list", status=429, retry_after=1)
    # WHEN it is looked up  THEN it fails as before, and the 429 is counted
    with pytest.raises(SlackRetryableError):
        client.usergroup_members("S0SECOPS")
    assert counted.counts == [(names.SLACK_RATE_LIMITED_METRIC, {"method": "usergroups.users.list"})]


@pytest.fixture
def world(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


def test_each_remediation_job_publishes_its_seconds_by_result(
    world: RemediatorWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an approved finding and one still awaiting approval
    approved = world.seed("f-timed", key="a.csv")
    pending = world.seed("f-timed-pending", key="b.csv", state=State.PENDING_APPROVAL)
    capsys.readouterr()
    # WHEN their quarantine jobs arrive
    world.invoke(job("quarantine", approved.finding_id))
    world.invoke(job("quarantine", pending.finding_id))
    # THEN each job printed one JobSeconds metric of the remediator, by result: the move's latency, the refusal's
    out = capsys.readouterr().out
    timed = [m for m in emf_metrics(out) if m["name"] == names.JOB_SECONDS_METRIC]
    assert [(m["namespace"], m["service"], m["result"]) for m in timed] == [
        (names.METRICS_NAMESPACE, names.REMEDIATOR_FUNCTION_NAME, "quarantined"),
        (names.METRICS_NAMESPACE, names.REMEDIATOR_FUNCTION_NAME, "stale"),
    ]
    # AND in seconds, a positive duration
    documents = [line for line in out.splitlines() if f'"{names.JOB_SECONDS_METRIC}"' in line]
    assert all('"Unit": "Seconds"' in line or '"Unit":"Seconds"' in line for line in documents)
    assert world.record(approved.finding_id).state is State.QUARANTINED
