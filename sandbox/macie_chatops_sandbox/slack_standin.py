"""A Slack Web API stand-in: a real HTTP server on loopback that slack_sdk's WebClient talks to.

Point ``WebClient(base_url=standin.base_url)`` (or the env var SLACK_API_URL) at it. It answers the methods
the pipeline uses with Slack's response shapes and Slack's errors (HTTP 200 + ``{"ok": false, "error": ...}``),
records every message per channel with every update in order, enforces Slack's posting limit per channel and
chat.update's tier per workspace (token buckets; HTTP 429 + ``Retry-After``, on by default: ``None`` turns a limit
off), and can be told to fail (HTTP 500/429 or a Slack error, or 429 for a window) for tests.

Methods: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``conversations.history``,
``conversations.replies`` (Slack's shapes and cursor pagination, so any tool can read a sandbox channel with
slack_sdk's WebClient), ``usergroups.users.list``, ``users.info``, ``views.open`` (with a ``trigger_id`` the
stand-in issued for a click: taken once, within 3 seconds, like Slack's; ``view_submission`` builds the payload
Slack sends when that modal is submitted).
Bodies: JSON (what WebClient sends for chat.*), form-encoded (the other methods) and query strings.
``chat.postMessage`` with ``thread_ts`` posts a thread reply: the parent must be a top-level message of the
channel (else ``thread_not_found``); replies are kept apart from the channel's messages (``replies``).
Message ``metadata`` (``{"event_type": str, "event_payload": object}``, else ``invalid_metadata_format``) is kept
with a posted message and returned by ``conversations.history``/``conversations.replies`` when
``include_all_metadata`` is true.
It also serves ``response_url`` webhooks (what Slack puts in a click payload): a POST there replaces the
original message (default), deletes it, posts a new one, or records an ephemeral reply for the clicker;
at most 5 uses within 30 minutes, like Slack.

Public API::

    SlackStandIn(*, team_id="T0EXAMPLE", bot_token="xoxb-test-token", channels=(), bot_channels=None,
                 archived_channels=(), usergroups=None, users=(), post_limit=RateLimit(1.0, 4),
                 update_limit=RateLimit(50 / 60, 50), clock=time.monotonic, host="127.0.0.1", port=0,
                 bot_user_id="U0MACIEBOT", bot_id="B0MACIEBOT", team_domain="example")
        .start() / .stop() / with SlackStandIn(...) as slack: ...
        .base_url                                  "http://127.0.0.1:PORT/api/"
        .messages(channel) -> list[RecordedMessage]         in posting order (top level, like conversations.history)
        .replies(channel, thread_ts) -> list[RecordedMessage]   the thread's replies, in posting order
        .message(channel, ts) -> RecordedMessage            KeyError if absent
        .history -> list[RecordedCall]                      every call, in order (faults and errors too)
        .requests -> dict[str, int]                         calls per method
        .request_count(method) -> int
        .set_usergroup(group_id, members) / .remove_usergroup(group_id)
        .add_channel(channel, *, bot_member=True) / .set_bot_membership(channel, member) / .archive(channel)
        .response_url(channel, ts) -> str                   a webhook URL for a click on that message
        .ephemeral(channel) -> list[EphemeralReply]         replies sent through response URLs, in order
        .fail_next(method, count=1, *, status=500, error=None, retry_after=1)
        .fail_during(method, seconds, *, status=500, error=None, retry_after=1)     on the stand-in's clock
        .rate_limit_during(seconds, *, methods=WRITE_METHODS, retry_after=1)   HTTP 429 + Retry-After for a window
        .rate_limited -> int                                the 429s answered so far (limits and faults)
        .clear_faults()
        .trigger_id(user_id, *, issued_seconds_ago=0.0) -> str     for a click payload; views.open takes it once, <= 3 s
        .views(user_id=None) -> list[OpenedView]            modals opened, in order (id, user_id, view)
        .view_submission(view_id, values) -> dict           the payload of submitting that modal with these values
    RateLimit(per_second: float, burst: int)
    ManualClock(start=1000.0): a clock for tests; ``clock()`` reads it, ``clock.advance(s)`` moves it
    RecordedMessage(channel, ts, revisions, thread_ts=None, metadata=None): .text / .blocks (latest), .updates
        (revisions after the post); ``thread_ts`` is the parent's ts for a thread reply; ``metadata`` as posted
    Revision(method, text, blocks)            method: chat.postMessage | chat.update | response_url
    EphemeralReply(channel, ts, text, blocks)
    RecordedCall(method, channel, ts, status, error, at, thread_ts)   at: the stand-in's clock; thread_ts: a reply's

Part of the sandbox package: it is not shipped in the Lambda asset and nothing in ``macie_chatops`` imports it.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

SUPPORTED_METHODS: Final = (
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "conversations.history",
    "conversations.replies",
    "usergroups.users.list",
    "users.info",
    "views.open",
)
TRIGGER_LIFETIME_S: Final = 3.0  # Slack: "trigger_id ... expires in 3 seconds", and is exchanged once
MAX_PRIVATE_METADATA_CHARS: Final = 3000
ANY_METHOD: Final = "*"
EXAMPLE_BOT_TOKEN: Final = "xoxb-test-token"  # the sandbox's fake token, not a secret
MAX_TEXT_CHARS: Final = 40_000  # chat.postMessage truncates/refuses text beyond this (msg_too_long)
RESPONSE_URL_USES: Final = 5
RESPONSE_URL_LIFETIME_S: Final = 30 * 60
WRITE_METHODS: Final = ("chat.postMessage", "chat.update")
# conversations.history/replies: Slack's default page size, and the most it returns at once.
DEFAULT_PAGE_LIMIT: Final = 100
MAX_PAGE_LIMIT: Final = 999


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``per_second`` sustained, up to ``burst`` at once."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")


class ManualClock:
    """A monotonic clock that only moves when told to, so rate-limit tests never sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        with self._lock:
            self._now += seconds


@dataclass(frozen=True)
class Revision:
    method: str  # chat.postMessage for the first one, chat.update after
    text: str
    blocks: tuple[Any, ...]


@dataclass(frozen=True)
class RecordedMessage:
    channel: str
    ts: str
    revisions: tuple[Revision, ...]
    thread_ts: str | None = None  # a thread reply: its parent's ts
    metadata: Mapping[str, Any] | None = None  # the message metadata it was posted with

    @property
    def text(self) -> str:
        return self.revisions[-1].text

    @property
    def blocks(self) -> list[Any]:
        return list(self.revisions[-1].blocks)

    @property
    def updates(self) -> tuple[Revision, ...]:
        return self.revisions[1:]


@dataclass(frozen=True)
class EphemeralReply:
    """A reply only the clicking user saw (``response_type: ephemeral`` through a response URL)."""

    channel: str
    ts: str  # the message that was clicked
    text: str
    blocks: tuple[Any, ...]


@dataclass
class _ResponseUrl:
    channel: str
    ts: str
    created: float
    uses: int = 0


@dataclass
class _Trigger:
    user_id: str
    created: float
    used: bool = False


@dataclass(frozen=True)
class OpenedView:
    """A modal opened with ``views.open``: for whom, and the view as the app sent it (plus Slack's id)."""

    id: str
    user_id: str
    view: dict[str, Any]


@dataclass(frozen=True)
class RecordedCall:
    method: str
    channel: str | None
    ts: str | None
    status: int
    error: str | None  # the Slack error code, or None when ok
    at: float = 0.0  # when it was answered, on the stand-in's clock
    thread_ts: str | None = None  # chat.postMessage: the thread it replied in


@dataclass
class _Fault:
    method: str
    status: int
    error: str | None
    retry_after: int
    remaining: int | None = None  # calls left to fail, or None for a time window
    until: float | None = None

    def matches(self, method: str, now: float) -> bool:
        if self.method not in (method, ANY_METHOD):
            return False
        if self.remaining is not None:
            return self.remaining > 0
        return self.until is not None and now < self.until


class _TokenBucket:
    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = now

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one is available."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.per_second


@dataclass
class _Response:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)


class _SlackError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class _Server(ThreadingHTTPServer):
    # Request threads are joined on server_close(), so stop() leaves no thread behind.
    daemon_threads = False
    block_on_close = True
    standin: SlackStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        self.server.standin._serve(self)

    def do_GET(self) -> None:
        self.server.standin._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read the recorded history instead


class SlackStandIn:
    """The Slack Web API on loopback, for one workspace and one bot token."""

    def __init__(
        self,
        *,
        team_id: str = "T0EXAMPLE",
        bot_token: str = EXAMPLE_BOT_TOKEN,
        channels: Iterable[str] = (),
        bot_channels: Iterable[str] | None = None,
        archived_channels: Iterable[str] = (),
        usergroups: Mapping[str, Iterable[str]] | None = None,
        users: Iterable[str] = (),
        post_limit: RateLimit | None = RateLimit(per_second=1.0, burst=4),
        update_limit: RateLimit | None = RateLimit(per_second=50 / 60, burst=50),
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_user_id: str = "U0MACIEBOT",
        bot_id: str = "B0MACIEBOT",
        team_domain: str = "example",
    ) -> None:
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_token = bot_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._clock = clock
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._channels: set[str] = set(channels)
        self._bot_channels: set[str] = set(self._channels if bot_channels is None else bot_channels)
        unknown = self._bot_channels - self._channels
        if unknown:
            raise ValueError(f"bot_channels not in channels: {sorted(unknown)}")
        self._archived: set[str] = set(archived_channels)
        self._usergroups: dict[str, frozenset[str]] = {
            group: frozenset(members) for group, members in (usergroups or {}).items()
        }
        self._users: set[str] = set(users)
        self._post_limit = post_limit
        self._update_limit = update_limit
        self._post_buckets: dict[str, _TokenBucket] = {}
        self._update_bucket: _TokenBucket | None = None
        self._faults: list[_Fault] = []
        self._messages: dict[str, dict[str, list[Revision]]] = {}
        self._replies: dict[tuple[str, str], dict[str, list[Revision]]] = {}  # (channel, parent ts) -> replies
        self._metadata: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> the metadata posted with it
        self._history: list[RecordedCall] = []
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._views: dict[str, OpenedView] = {}
        self._ephemeral: list[EphemeralReply] = []
        self._requests: Counter[str] = Counter()
        self._epoch = int(time.time())
        self._sequence = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        if self._server is not None:
            raise RuntimeError("the Slack stand-in is already running")
        server = _Server((self._host, self._port), _Handler)
        server.standin = self
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-standin", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("start the Slack stand-in first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/"

    # --- workspace changes --------------------------------------------------------------------------------

    def set_usergroup(self, group_id: str, members: Iterable[str]) -> None:
        with self._lock:
            self._usergroups[group_id] = frozenset(members)

    def remove_usergroup(self, group_id: str) -> None:
        with self._lock:
            self._usergroups.pop(group_id, None)

    def add_channel(self, channel: str, *, bot_member: bool = True) -> None:
        with self._lock:
            self._channels.add(channel)
            if bot_member:
                self._bot_channels.add(channel)

    def set_bot_membership(self, channel: str, member: bool) -> None:
        with self._lock:
            if member:
                self._bot_channels.add(channel)
            else:
                self._bot_channels.discard(channel)

    def archive(self, channel: str) -> None:
        with self._lock:
            self._archived.add(channel)

    # --- fault injection ----------------------------------------------------------------------------------

    def fail_next(
        self, method: str, count: int = 1, *, status: int = 500, error: str | None = None, retry_after: int = 1
    ) -> None:
        """The next ``count`` calls of ``method`` (or ``"*"``) answer ``status`` (500, 429...) or a Slack error.

        With ``error`` and status 200, the answer is Slack's ``{"ok": false, "error": error}``.
        """
        self._add_fault(_Fault(method, status, error, retry_after, remaining=count))

    def fail_during(
        self, method: str, seconds: float, *, status: int = 500, error: str | None = None, retry_after: int = 1
    ) -> None:
        """Every call of ``method`` (or ``"*"``) fails for ``seconds`` from now, on the stand-in's clock."""
        self._add_fault(_Fault(method, status, error, retry_after, until=self._clock() + seconds))

    def rate_limit_during(
        self, seconds: float, *, methods: Iterable[str] = WRITE_METHODS, retry_after: int = 1
    ) -> None:
        """Every call of ``methods`` answers HTTP 429 with ``Retry-After: retry_after`` for ``seconds`` from now
        (on the stand-in's clock), as Slack does when a workspace is over its limits."""
        for method in methods:
            self.fail_during(method, seconds, status=HTTPStatus.TOO_MANY_REQUESTS, retry_after=retry_after)

    @property
    def rate_limited(self) -> int:
        """How many calls were answered HTTP 429 (the posting and update limits, and 429 faults)."""
        with self._lock:
            return sum(1 for call in self._history if call.status == HTTPStatus.TOO_MANY_REQUESTS)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.method != ANY_METHOD and fault.method not in SUPPORTED_METHODS:
            raise ValueError(f"unknown Slack method {fault.method!r}")
        if fault.error is None and fault.status == HTTPStatus.OK:
            raise ValueError("a fault needs a non-200 status or a Slack error")
        with self._lock:
            self._faults.append(fault)

    # --- inspection ---------------------------------------------------------------------------------------

    def messages(self, channel: str) -> list[RecordedMessage]:
        with self._lock:
            return [
                RecordedMessage(channel, ts, tuple(revisions), metadata=self._metadata.get((channel, ts)))
                for ts, revisions in self._messages.get(channel, {}).items()
            ]

    def replies(self, channel: str, thread_ts: str) -> list[RecordedMessage]:
        with self._lock:
            return [
                RecordedMessage(channel, ts, tuple(revisions), thread_ts, self._metadata.get((channel, ts)))
                for ts, revisions in self._replies.get((channel, thread_ts), {}).items()
            ]

    def message(self, channel: str, ts: str) -> RecordedMessage:
        with self._lock:
            revisions = self._messages.get(channel, {}).get(ts)
            if revisions is None:
                raise KeyError(f"no message {ts} in channel {channel}")
            return RecordedMessage(channel, ts, tuple(revisions), metadata=self._metadata.get((channel, ts)))

    def ephemeral(self, channel: str) -> list[EphemeralReply]:
        with self._lock:
            return [reply for reply in self._ephemeral if reply.channel == channel]

    def response_url(self, channel: str, ts: str) -> str:
        """A ``response_url`` for a click on message ``ts`` in ``channel`` (valid 30 minutes, 5 uses)."""
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._response_urls[token] = _ResponseUrl(channel, ts, self._clock())
        return f"{self.base_url.removesuffix('/api/')}/actions/{self.team_id}/{token}"

    def trigger_id(self, user_id: str, *, issued_seconds_ago: float = 0.0) -> str:
        """A ``trigger_id`` for a click by ``user_id`` (what Slack puts in the payload): ``views.open`` takes it
        once, within :data:`TRIGGER_LIFETIME_S` of its issue (``issued_seconds_ago``: pretend it is that old)."""
        with self._lock:
            self._sequence += 1
            trigger = f"{self._sequence}.{self._epoch}.{secrets.token_hex(16)}"
            self._triggers[trigger] = _Trigger(user_id, self._clock() - issued_seconds_ago)
        return trigger

    def views(self, user_id: str | None = None) -> list[OpenedView]:
        """The modals opened so far (for ``user_id``), in order."""
        with self._lock:
            return [v for v in self._views.values() if user_id is None or v.user_id == user_id]

    def view_submission(self, view_id: str, values: Mapping[str, str | None]) -> dict[str, Any]:
        """The ``view_submission`` payload Slack sends when the user submits modal ``view_id`` with ``values``
        (block id -> the typed text, the chosen option's value, or the picked date); fields not given keep
        their initial option (Slack sends those too) or are empty. An option value the modal does not offer is
        sent as given, as a forged payload would."""
        with self._lock:
            opened = self._views[view_id]
        state: dict[str, dict[str, Any]] = {}
        for block in opened.view.get("blocks", []):
            if block.get("type") == "input":
                element = block["element"]
                state[block["block_id"]] = {element["action_id"]: _state_value(element, values.get(block["block_id"]))}
        view = {**opened.view, "id": view_id, "team_id": self.team_id, "state": {"values": state}}
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {"id": opened.user_id, "username": opened.user_id.lower(), "team_id": self.team_id},
            "api_app_id": "A0MACIECHATOPS",
            "token": "deprecated-verification-token",
            "trigger_id": self.trigger_id(opened.user_id),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
        }

    @property
    def history(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._history)

    @property
    def requests(self) -> dict[str, int]:
        with self._lock:
            return dict(self._requests)

    def request_count(self, method: str) -> int:
        with self._lock:
            return self._requests[method]

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _serve(self, request: _Handler) -> None:
        url = urlsplit(request.path)
        if url.path.startswith("/actions/"):
            self._serve_response_url(request, url.path)
            return
        method = url.path[len("/api/") :] if url.path.startswith("/api/") else ""
        try:
            params = self._params(request, url.query)
        except ValueError as exc:
            self._send(
                request, _Response(HTTPStatus.OK, {"ok": False, "error": "invalid_form_data", "detail": str(exc)})
            )
            return
        with self._lock:
            self._requests[method] += 1
            response = self._answer(method, params, request.headers.get("Authorization"))
            error = response.body.get("error") if isinstance(response.body, dict) else "http_error"
            channel = params.get("channel") if isinstance(params.get("channel"), str) else None
            ts = params.get("ts")
            if isinstance(response.body, dict) and isinstance(response.body.get("ts"), str):
                ts = response.body["ts"]
            thread_ts = params.get("thread_ts") if isinstance(params.get("thread_ts"), str) else None
            self._history.append(
                RecordedCall(
                    method,
                    channel,
                    ts if isinstance(ts, str) else None,
                    int(response.status),
                    error,
                    at=self._clock(),
                    thread_ts=thread_ts,
                )
            )
        self._send(request, response)

    def _serve_response_url(self, request: _Handler, path: str) -> None:
        token = path.rsplit("/", 1)[-1]
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length > 0 else b""
        with self._lock:
            self._requests["response_url"] += 1
            response = self._answer_response_url(token, raw)
            target = self._response_urls.get(token)
            self._history.append(
                RecordedCall(
                    "response_url",
                    target.channel if target else None,
                    target.ts if target else None,
                    int(response.status),
                    None if response.status == HTTPStatus.OK else str(response.body),
                    at=self._clock(),
                )
            )
        self._send(request, response)

    def _answer_response_url(self, token: str, raw: bytes) -> _Response:
        """Slack's webhook answers are plain text: ``ok``, or an error name with a 4xx status."""
        target = self._response_urls.get(token)
        if target is None:
            return _Response(HTTPStatus.NOT_FOUND, "no_service")
        if self._clock() - target.created > RESPONSE_URL_LIFETIME_S:
            return _Response(HTTPStatus.NOT_FOUND, "expired_url")
        if target.uses >= RESPONSE_URL_USES:
            return _Response(HTTPStatus.NOT_FOUND, "used_url")
        try:
            body = json.loads(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return _Response(HTTPStatus.BAD_REQUEST, "invalid_payload")
        revisions = self._messages.get(target.channel, {}).get(target.ts)
        try:
            text, blocks = self._content(body) if not body.get("delete_original") else ("", None)
        except _SlackError as error:
            return _Response(HTTPStatus.BAD_REQUEST, error.error)
        target.uses += 1
        if body.get("delete_original"):
            if revisions is not None:
                del self._messages[target.channel][target.ts]
        elif body.get("response_type") == "ephemeral":
            self._ephemeral.append(EphemeralReply(target.channel, target.ts, text, blocks or ()))
        elif body.get("replace_original", True) is not False:
            if revisions is None:
                return _Response(HTTPStatus.NOT_FOUND, "message_not_found")
            revisions.append(Revision("response_url", text, blocks or ()))
        else:
            self._sequence += 1
            ts = f"{self._epoch}.{self._sequence:06d}"
            self._messages.setdefault(target.channel, {})[ts] = [Revision("response_url", text, blocks or ())]
        return _Response(HTTPStatus.OK, "ok")

    @staticmethod
    def _params(request: _Handler, query: str) -> dict[str, Any]:
        params: dict[str, Any] = {key: values[-1] for key, values in parse_qs(query).items()}
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length > 0 else b""
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if raw and content_type == "application/json":
            body = json.loads(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("a JSON body must be an object")
            params.update(body)
        elif raw and content_type == "application/x-www-form-urlencoded":
            params.update({key: values[-1] for key, values in parse_qs(raw.decode("utf-8")).items()})
        elif raw:
            raise ValueError(f"unsupported Content-Type {content_type!r}")
        # Form-encoded calls carry blocks as a JSON string, like Slack accepts them.
        if isinstance(params.get("blocks"), str):
            try:
                params["blocks"] = json.loads(params["blocks"])
            except json.JSONDecodeError as exc:
                raise ValueError("blocks is not valid JSON") from exc
        return params

    @staticmethod
    def _send(request: _Handler, response: _Response) -> None:
        if isinstance(response.body, dict):
            payload = json.dumps(response.body).encode("utf-8")
            content_type = "application/json; charset=utf-8"
        else:
            payload = response.body.encode("utf-8")
            content_type = "text/html; charset=utf-8"
        request.send_response(response.status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(payload)

    # --- Slack semantics (called with the lock held) ------------------------------------------------------

    def _answer(self, method: str, params: dict[str, Any], authorization: str | None) -> _Response:
        now = self._clock()
        fault = next((f for f in self._faults if f.matches(method, now)), None)
        if fault is not None:
            if fault.remaining is not None:
                fault.remaining -= 1
            return self._fault_response(fault)
        handlers: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "usergroups.users.list": self._usergroup_users,
            "users.info": self._users_info,
            "views.open": self._views_open,
        }
        try:
            handler = handlers.get(method)
            if handler is None:
                raise _SlackError("unknown_method", req_method=method)
            self._authenticate(authorization, params)
            return _Response(HTTPStatus.OK, {"ok": True, **handler(params, now)})
        except _RateLimited as limited:
            return _Response(
                HTTPStatus.TOO_MANY_REQUESTS,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(limited.retry_after)},
            )
        except _SlackError as error:
            return _Response(HTTPStatus.OK, {"ok": False, "error": error.error, **error.extra})

    @staticmethod
    def _fault_response(fault: _Fault) -> _Response:
        if fault.status == HTTPStatus.TOO_MANY_REQUESTS:
            return _Response(
                fault.status, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)}
            )
        if fault.status >= 500:
            # Slack's edge answers 5xx with an HTML page, not JSON; the client must cope with that.
            return _Response(fault.status, f"<html><body>{fault.status} Server Error</body></html>")
        return _Response(fault.status, {"ok": False, "error": fault.error or "fatal_error"})

    def _authenticate(self, authorization: str | None, params: dict[str, Any]) -> None:
        token: str | None = None
        if authorization and authorization.startswith("Bearer "):
            token = authorization[len("Bearer ") :]
        elif isinstance(params.get("token"), str):
            token = params["token"]
        if not token:
            raise _SlackError("not_authed")
        if token != self.bot_token:
            raise _SlackError("invalid_auth")

    def _auth_test(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": "macie-chatops",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _writable_channel(self, params: dict[str, Any], *, member_required: bool) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or channel not in self._channels:
            raise _SlackError("channel_not_found")
        if channel in self._archived:
            raise _SlackError("is_archived")
        if member_required and channel not in self._bot_channels:
            raise _SlackError("not_in_channel")
        return channel

    @staticmethod
    def _content(params: dict[str, Any]) -> tuple[str, tuple[Any, ...] | None]:
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            raise _SlackError("invalid_arguments")
        blocks = params.get("blocks")
        if blocks is not None:
            problems = block_problems(blocks)
            if problems:
                raise _SlackError("invalid_blocks", errors=problems)
        if not text and not blocks:
            raise _SlackError("no_text")
        if text is not None and len(text) > MAX_TEXT_CHARS:
            raise _SlackError("msg_too_long")
        return text or "", tuple(blocks) if blocks is not None else None

    def _post_message(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        channel = self._writable_channel(params, member_required=True)
        text, blocks = self._content(params)
        metadata = self._message_metadata(params)
        thread_ts = params.get("thread_ts")
        if thread_ts is not None and (
            not isinstance(thread_ts, str) or thread_ts not in self._messages.get(channel, {})
        ):
            raise _SlackError("thread_not_found")
        if self._post_limit is not None:
            bucket = self._post_buckets.setdefault(channel, _TokenBucket(self._post_limit, now))
            wait = bucket.take(now)
            if wait > 0:
                raise _RateLimited(wait)
        self._sequence += 1
        ts = f"{self._epoch}.{self._sequence:06d}"
        revisions = [Revision("chat.postMessage", text, blocks or ())]
        if metadata is not None:
            self._metadata[(channel, ts)] = metadata
        if thread_ts is None:
            self._messages.setdefault(channel, {})[ts] = revisions
            return {"channel": channel, "ts": ts, "message": self._message_json(ts, text, blocks or ())}
        self._replies.setdefault((channel, thread_ts), {})[ts] = revisions
        message = {**self._message_json(ts, text, blocks or ()), "thread_ts": thread_ts}
        return {"channel": channel, "ts": ts, "message": message}

    @staticmethod
    def _message_metadata(params: dict[str, Any]) -> dict[str, Any] | None:
        """chat.postMessage's ``metadata`` (an object, or its JSON in a form-encoded call), as Slack checks it."""
        metadata = params.get("metadata")
        if metadata is None:
            return None
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError:
                raise _SlackError("invalid_metadata_format") from None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not metadata["event_type"]
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise _SlackError("invalid_metadata_format")
        return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}

    def _update(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        channel = self._writable_channel(params, member_required=False)
        ts = params.get("ts")
        revisions = self._messages.get(channel, {}).get(ts) if isinstance(ts, str) else None
        if revisions is None or not isinstance(ts, str):
            raise _SlackError("message_not_found")
        text, blocks = self._content(params)
        if self._update_limit is not None:
            if self._update_bucket is None:
                self._update_bucket = _TokenBucket(self._update_limit, now)
            wait = self._update_bucket.take(now)
            if wait > 0:
                raise _RateLimited(wait)
        # Slack: text without blocks removes the blocks of the message.
        revisions.append(Revision("chat.update", text, blocks or ()))
        return {"channel": channel, "ts": ts, "text": text, "message": self._message_json(ts, text, blocks or ())}

    def _readable_channel(self, params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or channel not in self._channels:
            raise _SlackError("channel_not_found")
        if channel not in self._bot_channels:
            raise _SlackError("not_in_channel")
        return channel

    def _stored_json(
        self, channel: str, ts: str, revisions: list[Revision], thread_ts: str | None, *, metadata: bool = False
    ) -> dict[str, Any]:
        """A stored message as conversations.* return it: the latest revision, its thread fields, ``edited``, and
        (``metadata``: include_all_metadata was asked for) the metadata it was posted with."""
        latest = revisions[-1]
        message = self._message_json(ts, latest.text, latest.blocks)
        if metadata and (channel, ts) in self._metadata:
            message["metadata"] = self._metadata[(channel, ts)]
        if len(revisions) > 1:
            message["edited"] = {"user": self.bot_user_id, "ts": ts}
        if thread_ts is not None:
            message.update(thread_ts=thread_ts, parent_user_id=self.bot_user_id)
        elif self._replies.get((channel, ts)):
            replies = list(self._replies[(channel, ts)])
            message.update(
                thread_ts=ts,
                reply_count=len(replies),
                reply_users_count=1,
                latest_reply=replies[-1],
                reply_users=[self.bot_user_id],
            )
        return message

    @staticmethod
    def _page(params: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One page of ``messages`` after the request's ``cursor`` (Slack's opaque cursor: here an offset)."""
        try:
            limit = int(params.get("limit") or DEFAULT_PAGE_LIMIT)
            cursor = str(params.get("cursor") or "")
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:")) if cursor else 0
        except ValueError:
            raise _SlackError("invalid_cursor") from None
        if limit < 1:
            raise _SlackError("invalid_limit")
        if not 0 <= start <= len(messages):
            raise _SlackError("invalid_cursor")
        end = start + min(limit, MAX_PAGE_LIMIT)
        more = end < len(messages)
        next_cursor = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if more else ""
        return {"messages": messages[start:end], "has_more": more, "response_metadata": {"next_cursor": next_cursor}}

    @staticmethod
    def _bounds(params: dict[str, Any]) -> Callable[[str], bool]:
        """Slack's ``oldest``/``latest`` bounds on a message's ts (exclusive unless ``inclusive``)."""
        inclusive = str(params.get("inclusive", "")).lower() in ("1", "true")
        bounds: dict[str, float] = {}
        for name in ("oldest", "latest"):
            raw = params.get(name)
            if raw in (None, ""):
                continue
            try:
                bounds[name] = float(str(raw))
            except ValueError:
                raise _SlackError(f"invalid_ts_{name}") from None
        oldest, latest = bounds.get("oldest", -math.inf), bounds.get("latest", math.inf)
        if inclusive:
            return lambda ts: oldest <= float(ts) <= latest
        return lambda ts: oldest < float(ts) < latest

    def _conversations_history(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        """The channel's top-level messages, newest first (thread replies are only in conversations.replies)."""
        channel = self._readable_channel(params)
        stored, within, metadata = self._messages.get(channel, {}), self._bounds(params), _all_metadata(params)
        messages = [
            self._stored_json(channel, ts, stored[ts], None, metadata=metadata) for ts in reversed(stored) if within(ts)
        ]
        return {**self._page(params, messages), "pin_count": 0}

    def _conversations_replies(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        """A thread: its parent first, then the replies oldest first (Slack's order)."""
        channel = self._readable_channel(params)
        ts = params.get("ts")
        parent = self._messages.get(channel, {}).get(ts) if isinstance(ts, str) else None
        if parent is None or not isinstance(ts, str):
            raise _SlackError("thread_not_found")
        replies, within, metadata = self._replies.get((channel, ts), {}), self._bounds(params), _all_metadata(params)
        messages = [self._stored_json(channel, ts, parent, None, metadata=metadata)] + [
            self._stored_json(channel, reply, revisions, ts, metadata=metadata)
            for reply, revisions in replies.items()
            if within(reply)
        ]
        return self._page(params, messages)

    def _message_json(self, ts: str, text: str, blocks: tuple[Any, ...]) -> dict[str, Any]:
        return {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "ts": ts,
            "text": text,
            "blocks": list(blocks),
        }

    def _usergroup_users(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        group = params.get("usergroup")
        if not isinstance(group, str) or not group:
            raise _SlackError("invalid_arguments")
        members = self._usergroups.get(group)
        if members is None:
            raise _SlackError("no_such_subteam")
        return {"users": sorted(members)}

    def _users_info(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        user = params.get("user")
        known = self._users.union(*self._usergroups.values()) if self._usergroups else set(self._users)
        if not isinstance(user, str) or user not in known:
            raise _SlackError("user_not_found")
        return {
            "user": {
                "id": user,
                "team_id": self.team_id,
                "name": user.lower(),
                "deleted": False,
                "is_bot": False,
                "profile": {"display_name": user.lower(), "real_name": user},
            }
        }

    def _views_open(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        trigger_id = params.get("trigger_id")
        trigger = self._triggers.get(trigger_id) if isinstance(trigger_id, str) else None
        if trigger is None:
            raise _SlackError("invalid_trigger_id")
        if trigger.used:
            raise _SlackError("exchanged_trigger_id")
        if now - trigger.created > TRIGGER_LIFETIME_S:
            raise _SlackError("expired_trigger_id")
        view = params.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except json.JSONDecodeError:
                raise _SlackError("invalid_arguments") from None
        problems = view_problems(view)
        if problems or not isinstance(view, dict):
            raise _SlackError("invalid_arguments", response_metadata={"messages": problems})
        trigger.used = True
        self._sequence += 1
        view_id = f"V{self._sequence:08d}"
        self._views[view_id] = OpenedView(view_id, trigger.user_id, dict(view))
        return {"view": {**view, "id": view_id, "team_id": self.team_id, "state": {"values": {}}}}


def _all_metadata(params: dict[str, Any]) -> bool:
    """conversations.*'s ``include_all_metadata`` (slack_sdk sends a boolean as 1/0 in a query string)."""
    return str(params.get("include_all_metadata", "")).lower() in ("1", "true")


def _state_value(element: Mapping[str, Any], given: str | None) -> dict[str, Any]:
    """One field of a submitted view's ``state.values``, in Slack's shape for its element type."""
    kind = element.get("type")
    if kind in ("radio_buttons", "static_select"):
        option = element.get("initial_option") if given is None else None
        if given is not None:
            offered = [o for o in element.get("options", []) if o.get("value") == given]
            option = offered[0] if offered else {"text": {"type": "plain_text", "text": given}, "value": given}
        return {"type": kind, "selected_option": option}
    if kind == "datepicker":
        return {"type": kind, "selected_date": given}
    return {"type": kind, "value": given}


def view_problems(view: Any) -> list[str]:
    """What Slack's views.open would refuse in a modal (the checks the app's modal could get wrong)."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["a view must be an object of type modal"]
    problems = []
    title = view.get("title")
    if not isinstance(title, dict) or not 0 < len(str(title.get("text", ""))) <= 24:
        problems.append("title must be plain text of 1-24 characters")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 100:
        problems.append("a view holds 1-100 blocks")
        blocks = []
    if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA_CHARS:
        problems.append(f"private_metadata is over {MAX_PRIVATE_METADATA_CHARS} characters")
    for index, block in enumerate(blocks):
        if isinstance(block, dict) and block.get("type") == "input":
            label = block.get("label")
            if not isinstance(label, dict) or not 0 < len(str(label.get("text", ""))) <= 2000:
                problems.append(f"blocks[{index}].label must be plain text of 1-2000 characters")
            element = block.get("element")
            if not isinstance(element, dict) or not block.get("block_id") or not element.get("action_id"):
                problems.append(f"blocks[{index}] needs a block_id and an element with an action_id")
            elif element.get("type") in ("radio_buttons", "static_select"):
                texts = [len(str(o.get("text", {}).get("text", ""))) for o in element.get("options", [])]
                if not texts or max(texts) > 75:
                    problems.append(f"blocks[{index}] options: 1 or more, texts up to 75 characters")
    if any(isinstance(b, dict) and b.get("type") == "input" for b in blocks) and not view.get("submit"):
        problems.append("a modal with input blocks needs a submit button")
    return problems


class _RateLimited(Exception):
    def __init__(self, wait_s: float) -> None:
        super().__init__(f"rate limited for {wait_s:.3f}s")
        # Slack sends whole seconds; round up so a client that honours it is never early.
        self.retry_after = max(1, math.ceil(wait_s))


def block_problems(blocks: Any) -> list[str]:
    """Slack's Block Kit limits that slack_sdk does not check for us (and some it does), as Slack reports them."""
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    problems: list[str] = []
    if len(blocks) > 50:
        problems.append("no more than 50 items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{index}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"each block needs a type {where}")
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if len(block_id) > 255 or block_id in block_ids:
                problems.append(f"block_id must be unique and at most 255 characters {where}")
            block_ids.add(block_id)
        problems.extend(_block_problems(block, where))
    return problems


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) and isinstance(obj.get("text"), str) else ""


def _block_problems(block: dict[str, Any], where: str) -> list[str]:
    kind = block["type"]
    if kind == "section":
        return _section_problems(block, where)
    if kind == "header":
        text = block.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text" or not 0 < len(_text_of(text)) <= 150:
            return [f"a header needs plain_text of 1-150 characters {where}/text"]
    elif kind == "context":
        if not 0 < len(block.get("elements") or []) <= 10:
            return [f"a context block holds 1-10 elements {where}/elements"]
    elif kind == "actions":
        return _actions_problems(block, where)
    return []


def _section_problems(block: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    fields = block.get("fields") or []
    if not _text_of(block.get("text")) and not fields:
        problems.append(f"a section needs text or fields {where}")
    if len(_text_of(block.get("text"))) > 3000:
        problems.append(f"must be less than 3001 characters {where}/text")
    if len(fields) > 10:
        problems.append(f"no more than 10 items allowed {where}/fields")
    problems.extend(
        f"must be less than 2001 characters {where}/fields/{i}" for i, f in enumerate(fields) if len(_text_of(f)) > 2000
    )
    return problems


def _actions_problems(block: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    elements = block.get("elements") or []
    if not 0 < len(elements) <= 25:
        problems.append(f"an actions block holds 1-25 elements {where}/elements")
    action_ids: set[str] = set()
    for i, element in enumerate(elements):
        if not isinstance(element, dict):
            problems.append(f"an element must be an object {where}/elements/{i}")
            continue
        action_id = element.get("action_id")
        if isinstance(action_id, str):
            if len(action_id) > 255 or action_id in action_ids:
                problems.append(f"action_id must be unique and at most 255 characters {where}/elements/{i}")
            action_ids.add(action_id)
        if element.get("type") == "button":
            if not 0 < len(_text_of(element.get("text"))) <= 75:
                problems.append(f"button text must be 1-75 characters {where}/elements/{i}/text")
            if len(str(element.get("value", ""))) > 2000:
                problems.append(f"must be less than 2001 characters {where}/elements/{i}/value")
    return problems
