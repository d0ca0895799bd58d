"""The interaction endpoint's world for its functional tests: ``macie_chatops_sandbox.testkit.interaction`` with
accounts.yaml, the review finding of tests/events/personal-review.json, and the handler's caches cleared after
each test."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.summary import FindingSummary
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit import world as shared
from macie_chatops_sandbox.testkit.interaction import (
    ANALYTICS_CHANNEL,
    PAYMENTS_CHANNEL,
    SECOPS_GROUP,
    SECOPS_MEMBERS,
    TEAM_ID,
    World,
    build_world,
    without_audit,
)
from macie_chatops_sandbox.testkit.world import SIGNING_SECRET
from tests.conftest import ROOT, load_event

__all__ = [  # for the endpoint's tests
    "ANALYTICS_CHANNEL",
    "PAYMENTS_CHANNEL",
    "SECOPS_MEMBERS",
    "SIGNING_SECRET",
    "TEAM_ID",
    "World",
    "without_audit",
]


@functools.cache
def example_config() -> Config:
    return load_config(ROOT / "accounts.yaml")


@functools.cache
def review_summary() -> FindingSummary:
    return shared.review_summary(example_config(), load_event("personal-review"))


@contextmanager
def interaction_world(
    slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *seeded: str
) -> Iterator[World]:
    """The world for the handler's tests: S0SECOPS's members in the stand-in, the AWS read timeout raised,
    ``seeded`` findings pending approval; the handler's caches cleared afterwards."""
    from macie_chatops.handlers import interaction as handler

    slack.set_usergroup(SECOPS_GROUP, SECOPS_MEMBERS)
    # moto runs in this process and shares its GIL with the handler's threads: on a loaded CI machine one
    # call can take longer than the 2 s that suit AWS, and a timeout is not what these tests are about.
    monkeypatch.setattr(handler, "AWS_READ_TIMEOUT_S", 20.0)
    built = build_world(
        config=example_config(),
        summary=review_summary(),
        config_dir=tmp_path,
        setenv=monkeypatch.setenv,
        slack=slack,
    )
    for finding_id in seeded:
        built.seed(finding_id)
    try:
        yield built
    finally:
        handler.clear_caches()


@contextmanager
def deployed_interaction_world(
    slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *seeded: str
) -> Iterator[World]:
    """:func:`interaction_world` with the queues a deployed handler has (§22): groups on (the digest queue: a click's
    answer asks whether the message has become a digest) and the bulk continuations' queue (a single finding's click
    never sends on it)."""
    with interaction_world(slack, tmp_path, monkeypatch, *seeded) as built:
        digests = built.sqs.create_queue(QueueName=names.DIGEST_QUEUE_NAME)["QueueUrl"]
        monkeypatch.setenv(names.ENV_DIGEST_QUEUE_URL, digests)
        continuations = built.sqs.create_queue(QueueName=names.BULK_CONTINUATION_QUEUE_NAME)["QueueUrl"]
        monkeypatch.setenv(names.ENV_BULK_CONTINUATION_QUEUE_URL, continuations)
        yield built


def click_in_fresh_interpreter(
    script: str, event: Mapping[str, Any], *args: str, env: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], Any]:
    """Run ``script`` (a container taking one click: the event on stdin, the answer's body printed, then one JSON line
    of what it observed) in a fresh interpreter with ``args`` and the environment plus ``env``; the body and that
    line, parsed."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        input=json.dumps(event),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return json.loads(out[-2]), json.loads(out[-1])
