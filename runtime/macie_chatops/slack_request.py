"""The HTTP edge of a Slack request: the raw body and headers out of an API Gateway proxy event, and the
signature check over them.

Nothing here parses the body: a request is only read (form, JSON, pydantic) after ``verify`` accepted it.
It is an edge adapter, not pure domain: the standard library at import, ``slack_sdk.signature`` on the first
``verify`` (importing it runs ``slack_sdk/__init__``, which loads the Web API client: ~50 ms that the
handler's module import does not need to pay), so the interaction handler's cold import stays cheap and
unauthenticated traffic never loads the domain models.

Refusals carry a reason for the log (never the body, a header value or the secret) and the HTTP status.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

MAX_BODY_BYTES: Final = 64 * 1024
TIMESTAMP_TOLERANCE_SECONDS: Final = 5 * 60  # Slack's documented replay window, both ways
SIGNATURE_HEADER: Final = "x-slack-signature"
TIMESTAMP_HEADER: Final = "x-slack-request-timestamp"

_SIGNATURE_RE: Final = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,12}")
# base64 of MAX_BODY_BYTES, plus padding: anything longer cannot decode to an acceptable body.
_MAX_ENCODED_CHARS: Final = 4 * ((MAX_BODY_BYTES + 2) // 3)


class Clock(Protocol):
    """What slack_sdk's SignatureVerifier asks of a clock (``now()`` in epoch seconds)."""

    def now(self) -> float: ...


@dataclass(frozen=True)
class Refusal:
    """A request answered without being read: ``status`` for the HTTP answer, ``reason`` for the log."""

    status: int
    reason: str


@dataclass(frozen=True)
class RawRequest:
    """The exact bytes Slack signed, and every header value seen (names lower-cased)."""

    body: bytes
    headers: Mapping[str, tuple[str, ...]]

    def header(self, name: str) -> str | None:
        """The one value of a header; None if absent. Callers check ``conflicting`` first."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def conflicting(self, name: str) -> bool:
        """The header came more than once with different values (which one did Slack sign?)."""
        return len(set(self.headers.get(name.lower(), ()))) > 1


def _collect_headers(event: Mapping[str, Any]) -> dict[str, tuple[str, ...]] | Refusal:
    """Merge API Gateway's ``headers`` and ``multiValueHeaders``, case-insensitively, keeping every value."""
    seen: dict[str, list[str]] = {}
    for source in ("headers", "multiValueHeaders"):
        block = event.get(source)
        if block is None:
            continue
        if not isinstance(block, Mapping):
            return Refusal(400, f"event.{source} is not a mapping")
        for name, value in block.items():
            if not isinstance(name, str):
                return Refusal(400, f"event.{source} has a non-string header name")
            values = value if isinstance(value, list) else [value]
            for item in values:
                if item is None:
                    continue
                if not isinstance(item, str):
                    return Refusal(400, f"event.{source} header {name.lower()!r} has a non-string value")
                bucket = seen.setdefault(name.lower(), [])
                if item not in bucket:
                    bucket.append(item)
    return {name: tuple(values) for name, values in seen.items()}


def _raw_body(event: Mapping[str, Any]) -> bytes | Refusal:
    body = event.get("body")
    flag = event.get("isBase64Encoded", False)
    if body is None:
        return b""
    if not isinstance(body, str):
        return Refusal(400, "event.body is not a string")
    if flag is True:
        if len(body) > _MAX_ENCODED_CHARS:
            return Refusal(413, f"body over {MAX_BODY_BYTES} bytes")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return Refusal(400, "isBase64Encoded is true but the body is not base64")
    if flag not in (False, None):
        return Refusal(400, "isBase64Encoded is not a boolean")
    if len(body) > MAX_BODY_BYTES:  # cheap pre-check before encoding; a char is at least one byte
        return Refusal(413, f"body over {MAX_BODY_BYTES} bytes")
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot have been signed by Slack
        return Refusal(400, "body is not encodable as UTF-8")


def extract(event: object) -> RawRequest | Refusal:
    """The raw request inside an API Gateway REST proxy event (base64-decoded when flagged), size-capped."""
    if not isinstance(event, Mapping):
        return Refusal(400, "event is not a mapping")
    headers = _collect_headers(event)
    if isinstance(headers, Refusal):
        return headers
    body = _raw_body(event)
    if isinstance(body, Refusal):
        return body
    if len(body) > MAX_BODY_BYTES:
        return Refusal(413, f"body over {MAX_BODY_BYTES} bytes")
    return RawRequest(body=body, headers=headers)


def verify(request: RawRequest, signing_secret: str, clock: Clock) -> Refusal | None:
    """None when Slack signed exactly this body within the replay window; else why not (always 401).

    The checks before slack_sdk's ``SignatureVerifier`` only name the reason for the log; the SDK makes the
    decision (constant-time compare, the same window). Its ``ValueError`` on odd input becomes a 401.
    """
    from slack_sdk.signature import SignatureVerifier  # the submodule: no Bolt, no OAuth, no models

    for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER):
        if request.conflicting(name):
            return Refusal(401, f"header {name} given twice with different values")
    signature = request.header(SIGNATURE_HEADER)
    timestamp = request.header(TIMESTAMP_HEADER)
    if signature is None:
        return Refusal(401, f"missing {SIGNATURE_HEADER}")
    if timestamp is None:
        return Refusal(401, f"missing {TIMESTAMP_HEADER}")
    if not signature.startswith("v0="):
        return Refusal(401, "signature is not version v0")
    if not _SIGNATURE_RE.fullmatch(signature):
        return Refusal(401, "signature is not v0= and 64 lower-case hex digits")
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        return Refusal(401, "timestamp is not a number of seconds")
    skew = clock.now() - int(timestamp)
    if skew > TIMESTAMP_TOLERANCE_SECONDS:
        return Refusal(401, f"timestamp is {int(skew)} s old (replay window {TIMESTAMP_TOLERANCE_SECONDS} s)")
    if skew < -TIMESTAMP_TOLERANCE_SECONDS:
        return Refusal(401, f"timestamp is {int(-skew)} s in the future")
    try:
        request.body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(401, "body is not UTF-8 (Slack signs URL-encoded text)")
    try:
        valid = SignatureVerifier(signing_secret, clock=clock).is_valid(request.body, timestamp, signature)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        return Refusal(401, f"signature check refused the input ({type(exc).__name__})")
    if not valid:
        return Refusal(401, "signature does not match the body")
    return None
