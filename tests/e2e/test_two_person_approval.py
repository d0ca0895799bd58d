"""The two-person rule end to end: accounts.yaml asks two approvers for the payments team, Macie's finding goes
through the whole sandbox, and signed clicks arrive over real HTTP. Two different approvers move the object
once; one approver clicking twice moves nothing; three concurrent clicks by two approvers move it once."""

from __future__ import annotations

import json
import threading

import pytest

from macie_chatops import names
from macie_chatops.config import Config, parse_config
from macie_chatops.states import State
from macie_chatops_sandbox.sandbox import ClickResponse, Sandbox
from tests.conftest import ROOT
from tests.e2e.world import PAYMENTS_CHANNEL, PAYMENTS_PROD, PERSONAL, Reported, report

APPROVERS_LINE = "    approvers: [U0ALICE, S0SECOPS]"


@pytest.fixture(scope="module")
def config() -> Config:
    # GIVEN the example organisation, where the payments team needs two approvers (a team policy key)
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
    assert text.count(APPROVERS_LINE) == 1
    strict = text.replace(APPROVERS_LINE, "    policy: {approvals_required: 2}\n" + APPROVERS_LINE)
    return parse_config(strict, "accounts.yaml")


def _pending(sandbox: Sandbox) -> Reported:
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    return finding


def _message(sandbox: Sandbox, finding: Reported) -> str:
    record = finding.record(sandbox)
    assert record.slack_ts is not None
    return json.dumps(sandbox.slack.message(PAYMENTS_CHANNEL, record.slack_ts).blocks, ensure_ascii=False)


def _second_approver(sandbox: Sandbox) -> str:
    return sandbox.group_members["S0SECOPS"][0]


def test_two_different_approvers_move_the_object_once(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    # THEN the review message asks for two approvers
    assert "*2 different approvers* of this team must agree" in _message(sandbox, finding)
    # WHEN Alice clicks Remediate
    first = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE")
    # THEN the message says "1 of 2 approvals by Alice", and nothing moves
    assert first.status == 200
    assert "*1 of 2 approvals* by <@U0ALICE>" in _message(sandbox, finding)
    sandbox.wait_until_idle()
    assert finding.record(sandbox).state is State.PENDING_APPROVAL
    assert finding.location(sandbox) == "source"
    # WHEN a second approver (a member of the team's user group) clicks
    second = _second_approver(sandbox)
    assert sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=second).status == 200
    # THEN the object is quarantined once, approved by the second
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    sandbox.wait_until_idle()
    assert record.state is State.QUARANTINED and record.approver == second
    assert len(sandbox.quarantined_copies(PAYMENTS_PROD, "us-east-1", finding.finding_id)) == 1
    assert finding.location(sandbox) == "quarantine"
    # AND the audit trail lists both approvers
    record = finding.record(sandbox)
    assert [e.actor for e in record.audit if e.outcome == "approval_counted"] == ["U0ALICE"]
    approved = [e for e in record.audit if e.outcome == "APPROVED"]
    assert len(approved) == 1 and approved[0].detail.startswith(f"approval 2 of 2 (U0ALICE, {second})")


def test_one_approver_clicking_twice_is_refused_and_nothing_moves(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE")
    # WHEN Alice clicks Remediate again
    again = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE")
    # THEN only she is told (ephemerally) that someone else must confirm
    assert again.status == 200 and again.json["response_type"] == "ephemeral"
    assert "You have already approved this finding (1 of 2)" in again.text
    record = finding.record(sandbox)
    replies = [r for r in sandbox.slack.ephemeral(PAYMENTS_CHANNEL) if r.ts == record.slack_ts]
    assert replies and "already approved" in replies[-1].text
    # AND nothing moves
    sandbox.wait_until_idle()
    record = finding.record(sandbox)
    assert record.state is State.PENDING_APPROVAL and record.approvals == ("U0ALICE",)
    assert finding.location(sandbox) == "source"


def test_three_concurrent_clicks_by_two_approvers_move_the_object_once(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    clickers = ["U0ALICE", _second_approver(sandbox), "U0ALICE"]
    answers: list[ClickResponse] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clickers))

    def click(user: str) -> None:
        start.wait()
        answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=user)
        with lock:
            answers.append(answer)

    # WHEN three signed clicks by two approvers arrive at once
    threads = [threading.Thread(target=click, args=(user,)) for user in clickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # THEN every click was answered; Alice's second was refused
    assert len(answers) == len(clickers) and all(a.status == 200 for a in answers)
    assert sum(1 for a in answers if a.json.get("response_type") == "ephemeral") == 1
    # AND the object was approved once, by both, and moved once
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    sandbox.wait_until_idle()
    assert record.state is State.QUARANTINED
    assert [e.outcome for e in record.audit].count("APPROVED") == 1
    assert {*record.approvals, record.approver} == {"U0ALICE", _second_approver(sandbox)}
    assert len(sandbox.quarantined_copies(PAYMENTS_PROD, "us-east-1", finding.finding_id)) == 1
    assert finding.location(sandbox) == "quarantine"
