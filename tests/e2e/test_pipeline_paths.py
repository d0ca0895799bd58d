"""Every action path through the whole pipeline, over real HTTP: events put on member accounts' default
buses, forwarded to the central bus, delivered by the pollers to the real handlers, Slack messages in the
stand-in, real signed clicks through the local API Gateway, objects moved in moto's S3.

Policy (accounts.yaml): payments uses the organisation defaults (Credentials: auto; Financial High: auto,
Medium: review, Low: notify; Personal: review); analytics reviews credentials and ignores below Medium.
"""

from __future__ import annotations

from macie_chatops import names
from macie_chatops.config import Action
from macie_chatops.jobs import AUTO_APPROVER
from macie_chatops.states import State
from macie_chatops_sandbox.sandbox import Sandbox
from tests.e2e.world import (
    ANALYTICS_CHANNEL,
    ANALYTICS_DEV,
    CREDENTIALS,
    FINANCIAL,
    PAYMENTS_CHANNEL,
    PAYMENTS_DEV,
    PAYMENTS_PROD,
    PERSONAL,
    buttons,
    message_of,
    report,
)


def test_auto_path_quarantines_and_tells_the_team(sandbox: Sandbox) -> None:
    # GIVEN a Credentials finding in payments-prod (policy: auto)
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS)
    # WHEN the pipeline has run
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    # THEN the object version moved to the account's quarantine bucket, approved by the policy
    assert record.state is State.QUARANTINED
    assert record.action is Action.AUTO and record.approver == AUTO_APPROVER
    assert finding.location(sandbox) == "quarantine"
    assert record.quarantine is not None
    assert record.quarantine["bucket"] == names.quarantine_bucket_name(PAYMENTS_PROD, "us-east-1")
    assert record.quarantine["key"].startswith(f"{finding.finding_id}/")
    # AND the team's channel got one information message, updated with the outcome, with no approval buttons
    sandbox.wait_until_idle()
    message = message_of(sandbox, finding.record(sandbox))
    assert message.channel == PAYMENTS_CHANNEL
    assert len(message.revisions) >= 2
    assert names.ACTION_REMEDIATE not in buttons(message.revisions[0].blocks)
    assert names.ACTION_RESTORE in buttons(message.blocks)


def test_review_path_posts_buttons_and_an_approver_click_moves_the_object(sandbox: Sandbox) -> None:
    # GIVEN a Personal finding in payments-dev (policy: review)
    finding = report(sandbox, account_id=PAYMENTS_DEV, finding_type=PERSONAL)
    record = sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    message = message_of(sandbox, record)
    assert message.channel == PAYMENTS_CHANNEL
    assert buttons(message.blocks) == [names.ACTION_REMEDIATE, names.ACTION_DISMISS]
    assert finding.location(sandbox) == "source"
    # WHEN a listed approver clicks Remediate (a real signed request)
    answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id="U0ALICE")
    # THEN Slack gets its answer at once, and the object ends in quarantine, approved by that user
    assert answer.status == 200
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    assert record.state is State.QUARANTINED and record.approver == "U0ALICE"
    assert finding.location(sandbox) == "quarantine"
    # AND the original message was updated in place (same ts) and no longer offers Remediate
    sandbox.wait_until_idle()
    updated = message_of(sandbox, record)
    assert updated.ts == message.ts and len(updated.revisions) > len(message.revisions)
    assert names.ACTION_REMEDIATE not in buttons(updated.blocks)


def test_a_member_of_an_approver_user_group_can_approve(sandbox: Sandbox) -> None:
    # GIVEN a review finding for payments, whose approvers include the user group S0SECOPS
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    member = sandbox.group_members["S0SECOPS"][0]
    # WHEN a member of that group (resolved through Slack's usergroups.users.list) clicks Remediate
    answer = sandbox.click(finding.finding_id, names.ACTION_REMEDIATE, user_id=member)
    # THEN it is accepted and the object is quarantined
    assert answer.status == 200
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    assert record.state is State.QUARANTINED and record.approver == member


def test_dismiss_leaves_the_object_and_records_who(sandbox: Sandbox) -> None:
    # GIVEN a review finding in analytics-dev (High: above analytics' Medium floor)
    finding = report(sandbox, account_id=ANALYTICS_DEV, finding_type=PERSONAL)
    record = sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    assert record.slack_channel == ANALYTICS_CHANNEL
    # WHEN analytics' approver clicks Dismiss and submits the dismissal form it opens, with a reason
    answer = sandbox.dismiss(finding.finding_id, user_id="U0CAROL", reason="Synthetic panel data, no real people")
    # THEN the finding is DISMISSED by that user with the reason, the object stays, and nothing was queued
    assert answer.status == 200 and answer.json == {"response_action": "clear"}
    record = sandbox.wait_for_state(finding.finding_id, State.DISMISSED)
    sandbox.wait_until_idle()
    assert finding.location(sandbox) == "source"
    entry = record.entry_into_state
    assert entry is not None and entry.actor == "U0CAROL"
    assert "reason: Synthetic panel data, no real people" in entry.detail
    assert sandbox.quarantined_copies(ANALYTICS_DEV, "us-east-1", finding.finding_id) == []


def test_a_dismissed_finding_message_loses_its_buttons_in_slack(sandbox: Sandbox) -> None:
    # GIVEN a review finding, dismissed by an approver
    finding = report(sandbox, account_id=ANALYTICS_DEV, finding_type=PERSONAL)
    sandbox.wait_for_state(finding.finding_id, State.PENDING_APPROVAL)
    assert sandbox.dismiss(finding.finding_id, user_id="U0CAROL").status == 200  # the click, then its form
    record = sandbox.wait_for_state(finding.finding_id, State.DISMISSED)
    sandbox.wait_until_idle()
    # THEN the message people see in the channel no longer offers Remediate or Dismiss
    assert buttons(message_of(sandbox, record).blocks) == []


def test_restore_puts_a_quarantined_object_back(sandbox: Sandbox) -> None:
    # GIVEN a finding that was auto-quarantined
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS)
    sandbox.wait_for_state(finding.finding_id, State.QUARANTINED)
    sandbox.wait_until_idle()
    # WHEN an approver of the team clicks Restore on the updated message
    answer = sandbox.click(finding.finding_id, names.ACTION_RESTORE, user_id="U0ALICE")
    # THEN the object is back under its key in the source bucket, and the finding is RESTORED; the
    # quarantined copy stays as evidence (the quarantine bucket's retention expires it)
    assert answer.status == 200
    record = sandbox.wait_for_state(finding.finding_id, State.RESTORED, State.FAILED)
    assert record.state is State.RESTORED
    assert finding.location(sandbox) == "both"
    s3 = sandbox.client("s3", PAYMENTS_PROD)
    restored = s3.get_object(Bucket=finding.stored.bucket, Key=finding.stored.key)["Body"].read()
    assert len(restored) == finding.stored.size


def test_notify_path_posts_information_only(sandbox: Sandbox) -> None:
    # GIVEN a Low Financial finding in payments (policy: Low -> notify)
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=FINANCIAL, severity="Low")
    record = sandbox.wait_for_state(finding.finding_id, State.NOTIFIED)
    # THEN the team is told, without buttons, and the object is not touched
    message = message_of(sandbox, record)
    assert message.channel == PAYMENTS_CHANNEL and buttons(message.blocks) == []
    sandbox.wait_until_idle()
    assert finding.location(sandbox) == "source"


def test_ignore_path_records_and_stays_silent(sandbox: Sandbox) -> None:
    # GIVEN a Low Personal finding in analytics-dev (analytics ignores below Medium)
    before = len(sandbox.slack.messages(ANALYTICS_CHANNEL))
    finding = report(sandbox, account_id=ANALYTICS_DEV, finding_type=PERSONAL, severity="Low")
    record = sandbox.wait_for_state(finding.finding_id, State.IGNORED)
    sandbox.wait_until_idle()
    # THEN it is recorded as IGNORED with the reason, nothing is posted and nothing moves
    assert record.action is Action.IGNORE and "below min_severity" in record.reason
    assert record.slack_ts is None
    assert len(sandbox.slack.messages(ANALYTICS_CHANNEL)) == before
    assert finding.location(sandbox) == "source"


def test_reject_path_for_an_account_outside_accounts_yaml(sandbox: Sandbox) -> None:
    # GIVEN a finding from an organisation account not listed in accounts.yaml (on the central bus)
    stranger = "999988887777"
    stored = sandbox.put_object(stranger, "us-east-1", "e2e-stranger-bucket", "x.txt", b"card 5555555555554444")
    from macie_chatops_sandbox.findings import macie_finding_event

    event = macie_finding_event(
        account_id=stranger, region="us-east-1", finding_type=CREDENTIALS, severity="High", stored=stored
    )
    assert sandbox.publish(event) == "central"
    # WHEN the pipeline has run
    record = sandbox.wait_for_state(event["detail"]["id"], State.REJECTED)
    sandbox.wait_until_idle()
    # THEN it is REJECTED with the reason, nothing is posted and the object is where it was
    assert record.action is Action.REJECT and "not listed" in record.reason
    assert record.slack_ts is None
    assert sandbox.version_exists(stranger, "us-east-1", stored.bucket, stored.key, stored.version_id)


def test_input_that_is_not_an_event_is_acknowledged_not_retried(sandbox: Sandbox) -> None:
    # GIVEN a body that is not JSON on the intake queue (defence in depth: the rule would not deliver it)
    sandbox.deliver_raw("this is not an event")
    # WHEN the pipeline is idle
    sandbox.wait_until_idle()
    # THEN it was not retried into the DLQ (retrying cannot fix it) and nothing was posted
    assert "this is not an event" not in sandbox.dlq_bodies()[names.INTAKE_DLQ_NAME]


def test_an_event_from_another_region_of_a_member_account_is_handled_there(sandbox: Sandbox) -> None:
    # GIVEN a Credentials finding in payments-prod's eu-west-1 (forwarded cross-region to the home bus)
    finding = report(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS, region="eu-west-1")
    record = sandbox.wait_for_state(finding.finding_id, State.QUARANTINED, State.BLOCKED, State.FAILED)
    # THEN the copy went to that account's quarantine bucket in eu-west-1
    assert record.state is State.QUARANTINED
    assert record.quarantine is not None
    assert record.quarantine["bucket"] == names.quarantine_bucket_name(PAYMENTS_PROD, "eu-west-1")
    assert finding.location(sandbox) == "quarantine"
