"""Hostile input to the operator CLI (issue 12): ``decide`` reads event bytes through the handler's parse
boundary (item 1: no traceback on deep nesting; item 8: a BOM is reviewed as everywhere else), and
``validate`` points at the line to fix (item 9: where an unclosed bracket or quote was opened; patterns
matched whole and in ASCII)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macie_chatops.cli import main
from macie_chatops.config import ConfigError, parse_config
from tests.conftest import EVENTS_DIR, ROOT

ACCOUNTS = (ROOT / "accounts.yaml").read_text(encoding="utf-8")


def decide_lines(capsys: pytest.CaptureFixture[str], *files: Path | str) -> dict[str, dict[str, str]]:
    assert main(["decide", "--config", str(ROOT / "accounts.yaml"), *map(str, files)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return {Path(line["file"]).name: line for line in map(json.loads, captured.out.splitlines())}


def test_decide_answers_every_hostile_fixture_with_a_reasoned_reject(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(EVENTS_DIR.glob("hostile-*.json"))
    lines = decide_lines(capsys, *files)
    assert sorted(lines) == [f.name for f in files]
    for name, line in lines.items():
        if name != "hostile-bom.json":
            assert line["action"] == "reject" and line["reason"], line
    assert "deeper than 32" in lines["hostile-deep-nesting.json"]["reason"]
    assert "s3Object.size" in lines["hostile-size-41-digits.json"]["reason"]  # was "review"


def test_decide_reviews_a_bom_file_as_the_pipeline_does(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # GIVEN a review finding saved with a UTF-8 byte order mark, and the same without
    plain = (EVENTS_DIR / "personal-review.json").read_bytes()
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + plain)
    # THEN both are decided the same way (the boundary ignores one BOM, for bytes and text alike)
    lines = decide_lines(capsys, EVENTS_DIR / "personal-review.json", bom)
    assert lines["bom.json"]["action"] == lines["personal-review.json"]["action"] == "review"


def test_decide_prints_a_file_name_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # GIVEN a file whose name is not UTF-8 (os.fsdecode gives a lone surrogate for the byte)
    name = tmp_path / "ev\udcffent.json"
    name.write_bytes((EVENTS_DIR / "personal-review.json").read_bytes())
    lines = decide_lines(capsys, name)
    assert list(lines) == ["ev\ufffdent.json"]


@pytest.mark.parametrize(
    ("broken", "line", "words"),
    [
        ("regions: [us-east-1, eu-west-1]", "regions: [us-east-1, eu-west-1", "'['"),
        ("regions: [us-east-1, eu-west-1]", "regions: [us-east-1,\n  eu-west-1", "'['"),
        # the last line: no later quote can close it
        ("remediation_role_name: macie-chatops-remediation", 'remediation_role_name: "macie-chatops', "quoted string"),
    ],
    ids=["bracket", "bracket-over-lines", "quote"],
)
def test_validate_reports_an_unclosed_bracket_or_quote_where_it_was_opened(
    broken: str, line: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN accounts.yaml with an opening bracket or quote never closed
    assert broken in ACCOUNTS
    opened_on = ACCOUNTS[: ACCOUNTS.index(broken)].count("\n") + 1
    file = tmp_path / "accounts.yaml"
    file.write_text(ACCOUNTS.replace(broken, line, 1), encoding="utf-8")
    # WHEN validated THEN the one issue names the line where it was opened, and what was left open
    assert main(["validate", "--config", str(file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"{file}:{opened_on}: (syntax): YAML syntax error: the {words} opened here is not closed")


def test_other_syntax_errors_keep_the_line_the_parser_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("version: 1\nregions: [us-east-1]]\n")
    assert [issue.line for issue in caught.value.issues] == [2]


@pytest.mark.parametrize(
    ("good", "bad", "field"),
    [
        ("regions: [us-east-1, eu-west-1]", 'regions: ["us-east-1\\n", eu-west-1]', "regions"),
        ('"345678901234"', '"\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0663\u0664"', "id"),
        ("approvers: [U0ALICE,", 'approvers: ["U0ALICE\\n",', "approvers"),
    ],
    ids=["region-newline", "account-arabic-digits", "approver-newline"],
)
def test_config_ids_and_regions_are_matched_whole_and_in_ascii(good: str, bad: str, field: str) -> None:
    assert good in ACCOUNTS
    with pytest.raises(ConfigError) as caught:
        parse_config(ACCOUNTS.replace(good, bad, 1))
    assert any(field in issue.field for issue in caught.value.issues), caught.value.issues
