"""What Lambda does around our handlers: the context object, and the SQS event source mapping.

``SqsPoller`` plays the event source mapping for one queue: it long-polls, hands each batch to the handler
as an ``aws:sqs`` event, and honours partial batch failures (ReportBatchItemFailures): it deletes only the
messages the handler did not name in ``batchItemFailures``. Failed messages are left alone, so they
become visible again when their visibility timeout ends, and SQS moves them to the DLQ once they have been
received ``maxReceiveCount`` times. A handler that raises, or answers with an id that was not in the batch,
fails the whole batch, as on Lambda.

Visibility: the stacks give each queue a visibility timeout longer than its function's timeout, so a
message never reappears while its handler still runs (the handlers' intake lease and idempotency rely on
that). The sandbox keeps its queues' timeouts short, so a failed message comes back within a test; to keep
the invariant anyway, the poller extends the visibility of the batch in flight (a heartbeat at half the
timeout) until the handler returns. Failed messages then reappear one visibility timeout later at most.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("macie_chatops_sandbox.lambda")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The attributes and method of the Lambda context object that Powertools and handlers read."""

    function_name: str
    timeout_s: float
    region: str
    account_id: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Function:
    """A handler and how Lambda runs it."""

    name: str
    handler: Handler
    timeout_s: float
    region: str
    account_id: str

    def context(self) -> LambdaContext:
        return LambdaContext(self.name, self.timeout_s, self.region, self.account_id)


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for one received batch."""
    records = []
    for message in messages:
        body = message["Body"]
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": body,
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": value.get("StringListValues", []),
                        "binaryListValues": value.get("BinaryListValues", []),
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def failed_ids(response: Any, batch_ids: set[str]) -> set[str]:
    """The message ids to keep, from a ReportBatchItemFailures answer; the whole batch if it is malformed."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        return set(batch_ids)
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    out: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        # Lambda treats an empty, missing or unknown identifier as a failure of the whole batch.
        if not isinstance(identifier, str) or identifier not in batch_ids:
            return set(batch_ids)
        out.add(identifier)
    return out


@dataclass
class PollerStats:
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    retried: int = 0
    handler_errors: int = 0


class SqsPoller:
    """Deliver one queue's messages to one function, like a Lambda SQS event source mapping."""

    def __init__(
        self,
        *,
        function: Function,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        visibility_timeout_s: float,
        batch_size: int = 10,
        concurrency: int = 1,
        wait_time_s: int = 1,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be 1..10 (SQS receives at most 10 messages per call)")
        self.function = function
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.visibility_timeout_s = visibility_timeout_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.wait_time_s = wait_time_s
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self.activity = 0  # deliveries started; lets an observer tell "idle" from "busy between looks"
        self._lock = threading.Lock()
        self.errors: list[str] = []

    @property
    def busy(self) -> bool:
        """True while a batch is being delivered (received, not yet deleted or given back)."""
        with self._lock:
            return self._busy > 0

    def start(self) -> None:
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"{self.function.name}-poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        if alive:
            raise RuntimeError(f"poller threads did not stop: {', '.join(alive)}")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the poller outlives a broken endpoint; the error is kept and logged
                message = traceback.format_exc()
                log.error("poller %s: %s", self.function.name, message)
                with self._lock:
                    self.errors.append(message)
                self._stop.wait(0.2)

    def poll_once(self) -> int:
        """Receive one batch and deliver it; return how many messages it had."""
        received = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_time_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = received.get("Messages", [])
        if messages:
            with self._lock:
                self._busy += 1
                self.activity += 1
            try:
                self._deliver(messages)
            finally:
                with self._lock:
                    self._busy -= 1
        return len(messages)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        batch_ids = {m["MessageId"] for m in messages}
        event = sqs_event(messages, self.queue_arn, self.function.region)
        handler_done = threading.Event()
        heartbeat = threading.Thread(
            target=self._keep_invisible,
            args=(messages, handler_done),
            name=f"{self.function.name}-heartbeat",
            daemon=True,
        )
        heartbeat.start()
        try:
            response = self.function.handler(event, self.function.context())
            keep = failed_ids(response, batch_ids)
        except Exception:  # Lambda: a function error returns the whole batch to the queue
            log.error("%s raised; the batch returns to the queue:\n%s", self.function.name, traceback.format_exc())
            with self._lock:
                self.stats.handler_errors += 1
            keep = set(batch_ids)
        finally:
            handler_done.set()
            heartbeat.join()
        done = [m for m in messages if m["MessageId"] not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            result = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            if result.get("Failed"):
                raise RuntimeError(f"delete_message_batch failed: {result['Failed']}")
        with self._lock:
            self.stats.batches += 1
            self.stats.messages += len(messages)
            self.stats.deleted += len(done)
            self.stats.retried += len(keep)

    def _keep_invisible(self, messages: list[dict[str, Any]], handler_done: threading.Event) -> None:
        """While the handler runs, push the batch's visibility timeout out again every half timeout."""
        interval = max(0.2, self.visibility_timeout_s / 2)
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": int(self.visibility_timeout_s)}
            for i, m in enumerate(messages)
        ]
        while not handler_done.wait(interval):
            for start in range(0, len(entries), 10):
                try:
                    self._sqs.change_message_visibility_batch(
                        QueueUrl=self.queue_url, Entries=entries[start : start + 10]
                    )
                except Exception:  # a heartbeat that fails only shortens the invisibility; the handler goes on
                    log.warning("%s: could not extend the visibility of a batch in flight", self.function.name)
