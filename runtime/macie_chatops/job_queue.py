"""The remediation queue's SQS adapter and the approver name of the policy's own jobs, without the job's model.

``jobs`` re-exports both beside ``RemediationJob`` (a pydantic model, which the remediator validates every message
with); they live here so that a handler that may send no job (the sweeper with nothing stuck) or only reads who
approved (the Security Hub updater) does not import pydantic for them (docs/architecture.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from macie_chatops.jobs import RemediationJob

AUTO_APPROVER: Final = "auto"


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
