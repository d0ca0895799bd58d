"""``macie-chatops sandbox replay``: real event files through the whole pipeline in a fresh sandbox.

Each file's bytes go through the pipeline's own parse boundary (``finding.parse_event``) first, so a file
gets the outcome the finding handler and ``decide`` give the same bytes. For each file, in order:

1. A file that cannot be read, or whose bytes the parse boundary refuses (not UTF-8, not JSON, too large,
   too deep, a lone surrogate, a key with a control character, an invalid bucket name or region, a wrong
   source...), is an ``ERROR``: its line says why, the batch goes on, and the command exits 2 at the end.
   Its bytes are still handed straight to the intake queue, as defence in depth: the handler must reject
   them too.
2. A finding that names an S3 object has the object created in the member account's bucket, in the
   finding's region (the bucket is created if missing: versioned, unless the event's ``versionId`` is "",
   which means an unversioned bucket), and the event is patched with the real ``versionId``, ``eTag`` and
   ``size``. A later file with a finding id already replayed refers to the same object (nothing is uploaded
   twice) and reports ``DUPLICATE``.
3. The finding is put on the bus Macie would use (``Sandbox.publish``), so the forwarding rule and the
   central rule deliver it. With ``--lost``, Macie holds it (the Macie stand-in) but the event is dropped; once
   every file is in, one reconciler run (``Sandbox.reconcile``) finds the findings and hands them to the intake,
   so the lines must be those of a normal replay.
4. Once the pipeline is idle, every finding awaiting approval is clicked (a real, signed request to the
   local API Gateway) by an approver of its team: Remediate, or Dismiss with ``--dismiss``, which goes
   through the dismissal form (``views.open``, then a signed ``view_submission``) with
   ``DEFAULT_DISMISS_REASON``, the finding's object as scope, for 7 days.
5. Once it is idle again, one line per file: ``{"file", "finding_id", "action", "state", "object"}``, and
   ``reason`` on an ``ERROR`` line.

``state`` is the record's state (``REJECTED`` for a finding the policy rejects: an account or region not in
accounts.yaml); ``object`` is where the finding's object version is now: ``source``, ``quarantine``,
``both`` or ``none``. A step the sandbox itself fails at for one file (creating its object, publishing it,
clicking its message) makes that file an ``ERROR`` too, with the failure as the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops.decision import Decision, decide
from macie_chatops.finding import Finding, Rejection, parse_event, read_event
from macie_chatops.states import State
from macie_chatops_sandbox.findings import StoredObject, sample_body, with_object
from macie_chatops_sandbox.sandbox import Location, Sandbox

Mode = Literal["approve", "dismiss"]

DUPLICATE: Final = "DUPLICATE"
ERROR: Final = "ERROR"


def shown_path(file: str) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 (os.fsdecode's surrogates) become U+FFFD."""
    return file.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass
class ReplayItem:
    file: str
    parsed: Finding | Rejection
    decision: Decision
    raw: bytes | None = None  # the file's bytes (None: it could not be read)
    event: dict[str, Any] | None = None  # the event as published (for a finding: patched with its object)
    stored: StoredObject | None = None
    duplicate: bool = False
    route: str = ""
    error: str | None = None  # why this file is an ERROR

    @property
    def finding_id(self) -> str | None:
        return self.parsed.id if isinstance(self.parsed, Finding) else self.parsed.finding_id

    @property
    def event_id(self) -> str | None:
        return self.parsed.event_id

    @property
    def target(self) -> tuple[str, str] | None:
        """The account and region of the finding's object, when it names one."""
        if isinstance(self.parsed, Finding) and self.parsed.s3_object is not None:
            return self.parsed.account_id, self.parsed.region
        return None


def read_item(file: str, raw: bytes, config: Config) -> ReplayItem:
    """One file's bytes through the parse boundary: a finding to replay, or an ERROR saying why not."""
    parsed = parse_event(raw)
    item = ReplayItem(file, parsed, decide(parsed, config), raw=raw)
    if isinstance(parsed, Rejection):
        item.error = parsed.reason
        return item
    event = read_event(raw)  # the same bytes parse_event accepted: a JSON object
    if isinstance(event, Rejection):  # pragma: no cover - parse_event reads it the same way
        raise AssertionError(f"{file}: parse_event accepted what read_event refuses: {event.reason}")
    item.event = event
    return item


def unreadable_item(file: str, why: str, config: Config) -> ReplayItem:
    parsed = Rejection(f"cannot read the file: {why}")
    return ReplayItem(file, parsed, decide(parsed, config), error=parsed.reason)


def _sandbox_failed(item: ReplayItem, step: str, exc: Exception) -> None:
    item.error = f"the sandbox could not {step}: {type(exc).__name__}: {exc}"[:500]


def put_in(sandbox: Sandbox, items: list[ReplayItem], *, lost: bool = False) -> None:
    """Create each finding's object, patch the event, and send it the way its account would (``lost``: Macie
    holds it, and its EventBridge delivery is dropped)."""
    objects: dict[str, StoredObject | None] = {}  # by finding id: what the first file of that finding named
    for item in items:
        if item.error is not None:
            if item.raw is not None:
                try:
                    sandbox.deliver_raw(item.raw.decode("utf-8", errors="replace"))
                    item.route = "intake"
                except Exception as exc:  # the file is an ERROR already; the line says why
                    item.error += f" (and it could not be handed to the intake queue: {type(exc).__name__})"
            continue
        try:
            _put_finding(sandbox, item, objects, lost=lost)
        except Exception as exc:  # the sandbox's part for one file: that file is an ERROR, the batch goes on
            _sandbox_failed(item, "replay it", exc)


def _put_finding(
    sandbox: Sandbox, item: ReplayItem, objects: dict[str, StoredObject | None], *, lost: bool = False
) -> None:
    finding, event = item.parsed, item.event
    if not isinstance(finding, Finding) or event is None:
        raise TypeError(f"{item.file} holds no finding to replay")
    s3_object = finding.s3_object
    if finding.id in objects:
        item.stored, item.duplicate = objects[finding.id], True
    else:
        if s3_object is not None and finding.bucket is not None:
            item.stored = sandbox.put_object(
                finding.account_id,
                finding.region,
                finding.bucket,
                s3_object.key,
                sample_body(finding.type),
                versioned=s3_object.versionId != "",
            )
        objects[finding.id] = item.stored
    if item.stored is not None:
        event = with_object(event, item.stored)
    item.event = event
    if lost:
        sandbox.lose(event)
        item.route = "reconciler"
    else:
        item.route = sandbox.publish(event)


def click_pending(sandbox: Sandbox, items: list[ReplayItem], mode: Mode) -> None:
    """Click every finding awaiting approval once, as an approver of its team; a failed click is an ERROR."""
    action_id = names.ACTION_REMEDIATE if mode == "approve" else names.ACTION_DISMISS
    clicked: set[str] = set()
    for item in items:
        finding_id = item.finding_id
        if item.error is not None or finding_id is None or finding_id in clicked:
            continue
        record = sandbox.record(finding_id)
        if record is None or record.state is not State.PENDING_APPROVAL:
            continue
        clicked.add(finding_id)
        try:
            user = sandbox.approver_for(record.team)
            if mode == "dismiss":
                answer = sandbox.dismiss(finding_id, user_id=user, scope="object", duration="7")
            else:
                answer = sandbox.click(finding_id, action_id, user_id=user)
        except Exception as exc:
            _sandbox_failed(item, "click its message", exc)
            continue
        if answer.status != 200:
            item.error = f"the click answered HTTP {answer.status}: {answer.text[:300]}"


def outcome(sandbox: Sandbox, item: ReplayItem) -> dict[str, Any]:
    """The contract's line for one file."""
    if item.error is not None:
        return error_line(item)
    record = sandbox.record(item.finding_id) if item.finding_id is not None else None
    if item.duplicate:
        state = DUPLICATE
    elif record is not None:
        state = record.state.value
    else:
        state = "UNKNOWN"
    action = record.action if record is not None and record.action is not None else item.decision.action
    location: Location = "none"
    target = item.target
    if item.stored is not None and target is not None:
        location = sandbox.object_location(item.finding_id or "", target[0], target[1], item.stored, record)
    return {
        "file": shown_path(item.file),
        "finding_id": item.finding_id,
        "action": str(action),
        "state": state,
        "object": location,
    }


def replay(
    sandbox: Sandbox, items: list[ReplayItem], mode: Mode, *, timeout_s: float = 120.0, lost: bool = False
) -> list[dict[str, Any]]:
    """Every file's line, in order (a TimeoutError if the pipeline never goes idle). ``lost``: no event reaches
    the bus; one reconciler run finds the findings in Macie and hands them to the intake."""
    put_in(sandbox, items, lost=lost)
    if lost:
        sandbox.reconcile()
    sandbox.wait_until_idle(timeout_s)
    click_pending(sandbox, items, mode)
    sandbox.wait_until_idle(timeout_s)
    return [outcome(sandbox, item) for item in items]


def error_line(item: ReplayItem) -> dict[str, Any]:
    """The line of an ERROR file, for a batch the sandbox never had to start for."""
    return {
        "file": shown_path(item.file),
        "finding_id": item.finding_id,
        "action": str(item.decision.action),
        "state": ERROR,
        "object": "none",
        "reason": item.error,
    }


def read_files(files: list[str], config: Config) -> list[ReplayItem]:
    """One item per file, in order: unreadable files and files the parse boundary refuses are ERRORs."""
    items: list[ReplayItem] = []
    for file in files:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            items.append(unreadable_item(file, str(exc.strerror or exc), config))
            continue
        items.append(read_item(file, raw, config))
    return items
