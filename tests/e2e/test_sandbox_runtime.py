"""The sandbox's own machinery, over real HTTP: provisioning and forwarding in moto, the SQS pollers' Lambda
semantics (partial batch failures, retries, redrive), and the API Gateway stand-in.

These run the pieces with small stand-in handlers, so a failure here points at the sandbox, not at the
pipeline; the pipeline itself is exercised end to end in the other e2e modules.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops_sandbox.apigateway import InteractionEndpoint
from macie_chatops_sandbox.aws import Accounts, MotoServer
from macie_chatops_sandbox.lambda_runtime import Function, LambdaContext, SqsPoller, failed_ids, sqs_event
from macie_chatops_sandbox.provision import Provisioned, QueueSettings, SlackSecret, provision
from tests.conftest import ROOT

SECURITY = "210987654321"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "accounts.yaml")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(moto: MotoServer, config: Config) -> tuple[Accounts, Provisioned]:
    accounts = Accounts(moto.endpoint, config.security_account.region)
    provisioned = provision(
        config,
        accounts,
        SlackSecret("xoxb-test", "signing-secret"),
        QueueSettings(visibility_timeout_s=1, max_receive_count=2),
    )
    return accounts, provisioned


def _drain(sqs: Any, url: str, expected: int, timeout_s: float = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            out.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return out


def test_every_member_region_forwards_macie_events_to_the_intake_queue(
    world: tuple[Accounts, Provisioned], config: Config
) -> None:
    accounts, provisioned = world
    sqs = accounts.client("sqs", SECURITY)
    # GIVEN a Macie event and a non-Macie event put on each member account's default bus, in each region
    for account_id, region in provisioned.members:
        events = accounts.client("events", account_id, region)
        events.put_events(
            Entries=[
                {
                    "Source": "aws.macie",
                    "DetailType": "Macie Finding",
                    "Detail": json.dumps({"id": f"{account_id}-{region}"}),
                },
                {"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps({"id": "not-macie"})},
            ]
        )
    # WHEN the intake queue is read
    bodies = [json.loads(m["Body"]) for m in _drain(sqs, provisioned.intake.url, len(provisioned.members))]
    # THEN exactly the Macie events arrived, one per configured account x region, through both rules
    assert sorted(b["detail"]["id"] for b in bodies) == sorted(f"{a}-{r}" for a, r in provisioned.members)
    assert {(a.id, r) for a in config.accounts for r in config.regions_for(a)} == set(provisioned.members)
    # AND moto's known gap holds: delivered events carry no envelope `account` (the handler must not need it)
    assert all("account" not in b for b in bodies)
    assert _drain(sqs, provisioned.intake.url, 1, timeout_s=1) == []


def test_member_quarantine_buckets_are_versioned_and_kms_encrypted(world: tuple[Accounts, Provisioned]) -> None:
    accounts, provisioned = world
    for (account_id, region), member in provisioned.members.items():
        s3 = accounts.client("s3", account_id, region)
        # GIVEN the quarantine bucket the stacks would create for this account and region
        assert member.quarantine_bucket == names.quarantine_bucket_name(account_id, region)
        # THEN it is versioned, encrypted by default with that account's KMS key, in the right region
        assert s3.get_bucket_versioning(Bucket=member.quarantine_bucket)["Status"] == "Enabled"
        rule = s3.get_bucket_encryption(Bucket=member.quarantine_bucket)["ServerSideEncryptionConfiguration"]["Rules"][
            0
        ]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": member.kms_key_arn,
        }
        location = s3.get_bucket_location(Bucket=member.quarantine_bucket)["LocationConstraint"]
        assert (location or "us-east-1") == region
        # AND no bucket policy is attached (moto applies Deny statements regardless of their conditions)
        with pytest.raises(s3.exceptions.ClientError):
            s3.get_bucket_policy(Bucket=member.quarantine_bucket)


def test_secret_and_state_table_exist_in_the_security_account(world: tuple[Accounts, Provisioned]) -> None:
    accounts, provisioned = world
    secret = accounts.client("secretsmanager", SECURITY).get_secret_value(SecretId=provisioned.secret_arn)
    assert json.loads(secret["SecretString"]) == {"bot_token": "xoxb-test", "signing_secret": "signing-secret"}
    table = accounts.client("dynamodb", SECURITY).describe_table(TableName=provisioned.table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": names.STATE_TABLE_KEY, "KeyType": "HASH"}]
    # AND a member account does not see the security account's table (moto isolates accounts)
    member_tables = accounts.client("dynamodb", "345678901234").list_tables()["TableNames"]
    assert provisioned.table_name not in member_tables


class _Recorder:
    """A stand-in handler: fails the bodies it is told to, records every delivery."""

    def __init__(self, fail_bodies: set[str], *, raise_on: set[str] | None = None) -> None:
        self.fail_bodies = fail_bodies
        self.raise_on = raise_on or set()
        self.deliveries: list[tuple[str, str]] = []  # (body, ApproximateReceiveCount)
        self.contexts: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.contexts.append(context)
            for record in event["Records"]:
                self.deliveries.append((record["body"], record["attributes"]["ApproximateReceiveCount"]))
        if any(r["body"] in self.raise_on for r in event["Records"]):
            raise RuntimeError("handler crashed")
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] in self.fail_bodies
            ]
        }


def _poller(accounts: Accounts, provisioned: Provisioned, handler: Any) -> SqsPoller:
    return SqsPoller(
        function=Function("test-function", handler, 30, "us-east-1", SECURITY),
        sqs=accounts.client("sqs", SECURITY),
        queue_url=provisioned.remediation.url,
        queue_arn=provisioned.remediation.arn,
        visibility_timeout_s=1,
        batch_size=10,
        wait_time_s=1,
    )


def _wait(predicate: Any, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_poller_deletes_only_successes_and_redrives_repeated_failures(world: tuple[Accounts, Provisioned]) -> None:
    accounts, provisioned = world
    sqs = accounts.client("sqs", SECURITY)
    handler = _Recorder(fail_bodies={"poison"})
    poller = _poller(accounts, provisioned, handler)
    # GIVEN two good messages and one the handler always reports as failed (maxReceiveCount 2)
    for body in ("good-1", "poison", "good-2"):
        sqs.send_message(QueueUrl=provisioned.remediation.url, MessageBody=body)
    poller.start()
    try:
        # WHEN the poller has run until the poison message is in the DLQ
        dlq: list[dict[str, Any]] = []

        def dead_lettered() -> bool:
            dlq.extend(_drain(sqs, provisioned.remediation_dlq.url, 1, timeout_s=1))
            return bool(dlq)

        _wait(dead_lettered)
    finally:
        poller.signal_stop()
        poller.join()
    # THEN the good messages were delivered once each and deleted; the poison one twice, then dead-lettered
    bodies = [body for body, _ in handler.deliveries]
    assert bodies.count("good-1") == 1 and bodies.count("good-2") == 1
    assert [count for body, count in handler.deliveries if body == "poison"] == ["1", "2"]
    assert [m["Body"] for m in dlq] == ["poison"]
    assert _drain(sqs, provisioned.remediation.url, 1, timeout_s=1) == []
    # AND every invocation got a Lambda context with the function's identity and a shrinking budget
    context = handler.contexts[0]
    assert context.function_name == "test-function"
    assert context.invoked_function_arn == f"arn:aws:lambda:us-east-1:{SECURITY}:function:test-function"
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert len({c.aws_request_id for c in handler.contexts}) == len(handler.contexts)


def test_a_handler_that_raises_gets_the_whole_batch_again(world: tuple[Accounts, Provisioned]) -> None:
    accounts, provisioned = world
    sqs = accounts.client("sqs", SECURITY)
    handler = _Recorder(fail_bodies=set(), raise_on={"crash-once"})
    poller = _poller(accounts, provisioned, handler)
    # GIVEN a message whose first delivery crashes the handler
    sqs.send_message(QueueUrl=provisioned.remediation.url, MessageBody="crash-once")
    poller.start()
    try:
        _wait(lambda: len(handler.deliveries) >= 1)
        handler.raise_on.clear()  # the next attempt succeeds
        _wait(lambda: len(handler.deliveries) >= 2)
        _wait(lambda: poller.stats.deleted >= 1)
    finally:
        poller.signal_stop()
        poller.join()
    # THEN it came back after the visibility timeout and was deleted once it succeeded
    assert [count for _, count in handler.deliveries] == ["1", "2"]
    assert poller.stats.handler_errors == 1


def test_a_message_is_not_redelivered_while_its_handler_still_runs(world: tuple[Accounts, Provisioned]) -> None:
    accounts, provisioned = world
    sqs = accounts.client("sqs", SECURITY)
    calls: list[str] = []

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.extend(r["body"] for r in event["Records"])
        time.sleep(2.5)  # 2.5 x the queue's 1 s visibility timeout
        return {"batchItemFailures": []}

    poller = _poller(accounts, provisioned, slow)
    poller.concurrency = 2  # a second poller would pick the message up if it became visible
    # GIVEN one message whose handler runs longer than the visibility timeout
    sqs.send_message(QueueUrl=provisioned.remediation.url, MessageBody="slow")
    poller.start()
    try:
        _wait(lambda: poller.stats.deleted >= 1)
    finally:
        poller.signal_stop()
        poller.join()
    # THEN it was delivered once: the poller kept it invisible while the handler ran
    assert calls == ["slow"]


def test_batch_item_failures_are_read_like_lambda_reads_them() -> None:
    batch = {"a", "b"}
    assert failed_ids({"batchItemFailures": []}, batch) == set()
    assert failed_ids(None, batch) == set()
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, batch) == {"b"}
    # an unknown, empty or malformed identifier fails the whole batch, as on Lambda
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, batch) == batch
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, batch) == batch
    assert failed_ids({"batchItemFailures": "b"}, batch) == batch
    assert failed_ids("ok", batch) == batch


def test_sqs_event_has_the_lambda_record_shape() -> None:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "99914b932bd37a50b76c9d7a6f2e4ea4",
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MessageAttributes": {"k": {"StringValue": "v", "DataType": "String"}},
    }
    record = sqs_event([message], "arn:aws:sqs:us-east-1:1:q", "us-east-1")["Records"][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == "arn:aws:sqs:us-east-1:1:q"
    assert record["messageAttributes"]["k"]["stringValue"] == "v"
    assert record["messageId"] == "m-1" and record["body"] == "{}" and record["awsRegion"] == "us-east-1"


def test_lambda_context_counts_down() -> None:
    context = LambdaContext("f", 0.2, "us-east-1", SECURITY)
    first = context.get_remaining_time_in_millis()
    time.sleep(0.25)
    assert first > 0 and context.get_remaining_time_in_millis() == 0


# -- the API Gateway stand-in ------------------------------------------------------------------------------


class _EchoHandler:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer: Any = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        if self.answer == "raise":
            raise RuntimeError("boom")
        if self.answer is not None:
            return self.answer
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"ok": True})}


@pytest.fixture
def endpoint() -> Iterator[tuple[InteractionEndpoint, _EchoHandler]]:
    handler = _EchoHandler()
    api = InteractionEndpoint(Function("interaction", handler, 10, "us-east-1", SECURITY))
    api.start()
    try:
        yield api, handler
    finally:
        api.stop()


def _request(
    url: str, *, method: str = "POST", body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body if method != "GET" else None, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_interaction_endpoint_hands_the_handler_a_rest_proxy_event(
    endpoint: tuple[InteractionEndpoint, _EchoHandler],
) -> None:
    api, handler = endpoint
    # GIVEN a form-encoded POST like Slack's, with a header sent twice
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    request = urllib.request.Request(api.url, data=body, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("X-Slack-Signature", "v0=abc")
    request.add_unredirected_header("X-Repeated", "one")
    with urllib.request.urlopen(request, timeout=10) as response:
        status, answer = response.status, json.loads(response.read())
    # THEN the handler's answer came back, and it saw a REST API proxy event for POST /slack/interactions
    assert status == 200 and answer == {"ok": True}
    event = handler.events[-1]
    assert event["httpMethod"] == "POST" and event["path"] == names.SLACK_INTERACTIONS_PATH
    assert event["body"] == body.decode() and event["isBase64Encoded"] is False
    assert event["headers"]["X-Slack-Signature"] == "v0=abc"
    assert event["multiValueHeaders"]["X-Slack-Signature"] == ["v0=abc"]
    assert event["requestContext"]["requestId"] and event["requestContext"]["stage"] == "prod"
    assert event["requestContext"]["accountId"] == SECURITY


def test_interaction_endpoint_answers_like_api_gateway_for_anything_else(
    endpoint: tuple[InteractionEndpoint, _EchoHandler],
) -> None:
    api, handler = endpoint
    base = api.url.removesuffix(names.SLACK_INTERACTIONS_PATH)
    # WHEN another method or another path is asked for
    assert _request(api.url, method="GET")[0] == 403
    assert _request(base + "/slack/other", body=b"x")[0] == 403
    # THEN API Gateway's answer comes back and the handler never ran
    assert json.loads(_request(api.url, method="PUT", body=b"x")[1]) == {"message": "Missing Authentication Token"}
    assert handler.events == []
    # AND a handler that raises or answers nonsense gives 502, as API Gateway does
    handler.answer = "raise"
    assert _request(api.url, body=b"x", headers={"Content-Type": "text/plain"})[0] == 502
    handler.answer = {"body": "no status"}
    assert _request(api.url, body=b"x", headers={"Content-Type": "text/plain"})[0] == 502


def test_binary_media_type_bodies_arrive_base64_encoded() -> None:
    handler = _EchoHandler()
    api = InteractionEndpoint(Function("interaction", handler, 10, "us-east-1", SECURITY), base64_bodies=True)
    api.start()
    try:
        status, _ = _request(api.url, body=b"payload=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    finally:
        api.stop()
    assert status == 200
    assert handler.events[0]["isBase64Encoded"] is True and handler.events[0]["body"] == "cGF5bG9hZD14"
