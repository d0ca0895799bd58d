"""The e2e layer: the whole pipeline in the sandbox, driven over real HTTP.

One sandbox per module (``sandbox`` fixture, module scope): it takes ~3 s to start, and the tests of a
module use findings with their own ids and keys, so they share it safely. Modules that need other
settings (the Slack rate limit, a longer retry budget) override ``sandbox_settings``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

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


# The CLI tests' group window: a group closes (and the sandbox is idle) 2 s after its last member, not 60 s.
SHORT_GROUP_WINDOW_S = 2


@pytest.fixture(scope="session")
def short_window_config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """accounts.yaml with a group window of 2 s instead of 60, for the CLI's own sandbox (``sandbox replay
    --config``): the replay waits until nothing is left to do, a group's close included, so the default window made
    each replay wait a minute for nothing it prints. What the window does is the flood tests' (tests/functional/
    test_floods.py with a fake clock; test_floods.py here)."""
    document = yaml.safe_load((ROOT / "accounts.yaml").read_text(encoding="utf-8"))
    document["slack"]["group_window_seconds"] = SHORT_GROUP_WINDOW_S
    file = tmp_path_factory.mktemp("config") / "accounts.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return file
