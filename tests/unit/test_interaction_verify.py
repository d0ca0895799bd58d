"""The signature gate: Slack's published vector through our verification path, and every way to fail it."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from macie_chatops.slack_request import (
    MAX_BODY_BYTES,
    RawRequest,
    Refusal,
    extract,
    verify,
)
from macie_chatops_sandbox.slack_clicks import api_gateway_event, sign, signature

# Slack's worked example (docs.slack.dev "Verifying requests from Slack", as in slackapi's own test).
VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TS = 1531420618
VECTOR_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


@dataclass
class FixedClock:
    at: float

    def now(self) -> float:
        return self.at


def _request(event: dict[str, object]) -> RawRequest:
    raw = extract(event)
    assert isinstance(raw, RawRequest), raw
    return raw


def _vector_event(**overrides: object) -> dict[str, object]:
    headers = {"X-Slack-Request-Timestamp": str(VECTOR_TS), "X-Slack-Signature": VECTOR_SIGNATURE}
    event = api_gateway_event(VECTOR_BODY, headers)
    event.update(overrides)
    return event


def test_slack_vector_passes_our_verification_path() -> None:
    # GIVEN Slack's documented request, as API Gateway hands it over, and a clock at its timestamp
    raw = _request(_vector_event())
    # WHEN we verify it with the documented secret
    # THEN it is accepted
    assert verify(raw, VECTOR_SECRET, FixedClock(VECTOR_TS)) is None


def test_our_signing_helper_reproduces_the_vector() -> None:
    # GIVEN the sandbox's signer (plain hmac, independent of slack_sdk)
    # THEN it computes Slack's documented signature
    assert signature(VECTOR_SECRET, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    assert sign(VECTOR_SECRET, VECTOR_TS, VECTOR_BODY.encode())["X-Slack-Signature"] == VECTOR_SIGNATURE


def test_vector_base64_encoded_by_api_gateway_passes() -> None:
    # GIVEN the vector delivered base64-encoded (binary media type)
    event = api_gateway_event(VECTOR_BODY.encode(), dict(_vector_event()["headers"]), base64_encoded=True)  # type: ignore[call-overload]
    # THEN the raw bytes are recovered and verified
    assert verify(_request(event), VECTOR_SECRET, FixedClock(VECTOR_TS)) is None


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_vector_inside_the_window_both_ways(skew: int) -> None:
    assert verify(_request(_vector_event()), VECTOR_SECRET, FixedClock(VECTOR_TS + skew)) is None


@pytest.mark.parametrize(("skew", "reason"), [(301, "old"), (-301, "future"), (86_400, "old")])
def test_vector_outside_the_window_is_refused(skew: int, reason: str) -> None:
    refusal = verify(_request(_vector_event()), VECTOR_SECRET, FixedClock(VECTOR_TS + skew))
    assert refusal is not None and refusal.status == 401 and reason in refusal.reason


def _with_headers(headers: dict[str, str], multi: dict[str, list[str]] | None = None) -> RawRequest:
    return _request(api_gateway_event(VECTOR_BODY, headers, multi_value_headers=multi))


SIG = VECTOR_SIGNATURE
TS = str(VECTOR_TS)


@pytest.mark.parametrize(
    ("name", "headers", "multi", "reason"),
    [
        ("no headers", {}, None, "missing x-slack-signature"),
        ("no signature", {"X-Slack-Request-Timestamp": TS}, None, "missing x-slack-signature"),
        ("no timestamp", {"X-Slack-Signature": SIG}, None, "missing x-slack-request-timestamp"),
        ("v1 prefix", {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": "v1=" + SIG[3:]}, None, "version"),
        ("no prefix", {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG[3:]}, None, "version"),
        ("bad hex", {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG[:-1] + "g"}, None, "hex"),
        (
            "upper hex",
            {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG.upper().replace("V0", "v0")},
            None,
            "hex",
        ),
        ("short", {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG[:-2]}, None, "hex"),
        ("unicode sig", {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG[:-1] + "é"}, None, "hex"),
        ("wrong digest", {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG[:-1] + "0"}, None, "match"),
        ("ts text", {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": SIG}, None, "number"),
        ("ts signed", {"X-Slack-Request-Timestamp": "+" + TS, "X-Slack-Signature": SIG}, None, "number"),
        ("ts spaces", {"X-Slack-Request-Timestamp": f" {TS} ", "X-Slack-Signature": SIG}, None, "number"),
        ("ts float", {"X-Slack-Request-Timestamp": TS + ".0", "X-Slack-Signature": SIG}, None, "number"),
        ("ts huge", {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": SIG}, None, "number"),
        (
            "two signatures",
            {"X-Slack-Request-Timestamp": TS},
            {"X-Slack-Request-Timestamp": [TS], "X-Slack-Signature": [SIG, SIG[:-1] + "0"]},
            "twice",
        ),
        (
            "two timestamps (case variants)",
            {
                "X-Slack-Request-Timestamp": TS,
                "x-slack-request-timestamp": str(VECTOR_TS + 1),
                "X-Slack-Signature": SIG,
            },
            None,
            "twice",
        ),
    ],
)
def test_header_problems_are_401(
    name: str, headers: dict[str, str], multi: dict[str, list[str]] | None, reason: str
) -> None:
    # GIVEN the vector's body with broken headers
    raw = _with_headers(headers, multi)
    # WHEN verified at the right time with the right secret
    refusal = verify(raw, VECTOR_SECRET, FixedClock(VECTOR_TS))
    # THEN it is refused with 401 and a reason for the log that does not echo the header values
    assert refusal is not None and refusal.status == 401, name
    assert reason in refusal.reason
    assert SIG[3:] not in refusal.reason


@pytest.mark.parametrize(
    "headers",
    [
        {"x-slack-request-timestamp": TS, "x-slack-signature": SIG},
        {"X-SLACK-REQUEST-TIMESTAMP": TS, "X-Slack-SIGNATURE": SIG},
        {"x-Slack-Request-timestamp": TS, "X-slack-signature": SIG},
    ],
)
def test_header_names_are_case_insensitive(headers: dict[str, str]) -> None:
    assert verify(_with_headers(headers), VECTOR_SECRET, FixedClock(VECTOR_TS)) is None


def test_same_header_repeated_with_same_value_is_fine() -> None:
    # GIVEN API Gateway's two header views agreeing (and a repeated identical value)
    raw = _with_headers(
        {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG},
        {"x-slack-request-timestamp": [TS, TS], "x-slack-signature": [SIG]},
    )
    assert verify(raw, VECTOR_SECRET, FixedClock(VECTOR_TS)) is None


def test_only_multi_value_headers_present() -> None:
    event = api_gateway_event(
        VECTOR_BODY, {}, multi_value_headers={"X-Slack-Request-Timestamp": [TS], "X-Slack-Signature": [SIG]}
    )
    event["headers"] = None
    assert verify(_request(event), VECTOR_SECRET, FixedClock(VECTOR_TS)) is None


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        (VECTOR_BODY.replace("roadrunner", "coyote"), VECTOR_SECRET),  # body altered after signing
        (VECTOR_BODY + "&x=1", VECTOR_SECRET),  # appended field
        (VECTOR_BODY, "another-apps-signing-secret"),  # signature made with another secret
        ("", VECTOR_SECRET),  # empty body
    ],
)
def test_body_or_secret_mismatch_is_401(body: str, secret: str) -> None:
    raw = _request(api_gateway_event(body, {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG}))
    refusal = verify(raw, secret, FixedClock(VECTOR_TS))
    assert refusal == Refusal(401, "signature does not match the body")


def test_non_utf8_body_is_401_not_a_crash() -> None:
    event = api_gateway_event(
        b"\xff\xfe" + VECTOR_BODY.encode(),
        {"X-Slack-Request-Timestamp": TS, "X-Slack-Signature": SIG},
        base64_encoded=True,
    )
    refusal = verify(_request(event), VECTOR_SECRET, FixedClock(VECTOR_TS))
    assert refusal is not None and refusal.status == 401


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("not a dict", 400),
        ({"headers": "x", "body": ""}, 400),
        ({"headers": {1: "x"}, "body": ""}, 400),
        ({"headers": {"X-Slack-Signature": 5}, "body": ""}, 400),
        ({"headers": {}, "body": 12}, 400),
        ({"headers": {}, "body": "not base64!", "isBase64Encoded": True}, 400),
        ({"headers": {}, "body": "", "isBase64Encoded": "yes"}, 400),
        ({"headers": {}, "body": "a" * (MAX_BODY_BYTES + 1)}, 413),
        ({"headers": {}, "body": base64.b64encode(b"a" * (MAX_BODY_BYTES + 1)).decode(), "isBase64Encoded": True}, 413),
        ({"headers": {}, "body": "é" * (MAX_BODY_BYTES // 2 + 1)}, 413),  # under the cap in chars, over in bytes
        ({"headers": {}, "body": "\ud800"}, 400),  # a lone surrogate cannot be what Slack signed
    ],
)
def test_unreadable_events_are_refused_before_any_check(event: object, status: int) -> None:
    refusal = extract(event)
    assert isinstance(refusal, Refusal) and refusal.status == status


def test_body_at_the_cap_is_read() -> None:
    raw = _request(api_gateway_event("a" * MAX_BODY_BYTES, {}))
    assert len(raw.body) == MAX_BODY_BYTES


def test_missing_body_is_empty() -> None:
    raw = _request({"headers": None, "multiValueHeaders": None, "body": None, "isBase64Encoded": False})
    assert raw.body == b"" and raw.headers == {}
