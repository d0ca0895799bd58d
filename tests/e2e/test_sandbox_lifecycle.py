"""The sandbox starts clean and stops clean: ports closed, threads joined, temp dir gone, environment back."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops_sandbox.sandbox import Sandbox


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError:
        return False  # something answered
    except OSError:
        return True
    return False


def test_a_stopped_sandbox_leaves_nothing_behind(config: Config) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    env_before = dict(os.environ)
    sandbox = Sandbox(config)
    # GIVEN a running sandbox
    with sandbox:
        # AND a second one in the same process is refused (moto state and env are process-wide)
        with pytest.raises(RuntimeError, match="another sandbox"):
            Sandbox(config).start()
        urls = [sandbox.interaction_url, sandbox.slack.base_url, sandbox.aws_endpoint + "/moto-api/"]
        config_file = Path(os.environ[names.ENV_CONFIG_PATH])
        assert config_file.exists()
        assert os.environ[names.ENV_AWS_ENDPOINT_URL] == sandbox.aws_endpoint
    # WHEN it has stopped
    # THEN its ports refuse connections, its temp dir is gone and the environment is as it was
    assert all(_refused(url) for url in urls)
    assert not config_file.parent.exists()
    assert dict(os.environ) == env_before
    # AND every thread it started has ended
    leftovers = [t.name for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    assert leftovers == []
    # AND a new sandbox can start in the same process
    with Sandbox(config) as again:
        assert again.record("nothing-here") is None
