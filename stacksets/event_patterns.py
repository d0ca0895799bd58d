"""EventBridge patterns as CDK objects, from plain dicts (the runtime package's single source of truth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import aws_events as events

from macie_chatops.event_pattern import MACIE_FINDING_PATTERN

_FIELDS = {
    "source": "source",
    "detail-type": "detail_type",
    "account": "account",
    "region": "region",
    "resources": "resources",
    "detail": "detail",
    "id": "id",
    "time": "time",
    "version": "version",
}


def event_pattern(pattern: Mapping[str, Any]) -> events.EventPattern:
    """``{"source": [...], "detail-type": [...], ...}`` -> ``events.EventPattern`` (unknown keys are an error)."""
    unknown = sorted(set(pattern) - set(_FIELDS))
    if unknown:
        raise ValueError(f"event pattern has keys EventPattern cannot express: {', '.join(unknown)}")
    return events.EventPattern(**{_FIELDS[key]: value for key, value in pattern.items()})


def macie_finding_pattern() -> events.EventPattern:
    return event_pattern(MACIE_FINDING_PATTERN)


def alarm_state_change_pattern(*, alarm_name_prefix: str) -> events.EventPattern:
    """CloudWatch alarms of ours entering ALARM (member alarms relayed to the central topic)."""
    return events.EventPattern(
        source=["aws.cloudwatch"],
        detail_type=["CloudWatch Alarm State Change"],
        detail={"alarmName": [{"prefix": alarm_name_prefix}], "state": {"value": ["ALARM"]}},
    )
