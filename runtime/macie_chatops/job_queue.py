"""The remediation queue's SQS adapter and the approver name of the policy's own jobs, without the job's model.

``jobs`` re-exports both beside ``RemediationJob`` (a pydantic model, which the remediator validates every message
with); they live here so that a handler that may send no job (the sweeper with nothing stuck) or only reads who
approved (the Security Hub updater) does not import pydantic for them (docs/architecture.md §6). ``JobBatch`` holds
the finding handler's auto jobs of one intake batch and sends them with SendMessageBatch (§5, issue 18).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from macie_chatops.jobs import RemediationJob

AUTO_APPROVER: Final = "auto"
MAX_BATCH_ENTRIES: Final = 10  # SQS's limit per SendMessageBatch


@dataclass(frozen=True)
class BatchEntrySent:
    """One job of a :meth:`SqsJobQueue.send_batch`: its message id, or why SQS refused that entry."""

    message_id: str | None
    refused: str = ""  # SQS's code and message for an entry in the response's Failed list


@dataclass(frozen=True)
class SqsJobQueue:
    """The remediation queue through a boto3 SQS client (passed in): what every producer of jobs uses."""

    sqs: SQSClient
    queue_url: str

    def send(self, job: RemediationJob) -> str:
        """Queue the job; its message id (raises what SQS raises)."""
        response = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=job.to_message())
        return str(response.get("MessageId", "?"))

    def send_batch(self, jobs: Sequence[RemediationJob]) -> list[BatchEntrySent]:
        """Queue up to :data:`MAX_BATCH_ENTRIES` jobs in one SendMessageBatch, each body exactly as :meth:`send`
        sends it; what became of each, in order (an entry SQS refused is in the response's Failed list). Raises what
        SQS raises for the whole call (none of the jobs was taken)."""
        if not 1 <= len(jobs) <= MAX_BATCH_ENTRIES:
            raise ValueError(f"a batch of jobs holds 1 to {MAX_BATCH_ENTRIES}, not {len(jobs)}")
        response = self.sqs.send_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(n), "MessageBody": job.to_message()} for n, job in enumerate(jobs)],
        )
        sent = {entry["Id"]: entry.get("MessageId", "?") for entry in response.get("Successful", ())}
        refused = {
            entry["Id"]: f"{entry.get('Code', '?')}: {entry.get('Message', '')}".strip()
            for entry in response.get("Failed", ())
        }
        results = []
        for n in range(len(jobs)):
            if str(n) in sent:
                results.append(BatchEntrySent(sent[str(n)]))
            else:  # neither listed would be SQS's error; it is reported as refused, never as sent
                results.append(BatchEntrySent(None, refused.get(str(n), "not in the response")))
        return results

    def waiting(self) -> int:
        """Jobs the remediator has not finished: visible, delayed, or in flight (received, not yet acknowledged: with
        batches, a job may wait up to the function's timeout behind the others of its batch); SQS's approximate
        counts."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesDelayed",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        visible = int(attributes.get("ApproximateNumberOfMessages") or 0)
        delayed = int(attributes.get("ApproximateNumberOfMessagesDelayed") or 0)
        return visible + delayed + int(attributes.get("ApproximateNumberOfMessagesNotVisible") or 0)


class JobOutbox(Protocol):
    """Where the intake puts an auto job to be sent later (:class:`JobBatch`'s per-record outbox)."""

    def add(self, job: RemediationJob) -> None: ...


@dataclass
class JobBatch:
    """The auto jobs of one intake batch, each under the SQS message id of the record that made it (``owner``),
    sent in SendMessageBatch calls of up to ten when the batch's records are done (:meth:`flush`): one call for a
    batch of ten auto findings instead of ten SendMessage (docs/architecture.md §5, issue 18)."""

    queue: SqsJobQueue
    _jobs: list[tuple[str, RemediationJob]] = field(default_factory=list)

    def outbox(self, owner: str) -> JobOutbox:
        return _Outbox(self, owner)

    def add(self, owner: str, job: RemediationJob) -> None:
        self._jobs.append((owner, job))

    def flush(self) -> list[tuple[str, RemediationJob, BatchEntrySent | Exception]]:
        """Send the jobs collected (and forget them): each with its owner and what became of it, the exception of
        its call when the whole call failed (the other calls are still made)."""
        jobs, self._jobs = self._jobs, []
        results: list[tuple[str, RemediationJob, BatchEntrySent | Exception]] = []
        for start in range(0, len(jobs), MAX_BATCH_ENTRIES):
            chunk = jobs[start : start + MAX_BATCH_ENTRIES]
            outcomes: Sequence[BatchEntrySent | Exception]
            try:
                outcomes = self.queue.send_batch([job for _, job in chunk])
            except Exception as exc:  # reported with each of its jobs: their records return to the queue
                outcomes = [exc] * len(chunk)
            results.extend((owner, job, outcome) for (owner, job), outcome in zip(chunk, outcomes, strict=True))
        return results


@dataclass(frozen=True)
class _Outbox:
    batch: JobBatch
    owner: str

    def add(self, job: RemediationJob) -> None:
        self.batch.add(self.owner, job)
