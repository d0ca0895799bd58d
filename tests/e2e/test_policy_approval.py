"""Policy findings under the approval policy (docs/architecture.md §15, §16, §18), over real signed HTTP: the
payments team needs two approvers, a public bucket's policy finding is posted for review, *Block public access*
is counted like Remediate and Dismiss goes through the dismissal form, whose exemption ignores a later finding
of the same type for that bucket (and not another type).
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config, parse_config
from macie_chatops.exemption_store import ExemptionStore
from macie_chatops.exemptions import Scope
from macie_chatops.states import State
from macie_chatops_sandbox.public_bucket_scene import policy_finding_event, with_public_bucket_review
from macie_chatops_sandbox.sandbox import ClickResponse, Sandbox
from macie_chatops_sandbox.slack_clicks import signed_form
from tests.conftest import ROOT
from tests.e2e.world import PAYMENTS_CHANNEL, PAYMENTS_PROD

APPROVERS_LINE = "    approvers: [U0ALICE, S0SECOPS]"
ALICE = "U0ALICE"
PUBLIC = "Policy:IAMUser/S3BucketPublic"
BPA_DISABLED = "Policy:IAMUser/S3BlockPublicAccessDisabled"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def config() -> Config:
    # GIVEN the example organisation, where the payments team needs two approvers, and the two fixable policy
    # finding types posted for review
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
    assert text.count(APPROVERS_LINE) == 1
    strict = parse_config(text.replace(APPROVERS_LINE, "    policy: {approvals_required: 2}\n" + APPROVERS_LINE))
    reviewed = with_public_bucket_review(strict)
    actions: dict[Any, Any] = dict(reviewed.policy.actions)
    actions[BPA_DISABLED] = "review"
    return reviewed.model_copy(update={"policy": reviewed.policy.model_copy(update={"actions": actions})})


def _bob(sandbox: Sandbox) -> str:
    return sandbox.group_members["S0SECOPS"][0]


def _publish(sandbox: Sandbox, bucket: str, finding_type: str = PUBLIC) -> str:
    event = policy_finding_event(
        account_id=PAYMENTS_PROD, region=REGION, bucket=bucket, finding_id=uuid.uuid4().hex, count=1,
        at=datetime.now(UTC),
    )  # fmt: skip
    event["detail"]["type"] = finding_type
    sandbox.publish(event)
    return str(event["detail"]["id"])


def _pending(sandbox: Sandbox) -> tuple[str, str]:
    """A new bucket and its public-bucket finding, awaiting approval: (bucket, finding id)."""
    bucket = f"e2e-policy-{uuid.uuid4().hex[:8]}"
    sandbox.ensure_bucket(PAYMENTS_PROD, REGION, bucket, versioned=False)
    finding_id = _publish(sandbox, bucket)
    sandbox.wait_for_state(finding_id, State.PENDING_APPROVAL)
    return bucket, finding_id


def _message(sandbox: Sandbox, finding_id: str) -> str:
    record = sandbox.record(finding_id)
    assert record is not None and record.slack_ts is not None
    return json.dumps(sandbox.slack.message(PAYMENTS_CHANNEL, record.slack_ts).blocks, ensure_ascii=False)


def _block_settings(sandbox: Sandbox, bucket: str) -> dict[str, bool] | None:
    s3 = sandbox.client("s3", account_id=PAYMENTS_PROD, region=REGION)
    try:
        return dict(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"])
    except s3.exceptions.ClientError:
        return None


def _open_form(sandbox: Sandbox, finding_id: str, user: str) -> str:
    before = len(sandbox.slack.views(user))
    assert sandbox.click(finding_id, names.ACTION_DISMISS, user_id=user).status == 200
    views = sandbox.slack.views(user)
    assert len(views) == before + 1, "the click opened no form"
    return views[-1].id


def _submit(sandbox: Sandbox, view_id: str, **values: str | None) -> dict[str, Any]:
    payload = sandbox.slack.view_submission(view_id, values)
    body, headers = signed_form(sandbox.secret.signing_secret, payload)
    answer = sandbox.post(body, headers)
    assert answer.status == 200
    return json.loads(answer.text) if answer.text else {}


def _exemptions(sandbox: Sandbox, finding_id: str) -> list[Any]:
    store = ExemptionStore(sandbox.client("dynamodb"), sandbox.provisioned.table_name)
    return [e for e in store.for_account(PAYMENTS_PROD) if e.finding_id == finding_id]


# -- Block public access: counted like Remediate ---------------------------------------------------------------


def test_two_different_approvers_block_the_bucket_once(sandbox: Sandbox) -> None:
    bucket, finding_id = _pending(sandbox)
    # THEN the review message asks for two approvers
    assert "*2 different approvers* of this team must agree to block" in _message(sandbox, finding_id)
    # WHEN Alice clicks Block public access
    assert sandbox.click(finding_id, names.ACTION_BLOCK_PUBLIC_ACCESS, user_id=ALICE).status == 200
    # THEN the message says "1 of 2 approvals by Alice", keeps its buttons, and the bucket is untouched
    assert "*1 of 2 approvals* by <@U0ALICE>" in _message(sandbox, finding_id)
    assert names.ACTION_BLOCK_PUBLIC_ACCESS in _message(sandbox, finding_id)
    sandbox.wait_until_idle()
    record = sandbox.record(finding_id)
    assert record is not None and record.state is State.PENDING_APPROVAL and record.approvals == (ALICE,)
    assert _block_settings(sandbox, bucket) is None
    # WHEN a second, different approver clicks
    bob = _bob(sandbox)
    assert sandbox.click(finding_id, names.ACTION_BLOCK_PUBLIC_ACCESS, user_id=bob).status == 200
    # THEN the bucket is blocked once, approved by both
    record = sandbox.wait_for_state(finding_id, State.PUBLIC_ACCESS_BLOCKED, State.FAILED)
    assert record.state is State.PUBLIC_ACCESS_BLOCKED
    assert record.approver == bob and record.approvals == (ALICE,)
    assert [e.outcome for e in record.audit].count("APPROVED") == 1
    approved = next(e for e in record.audit if e.outcome == "APPROVED")
    assert approved.detail.startswith(f"approval 2 of 2 ({ALICE}, {bob})")
    assert _block_settings(sandbox, bucket) == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    assert f"<@{ALICE}> and <@{bob}>" in _message(sandbox, finding_id)


def test_one_approver_clicking_block_twice_is_refused_and_nothing_is_blocked(sandbox: Sandbox) -> None:
    bucket, finding_id = _pending(sandbox)
    sandbox.click(finding_id, names.ACTION_BLOCK_PUBLIC_ACCESS, user_id=ALICE)
    # WHEN Alice clicks Block public access again
    again = sandbox.click(finding_id, names.ACTION_BLOCK_PUBLIC_ACCESS, user_id=ALICE)
    # THEN she is told, ephemerally, that someone else must confirm; nothing is blocked
    assert again.status == 200 and again.json["response_type"] == "ephemeral"
    assert "You have already approved this finding (1 of 2)" in again.text
    sandbox.wait_until_idle()
    record = sandbox.record(finding_id)
    assert record is not None and record.state is State.PENDING_APPROVAL and record.approvals == (ALICE,)
    assert record.audit[-1].outcome == "refused" and record.audit[-1].detail.startswith("already counted")
    assert _block_settings(sandbox, bucket) is None


def test_three_concurrent_block_clicks_by_two_approvers_block_once(sandbox: Sandbox) -> None:
    _, finding_id = _pending(sandbox)
    clickers = [ALICE, _bob(sandbox), ALICE]
    answers: list[ClickResponse] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clickers))

    def click(user: str) -> None:
        start.wait()
        answer = sandbox.click(finding_id, names.ACTION_BLOCK_PUBLIC_ACCESS, user_id=user)
        with lock:
            answers.append(answer)

    # WHEN three signed clicks by two approvers arrive at once
    threads = [threading.Thread(target=click, args=(user,)) for user in clickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # THEN every click was answered, Alice's second refused
    assert len(answers) == len(clickers) and all(a.status == 200 for a in answers)
    assert sum(1 for a in answers if a.json.get("response_type") == "ephemeral") == 1
    # AND it was approved once, by both, and the block job ran once
    sandbox.wait_for_state(finding_id, State.PUBLIC_ACCESS_BLOCKED, State.FAILED)
    sandbox.wait_until_idle()
    record = sandbox.record(finding_id)
    assert record is not None and record.state is State.PUBLIC_ACCESS_BLOCKED
    outcomes = [e.outcome for e in record.audit]
    assert outcomes.count("APPROVED") == 1 and outcomes.count("PUBLIC_ACCESS_BLOCKED") == 1
    assert {*record.approvals, record.approver} == {ALICE, _bob(sandbox)}


# -- Dismiss: the form, counted, and its exemption -----------------------------------------------------------


def test_a_policy_dismissal_goes_through_the_form_and_its_exemption_ignores_that_bucket_and_type(
    sandbox: Sandbox,
) -> None:
    bucket, finding_id = _pending(sandbox)
    bob = _bob(sandbox)
    # WHEN Alice clicks Dismiss THEN a form opens offering this finding or this bucket (no object scopes)
    view_id = _open_form(sandbox, finding_id, ALICE)
    form = sandbox.slack.views(ALICE)[-1].view
    scope_block = next(b for b in form["blocks"] if b.get("block_id") == "scope")
    assert [o["value"] for o in scope_block["element"]["options"]] == ["finding", "bucket"]
    record = sandbox.record(finding_id)
    assert record is not None and record.state is State.PENDING_APPROVAL
    # WHEN she submits it with a reason THEN it is counted (1 of 2), nothing is dismissed nor exempted yet
    assert _submit(sandbox, view_id, reason="Public website bucket", scope="bucket") == {"response_action": "clear"}
    record = sandbox.record(finding_id)
    assert record is not None and record.state is State.PENDING_APPROVAL and record.dismissals == (ALICE,)
    assert "*1 of 2 dismissals* by <@U0ALICE>" in _message(sandbox, finding_id)
    assert _exemptions(sandbox, finding_id) == []
    # WHEN a second approver submits theirs, this bucket, for 30 days
    answer = _submit(
        sandbox, _open_form(sandbox, finding_id, bob), reason="Static site, public on purpose", scope="bucket",
        duration="30",
    )  # fmt: skip
    assert answer == {"response_action": "clear"}
    # THEN it is DISMISSED by both, with the reason; the bucket is untouched
    record = sandbox.wait_for_state(finding_id, State.DISMISSED)
    entry = record.entry_into_state
    assert entry is not None and entry.actor == bob
    assert f"dismissal 2 of 2 ({ALICE}, {bob})" in entry.detail
    assert "reason: Static site, public on purpose" in entry.detail
    assert _block_settings(sandbox, bucket) is None
    assert "Static site, public on purpose" in _message(sandbox, finding_id)
    # AND one exemption of this bucket, for this finding type only
    (exemption,) = _exemptions(sandbox, finding_id)
    assert (exemption.scope, exemption.bucket, exemption.types) == (Scope.BUCKET, bucket, (PUBLIC,))
    assert exemption.created_by == bob and exemption.id in _message(sandbox, finding_id)
    # WHEN Macie reports a new public-bucket finding for the same bucket
    later = _publish(sandbox, bucket)
    # THEN it is ignored, naming the exemption, and nothing is posted
    ignored = sandbox.wait_for_state(later, State.IGNORED)
    assert ignored.reason.startswith(f"exempted by {bob} until ") and exemption.id in ignored.reason
    assert ignored.slack_ts is None
    # AND a finding of another type on that bucket is still asked about
    other = _publish(sandbox, bucket, BPA_DISABLED)
    sandbox.wait_for_state(other, State.PENDING_APPROVAL)


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"reason": None}, "reason", "a reason is required"),
        ({"reason": "  "}, "reason", "a reason is required"),
        ({"reason": "x" * 501}, "reason", "At most 500 characters"),
        ({"reason": "ok", "scope": "prefix"}, "scope", "this finding, or this bucket"),
        ({"reason": "ok", "scope": "object"}, "scope", "this finding, or this bucket"),
    ],
)
def test_a_bad_or_missing_reason_or_an_object_scope_is_refused_in_the_policy_form(
    sandbox: Sandbox, values: dict[str, str | None], field: str, words: str
) -> None:
    _, finding_id = _pending(sandbox)
    answer = _submit(sandbox, _open_form(sandbox, finding_id, ALICE), **values)
    assert answer["response_action"] == "errors" and words in answer["errors"][field]
    record = sandbox.record(finding_id)
    assert record is not None and record.state is State.PENDING_APPROVAL and record.dismissals == ()
    assert _exemptions(sandbox, finding_id) == []
