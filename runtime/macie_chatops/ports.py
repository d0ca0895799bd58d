"""What the use cases ask of the world, each implemented by an adapter the handler roots build, and the clock.

A use case names these types in its dependencies and never the adapter behind them, so a test passes the
real adapter on moto or the Slack stand-in, or one of its own that fails on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from macie_chatops.jobs import RemediationJob
    from macie_chatops.slack_messages import SlackMessage

Clock: TypeAlias = Callable[[], datetime]


def utcnow() -> datetime:
    """The clock every use case defaults to: now, aware, in UTC."""
    return datetime.now(UTC)


class Counter(Protocol):
    """A metrics sink: one count of ``name`` with these dimensions."""

    def count(self, name: str, **dimensions: str) -> None: ...


class SlackPoster(Protocol):
    """Post a message to a channel, or in a message's thread; its ts (raises SlackError)."""

    def post(self, channel: str, message: SlackMessage) -> str: ...

    def reply(self, channel: str, thread_ts: str, message: SlackMessage) -> str: ...

    def update(self, channel: str, ts: str, message: SlackMessage) -> None: ...  # a policy finding's new count


class SlackUpdater(Protocol):
    """Replace a posted message (raises SlackError)."""

    def update(self, channel: str, ts: str, message: SlackMessage) -> None: ...


class JobQueue(Protocol):
    """The remediation queue (``jobs.SqsJobQueue``): send one job, its message id; how many jobs wait. Both raise
    when the queue cannot be used."""

    def send(self, job: RemediationJob) -> str: ...

    def waiting(self) -> int: ...
