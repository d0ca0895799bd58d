"""Who may click: listed users, members of listed user groups (cached), nobody else; what late clickers hear."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from macie_chatops.config import Team
from macie_chatops.interaction import (
    ApproverDirectory,
    Authorisation,
    DirectoryError,
    WebhookResponder,
    authorise,
    ephemeral,
    replacement,
    what_happened,
)
from macie_chatops.states import Failure, State
from macie_chatops.store import AuditEntry, FindingRecord

PAYMENTS = Team(channel="C0PAYMENTS", approvers=("U0ALICE", "S0SECOPS"))
TWO_GROUPS = Team(channel="C0PAYMENTS", approvers=("S0BROKEN", "S0SECOPS"))


class Groups:
    """A group directory for unit tests: counts lookups, can be told to fail for one group."""

    def __init__(self, groups: dict[str, set[str]], failing: set[str] | None = None) -> None:
        self.groups = groups
        self.failing = failing or set()
        self.calls: Counter[str] = Counter()

    def __call__(self, group_id: str) -> frozenset[str]:
        self.calls[group_id] += 1
        if group_id in self.failing:
            raise ConnectionError("slack unreachable")
        return frozenset(self.groups.get(group_id, ()))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_listed_user_is_an_approver_without_asking_slack() -> None:
    groups = Groups({"S0SECOPS": {"U0BOB"}})
    assert authorise("U0ALICE", PAYMENTS, ApproverDirectory(groups)) == Authorisation(True, "user")
    assert groups.calls == Counter()


def test_group_member_is_an_approver_via_the_group() -> None:
    groups = Groups({"S0SECOPS": {"U0BOB"}})
    assert authorise("U0BOB", PAYMENTS, ApproverDirectory(groups)) == Authorisation(True, "S0SECOPS")


@pytest.mark.parametrize("user", ["U0MALLORY", "S0SECOPS", "u0alice", "U0ALICE ", ""])
def test_anyone_else_is_not(user: str) -> None:
    groups = Groups({"S0SECOPS": {"U0BOB"}})
    assert authorise(user, PAYMENTS, ApproverDirectory(groups)).allowed is False


def test_group_lookups_are_cached_for_the_ttl_then_refreshed() -> None:
    # GIVEN a directory with a 60 s TTL on a controllable clock
    groups, clock = Groups({"S0SECOPS": {"U0BOB"}}), Clock()
    directory = ApproverDirectory(groups, ttl=60, clock=clock)
    # WHEN two clicks arrive within the TTL
    authorise("U0BOB", PAYMENTS, directory)
    authorise("U0MALLORY", PAYMENTS, directory)
    # THEN Slack was asked once
    assert groups.calls["S0SECOPS"] == 1
    # WHEN the membership changes and the TTL passes
    groups.groups["S0SECOPS"] = {"U0MALLORY"}
    clock.now += 60
    # THEN the next click sees the new membership
    assert authorise("U0MALLORY", PAYMENTS, directory).allowed is True
    assert authorise("U0BOB", PAYMENTS, directory).allowed is False
    assert groups.calls["S0SECOPS"] == 2


def test_concurrent_cache_misses_ask_slack_once() -> None:
    # GIVEN a slow group lookup and ten clicks by group members arriving together on a cold cache
    release = threading.Event()
    groups = Groups({"S0SECOPS": {"U0BOB"}})

    def slow(group_id: str) -> frozenset[str]:
        release.wait(timeout=10)
        return groups(group_id)

    directory = ApproverDirectory(slow)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(authorise("U0BOB", PAYMENTS, directory).allowed))
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    # THEN all ten are approvers, and Slack was asked once
    assert results == [True] * 10
    assert groups.calls["S0SECOPS"] == 1


def test_a_failed_lookup_is_not_cached_and_raises() -> None:
    groups = Groups({"S0SECOPS": {"U0BOB"}}, failing={"S0SECOPS"})
    directory = ApproverDirectory(groups)
    with pytest.raises(DirectoryError, match="S0SECOPS"):
        authorise("U0BOB", PAYMENTS, directory)
    groups.failing.clear()
    assert authorise("U0BOB", PAYMENTS, directory).allowed is True


def test_another_group_can_still_grant_when_one_fails() -> None:
    groups = Groups({"S0SECOPS": {"U0BOB"}}, failing={"S0BROKEN"})
    assert authorise("U0BOB", TWO_GROUPS, ApproverDirectory(groups)) == Authorisation(True, "S0SECOPS")


def test_a_failed_group_with_no_other_grant_refuses_rather_than_denies() -> None:
    # "not an approver" would be a guess: the failing group might hold the user
    groups = Groups({"S0SECOPS": set()}, failing={"S0BROKEN"})
    with pytest.raises(DirectoryError):
        authorise("U0BOB", TWO_GROUPS, ApproverDirectory(groups))


def _record(
    state: State, audit: tuple[AuditEntry, ...], approver: str | None = None, outcome: str | None = None
) -> FindingRecord:
    return FindingRecord(
        finding_id="f-1",
        state=state,
        received_at="2024-05-01T10:00:00.000000Z",
        updated_at="2024-05-01T10:05:00.000000Z",
        approver=approver,
        outcome=outcome,
        audit=audit,
    )


APPROVED_BY_ALICE = AuditEntry("2024-05-01T10:05:00.000000Z", "U0ALICE", "click:remediate", "APPROVED")


@pytest.mark.parametrize(
    ("state", "audit", "approver", "says"),
    [
        (
            State.APPROVED,
            (APPROVED_BY_ALICE,),
            "U0ALICE",
            ["already approved by <@U0ALICE>", "2024-05-01 10:05:00 UTC"],
        ),
        (
            State.DISMISSED,
            (AuditEntry("2024-05-01T10:06:00Z", "U0BOB", "click:dismiss", "DISMISSED"),),
            None,
            ["dismissed by <@U0BOB>"],
        ),
        (State.QUARANTINED, (APPROVED_BY_ALICE,), "U0ALICE", ["already quarantined", "<@U0ALICE>"]),
        (State.BLOCKED, (), "U0ALICE", ["blocked"]),
        (State.FAILED, (), "U0ALICE", ["failed", "will not be retried automatically"]),
        (
            State.RESTORE_REQUESTED,
            (AuditEntry("2024-05-02T00:00:00Z", "U0BOB", "click:restore", "RESTORE_REQUESTED"),),
            None,
            ["restore", "<@U0BOB>"],
        ),
        (State.RESTORED, (AuditEntry("2024-05-02T00:00:00Z", "U0BOB", "x", "RESTORED"),), None, ["restored"]),
        (State.PENDING_APPROVAL, (), None, ["nothing to restore"]),
        (State.NOTIFIED, (), None, ["not awaiting approval", "notified"]),
        (
            State.APPROVED,
            (AuditEntry("2024-05-01T10:05:00Z", "auto", "received", "APPROVED"),),
            "auto",
            ["automatically"],
        ),
    ],
)
def test_late_clickers_are_told_what_happened_by_whom_when(
    state: State, audit: tuple[AuditEntry, ...], approver: str | None, says: list[str]
) -> None:
    text = what_happened(_record(state, audit, approver))
    for words in says:
        assert words in text


@pytest.mark.parametrize(
    ("outcome", "retried"),
    [
        (Failure.RETRYING.value, True),
        (Failure.ROLE_DENIED.value, False),
        (Failure.PERMANENT.value, False),
        (None, False),  # a record written before the failure codes: permanent, as the remediator reads it
        ("something-else", False),
    ],
)
def test_a_failed_quarantine_is_said_to_be_retried_only_when_the_remediator_retries_it(
    outcome: str | None, retried: bool
) -> None:
    # GIVEN a FAILED finding whose outcome the remediator recorded WHEN a late clicker is told what happened
    text = what_happened(_record(State.FAILED, (), "U0ALICE", outcome))
    # THEN the text follows the recorded truth
    assert ("will be retried automatically" in text) is retried
    assert ("will not be retried automatically" in text) is not retried


def test_what_happened_escapes_odd_actors() -> None:
    entry = AuditEntry("not a time", "<!channel> & co", "x", "DISMISSED")
    text = what_happened(_record(State.DISMISSED, (entry,)))
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; co" in text and "not a time" in text


def test_response_shapes() -> None:
    assert ephemeral("hi") == {"response_type": "ephemeral", "replace_original": False, "text": "hi"}
    assert replacement({"text": "t", "blocks": [{"type": "divider"}]}) == {
        "replace_original": True,
        "text": "t",
        "blocks": [{"type": "divider"}],
    }


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/actions/T0EXAMPLE/1/abc", True),
        ("https://hooks.slack-gov.com/actions/T0EXAMPLE/1/abc", True),
        ("http://hooks.slack.com/actions/T0EXAMPLE/1/abc", False),  # not https
        ("https://hooks.slack.com.evil.example/actions/x", False),  # suffix trick
        ("https://hooks.slack.com@evil.example/actions/x", False),  # userinfo trick
        ("https://evil.example/https://hooks.slack.com/", False),
        ("https://hooks.slack.com/actions/x\r\nHost: evil", False),
        ("", False),
    ],
)
def test_answers_go_only_to_slack_hooks(url: str, allowed: bool) -> None:
    assert WebhookResponder().allows(url) is allowed


def test_the_sandbox_allows_only_its_stand_in() -> None:
    responder = WebhookResponder(("http://127.0.0.1:8123",))
    assert responder.allows("http://127.0.0.1:8123/actions/T0EXAMPLE/x")
    assert not responder.allows("http://127.0.0.1:81234/actions/T0EXAMPLE/x")
    assert not responder.allows("https://hooks.slack.com/actions/T0EXAMPLE/1/abc")
