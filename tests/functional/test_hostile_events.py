"""Hostile and mutated Macie events through the real finding handler (moto + the Slack stand-in).

For every input, whatever it is: no exception escapes the handler, nothing returns to the queue (so nothing
can reach the intake DLQ), and there is exactly one outcome: a record in a final state under the finding id
(else ``event:<event id>``), or, for input without any usable id, one counted ``RejectedWithoutId``; and the
record's action is the one ``decide`` gives the same bytes (issue 12, "Show").
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macie_chatops import names
from macie_chatops.config import Action, Config, load_config
from macie_chatops.decision import Decision, decide
from macie_chatops.finding import Finding, parse_event, read_event
from macie_chatops.handlers import intake as handler
from macie_chatops.intake import auto_job_due, intake_complete, record_id_of
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore
from macie_chatops_sandbox.slack_standin import RateLimit, SlackStandIn
from macie_chatops_sandbox.testkit.world import (
    LambdaContext,
    SqsDelivery,
    create_remediation_queue,
    emf_metrics,
    invoke_batch,
    provision_handler,
)
from tests.conftest import EVENTS_DIR, ROOT, AwsSandbox

TABLE = "hostile-events-findings"
CONFIG = load_config(ROOT / "accounts.yaml")
FIXTURES = sorted(p.name for p in EVENTS_DIR.glob("*.json"))


class Delivery(SqsDelivery):
    queue_name = names.INTAKE_QUEUE_NAME
    sender_id = "AIDAEVENTBRIDGE"


@dataclass
class HostileWorld:
    store: FindingStore
    config: Config
    capsys: pytest.CaptureFixture[str]

    def outcome(self, body: str) -> tuple[Decision, FindingRecord | None]:
        """Hand ``body`` to the real handler; check the properties every input must have; return what
        ``decide`` said of the same bytes and the record (None: a counted rejection without any id)."""
        self.capsys.readouterr()  # only this delivery's metrics below
        context = LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60)
        # THEN no exception escapes, and the message is not returned to the queue (nothing can reach the DLQ)
        assert invoke_batch(handler.lambda_handler, (Delivery(body),), context) == []
        parsed = parse_event(body.encode("utf-8", "surrogatepass"))
        decision = decide(parsed, self.config)
        counted = [m for m in emf_metrics(self.capsys.readouterr().out) if m["name"] == "RejectedWithoutId"]
        record_id = record_id_of(parse_event(body))
        if record_id is None:
            # AND without any id: exactly one counted rejection, and decide rejects the same bytes
            assert len(counted) == 1
            assert decision.action is Action.REJECT
            return decision, None
        # AND with one: no count, a record in a final state, with decide's action (and reason, when rejected)
        assert counted == []
        record = self.store.get(record_id)
        assert record is not None, f"no record for {record_id}"
        # (an auto approval counts: its job was sent, though a later delivery would send it again, §5)
        assert intake_complete(record) or auto_job_due(record), record.state
        assert record.action is decision.action, (record.action, decision)
        if decision.action is Action.REJECT:
            assert record.state is State.REJECTED
            assert record.reason == decision.reason
        return decision, record


@pytest.fixture
def team_slack() -> Iterator[SlackStandIn]:
    """The Slack stand-in with every team channel of accounts.yaml (posts are not what is tested here)."""
    standin = SlackStandIn(
        team_id=CONFIG.slack.team_id,
        channels=sorted({team.channel for team in CONFIG.teams.values()}),
        post_limit=RateLimit(per_second=1000.0, burst=1000),
    )
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def hostile(
    aws: AwsSandbox,
    team_slack: SlackStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[HostileWorld]:
    slack = team_slack
    queue_url = create_remediation_queue(aws.region)
    resources = provision_handler(
        config=CONFIG,
        config_dir=tmp_path,
        table=TABLE,
        slack=slack,
        setenv=monkeypatch.setenv,
        queue_url=queue_url,
        region=aws.region,
    )
    handler.clear_caches()
    try:
        yield HostileWorld(resources.store, CONFIG, capsys)
    finally:
        handler.clear_caches()


# -- every fixture, the hostile ones included -------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_has_exactly_one_outcome_and_decides_action(hostile: HostileWorld, name: str) -> None:
    # GIVEN a fixture's bytes, as the intake queue would carry them (SQS bodies are text: bytes that are not
    # UTF-8 arrive replaced, and are rejected either way)
    body = (EVENTS_DIR / name).read_bytes().decode("utf-8", errors="replace")
    # WHEN the handler gets it THEN the properties hold (HostileWorld.outcome)
    hostile.outcome(body)


def test_issue_12_regressions_through_the_handler(hostile: HostileWorld) -> None:
    def body(name: str) -> str:
        return (EVENTS_DIR / name).read_text(encoding="utf-8", errors="replace")

    # item 1: 5,000 nested brackets: acknowledged and counted, not five deliveries into the DLQ
    assert hostile.outcome(body("hostile-deep-nesting.json"))[1] is None
    # item 2: a 41-digit size: REJECTED with the reason, not an Inexact DynamoDB error
    record = hostile.outcome(body("hostile-size-41-digits.json"))[1]
    assert record is not None and record.state is State.REJECTED and "s3Object.size" in record.reason
    # item 8: an invalid bucket name is REJECTED, never posted for approval; a BOM event is reviewed like decide
    record = hostile.outcome(body("hostile-bucket-name.json"))[1]
    assert record is not None and record.state is State.REJECTED and record.slack_ts is None
    decision, record = hostile.outcome(body("hostile-bom.json"))
    assert decision.action is Action.REVIEW and record is not None and record.state is State.PENDING_APPROVAL
    # a hostile finding id is not a key: the rejection is recorded under the event id
    decision, record = hostile.outcome(body("hostile-finding-id.json"))
    assert record is not None and record.finding_id.startswith("event:")


# -- generated and mutated events ------------------------------------------------------------------------------

_BASES = [
    event
    for event in (read_event((EVENTS_DIR / name).read_bytes()) for name in FIXTURES)
    if isinstance(event, dict) and isinstance(event.get("detail"), dict)
]
_unique = itertools.count()


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**45), max_value=10**45),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "us-east-1\n",
            "345678901234\n",
            "\u0663" * 12,
            "a\x00b",
            "a\nb",
            "a\ud800b",
            "<!here>*b*",
            "x" * 3000,
            "é" * 600,
            "invoice\u202egpj.exe",
            "SensitiveData:S3Object/Personal",
            "High",
            "Policy:IAMUser/S3BucketPublic",
        ]
    ),
    st.builds(_deep, st.integers(min_value=1, max_value=60)),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, member in value.items():
            yield from _paths(member, (*path, key))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            yield from _paths(member, (*path, index))


def _fresh(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its own event id, finding id and object version: each example is a new finding."""
    event = copy.deepcopy(event)
    n = next(_unique)
    event["id"] = str(uuid.UUID(int=n))
    detail = event["detail"]
    if isinstance(detail.get("id"), str):
        detail["id"] = f"{n:032x}"
    resources = detail.get("resourcesAffected")
    s3_object = resources.get("s3Object") if isinstance(resources, dict) else None
    if isinstance(s3_object, dict):
        if s3_object.get("versionId"):
            s3_object["versionId"] = f"v{n}"
        s3_object["eTag"] = f"{n:032x}"
    return event


@st.composite
def mutated_bodies(draw: st.DrawFn) -> str:
    event = _fresh(draw(st.sampled_from(_BASES)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(list(_paths(event))[1:]))
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        operation = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if operation == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif operation == "add" and isinstance(parent, dict):
            name = draw(st.text(max_size=8))
            if name != "id":
                parent[name] = draw(HOSTILE_VALUES)
        else:
            value = draw(HOSTILE_VALUES)
            if path[-1] == "id":  # a replaced id must not name an earlier example's finding
                value = f"{value}{next(_unique)}" if isinstance(value, str) else value
            parent[path[-1]] = value
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    form = draw(st.sampled_from(["plain", "plain", "bom", "truncated", "wrapped"]))
    if form == "bom":
        text = "\ufeff" + text
    elif form == "truncated":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif form == "wrapped":
        depth = draw(st.integers(min_value=1, max_value=3000))
        text = "[" * depth + text + "]" * depth
    return text


def test_generated_and_mutated_events_have_exactly_one_outcome_and_decides_action(hostile: HostileWorld) -> None:
    seen: dict[str, int] = {}

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(body=mutated_bodies())
    def one(body: str) -> None:
        # WHEN a generated or mutated event arrives THEN exactly one outcome, decide's action (HostileWorld)
        _, record = hostile.outcome(body)
        kind = "counted" if record is None else record.state.value
        seen[kind] = seen.get(kind, 0) + 1
        parsed = parse_event(body)
        if isinstance(parsed, Finding):
            assert record is not None and record.finding_id == parsed.id

    one()
    # AND the generator reached valid findings, recorded rejections and counted ones alike
    assert seen.get("REJECTED", 0) > 0 and seen.get("counted", 0) > 0
    assert sum(n for kind, n in seen.items() if kind not in {"REJECTED", "counted"}) > 0, seen
