"""Lambda SnapStart's hooks for the interaction handler (handlers/_snapstart.py, docs/architecture.md §6), checked in
fresh interpreters with the environment the runtime gives a SnapStart init, and the runtime's own hook library
(snapshot-restore-py, a test dependency: the managed runtimes carry it, the layer does not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import load_config
from macie_chatops.handlers import _snapstart
from macie_chatops.handlers._root import ContainerCache, Settings
from macie_chatops.handlers._snapstart import CLICK_MODULES, reseed_random

ROOT = Path(__file__).resolve().parents[2]
SNAPSTART_INIT = {
    "AWS_LAMBDA_FUNCTION_NAME": names.INTERACTION_FUNCTION_NAME,
    "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
}

# The handler imported as the runtime imports it, then what the runtime registered; with "prime", the before-snapshot
# hooks run as the runtime runs them (last registered first), counting what must not happen before a snapshot.
PROBE = r"""
import gc, json, socket, sys
import botocore.session
counts = {"sessions": 0, "clients": 0, "connects": 0}
session_init, create_client = botocore.session.Session.__init__, botocore.session.Session.create_client
def counting_init(self, *args, **kwargs):
    counts["sessions"] += 1
    session_init(self, *args, **kwargs)
def counting_create_client(self, *args, **kwargs):
    counts["clients"] += 1
    return create_client(self, *args, **kwargs)
def no_connect(*args, **kwargs):
    counts["connects"] += 1
    raise OSError("no network before a snapshot")
botocore.session.Session.__init__ = counting_init
botocore.session.Session.create_client = counting_create_client
socket.socket.connect = no_connect
socket.create_connection = no_connect
MODULES = json.loads(sys.argv[1])
from macie_chatops.handlers import interaction
out = {"loaded_before": [m for m in MODULES if m in sys.modules]}
try:
    import snapshot_restore_py
except ImportError:
    out["registered"] = None
else:
    out["registered"] = [len(snapshot_restore_py.get_before_snapshot()), len(snapshot_restore_py.get_after_restore())]
    if "prime" in sys.argv[2:]:
        hooks = snapshot_restore_py.get_before_snapshot()
        while hooks:
            func, args, kwargs = hooks.pop()
            func(*args, **kwargs)
        out["loaded_after"] = [m for m in MODULES if m in sys.modules]
        out["collector"] = [gc.isenabled(), gc.get_freeze_count()]
        out["config_cached"] = any(key[0] == "config" for key in interaction._cache._entries)
        out["secret_cached"] = any(key[0] == "secrets" for key in interaction._cache._entries)
out["counts"] = counts
print(json.dumps(out))
"""


@pytest.fixture
def lambda_env(tmp_path: Path) -> dict[str, str]:
    """The interaction function's environment as the stack sets it, its bundled config written as the app writes it;
    no credentials and no endpoint: nothing may reach AWS."""
    config_path = tmp_path / "config.json"
    config_path.write_text(load_config(str(ROOT / "accounts.yaml")).to_json(), encoding="utf-8")
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MACIE_CHATOPS_", "AWS_")) and name not in (names.ENV_STATE_TABLE,)
    }
    return {
        **clean,
        names.ENV_STATE_TABLE: "macie-chatops-state",
        names.ENV_SLACK_SECRET_ARN: "arn:aws:secretsmanager:eu-west-1:210987654321:secret:macie-chatops/slack",
        names.ENV_REMEDIATION_QUEUE_URL: "https://sqs.eu-west-1.amazonaws.com/210987654321/macie-chatops-remediation",
        names.ENV_CONFIG_PATH: str(config_path),
        "AWS_REGION": "eu-west-1",
        # no credentials anywhere: not the instance metadata's, not a profile's
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


def probe(env: dict[str, str], *, prime: bool = False, prelude: str = "") -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", prelude + PROBE, json.dumps(list(CLICK_MODULES)), *(["prime"] if prime else [])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def test_a_snapstart_init_registers_the_prime_and_the_reseed(lambda_env: dict[str, str]) -> None:
    # GIVEN the runtime's environment during a SnapStart init WHEN the handler module is imported
    out = probe({**lambda_env, **SNAPSTART_INIT})
    # THEN one before-snapshot hook and one after-restore hook are registered, and the import alone loads none of
    # the click's modules (the handler stays lazy: the hook, not the import, does the loading)
    assert out["registered"] == [1, 1]
    assert out["loaded_before"] == []


def test_an_on_demand_init_registers_nothing(lambda_env: dict[str, str]) -> None:
    # GIVEN Lambda's environment without SnapStart (an on-demand init) WHEN the handler module is imported
    out = probe({**lambda_env, **SNAPSTART_INIT, "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"})
    # THEN no hook is registered: the first click loads what it needs, as before
    assert out["registered"] == [0, 0]


def test_the_prime_loads_a_first_clicks_modules_and_config_and_nothing_that_holds_credentials(
    lambda_env: dict[str, str],
) -> None:
    # GIVEN the handler imported in a SnapStart init WHEN the runtime runs the before-snapshot hooks
    out = probe({**lambda_env, **SNAPSTART_INIT}, prime=True)
    # THEN the click's modules are loaded and the bundled config is in the handler's container cache
    assert out["loaded_after"] == list(CLICK_MODULES)
    assert out["config_cached"] is True
    # AND no botocore session or client was built, no connection attempted, no secret read
    assert out["counts"] == {"sessions": 0, "clients": 0, "connects": 0}
    assert out["secret_cached"] is False
    # AND the cold start's collector pause is over: collecting again, what the init built frozen into the snapshot
    enabled, frozen = out["collector"]
    assert enabled is True and frozen > 50_000


def test_a_prime_that_cannot_read_the_config_fails_the_init(lambda_env: dict[str, str], tmp_path: Path) -> None:
    # GIVEN a SnapStart init whose bundled config is missing
    env = {**lambda_env, **SNAPSTART_INIT, names.ENV_CONFIG_PATH: str(tmp_path / "missing.json")}
    # WHEN the runtime runs the before-snapshot hook THEN it raises: the runtime reports an init error and the version
    # is not published (a snapshot of a container that cannot read its config would fail every click)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(CLICK_MODULES)), "prime"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "missing.json" in result.stderr


def test_without_the_runtimes_library_the_handler_imports_and_answers_as_before(lambda_env: dict[str, str]) -> None:
    # GIVEN a SnapStart init on a runtime without snapshot_restore_py WHEN the handler is imported and invoked
    without_library = "import sys; sys.modules['snapshot_restore_py'] = None\n"
    invoke = (
        "from macie_chatops_sandbox.testkit.interaction import context\n"
        "from macie_chatops.handlers.interaction import lambda_handler\n"
        "print(json.dumps({'status': lambda_handler({}, context())['statusCode']}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + without_library + invoke],
        cwd=ROOT,
        env={**lambda_env, **SNAPSTART_INIT},
        capture_output=True,
        text=True,
    )
    # THEN it imports, and its first request is answered as without SnapStart: 503, it cannot read its signing secret
    # here (no credentials; a real click after the prime: tests/functional/test_snapstart_click.py)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": 503}


def test_each_restore_draws_its_own_random_sequence() -> None:
    # GIVEN the random module's state as a snapshot holds it
    import random

    saved = random.getstate()
    try:
        # WHEN two containers are restored from it, each running the after-restore hook
        draws = []
        for _ in range(2):
            random.setstate(saved)
            reseed_random()
            draws.append([random.random() for _ in range(4)])
        random.setstate(saved)
        unseeded = [random.random() for _ in range(4)]
    finally:
        random.setstate(saved)
    # THEN their draws differ from each other and from the snapshot's own sequence
    assert draws[0] != draws[1]
    assert unseeded not in draws


def test_a_prime_whose_made_up_click_is_refused_fails_the_init(
    lambda_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the prime's made-up click no longer reading as one of our buttons (the payload models changed under it)

    monkeypatch.setenv(names.ENV_CONFIG_PATH, lambda_env[names.ENV_CONFIG_PATH])
    payload = {**_snapstart.PRIME_CLICK_PAYLOAD, "actions": [{"action_id": "someone.else", "type": "button"}]}
    monkeypatch.setattr(_snapstart, "PRIME_CLICK_PAYLOAD", payload)
    settings = Settings(
        table="macie-chatops-state",
        secret_id="macie-chatops/slack",
        queue_url="",
        config_path=lambda_env[names.ENV_CONFIG_PATH],
        slack_api_url=None,
        aws_endpoint_url=None,
        region="eu-west-1",
    )
    # WHEN the prime runs THEN it raises (the runtime reports an init error: the version is not published)
    with pytest.raises(RuntimeError, match="made-up click was refused"):
        _snapstart.prime_click(ContainerCache(), settings)
