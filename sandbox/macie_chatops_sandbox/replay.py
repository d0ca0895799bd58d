"""``macie-chatops sandbox replay``: real event files through the whole pipeline in a fresh sandbox.

For each file, in order:

1. If the event names an S3 object (``detail.resourcesAffected``: bucket + key), the object is created in
   the member account's bucket, in the finding's region (the bucket is created if missing: versioned,
   unless the event's ``versionId`` is "", which means an unversioned bucket), and the event is patched
   with the real ``versionId``, ``eTag`` and ``size``. A later file with a finding id already replayed
   refers to the same object (nothing is uploaded twice) and reports ``DUPLICATE``.
2. A Macie event (source ``aws.macie``, detail-type ``Macie Finding``, a JSON object as detail) is put on
   the member account's default bus, so the member rule forwards it and the central rule delivers it; an
   account x region not in accounts.yaml puts it on the central bus directly. Anything else (not JSON,
   another source) is handed straight to the intake queue, as defence in depth: the handler must reject it.
3. Once the pipeline is idle, every finding awaiting approval is clicked (a real, signed request to the
   local API Gateway) by an approver of its team: Remediate, or Dismiss with ``--dismiss``.
4. Once it is idle again, one line per file: ``{"file", "finding_id", "action", "state", "object"}``.

``state`` is the record's state; for input the handler could not record (no finding id and no event id) it
is ``REJECTED``, which is what the handler did with it. ``object`` is where the finding's object version is
now: ``source``, ``quarantine``, ``both`` or ``none``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from macie_chatops import names
from macie_chatops.config import Action, Config
from macie_chatops.decision import Decision, decide
from macie_chatops.event_pattern import MACIE_DETAIL_TYPE, MACIE_SOURCE
from macie_chatops.finding import Finding, Rejection, parse_event
from macie_chatops.states import State
from macie_chatops_sandbox.findings import StoredObject, sample_body, with_object
from macie_chatops_sandbox.sandbox import Location, Sandbox

Mode = Literal["approve", "dismiss"]

DUPLICATE: Final = "DUPLICATE"
_ACCOUNT: Final = re.compile(r"^\d{12}$")
_REGION: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass
class ReplayItem:
    file: str
    text: str
    parsed: Finding | Rejection
    decision: Decision
    event: dict[str, Any] | None = None  # the JSON object, if the file holds one
    target: tuple[str, str, str, str, str] | None = None  # account, region, bucket, key, finding type
    stored: StoredObject | None = None
    duplicate: bool = False
    route: str = ""

    @property
    def finding_id(self) -> str | None:
        return self.parsed.id if isinstance(self.parsed, Finding) else self.parsed.finding_id

    @property
    def event_id(self) -> str | None:
        return self.parsed.event_id


def read_item(file: str, text: str, config: Config) -> ReplayItem:
    parsed = parse_event(text)
    item = ReplayItem(file, text, parsed, decide(parsed, config))
    try:
        data = json.loads(text)
    except ValueError:
        return item
    if isinstance(data, dict):
        item.event = data
        item.target = _object_target(data)
    return item


def _object_target(event: dict[str, Any]) -> tuple[str, str, str, str, str] | None:
    """Where the event's object lives, read from the raw detail (also for events the handler rejects)."""
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return None
    account, region = detail.get("accountId"), detail.get("region")
    resources = detail.get("resourcesAffected")
    if not isinstance(resources, dict):
        return None
    bucket = resources.get("s3Bucket", {}).get("name") if isinstance(resources.get("s3Bucket"), dict) else None
    s3_object = resources.get("s3Object")
    key = s3_object.get("key") if isinstance(s3_object, dict) else None
    finding_type = detail.get("type") if isinstance(detail.get("type"), str) else ""
    if not (isinstance(account, str) and _ACCOUNT.match(account) and isinstance(region, str) and _REGION.match(region)):
        return None
    if not (isinstance(bucket, str) and _BUCKET.match(bucket) and isinstance(key, str) and key):
        return None
    return account, region, bucket, key, str(finding_type)


def _is_macie_event(event: dict[str, Any] | None) -> bool:
    return (
        event is not None
        and event.get("source") == MACIE_SOURCE
        and event.get("detail-type") == MACIE_DETAIL_TYPE
        and isinstance(event.get("detail"), dict)
    )


def put_in(sandbox: Sandbox, items: list[ReplayItem]) -> None:
    """Create each event's object, patch the event, and send it the way its account would."""
    objects: dict[str, StoredObject] = {}
    for item in items:
        finding_id = item.finding_id
        if item.target is not None and item.event is not None:
            if finding_id is not None and finding_id in objects:
                item.stored, item.duplicate = objects[finding_id], True
            else:
                account, region, bucket, key, finding_type = item.target
                s3_object = item.event["detail"]["resourcesAffected"]["s3Object"]
                versioned = s3_object.get("versionId") != ""
                item.stored = sandbox.put_object(
                    account, region, bucket, key, sample_body(finding_type), versioned=versioned
                )
                if finding_id is not None:
                    objects[finding_id] = item.stored
            item.event = with_object(item.event, item.stored)
        elif finding_id is not None and finding_id in objects:
            item.duplicate = True
        if item.event is not None and _is_macie_event(item.event):
            item.route = sandbox.publish(item.event)
        else:
            item.route = "intake"
            sandbox.deliver_raw(json.dumps(item.event) if item.event is not None else item.text)


def click_pending(sandbox: Sandbox, items: list[ReplayItem], mode: Mode) -> list[str]:
    """Click every finding awaiting approval once, as an approver of its team; return any problems."""
    problems: list[str] = []
    action_id = names.ACTION_REMEDIATE if mode == "approve" else names.ACTION_DISMISS
    clicked: set[str] = set()
    for item in items:
        finding_id = item.finding_id
        if finding_id is None or finding_id in clicked:
            continue
        record = sandbox.record(finding_id)
        if record is None or record.state is not State.PENDING_APPROVAL:
            continue
        clicked.add(finding_id)
        answer = sandbox.click(finding_id, action_id, user_id=sandbox.approver_for(record.team))
        if answer.status != 200:
            problems.append(f"{item.file}: click answered HTTP {answer.status}: {answer.text}")
    return problems


def outcome(sandbox: Sandbox, item: ReplayItem) -> dict[str, Any]:
    """The contract's line for one file."""
    record = None
    if item.finding_id is not None:
        record = sandbox.record(item.finding_id)
    elif item.event_id is not None and item.route == "intake":
        record = sandbox.record(f"event:{item.event_id}")
    if item.duplicate:
        state = DUPLICATE
    elif record is not None:
        state = record.state.value
    elif item.decision.action is Action.REJECT:
        state = State.REJECTED.value  # unrecordable input: the handler logged and dropped it
    else:
        state = "UNKNOWN"
    action = record.action if record is not None and record.action is not None else item.decision.action
    location: Location = "none"
    if item.stored is not None and item.target is not None:
        account, region = item.target[0], item.target[1]
        location = sandbox.object_location(item.finding_id or "", account, region, item.stored, record)
    return {
        "file": item.file,
        "finding_id": item.finding_id,
        "action": str(action),
        "state": state,
        "object": location,
    }


def replay(sandbox: Sandbox, items: list[ReplayItem], mode: Mode, *, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    put_in(sandbox, items)
    sandbox.wait_until_idle(timeout_s)
    problems = click_pending(sandbox, items, mode)
    if problems:
        raise RuntimeError("; ".join(problems))
    sandbox.wait_until_idle(timeout_s)
    return [outcome(sandbox, item) for item in items]


def read_files(files: list[str], config: Config) -> tuple[list[ReplayItem], list[str]]:
    """The replayable files, and a message for each file that could not be read."""
    items: list[ReplayItem] = []
    errors: list[str] = []
    for file in files:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            errors.append(f"{file}: cannot read: {exc.strerror or exc}")
            continue
        items.append(read_item(file, raw.decode("utf-8", errors="replace"), config))
    return items, errors
