"""The sandbox's moto extension: under IAM enforcement, an assumed role's session policy limits it as on AWS (the
intersection of the role's policies and the session policy), checked for the S3 actions a request really needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from macie_chatops_sandbox import moto_session_policy
from tests.conftest import AwsSandbox
from tests.functional.enforced_world import (
    EVERYTHING,
    enforced,
    enforced_aws,  # noqa: F401 (fixture)
    enforced_endpoint,  # noqa: F401 (fixture)
    member_world,
)
from tests.functional.move_world import MEMBER_A, REGION, ROLE_NAME, MoveWorld, Principal, remediator_user

BUCKET = "payments-prod-data"
ARN = f"arn:aws:s3:::{BUCKET}"


def allow(actions: list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource, **extra}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def session_s3(aws: AwsSandbox, session_policy: str | None, *, service: str = "s3") -> Any:
    """A client of the member remediation role, assumed by the remediator with ``session_policy`` (or none)."""
    user = _remediators.get(aws.endpoint)
    if user is None:  # one remediator user per test (each test starts from a reset state)
        user = _remediators[aws.endpoint] = remediator_user(aws, EVERYTHING)
    base = user.session()
    args: dict[str, Any] = {"RoleArn": f"arn:aws:iam::{MEMBER_A}:role/{ROLE_NAME}", "RoleSessionName": "test"}
    if session_policy is not None:
        args["Policy"] = session_policy
    credentials = base.client("sts", region_name=REGION).assume_role(**args)["Credentials"]
    return base.client(
        service,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


_remediators: dict[str, Principal] = {}


def denied(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert code in {"AccessDenied", "AccessDeniedException", "403"}, exc.response
        return True
    return False


@pytest.fixture(autouse=True)
def _one_remediator_per_test() -> None:
    _remediators.clear()


@pytest.fixture
def world(enforced_aws: AwsSandbox) -> MoveWorld:  # noqa: F811 (the fixture imported above)
    moves = member_world(enforced_aws, MEMBER_A)
    moves.bucket(MEMBER_A, BUCKET)
    return moves


def test_a_session_policy_limits_the_session_to_the_objects_it_names(world: MoveWorld) -> None:
    # GIVEN two objects, and a session of a role allowed all of S3 whose session policy names one of them
    world.put(MEMBER_A, BUCKET, "a.csv", b"a")
    world.put(MEMBER_A, BUCKET, "b.csv", b"b")
    s3 = session_s3(world.aws, policy(allow(["s3:GetObject"], f"{ARN}/a.csv")))
    # WHEN it reads and writes under enforcement
    with enforced(world.aws):
        # THEN it reads what the policy names, and nothing else: not the other key, not a write
        assert s3.get_object(Bucket=BUCKET, Key="a.csv")["Body"].read() == b"a"
        assert denied(lambda: s3.get_object(Bucket=BUCKET, Key="b.csv"))
        assert denied(lambda: s3.put_object(Bucket=BUCKET, Key="a.csv", Body=b"x"))
        assert denied(lambda: s3.delete_object(Bucket=BUCKET, Key="a.csv"))
    assert world.read(MEMBER_A, BUCKET, "a.csv") == b"a"


def test_without_a_session_policy_the_role_policy_alone_decides(world: MoveWorld) -> None:
    # GIVEN a session without a session policy
    world.put(MEMBER_A, BUCKET, "b.csv", b"b")
    s3 = session_s3(world.aws, None)
    # WHEN it reads any key under enforcement
    with enforced(world.aws):
        # THEN the role's s3:* allows it, as before the extension
        assert s3.get_object(Bucket=BUCKET, Key="b.csv")["Body"].read() == b"b"


def test_the_role_policy_stays_the_ceiling(enforced_aws: AwsSandbox) -> None:  # noqa: F811
    # GIVEN a role that may only read, and a session policy that would also allow writing
    moves = member_world(
        enforced_aws, MEMBER_A, {"Version": "2012-10-17", "Statement": [allow(["s3:GetObject*"], "*")]}
    )
    moves.bucket(MEMBER_A, BUCKET)
    moves.put(MEMBER_A, BUCKET, "a.csv", b"a")
    s3 = session_s3(enforced_aws, policy(allow(["s3:GetObject", "s3:PutObject"], f"{ARN}/a.csv")))
    with enforced(enforced_aws):
        # THEN the session may do only what both allow
        assert s3.get_object(Bucket=BUCKET, Key="a.csv")["Body"].read() == b"a"
        assert denied(lambda: s3.put_object(Bucket=BUCKET, Key="a.csv", Body=b"x"))


def test_an_explicit_deny_in_the_session_policy_wins(world: MoveWorld) -> None:
    world.put(MEMBER_A, BUCKET, "a.csv", b"a")
    s3 = session_s3(
        world.aws,
        policy(allow(["s3:*"], f"{ARN}/*"), {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"{ARN}/a*"}),
    )
    with enforced(world.aws):
        assert denied(lambda: s3.get_object(Bucket=BUCKET, Key="a.csv"))
        s3.put_object(Bucket=BUCKET, Key="c.csv", Body=b"c")  # the Allow still holds elsewhere


def test_version_actions_are_checked_as_s3_names_them(world: MoveWorld) -> None:
    # GIVEN a session allowed GetObject and tags, but not the version actions
    version, _ = world.put(MEMBER_A, BUCKET, "a.csv", b"a", Tagging="team=payments")
    s3 = session_s3(
        world.aws, policy(allow(["s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject"], f"{ARN}/a.csv"))
    )
    with enforced(world.aws):
        # THEN the current object reads, but a read, a HEAD, a tag read or a delete by version id is denied
        assert s3.get_object(Bucket=BUCKET, Key="a.csv")["Body"].read() == b"a"
        assert s3.get_object_tagging(Bucket=BUCKET, Key="a.csv")["TagSet"] == [{"Key": "team", "Value": "payments"}]
        assert denied(lambda: s3.get_object(Bucket=BUCKET, Key="a.csv", VersionId=version))
        assert denied(lambda: s3.head_object(Bucket=BUCKET, Key="a.csv", VersionId=version))
        assert denied(lambda: s3.get_object_tagging(Bucket=BUCKET, Key="a.csv", VersionId=version))
        assert denied(lambda: s3.delete_object(Bucket=BUCKET, Key="a.csv", VersionId=version))
    assert world.read(MEMBER_A, BUCKET, "a.csv", version) == b"a"


def test_a_copy_needs_to_read_its_source(world: MoveWorld) -> None:
    # GIVEN a session that may write a destination key but not read the source key (moto checks only the write)
    version, _ = world.put(MEMBER_A, BUCKET, "a.csv", b"a")
    world.bucket(MEMBER_A, "elsewhere")
    s3 = session_s3(world.aws, policy(allow(["s3:PutObject"], "arn:aws:s3:::elsewhere/copy.csv")))
    source = {"Bucket": BUCKET, "Key": "a.csv", "VersionId": version}
    with enforced(world.aws):
        # THEN the copy is denied
        assert denied(lambda: s3.copy_object(Bucket="elsewhere", Key="copy.csv", CopySource=source))
    # AND with the source's version readable, it is allowed
    reader = session_s3(
        world.aws,
        policy(
            allow(["s3:PutObject"], "arn:aws:s3:::elsewhere/copy.csv"), allow(["s3:GetObjectVersion"], f"{ARN}/a.csv")
        ),
    )
    with enforced(world.aws):
        reader.copy_object(Bucket="elsewhere", Key="copy.csv", CopySource=source)
    assert world.read(MEMBER_A, "elsewhere", "copy.csv") == b"a"


def test_listing_versions_is_limited_by_its_prefix_condition(world: MoveWorld) -> None:
    world.put(MEMBER_A, BUCKET, "a.csv", b"a")
    s3 = session_s3(
        world.aws,
        policy(allow(["s3:ListBucketVersions"], ARN, Condition={"StringEquals": {"s3:prefix": "a.csv"}})),
    )
    with enforced(world.aws):
        assert [v["Key"] for v in s3.list_object_versions(Bucket=BUCKET, Prefix="a.csv")["Versions"]] == ["a.csv"]
        assert denied(lambda: s3.list_object_versions(Bucket=BUCKET, Prefix="a"))
        assert denied(lambda: s3.list_object_versions(Bucket=BUCKET))


def test_kms_through_s3_only_refuses_a_direct_kms_call(world: MoveWorld) -> None:
    # GIVEN a session allowed KMS data keys only through S3
    key_id = world.quarantine_keys[MEMBER_A]
    kms = session_s3(
        world.aws,
        policy(
            allow(
                ["kms:GenerateDataKey", "kms:Decrypt"],
                "*",
                Condition={"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}},
            )
        ),
        service="kms",
    )
    with enforced(world.aws):
        # THEN asking KMS directly is denied (no request of its own carries kms:ViaService)
        assert denied(lambda: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256"))


def test_get_caller_identity_is_always_allowed(world: MoveWorld) -> None:
    sts = session_s3(world.aws, policy(allow(["s3:GetObject"], f"{ARN}/a.csv")), service="sts")
    with enforced(world.aws):
        assert sts.get_caller_identity()["Account"] == MEMBER_A


def test_install_and_uninstall_are_reference_counted() -> None:
    # GIVEN the extension installed by the module's server, and once more
    from moto.iam.access_control import IAMRequestBase

    patched = IAMRequestBase.__dict__["check_action_permitted"]
    moto_session_policy.install()
    moto_session_policy.uninstall()
    # THEN one uninstall leaves it installed for the other user
    assert IAMRequestBase.__dict__["check_action_permitted"] is patched
