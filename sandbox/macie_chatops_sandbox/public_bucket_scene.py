"""The demo's public-bucket scene (docs/architecture.md §18): a bucket made public, its policy finding reported
twice (one record, one message updated in place), closed with Block public access and reopened with Undo; the
bucket's public access block is read from S3 as its owner at each step, so "exactly as before" is checked, not
claimed."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from macie_chatops import names
from macie_chatops.config import Account, Action, Config
from macie_chatops.decision import decide
from macie_chatops.finding import parse_event
from macie_chatops.public_access import SETTINGS, describe
from macie_chatops.states import State

if TYPE_CHECKING:
    from macie_chatops_sandbox.sandbox import Sandbox

PUBLIC_BUCKET: Final = "Policy:IAMUser/S3BucketPublic"
# What the bucket has before the fix: ACLs blocked, policies not (so its public policy works): a partial
# configuration, which the Undo must put back as it was, not as "nothing" nor as "all four".
BEFORE: Final[Mapping[str, bool]] = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": False,
    "RestrictPublicBuckets": False,
}
WAIT_S: Final = 60.0


def with_public_bucket_review(config: Config) -> Config:
    """``config`` with public-bucket findings posted for review, unless the organisation's policy lists them."""
    actions = dict(config.policy.actions)
    if PUBLIC_BUCKET in actions:
        return config
    actions[PUBLIC_BUCKET] = "review"
    return config.model_copy(update={"policy": config.policy.model_copy(update={"actions": actions})})


def policy_finding_event(
    *, account_id: str, region: str, bucket: str, finding_id: str, count: int, at: datetime
) -> dict[str, Any]:
    """A Macie policy finding event for ``bucket`` (the shape Macie publishes: no s3Object, policyDetails)."""
    created = at - timedelta(hours=6 * (count - 1))
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Macie Finding",
        "source": "aws.macie",
        "account": account_id,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": {
            "schemaVersion": "1.0",
            "id": finding_id,
            "accountId": account_id,
            "partition": "aws",
            "region": region,
            "type": PUBLIC_BUCKET,
            "title": "The S3 bucket is publicly accessible.",
            "description": f"The S3 bucket {bucket} is publicly accessible: its bucket policy allows anyone to read.",
            "severity": {"score": 3, "description": "High"},
            "createdAt": created.isoformat().replace("+00:00", "Z"),
            "updatedAt": at.isoformat().replace("+00:00", "Z"),
            "count": count,
            "archived": False,
            "sample": False,
            "category": "POLICY",
            "resourcesAffected": {
                "s3Bucket": {
                    "arn": f"arn:aws:s3:::{bucket}",
                    "name": bucket,
                    "publicAccess": {"effectivePermission": "PUBLIC"},
                }
            },
            "classificationDetails": None,
            "policyDetails": {
                "action": {
                    "actionType": "AWS_API_CALL",
                    "apiCallDetails": {"api": "PutBucketPolicy", "apiServiceName": "s3.amazonaws.com"},
                }
            },
        },
    }


def pick_account(config: Config) -> tuple[Account, str] | None:
    """The first account x region whose policy posts a public-bucket finding for review (None: no such account)."""
    for account in config.accounts:
        for region in config.regions_for(account):
            probe = policy_finding_event(
                account_id=account.id, region=region, bucket="probe-bucket", finding_id="0" * 32, count=1,
                at=datetime.now(UTC),
            )  # fmt: skip
            if decide(parse_event(probe), config).action is Action.REVIEW:
                return account, region
    return None


@dataclass
class PublicBucketScene:
    """The scene, told through ``detail(label, text)`` (the demo's narrator) and ``wait(label)`` (its progress)."""

    sandbox: Sandbox
    detail: Callable[[str, str], None]
    progress: Callable[[str], Any]
    finding_id: str = ""  # the policy finding told, once tell() has published it

    def tell(self, account: Account, region: str) -> bool:
        """Tell it; True when the bucket's configuration after Undo is exactly what it was before the fix."""
        bucket = _bucket_name(account.name)
        self._make_public(account.id, region, bucket)
        finding_id = self.finding_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        self._publish(account, region, bucket, finding_id, count=1, at=now)
        self._wait(finding_id, "posting for review", State.PENDING_APPROVAL)
        self.detail("Slack", f"{self._slack_line(finding_id)}  [Block public access] [Dismiss]")
        self._publish(account, region, bucket, finding_id, count=3, at=now + timedelta(hours=12))
        record = self._wait_for_count(finding_id, 3)
        message = self._message(finding_id)
        self.detail(
            "again",
            f"count 3, same finding id: still one record ({record.state.value}) and one message, updated in place "
            f"({len(message.revisions) if message else 0} revisions)",
        )
        approver = self.sandbox.approver_for(account.team)
        self._click(finding_id, names.ACTION_BLOCK_PUBLIC_ACCESS, approver, "Block public access")
        record = self._wait(finding_id, "blocking public access", State.PUBLIC_ACCESS_BLOCKED, State.FAILED)
        self.detail(
            "result", f"{record.state.value}; bucket now: {describe(self._configuration(account.id, region, bucket))}"
        )
        self.detail("Slack", f"{self._slack_line(finding_id)}  [Undo]")
        self._click(finding_id, names.ACTION_UNDO_BLOCK_PUBLIC_ACCESS, approver, "Undo")
        record = self._wait(finding_id, "putting the configuration back", State.UNDONE, State.PUBLIC_ACCESS_BLOCKED)
        after = self._configuration(account.id, region, bucket)
        same = after == dict(BEFORE)
        verdict = "exactly as before the block" if same else f"NOT as before ({describe(BEFORE)})"
        self.detail("result", f"{record.state.value}; bucket now: {describe(after)}: {verdict}")
        self.detail("Slack", self._slack_line(finding_id))
        return same

    def _make_public(self, account_id: str, region: str, bucket: str) -> None:
        self.sandbox.ensure_bucket(account_id, region, bucket, versioned=False)
        s3 = self.sandbox.client("s3", account_id, region)
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=dict(BEFORE))
        public_read = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
            ],
        }
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
        self.detail(
            "bucket", f"s3://{bucket}: a bucket policy lets anyone read it; block public access: {describe(BEFORE)}"
        )

    def _publish(
        self, account: Account, region: str, bucket: str, finding_id: str, *, count: int, at: datetime
    ) -> None:
        event = policy_finding_event(
            account_id=account.id, region=region, bucket=bucket, finding_id=finding_id, count=count, at=at
        )
        decision = decide(parse_event(event), self.sandbox.config).action
        self.sandbox.publish(event)
        self.detail(
            "Macie", f"S3BucketPublic finding {finding_id[:12]}… count {count} on {account.name}'s bus -> {decision}"
        )

    def _configuration(self, account_id: str, region: str, bucket: str) -> dict[str, bool] | None:
        s3 = self.sandbox.client("s3", account_id, region)
        try:
            settings = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration":
                return None
            raise
        return {name: bool(settings.get(name, False)) for name in SETTINGS}

    def _click(self, finding_id: str, action_id: str, user: str, button: str) -> None:
        answer = self.sandbox.click(finding_id, action_id, user_id=user)
        if answer.status != 200:
            raise RuntimeError(f"the {button} click answered HTTP {answer.status}: {answer.text[:200]}")
        self.detail("click", f"approver {user} clicks {button} (signed request, HTTP {answer.status})")

    def _wait(self, finding_id: str, label: str, *states: State) -> Any:
        with self.progress(label):
            return self.sandbox.wait_for_state(finding_id, *states, timeout_s=WAIT_S)

    def _wait_for_count(self, finding_id: str, count: int) -> Any:
        def shown() -> Any:
            record = self.sandbox.record(finding_id)
            ok = record is not None and record.policy is not None and record.policy_shown_count == count
            return record if ok else None

        with self.progress("recording the new count"):
            return self.sandbox.wait_for(shown, WAIT_S, f"finding {finding_id}'s message to show count {count}")

    def _message(self, finding_id: str) -> Any:
        record = self.sandbox.record(finding_id)
        if record is None or not record.slack_channel or not record.slack_ts:
            return None
        return self.sandbox.slack.message(record.slack_channel, record.slack_ts)

    def _slack_line(self, finding_id: str) -> str:
        message = self._message(finding_id)
        if message is None:
            return "(no message)"
        text = re.sub(r"^:[a-z0-9_+-]+:\s*", "", message.text)
        return f"#{message.channel}: {text[:110]}"


def _bucket_name(account_name: str) -> str:
    """A valid, fresh bucket name from the account's name."""
    base = re.sub(r"[^a-z0-9-]+", "-", account_name.lower()).strip("-")[:30] or "account"
    return f"{base}-public-site-{uuid.uuid4().hex[:8]}"
