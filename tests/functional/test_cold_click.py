"""A cold interaction container's first click loads only what a single finding's click needs (docs/architecture.md
§6): the real handler in a fresh interpreter, against the session's moto server and the Slack stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops_sandbox.slack_standin import SlackStandIn
from tests.conftest import AwsSandbox
from tests.functional.interaction_world import World, click_in_fresh_interpreter, deployed_interaction_world

FID = "6a1b2c3d4e5f60718293a4b5c6d70002"

# The click's event on stdin; prints the answer's body, then which of the modules named after it were loaded.
FIRST_CLICK = """
import json, sys
from macie_chatops_sandbox.testkit.interaction import context
from macie_chatops.handlers.interaction import lambda_handler
response = lambda_handler(json.load(sys.stdin), context())
print(response["body"])
print(json.dumps([name for name in sys.argv[1:] if name in sys.modules]))
"""


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with deployed_interaction_world(slack, tmp_path, monkeypatch, FID) as built:
        yield built


def test_a_cold_first_remediate_click_loads_neither_the_forms_nor_the_groups_module(world: World) -> None:
    # GIVEN a pending finding and a signed Remediate click by an approver, in a fresh interpreter (a cold container)
    event = world.click_event(names.ACTION_REMEDIATE, FID, "U0ALICE")
    # WHEN the handler takes it
    body, modules = click_in_fresh_interpreter(
        FIRST_CLICK,
        event,
        "macie_chatops.bulk",
        "macie_chatops.dismissal",
        "macie_chatops.store",
        "macie_chatops.group_store",
    )
    # THEN the click is applied (its message replaced), the store and the groups were loaded (groups on), and neither
    # the forms' module nor the groups' clicks' module was
    assert body.get("replace_original") is True, body
    assert modules == ["macie_chatops.store", "macie_chatops.group_store"]


def test_a_cold_first_remediate_click_builds_no_bulk_continuation(world: World) -> None:
    # GIVEN a pending finding and a signed Remediate click, the continuation queue set, in a fresh interpreter
    event = world.click_event(names.ACTION_REMEDIATE, FID, "U0ALICE")
    # WHEN the handler takes it
    body, modules = click_in_fresh_interpreter(
        FIRST_CLICK, event, "macie_chatops.bulk_continuation", "macie_chatops.digest_messages"
    )
    # THEN the click is applied, and the continuations (their module, its model and the digest's messages) were not
    # built: only a bulk click that sends one builds them (docs/architecture.md §6)
    assert body.get("replace_original") is True, body
    assert modules == []


def test_a_cold_first_remediate_click_builds_no_exemption_store(world: World) -> None:
    # GIVEN a pending finding and a signed Remediate click, in a fresh interpreter
    event = world.click_event(names.ACTION_REMEDIATE, FID, "U0ALICE")
    # WHEN the handler takes it
    body, modules = click_in_fresh_interpreter(
        FIRST_CLICK, event, "macie_chatops.exemption_store", "macie_chatops.exemptions"
    )
    # THEN the click is applied, and the exemptions' store and model were not loaded: only a dismissal's submission
    # records an exemption, and builds the store then (docs/architecture.md §6)
    assert body.get("replace_original") is True, body
    assert modules == []


# As FIRST_CLICK, with the collector's state printed after the package loaded and after the answer.
FIRST_CLICK_COLLECTOR = """
import gc, json, sys
from macie_chatops_sandbox.testkit.interaction import context
from macie_chatops.handlers.interaction import lambda_handler
paused = not gc.isenabled()
response = lambda_handler(json.load(sys.stdin), context())
print(response["body"])
print(json.dumps([paused, gc.isenabled(), gc.get_freeze_count()]))
"""


def test_a_cold_first_click_in_lambda_runs_with_the_collector_paused_then_freezes_the_cold_start(world: World) -> None:
    # GIVEN a pending finding and a signed Remediate click, in a fresh interpreter with Lambda's environment
    event = world.click_event(names.ACTION_REMEDIATE, FID, "U0ALICE")
    # WHEN the handler takes it
    body, (paused, enabled, frozen) = click_in_fresh_interpreter(
        FIRST_CLICK_COLLECTOR, event, env={"AWS_LAMBDA_FUNCTION_NAME": names.INTERACTION_FUNCTION_NAME}
    )
    # THEN the click is applied as without the pause; the handler loaded with the collector paused, and after the
    # answer it collects again, what the cold start built (boto3, the models, the first click's objects) frozen
    assert body.get("replace_original") is True, body
    assert paused is True and enabled is True
    assert frozen > 50_000
