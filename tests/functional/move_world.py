"""The mover's world on moto's server: member accounts with quarantine buckets, source buckets, a mover.

Two member accounts besides the security account (``aws.session(account_id)`` acts as an account; moto
isolates accounts by the assumed role's credentials). Each member gets, in the test region, what the
member stack deploys: a versioned quarantine bucket whose default encryption is its own KMS key.

``iam_enforced`` switches on moto's IAM enforcement for one test (after the world is set up, since setup
itself uses unauthenticated test credentials) and always switches it off again.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from macie_chatops.move import MoveRequest, ObjectMover
from macie_chatops.names import quarantine_bucket_name
from macie_chatops.quarantine_plan import MoveStep
from macie_chatops.sessions import MemberSessions
from macie_chatops_sandbox.testkit.world import REGION, shared_session
from tests.conftest import AwsSandbox

MEMBER_A = "345678901234"  # payments-prod
MEMBER_B = "567890123456"  # analytics-dev
ROLE_NAME = "macie-chatops-remediation"
MB = 1024 * 1024
FINDING_ID = "64b917aff1d15e6a0d3f1e2c9b8a7d01"


class Crash(Exception):
    """Raised by a checkpoint: the process 'dies' between two steps."""


def crash_at(step: MoveStep) -> Callable[[MoveStep], None]:
    def checkpoint(reached: MoveStep) -> None:
        if reached is step:
            raise Crash(step.value)

    return checkpoint


def next_second() -> None:
    """Wait until the wall clock's second changes: S3 (and moto) keep LastModified in whole seconds, so two
    versions written in the same second have no order by time (the mover then claims none)."""
    import time

    time.sleep(1.0 - time.time() % 1.0 + 0.02)


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


@dataclass
class MoveWorld:
    aws: AwsSandbox
    region: str = REGION
    quarantine_keys: dict[str, str] = field(default_factory=dict)  # account -> its quarantine KMS key ARN
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    _sessions: MemberSessions | None = None

    # -- accounts --------------------------------------------------------------------------------------

    def client(self, service: str, account: str, *, config: Any = None) -> Any:
        """A client acting as ``account`` (setup and observation, not the code under test); with ``config``
        (a botocore Config), a new client built with it, else the cached one.

        Like ``aws.session(account)``, but every client comes from one boto3 session, so the service
        models load once per test instead of once per client."""
        if config is not None:
            return self._base.client(service, region_name=self.region, config=config, **self._credentials_of(account))
        cached = self._clients.get((service, account))
        if cached is None:
            cached = self._base.client(service, region_name=self.region, **self._credentials_of(account))
            self._clients[(service, account)] = cached
        return cached

    def _credentials_of(self, account: str) -> dict[str, str]:
        credentials = self._credentials.get(account)
        if credentials is None:
            sts = self._base.client("sts", region_name=self.region)
            issued = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/macie-chatops-test", RoleSessionName="test")
            credentials = {
                "aws_access_key_id": issued["Credentials"]["AccessKeyId"],
                "aws_secret_access_key": issued["Credentials"]["SecretAccessKey"],
                "aws_session_token": issued["Credentials"]["SessionToken"],
            }
            self._credentials[account] = credentials
        return credentials

    @property
    def _base(self) -> Any:
        return shared_session(self.region)

    def s3(self, account: str) -> Any:
        return self.client("s3", account)

    def provision_member(self, account: str) -> None:
        """What the member stack deploys in one region: the quarantine bucket, versioned, with its own key."""
        key_arn: str = self.client("kms", account).create_key(Description="quarantine")["KeyMetadata"]["Arn"]
        bucket = quarantine_bucket_name(account, self.region)
        s3 = self.s3(account)
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}
                ]
            },
        )
        self.quarantine_keys[account] = key_arn

    def bucket(self, account: str, name: str, *, versioned: bool = True, object_lock: bool = False) -> str:
        s3 = self.s3(account)
        if object_lock:
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            s3.create_bucket(Bucket=name)
            if versioned:
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def put(self, account: str, bucket: str, key: str, body: bytes, **kwargs: Any) -> tuple[str, str]:
        """Upload; returns (version id or "", ETag without quotes)."""
        response = self.s3(account).put_object(Bucket=bucket, Key=key, Body=body, **kwargs)
        return response.get("VersionId", "") or "", response["ETag"].strip('"')

    # -- the code under test ---------------------------------------------------------------------------

    @property
    def sessions(self) -> MemberSessions:
        if self._sessions is None:
            self._sessions = MemberSessions(role_name=ROLE_NAME, base_session=self._base)
        return self._sessions

    def mover(
        self,
        account: str,
        *,
        finding_id: str = FINDING_ID,
        actor: str = "U0ALICE",
        threshold_mb: int = 64,
        checkpoint: Callable[[MoveStep], None] | None = None,
    ) -> ObjectMover:
        clients = self.sessions.clients(account, self.region, actor=actor, finding_id=finding_id)
        return ObjectMover(clients.s3, multipart_threshold_bytes=threshold_mb * MB, checkpoint=checkpoint)

    def request(
        self,
        account: str,
        bucket: str,
        key: str,
        *,
        version_id: str,
        etag: str,
        size: int,
        finding_id: str = FINDING_ID,
        approver: str = "U0ALICE",
    ) -> MoveRequest:
        return MoveRequest(finding_id, account, self.region, bucket, key, version_id, etag, size, approver)

    # -- observation -----------------------------------------------------------------------------------

    def read(self, account: str, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
        """The object's bytes, or None when that version (or the current object) is not there."""
        s3 = self.s3(account)
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        try:
            data: bytes = s3.get_object(**args)["Body"].read()
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in {"NoSuchKey", "NoSuchVersion", "404", "405", "MethodNotAllowed"}:
                return None
            raise
        return data

    def head(self, account: str, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        result: dict[str, Any] = self.s3(account).head_object(**args)
        return result

    def quarantined(self, account: str, key: str) -> bytes | None:
        return self.read(account, quarantine_bucket_name(account, self.region), key)

    def tags(self, account: str, bucket: str, key: str) -> dict[str, str]:
        tag_set = self.s3(account).get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        return {t["Key"]: t["Value"] for t in tag_set}

    def versions(self, account: str, bucket: str, key: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.s3(account).get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
            found.extend(v for v in page.get("Versions", []) if v["Key"] == key)
        return found


def build_move_world(aws: AwsSandbox, members: tuple[str, ...] = (MEMBER_A,)) -> MoveWorld:
    world = MoveWorld(aws)
    for account in members:
        world.provision_member(account)
    return world


# --- moto IAM enforcement ----------------------------------------------------------------------------------


def _reset_auth(endpoint: str, value: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=value.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@dataclass(frozen=True)
class Principal:
    access_key_id: str
    secret_access_key: str

    def session(self, region: str = REGION) -> Any:
        import boto3

        # A session of its own: its credentials are the user's, not the environment's test credentials.
        return boto3.Session(
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key, region_name=region
        )


def remediator_user(aws: AwsSandbox, policy: dict[str, Any]) -> Principal:
    """An IAM user in the (default) security-side account, standing in for the remediator Lambda's role."""
    iam = shared_session().client("iam", region_name=REGION)
    iam.create_user(UserName="macie-chatops-remediator")
    iam.put_user_policy(UserName="macie-chatops-remediator", PolicyName="remediator", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="macie-chatops-remediator")["AccessKey"]
    return Principal(key["AccessKeyId"], key["SecretAccessKey"])


def member_role(world: MoveWorld, account: str, policy: dict[str, Any]) -> None:
    """The member remediation role with its permission policy (moto checks assumed-role calls against it)."""
    iam = world.client("iam", account)
    iam.create_role(
        RoleName=ROLE_NAME,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                    }
                ],
            }
        ),
    )
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="remediation", PolicyDocument=json.dumps(policy))


@contextmanager
def iam_enforced(aws: AwsSandbox) -> Iterator[None]:
    """moto checks every request's credentials and IAM policies inside the block (and never after)."""
    _reset_auth(aws.endpoint, "0")
    try:
        yield
    finally:
        _reset_auth(aws.endpoint, "inf")
