"""The operator CLI contract for validate and decide (run in-process: no network, no AWS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macie_chatops.cli import main
from tests.conftest import EVENTS_DIR, ROOT


def test_validate_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--config", str(ROOT / "accounts.yaml")]) == 0
    assert "valid" in capsys.readouterr().err


def test_validate_broken_config_exits_2_with_located_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the shipped file with an unquoted account id and a channel name
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
    text = text.replace('{id: "345678901234"', "{id: 345678901234").replace("C0ANALYTIC", "'#analytics'")
    broken = tmp_path / "accounts.yaml"
    broken.write_text(text, encoding="utf-8")
    # WHEN it is validated
    code = main(["validate", "--config", str(broken)])
    # THEN exit 2, and FILE:LINE: field: message lines
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert any(line.startswith(f"{broken}:") and "accounts[0].id:" in line for line in err)
    assert any("teams.analytics.channel:" in line for line in err)


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("MACIE_CHATOPS_CONFIG", str(missing))
    assert main(["validate"]) == 2


def test_decide_prints_one_json_line_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in EVENTS_DIR.glob("*.json"))
    assert main(["decide", "--config", str(ROOT / "accounts.yaml"), *files]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == files
    for line in lines:
        assert set(line) == {"file", "finding_id", "account", "team", "channel", "action", "reason"}
        assert line["action"] in {"auto", "review", "notify", "ignore", "reject"}
    by_name = {Path(line["file"]).stem: line for line in lines}
    assert by_name["credentials-auto"]["action"] == "auto"
    assert by_name["personal-review"]["action"] == "review"
    assert by_name["personal-review"]["channel"] == "C0PAYMENTS"
    assert by_name["unknown-account"]["action"] == "reject"
    assert by_name["not-json"]["action"] == "reject"


def test_decide_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = str(EVENTS_DIR / "credentials-auto.json")
    code = main(["decide", "--config", str(ROOT / "accounts.yaml"), good, str(tmp_path / "missing.json")])
    captured = capsys.readouterr()
    assert code == 2
    assert len(captured.out.splitlines()) == 1
    assert "cannot read" in captured.err


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "macie-chatops accounts.yaml"
    assert "accounts" in schema["properties"]


def test_validate_explains_auto_deploy_when_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the shipped file, as is (auto_deploy: false), and with auto_deploy: true
    assert main(["validate", "--config", str(ROOT / "accounts.yaml")]) == 0
    assert "auto_deploy" not in capsys.readouterr().err
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8").replace("auto_deploy: false", "auto_deploy: true")
    on = tmp_path / "accounts.yaml"
    on.write_text(text, encoding="utf-8")
    # WHEN it is validated  THEN exit 0, and one line says what auto-deployment does to unlisted accounts
    assert main(["validate", "--config", str(on)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "deployment.auto_deploy" in line]
    assert len(notes) == 1 and notes[0].startswith(f"{on}: note:")
    assert "any account added to a target OU, listed here or not" in notes[0]


def test_validate_states_the_waf_cost_when_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the shipped file, as is (no slack.waf), and with slack.waf: true
    assert main(["validate", "--config", str(ROOT / "accounts.yaml")]) == 0
    assert "slack.waf" not in capsys.readouterr().err
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8").replace("  # waf: false", "  waf: true")
    on = tmp_path / "accounts.yaml"
    on.write_text(text, encoding="utf-8")
    # WHEN it is validated  THEN exit 0, and one line says what the web ACL does and what it costs
    assert main(["validate", "--config", str(on)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "slack.waf" in line]
    assert len(notes) == 1 and notes[0].startswith(f"{on}: note:")
    assert "USD 7 a month" in notes[0] and "signature headers" in notes[0]


def test_slack_waf_must_be_a_boolean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN slack.waf written as a string
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8").replace("  # waf: false", '  waf: "yes"')
    bad = tmp_path / "accounts.yaml"
    bad.write_text(text, encoding="utf-8")
    # WHEN it is validated  THEN it is refused with the field's location
    assert main(["validate", "--config", str(bad)]) == 2
    assert "slack.waf" in capsys.readouterr().err
