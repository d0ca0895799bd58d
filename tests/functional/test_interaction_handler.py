"""The real interaction lambda_handler, with real signed API Gateway events, against moto and the Slack stand-in.

Every bad input is answered with the right status and changes nothing: no record moves (a refused click on a
known finding only adds its audit line), no job is queued, no Slack message is written.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlencode

import pytest

from macie_chatops import names
from macie_chatops.handlers import interaction as handler
from macie_chatops.interaction import Dependencies, handle_click
from macie_chatops.jobs import RemediationJob, SqsJobQueue
from macie_chatops.states import Failure, State
from macie_chatops.store import FindingStore, WriteResult
from macie_chatops_sandbox.slack_clicks import api_gateway_event, click_payload, form_body, sign
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import approval_signer, emf_metrics
from tests.conftest import AwsSandbox
from tests.functional.interaction_world import (
    ANALYTICS_CHANNEL,
    PAYMENTS_CHANNEL,
    SIGNING_SECRET,
    TEAM_ID,
    World,
    interaction_world,
    without_audit,
)

FID = "6a1b2c3d4e5f60718293a4b5c6d70001"
REMEDIATE, DISMISS, RESTORE = names.ACTION_REMEDIATE, names.ACTION_DISMISS, names.ACTION_RESTORE


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with interaction_world(slack, tmp_path, monkeypatch, FID) as built:
        yield built


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response["body"])
    return body


# --------------------------------------------------------------------------------------------------------
# Building bad requests
# --------------------------------------------------------------------------------------------------------


def _payload(w: World | None = None, **overrides: Any) -> dict[str, Any]:
    """Alice's Remediate click on FID; with a world, its response_url reaches FID's message in the stand-in."""
    payload = click_payload(
        action_id=REMEDIATE,
        value=FID,
        user_id="U0ALICE",
        team_id=TEAM_ID,
        channel_id=PAYMENTS_CHANNEL,
        response_url=w.response_url(FID) if w is not None else None,
    )
    payload.update(overrides)
    return payload


def _signed(
    body: bytes,
    *,
    ts: int | str | None = None,
    secret: str = SIGNING_SECRET,
    edit: Callable[[dict[str, str]], dict[str, str]] | None = None,
    multi: dict[str, list[str]] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    headers = sign(secret, int(time.time()) if ts is None else ts, body)
    if edit is not None:
        headers = edit(headers)
    return api_gateway_event(body, headers, multi_value_headers=multi, base64_encoded=base64_encoded)


def _valid_body(w: World) -> bytes:
    return form_body(_payload(w))


def _drop(name: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda headers: {k: v for k, v in headers.items() if k != name}


def _value(w: World, value: str) -> bytes:
    payload = _payload(w)
    payload["actions"][0]["value"] = value
    return form_body(payload)


def _action_id(w: World, action_id: str) -> bytes:
    payload = _payload(w)
    payload["actions"][0]["action_id"] = action_id
    return form_body(payload)


def _duplicate_signature(world: World) -> dict[str, Any]:
    body = _valid_body(world)
    good = sign(SIGNING_SECRET, int(time.time()), body)
    forged = "v0=" + "0" * 64
    multi = {
        "X-Slack-Request-Timestamp": [good["X-Slack-Request-Timestamp"]],
        "X-Slack-Signature": [good["X-Slack-Signature"], forged],
    }
    return api_gateway_event(body, good, multi_value_headers=multi)


def _duplicate_timestamp(world: World) -> dict[str, Any]:
    body = _valid_body(world)
    now = int(time.time())
    headers = {**sign(SIGNING_SECRET, now, body), "x-slack-request-timestamp": str(now + 1)}
    return api_gateway_event(body, headers)


def _altered(world: World) -> dict[str, Any]:
    body = _valid_body(world)
    headers = sign(SIGNING_SECRET, int(time.time()), body)
    return api_gateway_event(body.replace(b"U0ALICE", b"U0MALLO"), headers)


def _base64_flag_false_on_encoded(world: World) -> dict[str, Any]:
    body = _valid_body(world)
    headers = sign(SIGNING_SECRET, int(time.time()), body)
    return api_gateway_event(base64.b64encode(body).decode(), headers)


def _base64_flag_true_on_plain(world: World) -> dict[str, Any]:
    event = _signed(_valid_body(world))
    event["isBase64Encoded"] = True
    return event


def _replay_after_state_moved(world: World) -> dict[str, Any]:
    event = world.click_event(REMEDIATE, FID, "U0ALICE")
    first = world.invoke(event)
    assert first["statusCode"] == 200 and body_of(first)["replace_original"] is True
    world.jobs()  # the first click's job is not this case's concern
    return event


def _seeded(state: State, action: str = REMEDIATE, user: str = "U0ALICE") -> Callable[[World], dict[str, Any]]:
    def build(world: World) -> dict[str, Any]:
        other = f"{FID[:-4]}{list(State).index(state):04d}"
        world.seed(other, state=state)
        event = world.click_event(action, other, user)
        event["_finding"] = other  # the harness checks this finding's audit line
        return event

    return build


def _headers_case(transform: Callable[[str], str]) -> Callable[[World], dict[str, Any]]:
    def build(world: World) -> dict[str, Any]:
        body = _valid_body(world)
        headers = {transform(k): v for k, v in sign(SIGNING_SECRET, int(time.time()), body).items()}
        return api_gateway_event(body, headers)

    return build


Effect = Literal["nothing", "refused", "accepted"]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[World], dict[str, Any]]
    status: int
    effect: Effect
    says: str = ""
    target: State | None = None


NOW = int(time.time())
CASES = [
    # -- the signature gate: 401/400/413, nothing read, nothing written ----------------------------------
    Case(
        "missing signature header", lambda w: _signed(_valid_body(w), edit=_drop("X-Slack-Signature")), 401, "nothing"
    ),
    Case(
        "missing timestamp header",
        lambda w: _signed(_valid_body(w), edit=_drop("X-Slack-Request-Timestamp")),
        401,
        "nothing",
    ),
    Case("no headers at all", lambda w: api_gateway_event(_valid_body(w), {}), 401, "nothing"),
    Case("signature header twice, different values", _duplicate_signature, 401, "nothing"),
    Case("timestamp header twice (case variants), different values", _duplicate_timestamp, 401, "nothing"),
    Case(
        "wrong version prefix",
        lambda w: _signed(_valid_body(w), edit=lambda h: {**h, "X-Slack-Signature": "v1" + h["X-Slack-Signature"][2:]}),
        401,
        "nothing",
    ),
    Case(
        "bad hex in signature",
        lambda w: _signed(
            _valid_body(w), edit=lambda h: {**h, "X-Slack-Signature": h["X-Slack-Signature"][:-2] + "zz"}
        ),
        401,
        "nothing",
    ),
    Case(
        "stale timestamp (6 minutes old, correctly signed)",
        lambda w: _signed(_valid_body(w), ts=int(time.time()) - 360),
        401,
        "nothing",
    ),
    Case(
        "future timestamp (6 minutes ahead, correctly signed)",
        lambda w: _signed(_valid_body(w), ts=int(time.time()) + 360),
        401,
        "nothing",
    ),
    Case("non-numeric timestamp (signed over it)", lambda w: _signed(_valid_body(w), ts="1e9"), 401, "nothing"),
    Case("body altered after signing", _altered, 401, "nothing"),
    Case(
        "signature made with another secret",
        lambda w: _signed(_valid_body(w), secret="another-app-secret"),
        401,
        "nothing",
    ),
    Case("empty body, unsigned", lambda w: api_gateway_event("", {}), 401, "nothing"),
    Case("empty body, signed", lambda w: _signed(b""), 400, "nothing"),
    Case("oversize body (64 KiB + 1, signed)", lambda w: _signed(b"payload=" + b"x" * (64 * 1024 - 7)), 413, "nothing"),
    Case("base64 flag true on a plain body", _base64_flag_true_on_plain, 400, "nothing"),
    Case("base64 flag false on a base64 body", _base64_flag_false_on_encoded, 401, "nothing"),
    # -- signed, but not a click we act on: 400 or an ephemeral 200, nothing written -------------------------
    Case("not form-encoded (signed JSON)", lambda w: _signed(json.dumps(_payload(w)).encode()), 400, "nothing"),
    Case("payload field missing", lambda w: _signed(b"token=x&type=block_actions"), 400, "nothing"),
    Case("payload not JSON", lambda w: _signed(urlencode({"payload": "{not json"}).encode()), 400, "nothing"),
    Case(
        "JSON of the wrong shape",
        lambda w: _signed(form_body({"type": "block_actions", "actions": "all"})),
        400,
        "nothing",
    ),
    Case("null byte in the raw body", lambda w: _signed(_valid_body(w) + b"%00"), 400, "nothing"),
    Case("value over Slack's 2,000-char limit", lambda w: _signed(_value(w, "a" * 5000)), 400, "nothing"),
    Case(
        "unknown interaction type",
        lambda w: _signed(form_body(_payload(w, type="message_action"))),
        200,
        "nothing",
        "only handles",
    ),
    Case(
        "view_submission shaped like a click",
        lambda w: _signed(form_body(_payload(w, type="view_submission"))),
        400,
        "nothing",
        "could not be read",
    ),
    Case("unknown action id", lambda w: _signed(_action_id(w, "other_app.approve")), 200, "nothing", "does not belong"),
    Case("missing finding id (no value)", lambda w: _signed(_value(w, "")), 200, "nothing", "does not name"),
    Case("unknown finding id", lambda w: _signed(_value(w, "f" * 64)), 200, "nothing", "does not know"),
    Case(
        "wrong workspace",
        lambda w: w.click_event(REMEDIATE, FID, "U0ALICE", team_id="T0OTHERORG"),
        200,
        "refused",
        "workspace",
    ),
    Case(
        "wrong workspace, unknown finding",
        lambda w: w.click_event(REMEDIATE, "f" * 40, "U0ALICE", team_id="T0OTHERORG"),
        200,
        "nothing",
        "workspace",
    ),
    Case("Slack markup in the value", lambda w: _signed(_value(w, "<!channel> <https://evil|click>")), 200, "nothing"),
    Case("very long value (2,000 chars)", lambda w: _signed(_value(w, "a" * 2000)), 200, "nothing"),
    Case("unicode value", lambda w: _signed(_value(w, "ﬁnding-ü-😀")), 200, "nothing"),
    Case("null byte in the value", lambda w: _signed(_value(w, FID + "\x00")), 200, "nothing"),
    # -- signed clicks on a known finding that are refused: audited, nothing else ----------------------------
    Case(
        "wrong channel",
        lambda w: w.click_event(REMEDIATE, FID, "U0ALICE", channel_id=ANALYTICS_CHANNEL),
        200,
        "refused",
        "channel it was posted to",
    ),
    Case(
        "container channel differs from channel",
        lambda w: _signed(form_body(_payload(w, container={"type": "message", "channel_id": "C0ELSEWHERE"}))),
        200,
        "refused",
        "channel",
    ),
    Case(
        "non-approver",
        lambda w: w.click_event(REMEDIATE, FID, "U0MALLORY"),
        200,
        "refused",
        "not an approver for team payments",
    ),
    Case(
        "approver of another team",
        lambda w: w.click_event(DISMISS, FID, "U0CAROL"),
        200,
        "refused",
        "not an approver for team payments",
    ),
    Case(
        "replay of a valid click after the state moved",
        _replay_after_state_moved,
        200,
        "refused",
        "already approved by <@U0ALICE>",
    ),
    Case("approve a NOTIFIED finding", _seeded(State.NOTIFIED), 200, "refused", "not awaiting approval"),
    Case("approve a DISMISSED finding", _seeded(State.DISMISSED), 200, "refused", "already dismissed"),
    Case("approve a BLOCKED finding", _seeded(State.BLOCKED), 200, "refused", "blocked"),
    Case("dismiss a QUARANTINED finding", _seeded(State.QUARANTINED, DISMISS), 200, "refused", "already quarantined"),
    Case(
        "restore a finding awaiting approval",
        lambda w: w.click_event(RESTORE, FID, "U0ALICE"),
        200,
        "refused",
        "nothing to restore",
    ),
    Case("restore a RESTORED finding", _seeded(State.RESTORED, RESTORE), 200, "refused", "already restored"),
    # -- accepted ----------------------------------------------------------------------------------------------
    Case("lower-case headers, valid", _headers_case(str.lower), 200, "accepted", target=State.APPROVED),
    Case("mixed-case headers, valid", _headers_case(lambda k: k.swapcase()), 200, "accepted", target=State.APPROVED),
    Case("user-group member", lambda w: w.click_event(REMEDIATE, FID, "U0BOB"), 200, "accepted", target=State.APPROVED),
    Case(
        "base64-encoded valid click",
        lambda w: w.click_event(REMEDIATE, FID, "U0ALICE", base64_encoded=True),
        200,
        "accepted",
        target=State.APPROVED,
    ),
    Case(
        "unicode and markup in the user name (not decisive)",
        lambda w: w.click_event(REMEDIATE, FID, "U0ALICE", username="<!here> ünï 😀"),
        200,
        "accepted",
        target=State.APPROVED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_and_edge_inputs(world: World, case: Case) -> None:
    # GIVEN the world after the case's own setup
    event = case.build(world)
    finding = event.pop("_finding", FID)
    before = world.snapshot()
    # WHEN the request reaches the handler
    response = world.invoke(event)
    # THEN the status is right, the answer is JSON Slack understands, and nothing changed that should not
    assert response["statusCode"] == case.status, body_of(response)
    body = body_of(response)
    after = world.snapshot()
    assert after.slack_writes == before.slack_writes  # no chat.* call, ever
    if case.effect == "accepted":
        assert body["replace_original"] is True and body["blocks"]
        assert after.records[finding].state is case.target
        assert after.queued == before.queued + (1 if case.target is State.APPROVED else 0)
        assert after.replaced == before.replaced + 1  # the message itself, through the response_url
        assert after.ephemerals == before.ephemerals
        return
    assert body["replace_original"] is False and body["response_type"] == "ephemeral"
    assert case.says in body["text"]
    assert after.queued == before.queued
    assert after.replaced == before.replaced  # no message in the channel changed
    if case.status != 200:
        assert after.ephemerals == before.ephemerals  # nothing was read, so no response_url was used
    else:
        # at most the clicker's own ephemeral answer, saying exactly what the HTTP body says
        assert after.ephemerals - before.ephemerals in (0, 1)
        if after.ephemerals > before.ephemerals:
            replies = world.slack.ephemeral(PAYMENTS_CHANNEL) + world.slack.ephemeral(ANALYTICS_CHANNEL)
            assert body["text"] in {reply.text for reply in replies}
    if case.effect == "nothing":
        assert after.records == before.records
    else:
        assert without_audit(after.records) == without_audit(before.records)
        new = after.records[finding].audit[len(before.records[finding].audit) :]
        assert [(entry.outcome, entry.event) for entry in new] == [("refused", new[0].event)]
        assert new[0].event.startswith("click:") and new[0].detail


def test_there_are_at_least_thirty_classes() -> None:
    assert len({case.name for case in CASES}) >= 30


# --------------------------------------------------------------------------------------------------------
# Accepted clicks
# --------------------------------------------------------------------------------------------------------


def test_remediate_replaces_the_message_and_queues_one_quarantine_job(world: World) -> None:
    # GIVEN a finding awaiting approval, its review message in Slack
    writes = world.slack_writes()
    channel, ts = world.messages[FID]
    assert any(block["type"] == "actions" for block in world.slack.message(channel, ts).blocks)
    # WHEN a listed approver clicks Remediate
    response = world.click(REMEDIATE, FID, "U0ALICE")
    # THEN Slack gets the replacement message (approved by, quarantining…, no buttons)
    body = body_of(response)
    assert response["statusCode"] == 200
    assert set(body) == {"replace_original", "text", "blocks"} and body["replace_original"] is True
    rendered = json.dumps(body["blocks"])
    assert "<@U0ALICE>" in rendered and "quarantining" in rendered
    assert all(block["type"] != "actions" for block in body["blocks"])
    # AND the record says APPROVED by Alice, with the click in its audit trail
    record = world.store.get(FID)
    assert record is not None and record.state is State.APPROVED and record.approver == "U0ALICE"
    last = record.audit[-1]
    assert (last.actor, last.event, last.outcome) == ("U0ALICE", "click:remediate", "APPROVED")
    assert "approver via user" in last.detail
    # AND exactly one quarantine job is queued, naming the finding and the approver only
    jobs = world.jobs()
    assert [(j.kind, j.finding_id, j.requested_by) for j in jobs] == [("quarantine", FID, "U0ALICE")]
    # AND the message in Slack was replaced through the click's response_url (Slack ignores the HTTP body
    # for block_actions): approved, quarantining, no buttons left; no Web API call was made
    message = world.slack.message(channel, ts)
    assert message.revisions[-1].method == "response_url" and "quarantining" in json.dumps(message.blocks)
    assert all(block["type"] != "actions" for block in message.blocks)
    assert world.slack_writes() == writes


def test_dismiss_records_who_and_queues_nothing(world: World) -> None:
    # GIVEN a finding awaiting approval; WHEN a member of S0SECOPS clicks Dismiss
    clicked = world.click(DISMISS, FID, "U0DAVE")
    # THEN the click opens the dismissal form and changes nothing yet (docs/architecture.md §16)
    assert clicked["statusCode"] == 200 and body_of(clicked) == {}
    record = world.store.get(FID)
    assert record is not None and record.state is State.PENDING_APPROVAL
    assert record.audit[-1].event == "click:dismiss" and record.audit[-1].outcome == "form_opened"
    assert len(world.slack.views("U0DAVE")) == 1 and world.replaced() == 0
    # WHEN they submit it with a reason
    submitted = world.invoke(world.submission_event("U0DAVE", {"reason": "Fixture data for the load test."}))
    # THEN the finding is dismissed by them, through the group, with the reason; nothing is queued
    assert submitted["statusCode"] == 200 and body_of(submitted) == {"response_action": "clear"}
    record = world.store.get(FID)
    assert record is not None and record.state is State.DISMISSED
    entry = record.entry_into_state
    assert entry is not None and entry.actor == "U0DAVE"
    assert "approver via S0SECOPS" in entry.detail and "reason: Fixture data for the load test." in entry.detail
    assert world.jobs() == []
    # AND the message says so (chat.update: a submission has no response_url)
    channel, ts = world.messages[FID]
    assert "Dismissed" in world.slack.message(channel, ts).text


def test_a_non_approver_is_refused_at_the_click_and_at_the_submission(world: World) -> None:
    # GIVEN a non-approver's Dismiss click: refused, no form opens
    body = body_of(world.click(DISMISS, FID, "U0MALLORY"))
    assert body["response_type"] == "ephemeral" and "not an approver for team payments" in body["text"]
    assert world.slack.views("U0MALLORY") == []
    # AND a form opened by an approver, submitted (signed) as the non-approver
    world.click(DISMISS, FID, "U0ALICE")
    event = world.submission_event("U0ALICE", {"reason": "Not mine to dismiss"})
    payload = json.loads(parse_qs(event["body"])["payload"][0])
    payload["user"] = {"id": "U0MALLORY", "username": "mallory", "team_id": TEAM_ID}
    body_bytes = form_body(payload)
    before = world.snapshot()
    answer = world.invoke(_signed(body_bytes))
    # THEN the submission is refused in the form, and nothing but its audit line changed
    assert answer["statusCode"] == 200 and "not an approver" in body_of(answer)["errors"]["reason"]
    after = world.snapshot()
    assert without_audit(after.records) == without_audit(before.records) and after.queued == before.queued
    record = after.records[FID]
    assert record.state is State.PENDING_APPROVAL and record.audit[-1].outcome == "refused"


def test_dismiss_without_the_form_is_refused_and_changes_nothing(world: World) -> None:
    # GIVEN an endpoint that cannot open the dismissal form (no modal opener, no exemption store)
    deps = _dependencies(world)
    before = world.snapshot()
    # WHEN an approver clicks Dismiss on an object finding
    answer = handle_click(_action_id(world, DISMISS), deps)
    # THEN it is refused (never dismissed without a reason) and only audited
    assert answer.outcome == "refused" and "nothing was changed" in answer.body["text"]
    after = world.snapshot()
    assert without_audit(after.records) == without_audit(before.records) and after.queued == before.queued
    assert after.records[FID].audit[-1].detail.startswith("dismissal form unavailable")


def test_restore_on_a_quarantined_finding_queues_a_restore_job(world: World) -> None:
    # GIVEN a quarantined finding (its message offers Restore)
    world.seed("quarantined-1", state=State.QUARANTINED)
    # WHEN a group member clicks Restore
    response = world.click(RESTORE, "quarantined-1", "U0BOB")
    # THEN the message says restoring…, the record is RESTORE_REQUESTED, one restore job is queued
    body = body_of(response)
    assert body["replace_original"] is True and "Restoring" in body["text"]
    assert "<@U0BOB>" in json.dumps(body["blocks"])
    record = world.store.get("quarantined-1")
    assert record is not None and record.state is State.RESTORE_REQUESTED
    assert record.approver == "U0ALICE"  # who approved the quarantine stays on the record
    assert [(j.kind, j.requested_by) for j in world.jobs()] == [("restore", "U0BOB")]


def test_a_second_click_by_the_same_approver_is_told_and_queues_nothing(world: World) -> None:
    world.click(REMEDIATE, FID, "U0ALICE")
    assert len(world.jobs()) == 1
    body = body_of(world.click(REMEDIATE, FID, "U0ALICE"))
    assert body["replace_original"] is False and "already approved by <@U0ALICE>" in body["text"]
    body = body_of(world.click(DISMISS, FID, "U0BOB"))
    assert "already approved by <@U0ALICE>" in body["text"]
    assert world.jobs() == []


def test_group_membership_is_cached_per_container(world: World, slack: SlackStandIn) -> None:
    # GIVEN two findings; WHEN group members dismiss both (each a click and the form's submission)
    world.seed("second-1")
    world.dismiss(FID, "U0BOB")
    world.dismiss("second-1", "U0DAVE")
    assert {world.records()[f].state for f in (FID, "second-1")} == {State.DISMISSED}
    # THEN Slack was asked for the group's members once
    assert slack.request_count("usergroups.users.list") == 1


# --------------------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("atomic_moto")
def test_twenty_approvers_at_once_queue_exactly_one_job(world: World) -> None:
    # GIVEN 20 signed clicks on Remediate by approvers (listed user and group members), ready at once
    users = ["U0ALICE", "U0BOB", "U0DAVE"]
    events = [world.click_event(REMEDIATE, FID, users[n % 3]) for n in range(20)]
    writes, replaced = world.slack_writes(), world.replaced()
    world.click(DISMISS, "unknown-warmup", "U0ALICE")  # build the container's clients before the race
    barrier = threading.Barrier(len(events))
    responses: list[dict[str, Any]] = [{} for _ in events]

    def click(index: int) -> None:
        barrier.wait()
        responses[index] = world.invoke(events[index])

    threads = [threading.Thread(target=click, args=(n,)) for n in range(len(events))]
    # WHEN they all hit the handler together
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # THEN exactly one won: one replacement message, one job, one APPROVED transition
    bodies = [body_of(r) for r in responses]
    assert all(r["statusCode"] == 200 for r in responses)
    winners = [b for b in bodies if b["replace_original"] is True]
    assert len(winners) == 1
    jobs = world.jobs()
    assert len(jobs) == 1
    winner = jobs[0].requested_by
    record = world.store.get(FID)
    assert record is not None and record.state is State.APPROVED and record.approver == winner
    assert [e.outcome for e in record.audit].count("APPROVED") == 1
    # AND every other clicker is told who won
    losers = [b for b in bodies if b["replace_original"] is False]
    assert len(losers) == 19
    assert all(f"already approved by <@{winner}>" in b["text"] for b in losers)
    # AND the message was replaced once (the winner's answer); the losers' answers are ephemeral
    assert world.replaced() == replaced + 1
    assert world.slack_writes() == writes


# --------------------------------------------------------------------------------------------------------
# Failure paths
# --------------------------------------------------------------------------------------------------------


def test_queue_failure_reverts_the_approval_and_asks_to_try_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a remediation queue that does not exist (every send fails)
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, world.queue_url + "-gone")
    # WHEN an approver clicks Remediate
    response = world.click(REMEDIATE, FID, "U0ALICE")
    # THEN they are asked to try again, and the finding is back to PENDING_APPROVAL without an approver
    body = body_of(response)
    assert response["statusCode"] == 200 and body["replace_original"] is False and "try again" in body["text"]
    record = world.store.get(FID)
    assert record is not None and record.state is State.PENDING_APPROVAL and record.approver is None
    # AND the trail shows the approval and its undo, with why
    approved, undone = record.audit[-2], record.audit[-1]
    assert (approved.outcome, undone.outcome) == ("APPROVED", "PENDING_APPROVAL")
    assert undone.event == "click:remediate:undone" and "not queued" in undone.detail
    # AND the finding is back on the team's pending list
    assert [r.finding_id for r in world.store.pending_approvals("payments")] == [FID]
    # WHEN the queue is back and the approver clicks again
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, world.queue_url)
    response = world.click(REMEDIATE, FID, "U0ALICE")
    # THEN it is approved and exactly one job is queued
    assert body_of(response)["replace_original"] is True
    assert len(world.jobs()) == 1


def test_restore_queue_failure_puts_the_finding_back_to_quarantined(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.seed("quarantined-2", state=State.QUARANTINED)
    monkeypatch.setenv(names.ENV_REMEDIATION_QUEUE_URL, world.queue_url + "-gone")
    body = body_of(world.click(RESTORE, "quarantined-2", "U0ALICE"))
    assert "try again" in body["text"]
    record = world.store.get("quarantined-2")
    assert record is not None and record.state is State.QUARANTINED and record.approver == "U0ALICE"


class FlakyQueue:
    """The real SQS queue, failing the first ``failures`` sends (a transient SQS error)."""

    def __init__(self, queue: SqsJobQueue, failures: int) -> None:
        self.queue, self.failures, self.attempts = queue, failures, 0

    def send(self, job: RemediationJob) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("sqs endpoint reset the connection")
        self.queue.send(job)


def _dependencies(world: World, **overrides: Any) -> Dependencies:
    from macie_chatops.interaction import ApproverDirectory
    from macie_chatops.slack_client import SlackClient, build_web_client

    slack = SlackClient(build_web_client("xoxb-test-token", base_url=world.slack.base_url), max_rate_limit_retries=0)
    values: dict[str, Any] = {
        "config": world.config,
        "store": world.store,
        "queue": SqsJobQueue(world.sqs, world.queue_url),
        "directory": ApproverDirectory(slack.usergroup_members),
        "signer": approval_signer(),
    }
    values.update(overrides)
    return Dependencies(**values)


def test_a_send_that_fails_once_is_retried(world: World) -> None:
    queue = FlakyQueue(SqsJobQueue(world.sqs, world.queue_url), failures=1)
    body = form_body(_payload())
    answer = handle_click(body, _dependencies(world, queue=queue))
    assert answer.outcome == "accepted" and queue.attempts == 2
    assert len(world.jobs()) == 1


class StoreFailingTheUndo(FindingStore):
    """The real store, whose write to undo an approval fails (DynamoDB unavailable at the worst moment)."""

    def transition(self, finding_id: str, **kwargs: Any) -> WriteResult:
        if kwargs.get("target") is State.PENDING_APPROVAL:
            raise ConnectionError("dynamodb unavailable")
        return super().transition(finding_id, **kwargs)


def test_when_queue_and_undo_both_fail_the_clicker_is_told_and_it_is_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    store = StoreFailingTheUndo(world.dynamodb, names.STATE_TABLE_NAME)
    queue = FlakyQueue(SqsJobQueue(world.sqs, world.queue_url), failures=99)
    answer = handle_click(form_body(_payload()), _dependencies(world, store=store, queue=queue))
    assert answer.status == 200 and answer.outcome == "failed"
    assert "could not be queued" in answer.body["text"]
    assert "with no job queued and could not be reverted" in caplog.text
    record = world.store.get(FID)
    assert record is not None and record.state is State.APPROVED  # stuck, and said so in the log
    assert world.jobs() == []


class StoreLosingTheFirstResponse(FindingStore):
    """The real store, as seen through an SDK retry: the first write is applied but its response is lost,
    and the retried write then fails its condition (DynamoDB answers with the record as it now is)."""

    def transition(self, finding_id: str, **kwargs: Any) -> WriteResult:
        super().transition(finding_id, **kwargs)
        return super().transition(finding_id, **kwargs)


def test_a_retried_write_that_was_applied_counts_as_ours(world: World) -> None:
    # GIVEN a Remediate click whose transition is applied, then "retried" and refused by the condition
    store = StoreLosingTheFirstResponse(world.dynamodb, names.STATE_TABLE_NAME)
    # WHEN the click is handled
    answer = handle_click(form_body(_payload()), _dependencies(world, store=store))
    # THEN the click is accepted, not told that it lost to itself, and its one job is queued
    assert answer.outcome == "accepted" and answer.body["replace_original"] is True
    assert [job.finding_id for job in world.jobs()] == [FID]
    # AND another approver's click on the same finding is still refused (the token is per click)
    other = dict(_payload(), user={"id": "U0BOB"})
    refused = handle_click(form_body(other), _dependencies(world, store=store))
    assert refused.outcome == "refused" and "already approved by <@U0ALICE>" in refused.body["text"]
    assert world.jobs() == []


def test_approver_group_lookup_failure_refuses_and_changes_nothing(world: World, slack: SlackStandIn) -> None:
    # GIVEN Slack answering 500, then 429, to usergroups.users.list
    for status in (500, 429):
        slack.fail_next("usergroups.users.list", status=status)
        before = world.snapshot()
        # WHEN a group member clicks
        body = body_of(world.click(REMEDIATE, FID, "U0BOB"))
        # THEN they are asked to try again; the finding only gained the refused click's audit line
        assert "try again" in body["text"] and body["replace_original"] is False
        after = world.snapshot()
        assert without_audit(after.records) == without_audit(before.records)
        assert after.records[FID].audit[-1].outcome == "refused"
        assert after.queued == 0
    # AND once Slack answers, the same member is accepted
    assert body_of(world.click(REMEDIATE, FID, "U0BOB"))["replace_original"] is True


def test_missing_signing_secret_is_503_and_reads_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.ENV_SLACK_SECRET_ARN, "macie-chatops/not-there")
    before = world.snapshot()
    response = world.click(REMEDIATE, FID, "U0ALICE")
    assert response["statusCode"] == 503 and "nothing was changed" in body_of(response)["text"]
    assert world.snapshot() == before


def test_a_rotated_signing_secret_is_picked_up(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    # GIVEN a container that read the secret, then the secret is rotated
    assert world.click(DISMISS, "unknown-1", "U0ALICE")["statusCode"] == 200
    secrets = boto3.client("secretsmanager")
    secret_id = handler.read_settings().secret_id
    secrets.put_secret_value(
        SecretId=secret_id,
        SecretString=json.dumps(
            {names.SLACK_SECRET_BOT_TOKEN: "xoxb-test-token", names.SLACK_SECRET_SIGNING_SECRET: "rotated-secret"}
        ),
    )
    world.secret = "rotated-secret"
    # WHEN a click signed with the new secret arrives before the refresh interval: refused
    assert world.click(REMEDIATE, FID, "U0ALICE")["statusCode"] == 401
    # WHEN the refresh interval has passed: re-read once, accepted
    monkeypatch.setattr(handler, "SECRET_REFRESH_AFTER_S", 0.0)
    assert world.click(REMEDIATE, FID, "U0ALICE")["statusCode"] == 200


def test_logs_carry_request_id_and_reason_never_body_or_secrets(world: World, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a refused click and a badly signed one, each carrying a distinctive user name in the body
    caplog.set_level(logging.INFO)
    marker = "ZZ-DISTINCTIVE-USERNAME-ZZ"
    event = world.click_event(REMEDIATE, FID, "U0MALLORY", username=marker)
    event["requestContext"]["requestId"] = "req-1234"
    world.invoke(event)
    bad = _signed(form_body(_payload(user={"id": "U0ALICE", "username": marker})), secret="wrong")
    bad["requestContext"]["requestId"] = "req-5678"
    world.invoke(bad)
    # WHEN the log lines are rendered as Lambda would write them (Powertools' JSON formatter)
    formatter = handler.logger.registered_formatter
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    # THEN they carry the request id and the reason, and never the body, the token or the signing secret
    assert "req-1234" in logged and "not an approver" in logged
    assert "req-5678" in logged and "signature does not match" in logged
    for secret in (marker, SIGNING_SECRET, "xoxb-test-token", quote(marker)):
        assert secret not in logged


# --------------------------------------------------------------------------------------------------------
# Answers through the click's response_url (Slack ignores the HTTP body for block_actions)
# --------------------------------------------------------------------------------------------------------


def test_a_refusal_reaches_the_clicker_as_an_ephemeral_reply(world: World) -> None:
    # WHEN a non-approver clicks Remediate
    body = body_of(world.click(REMEDIATE, FID, "U0MALLORY"))
    # THEN only they see the refusal in Slack, and the message itself is untouched
    channel, ts = world.messages[FID]
    replies = [reply for reply in world.slack.ephemeral(channel) if reply.ts == ts]
    assert [reply.text for reply in replies] == [body["text"]]
    assert "not an approver for team payments" in replies[0].text
    assert world.replaced() == 0


def test_a_late_clicker_is_told_who_won_in_slack(world: World) -> None:
    world.dismiss(FID, "U0BOB")
    world.click(REMEDIATE, FID, "U0ALICE")
    channel, ts = world.messages[FID]
    replies = [reply.text for reply in world.slack.ephemeral(channel) if reply.ts == ts]
    assert len(replies) == 1 and "already dismissed by <@U0BOB>" in replies[0]
    assert "Dismissed" in world.slack.message(channel, ts).text


@pytest.mark.parametrize(("failure", "retried"), [(Failure.RETRYING, True), (Failure.ROLE_DENIED, False)])
def test_a_late_clicker_on_a_failed_quarantine_hears_whether_it_will_be_retried(
    world: World, failure: Failure, retried: bool
) -> None:
    # GIVEN an approved finding whose quarantine the remediator recorded as FAILED (transient, or not)
    world.seed("failed-1", state=State.APPROVED)
    world.store.transition(
        "failed-1",
        expected={State.APPROVED},
        target=State.FAILED,
        actor="remediator",
        event="quarantine",
        updates={"outcome": failure.value, "error": "AccessDenied"},
    )
    # WHEN an approver clicks Remediate on its message
    world.click(REMEDIATE, "failed-1", "U0ALICE")
    # THEN the ephemeral reply in Slack says what the remediator recorded
    channel, ts = world.messages["failed-1"]
    (reply,) = [reply.text for reply in world.slack.ephemeral(channel) if reply.ts == ts]
    assert "failed" in reply
    assert ("will be retried automatically" in reply) is retried
    assert ("will not be retried automatically" in reply) is not retried


class Recorder:
    """A loopback HTTP server that only counts what reaches it."""

    def __init__(self) -> None:
        import http.server

        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_a_response_url_outside_slack_is_never_contacted(world: World, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a signed click whose response_url points somewhere other than Slack (here: the stand-in's
    # origin is the only allowed one, as in the sandbox; in AWS only https://hooks.slack.com/ is)
    recorder = Recorder()
    try:
        event = world.click_event(REMEDIATE, FID, "U0ALICE", response_url=f"{recorder.url}/actions/T0EXAMPLE/x")
        # WHEN it is handled
        response = world.invoke(event)
    finally:
        recorder.stop()
    # THEN the click is still applied (the signature vouches for it) but nothing was sent there
    assert body_of(response)["replace_original"] is True and len(world.jobs()) == 1
    assert recorder.hits == []
    assert "not a Slack hooks URL" in caplog.text


def test_a_failed_delivery_changes_nothing_already_decided(world: World, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a click whose response_url Slack no longer honours (expired, used up or unknown)
    dead = world.slack.base_url.removesuffix("/api/") + "/actions/T0EXAMPLE/no-such-token"
    # WHEN an approver clicks Remediate
    response = world.click(REMEDIATE, FID, "U0ALICE", response_url=dead)
    # THEN the approval and its job stand, the HTTP answer is the replacement, and the log says why
    assert body_of(response)["replace_original"] is True
    record = world.store.get(FID)
    assert record is not None and record.state is State.APPROVED
    assert len(world.jobs()) == 1
    assert "not delivered to response_url: ResponseUrlError" in caplog.text


class BrokenStore(FindingStore):
    """The real store with DynamoDB gone (every read fails)."""

    def get(self, finding_id: str) -> Any:
        raise ConnectionError("dynamodb unavailable")


def test_an_internal_error_is_raised_and_the_clicker_hears_of_it(world: World) -> None:
    from macie_chatops.interaction import WebhookResponder

    # GIVEN a store that cannot be read, and a click with a live response_url
    responder = WebhookResponder((world.slack.base_url.removesuffix("/api/"),))
    deps = _dependencies(world, store=BrokenStore(world.dynamodb, names.STATE_TABLE_NAME), responder=responder)
    body = form_body(_payload(world))
    # WHEN the click is handled, THEN the error propagates (the handler logs it and answers 200) ...
    with pytest.raises(ConnectionError):
        handle_click(body, deps)
    # ... and the clicker got an ephemeral "try again" in Slack; nothing else changed
    replies = world.slack.ephemeral(PAYMENTS_CHANNEL)
    assert len(replies) == 1 and "try again" in replies[0].text
    assert world.replaced() == 0 and world.queued() == 0


def test_the_handler_answers_an_internal_error_with_200_and_a_reference(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the state table gone
    monkeypatch.setenv(names.ENV_STATE_TABLE, "no-such-table")
    event = world.click_event(REMEDIATE, FID, "U0ALICE")
    event["requestContext"]["requestId"] = "req-err-1"
    # WHEN a valid click arrives
    response = world.invoke(event)
    # THEN Slack gets a 200 with an ephemeral error naming the request, and the log has the traceback
    body = body_of(response)
    assert response["statusCode"] == 200 and body["response_type"] == "ephemeral"
    assert "req-err-1" in body["text"] and "second click is safe" in body["text"]
    assert "click failed" in caplog.text
    assert world.queued() == 0


# --------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------


def _clicks(out: str) -> list[tuple[str, str, str]]:
    """The Clicks metrics printed, as (action, outcome, reason); each checked for namespace and service."""
    found = [m for m in emf_metrics(out) if m["name"] == "Clicks"]
    assert all(m["namespace"] == "MacieChatOps" and m["service"] == "macie-chatops-interaction" for m in found)
    return [(m["action"], m["outcome"], m["reason"]) for m in found]


def test_every_click_is_counted_by_action_outcome_and_reason(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a finding awaiting approval
    capsys.readouterr()
    # WHEN someone not listed clicks Remediate, then an approver does, then a late approver clicks Dismiss
    world.click(REMEDIATE, FID, "U0MALLORY")
    world.click(REMEDIATE, FID, "U0ALICE")
    world.click(DISMISS, FID, "U0BOB")
    # AND a click arrives with a bad signature, and one signed too long ago
    body = _valid_body(world)
    world.invoke(_signed(body, secret="not-the-signing-secret"))
    world.invoke(_signed(body, ts=int(time.time()) - 3600))
    # THEN each is one Clicks metric: the action, the outcome and the reason's category
    assert _clicks(capsys.readouterr().out) == [
        ("remediate", "refused", "not_an_approver"),
        ("remediate", "accepted", "none"),
        ("dismiss", "refused", "already_handled"),
        ("none", "unauthenticated", "bad_signature"),
        ("none", "unauthenticated", "bad_signature"),
    ]


def test_failures_are_counted_too(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a click on a finding that is not there, and a malformed payload
    capsys.readouterr()
    world.click(REMEDIATE, "no-such-finding", "U0ALICE")
    world.invoke(_signed(b"payload=%7Bnot%20json"))
    # AND the state table gone, then the signing secret gone
    monkeypatch.setenv(names.ENV_STATE_TABLE, "no-such-table")
    world.click(REMEDIATE, FID, "U0ALICE")
    handler.clear_caches()
    monkeypatch.setenv(names.ENV_SLACK_SECRET_ARN, "macie-chatops/not-there")
    world.click(REMEDIATE, FID, "U0ALICE")
    # THEN each outcome is counted with its category
    assert _clicks(capsys.readouterr().out) == [
        ("remediate", "refused", "unknown_finding"),
        ("none", "rejected", "bad_request"),
        ("none", "failed", "internal_error"),
        ("none", "failed", "secret_unavailable"),
    ]


def test_click_metrics_can_be_switched_off_like_powertools_metrics(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN POWERTOOLS_METRICS_DISABLED (the sandbox's CLI keeps stdout for its own output)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    capsys.readouterr()
    # WHEN clicks are handled, accepted and refused THEN no metric line is printed
    world.click(REMEDIATE, FID, "U0ALICE")
    world.invoke(_signed(_valid_body(world), secret="not-the-signing-secret"))
    assert emf_metrics(capsys.readouterr().out) == []


@pytest.mark.parametrize("action", [REMEDIATE, DISMISS, RESTORE])
def test_a_click_on_a_duplicate_says_which_finding_handles_its_object_version(world: World, action: str) -> None:
    # GIVEN a quarantined finding, and a duplicate of its object version (an old message of it, or a forged click)
    world.seed("first-1", state=State.QUARANTINED)
    world.seed("dup-1", state=State.DUPLICATE)
    world.store.append_audit(
        "dup-1", actor="finding-handler", event="duplicate", outcome="recorded", updates={"duplicate_of": "first-1"}
    )
    before = without_audit(world.records())
    # WHEN an approver clicks one of its buttons
    body = body_of(world.click(action, "dup-1", "U0ALICE"))
    # THEN the clicker is told where the version is handled, and in which state; nothing changes, nothing is queued
    assert body["text"] == "This object version is already handled under finding `first-1` (quarantined)."
    channel, ts = world.messages["dup-1"]
    assert [reply.text for reply in world.slack.ephemeral(channel) if reply.ts == ts] == [body["text"]]
    assert without_audit(world.records()) == before
    assert world.jobs() == []
    assert world.records()["dup-1"].audit[-1].detail == "finding is DUPLICATE"
