"""The auto path, end to end in the sandbox, against the bare S3 operations a move needs.

Both run in one sandbox, against one moto server, in the same run:

- bare S3: for each object, what moving it needs at the least: read the source version (HEAD), copy that
  version into the quarantine bucket, verify the copy (HEAD), delete the source version; one worker, then
  as many workers as the remediator has pollers;
- pipeline: Credentials findings (policy: auto) put on payments-prod's default bus, ten per PutEvents call,
  until every object version is in quarantine: member rule -> central bus -> intake queue -> finding
  handler (state table, Slack post, remediation queue) -> remediator (STS, S3 move, state table, Slack
  update);
- the pipeline's calls, bare (the floor): the AWS calls a design with this architecture's properties makes per
  finding at the least, made directly, one after another, with no handler code, ten findings to an intake batch
  and their ten jobs to a remediator batch, as the pipeline takes them. Per batch: PutEvents (moto forwards them
  to the central bus and the intake queue), receive and delete them from the intake queue, the account's
  exemptions (GetItem: §16); the group, once (GetItem: a join builds on the group as its own last join left it,
  §22; the pipeline reads it again at most every 5 s, or after another container's join);
  per finding: one TransactWriteItems creating the record, its object version's claim (§5) and its join of the
  group (§22), GenerateMac (the signed auto approval, §23), UpdateItem (the transition and the approval: §5),
  SendMessage (the job); per batch of jobs: ReceiveMessage; per job: GetItem, VerifyMac, AssumeRole (one session
  per finding, §7), the move's five S3 calls (HEAD the source version, its tags, the copy verified from its own
  response, the delete, the key's versions listed: §7), UpdateItem (the outcome), the group's count (UpdateItem);
  DeleteMessageBatch. No Slack call: a flood's findings join one group, whose members are shown by its digest
  (§22), not a message each (the pipeline posts the group's first member and the digest writer's pages and
  updates, a dozen a group: timing, not the finding). The floor runs twice, with the pollers stopped:
  - *the least parameters* (:class:`LeastRequests`): each call with the least it can carry; its call count is
    the floor of the calls per finding;
  - *as the pipeline sends them* (:class:`AsSent`): each call with the parameters the pipeline sent for one of
    its warm-up findings (captured by :class:`RequestCapture`, untimed: the record's item with its summary and
    audit entry, the transitions' expressions, the approval, the session policy, the copy request), that
    finding's identities replaced by each floor finding's. This is the pipeline's own calls made bare: the
    handlers' share is judged against it. The difference between the two is what the design's items and
    requests cost the calls (moto's CPU and botocore's), not what handler code costs.
  Their ratio to bare S3 is the floor of the pipeline's ratio in this sandbox (every call here costs about as
  much as an S3 call: moto serves them all in this process).

  What is in it, and why (issue 18; architecture §9 has the table of every call): a call is in the floor when a
  property of the design needs it, whatever code makes it, and out of it when a better design keeps every
  property without it. In: the KMS calls and the group's (§22, §23: the target of 13 calls predates both); the
  decided UpdateItem (the approval must be on the record before the job can be verified); the exemptions' read
  per batch; the source's tags and the key's listing (the restore puts the tags back; the outcome message says
  what the key holds now). Out: a HEAD after the copy (CopyObject's response verifies a single-part copy), a
  second transaction of the intake for the join, a group read per finding, a receive and a delete per job (the
  pipeline makes none of them since issue 18's fifth and sixth rounds). Not counted in either: the pollers'
  empty receives and the digest writer's work, which depend on timing, not on the finding: the pipeline's count
  has them, and lists them apart (receives that returned nothing are counted as ``ReceiveMessage (empty)``; the
  digest writer by function).

Printed side by side: seconds in total, milliseconds per finding, findings per second, this process's CPU
milliseconds per finding (steadier than the wall clock on a shared machine), the ratio of the pipeline's
time per finding to the bare S3 time per finding, and to its own calls made bare (target, issue 18: at most
1.6x), with the CPU of the pipeline and of the floor split by thread (each function's pollers, the bench's
thread, and the rest: moto serving the calls); then the AWS calls per finding, the pipeline's apart from the
bench's own while it waits: every call; the calls the findings caused, judged against issue 18's target of at
most 13 (every call but idle polling: a poller's receives that returned nothing are paid per second it runs,
on Lambda too, not per finding; the digest writer's work is counted); a finding's own (without the digest writer,
against the floor); and the Slack Web API calls. (Issue 18 withdrew the 2.0x-of-bare-S3 target: this
emulator serves every call at about an S3 call's cost, so the floor alone is about 3x.)
Slack's rate limits are off here: with them, one channel takes one message per second and the workspace
about 50 updates a minute, which would measure Slack, not the pipeline. The queues' visibility timeout is
the stacks' (6x the function timeout), and the remediator takes up to ten jobs per invocation, as deployed.
The handlers' own log and metric lines are discarded. Timings only print; nothing asserts on them.

Run: ``.venv/bin/python bench/bench_pipeline.py [findings]`` (default 200).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.client

from macie_chatops import names
from macie_chatops.config import load_config
from macie_chatops.states import State
from macie_chatops_sandbox.commands import handler_logs_to
from macie_chatops_sandbox.findings import StoredObject, macie_finding_event, sample_body
from macie_chatops_sandbox.provision import QueueSettings
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.6  # the pipeline / its own calls made bare
TARGET_CALLS = 13.0  # AWS calls per auto finding
ACCOUNT = "345678901234"  # payments-prod: Credentials -> auto
REGION = "us-east-1"
CREDENTIALS = "SensitiveData:S3Object/Credentials"


def upload(sandbox: Sandbox, bucket: str, count: int) -> list[StoredObject]:
    """``count`` dummy credential files in a new versioned bucket of payments-prod (setup, not timed)."""
    body = sample_body(CREDENTIALS)
    sandbox.ensure_bucket(ACCOUNT, REGION, bucket)
    s3 = sandbox.client("s3", ACCOUNT, REGION)

    def put(index: int) -> StoredObject:
        key = f"ci/{index:05d}/.env"
        written = s3.put_object(Bucket=bucket, Key=key, Body=body)
        return StoredObject(bucket, key, written["VersionId"], written["ETag"].strip('"'), len(body))

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(put, range(count)))


DIGEST_WRITER = names.DIGEST_WRITER_FUNCTION_NAME
HARNESS = "harness"  # the bench's own calls while it waits for the pipeline (its main thread)


class CallCounter:
    """AWS API calls made in this process (every client: handlers, pollers, bench), by service.operation, and
    by the sandbox function whose poller thread made them (``by_function``, "other" for other threads).

    Calls from the bench's main thread other than the input (PutEvents) are the harness waiting for the
    pipeline; they are counted under their own heading, apart from the pipeline's."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.by_function: Counter[str] = Counter()
        self.counting = False
        self._lock = threading.Lock()
        original = getattr(botocore.client.BaseClient, "_make_api_call")  # noqa: B009 (private, untyped)
        counter = self
        main = threading.main_thread()

        def counted(client: Any, operation: str, params: Any) -> Any:
            if not counter.counting:
                return original(client, operation, params)
            empty = False
            try:
                response = original(client, operation, params)
                empty = operation == "ReceiveMessage" and not response.get("Messages")
                return response
            finally:
                name = f"{client.meta.service_model.service_name}.{operation}" + (" (empty)" if empty else "")
                thread = threading.current_thread()
                if thread is main and operation != "PutEvents":
                    name = f"{HARNESS}: {name}"
                function = thread.name.split("-poller-")[0] if "-poller-" in thread.name else "other"
                with counter._lock:
                    counter.calls[name] += 1
                    if not name.startswith(HARNESS):
                        counter.by_function[f"{function}: {name}"] += 1

        setattr(botocore.client.BaseClient, "_make_api_call", counted)  # noqa: B010

    @contextlib.contextmanager
    def count(self) -> Iterator[Counter[str]]:
        self.calls = Counter()
        self.by_function = Counter()
        self.counting = True
        try:
            yield self.calls
        finally:
            self.counting = False


def bare_move(s3: Any, stored: StoredObject, quarantine_bucket: str) -> None:
    s3.head_object(Bucket=stored.bucket, Key=stored.key, VersionId=stored.version_id)
    target = f"bare/{uuid.uuid4().hex}/{stored.bucket}/{stored.key}"
    copied = s3.copy_object(
        Bucket=quarantine_bucket,
        Key=target,
        CopySource={"Bucket": stored.bucket, "Key": stored.key, "VersionId": stored.version_id},
        MetadataDirective="COPY",
        TaggingDirective="REPLACE",
        Tagging="macie-chatops:finding=bench",
    )
    head = s3.head_object(Bucket=quarantine_bucket, Key=target, VersionId=copied["VersionId"])
    if head["ContentLength"] != stored.size:
        raise RuntimeError("copy size mismatch")
    s3.delete_object(Bucket=stored.bucket, Key=stored.key, VersionId=stored.version_id)


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds, and this process's CPU seconds (every thread: handlers, pollers, moto) meanwhile.

    Everything runs in this one process, so its CPU time is what the work costs; unlike the wall clock it
    hardly moves when other processes share the machine."""

    wall: float
    cpu: float
    # CPU seconds by thread group: each sandbox function's poller threads (its handler, its clients, and the
    # poller's own receive and delete), the bench's main thread; empty where /proc cannot say (not Linux)
    threads: dict[str, float] = field(default_factory=dict)

    @classmethod
    @contextlib.contextmanager
    def of(cls, out: list[Timing]) -> Iterator[None]:
        wall, cpu, threads = time.perf_counter(), time.process_time(), thread_cpu()
        yield
        after = thread_cpu()
        spent = {group: after[group] - threads.get(group, 0.0) for group in after}
        out.append(cls(time.perf_counter() - wall, time.process_time() - cpu, spent))


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's live threads so far, by group (a function's pollers; "bench": the main
    thread), from /proc (nothing elsewhere). Threads that end meanwhile (moto's, one a request) are not
    listed: the process's total less these groups is moto's, the Slack stand-in's and the rest."""
    groups: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and "-poller-" not in thread.name:
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        group = "bench" if thread is main else thread.name.split("-poller-")[0]
        groups[group] = groups.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return groups


def bare_s3(sandbox: Sandbox, objects: list[StoredObject], workers: int) -> Timing:
    s3 = sandbox.client("s3", ACCOUNT, REGION)
    quarantine_bucket = names.quarantine_bucket_name(ACCOUNT, REGION)
    timing: list[Timing] = []
    with Timing.of(timing):
        if workers == 1:
            for stored in objects:
                bare_move(s3, stored, quarantine_bucket)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda o: bare_move(s3, o, quarantine_bucket), objects))
    return timing[0]


def remediator_acks(sandbox: Sandbox) -> int:
    """Jobs the remediator's poller has acknowledged so far (an in-process counter: no AWS call)."""
    poller = next(p for p in sandbox.pollers if p.function.name == names.REMEDIATOR_FUNCTION_NAME)
    return poller.stats.deleted


def pipeline(
    sandbox: Sandbox,
    objects: list[StoredObject],
    calls: CallCounter | None = None,
    findings: list[tuple[str, StoredObject]] | None = None,
) -> Timing:
    """Seconds from the first PutEvents until every finding's object is in quarantine (checked after);
    ``findings``: each finding's id and object are added to it."""
    events = [
        macie_finding_event(
            account_id=ACCOUNT,
            region=REGION,
            finding_type=CREDENTIALS,
            severity="High",
            stored=stored,
            finding_id=uuid.uuid4().hex,
        )
        for stored in objects
    ]
    if findings is not None:
        findings += [(e["detail"]["id"], stored) for e, stored in zip(events, objects, strict=True)]
    member_bus = sandbox.client("events", ACCOUNT, REGION)
    acks_before = remediator_acks(sandbox)
    timing: list[Timing] = []
    with calls.count() if calls is not None else contextlib.nullcontext(), Timing.of(timing):
        for start in range(0, len(events), 10):
            entries = [
                {"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"])}
                for e in events[start : start + 10]
            ]
            result = member_bus.put_events(Entries=entries)
            if result.get("FailedEntryCount"):
                raise RuntimeError(f"put_events failed: {result}")
        # Watch the remediator's in-process counter (polling the queues' attributes all along would take CPU
        # from the pipeline it measures: the handlers, the pollers and moto share one interpreter).
        deadline = time.monotonic() + 600
        while remediator_acks(sandbox) < acks_before + len(events) and time.monotonic() < deadline:
            time.sleep(0.02)
    # Then confirm over SQS that everything is done, untimed: the digest queue's delayed messages (§22) would
    # otherwise count as the pipeline's time, though no object waits for them.
    sandbox.wait_until_idle(timeout_s=max(1.0, deadline - time.monotonic()), poll_s=0.05)
    states = [sandbox.record(e["detail"]["id"]) for e in events]
    wrong = [r.state.value if r else "missing" for r in states if r is None or r.state is not State.QUARANTINED]
    if wrong:
        raise RuntimeError(f"{len(wrong)} findings did not end QUARANTINED: {sorted(set(wrong))}")
    return timing[0]


def floor_calls_made(sandbox: Sandbox, objects: list[StoredObject], requests: FloorRequests) -> Timing:
    """The calls the auto path makes per finding at the least, made directly, one after another, with no handler
    code (see the module docstring), each with the parameters ``requests`` gives it: the least a call can carry
    (:class:`LeastRequests`), or what the pipeline sent for one warm-up finding with each floor finding's identities
    in (:class:`SentRequests`). Findings arrive ten to an intake batch and their jobs ten to a remediator batch, as
    the pipeline takes them. Run with the sandbox's pollers stopped, so the bench is the only consumer of the queues.
    """
    security, region = sandbox.security_account, sandbox.home_region
    provisioned = sandbox.provisioned
    sqs, dynamodb = sandbox.client("sqs", security, region), sandbox.client("dynamodb", security, region)
    sts, kms = sandbox.client("sts", security, region), sandbox.client("kms", security, region)
    member_bus, s3 = sandbox.client("events", ACCOUNT, REGION), sandbox.client("s3", ACCOUNT, REGION)
    table = provisioned.table_name
    # Every finding's requests with its identities in, made before the clock starts (what a call's answer teaches,
    # the group's count, the MAC and the copy's version, is put in as the calls are made).
    findings = [requests.render(uuid.uuid4().hex, stored) for stored in objects]
    timing: list[Timing] = []
    with Timing.of(timing):
        for start in range(0, len(findings), 10):
            batch = findings[start : start + 10]
            member_bus.put_events(Entries=[finding.entry for finding in batch])
            received: list[dict[str, Any]] = []
            while len(received) < len(batch):
                received += sqs.receive_message(
                    QueueUrl=provisioned.intake.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            sqs.delete_message_batch(
                QueueUrl=provisioned.intake.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
            )
            # The account's exemptions, once per batch (§16: one recorded before the batch applies to it)
            dynamodb.get_item(TableName=table, Key=FLOOR_EXEMPTIONS, ConsistentRead=True)
            if start == 0:  # the group, read once: a join builds on the group as its own last join left it (§22)
                group = dynamodb.get_item(TableName=table, Key=requests.group_key, ConsistentRead=True)["Item"]
                count, was_dirty = int(group["member_count"]["N"]), bool(group.get("dirty", {}).get("BOOL", False))
            macs: list[bytes] = []
            entries: list[dict[str, Any]] = []
            for finding in batch:
                count += 1
                if requests.born_decided:  # signed first, the record born APPROVED with it (§5, §23)
                    macs.append(kms.generate_mac(**finding.steps["mac"])["Mac"])
                    dynamodb.transact_write_items(TransactItems=requests.join(finding, count, was_dirty, macs[-1]))
                else:
                    dynamodb.transact_write_items(TransactItems=requests.join(finding, count, was_dirty, None))
                    macs.append(kms.generate_mac(**finding.steps["mac"])["Mac"])
                    dynamodb.update_item(**requests.decided(finding, macs[-1]))
                was_dirty = True
                if requests.batched_jobs:
                    entries.append({"Id": str(len(entries)), **finding.steps["job_entry"]})
                else:
                    sqs.send_message(**finding.steps["job"])
            if entries:  # the batch's jobs in one call
                sqs.send_message_batch(QueueUrl=provisioned.remediation.url, Entries=entries)
            jobs: list[dict[str, Any]] = []
            while len(jobs) < len(batch):
                jobs += sqs.receive_message(
                    QueueUrl=provisioned.remediation.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            for finding, mac in zip(batch, macs, strict=True):
                dynamodb.get_item(**finding.steps["record"])
                kms.verify_mac(**{**finding.steps["verify"], "Mac": mac})
                sts.assume_role(**finding.steps["assume"])
                s3.head_object(**finding.steps["head"])
                s3.get_object_tagging(**finding.steps["tags"])
                copied = s3.copy_object(**finding.steps["copy"])
                if not copied.get("VersionId"):
                    raise RuntimeError("the copy has no version id")
                s3.delete_object(**finding.steps["delete"])
                s3.list_object_versions(**finding.steps["list"])
                dynamodb.update_item(**requests.outcome(finding, copied["VersionId"]))
                dynamodb.update_item(**finding.steps["counts"])
            sqs.delete_message_batch(
                QueueUrl=provisioned.remediation.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(jobs)],
            )
    return timing[0]


@dataclass(frozen=True)
class FloorFinding:
    """One floor finding: its id, its object, its event's entry for PutEvents, and its calls' parameters by step."""

    finding_id: str
    stored: StoredObject
    entry: dict[str, Any]
    steps: dict[str, Any]

    @classmethod
    def of(cls, finding_id: str, stored: StoredObject, steps: dict[str, Any]) -> FloorFinding:
        event = macie_finding_event(
            account_id=ACCOUNT, region=REGION, finding_type=CREDENTIALS, severity="High", stored=stored,
            finding_id=finding_id,
        )  # fmt: skip
        entry = {"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}
        return cls(finding_id, stored, entry, steps)


class FloorRequests:
    """What each of the floor's calls carries (:func:`floor_calls`)."""

    group_key: dict[str, Any]
    born_decided: bool  # a later member's record is born APPROVED with its approval: no decided UpdateItem
    batched_jobs: bool  # an intake batch's jobs go out in one SendMessageBatch

    def prepare(self, dynamodb: Any, table: str) -> None:
        """The floor's group, before its calls are counted and timed."""
        raise NotImplementedError

    def render(self, finding_id: str, stored: StoredObject) -> FloorFinding:
        raise NotImplementedError

    def join(self, finding: FloorFinding, seq: int, was_dirty: bool, mac: bytes | None) -> list[Any]:
        raise NotImplementedError

    def decided(self, finding: FloorFinding, mac: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def outcome(self, finding: FloorFinding, copy_version: str) -> dict[str, Any]:
        raise NotImplementedError


MAC = "HMAC_SHA_256"
FLOOR_EXEMPTIONS = {names.STATE_TABLE_KEY: {"S": f"exemptions#{ACCOUNT}"}}


class LeastRequests(FloorRequests):
    """Each call with the least it can carry: a record of a few attributes, one-clause updates, a one-word job."""

    def __init__(self, sandbox: Sandbox, *, born_decided: bool, batched_jobs: bool) -> None:
        from macie_chatops.sessions import role_arn

        self.group_key = {names.STATE_TABLE_KEY: {"S": "group#bench-floor"}}
        self.born_decided, self.batched_jobs = born_decided, batched_jobs
        self._table = sandbox.provisioned.table_name
        self._queue = sandbox.provisioned.remediation.url
        self._key = sandbox.provisioned.approval_key_arn
        self._role = role_arn(ACCOUNT, sandbox.config.deployment.remediation_role_name)
        self._quarantine = names.quarantine_bucket_name(ACCOUNT, REGION)

    def prepare(self, dynamodb: Any, table: str) -> None:
        dynamodb.put_item(TableName=table, Item={**self.group_key, "member_count": {"N": "0"}})

    def render(self, finding_id: str, stored: StoredObject) -> FloorFinding:
        table, record = self._table, {names.STATE_TABLE_KEY: {"S": finding_id}}
        source = {"Bucket": stored.bucket, "Key": stored.key, "VersionId": stored.version_id}
        steps = {
            "mac": {"Message": finding_id.encode(), "KeyId": self._key, "MacAlgorithm": MAC},
            "job": {"QueueUrl": self._queue, "MessageBody": json.dumps({"id": finding_id})},
            "job_entry": {"MessageBody": json.dumps({"id": finding_id})},
            "record": {"TableName": table, "Key": record, "ConsistentRead": True},
            "verify": {"Message": finding_id.encode(), "KeyId": self._key, "MacAlgorithm": MAC},
            "assume": {
                "RoleArn": self._role, "RoleSessionName": f"macie-chatops-{finding_id}", "SourceIdentity": "auto",
            },
            "head": source,
            "tags": source,
            # Only onto a free key, tagged in the request, verified from CopyObject's own response (§7)
            "copy": {
                "Bucket": self._quarantine, "Key": f"floor/{finding_id}/{stored.bucket}/{stored.key}",
                "CopySource": source, "IfNoneMatch": "*", "MetadataDirective": "COPY", "TaggingDirective": "REPLACE",
                "Tagging": "macie-chatops:finding=bench", "ChecksumAlgorithm": "CRC32",
            },
            "delete": source,
            "list": {"Bucket": stored.bucket, "Prefix": stored.key},
            "counts": {  # the group's counts follow the outcome (§22)
                "TableName": table, "Key": self.group_key, "UpdateExpression": "ADD #q :one",
                "ExpressionAttributeNames": {"#q": "quarantined"}, "ExpressionAttributeValues": {":one": {"N": "1"}},
            },
        }  # fmt: skip
        return FloorFinding.of(finding_id, stored, steps)

    def join(self, finding: FloorFinding, seq: int, was_dirty: bool, mac: bytes | None) -> list[Any]:
        """The record (with its group and seq; born APPROVED with its signed approval when ``mac`` is given) and its
        object version's claim, both new; the group's count (on the count known) and the member in its page (§5,
        §22). (The pipeline's also checks the group key's pointer.)"""
        absent = {
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": names.STATE_TABLE_KEY},
        }
        record = {
            names.STATE_TABLE_KEY: {"S": finding.finding_id},
            "state": {"S": "RECEIVED" if mac is None else "APPROVED"},
            "summary": {"M": {"key": {"S": finding.stored.key}, "versionId": {"S": finding.stored.version_id}}},
            "audit": {"L": [{"M": {"event": {"S": "received"}, "actor": {"S": "auto"}}}]},
            "group_id": {"S": "bench-floor"},
            "group_seq": {"N": str(seq)},
        }
        if mac is not None:
            record["approval_mac"] = {"B": mac}
        claim = {names.STATE_TABLE_KEY: {"S": f"object#{finding.finding_id}"}, "claimed_by": {"S": finding.finding_id}}
        page = {names.STATE_TABLE_KEY: {"S": f"group#bench-floor#page#{(seq - 1) // 100 + 1}"}}
        return [
            {"Put": {"TableName": self._table, "Item": record, **absent}},
            {"Put": {"TableName": self._table, "Item": claim, **absent}},
            {
                "Update": {
                    "TableName": self._table, "Key": self.group_key, "UpdateExpression": "SET #count = :next",
                    "ConditionExpression": "#count = :count", "ExpressionAttributeNames": {"#count": "member_count"},
                    "ExpressionAttributeValues": {":count": {"N": str(seq - 1)}, ":next": {"N": str(seq)}},
                }
            },
            {
                "Update": {
                    "TableName": self._table, "Key": page, "UpdateExpression": "SET #member = :finding",
                    "ExpressionAttributeNames": {"#member": f"m{seq}"},
                    "ExpressionAttributeValues": {":finding": {"S": finding.finding_id}},
                }
            },
        ]  # fmt: skip

    def decided(self, finding: FloorFinding, mac: bytes) -> dict[str, Any]:
        """The transition and the signed approval, before the job can verify it (§5, §23)."""
        return {
            "TableName": self._table, "Key": {names.STATE_TABLE_KEY: {"S": finding.finding_id}},
            "UpdateExpression": "SET #s = :a, #mac = :mac", "ConditionExpression": "#s = :r",
            "ExpressionAttributeNames": {"#s": "state", "#mac": "approval_mac"},
            "ExpressionAttributeValues": {":a": {"S": "APPROVED"}, ":r": {"S": "RECEIVED"}, ":mac": {"B": mac}},
        }  # fmt: skip

    def outcome(self, finding: FloorFinding, copy_version: str) -> dict[str, Any]:
        return {
            "TableName": self._table, "Key": {names.STATE_TABLE_KEY: {"S": finding.finding_id}},
            "UpdateExpression": "SET #s = :q, #v = :v, #a = list_append(#a, :e)",
            "ExpressionAttributeNames": {"#s": "state", "#v": "quarantine_version", "#a": "audit"},
            "ExpressionAttributeValues": {
                ":q": {"S": "QUARANTINED"}, ":v": {"S": copy_version},
                ":e": {"L": [{"M": {"event": {"S": "quarantined"}, "actor": {"S": "remediator"}}}]},
            },
        }  # fmt: skip


# -- the floor as the pipeline sends it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    """One call the pipeline made, as it made it: the thread (its function's poller), the call, and the answer."""

    thread: str
    call: str  # service.Operation, or slack.<method>
    params: Any
    response: Any


class RequestCapture:
    """Every AWS and Slack Web API call of this process that succeeded, with its parameters, while ``on``: the
    warm-up's requests, which the floor sends again as the pipeline's own (untimed: nothing is captured in a
    timed run)."""

    def __init__(self) -> None:
        from slack_sdk.web.base_client import BaseClient as SlackBaseClient

        self.on = False
        self.calls: list[Captured] = []
        self.slack_calls: Counter[str] | None = None  # Slack Web API calls by method, while set
        self._lock = threading.Lock()
        capture = self
        aws_call = getattr(botocore.client.BaseClient, "_make_api_call")  # noqa: B009 (private, untyped)
        slack_call = SlackBaseClient.api_call

        def aws(client: Any, operation: str, params: Any) -> Any:
            response = aws_call(client, operation, params)
            capture.keep(f"{client.meta.service_model.service_name}.{operation}", params, response)
            return response

        def slack(client: Any, api_method: str, **kwargs: Any) -> Any:
            response = slack_call(client, api_method, **kwargs)
            if capture.slack_calls is not None:
                with capture._lock:
                    capture.slack_calls[api_method] += 1
            capture.keep(f"slack.{api_method}", kwargs.get("json") or kwargs.get("params") or {}, response.data)
            return response

        setattr(botocore.client.BaseClient, "_make_api_call", aws)  # noqa: B010
        setattr(SlackBaseClient, "api_call", slack)  # noqa: B010

    def keep(self, call: str, params: Any, response: Any) -> None:
        if self.on:
            with self._lock:
                self.calls.append(Captured(threading.current_thread().name, call, copy.deepcopy(params), response))


@dataclass(frozen=True)
class SentRequests:
    """One warm-up finding's requests, as the pipeline sent them, by the step of the floor that makes the same call;
    the floor sends them again for its own findings with the identities replaced (:func:`substitute`)."""

    finding_id: str
    stored: StoredObject
    group_id: str
    group_key: str
    mac: bytes
    copy_version: str
    steps: dict[str, Any]  # step -> the call's parameters

    @property
    def born_decided(self) -> bool:
        return "decided" not in self.steps

    @property
    def batched_jobs(self) -> bool:
        return "job_entry" in self.steps

    @classmethod
    def of(cls, capture: RequestCapture, findings: list[tuple[str, StoredObject]]) -> SentRequests:
        """The first of ``findings`` whose record was created by a join of an open group (the usual case in a
        flood, not the group's opening), with every step of the floor found in the capture."""
        for finding_id, stored in findings:
            sent = cls._find(capture.calls, finding_id, stored)
            if sent is not None:
                return sent
        raise RuntimeError("no warm-up finding has every request the floor sends again")

    @classmethod
    def _find(cls, calls: list[Captured], finding_id: str, stored: StoredObject) -> SentRequests | None:
        record_key = {names.STATE_TABLE_KEY: {"S": finding_id}}
        steps: dict[str, Any] = {}
        mine = [c for c in calls if any(mark in repr(c.params) for mark in (finding_id, stored.version_id))]
        listing = [c for c in calls if c.call == "s3.ListObjectVersions" and c.params.get("Prefix") == stored.key]
        creation = next((c for c in mine if c.call == "dynamodb.TransactWriteItems"), None)
        if creation is None:
            return None
        items = creation.params["TransactItems"]
        group_updates = [i["Update"] for i in items if "Update" in i and i["Update"]["Key"] != record_key]
        group = next((u for u in group_updates if "#count" in u["ExpressionAttributeNames"]), None)
        check = next((i["ConditionCheck"] for i in items if "ConditionCheck" in i), None)
        if group is None or check is None:  # the group's opening, not a join
            return None
        group_id = group["Key"][names.STATE_TABLE_KEY]["S"].removeprefix("group#")
        steps["creation"] = creation.params
        updates = [c for c in mine if c.call == "dynamodb.UpdateItem" and c.params["Key"] == record_key]
        finding_thread = creation.thread
        # The decided transition, when the record was not born decided (a later member is, since issue 18's
        # seventh round); the outcome, the remediator's
        decided = next((c for c in updates if c.thread == finding_thread), None)
        outcome = next((c for c in updates if c.thread != finding_thread), None)
        if outcome is None:
            return None
        if decided is not None:
            steps["decided"] = decided.params
        steps["outcome"] = outcome.params
        remediator = outcome.thread
        job = next((c for c in mine if c.call == "sqs.SendMessage" and c.thread == finding_thread), None)
        batch = next((c for c in mine if c.call == "sqs.SendMessageBatch" and c.thread == finding_thread), None)
        if job is not None:
            steps["job"] = job.params
        elif batch is not None:  # the batch's jobs in one call: this finding's entry
            entry = next(e for e in batch.params["Entries"] if finding_id in repr(e))
            steps["job_entry"] = {k: v for k, v in entry.items() if k != "Id"}
            steps["job_queue"] = batch.params["QueueUrl"]
        else:
            return None
        on_its_thread = {"mac": finding_thread}
        by_call = {
            "mac": "kms.GenerateMac", "record": "dynamodb.GetItem", "verify": "kms.VerifyMac",
            "assume": "sts.AssumeRole", "head": "s3.HeadObject", "tags": "s3.GetObjectTagging", "copy": "s3.CopyObject",
            "delete": "s3.DeleteObject", "list": "s3.ListObjectVersions",
        }  # fmt: skip
        found = {
            step: next(
                (c for c in mine + listing if c.call == call and c.thread == on_its_thread.get(step, remediator)), None
            )
            for step, call in by_call.items()
        }
        counts = cls._counts_after(calls, steps["outcome"], remediator, group_id)
        if counts is None or any(c is None for c in found.values()):
            return None
        steps |= {step: c.params for step, c in found.items() if c is not None}
        steps["counts"] = counts
        return cls(
            finding_id,
            stored,
            group_id,
            check["Key"][names.STATE_TABLE_KEY]["S"].removeprefix("groupkey#"),
            bytes(found["mac"].response["Mac"]),  # type: ignore[union-attr]
            str(found["copy"].response["VersionId"]),  # type: ignore[union-attr]
            steps,
        )

    @staticmethod
    def _counts_after(calls: list[Captured], outcome: Any, thread: str, group_id: str) -> Any:
        """The group's count update the remediator made after the outcome (§22), in the same thread."""
        index = next(i for i, c in enumerate(calls) if c.params is outcome)
        group_key = {names.STATE_TABLE_KEY: {"S": f"group#{group_id}"}}
        for later in calls[index + 1 :]:
            if later.thread == thread and later.call == "dynamodb.UpdateItem" and later.params["Key"] == group_key:
                return later.params
        return None


def substitute(value: Any, pairs: list[tuple[str, str]]) -> Any:
    """``value`` (a call's parameters) with each string's occurrences of a pair's first part replaced by its second,
    in strings, bytes (a MAC's message) and dictionary keys alike."""
    if isinstance(value, str):
        for old, new in pairs:
            value = value.replace(old, new)
        return value
    if isinstance(value, bytes):
        return substitute(value.decode("latin-1"), pairs).encode("latin-1")
    if isinstance(value, dict):
        return {substitute(k, pairs): substitute(v, pairs) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, pairs) for v in value]
    return value


FLOOR_SENT_GROUP = "f100000000000000000000000000f100"
FLOOR_SENT_DIGEST = "f1" * 32


class AsSent(FloorRequests):
    """Each call with the parameters the pipeline sent for ``sent``'s finding in the warm-up (its items, expressions,
    audit entries, approval, session policy, copy request), that finding's identities replaced by each floor
    finding's: the pipeline's own calls, made bare."""

    def __init__(self, sandbox: Sandbox, sent: SentRequests) -> None:
        self._sandbox = sandbox
        self._sent = sent
        self.group_key = {names.STATE_TABLE_KEY: {"S": f"group#{FLOOR_SENT_GROUP}"}}
        self.born_decided, self.batched_jobs = sent.born_decided, sent.batched_jobs

    def prepare(self, dynamodb: Any, table: str) -> None:
        """The floor's group and its key's pointer, copies of the sample's (same attributes), with no member yet."""
        sent = self._sent
        pairs = [(sent.group_id, FLOOR_SENT_GROUP), (sent.group_key, FLOOR_SENT_DIGEST)]
        for key in (f"group#{sent.group_id}", f"groupkey#{sent.group_key}"):
            item = dynamodb.get_item(TableName=table, Key={names.STATE_TABLE_KEY: {"S": key}}, ConsistentRead=True)
            copy_of = substitute(item["Item"], pairs)
            if "member_count" in copy_of:
                copy_of["member_count"] = {"N": "0"}
            dynamodb.put_item(TableName=table, Item=copy_of)

    def render(self, finding_id: str, stored: StoredObject) -> FloorFinding:
        from macie_chatops.summary import ObjectVersion

        def claim_key(of: StoredObject) -> str:
            return ObjectVersion(ACCOUNT, of.bucket, of.key, of.version_id).claim_key

        sent, sample = self._sent, self._sent.stored
        pairs = [
            (sent.finding_id, finding_id), (claim_key(sample), claim_key(stored)),
            (sample.version_id, stored.version_id), (sample.bucket, stored.bucket), (sample.key, stored.key),
            (sent.group_id, FLOOR_SENT_GROUP), (sent.group_key, FLOOR_SENT_DIGEST),
        ]  # fmt: skip
        return FloorFinding.of(finding_id, stored, substitute(sent.steps, pairs))

    def join(self, finding: FloorFinding, seq: int, was_dirty: bool, mac: bytes | None) -> list[Any]:
        """The pipeline's creation transaction for a member joining at ``seq``: the record (born with its seq, and
        with the approval signed by ``mac`` when born decided), the claim, the group's update on the count and dirty
        mark known, the member in its page, the pointer checked."""
        from macie_chatops.groups import page_number

        page = page_number(seq)
        creation = finding.steps["creation"]
        if mac is not None:
            creation = substitute(
                creation, [(base64.b64encode(self._sent.mac).decode(), base64.b64encode(mac).decode())]
            )
        items: list[Any] = copy.deepcopy(creation["TransactItems"])
        for item in items:
            if "Put" in item and "group_seq" in item["Put"]["Item"]:
                item["Put"]["Item"]["group_seq"] = {"N": str(seq)}
            update = item.get("Update")
            if update is None:
                continue
            values = update.get("ExpressionAttributeValues", {})
            if "#count" in update["ExpressionAttributeNames"]:
                values |= {":count": {"N": str(seq - 1)}, ":seq": {"N": str(seq)}, ":was_dirty": {"BOOL": was_dirty}}
            elif ":number" in values:  # the member's page
                key = update["Key"][names.STATE_TABLE_KEY]["S"]
                update["Key"][names.STATE_TABLE_KEY]["S"] = f"{key.rsplit('#page#', 1)[0]}#page#{page}"
                update["ExpressionAttributeNames"]["#member"] = f"m{seq}"
                values[":number"] = {"N": str(page)}
        return items

    def decided(self, finding: FloorFinding, mac: bytes) -> dict[str, Any]:
        return dict(substitute(finding.steps["decided"], self._mac_learnt(mac)))

    def _mac_learnt(self, mac: bytes) -> list[tuple[str, str]]:
        """The sample's approval MAC (base64, as the record keeps it) replaced by the floor finding's."""
        return [(base64.b64encode(self._sent.mac).decode(), base64.b64encode(mac).decode())]

    def outcome(self, finding: FloorFinding, copy_version: str) -> dict[str, Any]:
        return dict(substitute(finding.steps["outcome"], [(self._sent.copy_version, copy_version)]))


def stop_pollers(sandbox: Sandbox) -> None:
    """Stop the sandbox's Lambda stand-ins (the floor's calls consume the queues themselves)."""
    for poller in sandbox.pollers:
        poller.signal_stop()
    for poller in sandbox.pollers:
        poller.join()


def main() -> int:
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and not sys.argv[1].isdigit()):
        print(__doc__)
        return 0 if sys.argv[1] in {"-h", "--help"} else 2
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    config = load_config(ROOT / "accounts.yaml")
    settings = SandboxSettings(
        # Visibility as the stacks set it (6x the function's timeout): a message never reappears while its
        # handler runs, so the sandbox's visibility heartbeat (its stand-in for that with short test
        # timeouts, and no part of Lambda) stays out of the measurement.
        queues=QueueSettings(visibility_timeout_s=6 * 60),
        slack_post_limit=None,
        slack_update_limit=None,
        log_level="ERROR",
    )
    counter = CallCounter()
    capture = RequestCapture()
    with open(os.devnull, "w") as sink, handler_logs_to(sink) as out, Sandbox(config, settings) as sandbox:
        print(
            f"auto path over {count} findings; moto at {sandbox.aws_endpoint}; uploading {5 * count + 20} objects…",
            file=out,
            flush=True,
        )
        warm = upload(sandbox, "bench-warmup", 20)
        bare_objects = upload(sandbox, "bench-bare", count)
        bare_parallel_objects = upload(sandbox, "bench-bare-parallel", count)
        pipeline_objects = upload(sandbox, "bench-pipeline", count)
        floor_objects = upload(sandbox, "bench-floor", count)
        sent_floor_objects = upload(sandbox, "bench-floor-sent", count)
        # Warm both paths (imports, first clients, STS session) outside the timings.
        bare_s3(sandbox, warm[:10], 1)
        warm_findings: list[tuple[str, StoredObject]] = []
        capture.on = True  # the warm-up's requests, which the floor sends again as the pipeline's own
        pipeline(sandbox, warm[10:], findings=warm_findings)
        capture.on = False
        sent = SentRequests.of(capture, warm_findings)
        capture.calls.clear()
        workers = settings.remediator_concurrency
        with counter.count() as bare_calls:
            bare_one = bare_s3(sandbox, bare_objects, 1)
        bare_many = bare_s3(sandbox, bare_parallel_objects, workers)
        capture.slack_calls = slack_calls = Counter[str]()
        piped = pipeline(sandbox, pipeline_objects, counter)
        capture.slack_calls = None
        pipeline_calls, by_function = counter.calls, counter.by_function
        stop_pollers(sandbox)
        least = LeastRequests(sandbox, born_decided=sent.born_decided, batched_jobs=sent.batched_jobs)
        as_sent = AsSent(sandbox, sent)
        for requests in (least, as_sent):  # the floors' groups, before their calls are counted and timed
            dynamodb = sandbox.client("dynamodb", sandbox.security_account, sandbox.home_region)
            requests.prepare(dynamodb, sandbox.provisioned.table_name)
        with counter.count() as floor_calls:
            floor = floor_calls_made(sandbox, floor_objects, least)
        with counter.count() as sent_floor_calls_made:
            sent_floor = floor_calls_made(sandbox, sent_floor_objects, as_sent)

    rows = [
        ("bare S3 ops, 1 worker (HEAD, copy, HEAD, delete)", bare_one),
        (f"bare S3 ops, {workers} workers", bare_many),
        ("pipeline's calls, bare (no handler code)", floor),
        ("the same calls as the pipeline sends them, bare", sent_floor),
        ("pipeline: event in -> object in quarantine", piped),
    ]
    print(f"{'':52} {'total s':>8} {'ms/finding':>11} {'findings/s':>11} {'CPU ms/finding':>15}")
    for label, timing in rows:
        print(
            f"{label:52} {timing.wall:8.2f} {1000 * timing.wall / count:11.1f} {count / timing.wall:11.1f} "
            f"{1000 * timing.cpu / count:15.1f}"
        )
    print(f"ratio pipeline / bare S3 (1 worker): {piped.wall / bare_one.wall:.2f}x")
    print(f"ratio pipeline / bare S3 ({workers} workers): {piped.wall / bare_many.wall:.2f}x")
    print(f"ratio of CPU time per finding, pipeline / bare S3 (1 worker): {piped.cpu / bare_one.cpu:.2f}x")
    print(
        f"floor: the pipeline's calls, bare / bare S3 (1 worker): {floor.wall / bare_one.wall:.2f}x "
        f"(no code can take the pipeline below this here)"
    )
    share = piped.wall / sent_floor.wall
    verdict = "within" if share <= TARGET_RATIO else "ABOVE"
    print(
        f"the handlers' share: pipeline / its own calls as it sends them, bare: {share:.2f}x "
        f"({verdict} the {TARGET_RATIO}x target); in CPU time: {piped.cpu / sent_floor.cpu:.2f}x"
    )
    print(
        f"  against the same calls with the least parameters: {piped.wall / floor.wall:.2f}x, in CPU time "
        f"{piped.cpu / floor.cpu:.2f}x (the difference is what the design's items, expressions, session policy and "
        f"messages cost the calls: moto's CPU, botocore's, the Slack stand-in's)"
    )
    print(
        f"  the floors follow the pipeline's design: a later member born decided: {sent.born_decided}; "
        f"a batch's jobs in one call: {sent.batched_jobs}"
    )
    sent_calls, least_calls = sum(sent_floor_calls_made.values()) / count, sum(floor_calls.values()) / count
    if round(sent_calls, 1) != round(least_calls, 1):
        print(f"  NOTE: the calls as sent made {sent_calls:.2f} calls per finding, with the least {least_calls:.2f}")
    for label, timing in (("pipeline", piped), ("its calls as sent, bare", sent_floor), ("its calls, bare", floor)):
        if timing.threads:
            groups = ", ".join(f"{g} {1000 * c / count:.1f}" for g, c in sorted(timing.threads.items()) if c > 0)
            rest = 1000 * (timing.cpu - sum(timing.threads.values())) / count
            print(f"  CPU ms/finding by thread, {label}: {groups}; moto and the rest {rest:.1f}")
    print()
    print("AWS API calls per finding (all in one process with moto: each costs CPU under one GIL)")
    print(f"  bare S3:  {sum(bare_calls.values()) / count:5.1f}")
    own = Counter({name: n for name, n in pipeline_calls.items() if not name.startswith(HARNESS)})
    harness = Counter({name: n for name, n in pipeline_calls.items() if name.startswith(HARNESS)})
    print(f"  the pipeline's calls, bare (the least parameters): {sum(floor_calls.values()) / count:5.1f}")
    for name, calls in floor_calls.most_common():
        print(f"    {name.removeprefix(f'{HARNESS}: '):52} {calls / count:5.2f}")
    print(f"  pipeline, every call: {sum(own.values()) / count:5.1f}")
    for name, calls in own.most_common():
        print(f"    {name:52} {calls / count:5.2f}")
    slack_detail = ", ".join(f"{method} {n / count:.2f}" for method, n in slack_calls.most_common())
    print(f"  and Slack Web API calls: {slack_calls.total() / count:5.2f}  ({slack_detail})")
    # Idle polling (receives that returned nothing) is paid per second a poller runs, not per finding (Lambda's
    # pollers poll an empty queue too); the digest writer's work is caused by the findings (a dozen updates a group).
    idle = sum(n for name, n in own.items() if name.endswith("(empty)"))
    digest = sum(n for op, n in by_function.items() if op.startswith(DIGEST_WRITER) and not op.endswith("(empty)"))
    caused = (sum(own.values()) - idle) / count
    verdict = "within" if round(caused, 1) <= TARGET_CALLS else "ABOVE"
    print(
        f"  pipeline, the calls the findings caused (every call but idle polling, {idle / count:.2f}; the digest "
        f"writer's {digest / count:.2f} included): {caused:5.1f}  ({verdict} the target of {TARGET_CALLS:g})"
    )
    print(
        f"  pipeline, a finding's own calls (no idle polling, no digest writer): "
        f"{(sum(own.values()) - idle - digest) / count:5.1f}  (the floor: {sum(floor_calls.values()) / count:.1f})"
    )
    print("  the pipeline's calls by the function that made them (a poller's empty receives included)")
    for function in sorted({name.split(": ", 1)[0] for name in by_function}):
        made = Counter({op.split(": ", 1)[1]: n for op, n in by_function.items() if op.startswith(f"{function}: ")})
        detail = ", ".join(f"{op} {n / count:.2f}" for op, n in made.most_common())
        print(f"    {function:36} {made.total() / count:5.2f}  ({detail})")
    print(f"  bench harness, waiting for the pipeline: {sum(harness.values()) / count:5.2f}")
    for name, calls in harness.most_common():
        print(f"    {name:52} {calls / count:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
