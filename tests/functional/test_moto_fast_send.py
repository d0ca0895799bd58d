"""moto_fast's SQS send path: a queue's attributes read the light way while a message is sent, with the same
answers and the same messages as moto's own code, standard and FIFO queues alike."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from macie_chatops_sandbox import moto_fast
from tests.conftest import AwsSandbox
from tests.functional.test_moto_fast import both_ways


def scenario(sqs: Any) -> list[Any]:
    """Sends to a standard queue, a FIFO queue with content-based deduplication and one without; what each answers
    (errors included), the queues' attributes, and the messages they then hold."""
    standard = sqs.create_queue(QueueName="standard")["QueueUrl"]
    deduplicated = sqs.create_queue(
        QueueName="dedup.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    plain_fifo = sqs.create_queue(QueueName="plain.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    seen: list[Any] = []
    sends: list[tuple[str, dict[str, Any]]] = [
        (standard, {"MessageBody": "one"}),
        (standard, {"MessageBody": "two", "DelaySeconds": 0}),
        (deduplicated, {"MessageBody": "same", "MessageGroupId": "g"}),
        (deduplicated, {"MessageBody": "same", "MessageGroupId": "g"}),  # deduplicated by its content
        (plain_fifo, {"MessageBody": "x", "MessageGroupId": "g"}),  # refused: no deduplication id
        (plain_fifo, {"MessageBody": "x"}),  # refused: no group
        (plain_fifo, {"MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d"}),
    ]
    for url, send in sends:
        try:
            answer = sqs.send_message(QueueUrl=url, **send)
            seen.append(("sent", "MessageId" in answer))
        except ClientError as exc:
            seen.append(("refused", exc.response["Error"]["Code"]))
    batch = sqs.send_message_batch(
        QueueUrl=standard, Entries=[{"Id": str(n), "MessageBody": f"b{n}"} for n in range(3)]
    )
    seen.append(("batch", len(batch.get("Successful", [])), len(batch.get("Failed", []))))
    for url in (standard, deduplicated, plain_fifo):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        seen.append({k: v for k, v in attributes.items() if k not in ("CreatedTimestamp", "LastModifiedTimestamp")})
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        seen.append(sorted(m["Body"] for m in received.get("Messages", [])))
    return seen


def test_sending_answers_and_stores_as_moto_does(aws: AwsSandbox, without_moto_fast: None) -> None:
    before = moto_fast.light_send_attributes()
    # GIVEN / WHEN the same sends without and with moto_fast
    # THEN the same answers, attributes and messages (both_ways asserts them equal)
    observed = both_ways(aws, scenario)
    assert observed[:7] == [
        ("sent", True),
        ("sent", True),
        ("sent", True),
        ("sent", True),
        ("refused", "InvalidParameterValue"),
        ("refused", "MissingParameter"),
        ("sent", True),
    ]
    # AND the patched sends read the attributes the light way
    assert moto_fast.light_send_attributes() > before


def test_install_and_uninstall_restore_the_send_path(without_moto_fast: None) -> None:
    from moto.sqs.models import Queue
    from moto.sqs.responses import SQSResponse

    originals = [
        Queue.__dict__["attributes"],
        SQSResponse.__dict__["send_message"],
        SQSResponse.__dict__["send_message_batch"],
    ]
    moto_fast.install()
    assert Queue.__dict__["attributes"] is not originals[0]
    moto_fast.uninstall()
    assert [
        Queue.__dict__["attributes"],
        SQSResponse.__dict__["send_message"],
        SQSResponse.__dict__["send_message_batch"],
    ] == originals
