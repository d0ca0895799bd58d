"""Fixtures shared by every test layer: the event files in tests/events/, one moto server on loopback for the
session with a clean state per test (``aws``, boto3 pointed at it by the environment), and the Slack stand-in.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "tests" / "events"
SANDBOX_REGION = "us-east-1"
INFRA_TESTS = "tests/functional/infra/"


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: without xdist installed, never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` (``make test``), with the CDK tests as one unit: each test module runs on one worker, so
    its module-scoped sandbox or moto world starts once, and every test of tests/functional/infra runs on the same
    worker, so each synthesized variant (session-scoped, many seconds of jsii each) is built once, not once per
    worker. (xdist's ``loadgroup`` would say the same with marks, but it cannot rename pytest 9's node ids.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModulesWithInfraAsOne(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return INFRA_TESTS if module.startswith(INFRA_TESTS) else module

    return ModulesWithInfraAsOne(config, log)


@pytest.fixture(scope="session")
def events_dir() -> Path:
    return EVENTS_DIR


def load_event(name: str) -> dict[str, Any]:
    """One fixture from tests/events/ by file name (with or without .json)."""
    file = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from macie_chatops_sandbox import moto_conditional_copy

    moto_conditional_copy.install()  # S3 CopyObject's If-None-Match, as real S3 checks it (the mover relies on it)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        moto_conditional_copy.uninstall()


@dataclass(frozen=True)
class AwsSandbox:
    endpoint: str
    region: str = SANDBOX_REGION

    def session(self, account_id: str, region: str | None = None) -> Any:
        """A boto3 session whose calls moto attributes to ``account_id``."""
        import boto3

        sts = boto3.client("sts", region_name=region or self.region, endpoint_url=self.endpoint)
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/macie-chatops-test", RoleSessionName="test")[
            "Credentials"
        ]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region or self.region,
        )


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AwsSandbox:
    """A clean moto server state, and boto3 (any client, any account) pointed at it."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", SANDBOX_REGION)
    monkeypatch.setenv("AWS_REGION", SANDBOX_REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return AwsSandbox(endpoint=moto_endpoint)


@pytest.fixture
def slack() -> Iterator[Any]:
    """The Slack Web API stand-in with the example workspace (accounts.yaml), started on loopback.

    Team T0EXAMPLE, bot token "xoxb-test-token", channels C0PAYMENTS and C0ANALYTIC (bot a member), user
    group S0SECOPS = {U0BOB}. Rate limits are generous so tests never wait; tests about 429s build their
    own stand-in with a ManualClock or use ``fail_next(..., status=429)``.
    """
    from macie_chatops_sandbox.slack_standin import RateLimit, SlackStandIn

    standin = SlackStandIn(
        team_id="T0EXAMPLE",
        bot_token="xoxb-test-token",
        channels=("C0PAYMENTS", "C0ANALYTIC"),
        usergroups={"S0SECOPS": ("U0BOB",)},
        users=("U0ALICE", "U0BOB", "U0CAROL"),
        post_limit=RateLimit(per_second=100.0, burst=50),
        update_limit=RateLimit(per_second=100.0, burst=50),
    )
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
