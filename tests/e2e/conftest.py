"""The e2e layer: the whole pipeline in the sandbox, driven over real HTTP.

One sandbox per module (``sandbox`` fixture, module scope): it takes ~3 s to start, and the tests of a
module use findings with their own ids and keys, so they share it safely. Modules that need other
settings (the Slack rate limit, a longer retry budget) override ``sandbox_settings``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from macie_chatops.config import Config, load_config
from macie_chatops_sandbox.provision import QueueSettings
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def config() -> Config:
    return without_grouping(load_config(ROOT / "accounts.yaml"))


def without_grouping(config: Config) -> Config:
    """``config`` with slack.group_window_seconds 0: the modules written before groups follow findings one message
    each; test_floods.py (its own sandbox fixture) turns grouping on (docs/architecture.md §22)."""
    return config.model_copy(update={"slack": config.slack.model_copy(update={"group_window_seconds": 0})})


@pytest.fixture(scope="module")
def sandbox_settings() -> SandboxSettings:
    # Short SQS timings so a retried message comes back within a test; Slack's posting limit off, so
    # findings in one channel do not queue behind each other (test_slack_faults.py keeps the limit on).
    return SandboxSettings(
        queues=QueueSettings(visibility_timeout_s=2, max_receive_count=5),
        slack_post_limit=None,
        log_level="WARNING",
    )


@pytest.fixture(scope="module")
def sandbox(config: Config, sandbox_settings: SandboxSettings) -> Iterator[Sandbox]:
    with Sandbox(without_grouping(config), sandbox_settings) as running:
        yield running
