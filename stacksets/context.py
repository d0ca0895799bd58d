"""cdk.json's context (feature flags), for Apps built outside the CLI: the tests and the member App."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

CDK_JSON: Final = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context(cdk_json: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` of cdk.json, so an App built in code behaves exactly like one run by ``cdk synth``."""
    context: dict[str, Any] = json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {})
    return context
