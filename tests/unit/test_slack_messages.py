"""Block Kit messages: every state renders within Slack's limits, and untrusted text stays inert."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import ActionsBlock, ButtonElement

from macie_chatops import names
from macie_chatops import slack_messages as sm
from macie_chatops.config import load_config
from macie_chatops.decision import decide
from macie_chatops.finding import Finding, parse_event
from macie_chatops.quarantine_plan import AtKey, CopyCheck, MoveFacts, SourceFate
from macie_chatops.summary import DataCategory, DetectionCount, FindingSummary
from tests.conftest import ROOT, load_event

AT = datetime(2026, 11, 20, 10, 20, 0, tzinfo=UTC)
# Every Slack control sequence an attacker could put in a key, a bucket-adjacent string or a reason.
HOSTILE = (
    "<!channel> <!here> <!everyone> <https://evil.example|click> <@U0ALICE> <#C0PAYMENTS> <!subteam^S0SECOPS> &amp; &"
)
CONTROL = re.compile(r"<[!@#]|<https?:|<mailto:")


def summary_of(event_name: str) -> FindingSummary:
    finding = parse_event(load_event(event_name))
    assert isinstance(finding, Finding)
    return FindingSummary.of(finding, decide(finding, load_config(ROOT / "accounts.yaml")))


def every_builder(summary: FindingSummary, text: str = "because policy says so") -> Iterator[sm.SlackMessage]:
    """One message per state, with ``text`` in every free-text argument."""
    yield sm.build_review_message(summary, reason=text)
    yield sm.build_auto_message(summary, reason=text)
    yield sm.build_notify_message(summary, reason=text)
    yield sm.build_approved_message(summary, approver="U0ALICE", at=AT)
    yield sm.build_approved_message(summary, approver=None, at=AT)
    yield sm.build_quarantined_message(
        summary,
        approver="U0ALICE",
        at=AT,
        quarantine_bucket="macie-chatops-quarantine-345678901234-us-east-1",
        quarantine_key=f"{summary.finding_id}/{summary.key}",
        older_versions=3,
    )
    yield sm.build_quarantined_message(
        summary,
        approver="U0ALICE",
        at=AT,
        quarantine_bucket="macie-chatops-quarantine-345678901234-us-east-1",
        quarantine_key=f"{summary.finding_id}/{summary.key}",
        older_versions=None,
        notice=f"Restore refused: {text}",
    )
    for code in sorted(sm.BLOCKED_REASONS):
        yield sm.build_blocked_message(summary, approver="U0ALICE", at=AT, reason_code=code, detail=text)
    yield sm.build_blocked_message(
        summary,
        approver=sm.AUTO_APPROVER,
        at=AT,
        reason_code="locked",
        detail=text,
        quarantine_bucket="macie-chatops-quarantine-345678901234-us-east-1",
        quarantine_key=f"{summary.finding_id}/{summary.key}",
    )
    yield sm.build_failed_message(summary, approver="U0ALICE", at=AT, error=text, retryable=True)
    yield sm.build_failed_message(summary, approver="U0ALICE", at=AT, error=text, retryable=False, fix=text)
    yield sm.build_failed_message(summary, approver=sm.AUTO_APPROVER, at=AT, error=text, retryable=False)
    yield sm.build_dismissed_message(summary, by="U0BOB", at=AT)
    yield sm.build_restoring_message(summary, by="U0BOB", at="2026-11-21T08:00:00Z")
    yield sm.build_restored_message(summary, by="U0BOB", at=AT, restored_version_id="v2&<x>")
    yield sm.build_restored_message(summary, by="U0BOB", at=AT, restored_version_id=None)


def text_objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every text object (dict with type plain_text/mrkdwn) in a block structure."""
    if isinstance(value, dict):
        if value.get("type") in ("plain_text", "mrkdwn") and isinstance(value.get("text"), str):
            yield value
        for item in value.values():
            yield from text_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from text_objects(item)


def our_markup_removed(text: str) -> str:
    """The mrkdwn text without the tokens the builders write on purpose (dates and the console link)."""
    text = re.sub(r"<!date\^\d+\^\{date_short_pretty\} \{time_secs\}\|[^<>|]*>", "", text)
    text = re.sub(r"<https://[a-z0-9-]+\.console\.aws\.amazon\.com/macie/[^<>|]*\|Open in the Macie console>", "", text)
    return re.sub(r"<@U0(ALICE|BOB)>", "", text) if "Approved <@" in text or "by <@" in text else text


def assert_within_limits(message: sm.SlackMessage) -> dict[str, Any]:
    body = message.to_dict()  # runs slack_sdk's validators (SlackObjectFormationError on any breach)
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            if "text" in block:
                assert 1 <= len(block["text"]["text"]) <= 3000
            fields = block.get("fields", [])
            assert len(fields) <= 10
            assert all(len(field["text"]) <= 2000 for field in fields)
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
        if block["type"] == "actions":
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= 75
                assert len(button["value"]) <= 2000
                if "confirm" in button:
                    confirm = button["confirm"]
                    assert len(confirm["title"]["text"]) <= 100
                    assert len(confirm["text"]["text"]) <= 300
                    assert len(confirm["confirm"]["text"]) <= 30
                    assert len(confirm["deny"]["text"]) <= 30
    assert sm.text_chars(blocks) + len(body["text"]) <= sm.MAX_MESSAGE_TEXT_CHARS
    assert body["text"].strip()
    return body


def buttons(message: sm.SlackMessage) -> list[ButtonElement]:
    found: list[ButtonElement] = []
    for block in message.blocks:
        if isinstance(block, ActionsBlock):
            found.extend(element for element in block.elements if isinstance(element, ButtonElement))
    return found


@pytest.fixture(scope="module")
def markup_summary() -> FindingSummary:
    return summary_of("key-slack-markup")


@pytest.fixture(scope="module")
def huge_summary() -> FindingSummary:
    """A 1,000-byte key made of '&' (5x on escaping), and 40 long categories with 30 detection types each."""
    base = summary_of("key-1000-bytes")
    assert len(base.key.encode()) == 1000
    categories = tuple(
        DataCategory(
            f"CATEGORY_{index}_" + "&" * 80,
            1000 + index,
            tuple(DetectionCount(f"<TYPE {index}.{j}> " * 8, j + 1) for j in range(30)),
        )
        for index in range(40)
    )
    return dataclasses.replace(base, key="&" * 1000, title=HOSTILE * 20, categories=categories)


# --- helpers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a & b", "a &amp; b"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("&amp;", "&amp;amp;"),  # already-escaped text is escaped again, so it shows literally
        ("&lt;", "&amp;lt;"),
        ("plain", "plain"),
    ],
)
def test_escape_mrkdwn_escapes_ampersand_first(raw: str, escaped: str) -> None:
    # GIVEN text with Slack control characters / WHEN escaped / THEN each is escaped exactly once
    assert sm.escape_mrkdwn(raw) == escaped


def test_escape_mrkdwn_neutralises_formatting_bare_mentions_and_control_characters() -> None:
    # GIVEN prose with every formatting character, mentions in both forms, and a newline that could start a quote
    raw = "*bold* _it_ ~strike~ `code` @here @Channel <!everyone>\n> quoted"
    # WHEN escaped
    escaped = sm.escape_mrkdwn(raw)
    # THEN nothing in it formats, mentions or breaks the line; the words stay readable
    assert escaped == (
        "\u2217bold\u2217 \u02cdit\u02cd \u223cstrike\u223c \u02cbcode\u02cb \uff20here \uff20Channel "
        "&lt;!everyone&gt;\u240a&gt; quoted"
    )
    assert not set("*_~`<>\n") & set(escaped)
    # AND a URL for <url|label> keeps its characters (only Slack's three control characters are escaped)
    assert sm.escape_url("https://x.example/a_b~c?d=1&e=<2>") == "https://x.example/a_b~c?d=1&amp;e=&lt;2&gt;"


@pytest.mark.parametrize(
    ("raw", "span"),
    [
        ("plain/key.txt", "`plain/key.txt`"),
        ("a`b", "`a\u02cbb`"),  # a backtick would end the span: it becomes a look-alike
        ("``*bold*`` _it_ ~s~", "`\u02cb\u02cb*bold*\u02cb\u02cb _it_ ~s~`"),  # inside a span nothing formats
        ("<!here> & co", "`&lt;!here&gt; &amp; co`"),
        ("line\nbreak", "`line\u240abreak`"),
        ("", f"`{sm.ELLIPSIS}`"),
    ],
)
def test_code_span_survives_backticks(raw: str, span: str) -> None:
    assert sm.code_span(raw, 100) == span


@given(st.text(max_size=300), st.integers(min_value=1, max_value=200))
def test_code_span_is_always_one_span_within_its_limit(raw: str, limit: int) -> None:
    # GIVEN any text and budget / WHEN rendered as a code span
    span = sm.code_span(raw, limit)
    # THEN exactly one span: two backticks, at its ends; no live control character; the budget holds
    assert span.startswith("`") and span.endswith("`") and span.count("`") == 2
    assert len(span) <= limit + 2
    assert "<" not in span and ">" not in span and not any(ord(c) < 0x20 for c in span)
    assert "&" not in re.sub(r"&(amp|lt|gt);", "", span)


def test_shorten_keeps_both_ends_with_a_middle_ellipsis() -> None:
    # GIVEN a long key / WHEN shortened / THEN its prefix and file name survive, within the limit
    key = "exports/2026/" + "x" * 500 + "/customers.csv"
    short = sm.shorten(key, 60)
    assert len(short) == 60
    assert short.startswith("exports/2026/")
    assert short.endswith("customers.csv")
    assert sm.ELLIPSIS in short
    assert sm.shorten("short", 60) == "short"
    assert sm.shorten("abcdef", 1) == sm.ELLIPSIS


def test_shorten_rejects_a_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        sm.shorten("abc", 0)


@pytest.mark.parametrize("limit", range(1, 40))
def test_shortened_then_escaped_text_never_holds_a_partial_escape(limit: int) -> None:
    # GIVEN a key of ampersands and angle brackets / WHEN shortened then escaped
    escaped = sm.escape_mrkdwn(sm.shorten("&<>" * 30 + "&amp;" * 10, limit))
    # THEN removing every whole escape leaves no '&' behind, and it does not end mid-escape
    assert "&" not in re.sub(r"&(amp|lt|gt);", "", escaped)
    assert not re.search(r"&(a|am|amp|l|lt|g|gt)?$", escaped)


def test_human_size() -> None:
    assert sm.human_size(0) == "0 bytes"
    assert sm.human_size(1023) == "1,023 bytes"
    assert sm.human_size(4096) == "4.0 KiB (4,096 bytes)"
    assert sm.human_size(5 * 1024**3) == "5.0 GiB (5,368,709,120 bytes)"


# --- every builder --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_name",
    [
        "personal-review",
        "key-slack-markup",
        "key-1000-bytes",
        "key-unicode",
        "key-with-spaces",
        "key-plus-percent",
        "unversioned-bucket",
        "customidentifier-review",
        "multiple-review",
        "credentials-auto",
        "automated-discovery-null-job",
    ],
)
def test_every_builder_passes_slack_validation_within_limits(event_name: str) -> None:
    # GIVEN a real finding / WHEN rendered in every state / THEN slack_sdk validates it and limits hold
    for message in every_builder(summary_of(event_name)):
        assert_within_limits(message)


def test_every_state_renders_the_same_facts(markup_summary: FindingSummary) -> None:
    # GIVEN one finding / WHEN rendered in every state / THEN each message shows the same fields
    for message in every_builder(markup_summary):
        body = message.to_dict()
        fields = [block for block in body["blocks"] if block["type"] == "section" and "fields" in block]
        assert len(fields) == 1
        labels = [field["text"].split("\n", 1)[0] for field in fields[0]["fields"]]
        assert labels == [
            "*Account*",
            "*Team*",
            "*Region*",
            "*Bucket*",
            "*Key*",
            "*Version*",
            "*Size*",
            "*Storage class*",
            "*Severity*",
            "*Finding type*",
        ]
        everything = "\n".join(obj["text"] for obj in text_objects(body["blocks"]))
        for fact in (
            "payments-prod",
            "345678901234",
            "payments",
            "us-east-1",
            "payments-prod-exports",
            "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
            "4.0 KiB",
            "STANDARD",
            "High",
            "SensitiveData:S3Object/Personal",
            "PERSONAL_INFORMATION",
            "`NAME` ×12",
            "`USA_PASSPORT_NUMBER` ×4",
            "job b7c2ab1d8e0f1a2b3c4d5e6f7a8b9c0d",
            "2026-11-20 10:15:04 UTC",
            "Open in the Macie console",
            sm.escape_url(markup_summary.console_url),
        ):
            assert fact in everything, fact


def test_unversioned_objects_and_automated_discovery_are_named() -> None:
    # GIVEN an unversioned object found by automated discovery
    summary = dataclasses.replace(summary_of("unversioned-bucket"), origin="automated sensitive data discovery")
    # WHEN rendered / THEN the version says "unversioned" and the origin is named
    body = sm.build_notify_message(summary, reason="notify").to_dict()
    everything = "\n".join(obj["text"] for obj in text_objects(body["blocks"]))
    assert "*Version*\nunversioned" in everything
    assert "Origin: automated sensitive data discovery" in everything


def test_huge_key_and_forty_categories_stay_within_limits(huge_summary: FindingSummary) -> None:
    # GIVEN a 1,000-byte key of '&' and 40 categories / WHEN rendered in every state with a huge reason
    for message in every_builder(huge_summary, text="&<>" * 3000):
        # THEN every limit holds and the category list says how many were left out
        body = assert_within_limits(message)
        categories = next(b for b in body["blocks"] if b["type"] == "section" and "Sensitive data" in str(b))
        assert re.search(r"…and \d+ more categories", categories["text"]["text"])


def test_categories_are_listed_in_full_when_they_fit() -> None:
    # GIVEN a finding with a custom identifier and built-in categories
    summary = summary_of("customidentifier-review")
    body = sm.build_review_message(summary, reason="r").to_dict()
    text = next(b for b in body["blocks"] if "Sensitive data" in str(b))["text"]["text"]
    # THEN each category is a line, none omitted
    assert "more categor" not in text
    assert text.count("• ") == len(summary.categories)


@pytest.mark.parametrize("text", [HOSTILE, "&lt;!channel&gt; already escaped &amp;", "a > b < c & d"])
def test_untrusted_text_stays_inert_everywhere(markup_summary: FindingSummary, text: str) -> None:
    # GIVEN a key and title carrying every Slack control sequence, and the same text in every free-text field
    summary = dataclasses.replace(markup_summary, title=text, bucket="bucket", origin=f"job {text}")
    summary = dataclasses.replace(
        summary,
        categories=(DataCategory("CUSTOM_IDENTIFIER", 2, (DetectionCount(text, 2),)),),
    )
    for message in every_builder(summary, text=text):
        body = message.to_dict()
        # THEN no mrkdwn text holds a live control sequence besides the ones the builders write
        for obj in text_objects(body["blocks"]):
            if obj["type"] == "mrkdwn":
                assert obj.get("verbatim") is True
                assert not CONTROL.search(our_markup_removed(obj["text"])), obj["text"]
        # AND the fallback text is escaped too
        assert not CONTROL.search(body["text"])
        assert "&lt;" in body["text"] or "&amp;" in body["text"]


def test_key_with_markup_is_shown_escaped(markup_summary: FindingSummary) -> None:
    body = sm.build_review_message(markup_summary, reason="r").to_dict()
    key_field = next(f for f in body["blocks"][2]["fields"] if f["text"].startswith("*Key*"))
    expected = "drop/&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; &lt;@U0ALICE&gt;.txt"
    assert key_field["text"] == f"*Key*\n`{expected}`"


FORMATTING_KEY = "drop/`*bold*` _it_ ~s~ @here`.txt"
PAYLOADS = ("*bold*", "_it_", "~s~")


def _outside_code_spans(text: str) -> str:
    return re.sub(r"`[^`]*`", "", text)


def test_a_key_with_backticks_is_one_code_span_in_the_key_field(markup_summary: FindingSummary) -> None:
    # GIVEN a key holding backticks and formatting characters (issue 12, item 5)
    summary = dataclasses.replace(markup_summary, key=FORMATTING_KEY)
    # WHEN its review message is built
    body = sm.build_review_message(summary, reason="r").to_dict()
    key_field = next(f for f in body["blocks"][2]["fields"] if f["text"].startswith("*Key*"))
    # THEN the Key field is one code span showing the key exactly but for its backticks (look-alikes)
    assert key_field["text"] == "*Key*\n`drop/\u02cb*bold*\u02cb _it_ ~s~ @here\u02cb.txt`"


def test_untrusted_formatting_never_formats_in_blocks_or_fallback(markup_summary: FindingSummary) -> None:
    # GIVEN a key with backticks and formatting, and the same formatting in every free-text argument
    summary = dataclasses.replace(
        markup_summary, key=FORMATTING_KEY, account_name="*acme* _prod_", team="~t~", origin="job `x` *y*"
    )
    for message in every_builder(summary, text="`*bold*` _it_ ~s~ @here"):
        body = message.to_dict()
        texts = [obj["text"] for obj in text_objects(body["blocks"]) if obj["type"] == "mrkdwn"]
        # THEN outside code spans no payload survives, and every backtick belongs to a span (in the fallback too)
        for text in [*texts, body["text"]]:
            rest = _outside_code_spans(text)
            assert "`" not in rest, text
            assert not any(payload in rest for payload in PAYLOADS), text
            assert "@here" not in rest, text
        # AND the fallback names the object as a code span
        assert "`s3://payments-prod-exports/drop/\u02cb*bold*\u02cb _it_ ~s~ @here\u02cb.txt`" in body["text"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(alphabet=st.sampled_from("ab/ *_~`<>&!@|\n"), min_size=1, max_size=40))
def test_any_key_stays_inside_its_code_spans(markup_summary: FindingSummary, key: str) -> None:
    # GIVEN any key made of Slack's special characters / WHEN its messages are built
    summary = dataclasses.replace(markup_summary, key=key)
    for message in (
        sm.build_review_message(summary, reason=key),
        sm.build_blocked_message(summary, approver="U0ALICE", at=AT, reason_code="changed", detail=key),
    ):
        body = message.to_dict()
        for text in [obj["text"] for obj in text_objects(body["blocks"]) if obj["type"] == "mrkdwn"] + [body["text"]]:
            # THEN every backtick opens or closes one of our spans, and nothing outside them is live markup
            rest = _outside_code_spans(text)
            assert "`" not in rest and not CONTROL.search(our_markup_removed(rest)), text
            for span in re.findall(r"`[^`]*`", text):
                assert "<" not in span and ">" not in span and "\n" not in span, span


def test_review_message_has_remediate_with_danger_and_confirm_and_dismiss(markup_summary: FindingSummary) -> None:
    # GIVEN a review message
    message = sm.build_review_message(markup_summary, reason="Personal data needs review")
    remediate, dismiss = buttons(message)
    # THEN Remediate is dangerous, confirmed, and the confirmation names the object (escaped)
    assert remediate.action_id == names.ACTION_REMEDIATE
    assert remediate.style == "danger"
    assert remediate.confirm is not None
    confirm = remediate.confirm.to_dict()
    assert confirm["style"] == "danger"
    assert "payments-prod-exports/drop/&lt;!channel&gt;" in confirm["text"]["text"]
    assert dismiss.action_id == names.ACTION_DISMISS
    # AND both buttons carry the finding id and nothing else
    assert remediate.value == dismiss.value == markup_summary.finding_id


def test_remediate_confirm_shortens_a_long_key() -> None:
    summary = summary_of("key-1000-bytes")
    (remediate, _) = buttons(sm.build_review_message(summary, reason="r"))
    assert remediate.confirm is not None
    text = remediate.confirm.to_dict()["text"]["text"]
    assert len(text) <= 300
    assert sm.ELLIPSIS in text


def test_only_review_and_quarantined_messages_have_buttons(markup_summary: FindingSummary) -> None:
    for message in every_builder(markup_summary):
        found = buttons(message)
        assert all(button.value == markup_summary.finding_id for button in found)
        actions = {button.action_id for button in found}
        assert actions in (set(), {names.ACTION_REMEDIATE, names.ACTION_DISMISS}, {names.ACTION_RESTORE})


MOVED = MoveFacts(CopyCheck.CHECKSUM, SourceFate.DELETED, at_key=AtKey.NOTHING, listed=True)


def test_quarantined_message_names_location_approver_and_what_the_mover_verified(
    markup_summary: FindingSummary,
) -> None:
    message = sm.build_quarantined_message(
        markup_summary,
        approver="U0ALICE",
        at=AT,
        quarantine_bucket="qbucket",
        quarantine_key="6a1b/drop/x.txt",
        older_versions=2,
        facts=dataclasses.replace(MOVED, older=2, at_key=AtKey.OLDER),
    )
    text = str(message.to_dict())
    assert "`s3://qbucket/6a1b/drop/x.txt`" in text
    assert "Approved <@U0ALICE>" in text
    assert "The copy was verified (size and checksum) before the source version was deleted." in text
    assert "2 older versions of this key remain in the bucket." in text
    assert "The key's current object is an older version, written before the finding's" in text
    (restore,) = buttons(message)
    assert restore.action_id == names.ACTION_RESTORE
    assert restore.value == markup_summary.finding_id
    assert restore.confirm is not None


def _context_texts(message: sm.SlackMessage) -> list[str]:
    return [
        element["text"]
        for block in message.block_dicts()
        if block["type"] == "context"
        for element in block["elements"]
    ]


def test_quarantined_message_shows_a_notice_escaped_above_the_finding_context(markup_summary: FindingSummary) -> None:
    # GIVEN a restore refused for a reason that carries Slack markup (an S3 key is untrusted text)
    notice = "Restore refused: s3://b/<!channel> & co now holds a different object"
    # WHEN the quarantined message is built with it
    message = sm.build_quarantined_message(
        markup_summary,
        approver="U0ALICE",
        at=AT,
        quarantine_bucket="q",
        quarantine_key="k",
        older_versions=0,
        notice=notice,
    )
    # THEN it is a context block of its own, escaped, between the outcome and the finding's context
    blocks = message.block_dicts()
    contexts = [index for index, block in enumerate(blocks) if block["type"] == "context"]
    assert len(contexts) == 2
    shown = blocks[contexts[0]]["elements"][0]
    assert shown["text"] == ":warning: Restore refused: s3://b/&lt;!channel&gt; &amp; co now holds a different object"
    assert shown["verbatim"] is True
    assert "Open in the Macie console" in str(blocks[contexts[1]])
    # AND the Restore button is still there
    assert [button.action_id for button in buttons(message)] == [names.ACTION_RESTORE]
    # AND without a notice there is only the finding's context
    plain = sm.build_quarantined_message(
        markup_summary, approver="U0ALICE", at=AT, quarantine_bucket="q", quarantine_key="k", older_versions=0
    )
    assert not any("Restore refused" in text for text in _context_texts(plain))
    assert sum(block["type"] == "context" for block in plain.block_dicts()) == 1


def test_a_retryable_failure_says_it_will_be_retried_and_what_to_do_if_it_keeps_failing(
    markup_summary: FindingSummary,
) -> None:
    # GIVEN a transient failure / WHEN rendered
    text = str(
        sm.build_failed_message(markup_summary, approver="U0ALICE", at=AT, error="SlowDown", retryable=True).to_dict()
    )
    # THEN it says the remediator retries it, and names the operator's command for the dead-letter case
    assert "Quarantine attempt failed" in text
    assert "it will be retried automatically" in text
    assert "dead-letter queue" in text
    assert f"`macie-chatops retry {markup_summary.finding_id}`" in text
    assert "will not be retried" not in text


def test_a_permanent_failure_says_it_will_not_be_retried_and_what_the_operator_must_do(
    markup_summary: FindingSummary,
) -> None:
    # GIVEN a permanent failure with a fix that names an account (and hostile text, escaped)
    message = sm.build_failed_message(
        markup_summary,
        approver="U0ALICE",
        at=AT,
        error="AccessDenied assuming arn:aws:iam::345678901234:role/macie-chatops-remediation",
        retryable=False,
        fix="deploy the macie-chatops-member-roles StackSet to account 345678901234 <!here>",
    )
    text = str(message.to_dict())
    # THEN it never promises a retry, and says what to fix and which command to run after
    assert "will not be retried automatically" in text
    assert "will be retried automatically" not in text
    assert "dead-letter" not in text
    assert (
        "*To quarantine it:* deploy the macie-chatops-member-roles StackSet to account 345678901234 &lt;!here&gt;, "
        f"then an operator runs `macie-chatops retry {markup_summary.finding_id}`." in text
    )
    assert "Nothing was deleted" in text
    assert "AccessDenied assuming" in text
    assert buttons(message) == []


def test_a_permanent_failure_without_a_fix_points_at_the_error(markup_summary: FindingSummary) -> None:
    text = str(
        sm.build_failed_message(markup_summary, approver=None, at=AT, error="no bucket", retryable=False).to_dict()
    )
    assert "*To quarantine it:* fix the cause of the error above, then an operator runs" in text
    assert "Approved automatically (policy)" in text


@pytest.mark.parametrize(
    ("count", "words"),
    [
        (0, "0 other versions of this key remain in the bucket."),
        (1, "1 other version of this key remains in the bucket."),
        (None, "Other versions of this key were not checked."),
    ],
)
def test_a_record_without_facts_says_only_what_its_count_meant(
    markup_summary: FindingSummary, count: int | None, words: str
) -> None:
    # GIVEN a record from before the mover kept its facts (its count was every other version of the key)
    message = sm.build_quarantined_message(
        markup_summary, approver=None, at=AT, quarantine_bucket="q", quarantine_key="k", older_versions=count
    )
    # THEN it claims no order and no deletion it cannot know
    text = str(message.to_dict())
    assert words in text
    assert "older version" not in text and "before the source version was deleted" not in text


@pytest.mark.parametrize(
    ("facts", "sentences"),
    [
        (MOVED, ("No other version of this key remains in the bucket.",)),
        (
            dataclasses.replace(MOVED, at_key=AtKey.NEWER, newer=1),
            (
                "1 newer version of this key remains in the bucket.",
                "The key's current object is a newer version, written after the finding's: it was left untouched.",
            ),
        ),
        (
            dataclasses.replace(MOVED, at_key=AtKey.NEWER, newer=2, older=1, other=1),
            (
                "2 newer versions, 1 older version and 1 other version (older or newer: not known) of this key "
                "remain in the bucket.",
                "The key's current object is a newer version, written after the finding's: it was left untouched.",
            ),
        ),
        (
            dataclasses.replace(MOVED, at_key=AtKey.OTHER, other=1),
            (
                "1 other version (older or newer: not known) of this key remains in the bucket.",
                "The key's current object is a version whose order is not known: it was not moved.",
            ),
        ),
        (
            dataclasses.replace(MOVED, older=3),
            ("3 older versions of this key remain in the bucket. None of them is current: the key shows no object.",),
        ),
        (
            dataclasses.replace(MOVED, source=SourceFate.KEPT, at_key=AtKey.FINDING, kept_version="v1"),
            (
                "No other version of this key remains in the bucket.",
                "The key's current object is still the finding's version.",
            ),
        ),
        (
            MoveFacts(CopyCheck.CHECKSUM, SourceFate.DELETED),
            ("What remains at this key was not checked (S3 would not list its versions).",),
        ),
    ],
    ids=["nothing-left", "newer-current", "mixed", "unknown-order", "older-noncurrent", "finding-current", "unlisted"],
)
def test_key_sentences(facts: MoveFacts, sentences: tuple[str, ...]) -> None:
    # GIVEN what the mover listed at the key / WHEN said / THEN these exact sentences, current vs older truthfully
    assert sm.key_sentences(facts) == sentences


KEPT_CURRENT = MoveFacts(CopyCheck.CHECKSUM, SourceFate.KEPT, "v1", AtKey.FINDING, listed=True)
REPLACED = MoveFacts(CopyCheck.CHECKSUM, SourceFate.GONE, at_key=AtKey.NEWER, newer=1, listed=True)


@pytest.mark.parametrize("code", sorted(sm.BLOCKED_REASONS))
@pytest.mark.parametrize("facts", [None, KEPT_CURRENT, REPLACED, MoveFacts(CopyCheck.CHECKSUM, SourceFate.UNKNOWN)])
def test_blocked_message_never_claims_a_quarantine(
    markup_summary: FindingSummary, code: str, facts: MoveFacts | None
) -> None:
    for bucket, key in ((None, None), ("qbucket", "qkey")):
        message = sm.build_blocked_message(
            markup_summary,
            approver="U0ALICE",
            at=AT,
            reason_code=code,
            detail="Object Lock",
            quarantine_bucket=bucket,
            quarantine_key=key,
            facts=None
            if facts is None
            else dataclasses.replace(facts, copy=CopyCheck.NONE)
            if bucket is None
            else facts,
        )
        text = str(message.to_dict())
        assert "quarantined" not in text.lower()
        assert buttons(message) == []
        if bucket is None:
            assert "Nothing was moved" in text
        else:
            assert "`s3://qbucket/qkey`" in text
            assert "payments-prod-exports" in text
        # AND it only ever tells someone to delete the finding's own version, and only when it is still there
        if "delete that version by hand" in text:
            assert facts is not None and facts.source is SourceFate.KEPT and bucket is not None


def test_blocked_locked_says_where_both_copies_are(markup_summary: FindingSummary) -> None:
    message = sm.build_blocked_message(
        markup_summary,
        approver=None,
        at=AT,
        reason_code="locked",
        quarantine_bucket="qbucket",
        quarantine_key="qkey",
        facts=KEPT_CURRENT,
    )
    text = str(message.to_dict())
    assert "Object Lock" in text
    assert "*Both copies are kept:* the finding's version is still at `s3://payments-prod-exports/" in text
    assert "(version `v1`) and a verified copy is at `s3://qbucket/qkey`." in text
    assert "Once the lock or permission allows it, delete that version by hand, by its version id." in text
    assert "automatically" in text


def test_blocked_after_an_overwrite_never_says_to_delete_the_new_object(markup_summary: FindingSummary) -> None:
    # GIVEN an unversioned key overwritten between the copy and the delete: the finding's bytes only in quarantine
    message = sm.build_blocked_message(
        markup_summary,
        approver="U0ALICE",
        at=AT,
        reason_code="changed",
        quarantine_bucket="qbucket",
        quarantine_key="qkey",
        facts=REPLACED,
    )
    text = str(message.to_dict())
    # THEN it says where the finding's bytes are, and that the object at the key now must not be deleted
    assert "*The finding's object is only in quarantine now:* a verified copy is at `s3://qbucket/qkey`" in text
    assert "Do not delete anything at the key by hand for this finding" in text
    assert "Delete the original" not in text and "stays at" not in text and "Both copies" not in text


def test_blocked_rejects_an_unknown_reason(markup_summary: FindingSummary) -> None:
    with pytest.raises(ValueError, match="unknown blocked reason"):
        sm.build_blocked_message(markup_summary, approver=None, at=AT, reason_code="tired")


@pytest.mark.parametrize(
    ("builder", "words"),
    [
        (lambda s: sm.build_approved_message(s, approver="U0ALICE", at=AT), ["Approved <@U0ALICE>", "quarantining"]),
        (lambda s: sm.build_approved_message(s, approver=sm.AUTO_APPROVER, at=AT), ["Approved automatically"]),
        (
            lambda s: sm.build_failed_message(s, approver="U0ALICE", at=AT, error="boom & <x>", retryable=True),
            ["boom &amp; &lt;x&gt;"],
        ),
        (lambda s: sm.build_dismissed_message(s, by="U0BOB", at=AT), ["Dismissed* by <@U0BOB>", "not moved"]),
        (lambda s: sm.build_restoring_message(s, by="U0BOB", at=AT), ["Restore requested* by <@U0BOB>"]),
        (
            lambda s: sm.build_restored_message(s, by="U0BOB", at=AT, restored_version_id="v9"),
            ["Restored* by <@U0BOB>", "as version `v9`"],
        ),
        (lambda s: sm.build_auto_message(s, reason="Credentials: auto"), ["Automatic quarantine started"]),
        (lambda s: sm.build_notify_message(s, reason="notify"), ["No action will be taken"]),
    ],
)
def test_state_wording(
    markup_summary: FindingSummary, builder: Callable[[FindingSummary], sm.SlackMessage], words: list[str]
) -> None:
    text = str(builder(markup_summary).to_dict())
    for word in words:
        assert word in text


def test_a_non_user_id_approver_is_escaped_not_mentioned(markup_summary: FindingSummary) -> None:
    text = str(sm.build_dismissed_message(markup_summary, by="<!channel>", at=AT).to_dict())
    assert "&lt;!channel&gt;" in text
    assert "<!channel>" not in text


def test_times_render_as_slack_dates_with_a_utc_fallback(markup_summary: FindingSummary) -> None:
    text = str(sm.build_dismissed_message(markup_summary, by="U0BOB", at="2026-11-20T10:20:00+01:00").to_dict())
    assert "|2026-11-20 09:20:00 UTC>" in text
    naive = str(sm.build_dismissed_message(markup_summary, by="U0BOB", at=datetime(2026, 1, 1, 0, 0)).to_dict())
    assert "|2026-01-01 00:00:00 UTC>" in naive
    garbage = str(sm.build_dismissed_message(markup_summary, by="U0BOB", at="<yesterday>").to_dict())
    assert "&lt;yesterday&gt;" in garbage


def test_block_ids_are_left_to_slack(markup_summary: FindingSummary) -> None:
    # Slack asks for fresh block ids on every update; leaving them unset lets Slack generate them.
    for message in every_builder(markup_summary):
        assert all("block_id" not in block for block in message.block_dicts())


def test_slack_message_rejects_empty_text_and_too_many_blocks(markup_summary: FindingSummary) -> None:
    message = sm.build_notify_message(markup_summary, reason="r")
    with pytest.raises(ValueError, match="fallback text"):
        sm.SlackMessage(text=" ", blocks=message.blocks)
    with pytest.raises(ValueError, match="at most 50 blocks"):
        sm.SlackMessage(text="t", blocks=message.blocks * 11)


def test_messages_survive_a_summary_round_trip(markup_summary: FindingSummary) -> None:
    # GIVEN the summary as the state table stores it / WHEN read back and rendered / THEN same message
    restored = FindingSummary.from_dict(markup_summary.to_dict())
    assert (
        sm.build_review_message(restored, reason="r").to_dict()
        == sm.build_review_message(markup_summary, reason="r").to_dict()
    )
