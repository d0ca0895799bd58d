"""The operations dashboard (issue 17 item 5; architecture §25): every custom metric it graphs is one a handler
really publishes, with that metric's exact dimensions; every watched queue is on it."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from infra.central.dashboard import FINDINGS_PER_STATE, MOVE_LATENCY_STATISTICS, SLACK_RATE_LIMITS
from macie_chatops import names
from tests.functional.infra.conftest import ROOT, Synthesized, resources_of_type

RUNTIME = ROOT / "runtime" / "macie_chatops"


def _published() -> set[tuple[str, frozenset[str]]]:
    """(metric, dimensions) of every ``.count(...)`` and ``.seconds(...)`` call in the runtime, read from the
    source: a metric name as a string or a ``names`` constant (qualified or imported), its dimensions as
    keywords."""
    found = set()
    for path in RUNTIME.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in {"count", "seconds"} or not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                metric = first.value
            elif isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "names":
                metric = getattr(names, first.attr)
            elif isinstance(first, ast.Name) and hasattr(names, first.id):  # imported from names
                metric = getattr(names, first.id)
            else:
                continue
            found.add((metric, frozenset(k.arg for k in node.keywords if k.arg is not None)))
    return found


def _body(example: Synthesized) -> dict[str, Any]:
    dashboards = resources_of_type(example.central_json, "AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1
    properties = next(iter(dashboards.values()))["Properties"]
    assert properties["DashboardName"] == names.DASHBOARD_NAME
    parts = properties["DashboardBody"]["Fn::Join"][1]
    # Tokens (queue names, the API's name, the region) become readable placeholders.
    text = "".join(p if isinstance(p, str) else f"<{json.dumps(p, sort_keys=True)}>".replace('"', "'") for p in parts)
    body: dict[str, Any] = json.loads(text)
    return body


def _metric_rows(body: dict[str, Any]) -> list[list[Any]]:
    return [row for widget in body["widgets"] for row in widget.get("properties", {}).get("metrics", [])]


def test_every_searched_metric_is_published_by_a_handler_with_those_dimensions(example: Synthesized) -> None:
    published = _published()
    expressions = [row[0]["expression"] for row in _metric_rows(_body(example)) if isinstance(row[0], dict)]
    # THEN each searched metric (findings per state, Slack's 429s) is on the dashboard
    for searched in (*FINDINGS_PER_STATE, *SLACK_RATE_LIMITS):
        assert searched.expression() in expressions
        # AND a handler publishes exactly that metric with exactly those dimensions (service is HandlerMetrics')
        assert (searched.metric, frozenset(searched.dimensions)) in published, searched
    # AND the search expressions name the namespace, every dimension and the metric
    assert "SEARCH('{MacieChatOps,action,finding_type,service} MetricName=\"Findings\"', 'Sum', 300)" in expressions


def test_move_latency_is_the_remediators_published_seconds_of_quarantine_moves(example: Synthesized) -> None:
    # GIVEN the remediator's JobSeconds, published by result
    assert (names.JOB_SECONDS_METRIC, frozenset({"result"})) in _published()
    rows = [row for row in _metric_rows(_body(example)) if names.JOB_SECONDS_METRIC in row]
    # THEN graphed at each statistic for the moves into quarantine
    assert [row[-1]["stat"] for row in rows] == list(MOVE_LATENCY_STATISTICS)
    for row in rows:
        namespace, metric, *dimensions, options = row
        assert (namespace, metric) == (names.METRICS_NAMESPACE, names.JOB_SECONDS_METRIC)
        assert dict(zip(dimensions[::2], dimensions[1::2], strict=True)) == {
            "service": names.REMEDIATOR_FUNCTION_NAME,
            "result": "quarantined",
        }
        assert options["stat"] in MOVE_LATENCY_STATISTICS


def test_every_watched_queue_is_graphed(example: Synthesized) -> None:
    template = example.central_json
    rows = _metric_rows(_body(example))
    # GIVEN every queue alarmed on (dead letters: message count; work queues: oldest message age)
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm").values()

    def alarmed(metric: str) -> set[str]:
        return {
            d["Value"]["Fn::GetAtt"][0]
            for a in alarms
            if a["Properties"].get("MetricName") == metric and a["Properties"].get("Namespace") == "AWS/SQS"
            for d in a["Properties"]["Dimensions"]
        }

    def graphed(metric: str) -> set[str]:
        return {
            json.loads(row[3][1:-1].replace("'", '"'))["Fn::GetAtt"][0]
            for row in rows
            if row[:3] == ["AWS/SQS", metric, "QueueName"]
        }

    dead_letters = alarmed("ApproximateNumberOfMessagesVisible")
    work = alarmed("ApproximateAgeOfOldestMessage")
    assert len(dead_letters) >= 3 and len(work) >= 2
    # THEN each is on the dashboard with the same metric
    assert graphed("ApproximateNumberOfMessagesVisible") == dead_letters
    assert graphed("ApproximateAgeOfOldestMessage") == work


def test_the_slack_endpoint_is_graphed(example: Synthesized) -> None:
    rows = _metric_rows(_body(example))
    api_metrics = {row[1] for row in rows if row[0] == "AWS/ApiGateway"}
    assert api_metrics == {"Count", "4XXError", "5XXError", "Latency"}


def test_the_dashboard_module_names_no_metric_the_runtime_lacks() -> None:
    # A guard on this test's own reading: the runtime publishes the dashboard's metrics through these calls
    sources = "\n".join(p.read_text(encoding="utf-8") for p in Path(RUNTIME).rglob("*.py"))
    assert "SLACK_RATE_LIMITED_METRIC" in sources and "JOB_SECONDS_METRIC" in sources
