"""One object version, one remediation: the version's identity and claim key, the duplicate's texts and
messages, its record fields and the intake's completion rule (pure parts; the flows are in tests/functional)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from macie_chatops import names
from macie_chatops import slack_messages as sm
from macie_chatops.config import Action
from macie_chatops.intake import intake_complete
from macie_chatops.states import FINAL_STATES, State, can_transition
from macie_chatops.store import FindingRecord
from macie_chatops.summary import OBJECT_CLAIM_PREFIX, FindingSummary, ObjectVersion
from tests.unit.test_slack_messages import (
    CONTROL,
    HOSTILE,
    assert_within_limits,
    our_markup_removed,
    summary_of,
    text_objects,
)

FIRST = "6a1b2c3d4e5f60718293a4b5c6d70005"
CLAIM_KEY = re.compile(rf"^{OBJECT_CLAIM_PREFIX}[0-9a-f]{{64}}$")


# -- the identity ------------------------------------------------------------------------------------------


def test_a_job_and_automated_discovery_naming_one_version_share_its_claim() -> None:
    # GIVEN the same object version reported by a classification job and by automated discovery
    job, discovery = summary_of("personal-review"), summary_of("automated-discovery-null-job")
    assert job.finding_id != discovery.finding_id and job.origin != discovery.origin
    # THEN they are one object version, with one claim key
    assert job.object_version == discovery.object_version
    assert job.object_version.version == job.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert CLAIM_KEY.match(job.object_version.claim_key)
    assert job.object_version.claim_key == discovery.object_version.claim_key


def test_an_unversioned_object_is_named_by_its_etag_and_write_time() -> None:
    # GIVEN an object in an unversioned bucket (Macie's versionId is "")
    summary = summary_of("unversioned-bucket")
    assert summary.version_id == ""
    # THEN its version is its ETag and when it was written (epoch seconds), distinct from the versioned key's
    assert summary.object_version.version == "etag:0d4a5d0e3f5b3c2e1a7f8b9c0d1e2f3a@1795168691"
    assert summary.object_version.claim_key != summary_of("personal-review").object_version.claim_key


@pytest.mark.parametrize(
    ("etag", "last_modified", "same"),
    [
        ('"0d4a5d0e3f5b3c2e1a7f8b9c0d1e2f3a"', "2026-11-20T09:58:11Z", True),  # S3's quoted ETag: the same
        ("0d4a5d0e3f5b3c2e1a7f8b9c0d1e2f3a", "2026-11-20T09:58:11+00:00", True),  # another spelling of the moment
        ("0d4a5d0e3f5b3c2e1a7f8b9c0d1e2f3a", "2026-11-20T10:58:11+01:00", True),
        ("0d4a5d0e3f5b3c2e1a7f8b9c0d1e2f3a", "2026-11-21T09:58:11Z", False),  # the same bytes written again
        ("ffffffffffffffffffffffffffffffff", "2026-11-20T09:58:11Z", False),  # other content under the key
    ],
)
def test_unversioned_identity_ignores_spelling_and_tells_writes_apart(
    etag: str, last_modified: str, same: bool
) -> None:
    summary = summary_of("unversioned-bucket")
    other = dataclasses.replace(summary, finding_id="other", etag=etag, last_modified=last_modified)
    assert (other.object_version.claim_key == summary.object_version.claim_key) is same


def test_an_unversioned_object_without_a_write_time_is_named_by_its_etag_alone() -> None:
    summary = dataclasses.replace(summary_of("unversioned-bucket"), last_modified="")
    assert summary.object_version.version == "etag:0d4a5d0e3f5b3c2e1a7f8b9c0d1e2f3a"
    assert dataclasses.replace(summary, last_modified="not a time").object_version == summary.object_version


def test_the_claim_key_has_a_fixed_size_for_the_longest_keys_and_no_ambiguous_joins() -> None:
    # GIVEN a 1,024-byte key (S3's longest) and identities that a naive join of the fields would confuse
    longest = ObjectVersion("345678901234", "bucket", "é" * 512, "v1")
    assert len(longest.key.encode()) == 1024
    assert CLAIM_KEY.match(longest.claim_key)
    confusable = [
        ObjectVersion("345678901234", "a", "b/c", "v1"),
        ObjectVersion("345678901234", "a/b", "c", "v1"),
        ObjectVersion("345678901234", "a", "b/c/v1", ""),
        ObjectVersion("345678901234", 'a","b', "c", "v1"),
        ObjectVersion("111111111111", "a", "b/c", "v1"),
    ]
    # THEN every identity has its own key, of the same length, in the claims' own namespace
    assert len({version.claim_key for version in confusable}) == len(confusable)
    assert {len(version.claim_key) for version in [*confusable, longest]} == {len(OBJECT_CLAIM_PREFIX) + 64}
    assert "#" not in FIRST  # finding ids never hold '#': a claim key can never be a finding's


# -- the state ---------------------------------------------------------------------------------------------


def test_duplicate_is_final_and_reached_from_received_approved_and_failed_only() -> None:
    assert State.DUPLICATE in FINAL_STATES
    assert {s for s in State if can_transition(s, State.DUPLICATE)} == {State.APPROVED, State.FAILED, State.RECEIVED}
    assert not [s for s in State if can_transition(State.DUPLICATE, s)]


# -- texts and messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "quarantine", "text"),
    [
        ("PENDING_APPROVAL", None, f"already awaiting approval under finding {FIRST}"),
        ("APPROVED", None, f"already approved for quarantine under finding {FIRST}"),
        (
            "QUARANTINED",
            {"bucket": "qb", "key": f"{FIRST}/b/k"},
            f"already quarantined under finding {FIRST}, now at s3://qb/{FIRST}/b/k",
        ),
        ("QUARANTINED", None, f"already quarantined under finding {FIRST}"),
        (
            "RESTORE_REQUESTED",
            {"bucket": "qb", "key": "k"},
            f"already handled under finding {FIRST} (restore requested), now at s3://qb/k",
        ),
        (
            "BLOCKED",
            {"bucket": "qb", "key": "k"},
            f"already handled under finding {FIRST} (blocked), a copy kept at s3://qb/k",
        ),
        ("BLOCKED", None, f"already handled under finding {FIRST} (blocked)"),
        ("DISMISSED", None, f"already dismissed under finding {FIRST}"),
        ("RESTORED", {"bucket": "qb", "key": "k"}, f"already handled under finding {FIRST} (restored)"),
        ("RECEIVED", None, f"already being handled under finding {FIRST}"),
        (None, None, f"already handled under finding {FIRST}"),
    ],
)
def test_already_handled_says_what_became_of_the_version_and_where_it_is(
    state: str | None, quarantine: dict[str, str] | None, text: str
) -> None:
    assert sm.already_handled(FIRST, state, quarantine) == text


def _messages(summary: FindingSummary, detail: str) -> list[sm.SlackMessage]:
    return [
        sm.build_duplicate_reply(summary, first_finding_id=FIRST),
        sm.build_duplicate_message(
            summary, approver="U0ALICE", at="2026-11-21T08:00:00Z", first_finding_id=FIRST, detail=detail
        ),
        sm.build_duplicate_message(
            summary, approver=None, at="2026-11-21T08:00:00Z", first_finding_id=FIRST, detail=detail
        ),
    ]


@pytest.mark.parametrize("event_name", ["automated-discovery-null-job", "key-1000-bytes", "key-slack-markup"])
def test_duplicate_messages_stay_within_slack_limits_and_name_both_findings(event_name: str) -> None:
    summary = summary_of(event_name)
    detail = sm.already_handled(
        FIRST, "QUARANTINED", {"bucket": "qb", "key": f"{FIRST}/{summary.bucket}/{summary.key}"}
    )
    for message in _messages(summary, detail):
        body = assert_within_limits(message)
        text = json.dumps(body, ensure_ascii=False)
        assert FIRST in text and summary.finding_id in text


def test_the_thread_reply_says_which_finding_reported_the_version_again_and_how() -> None:
    summary = summary_of("automated-discovery-null-job")
    reply = sm.build_duplicate_reply(summary, first_finding_id=FIRST)
    (section, context) = reply.block_dicts()
    assert section["text"]["text"].startswith(
        f"Macie reported this object version again: finding `{summary.finding_id}` (automated sensitive data discovery"
    )
    assert f"It is recorded as a duplicate of `{FIRST}`" in section["text"]["text"]
    assert "Open in the Macie console" in context["elements"][0]["text"]
    assert reply.text == f"Macie reported this object version again: finding {summary.finding_id}"
    assert not [b for b in reply.block_dicts() if b["type"] == "actions"]


def test_the_duplicate_message_says_not_moved_again_and_where_the_version_is() -> None:
    summary = summary_of("personal-review")
    detail = sm.already_handled(FIRST, "QUARANTINED", {"bucket": "qb", "key": "k"})
    body = sm.build_duplicate_message(
        summary, approver="U0ALICE", at="2026-11-21T08:00:00Z", first_finding_id=FIRST, detail=detail
    ).to_dict()
    text = json.dumps(body, ensure_ascii=False)
    assert (
        f"*Not moved again:* this object version is already quarantined under finding {FIRST}, now at s3://qb/k."
        in text
    )
    assert "neither the source bucket nor the quarantine bucket" not in text
    assert not [b for b in body["blocks"] if b["type"] == "actions"]


def test_untrusted_text_in_a_duplicate_stays_inert() -> None:
    # GIVEN a key and an origin full of Slack control sequences, and a quarantine key holding them too
    summary = dataclasses.replace(summary_of("personal-review"), key=HOSTILE, origin=HOSTILE)
    detail = sm.already_handled(FIRST, "QUARANTINED", {"bucket": "qb", "key": HOSTILE})
    # THEN no text of the reply or of the message can mention, link or notify
    for message in _messages(summary, detail):
        body = message.to_dict()
        for obj in text_objects(body["blocks"]):
            assert not CONTROL.search(our_markup_removed(obj["text"])), obj["text"]
        assert not CONTROL.search(body["text"])


# -- the record and the intake's completion ----------------------------------------------------------------


def raw(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        names.STATE_TABLE_KEY: "f-2",
        "state": "DUPLICATE",
        names.PENDING_INDEX_SORT: "2026-11-27T12:00:00.000000Z",
        "updated_at": "2026-11-27T12:00:00.000000Z",
    }
    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in {**base, **values}.items()}


def test_a_duplicate_item_parses_its_first_finding_thread_and_reply() -> None:
    record = FindingRecord.from_item(
        raw(duplicate_of=FIRST, duplicate_thread={"channel": "C0PAYMENTS", "ts": "1.2"}, duplicate_reply_ts="1.3")
    )
    assert (record.state, record.duplicate_of, record.duplicate_reply_ts) == (State.DUPLICATE, FIRST, "1.3")
    assert record.duplicate_thread == {"channel": "C0PAYMENTS", "ts": "1.2"}
    bare = FindingRecord.from_item(raw())
    assert (bare.duplicate_of, bare.duplicate_thread, bare.duplicate_reply_ts) == (None, None, None)


def _duplicate(**fields: Any) -> FindingRecord:
    return FindingRecord(
        finding_id="f-2", state=State.DUPLICATE, received_at="t", updated_at="t", action=Action.REVIEW, **fields
    )


@pytest.mark.parametrize(
    ("candidate", "complete"),
    [
        (_duplicate(duplicate_of=FIRST), True),  # the first finding had no message: no reply due
        (_duplicate(duplicate_of=FIRST, duplicate_thread={"channel": "C", "ts": "1.2"}), False),  # reply due
        (
            _duplicate(duplicate_of=FIRST, duplicate_thread={"channel": "C", "ts": "1.2"}, duplicate_reply_ts="1.3"),
            True,
        ),
    ],
)
def test_a_duplicates_intake_is_complete_once_its_reply_is_recorded_or_none_is_due(
    candidate: FindingRecord, complete: bool
) -> None:
    assert intake_complete(candidate) is complete
