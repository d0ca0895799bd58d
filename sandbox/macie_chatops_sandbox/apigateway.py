"""A local stand-in for the API Gateway REST API in front of the interaction handler.

A ThreadingHTTPServer on loopback (a thread per connection, a listen backlog of ``LISTEN_BACKLOG``) turns
each HTTP request into the REST API's Lambda proxy event (headers and multiValueHeaders, body,
isBase64Encoded, requestContext with a request id) for ``POST /slack/interactions``, calls the handler like
Lambda would, and answers with what it returns. As on API Gateway: another path or method gets 403
"Missing Authentication Token"; a handler that raises, or answers with something that is not a proxy
response, gets 502 "Internal server error".

The request is checked before any body is read, and a bad one is answered at once: a Content-Length that
is not a number (or several that differ) gets 400, one above API Gateway's payload limit 413, a chunked body
411 (Content-Length required). A client that sends less than it declared, or stalls, gets 408 after
``SOCKET_TIMEOUT_S``: no connection can pin a thread for longer.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from macie_chatops import names
from macie_chatops_sandbox.lambda_runtime import Function

log = logging.getLogger("macie_chatops_sandbox.apigateway")

INTERACTION_PATH: Final = names.SLACK_INTERACTIONS_PATH
STAGE: Final = "prod"
# API Gateway passes text bodies as text; anything else (for binary media types) arrives base64-encoded.
_TEXT_TYPES: Final = ("application/x-www-form-urlencoded", "application/json", "text/")
MAX_BODY: Final = 10 * 1024 * 1024  # API Gateway's payload limit
LISTEN_BACKLOG: Final = 128  # socketserver's default is 5: a burst of connects would be refused
SOCKET_TIMEOUT_S: Final = 10.0  # per connection: each read and write of a request
_CONTENT_LENGTH: Final = re.compile(r"[0-9]{1,12}")


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    # Request threads are joined on close, so stop() returns only when every answer has been sent.
    daemon_threads = False
    block_on_close = True


def content_length(values: list[str] | None) -> int | tuple[int, str]:
    """The declared body length, or the (status, message) a bad declaration gets."""
    if not values:
        return 0
    declared = {value.strip() for value in values}
    if len(declared) != 1:
        return 400, "Conflicting Content-Length headers"
    (value,) = declared
    if not _CONTENT_LENGTH.fullmatch(value):
        return 400, "Invalid Content-Length"
    length = int(value)
    if length > MAX_BODY:
        return 413, "Request Entity Too Large"
    return length


def _is_text(content_type: str | None) -> bool:
    return content_type is not None and content_type.lower().startswith(_TEXT_TYPES)


def proxy_event(
    *,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    account_id: str,
    force_base64: bool = False,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event for one request."""
    split = urlsplit(path)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value  # the last value wins, as in API Gateway's `headers`
        multi.setdefault(name, []).append(value)
    query = parse_qs(split.query, keep_blank_values=True)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    as_text = not force_base64 and _is_text(content_type)
    if as_text:
        try:
            body_field: str | None = body.decode("utf-8")
        except UnicodeDecodeError:
            as_text = False
    if not as_text:
        body_field = base64.b64encode(body).decode("ascii")
    request_id = str(uuid.uuid4())
    now = time.time()
    return {
        "resource": split.path,
        "path": split.path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "sandbox",
            "resourcePath": split.path,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{STAGE}{split.path}",
            "accountId": account_id,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": "sandbox",
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent")},
            "domainName": single.get("Host", "127.0.0.1"),
            "apiId": "sandbox",
        },
        "body": body_field if body else None,
        "isBase64Encoded": not as_text and bool(body),
    }


class _ProxyError(Exception):
    pass


def _response_parts(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a Lambda proxy response; _ProxyError if it is malformed (-> 502)."""
    if not isinstance(response, Mapping):
        raise _ProxyError(f"the handler returned {type(response).__name__}, not a proxy response object")
    status = response.get("statusCode")
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise _ProxyError(f"statusCode {status!r} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    for name, value in (response.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    body = response.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raise _ProxyError("body must be a string")
    elif response.get("isBase64Encoded"):
        raw = base64.b64decode(body)
    else:
        raw = body.encode("utf-8")
    return status, headers, raw


class InteractionEndpoint:
    """``POST /slack/interactions`` on 127.0.0.1 (free port) -> the interaction function."""

    def __init__(self, function: Function, *, base64_bodies: bool = False) -> None:
        self.function = function
        self.base64_bodies = base64_bodies
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self.activity = 0  # requests started (see Sandbox.wait_until_idle)
        self._lock = threading.Lock()
        self.url = ""

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._in_flight > 0

    def start(self) -> str:
        endpoint = self

        class RequestHandler(BaseHTTPRequestHandler):
            # One request per connection (HTTP/1.0): no idle keep-alive thread can hold up a clean stop.
            protocol_version = "HTTP/1.0"
            timeout = SOCKET_TIMEOUT_S  # a client that stalls mid-request cannot pin a thread
            server_version = "sandbox-apigateway"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                names = {name.lower() for name, _ in headers}
                for name, value in headers:
                    if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                        self.send_header(name, value)
                if "content-type" not in names:
                    self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _gateway_error(self, status: int, message: str) -> None:
                headers = [("x-amzn-ErrorType", "MissingAuthenticationTokenException")] if status == 403 else []
                self._answer(status, headers, json.dumps({"message": message}).encode())

            def _handle(self) -> None:
                self.close_connection = True
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    self._gateway_error(411, "Length Required")
                    return
                length = content_length(self.headers.get_all("Content-Length"))
                if isinstance(length, tuple):
                    self._gateway_error(*length)
                    return
                try:
                    body = self.rfile.read(length) if length else b""
                except TimeoutError:
                    body = None
                if body is None or len(body) < length:
                    self._gateway_error(408, "Request Timeout")
                    return
                if self.command != "POST" or urlsplit(self.path).path != INTERACTION_PATH:
                    self._gateway_error(403, "Missing Authentication Token")
                    return
                endpoint._invoke(self, body)

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle
            do_DELETE = _handle
            do_PATCH = _handle

        server = _Server(("127.0.0.1", 0), RequestHandler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-apigateway", daemon=True
        )
        self._thread.start()
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}{INTERACTION_PATH}"
        return self.url

    def _invoke(self, request: Any, body: bytes) -> None:
        with self._lock:
            self._in_flight += 1
            self.activity += 1
        try:
            event = proxy_event(
                method=request.command,
                path=request.path,
                headers=list(request.headers.items()),
                body=body,
                source_ip=request.client_address[0],
                account_id=self.function.account_id,
                force_base64=self.base64_bodies,
            )
            try:
                response = self.function.handler(event, self.function.context())
                status, headers, raw = _response_parts(response)
            except _ProxyError as exc:
                log.error("%s: malformed Lambda proxy response: %s", self.function.name, exc)
                request._gateway_error(502, "Internal server error")
                return
            except Exception:  # API Gateway answers 502 when the function fails
                log.error("%s raised:\n%s", self.function.name, traceback.format_exc())
                request._gateway_error(502, "Internal server error")
                return
            request._answer(status, headers, raw)
        finally:
            with self._lock:
                self._in_flight -= 1

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
