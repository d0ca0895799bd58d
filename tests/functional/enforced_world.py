"""A moto server of its own, whose IAM enforcement applies session policies (``moto_session_policy``).

The server listens on its own port for the test module; moto's backends and its enforcement switch are the
process's, so each test starts from a reset state, is set up with the unauthenticated test credentials, and
switches enforcement on itself (``enforced``) once its principals exist; the fixture switches it off again.
The remediator is an IAM user of the security account that may assume any role; the member remediation role
trusts anyone (moto checks trust policies, which are not what these tests are about).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from macie_chatops.sessions import MemberSessions
from macie_chatops_sandbox import moto_session_policy
from tests.conftest import SANDBOX_REGION, AwsSandbox
from tests.functional.move_world import (
    ROLE_NAME,
    MoveWorld,
    _reset_auth,
    build_move_world,
    member_role,
    remediator_user,
)

EVERYTHING: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# The member role's own policy in these tests: S3 and KMS, as moto evaluates it (no conditions: moto's evaluation
# denies an Allow statement whose condition it cannot read).
MEMBER_ROLE: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"}],
}


@pytest.fixture(scope="module")
def enforced_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    moto_session_policy.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        moto_session_policy.uninstall()


@pytest.fixture
def enforced_aws(enforced_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsSandbox]:
    """A clean state on the module's server, boto3 pointed at it; enforcement off when the test ends."""
    request = urllib.request.Request(f"{enforced_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    for name, value in {
        "AWS_ENDPOINT_URL": enforced_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": SANDBOX_REGION,
        "AWS_REGION": SANDBOX_REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield AwsSandbox(endpoint=enforced_endpoint)
    finally:
        _reset_auth(enforced_endpoint, "inf")


@contextmanager
def enforced(aws: AwsSandbox) -> Iterator[None]:
    """IAM enforcement on inside the block."""
    _reset_auth(aws.endpoint, "0")
    try:
        yield
    finally:
        _reset_auth(aws.endpoint, "inf")


def member_world(aws: AwsSandbox, account: str, role_policy: dict[str, Any] = MEMBER_ROLE) -> MoveWorld:
    """A member account with its quarantine bucket and remediation role (``role_policy``)."""
    world = build_move_world(aws, (account,))
    member_role(world, account, role_policy)
    return world


def remediator_sessions(aws: AwsSandbox) -> MemberSessions:
    """The remediator's MemberSessions, as an IAM user allowed everything (the member role is what is limited)."""
    user = remediator_user(aws, EVERYTHING)
    return MemberSessions(role_name=ROLE_NAME, base_session=user.session())
