"""The CLI as users run it: the installed entry point and `python -m macie_chatops`, in fresh processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import EVENTS_DIR, ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_python_dash_m_validate_and_decide() -> None:
    assert run(sys.executable, "-m", "macie_chatops", "validate").returncode == 0
    files = sorted(str(p.relative_to(ROOT)) for p in EVENTS_DIR.glob("*.json"))
    result = run(sys.executable, "-m", "macie_chatops", "decide", *files)
    assert result.returncode == 0, result.stderr
    assert len([json.loads(line) for line in result.stdout.splitlines()]) == len(files)


def test_installed_entry_point() -> None:
    exe = shutil.which("macie-chatops", path=str(Path(sys.executable).parent))
    assert exe is not None, "the macie-chatops console script is not installed in this environment"
    result = run(exe, "validate", "--config", "tests/events/not-json.json")
    assert result.returncode == 2
    assert result.stderr.startswith("tests/events/not-json.json:")
