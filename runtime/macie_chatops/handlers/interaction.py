"""Lambda: ``POST /slack/interactions`` behind API Gateway REST (proxy integration).

The interaction endpoint's composition root. Per request: take the raw body and headers out of the proxy
event, check Slack's signature with the signing secret (Secrets Manager, read once per container), and only
then load the domain (``macie_chatops.interaction``) and answer the click within Slack's 3 s. So boto3 (for
the secret) loads with the module, and unsigned traffic never loads the pydantic models, the config, the
store or the message builders. Logs carry the request id, the outcome and the reason; never the body, a
token or the signing secret. Metric ``Clicks`` by ``action`` ("none" before the signature is checked),
``outcome`` (accepted, refused, rejected, unauthenticated, failed) and ``reason`` (a category, "none" when
accepted). In a Lambda SnapStart init, the module registers the hooks of ``_snapstart`` (the first click's loading
before the snapshot: docs/architecture.md §6).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Final

import boto3  # noqa: F401 (loaded with the module: every request reads the signing secret before it is trusted)
from aws_lambda_powertools import Logger

from macie_chatops import names
from macie_chatops.handlers._root import AwsTimeouts, ContainerCache, HandlerMetrics, Settings
from macie_chatops.handlers._snapstart import prime_click, register_snapstart_hooks
from macie_chatops.handlers._tracing import traced
from macie_chatops.slack_request import Refusal, extract, verify

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from macie_chatops.bulk_continuation import Continuation, Continuations, Outcome
    from macie_chatops.exemption_store import ExemptionStore
    from macie_chatops.exemptions import Exemption
    from macie_chatops.handlers._root import SqsRecord
    from macie_chatops.interaction import Answer, Dependencies
    from macie_chatops.slack_secrets import SlackSecrets

SERVICE: Final = "macie-chatops-interaction"
logger = Logger(service=SERVICE)
metrics = HandlerMetrics(SERVICE)

# Slack waits 3 s for the answer: every AWS and Slack call on this path fails fast instead of retrying long.
AWS_CONNECT_TIMEOUT_S: Final = 1.0
AWS_READ_TIMEOUT_S: Final = 2.0
AWS_MAX_ATTEMPTS: Final = 2
SLACK_TIMEOUT_S: Final = 2
# A signature mismatch re-reads the secret (rotation) at most this often.
SECRET_REFRESH_AFTER_S: Final = 300.0
JSON_HEADERS: Final = {"Content-Type": "application/json; charset=utf-8"}


class SystemClock:
    """Epoch seconds, as slack_sdk's SignatureVerifier expects from its clock."""

    def now(self) -> float:
        return time.time()


def read_settings() -> Settings:
    return Settings.from_env(queue=True)


def _aws_timeouts() -> AwsTimeouts:
    # Read at call time: tests on a loaded machine raise the read timeout (the clients are keyed by it).
    return AwsTimeouts(AWS_CONNECT_TIMEOUT_S, AWS_READ_TIMEOUT_S, AWS_MAX_ATTEMPTS)


clock: SystemClock = SystemClock()  # replaced only by tests that pin time
_cache = ContainerCache()


def clear_caches() -> None:
    """Forget the secret and everything built from it and the config (tests that change the world under a
    container)."""
    _cache.clear()


def _signing_secrets(settings: Settings, *, refresh: bool = False) -> SlackSecrets:
    """The Slack secrets; ``refresh``: read them again unless they were read less than
    :data:`SECRET_REFRESH_AFTER_S` ago."""

    def read() -> SlackSecrets:
        from macie_chatops.slack_secrets import load_slack_secrets

        return load_slack_secrets(_cache.client("secretsmanager", settings, _aws_timeouts()), settings.secret_id)

    key = ("secrets", settings.secret_id, settings.aws_endpoint_url, settings.region)
    return _cache.get(key, read, max_age_s=SECRET_REFRESH_AFTER_S if refresh else None)


def _continuations(settings: Settings, timeouts: AwsTimeouts, queue_url: str) -> Continuations:
    """A bulk approval's continuations (docs/architecture.md §22): signed with the approval key, sent to this
    function's own queue ``queue_url``; built once per container."""

    def build() -> Continuations:
        from macie_chatops.bulk_continuation import ContinuationMac, Continuations, SqsContinuationQueue

        return Continuations(
            ContinuationMac(_cache.client("kms", settings, timeouts), _cache.approval_key_id()),
            SqsContinuationQueue(_cache.client("sqs", settings, timeouts), queue_url),
        )

    key = ("continuations", settings, timeouts, queue_url, os.environ.get(names.ENV_APPROVAL_KEY_ID, ""))
    return _cache.get(key, build)


class _ContinuationsOnFirstSend:
    """A click's continuation sender: builds the continuations (``bulk_continuation`` with its pydantic model and
    ``digest_messages``: ~10 ms of a cold start) when a bulk click first sends one, never for a single finding's
    click (docs/architecture.md §6)."""

    def __init__(self, settings: Settings, timeouts: AwsTimeouts, queue_url: str) -> None:
        self._settings = settings
        self._timeouts = timeouts
        self._queue_url = queue_url

    def enqueue(self, continuation: Continuation) -> None:
        _continuations(self._settings, self._timeouts, self._queue_url).enqueue(continuation)


class _ExemptionsOnFirstUse:
    """A click's exemption store: built when a dismissal first records an exemption (``exemption_store`` with
    ``exemptions``: ~2 ms of a cold start), never for a button click (docs/architecture.md §6)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._store: ExemptionStore | None = None

    def add(self, exemption: Exemption) -> Exemption:
        if self._store is None:  # two threads may both build one: they are the same store
            from macie_chatops.exemption_store import ExemptionStore

            self._store = ExemptionStore(self._dynamodb, self._table)
        return self._store.add(exemption)


def _dependencies(settings: Settings, bot_token: str) -> Dependencies:
    def build() -> Dependencies:
        from macie_chatops.group_store import GroupStore
        from macie_chatops.interaction import ApproverDirectory, Dependencies, WebhookResponder
        from macie_chatops.jobs import SqsJobQueue
        from macie_chatops.slack_client import SlackClient, build_web_client

        timeouts = _aws_timeouts()
        # No 429 waits here: Slack's 3 s budget cannot absorb them; a rate-limited lookup refuses the click.
        slack = SlackClient(
            build_web_client(bot_token, base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT_S),
            max_rate_limit_retries=0,
            metrics=metrics,
        )
        return Dependencies(
            config=_cache.config(settings),
            store=_cache.store(settings, timeouts),
            queue=SqsJobQueue(_cache.client("sqs", settings, timeouts), settings.queue_url),
            directory=ApproverDirectory(slack.usergroup_members),
            responder=WebhookResponder(_response_url_prefixes(settings), timeout_s=SLACK_TIMEOUT_S),
            modals=slack,
            exemptions=_ExemptionsOnFirstUse(_cache.client("dynamodb", settings, timeouts), settings.table),
            updater=slack,
            groups=GroupStore(_cache.client("dynamodb", settings, timeouts), settings.table),
            signer=_cache.approval_signer(settings, timeouts),
            # None without the queue: every bulk click then answers within its own budget.
            continuations=_ContinuationsOnFirstSend(settings, timeouts, continuation_queue)
            if continuation_queue
            else None,
        )

    continuation_queue = os.environ.get(names.ENV_BULK_CONTINUATION_QUEUE_URL, "")
    return _cache.get(("dependencies", settings, bot_token, continuation_queue), build)


def _response_url_prefixes(settings: Settings) -> tuple[str, ...]:
    """Where answers may be posted: Slack's hooks hosts; in the sandbox, only the stand-in's origin."""
    from urllib.parse import urlsplit

    from macie_chatops.interaction import SLACK_RESPONSE_URL_PREFIXES

    if settings.slack_api_url:
        url = urlsplit(settings.slack_api_url)
        return (f"{url.scheme}://{url.netloc}/",)
    return SLACK_RESPONSE_URL_PREFIXES


def _http(status: int, text: str) -> dict[str, Any]:
    body = {"response_type": "ephemeral", "replace_original": False, "text": text}
    return {"statusCode": status, "headers": dict(JSON_HEADERS), "body": json.dumps(body)}


def _request_id(event: object, context: LambdaContext) -> str:
    if isinstance(event, dict):
        request_context = event.get("requestContext")
        if isinstance(request_context, dict) and isinstance(request_context.get("requestId"), str):
            return str(request_context["requestId"])[:128]
    return context.aws_request_id[:128]


# Requests answered before they are read: the metric's outcome and reason by HTTP status.
_REFUSAL_METRICS: Final = {401: ("unauthenticated", "bad_signature"), 413: ("rejected", "too_large")}


def _refused(refusal: Refusal, request_id: str) -> dict[str, Any]:
    logger.warning(
        "request refused", extra={"request_id": request_id, "status": refusal.status, "reason": refusal.reason}
    )
    outcome, reason = _REFUSAL_METRICS.get(refusal.status, ("rejected", "bad_request"))
    metrics.count("Clicks", action="", outcome=outcome, reason=reason)
    text = "invalid request" if refusal.status == 401 else "This request could not be read."
    return _http(refusal.status, text)


def _log_answer(answer: Answer, request_id: str) -> None:
    # The dimension says "remediate", not the button's action id "macie_chatops.remediate".
    action = answer.action.rsplit(".", 1)[-1] if answer.action else ""
    metrics.count("Clicks", action=action, outcome=answer.outcome, reason=answer.category)
    fields = {
        "request_id": request_id,
        "status": answer.status,
        "outcome": answer.outcome,
        "reason": answer.reason,
        "finding_id": answer.finding_id,
        "user": answer.user_id,
        "action": answer.action,
        "delivered": answer.delivered,
    }
    if answer.outcome == "accepted":
        logger.info("click accepted", extra=fields)
    elif answer.outcome == "failed":
        logger.error("click not completed", extra=fields)
    else:
        logger.warning("click refused", extra=fields)


def _is_sqs_batch(event: object) -> bool:
    """A batch of this function's continuation queue (Lambda's event source mapping), not an API Gateway request:
    a request's top-level keys are API Gateway's, never the caller's."""
    if not isinstance(event, dict) or "requestContext" in event:
        return False
    records = event.get("Records")
    return isinstance(records, list) and all(
        isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records
    )


def _continuation_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Each record is a bulk approval's continuation (docs/architecture.md §22): checked (its MAC, its age, the
    approver's authority), then its members decided as the click decides them. A refused one is logged, counted
    (``BulkContinuationsRefused``) and acknowledged: retrying it would refuse it again. Only errors (KMS, the
    table, the queue, Slack's directory) return a record to the queue."""
    from macie_chatops.bulk_continuation import continue_bulk
    from macie_chatops.handlers._root import remaining_time, run_sqs_batch

    settings = read_settings()
    queue_url = os.environ.get(names.ENV_BULK_CONTINUATION_QUEUE_URL, "")
    if not queue_url:
        raise RuntimeError(f"environment variable not set: {names.ENV_BULK_CONTINUATION_QUEUE_URL}")
    deps = _dependencies(settings, _signing_secrets(settings).bot_token)
    continuations = _continuations(settings, _aws_timeouts(), queue_url)
    remaining_s = remaining_time(context)

    def handle(record: SqsRecord) -> str:
        outcome = continue_bulk(record.body, deps, continuations, remaining_s=remaining_s)
        _log_continuation(outcome, record.message_id)
        return outcome.status

    def failed(record: SqsRecord, exc: Exception, fields: dict[str, Any]) -> None:
        metrics.count("RecordsFailed", error_type=type(exc).__name__)
        logger.exception("bulk continuation not completed: returned to its queue", extra=fields)

    return run_sqs_batch(event, context, handle=handle, failed=failed, logger=logger)


def _log_continuation(outcome: Outcome, message_id: str) -> None:
    fields = {
        "message_id": message_id,
        "status": outcome.status,
        "reason": outcome.reason,
        "group_id": outcome.group_id,
        "user": outcome.approver,
        "tally": outcome.tally,
        "resume_at": outcome.resume_at,
    }
    if outcome.status == "refused":
        metrics.count(names.BULK_CONTINUATIONS_REFUSED_METRIC, reason=outcome.category)
        logger.error("bulk continuation refused: nothing decided", extra=fields)
        return
    metrics.count("BulkContinuations", outcome=outcome.status)
    logger.info("bulk continuation applied", extra=fields)


@traced(SERVICE)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _is_sqs_batch(event):  # the continuation queue (§22), the function's second event source
        return _continuation_batch(event, context)
    request_id = _request_id(event, context)
    raw = extract(event)
    if isinstance(raw, Refusal):
        return _refused(raw, request_id)
    try:
        settings = read_settings()
        secrets = _signing_secrets(settings)
    except Exception:
        # Not the caller's fault and nothing was read: say so, and let the alarm on errors find it.
        logger.exception(
            "cannot verify requests: configuration or signing secret unavailable", extra={"request_id": request_id}
        )
        metrics.count("Clicks", action="", outcome="failed", reason="secret_unavailable")
        return _http(503, "The approval service is not available right now; nothing was changed.")
    refusal = verify(raw, secrets.signing_secret, clock)
    if refusal is not None and refusal.reason == "signature does not match the body":
        # Perhaps the secret was rotated since this container read it (re-read at most every 5 minutes).
        try:
            fresh = _signing_secrets(settings, refresh=True)
        except Exception:
            logger.exception("re-reading the signing secret failed", extra={"request_id": request_id})
            fresh = secrets
        if fresh.signing_secret != secrets.signing_secret:
            secrets = fresh
            refusal = verify(raw, secrets.signing_secret, clock)
    if refusal is not None:
        return _refused(refusal, request_id)
    try:
        from macie_chatops.interaction import handle_interaction

        answer = handle_interaction(raw.body, _dependencies(settings, secrets.bot_token))
    except Exception:
        logger.exception("click failed", extra={"request_id": request_id})
        metrics.count("Clicks", action="", outcome="failed", reason="internal_error")
        return _http(
            200,
            f"Something went wrong on our side (reference {request_id or 'none'}). "
            "Please try again: a second click is safe.",
        )
    _log_answer(answer, request_id)
    return answer.to_http()


def _prime_for_snapshot() -> None:
    """Lambda SnapStart's before-snapshot hook: a first click's loading, this container's config (§6)."""
    prime_click(_cache, read_settings())


# In a SnapStart init only (the version's snapshot): the first click's loading before the snapshot, `random` reseeded
# after each restore (handlers/_snapstart.py, docs/architecture.md §6).
register_snapstart_hooks(_prime_for_snapshot)
