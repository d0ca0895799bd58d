"""Real, signed Slack button clicks, as Slack sends them and as API Gateway hands them to the handler.

One implementation for the tests, the benchmark and the sandbox's "click as approver": build the
``block_actions`` payload, form-encode it (``payload=<url-encoded JSON>``), sign it exactly as Slack does
(HMAC-SHA256 over ``v0:{timestamp}:{body}`` with the signing secret), and wrap it in an API Gateway REST
proxy event. The signature is computed here with ``hmac`` directly, independently of slack_sdk, so the
tests check our verification against a second implementation (and Slack's published vector).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"


def signature(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Slack's ``v0=`` signature of ``body`` sent at ``timestamp``."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + raw
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int | str, body: bytes | str) -> dict[str, str]:
    """The two headers Slack adds to a request it signed."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def click_payload(
    *,
    action_id: str,
    value: str,
    user_id: str,
    team_id: str,
    channel_id: str,
    message_ts: str = "1700000000.000100",
    username: str | None = None,
    enterprise_id: str | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
    selected_option: str | None = None,
    is_ephemeral: bool = False,
) -> dict[str, Any]:
    """A ``block_actions`` payload for one button click (the fields Slack documents, trimmed to a message);
    ``trigger_id``: one the Slack stand-in issued, when the click is to open a modal; ``selected_option``: the
    value chosen in a ``static_select`` (a thread page's "act on one", §22) instead of a button's ``value``;
    ``is_ephemeral``: the clicked message was one only the clicker sees."""
    team: dict[str, Any] = {"id": team_id, "domain": "example"}
    if enterprise_id is not None:
        team["enterprise_id"] = enterprise_id
    return {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": username or user_id.lower(),
            "name": username or user_id.lower(),
            "team_id": team_id,
        },
        "api_app_id": "A0MACIECHATOPS",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id or "1234567890.1234567890.abcdef",
        "team": team,
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "macie-findings"},
        "message": {"type": "message", "ts": message_ts, "text": "Macie finding", "blocks": []},
        "response_url": response_url or f"https://hooks.slack.com/actions/{team_id}/1/stand-in",
        "actions": [_action(action_id, value, selected_option, f"{message_ts}1")],
    }


def _action(action_id: str, value: str, selected_option: str | None, action_ts: str) -> dict[str, Any]:
    if selected_option is not None:
        option = {"text": {"type": "plain_text", "text": selected_option[:75], "emoji": True}, "value": selected_option}
        return {
            "action_id": action_id,
            "block_id": "macie_chatops.page.1",
            "type": "static_select",
            "selected_option": option,
            "placeholder": {"type": "plain_text", "text": "Act on one finding…", "emoji": True},
            "action_ts": action_ts,
        }
    return {
        "action_id": action_id,
        "block_id": "macie_chatops.actions",
        "text": {"type": "plain_text", "text": "Remediate", "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": action_ts,
    }


def form_body(payload: Mapping[str, Any] | str) -> bytes:
    """``payload=<url-encoded JSON>``: the form body Slack posts for every interaction."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return urlencode({"payload": text}).encode("ascii")


def signed_click_body(
    secret: str,
    *,
    action_id: str,
    finding_id: str,
    user_id: str,
    team_id: str,
    channel_id: str,
    timestamp: int | None = None,
    **payload_fields: Any,
) -> tuple[bytes, dict[str, str]]:
    """The body and signed headers of one click on a finding's button (``timestamp`` defaults to now)."""
    body = form_body(
        click_payload(
            action_id=action_id,
            value=finding_id,
            user_id=user_id,
            team_id=team_id,
            channel_id=channel_id,
            **payload_fields,
        )
    )
    ts = int(time.time()) if timestamp is None else timestamp
    return body, {**sign(secret, ts, body), "Content-Type": "application/x-www-form-urlencoded"}


def signed_form(
    secret: str, payload: Mapping[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Any interaction payload (a ``view_submission``, say) as Slack posts it: the form body and signed headers."""
    body = form_body(payload)
    ts = int(time.time()) if timestamp is None else timestamp
    return body, {**sign(secret, ts, body), "Content-Type": "application/x-www-form-urlencoded"}


def api_gateway_event(
    body: bytes | str | None,
    headers: Mapping[str, str] | None,
    *,
    base64_encoded: bool = False,
    multi_value_headers: Mapping[str, list[str]] | None = None,
    request_id: str | None = None,
    path: str = "/slack/interactions",
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event for ``POST path``.

    ``multi_value_headers`` defaults to each header as a one-element list, as API Gateway sends it.
    ``base64_encoded`` encodes ``body`` and sets ``isBase64Encoded`` (binary media types do this); bytes
    that are not UTF-8 are always sent that way.
    """
    if isinstance(body, bytes):
        try:
            text: str | None = None if base64_encoded else body.decode("utf-8")
        except UnicodeDecodeError:  # API Gateway can only hand binary over base64-encoded
            base64_encoded = True
        if base64_encoded:
            text = base64.b64encode(body).decode("ascii")
    elif body is not None and base64_encoded:
        text = base64.b64encode(body.encode("utf-8")).decode("ascii")
    else:
        text = body
    single = dict(headers or {})
    multi = (
        {name: list(values) for name, values in multi_value_headers.items()}
        if multi_value_headers is not None
        else {name: [value] for name, value in single.items()}
    )
    rid = request_id or str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "POST",
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": rid,
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "Slackbot 1.0 (+https://api.slack.com/robots)"},
        },
        "body": text,
        "isBase64Encoded": base64_encoded,
    }


def signed_click_event(
    secret: str,
    *,
    action_id: str,
    finding_id: str,
    user_id: str,
    team_id: str,
    channel_id: str,
    timestamp: int | None = None,
    base64_encoded: bool = False,
    **payload_fields: Any,
) -> dict[str, Any]:
    """A signed click, ready for ``macie_chatops.handlers.interaction.lambda_handler``."""
    body, headers = signed_click_body(
        secret,
        action_id=action_id,
        finding_id=finding_id,
        user_id=user_id,
        team_id=team_id,
        channel_id=channel_id,
        timestamp=timestamp,
        **payload_fields,
    )
    return api_gateway_event(body, headers, base64_encoded=base64_encoded)
