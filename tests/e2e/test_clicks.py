"""Clicks that must not do what they ask, and clicks that race: over real HTTP, signed for real.

Non-approvers, the wrong channel, another workspace, a forged signature or a stale timestamp change
nothing; a double click and concurrent clicks by several approvers produce exactly one transition and one
move, and the losers are told what already happened.
"""

from __future__ import annotations

import threading
import time

from macie_chatops import names
from macie_chatops.states import State
from macie_chatops_sandbox.sandbox import OUTSIDER, ClickResponse, Sandbox
from macie_chatops_sandbox.slack_clicks import signed_click_body
from tests.e2e.world import ANALYTICS_CHANNEL, PAYMENTS_CHANNEL, PAYMENTS_PROD, PERSONAL, Reported, report


def _pending(sandbox: Sandbox) -> Reported:
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    return finding


def _unchanged(sandbox: Sandbox, finding: Reported) -> None:
    sandbox.wait_until_idle()
    record = finding.record(sandbox)
    assert record.state is State.PENDING_APPROVAL and record.approver is None
    assert finding.location(sandbox) == "source"


def test_a_non_approver_is_refused_with_an_ephemeral_answer(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    # WHEN someone who approves nothing clicks Remediate
    answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=OUTSIDER)
    # THEN only they see the refusal, the finding still waits, and the refusal is on the audit trail
    assert answer.status == 200
    assert answer.json["response_type"] == "ephemeral" and answer.json["replace_original"] is False
    assert "not an approver" in answer.text
    _unchanged(sandbox, finding)
    assert any(e.actor == OUTSIDER and e.outcome == "refused" for e in finding.record(sandbox).audit)


def test_the_refusal_reaches_the_clicker_in_slack(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    record = finding.record(sandbox)
    sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=OUTSIDER)
    replies = [r for r in sandbox.slack.ephemeral(PAYMENTS_CHANNEL) if r.ts == record.slack_ts]
    assert replies and "not an approver" in replies[-1].text


def test_an_approver_of_another_team_is_refused(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    # WHEN analytics' approver clicks a payments finding
    answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0CAROL")
    # THEN it is refused
    assert answer.status == 200 and answer.json["response_type"] == "ephemeral"
    _unchanged(sandbox, finding)


def test_a_click_from_the_wrong_channel_is_refused(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    record = finding.record(sandbox)
    assert record.slack_channel == PAYMENTS_CHANNEL
    # WHEN a real approver's click claims to come from another team's channel
    answer = sandbox.click(
        finding.finding_id,
        names.ACTION_REMEDIATE,
        user_id="U0ALICE",
        channel_id=ANALYTICS_CHANNEL,
        message_ts=record.slack_ts,
    )
    # THEN it is refused: the record, not the payload, says where the finding was posted
    assert answer.status == 200 and answer.json["response_type"] == "ephemeral"
    _unchanged(sandbox, finding)


def test_a_click_from_another_workspace_is_refused(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE", team_id="T0OTHERORG")
    assert answer.status == 200 and answer.json["response_type"] == "ephemeral"
    _unchanged(sandbox, finding)


def test_a_forged_signature_is_rejected_before_anything_is_read(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    # WHEN a click is signed with the wrong secret
    forged = sandbox.click(
        finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE", signing_secret="not-the-signing-secret"
    )
    # AND a correctly signed body is tampered with after signing
    record = finding.record(sandbox)
    body, headers = signed_click_body(
        sandbox.secret.signing_secret,
        action_id=names.ACTION_REMEDIATE,
        finding_id=finding.finding_id,
        user_id=OUTSIDER,
        team_id=sandbox.config.slack.team_id,
        channel_id=PAYMENTS_CHANNEL,
        message_ts=record.slack_ts or "",
    )
    tampered = sandbox.post(body.replace(OUTSIDER.encode(), b"U0ALICE"), headers)
    # THEN both get 401 and nothing changes
    assert forged.status == 401 and tampered.status == 401
    _unchanged(sandbox, finding)
    assert not any(e.actor == "U0ALICE" for e in finding.record(sandbox).audit)


def test_a_replayed_click_older_than_five_minutes_is_rejected(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    answer = sandbox.click(
        finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE", timestamp=int(time.time()) - 6 * 60
    )
    assert answer.status == 401
    _unchanged(sandbox, finding)


def test_a_double_click_moves_once_and_tells_what_happened(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    # WHEN the approver clicks Remediate twice
    first = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE")
    second = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE")
    # THEN the second is told it was already approved, by whom
    assert first.status == 200 and second.status == 200
    assert second.json["response_type"] == "ephemeral" and "U0ALICE" in second.text
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    sandbox.wait_until_idle()
    # AND there is exactly one quarantined copy
    assert record.state is State.QUARANTINED and record.approver == "U0ALICE"
    assert len(sandbox.quarantined_copies(PAYMENTS_PROD, "us-east-1", finding.finding_id)) == 1


def test_concurrent_clicks_by_several_approvers_make_one_transition(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    clickers = ["U0ALICE", sandbox.group_members["S0SECOPS"][0]] * 4
    answers: list[ClickResponse] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clickers))

    def click(user: str) -> None:
        start.wait()
        answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=user)
        with lock:
            answers.append(answer)

    # WHEN eight signed clicks arrive at once
    threads = [threading.Thread(target=click, args=(user,)) for user in clickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # THEN exactly one replaced the message (accepted); the other seven were told, ephemerally
    assert len(answers) == len(clickers) and all(a.status == 200 for a in answers)
    accepted = [a for a in answers if a.json.get("response_type") != "ephemeral"]
    assert len(accepted) == 1
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    sandbox.wait_until_idle()
    # AND the object was moved once
    assert record.state is State.QUARANTINED
    assert len(sandbox.quarantined_copies(PAYMENTS_PROD, "us-east-1", finding.finding_id)) == 1
    assert finding.location(sandbox) == "quarantine"


def test_remediate_after_dismiss_is_refused(sandbox: Sandbox) -> None:
    finding = _pending(sandbox)
    assert sandbox.dismiss(finding.finding_id, user_id="U0ALICE").status == 200  # the click, then its form
    sandbox.wait_for_state(finding.finding_id, State.DISMISSED)
    # WHEN another approver clicks Remediate on the (stale) message
    answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=sandbox.group_members["S0SECOPS"][0])
    # THEN they are told it was dismissed, and nothing moves
    assert answer.json["response_type"] == "ephemeral" and "U0ALICE" in answer.text
    sandbox.wait_until_idle()
    assert finding.record(sandbox).state is State.DISMISSED
    assert finding.location(sandbox) == "source"
