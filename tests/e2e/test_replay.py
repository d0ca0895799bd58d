"""``sandbox replay`` with bad files among good ones (issue 12, item 6): each bad file is an ERROR line with
its reason, the batch goes on, and the exit is 2; the replay's outcome for a file is the parse boundary's and
the pipeline's for the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from macie_chatops.config import Config
from macie_chatops.decision import decide
from macie_chatops.finding import Rejection, parse_event
from macie_chatops.states import State
from macie_chatops_sandbox import replay as replay_module
from macie_chatops_sandbox.replay import ERROR, read_files, replay
from macie_chatops_sandbox.sandbox import Sandbox
from tests.conftest import EVENTS_DIR, ROOT
from tests.e2e.test_cli import REPLAY_KEYS, _env

# The hostile files, each a reason the replay once aborted on or gave another answer than the pipeline.
BAD = {
    "hostile-region-trailing-newline.json": "detail.region",
    "hostile-key-nul.json": "U+0000",
    "hostile-key-newline.json": "U+000A",
    "hostile-key-lone-surrogate.json": "lone surrogate",
    "hostile-not-utf8.json": "not UTF-8",
    "hostile-deep-nesting.json": "deeper than 32",
    "hostile-bucket-name.json": "s3Bucket.name",
    "hostile-size-41-digits.json": "s3Object.size",
    "not-json.json": "not JSON",
}


def _replay(config_file: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "macie_chatops", "sandbox", "replay", "--config", str(config_file), *files],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_bad_files_are_error_lines_and_the_batch_goes_on_with_exit_2(short_window_config_file: Path) -> None:
    # GIVEN good files around every kind of bad one, and a BOM file (which decide reviews)
    files = ["credentials-auto.json", *BAD, "hostile-bom.json", "personal-review.json"]
    # WHEN the real CLI replays them
    result = _replay(short_window_config_file, *[str(EVENTS_DIR / name) for name in files])
    # THEN one line per file, in order; the exit is 2
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["file"]).name for line in lines] == files
    by_name = {Path(line["file"]).name: line for line in lines}
    # AND each bad file is an ERROR with the boundary's reason, its object never created
    for name, words in BAD.items():
        line = by_name[name]
        assert set(line) == REPLAY_KEYS | {"reason"}, line
        assert (line["action"], line["state"], line["object"]) == ("reject", ERROR, "none"), line
        assert words in line["reason"], line
        assert f"{name}: " in result.stderr
    # AND the good ones went through the pipeline as ever; the BOM file like decide says (review, clicked)
    got = {name: (by_name[name]["action"], by_name[name]["state"]) for name in files if name not in BAD}
    assert got == {
        "credentials-auto.json": ("auto", "QUARANTINED"),
        "hostile-bom.json": ("review", "QUARANTINED"),
        "personal-review.json": ("review", "QUARANTINED"),
    }
    assert all(set(by_name[name]) == REPLAY_KEYS for name in got)


def test_a_file_the_sandbox_fails_on_is_an_error_and_the_others_still_run(
    sandbox: Sandbox, config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN two findings, and a sandbox whose object upload fails for the first one's key only
    first = json.loads((EVENTS_DIR / "financial-high.json").read_text(encoding="utf-8"))
    second = json.loads((EVENTS_DIR / "key-with-spaces.json").read_text(encoding="utf-8"))
    files = []
    for index, event in enumerate((first, second)):
        file = tmp_path / f"event-{index}.json"
        file.write_text(json.dumps(event), encoding="utf-8")
        files.append(str(file))
    failing_key = first["detail"]["resourcesAffected"]["s3Object"]["key"]
    real_put = sandbox.put_object

    def put_object(account: str, region: str, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        if key == failing_key:
            raise ConnectionError("S3 went away")
        return real_put(account, region, bucket, key, *args, **kwargs)

    monkeypatch.setattr(sandbox, "put_object", put_object)
    # WHEN they are replayed
    lines = replay(sandbox, read_files(files, config), "dismiss", timeout_s=60)
    # THEN the first is an ERROR naming the failure, and the second still ran to its end
    assert lines[0]["state"] == ERROR and "S3 went away" in lines[0]["reason"]
    assert lines[1]["state"] == State.DISMISSED.value
    assert sandbox.record(first["detail"]["id"]) is None  # never published


def test_replay_reads_files_through_the_same_boundary_as_decide(config: Config) -> None:
    # GIVEN every fixture WHEN read for replay THEN its action is decide's on the same bytes, and an ERROR
    # exactly when the parse boundary refuses it
    files = sorted(str(p) for p in EVENTS_DIR.glob("*.json"))
    for item in read_files(files, config):
        parsed = parse_event(Path(item.file).read_bytes())
        assert item.decision == decide(parsed, config), item.file
        assert (item.error is not None) == isinstance(parsed, Rejection), item.file


def test_file_names_that_are_not_utf8_are_printable() -> None:
    assert replay_module.shown_path("events/\udcff.json") == "events/\ufffd.json"
