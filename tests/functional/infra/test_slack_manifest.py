"""`macie-chatops slack-manifest --api-url URL`: the manifest that creates the Slack app in one step."""

from __future__ import annotations

import json

import pytest

from macie_chatops import names
from macie_chatops.cli import main

STAGE_URL = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/slack/"
REQUEST_URL = f"https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/slack{names.SLACK_INTERACTIONS_PATH}"


@pytest.mark.parametrize("given", [REQUEST_URL, STAGE_URL])
def test_manifest_points_interactivity_at_the_slack_endpoint(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the stack's SlackRequestUrl output (or the API's stage URL)
    # WHEN the manifest is printed
    status = main(["slack-manifest", "--api-url", given])
    manifest = json.loads(capsys.readouterr().out)
    # THEN it asks for exactly the two bot scopes (no channel history: least privilege) and sends clicks to the
    # interactions route
    assert status == 0
    assert manifest["oauth_config"]["scopes"] == {"bot": ["chat:write", "usergroups:read"]}
    assert manifest["settings"]["interactivity"] == {"is_enabled": True, "request_url": REQUEST_URL}
    assert manifest["features"]["bot_user"]["display_name"]
    assert manifest["_metadata"]["major_version"] == 1
    assert "event_subscriptions" not in manifest["settings"]


def test_reading_threads_is_asked_for_only_when_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an organisation that wants an interrupted digest page looked for in its thread (architecture §22)
    # WHEN the manifest is printed with --read-threads
    status = main(["slack-manifest", "--api-url", REQUEST_URL, "--read-threads"])
    manifest = json.loads(capsys.readouterr().out)
    # THEN it adds exactly the two history scopes conversations.replies needs in public and private channels
    assert status == 0
    scopes = ["chat:write", "usergroups:read", "channels:history", "groups:history"]
    assert manifest["oauth_config"]["scopes"] == {"bot": scopes}


@pytest.mark.parametrize(
    "bad",
    ["http://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/slack/", "not a url", f"{REQUEST_URL}?x=1", "https://"],
)
def test_a_url_slack_cannot_use_is_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["slack-manifest", "--api-url", bad])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert "--api-url must be an https URL" in captured.err
