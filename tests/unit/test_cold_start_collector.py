"""The garbage collector's pause during a Lambda cold start (handlers/_tracing.py, docs/architecture.md §6), checked
in fresh interpreters: the collector's state is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IN_LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "macie-chatops-test"}

# A traced handler invoked twice (the first call ``first``: "return" or "raise"), with the collector's state seen
# after the handlers package loaded, inside each invocation and after each.
PROBE = r"""
import gc, json, sys
states = {"loaded": [gc.isenabled(), gc.get_freeze_count()]}
import macie_chatops.handlers
from macie_chatops.handlers._tracing import traced
states["package"] = [gc.isenabled(), gc.get_freeze_count()]

@traced("svc")
def lambda_handler(event, context):
    states.setdefault("inside", []).append([gc.isenabled(), gc.get_freeze_count()])
    if event == "raise":
        raise ValueError("refused on purpose")
    return "answered"

for event in (sys.argv[1], "return"):
    try:
        lambda_handler(event, None)
    except ValueError:
        pass
    states.setdefault("after", []).append([gc.isenabled(), gc.get_freeze_count()])
    garbage = [[] for _ in range(100)]  # objects built after the first invocation: a second freeze would take them
print(json.dumps(states))
"""


def probe(first: str, env: dict[str, str], *, prelude: str = "") -> dict[str, Any]:
    clean = {name: value for name, value in os.environ.items() if name != "AWS_LAMBDA_FUNCTION_NAME"}
    result = subprocess.run(
        [sys.executable, "-c", prelude + PROBE, first],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    states: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return states


def test_in_lambda_the_collector_is_paused_from_the_package_until_the_first_invocation_returns() -> None:
    # GIVEN Lambda's environment WHEN the handlers package loads and a traced handler is invoked twice, both returning
    states = probe("return", IN_LAMBDA)
    # THEN collection stops when the package loads and stays off through the first invocation
    assert states["loaded"] == [True, 0]
    assert states["package"] == [False, 0]
    assert states["inside"][0] == [False, 0]
    # AND after it the collector is on again, with what the cold start built frozen (never walked again)
    enabled, frozen = states["after"][0]
    assert enabled is True and frozen > 1000
    # AND the second invocation runs with the collector on and freezes nothing more
    assert states["inside"][1] == [True, frozen]
    assert states["after"][1] == [True, frozen]


def test_in_lambda_a_first_invocation_that_raises_ends_the_pause_too() -> None:
    # GIVEN Lambda's environment WHEN the first invocation raises
    states = probe("raise", IN_LAMBDA)
    # THEN it ran paused, and after it the collector is on again with the cold start frozen, as after a return
    assert states["inside"][0] == [False, 0]
    enabled, frozen = states["after"][0]
    assert enabled is True and frozen > 1000
    assert states["after"][1] == [True, frozen]


def test_outside_lambda_the_collector_is_left_as_python_has_it() -> None:
    # GIVEN no Lambda environment (the sandbox, the CLI, the tests) WHEN the package loads and a handler is invoked
    states = probe("return", {})
    # THEN collection is never paused and nothing is frozen
    assert states["package"] == [True, 0]
    assert states["inside"] == [[True, 0], [True, 0]]
    assert states["after"] == [[True, 0], [True, 0]]


def test_in_lambda_a_collector_already_off_stays_off() -> None:
    # GIVEN Lambda's environment and a collector someone else turned off before the package loads
    states = probe("return", IN_LAMBDA, prelude="import gc; gc.disable()\n")
    # WHEN a handler is invoked THEN the cold start's end neither turns it on nor freezes anything: it was not ours
    assert states["package"] == [False, 0]
    assert states["after"] == [[False, 0], [False, 0]]


# A real handler's first invocation, in Lambda's environment without the stack's variables (nothing reaches AWS): the
# interaction endpoint answers 503 (it cannot read its signing secret), the sweeper raises.
REAL_HANDLER = r"""
import gc, json, sys
from macie_chatops_sandbox.testkit.interaction import context
from macie_chatops.handlers import interaction, sweeper
handler = {"interaction": interaction, "sweeper": sweeper}[sys.argv[1]].lambda_handler
paused = not gc.isenabled()
try:
    outcome = handler({}, context())["statusCode"]
except RuntimeError as exc:
    outcome = "raised"
print(json.dumps([paused, outcome, gc.isenabled(), gc.get_freeze_count() > 1000]))
"""


def real_handler(module: str) -> list[Any]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("MACIE_CHATOPS_")}
    result = subprocess.run(
        [sys.executable, "-c", REAL_HANDLER, module],
        cwd=ROOT,
        env={**clean, **IN_LAMBDA, "POWERTOOLS_METRICS_DISABLED": "true"},
        capture_output=True,
        text=True,
        check=True,
    )
    outcome: list[Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def test_a_real_handler_in_lambda_ends_the_pause_after_its_first_answer() -> None:
    # GIVEN the interaction handler loaded in Lambda's environment (boto3 loads with it, under the pause)
    # WHEN its first request is answered (503: no signing secret to verify it with)
    paused, status, enabled, frozen = real_handler("interaction")
    # THEN it loaded paused, answered, and the collector is on again with the cold start frozen
    assert (paused, status, enabled, frozen) == (True, 503, True, True)


def test_a_real_handler_in_lambda_that_raises_ends_the_pause() -> None:
    # GIVEN the sweeper loaded in Lambda's environment without its state table's environment
    # WHEN its first invocation raises
    paused, outcome, enabled, frozen = real_handler("sweeper")
    # THEN the collector is on again with the cold start frozen
    assert (paused, outcome, enabled, frozen) == (True, "raised", True, True)
