"""The sandbox's API Gateway stand-in under load and under bad requests (issue 12, item 7): a burst of
simultaneous connections is answered, and a bad Content-Length is answered at once with the right status,
without the handler ever being called."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from macie_chatops_sandbox import apigateway
from macie_chatops_sandbox.apigateway import LISTEN_BACKLOG, MAX_BODY, InteractionEndpoint, content_length
from macie_chatops_sandbox.lambda_runtime import Function

SECURITY = "210987654321"


class CountingHandler:
    """Answers 200 after ``delay_s`` (holding its connection open meanwhile), counting calls."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay_s)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"ok": True})}


def start(handler: CountingHandler) -> InteractionEndpoint:
    api = InteractionEndpoint(Function("interaction", handler, 10, "us-east-1", SECURITY))
    api.start()
    return api


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(apigateway, "SOCKET_TIMEOUT_S", 0.5)
    return 0.5


@pytest.fixture
def endpoint(short_timeout: float) -> Iterator[tuple[InteractionEndpoint, CountingHandler]]:
    handler = CountingHandler()
    api = start(handler)
    try:
        yield api, handler
    finally:
        api.stop()


def raw_exchange(url: str, request: bytes, *, half_close: bool = False, timeout_s: float = 5.0) -> tuple[int, float]:
    """Send ``request`` bytes on a fresh connection; the answer's status and how long it took."""
    parts = urllib.parse.urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as conn:
        conn.sendall(request)
        if half_close:
            conn.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, time.monotonic() - started


def post_headers(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def test_the_listen_backlog_is_not_socketservers_five() -> None:
    assert LISTEN_BACKLOG >= 128
    assert apigateway._Server.request_queue_size == LISTEN_BACKLOG


def test_fifty_simultaneous_connections_are_all_answered() -> None:
    # GIVEN a handler slow enough that 50 requests are in flight at once
    handler = CountingHandler(delay_s=0.3)
    api = start(handler)
    path = urllib.parse.urlsplit(api.url).path
    statuses: list[int] = []
    times: list[float] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def client() -> None:
        try:
            barrier.wait()
            status, took = raw_exchange(api.url, post_headers(path, "Content-Length: 2") + b"{}", timeout_s=20)
            statuses.append(status)
            times.append(took)
        except BaseException as exc:  # reported below, with every other client's outcome
            errors.append(exc)

    try:
        # WHEN 50 clients connect at the same moment
        threads = [threading.Thread(target=client) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        api.stop()
    # THEN every one is answered 200 (no reset, no refusal), and the handler ran once per request
    assert errors == []
    assert statuses == [200] * 50
    assert handler.calls == 50
    # AND none waited for a SYN retransmission (1 s on Linux), which an overflowing backlog of 5 causes
    assert max(times) < 1.0 + handler.delay_s, max(times)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (("Content-Length: abc",), 400),
        (("Content-Length: -1",), 400),
        (("Content-Length: +5",), 400),
        (("Content-Length: 1e3",), 400),
        (("Content-Length: 5", "Content-Length: 6"), 400),
        ((f"Content-Length: {MAX_BODY + 1}",), 413),
        (("Content-Length: 99999999999999999999999",), 400),
        (("Transfer-Encoding: chunked",), 411),
    ],
    ids=["non-numeric", "negative", "signed", "exponent", "conflicting", "too-large", "absurd", "chunked"],
)
def test_a_bad_content_length_is_answered_at_once_and_never_reaches_the_handler(
    endpoint: tuple[InteractionEndpoint, CountingHandler], headers: tuple[str, ...], status: int
) -> None:
    api, handler = endpoint
    path = urllib.parse.urlsplit(api.url).path
    # WHEN a request declares its body badly (and sends none)
    got, took = raw_exchange(api.url, post_headers(path, *headers))
    # THEN the right status comes back at once, not after a socket timeout; the handler never ran
    assert got == status
    assert took < 0.4
    assert handler.calls == 0


def test_a_body_shorter_than_declared_gets_408(
    endpoint: tuple[InteractionEndpoint, CountingHandler], short_timeout: float
) -> None:
    api, handler = endpoint
    path = urllib.parse.urlsplit(api.url).path
    # GIVEN a client that declares 100 bytes and sends 10
    request = post_headers(path, "Content-Length: 100") + b"0123456789"
    # WHEN it closes its side THEN 408 at once; WHEN it stalls THEN 408 after the socket timeout
    assert raw_exchange(api.url, request, half_close=True)[0] == 408
    status, took = raw_exchange(api.url, request)
    assert status == 408 and short_timeout <= took < short_timeout + 2
    assert handler.calls == 0


def test_a_good_request_still_reaches_the_handler(endpoint: tuple[InteractionEndpoint, CountingHandler]) -> None:
    api, handler = endpoint
    path = urllib.parse.urlsplit(api.url).path
    assert raw_exchange(api.url, post_headers(path, "Content-Length: 2") + b"{}")[0] == 200
    assert raw_exchange(api.url, post_headers(path))[0] == 200  # no body at all
    assert handler.calls == 2


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (None, 0),
        (["0"], 0),
        ([" 12 "], 12),
        (["12", "12"], 12),
        (["12", "13"], (400, "Conflicting Content-Length headers")),
        (["١٢"], (400, "Invalid Content-Length")),  # Arabic-Indic digits: int() would read them
        (["12\n"], 12),  # the header parser strips line ends; a value with one is still the number
        ([str(MAX_BODY)], MAX_BODY),
    ],
)
def test_content_length_reading(values: list[str] | None, expected: int | tuple[int, str]) -> None:
    assert content_length(values) == expected
