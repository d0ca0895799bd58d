"""What a handler's cold start does not build (docs/architecture.md §6), checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fresh(script: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def test_importing_the_store_builds_no_event_model_schema() -> None:
    # GIVEN a fresh interpreter WHEN a handler that never parses an event imports the store (every handler does)
    out = fresh(
        "import macie_chatops.store\n"
        "from macie_chatops.finding import FindingDetail, MacieEvent\n"
        "print(FindingDetail.__pydantic_complete__, MacieEvent.__pydantic_complete__)\n"
    )
    # THEN the event models exist but have not built their validation schemas
    assert out == ["False", "False"]


def test_the_first_parse_builds_them_and_parses() -> None:
    # GIVEN a fresh interpreter WHEN the first event is parsed THEN it parses, and the schemas are built then
    out = fresh(
        "from pathlib import Path\n"
        "from macie_chatops.finding import Finding, MacieEvent, parse_event\n"
        "parsed = parse_event(Path('tests/events/personal-review.json').read_text())\n"
        "print(isinstance(parsed, Finding), MacieEvent.__pydantic_complete__)\n"
    )
    assert out == ["True", "True"]
