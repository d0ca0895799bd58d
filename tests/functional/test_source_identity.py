"""SourceIdentity is required by the member remediation role's trust policy (docs/architecture.md §19).

moto does not evaluate a role's trust policy on AssumeRole (not even under IAM enforcement, which checks the
caller's own policies only): the first test pins that, so the day moto starts to, it fails and the refusal can be
proved on moto itself. Until then the trust condition is asserted on the template
(tests/functional/infra/test_member_stacks.py), and here every remediator path (a click's move, ``auto``, a
restore, a policy finding's fix and its Undo) runs behind a gate that stands in for the condition: an AssumeRole
of the remediation role without SourceIdentity is refused with AccessDenied, as STS would refuse it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from macie_chatops import names
from macie_chatops.public_access import SETTINGS
from macie_chatops.states import State
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import shared_session
from tests.conftest import AwsSandbox
from tests.functional.move_world import MEMBER_A, ROLE_NAME, build_move_world, iam_enforced, remediator_user
from tests.functional.remediator_world import RemediatorWorld, job, remediator_world
from tests.functional.test_policy_findings import (
    BPA_DISABLED,
    PUBLIC,
    World,
    _clear_caches,
    _world,
    event,
    finding_id_of,
    policy_config,
)

REQUIRED_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Condition": {"Null": {"sts:SourceIdentity": "false"}},
        }
    ],
}


class TrustGate:
    """Every AssumeRole of a member remediation role made in this process: its SourceIdentity (None: not set)."""

    def __init__(self) -> None:
        self.identities: list[str | None] = []


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> TrustGate:
    seen = TrustGate()
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if operation_name == "AssumeRole" and str(api_params.get("RoleArn", "")).endswith(f":role/{ROLE_NAME}"):
            identity = api_params.get("SourceIdentity")
            seen.identities.append(identity)
            if not identity:
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": "trust policy: sts:SourceIdentity is required"}},
                    operation_name,
                )
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    return seen


@pytest.fixture
def objects(aws: AwsSandbox, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemediatorWorld]:
    with remediator_world(aws, slack, tmp_path, monkeypatch) as built:
        yield built


@pytest.fixture
def policies(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    config = policy_config(
        {"Policy:IAMUser/S3BucketPublic": "review", "Policy:IAMUser/S3BlockPublicAccessDisabled": "auto"}
    )
    built = _world(aws, slack, tmp_path, monkeypatch, config)
    _clear_caches()
    try:
        yield built
    finally:
        _clear_caches()


def test_moto_does_not_evaluate_the_trust_condition(aws: AwsSandbox) -> None:
    # GIVEN a member role whose trust policy requires SourceIdentity, and a caller allowed everything
    moves = build_move_world(aws)
    iam = moves.client("iam", MEMBER_A)
    iam.create_role(RoleName="source-identity-probe", AssumeRolePolicyDocument=json.dumps(REQUIRED_TRUST))
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    sts = remediator_user(aws, allow_all).session().client("sts", region_name=aws.region)
    arn = f"arn:aws:iam::{MEMBER_A}:role/source-identity-probe"
    # WHEN it assumes the role without SourceIdentity, under moto's IAM enforcement
    with iam_enforced(aws):
        issued = sts.assume_role(RoleArn=arn, RoleSessionName="no-identity")
    # THEN moto issues credentials: it does not evaluate trust policies, so the refusal STS makes cannot be shown
    # here (if this fails, moto has started to: replace it with the refusal itself)
    assert issued["Credentials"]["AccessKeyId"]


def test_a_moves_session_carries_its_approver_or_auto(objects: RemediatorWorld, gate: TrustGate) -> None:
    # GIVEN a finding approved by a person and one approved by the policy (auto)
    clicked = objects.seed("f-clicked", approver="U0ALICE")
    automatic = objects.seed("f-auto", key="exports/other.csv", approver="auto")
    # WHEN the remediator moves both behind the SourceIdentity gate
    assert objects.invoke(job("quarantine", clicked.finding_id), job("quarantine", automatic.finding_id)) == []
    # THEN both are quarantined, each session stamped with who approved it
    assert objects.record(clicked.finding_id).state is State.QUARANTINED
    assert objects.record(automatic.finding_id).state is State.QUARANTINED
    assert sorted(i or "" for i in gate.identities) == ["U0ALICE", "auto"]


def test_a_restores_session_carries_its_requester(objects: RemediatorWorld, gate: TrustGate) -> None:
    seeded = objects.seed("f-restore")
    assert objects.invoke(job("quarantine", seeded.finding_id)) == []
    objects.request_restore(seeded.finding_id, by="U0BOB")
    # WHEN the restore runs behind the gate
    assert objects.invoke(job("restore", seeded.finding_id, by="U0BOB")) == []
    # THEN it is restored, its session stamped with the requester
    assert objects.record(seeded.finding_id).state is State.RESTORED
    assert gate.identities == ["U0ALICE", "U0BOB"]


def test_a_policy_fix_and_its_undo_carry_their_approvers(policies: World, gate: TrustGate) -> None:
    finding_id = finding_id_of(PUBLIC)
    policies.configure(None)
    policies.deliver(event(PUBLIC))
    # WHEN an approver blocks public access and another undoes it, behind the gate
    policies.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    policies.run_jobs()
    policies.click(names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS, finding_id, user_id="U0BOB")
    policies.run_jobs()
    # THEN both ran, each session stamped with its approver
    assert policies.record(finding_id).state is State.UNDONE
    assert gate.identities == ["U0ALICE", "U0BOB"]


def test_an_auto_policy_fix_carries_auto(policies: World, gate: TrustGate) -> None:
    finding_id = finding_id_of(BPA_DISABLED)
    policies.configure(dict.fromkeys(SETTINGS, False))
    policies.deliver(event(BPA_DISABLED))
    policies.run_jobs()
    assert policies.record(finding_id).state is State.PUBLIC_ACCESS_BLOCKED
    assert gate.identities == ["auto"]


def test_the_gate_refuses_an_assume_role_without_source_identity(objects: RemediatorWorld, gate: TrustGate) -> None:
    # GIVEN the gate (the trust condition's stand-in): it really refuses, so the tests above prove something
    client = shared_session().client("sts", region_name=objects.moves.aws.region)
    with pytest.raises(ClientError) as caught:
        client.assume_role(RoleArn=f"arn:aws:iam::{MEMBER_A}:role/{ROLE_NAME}", RoleSessionName="no-identity")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert gate.identities == [None]
