"""The Slack secret loader against moto's Secrets Manager: every way the secret can be wrong says how to fix it."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from macie_chatops import names
from macie_chatops.errors import SecretError
from macie_chatops.slack_secrets import SlackSecrets, load_slack_secrets
from tests.conftest import AwsSandbox

SECRET_NAME = "macie-chatops/slack"
TOKEN = "xoxb-1234-5678-abcdefSECRETTOKEN"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def secretsmanager(aws: AwsSandbox) -> Any:
    # The security account's default credentials (the aws fixture points boto3 at moto).
    return boto3.client("secretsmanager", region_name=aws.region)


def store(client: Any, value: str | None) -> str:
    """Create the secret like the stack (no value) and, when given, store ``value``; returns its ARN."""
    arn: str = client.create_secret(Name=SECRET_NAME)["ARN"]
    if value is not None:
        client.put_secret_value(SecretId=arn, SecretString=value)
    return arn


def test_loads_a_filled_secret_by_name_and_by_arn(secretsmanager: Any) -> None:
    # GIVEN the secret filled by the operator
    arn = store(
        secretsmanager,
        json.dumps({names.SLACK_SECRET_BOT_TOKEN: TOKEN, names.SLACK_SECRET_SIGNING_SECRET: SIGNING}),
    )
    # WHEN loaded by name or ARN / THEN both values come back
    for secret_id in (SECRET_NAME, arn):
        secrets = load_slack_secrets(secretsmanager, secret_id)
        assert secrets == SlackSecrets(bot_token=TOKEN, signing_secret=SIGNING)


def test_repr_and_str_hide_both_values() -> None:
    secrets = SlackSecrets(bot_token=TOKEN, signing_secret=SIGNING)
    for text in (repr(secrets), str(secrets), f"{secrets}", repr([secrets])):
        assert TOKEN not in text
        assert SIGNING not in text
        assert "hidden" in text


def test_surrounding_whitespace_is_trimmed(secretsmanager: Any) -> None:
    store(secretsmanager, json.dumps({"bot_token": f" {TOKEN}\n", "signing_secret": f"{SIGNING} "}))
    assert load_slack_secrets(secretsmanager, SECRET_NAME) == SlackSecrets(TOKEN, SIGNING)


def test_missing_secret_says_deploy_or_fix_the_arn(secretsmanager: Any) -> None:
    with pytest.raises(SecretError, match=r"macie-chatops/slack does not exist.*SLACK_SECRET_ARN"):
        load_slack_secrets(secretsmanager, SECRET_NAME)


def test_secret_created_empty_by_the_stack_says_fill_it(secretsmanager: Any) -> None:
    # GIVEN the secret as the stack creates it: no value at all
    store(secretsmanager, None)
    # WHEN loaded / THEN the operator is told to fill it, with the expected JSON shape
    with pytest.raises(SecretError, match=r"is empty.*bot_token.*signing_secret"):
        load_slack_secrets(secretsmanager, SECRET_NAME)


@pytest.mark.parametrize("value", ["   ", "\n"])
def test_blank_secret_string_is_empty(secretsmanager: Any, value: str) -> None:
    store(secretsmanager, value)
    with pytest.raises(SecretError, match="is empty"):
        load_slack_secrets(secretsmanager, SECRET_NAME)


def test_not_json_never_quotes_the_value(secretsmanager: Any) -> None:
    # GIVEN a token pasted as-is instead of the JSON document
    store(secretsmanager, TOKEN)
    # WHEN loaded / THEN the error says "not JSON" and does not repeat the token
    with pytest.raises(SecretError, match="is not JSON") as caught:
        load_slack_secrets(secretsmanager, SECRET_NAME)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("value", ['["xoxb-a", "b"]', '"xoxb-a"', "42"])
def test_json_that_is_not_an_object(secretsmanager: Any, value: str) -> None:
    store(secretsmanager, value)
    with pytest.raises(SecretError, match="must be a JSON object"):
        load_slack_secrets(secretsmanager, SECRET_NAME)


@pytest.mark.parametrize(
    ("document", "missing"),
    [
        ({"signing_secret": SIGNING}, "bot_token"),
        ({"bot_token": TOKEN}, "signing_secret"),
        ({"token": TOKEN, "secret": SIGNING}, "bot_token, signing_secret"),
    ],
)
def test_missing_keys_are_named(secretsmanager: Any, document: dict[str, str], missing: str) -> None:
    store(secretsmanager, json.dumps(document))
    with pytest.raises(SecretError, match=f"lacks {missing}") as caught:
        load_slack_secrets(secretsmanager, SECRET_NAME)
    assert TOKEN not in str(caught.value)
    assert SIGNING not in str(caught.value)


@pytest.mark.parametrize(
    ("document", "blank"),
    [
        ({"bot_token": "", "signing_secret": SIGNING}, "bot_token"),
        ({"bot_token": TOKEN, "signing_secret": "  "}, "signing_secret"),
        ({"bot_token": None, "signing_secret": 7}, "bot_token, signing_secret"),
    ],
)
def test_blank_values_are_named(secretsmanager: Any, document: dict[str, Any], blank: str) -> None:
    store(secretsmanager, json.dumps(document))
    with pytest.raises(SecretError, match=f"blank or non-string {blank}"):
        load_slack_secrets(secretsmanager, SECRET_NAME)


def test_a_user_token_is_refused(secretsmanager: Any) -> None:
    store(secretsmanager, json.dumps({"bot_token": "xoxp-user-token", "signing_secret": SIGNING}))
    with pytest.raises(SecretError, match="must start with") as caught:
        load_slack_secrets(secretsmanager, SECRET_NAME)
    assert "xoxp-user-token" not in str(caught.value)


def test_a_secret_scheduled_for_deletion(secretsmanager: Any) -> None:
    store(secretsmanager, json.dumps({"bot_token": TOKEN, "signing_secret": SIGNING}))
    secretsmanager.delete_secret(SecretId=SECRET_NAME, RecoveryWindowInDays=7)
    with pytest.raises(SecretError, match="scheduled for deletion"):
        load_slack_secrets(secretsmanager, SECRET_NAME)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("AccessDeniedException", "grant secretsmanager:GetSecretValue"),
        ("DecryptionFailure", "grant kms:Decrypt"),
        ("InternalServiceError", r"failed \(InternalServiceError\)"),
    ],
)
def test_aws_errors_moto_cannot_produce(code: str, words: str) -> None:
    # GIVEN a real boto3 client whose answer is stubbed with botocore's Stubber (moto enforces no IAM)
    client = boto3.client(
        "secretsmanager", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        stubber.add_client_error("get_secret_value", service_error_code=code, service_message="no")
        # WHEN loaded / THEN the error names the secret and what to do
        with pytest.raises(SecretError, match=words):
            load_slack_secrets(client, SECRET_NAME)


def test_errors_that_are_not_from_aws_propagate() -> None:
    class Broken:
        def get_secret_value(self, **_: Any) -> Any:
            raise RuntimeError("programming error")

    with pytest.raises(RuntimeError, match="programming error"):
        load_slack_secrets(Broken(), SECRET_NAME)
