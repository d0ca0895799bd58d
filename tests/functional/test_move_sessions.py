"""Cross-account sessions: regional STS, SourceIdentity, session names, caching, AccessDenied."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macie_chatops.sessions import (
    AssumeRoleDeniedError,
    MemberSessions,
    role_arn,
    session_name,
    source_identity,
)
from macie_chatops_sandbox.testkit.world import shared_session
from tests.conftest import AwsSandbox
from tests.functional.move_world import (
    MEMBER_A,
    MEMBER_B,
    REGION,
    ROLE_NAME,
    build_move_world,
    iam_enforced,
    remediator_user,
)

STS_SOURCE_IDENTITY = re.compile(r"^[A-Za-z0-9_.,+=@-]{2,64}$")
STS_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)


# --- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", ["U0ALICE", "W0ENTERPRISE1", "auto"])
def test_slack_ids_and_auto_pass_through(actor: str) -> None:
    assert source_identity(actor) == actor


def test_other_actors_are_escaped_injectively() -> None:
    assert source_identity("cli:alice") == "cli=3Aalice"
    assert source_identity("a=b") == "a=3Db"
    assert source_identity("x") == "x="
    assert source_identity("ü") == "=C3=BC"
    assert source_identity("cli:alice") != source_identity("cli_alice")


@given(st.text(min_size=1, max_size=200))
def test_source_identity_is_always_valid_for_sts(actor: str) -> None:
    value = source_identity(actor)
    assert STS_SOURCE_IDENTITY.match(value), value
    assert not value.lower().startswith("aws:")


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_source_identity_never_maps_two_short_actors_together(first: str, second: str) -> None:
    if first != second and len(source_identity(first)) < 64 and len(source_identity(second)) < 64:
        assert source_identity(first) != source_identity(second)


def test_long_actor_is_cut_with_a_hash() -> None:
    value = source_identity("ü" * 40)
    assert len(value) <= 64 and STS_SOURCE_IDENTITY.match(value)
    assert value != source_identity("ü" * 41)


@given(st.from_regex(r"[A-Za-z0-9_.-]{1,128}", fullmatch=True))
def test_session_names_carry_the_finding_id_and_stay_valid(finding_id: str) -> None:
    name = session_name(finding_id)
    assert STS_SESSION_NAME.match(name), name
    if len("macie-chatops-" + finding_id) <= 64:
        assert name == "macie-chatops-" + finding_id
    else:
        assert name.startswith("macie-chatops-" + finding_id[:20])


def test_role_arn() -> None:
    assert role_arn(MEMBER_A, ROLE_NAME) == f"arn:aws:iam::{MEMBER_A}:role/{ROLE_NAME}"


# --- endpoints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_sts_is_called_in_the_findings_region(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    # GIVEN no endpoint override (real AWS)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    import boto3

    sessions = MemberSessions(role_name=ROLE_NAME, base_session=boto3.Session())
    # THEN the STS client for a finding in `region` uses that region's endpoint
    assert sessions.sts_client(region).meta.endpoint_url == f"https://sts.{region}.amazonaws.com"


# --- on moto -----------------------------------------------------------------------------------------------


class RecordingSts:
    """Wraps a real STS client and records the AssumeRole parameters (moto accepts but ignores SourceIdentity)."""

    def __init__(self, region: str) -> None:
        self.client = shared_session(region).client("sts", region_name=region)
        self.calls: list[dict[str, Any]] = []
        self.client.meta.events.register("provide-client-params.sts.AssumeRole", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))


def test_clients_act_as_the_member_role_with_approver_and_finding(aws: AwsSandbox) -> None:
    # GIVEN a remediator with its own STS client per region
    stss: dict[str, RecordingSts] = {}

    def factory(region: str) -> Any:
        stss[region] = RecordingSts(region)
        return stss[region].client

    sessions = MemberSessions(role_name=ROLE_NAME, base_session=shared_session(), sts_client_factory=factory)
    # WHEN clients for a member account are asked for on behalf of an approver and a finding
    clients = sessions.clients(MEMBER_A, "eu-west-1", actor="U0ALICE", finding_id="f-123")
    # THEN STS was called in the finding's region with the approver as SourceIdentity and the finding id
    assert list(stss) == ["eu-west-1"]
    (call,) = stss["eu-west-1"].calls
    assert call["RoleArn"] == f"arn:aws:iam::{MEMBER_A}:role/{ROLE_NAME}"
    assert call["SourceIdentity"] == "U0ALICE"
    assert call["RoleSessionName"] == "macie-chatops-f-123"
    # AND the clients act in the member account, in that region
    identity = clients.client("sts").get_caller_identity()
    assert identity["Account"] == MEMBER_A
    assert identity["Arn"].endswith(f"assumed-role/{ROLE_NAME}/macie-chatops-f-123")
    assert clients.s3.meta.region_name == "eu-west-1"
    assert clients.kms.meta.region_name == "eu-west-1"
    assert clients.kms.list_keys()["Keys"] == []


def test_sessions_are_cached_until_shortly_before_expiry(aws: AwsSandbox) -> None:
    # GIVEN a controllable clock
    now = [datetime.now(UTC)]
    sessions = MemberSessions(role_name=ROLE_NAME, base_session=shared_session(), clock=lambda: now[0])
    first = sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id="f1")
    # WHEN the same account, region, approver and finding ask again
    again = sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id="f1")
    # THEN the cached session is reused (one AssumeRole)
    assert again is first and sessions.assume_role_calls == 1
    # AND a different approver, finding, region or account gets a session of its own
    sessions.clients(MEMBER_A, REGION, actor="U0CAROL", finding_id="f1")
    sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id="f2")
    sessions.clients(MEMBER_A, "eu-west-1", actor="U0ALICE", finding_id="f1")
    sessions.clients(MEMBER_B, REGION, actor="U0ALICE", finding_id="f1")
    assert sessions.assume_role_calls == 5
    # AND close to expiry (inside the refresh margin) the session is renewed
    now[0] = first.expires_at - timedelta(minutes=19)
    renewed = sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id="f1")
    assert renewed is not first and sessions.assume_role_calls == 6


def test_access_denied_on_assume_role_names_the_account_and_role(aws: AwsSandbox) -> None:
    # GIVEN a remediator whose own policy does not let it into member B (moto's IAM enforcement decides)
    world = build_move_world(aws, members=())
    user = remediator_user(
        aws,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "sts:AssumeRole",
                    "Resource": f"arn:aws:iam::{MEMBER_B}:role/{ROLE_NAME}",
                },
            ],
        },
    )
    assert world.quarantine_keys == {}
    sessions = MemberSessions(role_name=ROLE_NAME, base_session=user.session())
    with iam_enforced(aws):
        # WHEN it assumes the roles
        allowed = sessions.clients(MEMBER_A, REGION, actor="U0ALICE", finding_id="f1")
        with pytest.raises(AssumeRoleDeniedError) as denied:
            sessions.clients(MEMBER_B, REGION, actor="U0ALICE", finding_id="f1")
    # THEN member A works, and member B fails clearly, naming the account and the role
    assert allowed.account_id == MEMBER_A
    assert denied.value.account_id == MEMBER_B
    assert denied.value.role_arn == f"arn:aws:iam::{MEMBER_B}:role/{ROLE_NAME}"
    assert MEMBER_B in str(denied.value) and ROLE_NAME in str(denied.value)
