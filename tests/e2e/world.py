"""Helpers for the e2e tests: put a finding in as Macie would, and look at what happened."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from macie_chatops.states import State
from macie_chatops.store import FindingRecord
from macie_chatops_sandbox.findings import StoredObject, macie_finding_event, sample_body
from macie_chatops_sandbox.sandbox import Location, ObjectLock, Sandbox

PAYMENTS_PROD = "345678901234"
PAYMENTS_DEV = "456789012345"
ANALYTICS_DEV = "567890123456"
PAYMENTS_CHANNEL = "C0PAYMENTS"
ANALYTICS_CHANNEL = "C0ANALYTIC"
CREDENTIALS = "SensitiveData:S3Object/Credentials"
FINANCIAL = "SensitiveData:S3Object/Financial"
PERSONAL = "SensitiveData:S3Object/Personal"
SETTLED = (State.QUARANTINED, State.BLOCKED, State.FAILED, State.DISMISSED, State.RESTORED)


@dataclass(frozen=True)
class Reported:
    """A finding put on its member account's bus, and the object it is about."""

    finding_id: str
    account_id: str
    region: str
    stored: StoredObject
    event: dict[str, Any]

    def record(self, sandbox: Sandbox) -> FindingRecord:
        record = sandbox.record(self.finding_id)
        assert record is not None, f"no record for {self.finding_id}"
        return record

    def location(self, sandbox: Sandbox) -> Location:
        return sandbox.object_location(
            self.finding_id, self.account_id, self.region, self.stored, sandbox.record(self.finding_id)
        )


def upload(
    sandbox: Sandbox,
    *,
    account_id: str,
    finding_type: str,
    region: str = "us-east-1",
    lock: ObjectLock | None = None,
    versioned: bool = True,
) -> StoredObject:
    unique = uuid.uuid4().hex[:10]
    bucket = f"e2e-{account_id}-{region}{'-locked' if lock else ''}{'' if versioned else '-unversioned'}"
    return sandbox.put_object(
        account_id,
        region,
        bucket,
        f"data/{unique}/{finding_type.rsplit('/', 1)[-1].lower()}.txt",
        sample_body(finding_type),
        versioned=versioned,
        lock=lock,
    )


def report(
    sandbox: Sandbox,
    *,
    account_id: str,
    finding_type: str,
    severity: str = "High",
    region: str = "us-east-1",
    lock: ObjectLock | None = None,
    versioned: bool = True,
) -> Reported:
    """Upload a dummy object as the member account and put Macie's finding about it on its default bus."""
    stored = upload(
        sandbox, account_id=account_id, finding_type=finding_type, region=region, lock=lock, versioned=versioned
    )
    event = macie_finding_event(
        account_id=account_id,
        region=region,
        finding_type=finding_type,
        severity=severity,
        stored=stored,
        finding_id=uuid.uuid4().hex,
    )
    assert sandbox.publish(event) == "member"
    return Reported(event["detail"]["id"], account_id, region, stored, event)


def message_of(sandbox: Sandbox, record: FindingRecord) -> Any:
    """The finding's Slack message as the stand-in recorded it (every revision)."""
    assert record.slack_channel and record.slack_ts, f"{record.finding_id} has no Slack message"
    return sandbox.slack.message(record.slack_channel, record.slack_ts)


def buttons(blocks: list[Any]) -> list[str]:
    """The action ids of the buttons in a message's blocks."""
    return [
        element["action_id"]
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    ]
