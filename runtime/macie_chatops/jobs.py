"""The remediation job: the one message the finding handler and the interaction endpoint put on the
remediation queue, and the remediator takes off it.

It carries only the finding id and who asked: the state record, not the message, says which object
and account (a forged or stale job can do nothing the record does not already allow).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AUTO_APPROVER = "auto"


class RemediationJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["quarantine", "restore"]
    finding_id: str = Field(min_length=1, max_length=128)
    requested_by: str = Field(min_length=1, max_length=64)  # Slack user id, or "auto"
    requested_at: datetime

    def to_message(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_message(cls, body: str) -> RemediationJob:
        return cls.model_validate_json(body)
