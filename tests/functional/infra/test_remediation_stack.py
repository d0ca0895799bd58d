"""The remediator's event source (docs/architecture.md §7, "Jobs in batches"), asserted on the central template:
batches of the handler's BATCH_SIZE, handed over at once (no batching window), five invocations at most, and the
remediator may send to its own queue (a deferred job is re-sent there)."""

from __future__ import annotations

from infra.central.remediation import REMEDIATOR_CONCURRENCY
from macie_chatops import names
from macie_chatops.handlers.remediation import BATCH_SIZE
from tests.functional.infra.conftest import Synthesized, as_list, resources_of_type
from tests.functional.infra.test_central_stack import _logical_id, _role_policy_statements


def test_the_remediator_takes_batches_of_ten_jobs_at_once_five_invocations_at_most(example: Synthesized) -> None:
    # GIVEN the central stack
    template = example.central_json
    queue_id = _logical_id(template, "AWS::SQS::Queue", QueueName=names.REMEDIATION_QUEUE_NAME)
    function_id = _logical_id(template, "AWS::Lambda::Function", FunctionName=names.REMEDIATOR_FUNCTION_NAME)
    # THEN the remediation queue's one event source feeds the remediator batches of the handler's size, with no
    # batching window (a single click's job does not wait for more), partial failures reported
    (mapping,) = [
        m["Properties"]
        for m in resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    ]
    assert mapping["FunctionName"] == {"Ref": function_id}
    assert mapping["BatchSize"] == BATCH_SIZE == 10
    assert "MaximumBatchingWindowInSeconds" not in mapping
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": REMEDIATOR_CONCURRENCY}
    # AND the remediator may re-send a job to its own queue
    queue_arn = {"Fn::GetAtt": [queue_id, "Arn"]}
    assert any(
        "sqs:SendMessage" in as_list(s["Action"]) and queue_arn in as_list(s["Resource"])
        for s in _role_policy_statements(template, names.REMEDIATOR_FUNCTION_NAME)
    )
