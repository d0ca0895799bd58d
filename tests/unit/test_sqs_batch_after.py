"""The partial batch loop's ``after_batch`` (handlers/_root.run_sqs_batch): what it returns fails too, once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.handlers._root import SqsRecord, run_sqs_batch
from macie_chatops_sandbox.testkit.world import LambdaContext


def _event(*message_ids: str) -> dict[str, Any]:
    return {
        "Records": [{"messageId": m, "body": m, "eventSourceARN": "arn:aws:sqs:us-east-1:1:q"} for m in message_ids]
    }


def test_the_records_after_batch_returns_fail_after_every_record_is_handled() -> None:
    # GIVEN a batch of three whose record "a" raises, and an after_batch that fails "a" (again) and "c"
    handled: list[str] = []

    def handle(record: SqsRecord) -> str:
        handled.append(record.message_id)
        if record.message_id == "a":
            raise RuntimeError("a fails")
        return "done"

    def after_batch() -> list[str]:
        handled.append("after")
        return ["a", "c"]

    # WHEN the batch runs
    response = run_sqs_batch(
        _event("a", "b", "c"),
        LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60.0),
        handle=handle,
        failed=lambda record, exc, fields: None,
        logger=Logger(service="test"),
        after_batch=after_batch,
    )
    # THEN after_batch ran once, after every record; "a" is listed once, then "c"; "b" is done
    assert handled == ["a", "b", "c", "after"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "c"}]}
