"""The Slack credentials, read from one Secrets Manager secret.

The secret's SecretString is JSON ``{"bot_token": "xoxb-...", "signing_secret": "..."}``. The CDK stack
creates it empty: the operator fills it after creating the Slack app, so "empty" is an expected state with
its own message, not a crash with a stack trace.

Public API::

    SlackSecrets(bot_token: str, signing_secret: str)     frozen; repr and str hide both values
    load_slack_secrets(secretsmanager_client, secret_id: str) -> SlackSecrets
        raises macie_chatops.errors.SecretError (missing, empty, not JSON, missing keys, blank values,
        unreadable); the message names the secret and the fix, never a value.

The client is a boto3 ``secretsmanager`` client, passed in (this module imports no AWS SDK).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from macie_chatops import names
from macie_chatops.errors import SecretError

_EXPECTED = f'{{"{names.SLACK_SECRET_BOT_TOKEN}": "xoxb-...", "{names.SLACK_SECRET_SIGNING_SECRET}": "..."}}'


@dataclass(frozen=True)
class SlackSecrets:
    """The bot token (Web API calls) and the signing secret (request verification)."""

    bot_token: str = field(repr=False)
    signing_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return "SlackSecrets(bot_token=<hidden>, signing_secret=<hidden>)"

    __str__ = __repr__


def load_slack_secrets(secretsmanager_client: Any, secret_id: str) -> SlackSecrets:
    """Read and check the Slack secret ``secret_id`` (name or ARN)."""
    try:
        response = secretsmanager_client.get_secret_value(SecretId=secret_id)
    except Exception as exc:
        code = _error_code(exc)
        if code is None:
            raise
        if code == "ResourceNotFoundException" and _has_no_value(exc):
            raise SecretError(_empty_message(secret_id)) from exc
        if code == "ResourceNotFoundException":
            raise SecretError(
                f"Slack secret {secret_id} does not exist: deploy the central stack (it creates the secret) "
                f"or set {names.ENV_SLACK_SECRET_ARN} to the right secret"
            ) from exc
        if code == "InvalidRequestException":
            raise SecretError(
                f"Slack secret {secret_id} cannot be read ({code}): it may be scheduled for deletion; restore it"
            ) from exc
        if code == "AccessDeniedException":
            raise SecretError(
                f"reading Slack secret {secret_id} was denied: grant secretsmanager:GetSecretValue "
                "(and kms:Decrypt on its key) to this function's role"
            ) from exc
        if code == "DecryptionFailure":
            raise SecretError(
                f"Slack secret {secret_id} cannot be decrypted: grant kms:Decrypt on the secret's KMS key to this "
                "function's role"
            ) from exc
        raise SecretError(f"reading Slack secret {secret_id} failed ({code})") from exc

    raw = response.get("SecretString")
    if raw is None or not str(raw).strip():
        raise SecretError(_empty_message(secret_id))
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SecretError(
            f"Slack secret {secret_id} is not JSON (error at line {exc.lineno} column {exc.colno}): "
            f"store it as {_EXPECTED}"
        ) from None  # the decoder's message can quote the secret's text
    if not isinstance(document, dict):
        raise SecretError(f"Slack secret {secret_id} must be a JSON object: store it as {_EXPECTED}")

    required = (names.SLACK_SECRET_BOT_TOKEN, names.SLACK_SECRET_SIGNING_SECRET)
    missing = [key for key in required if key not in document]
    if missing:
        raise SecretError(
            f"Slack secret {secret_id} lacks {', '.join(missing)}: store it as {_EXPECTED} "
            f"(keys found: {', '.join(sorted(map(str, document))) or 'none'})"
        )
    blank = [key for key in required if not isinstance(document[key], str) or not document[key].strip()]
    if blank:
        raise SecretError(
            f"Slack secret {secret_id} has blank or non-string {', '.join(blank)}: fill in the Slack app's "
            "bot token (OAuth & Permissions) and signing secret (Basic Information)"
        )
    bot_token = document[names.SLACK_SECRET_BOT_TOKEN].strip()
    signing_secret = document[names.SLACK_SECRET_SIGNING_SECRET].strip()
    if not bot_token.startswith("xoxb-"):
        raise SecretError(
            f"Slack secret {secret_id}: {names.SLACK_SECRET_BOT_TOKEN} is not a bot token (it must start with "
            "xoxb-); copy the Bot User OAuth Token of the Slack app"
        )
    return SlackSecrets(bot_token=bot_token, signing_secret=signing_secret)


def _empty_message(secret_id: str) -> str:
    return (
        f"Slack secret {secret_id} is empty: the stack creates it without a value; store the Slack app's "
        f"credentials in it as JSON {_EXPECTED} (see docs/deploy.md)"
    )


def _has_no_value(exc: Exception) -> bool:
    """A secret that exists without a value answers ResourceNotFound for its AWSCURRENT version."""
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
    return "secret value" in message or "staging label" in message or "AWSCURRENT" in message


def _error_code(exc: Exception) -> str | None:
    """The AWS error code of a botocore ClientError, without importing botocore."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None
