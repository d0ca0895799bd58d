"""Policy findings end to end (docs/architecture.md §18): the real finding, interaction and remediator handlers
against moto (the member account's bucket and role, the state table, the queue) and the Slack stand-in.

One record and one message per finding whatever its count; the fix (the bucket's public access block) and its
Undo through the member role, checked against the bucket's configuration in S3.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.cli import main
from macie_chatops.config import Config, load_config, parse_config
from macie_chatops.handlers import intake as intake_handler
from macie_chatops.handlers import interaction as interaction_handler
from macie_chatops.handlers import remediation as remediation_handler
from macie_chatops.jobs import RemediationJob, SqsJobQueue
from macie_chatops.public_access import SETTINGS
from macie_chatops.remediation import JobResult, RemediationDependencies, handle_job
from macie_chatops.sessions import MemberSessions
from macie_chatops.states import State
from macie_chatops.store import FindingRecord, FindingStore
from macie_chatops.sweeper import SweepDependencies, SweepPolicy, Verdict, sweep
from macie_chatops_sandbox.slack_clicks import api_gateway_event, signed_click_event, signed_form
from macie_chatops_sandbox.slack_standin import SlackStandIn
from macie_chatops_sandbox.testkit.world import (
    SIGNING_SECRET,
    LambdaContext,
    SqsDelivery,
    approval_verifier,
    aws_client,
    create_remediation_queue,
    drain_jobs,
    invoke_batch,
    provision_handler,
    slack_client,
)
from tests.conftest import EVENTS_DIR, ROOT, AwsSandbox
from tests.functional.move_world import (
    MEMBER_A,
    ROLE_NAME,
    MoveWorld,
    build_move_world,
    iam_enforced,
    member_role,
    remediator_user,
)

TABLE = "policy-findings-test"
PAYMENTS = "C0PAYMENTS"
BUCKET = "payments-prod-exports"
PUBLIC = "policy-bucket-public"  # Policy:IAMUser/S3BucketPublic, count 1
BPA_DISABLED = "policy-block-public-access-disabled"  # Policy:IAMUser/S3BlockPublicAccessDisabled, count 1
ALL_ON = dict.fromkeys(SETTINGS, True)


class IntakeDelivery(SqsDelivery):
    queue_name = names.INTAKE_QUEUE_NAME
    sender_id = "AIDAEVENTBRIDGE"


class JobDelivery(SqsDelivery):
    queue_name = names.REMEDIATION_QUEUE_NAME
    sender_id = "AROAREMEDIATOR"


def event(name: str, *, count: int = 1, updated_at: str | None = None) -> dict[str, Any]:
    """A fixture event as Macie publishes a later occurrence: the same finding id, its count and time moved."""
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    changed = copy.deepcopy(loaded)
    changed["detail"]["count"] = count
    if updated_at is not None:
        changed["detail"]["updatedAt"] = updated_at
    return changed


def policy_config(actions: dict[str, str]) -> Config:
    """accounts.yaml with these policy-finding actions added to the organisation's policy."""
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
    listed = "".join(f"    {finding_type}: {action}\n" for finding_type, action in actions.items())
    anchor = "    SensitiveData:S3Object/CustomIdentifier: review\n"
    assert anchor in text
    return parse_config(text.replace(anchor, anchor + listed))


@dataclass
class World:
    store: FindingStore
    slack: SlackStandIn
    sqs: Any
    queue_url: str
    moves: MoveWorld
    config: Config

    def deliver(self, body: dict[str, Any]) -> None:
        context = LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60.0)
        failed = invoke_batch(intake_handler.lambda_handler, (IntakeDelivery(json.dumps(body)),), context)
        assert failed == []

    def click(self, action_id: str, finding_id: str, user_id: str = "U0ALICE") -> dict[str, Any]:
        record = self.record(finding_id)
        assert record.slack_ts is not None
        click = signed_click_event(
            SIGNING_SECRET,
            action_id=action_id,
            finding_id=finding_id,
            user_id=user_id,
            team_id="T0EXAMPLE",
            channel_id=PAYMENTS,
            response_url=self.slack.response_url(PAYMENTS, record.slack_ts),
            trigger_id=self.slack.trigger_id(user_id),  # Dismiss opens its form with it (§16)
        )
        return self.invoke(click)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(names.INTERACTION_FUNCTION_NAME, memory_limit_in_mb=512, timeout_s=10.0)
        answer: dict[str, Any] = interaction_handler.lambda_handler(event, context)
        return answer

    def submit(self, user_id: str, **values: str | None) -> dict[str, Any]:
        """Submit the dismissal form last opened for ``user_id``, signed as Slack does; the answer's body."""
        view_id = self.slack.views(user_id)[-1].id
        body, headers = signed_form(SIGNING_SECRET, self.slack.view_submission(view_id, values))
        answer = self.invoke(api_gateway_event(body, headers))
        assert answer["statusCode"] == 200
        result: dict[str, Any] = json.loads(answer["body"])
        return result

    def run_jobs(self) -> list[RemediationJob]:
        """Every queued job, through the real remediator (none may fail)."""
        jobs = drain_jobs(self.sqs, self.queue_url)
        context = LambdaContext(names.REMEDIATOR_FUNCTION_NAME, memory_limit_in_mb=1024, timeout_s=900.0)
        deliveries = tuple(JobDelivery(job.to_message()) for job in jobs)
        assert invoke_batch(remediation_handler.lambda_handler, deliveries, context) == []
        return jobs

    def record(self, finding_id: str) -> FindingRecord:
        record = self.store.get(finding_id)
        assert record is not None, finding_id
        return record

    def posts(self) -> list[Any]:
        return self.slack.messages(PAYMENTS)

    def message_text(self, finding_id: str) -> str:
        record = self.record(finding_id)
        assert record.slack_ts is not None
        return json.dumps(self.slack.message(PAYMENTS, record.slack_ts).blocks, ensure_ascii=False)

    def buttons(self, finding_id: str) -> list[str]:
        record = self.record(finding_id)
        assert record.slack_ts is not None
        blocks = self.slack.message(PAYMENTS, record.slack_ts).blocks
        return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]

    # -- the bucket, as the member account sees it -------------------------------------------------

    def configure(self, settings: dict[str, bool] | None) -> None:
        s3 = self.moves.s3(MEMBER_A)
        if settings is not None:
            s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=settings)

    def configuration(self) -> dict[str, bool] | None:
        s3 = self.moves.s3(MEMBER_A)
        try:
            return dict(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"])
        except s3.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
            return None


def _world(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: Config
) -> World:
    queue_url = create_remediation_queue(aws.region)
    resources = provision_handler(
        config=config,
        config_dir=tmp_path,
        table=TABLE,
        slack=slack,
        setenv=monkeypatch.setenv,
        queue_url=queue_url,
        region=aws.region,
    )
    moves = build_move_world(aws)
    moves.bucket(MEMBER_A, BUCKET)
    return World(resources.store, slack, aws_client("sqs", aws.region), queue_url, moves, config)


def _clear_caches() -> None:
    for handler in (intake_handler, interaction_handler, remediation_handler):
        handler.clear_caches()


@pytest.fixture
def world(aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    config = policy_config(
        {
            "Policy:IAMUser/S3BucketPublic": "review",
            "Policy:IAMUser/S3BlockPublicAccessDisabled": "auto",
        }
    )
    built = _world(aws, slack, tmp_path, monkeypatch, config)
    _clear_caches()
    try:
        yield built
    finally:
        _clear_caches()


def finding_id_of(name: str) -> str:
    return str(event(name)["detail"]["id"])


# -- one record, one message --------------------------------------------------------------------------------


def test_a_policy_finding_reported_again_updates_its_one_record_and_its_one_message(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    # GIVEN a public-bucket finding (policy: review), posted for approval
    world.deliver(event(PUBLIC, count=1))
    record = world.record(finding_id)
    assert record.state is State.PENDING_APPROVAL
    assert record.policy is not None and record.policy.count == 1 and record.policy_shown_count == 1
    assert world.buttons(finding_id) == [names.ACTION_BLOCK_PUBLIC_ACCESS, names.ACTION_DISMISS]
    assert "1 time" in world.message_text(finding_id)
    # WHEN Macie reports it again under the same id, count 3
    world.deliver(event(PUBLIC, count=3, updated_at="2026-11-20T16:15:04.250Z"))
    # THEN one record, still awaiting approval, with the new count and time
    record = world.record(finding_id)
    assert record.state is State.PENDING_APPROVAL
    assert record.policy is not None and record.policy.count == 3
    assert record.policy.updated_at == "2026-11-20T16:15:04.250000Z"
    assert record.policy_shown_count == 3
    # AND one message, updated in place: it shows the count, and its buttons still work
    (message,) = world.posts()
    assert message.ts == record.slack_ts
    text = world.message_text(finding_id)
    assert "3 times" in text and "1 time" not in text
    assert world.buttons(finding_id) == [names.ACTION_BLOCK_PUBLIC_ACCESS, names.ACTION_DISMISS]
    assert [e.event for e in record.audit] == ["received", "slack_posted", "decided", "occurred_again", "slack_updated"]


def test_an_older_or_repeated_occurrence_changes_nothing(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    # GIVEN the finding recorded at count 3
    world.deliver(event(PUBLIC, count=1))
    world.deliver(event(PUBLIC, count=3))
    before = world.record(finding_id)
    updates = world.slack.request_count("chat.update")
    # WHEN the count-2 occurrence arrives late, and the count-3 one is delivered again
    world.deliver(event(PUBLIC, count=2))
    world.deliver(event(PUBLIC, count=3))
    # THEN the count never goes down, the record is unchanged and the message is not touched
    after = world.record(finding_id)
    assert after.policy is not None and after.policy.count == 3
    assert after.audit == before.audit
    assert world.slack.request_count("chat.update") == updates
    assert len(world.posts()) == 1


def test_a_failed_message_update_is_retried_by_the_redelivery(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    world.deliver(event(PUBLIC, count=1))
    # GIVEN Slack failing the next chat.update
    world.slack.fail_next("chat.update", error="internal_error")
    # WHEN the count-2 occurrence arrives: the count is recorded, the update fails, the message returns to the queue
    context = LambdaContext(names.FINDING_FUNCTION_NAME, memory_limit_in_mb=256, timeout_s=60.0)
    body = IntakeDelivery(json.dumps(event(PUBLIC, count=2)))
    assert invoke_batch(intake_handler.lambda_handler, (body,), context) == [body.message_id]
    record = world.record(finding_id)
    assert record.policy is not None and record.policy.count == 2 and record.policy_shown_count == 1
    # THEN the redelivery updates the message once, and records it
    world.deliver(event(PUBLIC, count=2))
    record = world.record(finding_id)
    assert record.policy_shown_count == 2
    assert "2 times" in world.message_text(finding_id)
    assert [e.event for e in record.audit][-3:] == ["occurred_again", "slack_update_failed", "slack_updated"]


def test_policy_findings_are_ignored_unless_configured(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN accounts.yaml as shipped: no action listed for policy findings
    built = _world(aws, slack, tmp_path, monkeypatch, load_config(ROOT / "accounts.yaml"))
    _clear_caches()
    try:
        # WHEN a public-bucket finding arrives, and again with count 2
        built.deliver(event(PUBLIC, count=1))
        built.deliver(event(PUBLIC, count=2))
    finally:
        _clear_caches()
    # THEN it is IGNORED with the reason, its count kept, nothing posted, nothing queued
    record = built.record(finding_id_of(PUBLIC))
    assert record.state is State.IGNORED
    assert "no action configured (ignored by default)" in record.reason
    assert record.policy is not None and record.policy.count == 2
    assert built.posts() == [] and drain_jobs(built.sqs, built.queue_url) == []


# -- the fix and its Undo -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before",
    [
        None,  # no public access block at all
        {"BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": True, "RestrictPublicBuckets": False},
        dict.fromkeys(SETTINGS, False),
    ],
    ids=["none", "partial", "all-off"],
)
def test_block_then_undo_leaves_the_configuration_exactly_as_it_was(
    world: World, before: dict[str, bool] | None
) -> None:
    finding_id = finding_id_of(PUBLIC)
    # GIVEN a public bucket with this configuration, and its finding awaiting approval
    world.configure(before)
    world.deliver(event(PUBLIC))
    # WHEN an approver clicks Block public access and the remediator runs the job
    answer = world.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    assert answer["statusCode"] == 200
    (job,) = world.run_jobs()
    assert (job.kind, job.requested_by) == ("block_public_access", "U0ALICE")
    # THEN all four settings are on, the configuration before is on the record, the message offers Undo
    assert world.configuration() == ALL_ON
    record = world.record(finding_id)
    assert record.state is State.PUBLIC_ACCESS_BLOCKED
    assert record.public_access is not None
    assert record.public_access["previous"] == ("none" if before is None else json.dumps(before))
    assert world.buttons(finding_id) == [names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS]
    # WHEN an approver clicks Undo and the remediator runs it
    world.click(names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS, finding_id, user_id="U0BOB")
    (undo,) = world.run_jobs()
    assert (undo.kind, undo.requested_by) == ("undo_block_public_access", "U0BOB")
    # THEN the bucket's configuration is exactly what it was (none stays none)
    assert world.configuration() == before
    record = world.record(finding_id)
    assert record.state is State.UNDONE and record.error is None
    assert world.buttons(finding_id) == []
    assert "Block undone" in world.message_text(finding_id)


def test_undo_refuses_to_overwrite_a_configuration_changed_since_the_fix(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    world.deliver(event(PUBLIC))
    world.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    world.run_jobs()
    # GIVEN someone changed the bucket's block after the fix
    changed = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True,
    }
    world.configure(changed)
    # WHEN Undo is clicked and run
    world.click(names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS, finding_id)
    world.run_jobs()
    # THEN their configuration is kept, the finding is still blocked, and the message says why Undo was not done
    assert world.configuration() == changed
    record = world.record(finding_id)
    assert record.state is State.PUBLIC_ACCESS_BLOCKED
    assert record.error is not None and "changed since the fix" in record.error
    assert "changed since the fix" in world.message_text(finding_id)


def test_an_auto_policy_finding_is_blocked_without_a_click(world: World) -> None:
    finding_id = finding_id_of(BPA_DISABLED)
    world.configure(dict.fromkeys(SETTINGS, False))
    # WHEN a block-public-access-disabled finding arrives (policy: auto)
    world.deliver(event(BPA_DISABLED))
    (job,) = world.run_jobs()
    # THEN it is blocked by the policy, and the one message says so, with Undo
    assert (job.kind, job.requested_by) == ("block_public_access", "auto")
    assert world.configuration() == ALL_ON
    record = world.record(finding_id)
    assert record.state is State.PUBLIC_ACCESS_BLOCKED and record.approver == "auto"
    assert len(world.posts()) == 1
    assert world.buttons(finding_id) == [names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS]


def test_a_redelivered_block_job_keeps_the_configuration_recorded_first(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    partial = {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    world.configure(partial)
    world.deliver(event(PUBLIC))
    world.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    (job,) = drain_jobs(world.sqs, world.queue_url)
    # GIVEN the job ran once (the bucket is blocked) and is delivered again
    context = LambdaContext(names.REMEDIATOR_FUNCTION_NAME, memory_limit_in_mb=1024, timeout_s=900.0)
    for _ in range(2):
        assert invoke_batch(remediation_handler.lambda_handler, (JobDelivery(job.to_message()),), context) == []
    # THEN the configuration before the fix is still the one first recorded (not the blocked one)
    record = world.record(finding_id)
    assert record.public_access is not None and record.public_access["previous"] == json.dumps(partial)
    assert [e.event for e in record.audit].count("public_access_recorded") == 1


# -- failures -----------------------------------------------------------------------------------------------


class Counter:
    def count(self, name: str, **dimensions: str) -> None:
        return None


def _enforced_deps(
    world: World, member_policy: dict[str, Any] | None, remediator: dict[str, Any]
) -> RemediationDependencies:
    """The remediator's dependencies as an IAM user with ``remediator``'s permissions, assuming a member role
    with ``member_policy`` (None: no member role at all), for moto's IAM enforcement."""

    if member_policy is not None:
        member_role(world.moves, MEMBER_A, member_policy)
    session = remediator_user(world.moves.aws, remediator).session()
    return RemediationDependencies(
        config=world.config,
        store=FindingStore(session.client("dynamodb"), TABLE),
        sessions=MemberSessions(role_name=ROLE_NAME, base_session=session),
        slack=slack_client(world.slack),
        metrics=Counter(),
        verifier=approval_verifier(session=session),
    )


ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
# A member role deployed before this release: it may move objects, not touch a bucket's public access block.
OBJECTS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject*", "s3:PutObject*", "s3:ListBucket*"], "Resource": "*"}],
}


def test_a_member_role_without_the_new_permissions_fails_permanently_and_says_which(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    world.configure(None)
    world.deliver(event(PUBLIC))
    world.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    (job,) = drain_jobs(world.sqs, world.queue_url)
    deps = _enforced_deps(world, OBJECTS_ONLY, ALLOW_ALL)
    # WHEN the block job runs with a member role that lacks s3:Get/PutBucketPublicAccessBlock
    with iam_enforced(world.moves.aws):
        result = handle_job(job.to_message(), deps)
    # THEN the finding is FAILED for good (no retry loop), naming the permissions and the StackSet to deploy
    assert result is JobResult.FAILED
    record = world.record(finding_id)
    assert record.state is State.FAILED and record.outcome == "failed"
    assert record.error is not None and "s3:PutBucketPublicAccessBlock" in record.error
    assert names.MEMBER_ROLES_STACKSET_NAME in record.error
    # AND the bucket is untouched, and the message says what failed and how to retry
    assert world.configuration() is None
    assert "macie-chatops retry" in world.message_text(finding_id)


def test_a_role_that_cannot_be_assumed_fails_naming_it(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    world.deliver(event(PUBLIC))
    world.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    (job,) = drain_jobs(world.sqs, world.queue_url)
    # GIVEN a remediator that may use its table but not assume member roles
    no_sts = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["dynamodb:*", "kms:VerifyMac"], "Resource": "*"}],
    }
    deps = _enforced_deps(world, None, no_sts)
    with iam_enforced(world.moves.aws):
        result = handle_job(job.to_message(), deps)
    # THEN FAILED (assume_role_denied), the bucket untouched
    assert result is JobResult.FAILED
    record = world.record(finding_id)
    assert record.state is State.FAILED and record.outcome == "assume_role_denied"
    assert world.configuration() is None


def test_undo_denied_leaves_the_block_and_says_why(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    world.deliver(event(PUBLIC))
    world.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    world.run_jobs()
    world.click(names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS, finding_id)
    (undo,) = drain_jobs(world.sqs, world.queue_url)
    deps = _enforced_deps(world, OBJECTS_ONLY, ALLOW_ALL)
    # WHEN the Undo runs with a member role that may not touch the block
    with iam_enforced(world.moves.aws):
        result = handle_job(undo.to_message(), deps)
    # THEN the bucket stays blocked, the finding returns to PUBLIC_ACCESS_BLOCKED with the reason, Undo offered again
    assert result is JobResult.UNDO_REFUSED
    assert world.configuration() == ALL_ON
    record = world.record(finding_id)
    assert record.state is State.PUBLIC_ACCESS_BLOCKED
    assert record.error is not None and "s3:PutBucketPublicAccessBlock" in record.error
    assert world.buttons(finding_id) == [names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS]


def test_jobs_that_do_not_apply_to_the_record_change_nothing(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    world.configure(None)
    world.deliver(event(PUBLIC))
    before = world.record(finding_id)
    deps = _enforced_deps(world, None, ALLOW_ALL)
    # WHEN a block job and an Undo job arrive for a finding nobody approved (forged, or stale)
    for kind in ("block_public_access", "undo_block_public_access", "restore"):
        forged = RemediationJob.model_validate(
            {"kind": kind, "finding_id": finding_id, "requested_by": "U0MALLORY", "requested_at": before.received_at}
        )
        # THEN each is acknowledged as stale: the record and the bucket are as they were
        assert handle_job(forged.to_message(), deps) is JobResult.STALE
    assert world.record(finding_id) == before
    assert world.configuration() is None


def test_pending_lists_a_policy_finding_with_its_bucket(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a public-bucket finding awaiting approval
    world.deliver(event(PUBLIC))
    capsys.readouterr()
    # WHEN an operator lists what awaits approval
    assert main(["pending", "--table", TABLE]) == 0
    # THEN the finding is listed with its bucket (it has no object key)
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert (line["finding_id"], line["bucket"], line["key"]) == (finding_id_of(PUBLIC), BUCKET, "")


class CrashesBeforeRecordingTheBlock(FindingStore):
    """A process that dies after the block was put, before PUBLIC_ACCESS_BLOCKED is written."""

    def transition(self, finding_id: str, **kwargs: Any) -> Any:
        if kwargs.get("target") is State.PUBLIC_ACCESS_BLOCKED:
            raise RuntimeError("simulated crash after the block was put")
        return super().transition(finding_id, **kwargs)


def test_a_crash_after_the_block_resumes_with_the_configuration_recorded_before_it(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    partial = {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    world.configure(partial)
    world.deliver(event(PUBLIC))
    world.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id)
    (job,) = drain_jobs(world.sqs, world.queue_url)

    def deps(store: FindingStore) -> RemediationDependencies:
        return RemediationDependencies(
            config=world.config, store=store, sessions=world.moves.sessions, slack=slack_client(world.slack),
            metrics=Counter(), verifier=approval_verifier(),
        )  # fmt: skip

    # GIVEN the job died after putting the block, before recording it (the bucket already reads all four on)
    crashing = CrashesBeforeRecordingTheBlock(aws_client("dynamodb"), TABLE)
    with pytest.raises(RuntimeError, match="simulated crash"):
        handle_job(job.to_message(), deps(crashing))
    assert world.configuration() == ALL_ON
    assert world.record(finding_id).state is State.APPROVED
    # WHEN SQS delivers the job again
    assert handle_job(job.to_message(), deps(world.store)) is JobResult.PUBLIC_ACCESS_BLOCKED
    # THEN it is recorded, and what Undo will restore is the configuration before the block, not the block
    record = world.record(finding_id)
    assert record.state is State.PUBLIC_ACCESS_BLOCKED
    assert record.public_access is not None and record.public_access["previous"] == json.dumps(partial)
    world.click(names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS, finding_id)
    world.run_jobs()
    assert world.configuration() == partial


def test_a_dismissed_policy_finding_leaves_the_bucket_as_it_is(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    partial = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    world.configure(partial)
    world.deliver(event(PUBLIC))
    # WHEN an approver clicks Dismiss THEN the dismissal form opens, and nothing changes yet
    answer = world.click(names.ACTION_DISMISS, finding_id)
    assert answer["statusCode"] == 200
    assert len(world.slack.views("U0ALICE")) == 1
    assert world.record(finding_id).state is State.PENDING_APPROVAL
    # WHEN they submit it with a reason
    assert world.submit("U0ALICE", reason="Public on purpose", scope="finding") == {"response_action": "clear"}
    # THEN it is DISMISSED with no job, the bucket as it was, the message saying so (and why) without buttons
    record = world.record(finding_id)
    assert record.state is State.DISMISSED
    assert record.entry_into_state is not None and "reason: Public on purpose" in record.entry_into_state.detail
    assert "Public on purpose" in world.message_text(finding_id)
    assert drain_jobs(world.sqs, world.queue_url) == []
    assert world.configuration() == partial
    assert world.buttons(finding_id) == []
    assert "Nothing was changed on the bucket" in world.message_text(finding_id)


def test_a_block_that_never_finishes_is_reported_stuck_on_its_message(world: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    world.deliver(event(PUBLIC))
    # GIVEN its block approved 3 hours ago, and every job for it lost since
    now = [datetime.now(UTC) - timedelta(hours=3)]
    past = FindingStore(aws_client("dynamodb"), TABLE, clock=lambda: now[0])
    approved = past.transition(
        finding_id,
        expected={State.PENDING_APPROVAL},
        target=State.APPROVED,
        actor="U0ALICE",
        event="click:block_public_access",
        updates={"approver": "U0ALICE"},
    )
    assert approved.applied
    deps = SweepDependencies(
        store=past,
        queue=SqsJobQueue(world.sqs, world.queue_url),
        slack=slack_client(world.slack),
        policy=SweepPolicy(stale_after=timedelta(minutes=30), max_requeues=3),
        clock=lambda: now[0],
    )
    # WHEN the sweeper runs every 31 minutes and gives up
    verdicts: list[Verdict] = []
    for _ in range(4):
        now[0] += timedelta(minutes=31)
        verdicts.extend(outcome.verdict for outcome in sweep(deps).outcomes)
        drain_jobs(world.sqs, world.queue_url)
    assert verdicts == [Verdict.REQUEUE] * 3 + [Verdict.GIVE_UP]
    # THEN the one message says the block is stuck and how an operator re-queues it
    text = world.message_text(finding_id)
    assert "Block stuck" in text and "re-queued 3 times" in text
    assert f"macie-chatops sweep --requeue {finding_id}" in text


# -- the approval policy (§15, §16): Block public access counted like Remediate, Dismiss through the form ---------

APPROVERS_LINE = "    approvers: [U0ALICE, S0SECOPS]"


@pytest.fixture
def two_person(
    aws: AwsSandbox, slack: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """The policy world, where the payments team needs two different approvers."""
    reviewed = policy_config({"Policy:IAMUser/S3BucketPublic": "review"})
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
    assert text.count(APPROVERS_LINE) == 1
    strict = parse_config(text.replace(APPROVERS_LINE, "    policy: {approvals_required: 2}\n" + APPROVERS_LINE))
    config = strict.model_copy(update={"policy": reviewed.policy})
    built = _world(aws, slack, tmp_path, monkeypatch, config)
    _clear_caches()
    try:
        yield built
    finally:
        _clear_caches()


def test_the_count_a_policy_finding_needs_is_fixed_at_intake(two_person: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    two_person.deliver(event(PUBLIC))
    record = two_person.record(finding_id)
    assert record.policy is not None and record.policy.approvals_required == 2
    assert "*2 different approvers* of this team must agree to block" in two_person.message_text(finding_id)


def test_one_block_approval_is_counted_and_queues_nothing(two_person: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    two_person.deliver(event(PUBLIC))
    answer = two_person.click(names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id, "U0ALICE")
    assert answer["statusCode"] == 200
    assert drain_jobs(two_person.sqs, two_person.queue_url) == []
    record = two_person.record(finding_id)
    assert record.state is State.PENDING_APPROVAL and record.approvals == ("U0ALICE",)
    counted = record.audit[-1]
    assert (counted.event, counted.outcome) == ("click:block_public_access", "approval_counted")
    assert counted.detail.startswith("approval 1 of 2: in C0PAYMENTS")
    assert "*1 of 2 approvals* by <@U0ALICE>" in two_person.message_text(finding_id)
    assert two_person.buttons(finding_id) == [names.ACTION_BLOCK_PUBLIC_ACCESS, names.ACTION_DISMISS]


@pytest.mark.usefixtures("atomic_moto")
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_block_clicks_by_two_approvers_queue_exactly_one_job(two_person: World, round_: int) -> None:
    finding_id = finding_id_of(PUBLIC)
    two_person.deliver(event(PUBLIC))
    bob = "U0BOB"  # a member of S0SECOPS in the stand-in
    record = two_person.record(finding_id)
    assert record.slack_ts is not None
    events = [
        signed_click_event(
            SIGNING_SECRET,
            action_id=names.ACTION_BLOCK_PUBLIC_ACCESS,
            finding_id=finding_id,
            user_id=user,
            team_id="T0EXAMPLE",
            channel_id=PAYMENTS,
            response_url=two_person.slack.response_url(PAYMENTS, record.slack_ts),
        )
        for user in ("U0ALICE", bob, "U0ALICE")
    ]
    warm_up = signed_click_event(
        SIGNING_SECRET, action_id=names.ACTION_BLOCK_PUBLIC_ACCESS, finding_id="unknown-warmup", user_id="U0ALICE",
        team_id="T0EXAMPLE", channel_id=PAYMENTS,
    )  # fmt: skip
    two_person.invoke(warm_up)  # build the container's clients before the race
    barrier = threading.Barrier(len(events))
    responses: list[dict[str, Any]] = [{} for _ in events]

    def click(index: int) -> None:
        barrier.wait()
        responses[index] = two_person.invoke(events[index])

    threads = [threading.Thread(target=click, args=(n,)) for n in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r.get("statusCode") == 200 for r in responses)
    jobs = drain_jobs(two_person.sqs, two_person.queue_url)
    assert [(job.kind, job.finding_id) for job in jobs] == [("block_public_access", finding_id)]
    record = two_person.record(finding_id)
    assert record.state is State.APPROVED and [e.outcome for e in record.audit].count("APPROVED") == 1
    assert len(record.approvals) == 1 and {*record.approvals, record.approver} == {"U0ALICE", bob}
    assert jobs[0].requested_by == record.approver


def test_a_policy_dismissal_needs_two_forms_and_exempts_the_bucket_for_its_type(two_person: World) -> None:
    finding_id = finding_id_of(PUBLIC)
    two_person.deliver(event(PUBLIC))
    two_person.click(names.ACTION_DISMISS, finding_id, "U0ALICE")
    assert two_person.submit("U0ALICE", reason="Website", scope="bucket") == {"response_action": "clear"}
    assert "*1 of 2 dismissals* by <@U0ALICE>" in two_person.message_text(finding_id)
    # the same approver again is refused in the form
    two_person.click(names.ACTION_DISMISS, finding_id, "U0ALICE")
    again = two_person.submit("U0ALICE", reason="Website", scope="bucket")
    assert "already dismissed this finding (1 of 2)" in again["errors"]["reason"]
    two_person.click(names.ACTION_DISMISS, finding_id, "U0BOB")
    assert two_person.submit("U0BOB", reason="Website, confirmed", scope="bucket") == {"response_action": "clear"}
    record = two_person.record(finding_id)
    assert record.state is State.DISMISSED and record.dismissals == ("U0ALICE",)
    assert record.outcome_detail == "Website, confirmed"
    assert drain_jobs(two_person.sqs, two_person.queue_url) == []
    # a later occurrence (same id, higher count) keeps the reason on the message
    two_person.deliver(event(PUBLIC, count=2, updated_at="2026-11-20T16:15:04.250Z"))
    text = two_person.message_text(finding_id)
    assert "2 times" in text and "Website, confirmed" in text and "<@U0ALICE> and <@U0BOB>" in text
    # a new public-bucket finding for the bucket is exempted; another type is not
    later = event(PUBLIC)
    later["id"], later["detail"]["id"] = "0f8e7d6c-0000-4000-8000-000000000001", "policy-public-later"
    two_person.deliver(later)
    ignored = two_person.record("policy-public-later")
    assert ignored.state is State.IGNORED and ignored.reason.startswith("exempted by U0BOB until ")
