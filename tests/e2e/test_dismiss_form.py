"""Dismiss with a reason, over real signed HTTP (docs/architecture.md §16): the click opens the form through
the Slack stand-in's ``views.open``, the ``view_submission`` is signed and posted to the local API Gateway
like Slack's, and the exemption it creates ignores a later finding in the same prefix.

accounts.yaml (Dismiss always opens the form), payments-dev needing two approvers; payments' approvers: U0ALICE and
S0SECOPS; analytics': U0CAROL.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from macie_chatops import names
from macie_chatops.config import Config, PolicyOverride, load_config
from macie_chatops.exemption_store import ExemptionStore
from macie_chatops.exemptions import Scope
from macie_chatops.states import State
from macie_chatops_sandbox.findings import macie_finding_event, sample_body
from macie_chatops_sandbox.sandbox import DEFAULT_DISMISS_REASON, Sandbox
from macie_chatops_sandbox.slack_clicks import signed_form
from tests.conftest import ROOT
from tests.e2e.world import ANALYTICS_DEV, PAYMENTS_DEV, PAYMENTS_PROD, PERSONAL, Reported, message_of, report

ALICE = "U0ALICE"  # approves for payments


TWO_APPROVERS = PAYMENTS_DEV  # payments-dev: its reviews need two different approvers here


@pytest.fixture(scope="module")
def config() -> Config:
    example = load_config(ROOT / "accounts.yaml")
    accounts = tuple(
        account.model_copy(update={"policy": PolicyOverride(approvals_required=2)})
        if account.id == TWO_APPROVERS
        else account
        for account in example.accounts
    )
    return example.model_copy(update={"accounts": accounts})


def pending(sandbox: Sandbox, account_id: str = PAYMENTS_PROD) -> Reported:
    finding = report(sandbox, account_id=account_id, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    return finding


def open_form(sandbox: Sandbox, finding: Reported, user: str = ALICE) -> str:
    """Click Dismiss; the id of the form that opened for ``user``."""
    before = len(sandbox.slack.views(user))
    assert sandbox.click(finding.finding_id, names.ACTION_DISMISS, user_id=user).status == 200
    views = sandbox.slack.views(user)
    assert len(views) == before + 1, "the click opened no form"
    return views[-1].id


def submit(sandbox: Sandbox, view_id: str, secret: str | None = None, **values: str | None) -> tuple[int, dict]:
    payload = sandbox.slack.view_submission(view_id, values)
    body, headers = signed_form(secret or sandbox.secret.signing_secret, payload)
    answer = sandbox.post(body, headers)
    return answer.status, json.loads(answer.text) if answer.status == 200 and answer.text else {}


def test_dismiss_opens_a_form_and_its_submission_dismisses_with_the_reason_and_an_exemption(sandbox: Sandbox) -> None:
    # GIVEN a review finding in payments-prod
    finding = pending(sandbox)
    # WHEN an approver clicks Dismiss THEN a form opens for them and nothing changes yet
    view_id = open_form(sandbox, finding)
    form = sandbox.slack.views(ALICE)[-1].view
    assert [b.get("block_id") for b in form["blocks"] if b["type"] == "input"] == [
        "reason",
        "scope",
        "duration",
        "until",
    ]
    assert finding.record(sandbox).state is State.PENDING_APPROVAL
    # WHEN they submit it with a reason, this prefix, for 7 days
    status, body = submit(
        sandbox, view_id, reason="Synthetic customers for the load test", scope="prefix", duration="7"
    )
    # THEN the modal closes, the finding is DISMISSED with the reason in its audit trail
    assert (status, body) == (200, {"response_action": "clear"})
    record = sandbox.wait_for_state(finding.finding_id, State.DISMISSED)
    entry = record.entry_into_state
    assert entry is not None and entry.actor == ALICE
    assert "reason: Synthetic customers for the load test" in entry.detail
    # AND one exemption of the object's prefix, of Personal findings, for 7 days, by that approver
    (exemption,) = [e for e in exemptions(sandbox) if e.finding_id == finding.finding_id]
    prefix = finding.stored.key.rsplit("/", 1)[0] + "/"
    assert (exemption.scope, exemption.key, exemption.created_by) == (Scope.PREFIX, prefix, ALICE)
    assert exemption.types == (PERSONAL,) and 6.9 < (exemption.until - exemption.created_at).days + 0.5 < 7.6
    # AND the message says who dismissed it, why, and what is exempted
    message = message_of(sandbox, record)
    assert "Synthetic customers for the load test" in message.text + json.dumps(message.blocks)
    assert exemption.id in json.dumps(message.blocks)
    # WHEN a later finding arrives in the same prefix
    later = sandbox.put_object(
        PAYMENTS_PROD, "us-east-1", finding.stored.bucket, prefix + "more.csv", sample_body(PERSONAL)
    )
    event = macie_finding_event(
        account_id=PAYMENTS_PROD,
        region="us-east-1",
        finding_type=PERSONAL,
        severity="High",
        stored=later,
        finding_id=uuid.uuid4().hex,
    )
    sandbox.publish(event)
    ignored = sandbox.wait_for_state(event["detail"]["id"], State.IGNORED)
    # THEN it is ignored with who, until when and why, and no message is posted for it
    assert ignored.reason.startswith(f"exempted by {ALICE} until ")
    assert "Synthetic customers for the load test" in ignored.reason
    assert ignored.slack_ts is None


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"reason": None}, "reason", "a reason is required"),
        ({"reason": "   "}, "reason", "a reason is required"),
        ({"reason": "x" * 501}, "reason", "At most 500 characters"),
        ({"reason": "ok", "duration": "date", "until": "2999-01-01"}, "until", "At most a year ahead"),
        ({"reason": "ok", "scope": "everything"}, "scope", "Choose what"),
    ],
)
def test_a_bad_or_missing_reason_is_refused_in_the_form(
    sandbox: Sandbox, values: dict[str, str | None], field: str, words: str
) -> None:
    # GIVEN an open dismissal form
    finding = pending(sandbox)
    view_id = open_form(sandbox, finding)
    # WHEN it is submitted with a bad value
    status, body = submit(sandbox, view_id, **values)
    # THEN Slack is asked to show the error under the field, and nothing changed
    assert status == 200 and body["response_action"] == "errors" and words in body["errors"][field]
    assert finding.record(sandbox).state is State.PENDING_APPROVAL
    assert not [e for e in exemptions(sandbox) if e.finding_id == finding.finding_id]


def test_an_expired_trigger_id_opens_no_form_and_says_so(sandbox: Sandbox) -> None:
    # GIVEN a click whose trigger id was issued more than 3 seconds before it reached views.open
    finding = pending(sandbox)
    record = finding.record(sandbox)
    assert record.slack_channel and record.slack_ts
    stale = sandbox.slack.trigger_id(ALICE, issued_seconds_ago=3.5)
    before = len(sandbox.slack.views(ALICE))
    # WHEN the click arrives
    assert sandbox.click(finding.finding_id, names.ACTION_DISMISS, user_id=ALICE, trigger_id=stale).status == 200
    # THEN no form opened, the clicker is told to click again, and the click is audited
    assert len(sandbox.slack.views(ALICE)) == before
    replies = [r.text for r in sandbox.slack.ephemeral(record.slack_channel) if r.ts == record.slack_ts]
    assert replies and "could not be opened in time" in replies[-1]
    record = finding.record(sandbox)
    assert record.state is State.PENDING_APPROVAL
    assert record.last_audit is not None and "expired_trigger_id" in record.last_audit.detail


def test_a_forged_submission_is_refused_before_it_is_read(sandbox: Sandbox) -> None:
    # GIVEN an open form, submitted with a signature made with another secret
    finding = pending(sandbox)
    view_id = open_form(sandbox, finding)
    status, _ = submit(sandbox, view_id, secret="not-the-signing-secret", reason="forged")
    # THEN 401, and nothing changed
    assert status == 401
    assert finding.record(sandbox).state is State.PENDING_APPROVAL


def test_a_form_pointing_at_another_teams_finding_is_refused(sandbox: Sandbox) -> None:
    # GIVEN payments' approver with a dismissal form, and a pending finding of the analytics team
    ours = pending(sandbox)
    theirs = pending(sandbox, ANALYTICS_DEV)
    view_id = open_form(sandbox, ours)
    their_record = theirs.record(sandbox)
    # WHEN the form's private metadata is rewritten to name the analytics finding and its message
    payload = sandbox.slack.view_submission(view_id, {"reason": "not mine to dismiss"})
    payload["view"]["private_metadata"] = json.dumps(
        {"finding_id": theirs.finding_id, "channel": their_record.slack_channel, "ts": their_record.slack_ts}
    )
    body, headers = signed_form(sandbox.secret.signing_secret, payload)
    answer = sandbox.post(body, headers)
    # THEN it is refused in the form, and neither finding changed
    data = json.loads(answer.text)
    assert answer.status == 200 and "not an approver" in data["errors"]["reason"]
    assert theirs.record(sandbox).state is State.PENDING_APPROVAL
    assert ours.record(sandbox).state is State.PENDING_APPROVAL
    # AND metadata that is not ours at all is refused too
    payload["view"]["private_metadata"] = '{"finding_id": "x", "channel": "C0PAYMENTS", "ts": "1.2", "extra": 1}'
    body, headers = signed_form(sandbox.secret.signing_secret, payload)
    answer = sandbox.post(body, headers)
    assert "cannot be read" in json.loads(answer.text)["errors"]["reason"]


def test_sandbox_dismiss_goes_through_the_form_with_the_default_reason(sandbox: Sandbox) -> None:
    finding = pending(sandbox)
    assert sandbox.dismiss(finding.finding_id, user_id=ALICE).status == 200
    record = sandbox.wait_for_state(finding.finding_id, State.DISMISSED)
    assert record.entry_into_state is not None and DEFAULT_DISMISS_REASON in record.entry_into_state.detail


def exemptions(sandbox: Sandbox) -> list:
    store = ExemptionStore(sandbox.client("dynamodb"), sandbox.provisioned.table_name)
    return store.for_accounts(account.id for account in sandbox.config.accounts)


def test_with_two_approvers_required_the_second_form_dismisses_and_creates_the_exemption(sandbox: Sandbox) -> None:
    # GIVEN a review finding of payments-dev, which needs two different approvers here
    finding = pending(sandbox, TWO_APPROVERS)
    first, second = ALICE, sandbox.group_members["S0SECOPS"][0]
    # WHEN one approver submits the form
    status, body = submit(sandbox, open_form(sandbox, finding, first), reason="Known fixture", scope="object")
    # THEN it is counted (1 of 2), with its reason, and nothing is dismissed or exempted yet
    assert (status, body) == (200, {"response_action": "clear"})
    record = finding.record(sandbox)
    assert record.state is State.PENDING_APPROVAL and record.dismissals == (first,)
    assert "dismissal 1 of 2" in record.audit[-1].detail and "reason: Known fixture" in record.audit[-1].detail
    assert not [e for e in exemptions(sandbox) if e.finding_id == finding.finding_id]
    # AND the same approver cannot be the second one
    status, body = submit(sandbox, open_form(sandbox, finding, first), reason="Again")
    assert "already dismissed this finding (1 of 2)" in body["errors"]["reason"]
    # WHEN a different approver submits it THEN the finding is dismissed by both, with that approver's exemption
    status, body = submit(sandbox, open_form(sandbox, finding, second), reason="Confirmed: fixture", scope="object")
    assert (status, body) == (200, {"response_action": "clear"})
    record = sandbox.wait_for_state(finding.finding_id, State.DISMISSED)
    assert (
        record.entry_into_state is not None
        and f"dismissal 2 of 2 ({first}, {second})" in record.entry_into_state.detail
    )
    (exemption,) = [e for e in exemptions(sandbox) if e.finding_id == finding.finding_id]
    assert (exemption.created_by, exemption.reason, exemption.scope) == (second, "Confirmed: fixture", Scope.OBJECT)


def test_two_forms_submitted_at_once_give_one_dismissal_and_one_exemption(sandbox: Sandbox) -> None:
    # GIVEN two approvers of payments, each with the dismissal form of the same finding open
    finding = pending(sandbox)
    forms = [open_form(sandbox, finding, ALICE), open_form(sandbox, finding, sandbox.group_members["S0SECOPS"][0])]
    # WHEN both submit at the same moment
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda view_id: submit(sandbox, view_id, reason="race", scope="object"), forms))
    # THEN one dismisses, the other is told it was already dismissed, and there is exactly one exemption
    assert sorted(body.get("response_action", "") for _, body in answers) == ["clear", "errors"]
    (lost,) = [body for _, body in answers if body.get("response_action") == "errors"]
    assert "already dismissed" in lost["errors"]["reason"]
    sandbox.wait_for_state(finding.finding_id, State.DISMISSED)
    assert len([e for e in exemptions(sandbox) if e.finding_id == finding.finding_id]) == 1


def test_a_slack_failure_opening_the_form_changes_nothing_and_says_so(sandbox: Sandbox) -> None:
    # GIVEN a pending finding, and Slack failing the next views.open
    finding = pending(sandbox)
    record = finding.record(sandbox)
    assert record.slack_channel and record.slack_ts
    sandbox.slack.fail_next("views.open", status=500)
    # WHEN an approver clicks Dismiss
    assert sandbox.click(finding.finding_id, names.ACTION_DISMISS, user_id=ALICE).status == 200
    # THEN the clicker is told, nothing changed, and the refusal is audited
    replies = [r.text for r in sandbox.slack.ephemeral(record.slack_channel) if r.ts == record.slack_ts]
    assert replies and "could not be opened just now" in replies[-1]
    record = finding.record(sandbox)
    assert record.state is State.PENDING_APPROVAL
    assert record.last_audit is not None and "dismissal form not opened" in record.last_audit.detail
