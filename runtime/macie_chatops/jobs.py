"""The remediation job: the one message put on the remediation queue (``job_request.request_job``) and taken
off it by the remediator, and the queue's SQS adapter.

It carries only the finding id and who asked: the state record, not the message, says which object
and account (a forged or stale job can do nothing the record does not already allow).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

AUTO_APPROVER = "auto"


class RemediationJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # block_public_access / undo_block_public_access: a policy finding's fix and its Undo (§18). A quarantine job
    # (the sweeper's, `retry`'s) for an approved policy finding carries out that finding's fix: the record says.
    kind: Literal["quarantine", "restore", "block_public_access", "undo_block_public_access"]
    finding_id: str = Field(min_length=1, max_length=128)
    requested_by: str = Field(min_length=1, max_length=64)  # Slack user id, or "auto"
    requested_at: datetime

    def to_message(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_message(cls, body: str) -> RemediationJob:
        return cls.model_validate_json(body)


@dataclass(frozen=True)
class SqsJobQueue:
    """The remediation queue through a boto3 SQS client (passed in): what every producer of jobs uses."""

    sqs: SQSClient
    queue_url: str

    def send(self, job: RemediationJob) -> str:
        """Queue the job; its message id (raises what SQS raises)."""
        response = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=job.to_message())
        return str(response.get("MessageId", "?"))

    def waiting(self) -> int:
        """Jobs not yet taken by the remediator (visible, or delayed); SQS's approximate counts."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesDelayed", 0)
        )
