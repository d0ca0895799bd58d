"""The remediation job: the one message put on the remediation queue (``job_request.request_job``) and taken
off it by the remediator (the queue's SQS adapter: ``job_queue``).

It carries only the finding id and who asked: the state record, not the message, says which object
and account (a forged or stale job can do nothing the record does not already allow).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Re-exported: they live apart from the model, for the handlers that need no pydantic (docs/architecture.md §6).
from macie_chatops.job_queue import AUTO_APPROVER as AUTO_APPROVER
from macie_chatops.job_queue import SqsJobQueue as SqsJobQueue


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
