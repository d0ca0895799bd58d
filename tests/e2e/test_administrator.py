"""Findings where Macie really publishes them: the Macie administrator account (issue 11).

Jobs the administrator creates, and all automated sensitive data discovery, publish in the administrator's
account, in the bucket's region, with ``detail.accountId`` naming the bucket owner. Here the administrator is
the security account (accounts.yaml has no ``macie_administrator``), which is also listed as a member with
buckets of its own. Every finding below is put on the administrator's default bus in the bucket's region, so
only the administrator's forwarding rules can carry it to the pipeline.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from macie_chatops import names
from macie_chatops.config import Config
from macie_chatops.states import State
from macie_chatops_sandbox.findings import StoredObject, macie_finding_event, sample_body
from macie_chatops_sandbox.sandbox import Sandbox
from tests.e2e.world import CREDENTIALS, PAYMENTS_DEV, PAYMENTS_PROD, PERSONAL, SETTLED, upload

SECURITY = "210987654321"
SECOPS_CHANNEL = "C0SECOPS"


def _administrator_event(
    config: Config,
    *,
    account_id: str,
    region: str,
    stored: StoredObject,
    finding_type: str = CREDENTIALS,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Macie's event for a finding about ``account_id``'s object, published in the administrator account
    (``job_id=None``: automated sensitive data discovery)."""
    return macie_finding_event(
        account_id=account_id,
        region=region,
        finding_type=finding_type,
        severity="High",
        stored=stored,
        finding_id=uuid.uuid4().hex,
        job_id=job_id,
        published_by=config.macie_administrator_id,
    )


def _quarantine_copies(sandbox: Sandbox, account_id: str, region: str, *finding_ids: str) -> int:
    return sum(len(sandbox.quarantined_copies(account_id, region, finding_id)) for finding_id in finding_ids)


def test_the_administrator_is_the_security_account_by_default(config: Config) -> None:
    assert config.macie_administrator is None
    assert config.macie_administrator_id == SECURITY
    assert SECURITY in config.accounts_by_id  # and a member with buckets of its own


def test_an_administrator_finding_for_each_of_two_members_in_two_regions_is_quarantined_there(
    sandbox: Sandbox, config: Config
) -> None:
    # GIVEN automated-discovery findings about payments-prod's bucket in eu-west-1 and payments-dev's in us-east-1,
    # both published on the administrator's default bus in the bucket's region
    cases = []
    for account_id, region in ((PAYMENTS_PROD, "eu-west-1"), (PAYMENTS_DEV, "us-east-1")):
        stored = upload(sandbox, account_id=account_id, finding_type=CREDENTIALS, region=region)
        event = _administrator_event(config, account_id=account_id, region=region, stored=stored)
        assert event["account"] == SECURITY and event["detail"]["accountId"] == account_id
        # WHEN it is published where Macie publishes it
        assert sandbox.publish(event) == "administrator"
        cases.append((event["detail"]["id"], account_id, region, stored))
    # THEN each is routed by its bucket owner and quarantined through that member's role, in that member's
    # quarantine bucket in the bucket's region
    for finding_id, account_id, region, stored in cases:
        record = sandbox.wait_for_state(finding_id, *SETTLED)
        assert record.state is State.QUARANTINED, record.outcome_detail
        assert record.account_id == account_id and record.team == "payments"
        assert record.quarantine is not None
        assert record.quarantine["bucket"] == names.quarantine_bucket_name(account_id, region)
        assert sandbox.object_location(finding_id, account_id, region, stored, record) == "quarantine"
        assert record.slack_channel == "C0PAYMENTS"


def test_a_finding_for_the_security_accounts_own_bucket_is_quarantined_in_its_own_quarantine_bucket(
    sandbox: Sandbox, config: Config
) -> None:
    # GIVEN an administrator job's finding about a bucket the security account owns (it is listed as a member)
    stored = upload(sandbox, account_id=SECURITY, finding_type=CREDENTIALS, region="us-east-1")
    event = _administrator_event(
        config, account_id=SECURITY, region="us-east-1", stored=stored, job_id="c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8"
    )
    # WHEN it is published on the security account's default bus
    assert sandbox.publish(event) == "administrator"
    # THEN it goes to the security team's channel and is quarantined through the security account's own
    # remediation role (the remediator assumes a role in its own account like any other)
    record = sandbox.wait_for_state(event["detail"]["id"], *SETTLED)
    assert record.state is State.QUARANTINED, record.outcome_detail
    assert record.team == "secops" and record.slack_channel == SECOPS_CHANNEL
    assert record.quarantine is not None
    assert record.quarantine["bucket"] == names.quarantine_bucket_name(SECURITY, "us-east-1")
    assert sandbox.object_location(event["detail"]["id"], SECURITY, "us-east-1", stored, record) == "quarantine"


def test_a_finding_on_the_administrators_bus_reaches_the_pipeline_only_through_its_forwarding_rule(
    sandbox: Sandbox, config: Config
) -> None:
    # GIVEN the rule forwarding the administrator's default bus in eu-west-1 turned off (its member rule: the
    # security account is the administrator and a member there, so one rule forwards that bus, not two)
    rule_arn = sandbox.provisioned.forwarder(SECURITY, "eu-west-1")
    assert rule_arn is not None and rule_arn.endswith(f"/{names.MEMBER_FORWARD_RULE_NAME}")
    events = sandbox.client("events", SECURITY, "eu-west-1")
    assert [r["Name"] for r in events.list_rules()["Rules"]] == [names.MEMBER_FORWARD_RULE_NAME]
    # (moto delivers to a disabled rule's targets, so the target is taken away instead)
    targets = events.list_targets_by_rule(Rule=names.MEMBER_FORWARD_RULE_NAME)["Targets"]
    events.remove_targets(Rule=names.MEMBER_FORWARD_RULE_NAME, Ids=[t["Id"] for t in targets])
    try:
        stored = upload(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS, region="eu-west-1")
        event = _administrator_event(config, account_id=PAYMENTS_PROD, region="eu-west-1", stored=stored)
        # WHEN the finding is published there
        sandbox.publish(event)
        sandbox.wait_until_idle()
        # THEN nothing heard it (this is what a deployment without the administrator forwarding misses)
        assert sandbox.record(event["detail"]["id"]) is None
        assert sandbox.version_exists(PAYMENTS_PROD, "eu-west-1", stored.bucket, stored.key, stored.version_id)
    finally:
        events.put_targets(Rule=names.MEMBER_FORWARD_RULE_NAME, Targets=targets)


def _same_version_twice(
    sandbox: Sandbox, config: Config, *, finding_type: str, region: str = "us-east-1"
) -> tuple[StoredObject, dict[str, Any], dict[str, Any]]:
    """One object version reported twice: by automated discovery and by an administrator's job."""
    stored = sandbox.put_object(
        PAYMENTS_PROD,
        region,
        f"e2e-{PAYMENTS_PROD}-{region}-twice",
        f"data/{uuid.uuid4().hex[:10]}/report.txt",
        sample_body(finding_type),
    )
    discovery = _administrator_event(
        config, account_id=PAYMENTS_PROD, region=region, stored=stored, finding_type=finding_type
    )
    job = _administrator_event(
        config,
        account_id=PAYMENTS_PROD,
        region=region,
        stored=stored,
        finding_type=finding_type,
        job_id="a1d3e5f7b9c1d3e5f7a9b1c3d5e7f9a1",
    )
    return stored, discovery, job


def test_two_findings_for_one_object_version_in_sequence_give_one_review_one_move_and_a_duplicate(
    sandbox: Sandbox, config: Config
) -> None:
    # GIVEN a review finding from automated discovery, posted to the team
    stored, first, second = _same_version_twice(sandbox, config, finding_type=PERSONAL)
    first_id, second_id = first["detail"]["id"], second["detail"]["id"]
    sandbox.publish(first)
    pending = sandbox.wait_for_state(first_id, State.PENDING_APPROVAL)
    posts_before = sandbox.slack.request_count("chat.postMessage")
    # WHEN a job reports the same object version again
    sandbox.publish(second)
    sandbox.wait_for_state(second_id, *SETTLED, State.DUPLICATE)
    sandbox.wait_until_idle()  # the thread reply is posted, and its ts recorded, after the DUPLICATE write
    duplicate = sandbox.record(second_id)
    assert duplicate is not None
    # THEN it is recorded as a duplicate of the first, with no review message of its own: one thread reply
    # under the first message at most
    assert duplicate.state is State.DUPLICATE
    assert duplicate.duplicate_of == first_id
    assert duplicate.slack_ts is None
    assert sandbox.slack.request_count("chat.postMessage") - posts_before == 1
    assert pending.slack_channel is not None and pending.slack_ts is not None
    replies = sandbox.slack.replies(pending.slack_channel, pending.slack_ts)
    assert len(replies) == 1 and replies[0].ts == duplicate.duplicate_reply_ts
    assert not any(m.ts == duplicate.duplicate_reply_ts for m in sandbox.slack.messages(pending.slack_channel))
    # WHEN an approver approves the first, then clicks Remediate on the duplicate (an old or forged message)
    approver = sandbox.approver_for("payments")
    assert sandbox.click(first_id, names.ACTION_REMEDIATE, user_id=approver).status == 200
    record = sandbox.wait_for_state(first_id, *SETTLED)
    answer = sandbox.click(
        second_id,
        names.ACTION_REMEDIATE,
        user_id=approver,
        channel_id=pending.slack_channel,
        message_ts=pending.slack_ts,
    )
    sandbox.wait_until_idle()
    # THEN one move: the object is in quarantine once, under the first finding; the click on the duplicate
    # says where it already is, and moves nothing
    assert record.state is State.QUARANTINED
    assert _quarantine_copies(sandbox, PAYMENTS_PROD, "us-east-1", first_id, second_id) == 1
    assert answer.status == 200
    assert first_id in answer.text
    assert "neither" not in answer.text
    after = sandbox.record(second_id)
    assert after is not None and after.state is State.DUPLICATE
    assert sandbox.object_location(second_id, PAYMENTS_PROD, "us-east-1", stored, after) == "quarantine"
    # AND a third report after the quarantine is a duplicate too, never a second move
    third = _administrator_event(config, account_id=PAYMENTS_PROD, region="us-east-1", stored=stored, job_id="f" * 32)
    sandbox.publish(third)
    again = sandbox.wait_for_state(third["detail"]["id"], *SETTLED, State.DUPLICATE)
    sandbox.wait_until_idle()
    assert again.state is State.DUPLICATE and again.duplicate_of == first_id
    assert _quarantine_copies(sandbox, PAYMENTS_PROD, "us-east-1", first_id, second_id, third["detail"]["id"]) == 1


def test_two_auto_findings_for_one_object_version_at_once_give_exactly_one_copy(
    sandbox: Sandbox, config: Config
) -> None:
    # GIVEN two auto (Credentials) findings for one object version
    stored, first, second = _same_version_twice(sandbox, config, finding_type=CREDENTIALS, region="eu-west-1")
    ids = [first["detail"]["id"], second["detail"]["id"]]
    # WHEN both are published at the same moment
    barrier = threading.Barrier(2)

    def publish(event: dict[str, Any]) -> None:
        barrier.wait()
        sandbox.publish(event)

    threads = [threading.Thread(target=publish, args=(event,)) for event in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for finding_id in ids:
        sandbox.wait_for_state(finding_id, *SETTLED, State.DUPLICATE)
    sandbox.wait_until_idle()
    records = [record for record in map(sandbox.record, ids) if record is not None]
    # THEN one is quarantined and the other is its duplicate: one copy in quarantine, the source gone
    assert sorted(record.state.value for record in records) == ["DUPLICATE", "QUARANTINED"]
    winner = next(r for r in records if r.state is State.QUARANTINED)
    loser = next(r for r in records if r.state is State.DUPLICATE)
    assert loser.duplicate_of == winner.finding_id
    assert _quarantine_copies(sandbox, PAYMENTS_PROD, "eu-west-1", *ids) == 1
    assert not sandbox.version_exists(PAYMENTS_PROD, "eu-west-1", stored.bucket, stored.key, stored.version_id)
