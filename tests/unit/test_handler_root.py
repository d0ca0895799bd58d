"""What the handlers' roots share: the container cache, the metrics and the partial batch loop (handlers/_root.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.handlers._root import (
    AwsTimeouts,
    ContainerCache,
    HandlerMetrics,
    Settings,
    SqsRecord,
    partial_batch_response,
)


class Builds:
    """A build function that counts its calls and returns a new value each time."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"{self.label}-{self.calls}"


def emf_documents(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_an_entry_is_built_once_per_key() -> None:
    # GIVEN a cache  WHEN the same key is asked for twice, and another key once
    cache, build = ContainerCache(), Builds("config")
    first, second = cache.get(("config", "a.json"), build), cache.get(("config", "a.json"), build)
    other = cache.get(("config", "b.json"), build)
    # THEN the first entry is built once and served again; the other key gets its own
    assert (first, second, other) == ("config-1", "config-1", "config-2")


def test_an_entry_older_than_its_max_age_is_built_again() -> None:
    cache, build = ContainerCache(), Builds("secret")
    assert cache.get("secret", build) == "secret-1"
    # WHEN asked with a max age it is still within  THEN the cached entry
    assert cache.get("secret", build, max_age_s=300.0) == "secret-1"
    # WHEN asked with a max age it is past  THEN built again, and the new entry is what is served from then on
    assert cache.get("secret", build, max_age_s=0.0) == "secret-2"
    assert cache.get("secret", build) == "secret-2"


def test_when_two_builds_race_the_first_stored_entry_wins() -> None:
    cache, inner = ContainerCache(), Builds("inner")

    def outer() -> str:
        # Another caller builds and stores the same key while this build is still running.
        cache.get("store", inner)
        return "outer"

    # WHEN the slower build finishes  THEN it gets the entry stored first, and so does everyone after
    assert cache.get("store", outer) == "inner-1"
    assert cache.get("store", inner) == "inner-1"


def test_forget_and_clear_drop_entries_but_not_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    cache, build = ContainerCache(), Builds("slack")
    settings = Settings("table", "secret", "", None, None, "http://127.0.0.1:1", "us-east-1")
    timeouts = AwsTimeouts(connect_s=1, read_s=1)
    client = cache.client("dynamodb", settings, timeouts)
    cache.get("slack", build)
    # WHEN an entry is forgotten  THEN it is built again
    cache.forget("slack")
    assert cache.get("slack", build) == "slack-2"
    # WHEN the cache is cleared  THEN every entry is built again, and the boto3 client is the same object
    cache.clear()
    assert cache.get("slack", build) == "slack-3"
    assert cache.client("dynamodb", settings, timeouts) is client


def test_a_count_is_one_emf_document_with_its_own_dimensions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    metrics = HandlerMetrics("macie-chatops-test")
    # WHEN two counts with different dimensions are made (one of them empty)
    metrics.count("Clicks", action="remediate", outcome="accepted", reason="")
    metrics.count("Clicks", action="dismiss", outcome="refused", reason="not_an_approver")
    # THEN two documents, each in the namespace with the service and its own dimensions ("none" for empty)
    first, second = emf_documents(capsys.readouterr().out)
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == names.METRICS_NAMESPACE
    assert first["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "Clicks", "Unit": "Count"}]
    assert {key: first[key] for key in ("service", "action", "outcome", "reason", "Clicks")} == {
        "service": "macie-chatops-test",
        "action": "remediate",
        "outcome": "accepted",
        "reason": "none",
        "Clicks": [1.0],
    }
    assert (second["action"], second["reason"]) == ("dismiss", "not_an_approver")


def test_published_values_share_one_document(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    # WHEN a sweep's counts are published
    HandlerMetrics("macie-chatops-sweeper").publish({"StuckApprovals": 0, "ApprovalsRequeued": 2})
    # THEN one document holds them all, 0 included, with the service dimension only
    (document,) = emf_documents(capsys.readouterr().out)
    assert (document["StuckApprovals"], document["ApprovalsRequeued"]) == ([0.0], [2.0])
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_disabled_metrics_print_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN metrics switched off as Powertools' are (the sandbox's default)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics = HandlerMetrics("macie-chatops-test")
    # WHEN counts and values are made  THEN nothing is printed
    metrics.count("Findings", action="review")
    metrics.publish({"SweepErrors": 1})
    assert capsys.readouterr().out == ""


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "2"},
                "messageAttributes": {"slack_deferrals": {"stringValue": "1", "dataType": "Number"}},
                "eventSourceARN": "arn:aws:sqs:us-east-1:210987654321:intake",
            }
            for n, body in enumerate(bodies)
        ]
    }


def test_only_the_records_that_raised_are_batch_item_failures() -> None:
    # GIVEN three records, the second of which its handler raises for
    seen: list[str] = []

    def handle(record: SqsRecord) -> str:
        seen.append(record.body)
        if record.body == "bad":
            raise RuntimeError("boom")
        return "done"

    # WHEN the batch runs
    answer = partial_batch_response(
        sqs_event("a", "bad", "c"), SqsRecord, handle, item_identifier=lambda r: r.message_id
    )
    # THEN every record was handled, in order, and only the second returns to the queue
    assert seen == ["a", "bad", "c"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def test_a_batch_where_every_record_failed_answers_all_of_them_without_raising() -> None:
    def handle(record: SqsRecord) -> str:
        raise ValueError(record.body)

    answer = partial_batch_response(sqs_event("a", "b"), SqsRecord, handle, item_identifier=lambda r: r.message_id)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}


@pytest.mark.parametrize("event", [{}, {"Records": "x"}, []])
def test_an_event_without_a_records_list_is_refused(event: Any) -> None:
    with pytest.raises(ValueError, match="no Records list"):
        partial_batch_response(event, SqsRecord, lambda r: "done", item_identifier=lambda r: r.message_id)


def test_an_sqs_record_reads_what_the_handlers_use() -> None:
    record = SqsRecord(sqs_event("{}")["Records"][0])
    assert (record.body, record.message_id, record.receive_count) == ("{}", "m-0", "2")
    assert record.message_attributes["slack_deferrals"]["stringValue"] == "1"
    assert record.event_source_arn == "arn:aws:sqs:us-east-1:210987654321:intake"
