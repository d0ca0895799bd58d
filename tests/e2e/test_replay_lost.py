"""``sandbox replay --lost`` (issue 16): every finding is held by the Macie stand-in and its EventBridge delivery is
dropped; one reconciler run must bring every one of them to the same outcome as a normal replay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import EVENTS_DIR, ROOT
from tests.e2e.test_cli import _env


def _replay(config_file: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, "-m", "macie_chatops", "sandbox", "replay", "--config", str(config_file), *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_lost_deliveries_recovered_by_the_reconciler_give_the_same_lines_as_a_normal_replay(
    short_window_config_file: Path,
) -> None:
    # GIVEN every event fixture of the project (good ones, duplicates, rejections, files the boundary refuses)
    files = [str(path) for path in sorted(EVENTS_DIR.glob("*.json"))]
    # WHEN they are replayed normally, and again with every EventBridge delivery lost
    code, delivered, _ = _replay(short_window_config_file, *files)
    lost_code, recovered, stderr = _replay(short_window_config_file, "--lost", *files)
    # THEN the lines are the same, file by file, and so is the exit code
    assert [Path(line["file"]).name for line in recovered] == [Path(file).name for file in files]
    differences = [(a, b) for a, b in zip(delivered, recovered, strict=True) if a != b]
    assert differences == [], stderr[-3000:]
    assert lost_code == code
    # AND the reconciler really did the work: it recovered findings (nothing reached the bus)
    assert "finding recovered: Macie holds it and no event delivered it" in stderr
    states = {line["state"] for line in recovered}
    assert {"QUARANTINED", "NOTIFIED", "IGNORED", "REJECTED"} <= states
