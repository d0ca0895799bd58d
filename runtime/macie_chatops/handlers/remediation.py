"""Lambda: the remediation queue's SQS batches of up to :data:`BATCH_SIZE` jobs (each body a ``RemediationJob``).

The remediator's composition root: each record goes to :func:`macie_chatops.remediation.handle_job`, one after
another; only the records that raised return to the queue. The function runs up to 15 minutes, and a job is
started only when :class:`StartGuard` finds the time left enough for it; otherwise it is deferred: re-sent to its
queue and acknowledged, untouched (docs/architecture.md §7, "Jobs in batches"). A job whose re-send fails returns
to the queue as a failure. Before a first job that may outlast the time left starts, the jobs behind it in the
batch are re-sent and acknowledged the same way (:class:`LaterJobs`). The queue's visibility timeout is longer
than the function's timeout (the central stack sets both).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.errors import MacieChatOpsError, SlackError
from macie_chatops.handlers._root import (
    AwsTimeouts,
    ContainerCache,
    HandlerMetrics,
    Settings,
    SqsRecord,
    redeliver_later,
    remaining_time,
    run_sqs_batch,
    slack_pacer,
)
from macie_chatops.handlers._tracing import traced

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from macie_chatops.config import Config
    from macie_chatops.remediation import RemediationDependencies
    from macie_chatops.sessions import MemberSessions
    from macie_chatops.store import FindingRecord

SERVICE: Final = "macie-chatops-remediator"
# Jobs per invocation at most: the central stack's event source (no batching window) and the sandbox's poller.
BATCH_SIZE: Final = 10
# Any job's least time: the calls of a small object's move, the records and the Slack update, with their timeouts.
MIN_SECONDS_FOR_A_JOB: Final = 60.0
# What a later job of an invocation needs per byte of its object besides MIN_SECONDS_FOR_A_JOB: S3 copies it and
# the mover may read the copy back to verify it; 50 MiB/s for both together is an assumption on the slow side.
MOVE_BYTES_PER_SECOND: Final = 50 * 1024 * 1024
DEFERRAL_DELAY_S: Final = 1  # a deferred job is visible again after 1 s (the least redeliver_later sends)
AWS_TIMEOUTS: Final = AwsTimeouts(connect_s=3, read_s=10)
SLACK_TIMEOUT_S: Final = 10

logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)
_cache = ContainerCache()


class JobDeferredError(MacieChatOpsError):
    """A job deferred for lack of time could not be re-sent: it returns to the queue untouched, as a failure."""


def seconds_needed(size_bytes: int) -> float:
    """The time a later job of an invocation needs left to start, for an object of ``size_bytes``."""
    return MIN_SECONDS_FOR_A_JOB + size_bytes / MOVE_BYTES_PER_SECOND


class StartGuard:
    """Which jobs of one invocation start.

    No job starts with less than :data:`MIN_SECONDS_FOR_A_JOB` left (asked before its record is read). The
    first job that acts always starts otherwise: it has the whole timeout, as when each invocation took one job,
    and deferring it would gain nothing. A later one starts only when the time left covers
    :func:`seconds_needed` for its object's size (the record's: the exact version the move copies): an
    invocation cut off by its timeout returns its whole batch to the queue, the jobs it finished too, each one
    receive nearer the dead letters."""

    def __init__(
        self, remaining_time_s: Callable[[], float], before_overrun: Callable[[float], None] | None = None
    ) -> None:
        self._remaining_time_s = remaining_time_s
        self._before_overrun = before_overrun
        self._started = False

    def any_job(self) -> bool:
        return self._remaining_time_s() >= MIN_SECONDS_FOR_A_JOB

    def starts(self, size_bytes: int) -> bool:
        """Whether a job acting on an object of ``size_bytes`` starts now (it counts as started if so). A first job
        whose object needs more than the time left still starts, after ``before_overrun`` (given the seconds left)
        passed the batch's later jobs on: if it is cut off by the timeout, they do not wait behind it."""
        remaining_s = self._remaining_time_s()
        if remaining_s < seconds_needed(size_bytes):
            if self._started:
                return False
            if self._before_overrun is not None:
                self._before_overrun(remaining_s)
        self._started = True
        return True

    def may_start(self, record: FindingRecord) -> bool:
        return self.starts(record.summary.size if record.summary is not None else 0)


def read_settings() -> Settings:
    return Settings.from_env(queue=False)


def clear_caches() -> None:
    """Forget what the container read (tests that change the world under the handler)."""
    _cache.clear()


def _member_sessions(settings: Settings, config: Config) -> MemberSessions:
    role_name = config.deployment.remediation_role_name

    def build() -> MemberSessions:
        from macie_chatops.sessions import MemberSessions

        return MemberSessions(role_name=role_name)

    return _cache.get(("member_sessions", role_name, settings.aws_endpoint_url, settings.region), build)


def dependencies(
    settings: Settings,
    remaining_time_s: Callable[[], float],
    may_start: Callable[[FindingRecord], bool] | None = None,
) -> RemediationDependencies:
    """The remediation dependencies for one invocation (everything but the SlackClient is cached); ``may_start``:
    the invocation's :class:`StartGuard`."""
    from macie_chatops.remediation import RemediationDependencies
    from macie_chatops.slack_client import SlackClient

    config = _cache.config(settings)
    grouping = _cache.grouping(settings, AWS_TIMEOUTS)
    return RemediationDependencies(
        config=config,
        store=_cache.store(settings, AWS_TIMEOUTS),
        sessions=_member_sessions(settings, config),
        slack=SlackClient(
            _cache.web_client(settings, AWS_TIMEOUTS, slack_timeout_s=SLACK_TIMEOUT_S),
            remaining_time_s=remaining_time_s,
            pacer=slack_pacer(_cache, settings, AWS_TIMEOUTS),
            metrics=metrics,
        ),
        metrics=metrics,
        verifier=_cache.approval_verifier(settings, AWS_TIMEOUTS),
        groups=None if grouping is None else grouping.store,
        digest_wakes=grouping,  # the digest queue is the grouping's: no client or setting of its own
        may_start=may_start,
    )


@traced(SERVICE)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = read_settings()
    remaining_time_s = remaining_time(context)
    # Re-sends: a deferred job's, the jobs passed on before one that may overrun the time left, and a record Slack
    # cannot take yet (429, the channel's pace: run_sqs_batch).
    sqs = _cache.client("sqs", settings, AWS_TIMEOUTS)
    batch = LaterJobs(sqs, event)
    guard = StartGuard(remaining_time_s, before_overrun=batch.pass_on)
    deps = dependencies(settings, remaining_time_s, may_start=guard.may_start)
    from macie_chatops.remediation import JobResult, handle_job

    def handle(record: SqsRecord) -> str:
        if batch.passed_on(record):
            return "passed on"
        batch.handling(record)
        started = time.monotonic()
        result = handle_job(record.body, deps) if guard.any_job() else JobResult.DEFERRED
        if result is JobResult.DEFERRED:
            return _defer(sqs, record, remaining_time_s())
        # A move's latency (result "quarantined"), a restore's, a public access block's... (the dashboard)
        metrics.seconds(names.JOB_SECONDS_METRIC, time.monotonic() - started, result=result.value)
        return result.value

    def failed(record: SqsRecord, exc: Exception, fields: dict[str, Any]) -> None:
        if isinstance(exc, JobDeferredError):  # counted as deferred already; the cause is logged with the error
            logger.warning("deferred job returned to the queue", extra={**fields, "error": str(exc)[:500]})
            return
        metrics.count("JobsFailed", error_type=type(exc).__name__)
        if isinstance(exc, SlackError | MacieChatOpsError):
            # Already logged with its detail (and recorded on the finding where there is one).
            logger.warning("job returned to the queue", extra={**fields, "error": str(exc)[:500]})
            _cache.forget_bad_token(settings, exc)
        else:
            logger.exception("job failed: returned to the queue", extra=fields)

    return run_sqs_batch(event, context, handle=handle, failed=failed, logger=logger, sqs=sqs)


class LaterJobs:
    """The records of an invocation's batch behind the one being handled, and which of them were passed on.

    Before a first job whose object needs more than the time left starts, the records behind it are re-sent to
    their queue (:func:`redeliver_later`, one deferral counted, as a deferred job's) and acknowledged when their
    turn comes, untouched: other invocations take them at once. If the big job is cut off by the timeout, Lambda
    returns the whole batch, the originals too; they come back after the visibility timeout and find their jobs
    done (a Slack update only). A record whose re-send fails, or that was deferred too often, is handled in its
    turn as before."""

    def __init__(self, sqs: Any, event: Mapping[str, Any]) -> None:
        self._sqs = sqs
        raw_records = event.get("Records")
        self._records = [SqsRecord(raw) for raw in raw_records] if isinstance(raw_records, list) else []
        self._current: str | None = None
        self._passed_on: set[str] = set()

    def handling(self, record: SqsRecord) -> None:
        self._current = record.message_id

    def passed_on(self, record: SqsRecord) -> bool:
        return record.message_id in self._passed_on

    def _behind(self) -> list[SqsRecord]:
        ids = [record.message_id for record in self._records]
        if self._current not in ids:
            return []
        return self._records[ids.index(self._current) + 1 :]

    def pass_on(self, remaining_s: float) -> None:
        """Re-send and mark as passed on every record behind the current one (the guard's ``before_overrun``)."""
        passed, kept = [], []
        for record in self._behind():
            try:
                delay = redeliver_later(self._sqs, record, DEFERRAL_DELAY_S)
            except Exception as exc:
                logger.warning(
                    "could not pass a later job on: it is handled in its turn",
                    extra={"message_id": record.message_id, "error": f"{type(exc).__name__}: {exc}"[:500]},
                )
                delay = None
            if delay is None:
                kept.append(record.message_id)
                continue
            self._passed_on.add(record.message_id)
            passed.append(record.message_id)
            metrics.count("JobsDeferred")
        if passed or kept:
            logger.info(
                "a job that may outlast the time left starts: the jobs behind it are re-sent and acknowledged",
                extra={"message_id": self._current, "remaining_s": round(remaining_s), "passed_on": passed,
                       "kept": kept},
            )  # fmt: skip


def _defer(sqs: Any, record: SqsRecord, remaining_s: float) -> str:
    """Re-send a job this invocation has no time for and acknowledge it ("deferred"): the copy starts with no
    receives counted, where a failure would come back only after the visibility timeout, one receive nearer the
    dead letters. A crash between the send and the acknowledgement leaves two copies: the move is idempotent.
    Raises :class:`JobDeferredError` (the record returns to the queue as a failure) when the send fails or the
    record was deferred too often (``redeliver_later``'s count, shared with Slack's deferrals)."""
    metrics.count("JobsDeferred")
    try:
        delay = redeliver_later(sqs, record, DEFERRAL_DELAY_S)
    except Exception as exc:
        raise JobDeferredError(
            f"{remaining_s:.0f}s left and the job could not be re-sent ({type(exc).__name__}: {exc})"
        ) from exc
    if delay is None:
        raise JobDeferredError(f"{remaining_s:.0f}s left and the job was deferred too often to be re-sent")
    logger.info(
        "too little time left for this job: re-sent to the queue and acknowledged",
        extra={"message_id": record.message_id, "remaining_s": round(remaining_s), "delay_s": delay},
    )
    return "deferred"
