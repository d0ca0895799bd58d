"""The first click of a container restored from a SnapStart snapshot (docs/architecture.md §6): the real handler in a
fresh interpreter with the runtime's SnapStart variables, its before-snapshot and after-restore hooks run as the
runtime runs them, then a signed click against the session's moto server and the Slack stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops.states import State
from macie_chatops_sandbox.slack_standin import SlackStandIn
from tests.conftest import AwsSandbox
from tests.functional.interaction_world import World, click_in_fresh_interpreter, deployed_interaction_world

FID = "6a1b2c3d4e5f60718293a4b5c6d70003"
SNAPSTART_INIT = {
    "AWS_LAMBDA_FUNCTION_NAME": names.INTERACTION_FUNCTION_NAME,
    "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
}

# The hooks as awslambdaric runs them (before the snapshot: last registered first; after the restore: in order), then
# the click on stdin; prints the answer's body, then our modules the click loaded, whether the collector is on after it,
# and what was frozen before and after it.
RESTORED_CLICK = """
import gc, json, sys
from macie_chatops_sandbox.testkit.interaction import context
from macie_chatops.handlers.interaction import lambda_handler
import snapshot_restore_py
before_snapshot = snapshot_restore_py.get_before_snapshot()
while before_snapshot:
    func, args, kwargs = before_snapshot.pop()
    func(*args, **kwargs)
for func, args, kwargs in snapshot_restore_py.get_after_restore():
    func(*args, **kwargs)
restored = set(sys.modules)
frozen = gc.get_freeze_count()
response = lambda_handler(json.load(sys.stdin), context())
print(response["body"])
ours = sorted(name for name in set(sys.modules) - restored if name.startswith("macie_chatops"))
print(json.dumps([ours, gc.isenabled(), frozen, gc.get_freeze_count()]))
"""


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with deployed_interaction_world(slack, tmp_path, monkeypatch, FID) as built:
        yield built


def test_a_restored_containers_first_click_is_answered_as_before_and_loads_none_of_our_modules(world: World) -> None:
    # GIVEN a pending finding and a signed Remediate click by an approver, and a container primed before its snapshot
    event = world.click_event(names.ACTION_REMEDIATE, FID, "U0ALICE")
    # WHEN the restored container takes the click
    body, (loaded, enabled, frozen_by_the_prime, frozen_after) = click_in_fresh_interpreter(
        RESTORED_CLICK, event, env=SNAPSTART_INIT
    )
    # THEN the click is applied as without SnapStart (its message replaced) and the finding is approved
    assert body.get("replace_original") is True, body
    record = world.store.get(FID)
    assert record is not None and record.state is State.APPROVED, record
    # AND the prime had loaded every module of ours the click needed, and had already ended the collector's pause:
    # the click froze nothing more (a frozen object it freed leaves the permanent generation)
    assert loaded == []
    assert enabled is True and frozen_by_the_prime > 50_000
    assert frozen_after <= frozen_by_the_prime, (frozen_by_the_prime, frozen_after)
