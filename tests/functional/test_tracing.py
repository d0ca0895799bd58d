"""X-Ray tracing of the handlers (architecture §25): traced in Lambda, nothing of X-Ray loaded where tracing is off.

Each case runs in a fresh interpreter: the Tracer's configuration and its botocore patch are process-wide. The
traced case sends its segments to a UDP socket standing in for the X-Ray daemon (the SDK's own transport)."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLER_MODULES = (
    "digests",
    "intake",
    "interaction",
    "reconciler",
    "remediation",
    "reminders",
    "security_hub",
    "sweeper",
)
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

# A handler traced as "svc", invoked twice (the second fails), then what the process loaded.
PROBE = r"""
import json, sys
from macie_chatops.handlers._tracing import traced

class Context:
    function_name = "f"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:111122223333:function:f"
    memory_limit_in_mb = 128
    aws_request_id = "request"

@traced("svc")
def lambda_handler(event, context):
    if event.get("fail"):
        raise ValueError("refused on purpose")
    return {"answer": "secret-looking response"}

results = [lambda_handler({}, Context())]
try:
    lambda_handler({"fail": True}, Context())
except ValueError as exc:
    results.append(f"raised {exc}")
import botocore.client
print(json.dumps({
    "results": results,
    "xray_loaded": "aws_xray_sdk" in sys.modules,
    "botocore_patched": type(botocore.client.BaseClient._make_api_call).__name__ != "function",
}))
"""


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    """A UDP socket where the X-Ray SDK sends its segments (AWS_XRAY_DAEMON_ADDRESS)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    yield sock
    sock.close()


def _probe(env: dict[str, str]) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if k not in {"LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED"}}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _documents(sock: socket.socket) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    while True:
        try:
            datagram, _ = sock.recvfrom(65535)
        except TimeoutError:
            return documents
        header, body = datagram.decode().split("\n", 1)
        assert json.loads(header) == {"format": "json", "version": 1}
        documents.append(json.loads(body))


def test_in_lambda_every_invocation_is_a_subsegment_with_its_annotations(daemon: socket.socket) -> None:
    # GIVEN Lambda's environment with tracing on (an active trace, the daemon's address)
    env = {
        "LAMBDA_TASK_ROOT": "/var/task",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "_X_AMZN_TRACE_ID": TRACE_HEADER,
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "AWS_REGION": "eu-west-1",
    }
    # WHEN a traced handler is invoked twice, the second time failing
    result = _probe(env)
    # THEN it answered and raised as it would untraced, with botocore patched (AWS calls become subsegments)
    assert result["results"] == [{"answer": "secret-looking response"}, "raised refused on purpose"]
    assert result["xray_loaded"] and result["botocore_patched"]
    # AND each invocation sent its "## lambda_handler" subsegment of Lambda's trace, cold start only the first
    segments = [d for d in _documents(daemon) if d.get("name") == "## lambda_handler"]
    assert [s["annotations"] for s in segments] == [
        {"ColdStart": True, "Service": "svc"},
        {"ColdStart": False, "Service": "svc"},
    ]
    assert {s["trace_id"] for s in segments} == {"1-5759e988-bd862e3fe1be46a994272793"}
    # AND the response is not recorded; the failure is, with its exception
    assert "secret-looking response" not in json.dumps(segments)
    assert segments[1]["fault"] is True
    assert segments[1]["cause"]["exceptions"][0]["type"] == "ValueError"


@pytest.mark.parametrize(
    "env",
    [
        {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"},  # the sandbox's setting
        {},  # outside Lambda (tests, the CLI)
        {"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"},  # SAM's local emulator
    ],
    ids=["disabled", "outside-lambda", "sam-local"],
)
def test_where_tracing_is_off_nothing_of_xray_is_loaded(env: dict[str, str], daemon: socket.socket) -> None:
    # WHEN a traced handler is invoked twice there
    result = _probe({**env, "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}"})
    # THEN it answers and raises as untraced, X-Ray's SDK never imported, botocore unpatched, nothing sent
    assert result["results"] == [{"answer": "secret-looking response"}, "raised refused on purpose"]
    assert result == {**result, "xray_loaded": False, "botocore_patched": False}
    assert _documents(daemon) == []


@pytest.mark.parametrize("module_name", HANDLER_MODULES)
def test_every_handler_is_traced(module_name: str) -> None:
    # GIVEN each Lambda entry point  THEN it is the traced wrapper around the handler of that module
    module = importlib.import_module(f"macie_chatops.handlers.{module_name}")
    handler = module.lambda_handler
    assert Path(handler.__code__.co_filename).name == "_tracing.py"
    assert handler.__wrapped__.__module__ == module.__name__
