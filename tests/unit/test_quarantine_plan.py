"""The pure quarantine plan: keys, encodings, tags, verification choice, the idempotency table, the facts."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macie_chatops import quarantine_plan as plan
from macie_chatops.checksums import Checksum
from macie_chatops.quarantine_plan import (
    MAX_KEY_BYTES,
    METADATA_SOURCE_KEY,
    CopyState,
    InvalidKeyError,
    LockState,
    NextStep,
    ObjectView,
    Provenance,
    SourceState,
    Verification,
    decode_original_tags,
    encode_original_tags,
    tag_pairs,
    tagging_header,
)

FINDING_ID = "7d2a0b8e1c9f4a6b8d3e5f7a9b1c3d5e"
BUCKET = "payments-prod-exports"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]{0,256}$")
s3_keys = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=400)


# --- quarantine keys -------------------------------------------------------------------------------------


def test_short_key_is_namespaced_verbatim() -> None:
    # GIVEN a key with characters that must never be decoded or escaped
    key = "exports/2024 Q1/ü 😀 +%20&<>?#.csv"
    # WHEN the quarantine key is built
    # THEN it is the finding id, the bucket and the raw key, nothing changed
    assert plan.quarantine_key(FINDING_ID, BUCKET, key) == f"{FINDING_ID}/{BUCKET}/{key}"


def test_key_at_exactly_1024_bytes_is_kept() -> None:
    prefix = f"{FINDING_ID}/{BUCKET}/"
    key = "k" * (MAX_KEY_BYTES - len(prefix))
    assert plan.quarantine_key(FINDING_ID, BUCKET, key) == prefix + key


def test_long_key_is_cut_with_a_stable_hash() -> None:
    # GIVEN a 1,000-byte key (the prefix pushes the whole past 1,024 bytes)
    key = "d/" + "x" * 998
    # WHEN the quarantine key is built twice
    first = plan.quarantine_key(FINDING_ID, BUCKET, key)
    second = plan.quarantine_key(FINDING_ID, BUCKET, key)
    # THEN it fits exactly, ends with the key's SHA-256, and is the same each time
    assert first == second
    assert len(first.encode()) <= MAX_KEY_BYTES
    assert first.endswith("~" + hashlib.sha256(key.encode()).hexdigest())
    assert first.startswith(f"{FINDING_ID}/{BUCKET}/d/xxx")


def test_long_key_is_never_cut_inside_a_multibyte_character() -> None:
    # GIVEN a key of 4-byte emoji, so a byte cut would usually land inside one
    key = "😀" * 300
    for extra in range(4):  # shift the cut point across every byte of a character
        result = plan.quarantine_key(FINDING_ID + "x" * extra, BUCKET, key)
        # THEN the result is valid UTF-8 text within the limit, made of whole emoji before the hash
        encoded = result.encode("utf-8")
        assert len(encoded) <= MAX_KEY_BYTES
        head = result.split("/", 2)[2].rsplit("~", 1)[0]
        assert set(head) == {"😀"}


@given(key=s3_keys, finding=st.from_regex(r"[A-Za-z0-9_.-]{1,128}", fullmatch=True))
def test_quarantine_key_always_fits_and_is_distinct_per_key(key: str, finding: str) -> None:
    result = plan.quarantine_key(finding, BUCKET, key)
    assert len(result.encode("utf-8")) <= MAX_KEY_BYTES
    assert result.startswith(f"{finding}/{BUCKET}/")
    # A different key never collides (verbatim keys differ; cut keys differ in their hash)
    assert plan.quarantine_key(finding, BUCKET, key + "!") != result


def test_keys_s3_cannot_hold_are_refused() -> None:
    with pytest.raises(InvalidKeyError):
        plan.quarantine_key(FINDING_ID, BUCKET, "")
    with pytest.raises(InvalidKeyError, match="not valid Unicode"):
        plan.quarantine_key(FINDING_ID, BUCKET, "bad\ud800surrogate")


# --- key encoding and tags -------------------------------------------------------------------------------


@given(key=s3_keys)
def test_key_encoding_round_trips_and_is_tag_safe(key: str) -> None:
    encoded = plan.encode_key(key)
    assert plan.decode_key(encoded) == key
    assert re.fullmatch(r"[A-Za-z0-9_-]*", encoded)


def test_decode_key_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="base64url"):
        plan.decode_key("not*base64")


def test_tag_value_maps_disallowed_characters_and_caps_length() -> None:
    assert plan.tag_value("U0ALICE") == "U0ALICE"
    assert plan.tag_value("cli:alice") == "cli:alice"
    assert plan.tag_value("a<b>&c#d?e%f") == "a_b__c_d_e_f"
    assert plan.tag_value("é") == "e"
    assert len(plan.tag_value("x" * 500)) == 256


def _provenance(key: str, **changes: object) -> Provenance:
    base = plan.provenance(
        finding_id=FINDING_ID,
        bucket=BUCKET,
        key=key,
        version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        etag='"9b2cf535f27731c974343645a3985328"',
        size=1234,
        checksum=Checksum("CRC32", "Xg5djw=="),
        approver="U0ALICE",
        at=NOW,
    )
    return base.with_verified(Checksum("CRC32", "Xg5djw==")) if changes.get("verified") else base


@pytest.mark.parametrize("key", ["a.txt", "ü/😀 +%&<>?#", "k" * 192, "k" * 193, "d/" + "x" * 998])
def test_provenance_tags_fit_s3_rules_and_round_trip(key: str) -> None:
    # GIVEN the provenance of a copy, verified
    provenance = _provenance(key, verified=True)
    tag_set = provenance.tag_set()
    # THEN at most 10 tags, every value within S3's charset and length
    assert len(tag_set) <= 10
    for tag in tag_set:
        assert TAG_VALUE_RE.match(tag["Value"]), tag
        assert len(tag["Key"]) <= 128
    # AND reading them back gives the same provenance, which names this key and no other
    parsed = Provenance.from_tag_set(tag_set)
    assert parsed == provenance
    assert parsed.names_key(key)
    assert not parsed.names_key(key + "x")
    assert parsed.source_etag == "9b2cf535f27731c974343645a3985328"


def test_key_up_to_192_bytes_is_in_the_tag_longer_only_as_a_hash() -> None:
    short = {t["Key"]: t["Value"] for t in _provenance("k" * 192).tag_set()}
    long = {t["Key"]: t["Value"] for t in _provenance("k" * 193).tag_set()}
    assert plan.decode_key(short[plan.TAG_SOURCE_KEY_B64]) == "k" * 192
    assert plan.TAG_SOURCE_KEY_B64 not in long
    assert long[plan.TAG_SOURCE_KEY_SHA256] == hashlib.sha256(b"k" * 193).hexdigest()


def test_unversioned_source_is_tagged_null_and_tagging_header_encodes() -> None:
    provenance = plan.provenance(
        finding_id=FINDING_ID,
        bucket=BUCKET,
        key="a b",
        version_id="",
        etag="abc",
        size=1,
        checksum=None,
        approver="auto",
        at=NOW,
    )
    tags = {t["Key"]: t["Value"] for t in provenance.tag_set()}
    assert tags[plan.TAG_SOURCE_VERSION] == "null"
    assert tags[plan.TAG_SOURCE_CHECKSUM] == "none"
    assert tags[plan.TAG_QUARANTINED_AT] == "2026-01-02T03:04:05Z"
    assert "macie-chatops%3Afinding-id=" + FINDING_ID in provenance.tagging()


def test_objects_without_our_tags_have_no_provenance() -> None:
    assert Provenance.from_tag_set([{"Key": "team", "Value": "payments"}]) is None


# --- what a HEAD says ------------------------------------------------------------------------------------


def test_object_view_from_head() -> None:
    until = NOW + timedelta(days=1)
    view = ObjectView.from_head(
        {
            "ETag": '"abc"',
            "ContentLength": 7,
            "VersionId": "v1",
            "Metadata": {"owner": "x"},
            "ContentType": "text/csv",
            "CacheControl": "no-store",
            "ContentEncoding": "",
            "ChecksumCRC32": "Xg5djw==",
            "ObjectLockMode": "GOVERNANCE",
            "ObjectLockRetainUntilDate": until.replace(tzinfo=None),
            "ObjectLockLegalHoldStatus": "OFF",
        }
    )
    assert view.etag == "abc"
    assert view.content == {"ContentType": "text/csv", "CacheControl": "no-store"}
    assert view.checksum == Checksum("CRC32", "Xg5djw==")
    assert view.lock.active(NOW)
    assert not view.lock.active(until + timedelta(seconds=1))
    assert "GOVERNANCE retention until" in view.lock.describe(NOW)


def test_lock_states() -> None:
    assert LockState(legal_hold=True).active(NOW)
    assert LockState(legal_hold=True).describe(NOW) == "a legal hold"
    assert not LockState(mode="COMPLIANCE", retain_until=NOW - timedelta(days=1)).active(NOW)
    assert not LockState().active(NOW)
    assert LockState().describe(NOW) == "no lock"


# --- copy arguments --------------------------------------------------------------------------------------


def test_quarantine_metadata_adds_the_key_only_when_it_fits() -> None:
    metadata, added = plan.quarantine_metadata({"owner": "x"}, "a/b.txt")
    assert added and metadata == {"owner": "x", METADATA_SOURCE_KEY: plan.encode_key("a/b.txt")}
    # The source's own metadata is never dropped to make room
    big = {"blob": "v" * 2030}
    metadata, added = plan.quarantine_metadata(big, "a/b.txt")
    assert not added and metadata == big
    # Nor overwritten when it uses our name
    ours = {METADATA_SOURCE_KEY: "theirs"}
    assert plan.quarantine_metadata(ours, "k") == (ours, False)
    # A 1,000-byte key fits on its own (1,334 encoded characters)
    metadata, added = plan.quarantine_metadata({}, "x" * 1000)
    assert added and plan.metadata_bytes(metadata) <= plan.MAX_METADATA_BYTES


def test_restored_metadata_strips_only_our_entry() -> None:
    key = "a/b.txt"
    with_ours = {"owner": "x", METADATA_SOURCE_KEY: plan.encode_key(key)}
    assert plan.restored_metadata(with_ours, key) == {"owner": "x"}
    theirs = {METADATA_SOURCE_KEY: "their-own-value"}
    assert plan.restored_metadata(theirs, key) == theirs


def test_copy_checksum_algorithm() -> None:
    assert plan.copy_checksum_algorithm(Checksum("SHA256", "x"), multipart=False) == "SHA256"
    assert plan.copy_checksum_algorithm(None, multipart=False) == "CRC64NVME"
    assert plan.copy_checksum_algorithm(Checksum("CRC32", "x"), multipart=True) == "CRC64NVME"


def test_copy_extra_args_spell_out_metadata_and_never_encryption() -> None:
    view = ObjectView.from_head(
        {
            "ETag": '"abc"',
            "ContentLength": 1,
            "ContentType": "text/csv",
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": "arn:aws:kms:us-east-1:345678901234:key/source",
        }
    )
    args = plan.copy_extra_args(view, metadata={"a": "1"}, checksum_algorithm="CRC32", tagging="k=v", if_match="abc")
    assert args == {
        "MetadataDirective": "REPLACE",
        "Metadata": {"a": "1"},
        "ChecksumAlgorithm": "CRC32",
        "ContentType": "text/csv",
        "TaggingDirective": "REPLACE",
        "Tagging": "k=v",
        "CopySourceIfMatch": '"abc"',
    }


# --- verification ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "copy", "method"),
    [
        (Checksum("CRC32", "a"), Checksum("CRC32", "a"), Verification.S3),
        (Checksum("CRC64NVME", "a"), Checksum("CRC64NVME", "b"), Verification.S3),
        (Checksum("CRC32", "a"), Checksum("CRC64NVME", "b"), Verification.STREAM_COPY),
        (Checksum("SHA256", "a"), None, Verification.STREAM_COPY),
        (Checksum("CRC32C", "a"), Checksum("CRC64NVME", "b"), Verification.STREAM_BOTH),
        (None, Checksum("CRC64NVME", "b"), Verification.STREAM_BOTH),
        (None, None, Verification.STREAM_BOTH),
    ],
)
def test_verification_method(expected: Checksum | None, copy: Checksum | None, method: Verification) -> None:
    assert plan.verification_method(expected, copy) is method


def test_compare() -> None:
    ok = plan.compare(Checksum("CRC32", "a"), Checksum("CRC32", "a"), Verification.S3)
    assert ok.ok and ok.checksum == Checksum("CRC32", "a")
    bad = plan.compare(Checksum("CRC32", "a"), Checksum("CRC32", "b"), Verification.S3)
    assert not bad.ok and "differs" in bad.detail
    other = plan.compare(Checksum("CRC32", "a"), Checksum("SHA256", "a"), Verification.S3)
    assert not other.ok and "algorithms differ" in other.detail


# --- the idempotency table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "copy", "step"),
    [
        (SourceState.PRESENT, CopyState.ABSENT, NextStep.COPY),
        (SourceState.PRESENT, CopyState.UNVERIFIED, NextStep.VERIFY_THEN_DELETE),
        (SourceState.PRESENT, CopyState.VERIFIED, NextStep.VERIFY_THEN_DELETE),
        (SourceState.MISSING, CopyState.ABSENT, NextStep.BLOCK_MISSING),
        (SourceState.MISSING, CopyState.UNVERIFIED, NextStep.CONFIRM_COPY),
        (SourceState.MISSING, CopyState.VERIFIED, NextStep.CONFIRM_COPY),
        (SourceState.CHANGED, CopyState.ABSENT, NextStep.BLOCK_CHANGED),
        (SourceState.CHANGED, CopyState.UNVERIFIED, NextStep.CONFIRM_COPY),
        (SourceState.CHANGED, CopyState.VERIFIED, NextStep.CONFIRM_COPY),
        (SourceState.PRESENT, CopyState.FOREIGN, NextStep.FAIL_FOREIGN),
        (SourceState.MISSING, CopyState.FOREIGN, NextStep.FAIL_FOREIGN),
    ],
)
def test_next_step_table(source: SourceState, copy: CopyState, step: NextStep) -> None:
    assert plan.next_step(source, copy) is step


def test_next_step_covers_every_combination() -> None:
    for source in SourceState:
        for copy in CopyState:
            assert isinstance(plan.next_step(source, copy), NextStep)


def test_copy_state_classification() -> None:
    key = "a/b.txt"
    unverified = _provenance(key)
    verified = _provenance(key, verified=True)

    def state(p: Provenance | None, exists: bool = True) -> CopyState:
        return plan.copy_state(p, finding_id=FINDING_ID, bucket=BUCKET, key=key, exists=exists)

    assert state(None, exists=False) is CopyState.ABSENT
    assert state(None) is CopyState.UNVERIFIED  # untagged: a crash between copy and tagging
    assert state(unverified) is CopyState.UNVERIFIED
    assert state(verified) is CopyState.VERIFIED
    assert plan.copy_state(verified, finding_id="other", bucket=BUCKET, key=key, exists=True) is CopyState.FOREIGN
    assert plan.copy_state(verified, finding_id=FINDING_ID, bucket="x", key=key, exists=True) is CopyState.FOREIGN
    assert plan.copy_state(verified, finding_id=FINDING_ID, bucket=BUCKET, key="c", exists=True) is CopyState.FOREIGN


def test_source_state() -> None:
    view = ObjectView.from_head({"ETag": '"abc"', "ContentLength": 1})
    assert plan.source_state(None, finding_etag="abc") is SourceState.MISSING
    assert plan.source_state(view, finding_etag="abc") is SourceState.PRESENT
    assert plan.source_state(view, finding_etag='"abc"') is SourceState.PRESENT
    assert plan.source_state(view, finding_etag="def") is SourceState.CHANGED


T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


def _version(
    version_id: str, *, at: datetime, latest: bool = False, key: str = "a", etag: str = "e"
) -> dict[str, object]:
    return {"Key": key, "VersionId": version_id, "IsLatest": latest, "LastModified": at, "ETag": f'"{etag}"'}


def test_survey_reads_the_exact_key_only_and_orders_by_the_findings_position_when_it_is_listed() -> None:
    # GIVEN the finding's version "2" still listed between a newer (current) and an older one, all in one second,
    # and versions of longer keys in the same listing
    versions = [
        _version("3", at=T0, latest=True),
        _version("2", at=T0),
        _version("1", at=T0),
        _version("9", at=T0, latest=True, key="a/b"),
        _version("8", at=T0, latest=True, key="ab"),
    ]
    # WHEN surveyed
    survey = plan.survey_key(versions, [], key="a", finding_version="2", finding_etag="e", finding_modified=None)
    # THEN S3's order (newest first) says which is newer; other keys are not counted
    assert survey == plan.KeySurvey(plan.AtKey.NEWER, "2", older=1, newer=1, other=0)


@pytest.mark.parametrize(
    ("modified", "expected"),
    [
        (T0 + timedelta(seconds=1), plan.AtKey.NEWER),
        (T0 - timedelta(seconds=1), plan.AtKey.OLDER),
        (T0 + timedelta(milliseconds=400), plan.AtKey.OTHER),  # the same second: the order is not claimed
    ],
)
def test_survey_orders_by_time_in_whole_seconds_when_the_findings_version_is_gone(
    modified: datetime, expected: plan.AtKey
) -> None:
    # GIVEN the finding's version deleted and one other version left, current
    survey = plan.survey_key(
        [_version("x", at=modified, latest=True)],
        [],
        key="a",
        finding_version="moved",
        finding_etag="e",
        finding_modified=T0 + timedelta(milliseconds=100),
    )
    # THEN its order is told only when the seconds differ
    assert survey.at_key is expected and survey.kept_version is None
    assert (survey.older, survey.newer, survey.other) == (
        int(expected is plan.AtKey.OLDER),
        int(expected is plan.AtKey.NEWER),
        int(expected is plan.AtKey.OTHER),
    )


def test_survey_without_a_time_claims_no_order() -> None:
    survey = plan.survey_key(
        [_version("x", at=T0, latest=True)],
        [],
        key="a",
        finding_version="gone",
        finding_etag="e",
        finding_modified=None,
    )
    assert survey == plan.KeySurvey(plan.AtKey.OTHER, None, other=1)


def test_survey_of_an_unversioned_key_knows_the_null_version_by_its_etag() -> None:
    # GIVEN an unversioned finding (no version id) whose key now holds another object (version null, same second)
    overwritten = [_version("null", at=T0, latest=True, etag="new")]
    # WHEN surveyed / THEN the other object replaced the finding's in place: newer, and the finding's is gone
    survey = plan.survey_key(overwritten, [], key="a", finding_version=None, finding_etag="old", finding_modified=T0)
    assert survey == plan.KeySurvey(plan.AtKey.NEWER, None, newer=1)
    # AND the same null version with the finding's ETag is the finding's, kept
    kept = plan.survey_key(
        [_version("null", at=T0, latest=True, etag="old")], [], key="a", finding_version="", finding_etag='"old"',
        finding_modified=T0,
    )  # fmt: skip
    assert kept == plan.KeySurvey(plan.AtKey.FINDING, "null")


def test_survey_of_a_null_version_kept_under_a_newer_one() -> None:
    # GIVEN a bucket versioned since: a new version on top of the finding's null version
    versions = [_version("v2", at=T0, latest=True, etag="new"), _version("null", at=T0, etag="old")]
    survey = plan.survey_key(versions, [], key="a", finding_version=None, finding_etag="old", finding_modified=T0)
    assert survey == plan.KeySurvey(plan.AtKey.NEWER, "null", newer=1)


def test_survey_with_a_delete_marker_on_top_shows_nothing_at_the_key() -> None:
    versions = [_version("1", at=T0 - timedelta(seconds=5))]
    markers = [{"Key": "a", "VersionId": "m", "IsLatest": True, "LastModified": T0 + timedelta(seconds=5)}]
    survey = plan.survey_key(versions, markers, key="a", finding_version="2", finding_etag="e", finding_modified=T0)
    assert survey == plan.KeySurvey(plan.AtKey.NOTHING, None, older=1)
    assert plan.survey_key([], [], key="a", finding_version="2", finding_etag="e", finding_modified=T0) == (
        plan.KeySurvey(plan.AtKey.NOTHING, None)
    )


def test_move_facts_from_a_survey_trust_the_listing_over_the_attempt() -> None:
    kept = plan.KeySurvey(plan.AtKey.FINDING, "v1")
    gone = plan.KeySurvey(plan.AtKey.NOTHING, None)
    # a version still listed is KEPT even if this attempt's delete said it went
    assert plan.MoveFacts.of(plan.CopyCheck.CHECKSUM, kept, deleted=True, unlisted=plan.SourceFate.DELETED).source is (
        plan.SourceFate.KEPT
    )
    assert plan.MoveFacts.of(plan.CopyCheck.CHECKSUM, gone, deleted=True, unlisted=plan.SourceFate.DELETED).source is (
        plan.SourceFate.DELETED
    )
    assert (
        plan.MoveFacts.of(plan.CopyCheck.CHECKSUM, gone, unlisted=plan.SourceFate.KEPT).source is plan.SourceFate.GONE
    )
    # without a listing, the attempt's own calls say it, and nothing is claimed about the key
    unlisted = plan.MoveFacts.of(plan.CopyCheck.NONE, None, unlisted=plan.SourceFate.UNKNOWN)
    assert (unlisted.source, unlisted.at_key, unlisted.listed) == (plan.SourceFate.UNKNOWN, plan.AtKey.UNKNOWN, False)


def test_move_facts_round_trip_and_reject_garbage() -> None:
    facts = plan.MoveFacts(
        plan.CopyCheck.SIZE_ONLY, plan.SourceFate.KEPT, "null", plan.AtKey.NEWER, older=2, newer=1, other=0, listed=True
    )
    assert plan.MoveFacts.decode(facts.encode()) == facts
    assert facts.noncurrent() == (2, 0, 0)
    for garbage in ("", "{}", "[]", '{"copy": "x"}', facts.encode().replace('"older":2', '"older":-1')):
        with pytest.raises(ValueError):
            plan.MoveFacts.decode(garbage)


def test_original_tags_round_trip_through_the_record_and_the_tagging_header() -> None:
    # GIVEN an object's tags as S3 lists them (order kept, characters that need encoding)
    pairs = tag_pairs([{"Key": "data class", "Value": "pii & card"}, {"Key": "owner", "Value": "ünïcode=yes"}])
    # WHEN they are kept on the record and read back
    text = encode_original_tags(pairs)
    # THEN they are the same pairs, and the tagging header encodes them as S3 takes them
    assert decode_original_tags(text) == pairs == (("data class", "pii & card"), ("owner", "ünïcode=yes"))
    assert tagging_header(pairs) == "data+class=pii+%26+card&owner=%C3%BCn%C3%AFcode%3Dyes"
    assert decode_original_tags(encode_original_tags(())) == ()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"team": "payments"}',
        '[["team"]]',
        '[["team", 1]]',
        '[["a", "b", "c"]]',
        "[" + ",".join(f'["k{n}", "v"]' for n in range(11)) + "]",
    ],
    ids=["not-json", "object", "one-part", "not-a-string", "three-parts", "eleven-tags"],
)
def test_unreadable_original_tags_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="original tags"):
        decode_original_tags(text)
