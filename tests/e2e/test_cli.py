"""The operator CLI's sandbox commands, run for real as subprocesses: ``sandbox replay``, ``sandbox serve``
and ``demo`` (DESIGN.md "Operator CLI" is the contract checked here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from macie_chatops import names
from macie_chatops_sandbox.slack_clicks import signed_click_body
from tests.conftest import EVENTS_DIR, ROOT

REPLAY_KEYS = {"file", "finding_id", "action", "state", "object"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MACIE_CHATOPS", "SLACK_", "POWERTOOLS"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "macie_chatops", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def _event(name: str) -> str:
    return str(EVENTS_DIR / name)


def test_replay_prints_one_contract_line_per_event_with_the_final_state() -> None:
    files = [
        "credentials-auto.json",  # auto -> quarantined
        "personal-review.json",  # review -> clicked Remediate by an approver -> quarantined
        "financial-low.json",  # notify
        "analytics-personal-low.json",  # ignore (analytics: below Medium)
        "unknown-account.json",  # reject: not in accounts.yaml
        "credentials-auto.json",  # the same finding id again
    ]
    # WHEN the real CLI replays them
    result = _cli("sandbox", "replay", *[_event(f) for f in files])
    # THEN it exits 0 and prints exactly one JSON object per event, in order, with the contract's keys
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _lines(result.stdout)
    assert [Path(line["file"]).name for line in lines] == files
    assert all(set(line) == REPLAY_KEYS for line in lines)
    got = [(line["action"], line["state"], line["object"]) for line in lines]
    assert got == [
        ("auto", "QUARANTINED", "quarantine"),
        ("review", "QUARANTINED", "quarantine"),
        ("notify", "NOTIFIED", "source"),
        ("ignore", "IGNORED", "source"),
        ("reject", "REJECTED", "source"),
        ("auto", "DUPLICATE", "quarantine"),
    ]
    assert lines[0]["finding_id"] == lines[5]["finding_id"] == "6a1b2c3d4e5f60718293a4b5c6d70001"
    # (files the parse boundary refuses are ERROR lines and exit 2: tests/e2e/test_replay.py)


def test_replay_with_dismiss_dismisses_review_findings_and_reports_unreadable_files() -> None:
    # GIVEN two review findings and a file that does not exist
    result = _cli(
        "sandbox",
        "replay",
        "--dismiss",
        _event("personal-review.json"),
        _event("multiple-review.json"),
        "/nonexistent/e.json",
    )
    # THEN the readable ones are dismissed (nothing moves), the unreadable one is an ERROR line and named on
    # stderr, and the exit is 2
    assert result.returncode == 2, result.stderr[-3000:]
    assert "/nonexistent/e.json: cannot read" in result.stderr
    lines = _lines(result.stdout)
    assert [(line["action"], line["state"], line["object"]) for line in lines] == [
        ("review", "DISMISSED", "source"),
        ("review", "DISMISSED", "source"),
        ("reject", "ERROR", "none"),
    ]
    assert lines[2]["file"] == "/nonexistent/e.json" and lines[2]["reason"].startswith("cannot read the file")


def _state_table_status(ready: dict[str, str]) -> str:
    """DescribeTable of the announced state table, as a tool would: a role assumed in the security account."""
    import boto3

    endpoint, region = ready["aws_endpoint"], ready["region"]
    sts = boto3.client(
        "sts", endpoint_url=endpoint, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    role = f"arn:aws:iam::{ready['security_account']}:role/any-tool"
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="tool")["Credentials"]
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return str(dynamodb.describe_table(TableName=ready["state_table"])["Table"]["TableStatus"])


def test_serve_announces_its_endpoints_takes_real_requests_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "macie_chatops", "sandbox", "serve"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # GIVEN the first stdout line
        ready = json.loads(process.stdout.readline())
        assert set(ready) == {
            "interaction_url",
            "slack_url",
            "aws_endpoint",
            "signing_secret",
            "state_table",
            "security_account",
            "region",
        }
        # WHEN a click signed with the announced secret arrives for a finding nobody reported
        body, headers = signed_click_body(
            ready["signing_secret"],
            action_id=names.ACTION_REMEDIATE,
            finding_id="0" * 32,
            user_id="U0ALICE",
            team_id="T0EXAMPLE",
            channel_id="C0PAYMENTS",
        )
        request = urllib.request.Request(ready["interaction_url"], data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        # THEN the real interaction handler answered (signature accepted, finding unknown)
        assert answer["response_type"] == "ephemeral"
        # AND a forged one is refused
        forged = urllib.request.Request(
            ready["interaction_url"], data=body, headers={**headers, "X-Slack-Signature": "v0=" + "0" * 64}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=30)
        assert refused.value.code == 401
        # AND the AWS endpoint is moto's
        with urllib.request.urlopen(ready["aws_endpoint"] + "/moto-api/", timeout=30) as response:
            assert response.status == 200
        # AND the state table is there, in the security account, where a tool can read the outcomes
        assert _state_table_status(ready) == "ACTIVE"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    # THEN SIGTERM stops it cleanly
    assert process.returncode == 0, stderr[-3000:]
    assert "sandbox stopped" in stderr


def test_demo_tells_the_whole_story_and_ends_with_the_table() -> None:
    # The story, not its speed: 131 s measured at load average 6-7 on the 2-core box (the 200-finding flood is most of
    # it, CPU-bound in one process); beside a full suite it can take twice that.
    result = _cli("demo", timeout_s=360)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # every scene happened, with the outcomes the story promises
    for text in ("QUARANTINED", "not an approver", "DISMISSED", "BLOCKED", "RESTORED", "Where everything ended up"):
        assert text in out, text
    table = out[out.index("Where everything ended up") :].split("\n\n", 1)[0].splitlines()[2:]
    rows = [row for row in table if row.strip()]
    assert len(rows) == 8
    # the dismissal went through the form: its reason and exemption are shown, and a later finding in the same
    # prefix is ignored by that exemption, with no message
    assert "a form opens in Slack" in out and "Panel sample from the research vendor" in out
    assert "every object under s3://" in out and "research/ in account" in out
    assert any(
        "(later)" in row and "ignore (exempted)" in row and "IGNORED" in row and row.rstrip().endswith(" 0")
        for row in rows
    )
    # automated discovery, published in the Macie administrator account, quarantined in the bucket owner's
    # quarantine bucket; the same object version reported again: a duplicate, pointing at the same copy
    assert "the Macie administrator's default bus" in out
    assert any("(discovery)" in row and "QUARANTINED" in row and " quarantine " in row for row in rows)
    assert any("(again)" in row and "DUPLICATE" in row and " quarantine " in row for row in rows)
    assert any("RESTORED" in row and " both " in row for row in rows)  # the quarantined copy is kept as evidence
    assert any("BLOCKED" in row and " both " in row for row in rows)
    assert any("DISMISSED" in row and " source " in row for row in rows)
    assert any("QUARANTINED" in row and " quarantine " in row for row in rows)
    # a public bucket's policy finding: one message for both reports, closed by the block, reopened by Undo exactly
    assert "still one record (PENDING_APPROVAL) and one message, updated in place" in out
    assert "PUBLIC_ACCESS_BLOCKED; bucket now: all four settings on" in out
    assert "UNDONE; bucket now: BlockPublicAcls on, IgnorePublicAcls on, BlockPublicPolicy off" in out
    assert "exactly as before the block" in out
    # a flood (issue 14): 200 findings about one bucket, one message (the digest) with its thread of pages, one bulk
    # approval (over 100: continued in the background), every object quarantined
    assert "ONE message for the 200" in out and "2 thread replies" in out
    assert "clicks 'Quarantine all 200'" in out and "clicks it again" not in out
    assert any(
        row.startswith("  Personal x200") and "QUARANTINED x200" in row and " quarantine " in row for row in rows
    )
