"""Exemptions: what a scope covers (prefix boundaries, unicode keys, versions, types), expiry at the boundary
second, the decision they turn into IGNORED, accounts.yaml's `exemptions:` (located errors, the one-year
limit, expired ones) and the dismissal form's values read as untrusted input."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from macie_chatops.config import Action, ConfigError, expired_exemptions, load_config, parse_config
from macie_chatops.decision import Decision
from macie_chatops.dismissal import SelectedOption, StateValue, Submission, read_values
from macie_chatops.exemptions import (
    CONFIG_SOURCE,
    Exemption,
    Scope,
    Target,
    end_of,
    exempted,
    first_covering,
    from_config,
    parent_prefix,
    scoped,
    until_text,
)
from macie_chatops.states import State
from macie_chatops.store import FindingRecord
from macie_chatops.summary import FindingSummary
from tests.conftest import EVENTS_DIR, ROOT

NOW = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
ACCOUNT = "345678901234"
PERSONAL = "SensitiveData:S3Object/Personal"
CREDENTIALS = "SensitiveData:S3Object/Credentials"


def target(key: str = "exports/2026/a.csv", *, version: str = "v1", finding_type: str = PERSONAL) -> Target:
    return Target(ACCOUNT, "payments-data", key, version, finding_type)


def exemption(scope: Scope, key: str = "", *, until: datetime = NOW + timedelta(days=7), **fields: object) -> Exemption:
    values: dict[str, object] = {
        "id": f"{ACCOUNT}-0123456789ab",
        "account_id": ACCOUNT,
        "bucket": "payments-data",
        "scope": scope,
        "key": key,
        "version": "v1" if scope is Scope.FINDING else "",
        "until": until,
        "reason": "test fixtures",
        "created_by": "U0ALICE",
        "created_at": NOW - timedelta(days=1),
    }
    values.update(fields)
    return Exemption(**values)  # type: ignore[arg-type]


# --- what a scope covers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "covered"),
    [
        ("exports/2026/a.csv", True),
        ("exports/2026/deeper/b.csv", True),
        ("exports/2026", False),  # the folder's name without its slash is another key
        ("exports/20261/a.csv", False),  # a sibling that starts with the same characters
        ("exports/2026-old/a.csv", False),
        ("Exports/2026/a.csv", False),  # S3 keys are case-sensitive
        ("other/exports/2026/a.csv", False),
    ],
)
def test_a_prefix_covers_its_folder_and_nothing_beside_it(key: str, covered: bool) -> None:
    # GIVEN an exemption of the prefix exports/2026/
    prefix = exemption(Scope.PREFIX, "exports/2026/")
    # WHEN a finding's key is compared with it THEN only keys inside the folder are covered
    assert prefix.covers(target(key)) is covered


def test_unicode_keys_are_compared_code_point_by_code_point_as_s3_does() -> None:
    # GIVEN an exemption of the prefix "café/" written with a precomposed é (NFC)
    nfc = exemption(Scope.PREFIX, "caf\u00e9/")
    # THEN a key under the same characters is covered, one written with e + combining accent (NFD) is not,
    # because S3 stores them as two different keys
    assert nfc.covers(target("caf\u00e9/r\u00e9sum\u00e9 😀.pdf"))
    assert not nfc.covers(target("cafe\u0301/r\u00e9sum\u00e9.pdf"))
    # AND an object scope matches its exact unicode key only
    obj = exemption(Scope.OBJECT, "données/客户/名单.csv")
    assert obj.covers(target("données/客户/名单.csv", version="any"))
    assert not obj.covers(target("données/客户/名单.csv.bak"))


def test_scopes_from_one_version_to_the_whole_bucket() -> None:
    # GIVEN one exemption of each scope, made for the finding on exports/2026/a.csv version v1
    base = target()
    made = {
        scope: scoped(scope, base, exemption_id="x", until=NOW + timedelta(days=1), reason="r", by="U0A", at=NOW)
        for scope in Scope
    }
    # THEN the finding scope covers that version only; object every version; prefix the folder; bucket all of it
    assert made[Scope.FINDING].covers(base) and not made[Scope.FINDING].covers(target(version="v2"))
    assert made[Scope.OBJECT].covers(target(version="v2")) and not made[Scope.OBJECT].covers(target("exports/2026/b"))
    assert made[Scope.PREFIX].key == "exports/2026/" and made[Scope.PREFIX].covers(target("exports/2026/b"))
    assert made[Scope.BUCKET].covers(target("anything/else"))
    # AND none covers another account, another bucket, or another finding type (a dismissal exempts its type)
    for made_one in made.values():
        assert not made_one.covers(Target("999999999999", "payments-data", base.key, "v1", PERSONAL))
        assert not made_one.covers(Target(ACCOUNT, "payments-other", base.key, "v1", PERSONAL))
        assert not made_one.covers(target(finding_type=CREDENTIALS))


def test_a_key_at_the_bucket_root_has_no_prefix_to_exempt() -> None:
    assert parent_prefix("a.csv") is None
    assert parent_prefix("/a.csv") is None  # a leading slash is part of the name, not a folder
    assert parent_prefix("a/b/c.csv") == "a/b/"
    with pytest.raises(ValueError, match="no prefix"):
        scoped(Scope.PREFIX, target("a.csv"), exemption_id="x", until=NOW, reason="r", by="U0A", at=NOW)


# --- expiry ---------------------------------------------------------------------------------------------------


def test_an_exemption_runs_out_at_its_until_second_exactly() -> None:
    # GIVEN an exemption until 10:00:00
    until = datetime(2026, 12, 12, 10, 0, 0, tzinfo=UTC)
    limited = exemption(Scope.BUCKET, until=until)
    # THEN one microsecond before it is active, and at the second itself it has run out
    assert limited.active(until - timedelta(microseconds=1))
    assert not limited.active(until)
    assert not limited.active(until + timedelta(seconds=1))
    assert first_covering([limited], target(), until - timedelta(seconds=1)) is limited
    assert first_covering([limited], target(), until) is None


def test_a_revoked_exemption_covers_nothing() -> None:
    revoked = exemption(Scope.BUCKET, revoked_by="U0BOB", revoked_at=NOW - timedelta(minutes=1))
    assert revoked.covers(target()) and not revoked.active(NOW)


def test_a_date_runs_to_the_end_of_that_day_utc() -> None:
    assert end_of(date(2027, 3, 1)) == datetime(2027, 3, 2, tzinfo=UTC)
    assert until_text(end_of(date(2027, 3, 1))) == "2027-03-01 (end of day, UTC)"
    assert until_text(datetime(2027, 3, 1, 9, 30, tzinfo=UTC)) == "2027-03-01 09:30:00 UTC"


# --- the decision ---------------------------------------------------------------------------------------------


def test_a_covered_review_becomes_ignored_with_who_until_and_why() -> None:
    # GIVEN a review decision and an active exemption of the finding's prefix
    review = Decision(Action.REVIEW, "Personal -> review", "payments-prod", "payments", "C0PAYMENTS", ("U0ALICE",))
    active = exemption(Scope.PREFIX, "exports/2026/", until=datetime(2026, 12, 12, 10, 0, tzinfo=UTC))
    # WHEN the exemption is applied
    decided = exempted(review, target(), [active], NOW)
    # THEN it is IGNORED, saying who exempted it, until when and why; the routing is kept for the record
    assert decided.action is Action.IGNORE
    assert decided.reason.startswith("exempted by U0ALICE until 2026-12-12 10:00:00 UTC: test fixtures")
    assert (decided.team, decided.channel) == ("payments", "C0PAYMENTS")
    # AND once it has run out, the same finding is reviewed again
    assert exempted(review, target(), [active], active.until) is review


def test_reject_and_ignore_are_never_rewritten_by_an_exemption() -> None:
    rejected = Decision(Action.REJECT, "region not configured")
    ignored = Decision(Action.IGNORE, "below min_severity")
    active = exemption(Scope.BUCKET)
    assert exempted(rejected, target(), [active], NOW) is rejected
    assert exempted(ignored, target(), [active], NOW) is ignored


def test_the_longest_running_exemption_is_the_one_named() -> None:
    short = exemption(Scope.BUCKET, id=f"{ACCOUNT}-aaaaaaaaaaaa", until=NOW + timedelta(days=1))
    long = exemption(Scope.PREFIX, "exports/", id=f"{ACCOUNT}-bbbbbbbbbbbb", until=NOW + timedelta(days=30))
    assert first_covering([short, long], target(), NOW) is long


# --- accounts.yaml --------------------------------------------------------------------------------------------

EXAMPLE = (ROOT / "accounts.yaml").read_text(encoding="utf-8")


def with_exemptions(block: str) -> str:
    return EXAMPLE + "exemptions:\n" + block


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "accounts.yaml", now=NOW)
    return [str(issue) for issue in caught.value.issues]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_config_exemptions_load_and_become_exemptions() -> None:
    # GIVEN two exemptions in accounts.yaml: a prefix of one type, and a whole bucket
    text = with_exemptions(
        '  - {account: "345678901234", bucket: payments-fixtures, prefix: "golden/", '
        "types: [SensitiveData:S3Object/Personal], until: 2027-03-01, reason: Golden test files}\n"
        '  - {account: "567890123456", bucket: analytics-scratch, until: 2027-01-31, '
        'reason: "Scratch, wiped nightly"}\n'
    )
    config = parse_config(text, "accounts.yaml", now=NOW)
    # THEN they are exemptions from accounts.yaml, running to the end of their day
    prefix, bucket = from_config(config)
    assert (prefix.scope, prefix.key, prefix.types) == (Scope.PREFIX, "golden/", (PERSONAL,))
    assert prefix.until == datetime(2027, 3, 2, tzinfo=UTC) and prefix.created_by == CONFIG_SOURCE
    assert bucket.scope is Scope.BUCKET and bucket.id == f"{CONFIG_SOURCE}#1"
    assert prefix.covers(Target("345678901234", "payments-fixtures", "golden/x.csv", "v", PERSONAL))
    assert not prefix.covers(Target("345678901234", "payments-fixtures", "golden/x.csv", "v", CREDENTIALS))
    # AND the bundled JSON keeps them
    from macie_chatops.config import config_from_json

    assert config_from_json(config.to_json()).exemptions == config.exemptions


@pytest.mark.parametrize(
    ("entry", "needle", "message"),
    [
        ('{account: "345678901234", bucket: b-1x, reason: r}', "b-1x", "exemptions[0].until: required key is missing"),
        ('{account: "345678901234", bucket: b-2x, until: 2027-01-01}', "b-2x", "exemptions[0].reason: required"),
        ('{account: "345678901234", bucket: b-3x, until: 2027-01-01, reason: "  "}', "b-3x", "exemptions[0].reason"),
        (
            '{account: "345678901234", bucket: b-4x, until: 2027-01-01, reason: "' + "x" * 501 + '"}',
            "b-4x",
            "at most 500",
        ),
        (
            '{account: "345678901234", bucket: b-5x, prefix: golden, until: 2027-01-01, reason: r}',
            "b-5x",
            "ending with '/'",
        ),
        (
            '{account: "345678901234", bucket: Bad_Bucket, until: 2027-01-01, reason: r}',
            "Bad_Bucket",
            "exemptions[0].bucket",
        ),
        ("{account: 345678901234, bucket: b-7x, until: 2027-01-01, reason: r}", "b-7x", "must be quoted"),
        ('{account: "999999999999", bucket: b-8x, until: 2027-01-01, reason: r}', "b-8x", "not listed under accounts"),
        ('{account: "345678901234", bucket: b-9x, until: 2028-01-01, reason: r}', "b-9x", "more than one year ahead"),
        ('{account: "345678901234", bucket: c-1x, until: "soon", reason: r}', "c-1x", "exemptions[0].until"),
        ('{account: "345678901234", bucket: c-2x, until: 2027-01-01T10:00:00, reason: r}', "c-2x", "must be a date"),
        ('{account: "345678901234", bucket: c-3x, types: [Nope], until: 2027-01-01, reason: r}', "c-3x", "types"),
        ('{account: "345678901234", bucket: c-4x, until: 2027-01-01, reason: r, scope: all}', "c-4x", "unknown key"),
    ],
)
def test_config_exemption_mistakes_are_located(entry: str, needle: str, message: str) -> None:
    # GIVEN accounts.yaml with one wrong exemption
    text = with_exemptions(f"  - {entry}\n")
    # WHEN it is validated THEN the error names the file, the exemption's line and the field
    errors = errors_of(text)
    assert any(f"accounts.yaml:{line_of(text, needle)}:" in e and message in e for e in errors), errors


def test_one_year_ahead_is_the_limit_counted_from_today() -> None:
    last = (NOW.date() + timedelta(days=366)).isoformat()
    ok = with_exemptions(f'  - {{account: "345678901234", bucket: b-ok, until: {last}, reason: r}}\n')
    assert parse_config(ok, "accounts.yaml", now=NOW).exemptions[0].until.isoformat() == last


def test_expired_config_exemptions_are_listed_for_a_warning() -> None:
    # GIVEN one exemption that ran out yesterday and one that ends today
    yesterday, today = NOW.date() - timedelta(days=1), NOW.date()
    text = with_exemptions(
        f'  - {{account: "345678901234", bucket: b-old, until: {yesterday}, reason: old}}\n'
        f'  - {{account: "345678901234", bucket: b-new, until: {today}, reason: new}}\n'
    )
    config = parse_config(text, "accounts.yaml", now=NOW)
    # THEN the file is valid, and only the first has run out
    assert [(index, e.bucket) for index, e in expired_exemptions(config, NOW)] == [(0, "b-old")]


def test_the_example_accounts_yaml_has_no_exemptions() -> None:
    config = load_config(ROOT / "accounts.yaml")
    assert config.exemptions == ()


def test_dismiss_always_asks_why_there_is_no_switch_to_turn_the_form_off() -> None:
    # GIVEN accounts.yaml with the switch an earlier round had (slack.dismiss_with_reason, off by default)
    text = EXAMPLE.replace(
        "  secret_name: macie-chatops/slack", "  dismiss_with_reason: false\n  secret_name: macie-chatops/slack"
    )
    assert "dismiss_with_reason" in text
    # THEN it is refused at its line (Dismiss always opens the form, docs/architecture.md §16)
    errors = errors_of(text)
    assert len(errors) == 1 and f":{line_of(text, 'dismiss_with_reason')}:" in errors[0]
    assert "dismiss_with_reason" in errors[0]


# --- the dismissal form's values --------------------------------------------------------------------------------


def record(key: str = "exports/2026/a.csv") -> FindingRecord:
    summary = FindingSummary(
        finding_id="f-1", finding_type=PERSONAL, severity="High", account_id=ACCOUNT, region="us-east-1",
        bucket="payments-data", key=key, version_id="v1", etag="e", size=1, storage_class="STANDARD",
        created_at="2026-12-01T00:00:00Z", origin="job j",
    )  # fmt: skip
    return FindingRecord("f-1", State.PENDING_APPROVAL, "2026-12-01", "2026-12-01", summary=summary)


def form(
    reason: str | None = "fixtures",
    scope: str | None = "prefix",
    duration: str | None = "30",
    until: str | None = None,
) -> dict[str, dict[str, StateValue]]:
    def option(value: str | None) -> SelectedOption | None:
        return None if value is None else SelectedOption(value=value)

    return {
        "reason": {"reason": StateValue(type="plain_text_input", value=reason)},
        "scope": {"scope": StateValue(type="radio_buttons", selected_option=option(scope))},
        "duration": {"duration": StateValue(type="static_select", selected_option=option(duration))},
        "until": {"until": StateValue(type="datepicker", selected_date=until)},
    }


def test_a_valid_form_gives_reason_scope_and_until() -> None:
    assert read_values(form(reason="  test fixtures \n"), record(), NOW) == Submission(
        "test fixtures", Scope.PREFIX, NOW + timedelta(days=30)
    )
    assert read_values(form(duration="date", until="2027-01-15"), record(), NOW) == Submission(
        "fixtures", Scope.PREFIX, datetime(2027, 1, 16, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"reason": None}, "reason", "reason is required"),
        ({"reason": "   \n "}, "reason", "reason is required"),
        ({"reason": "x" * 501}, "reason", "At most 500 characters"),
        ({"reason": "ok\u202eevil"}, "reason", "control or text-direction"),
        ({"scope": "everything"}, "scope", "Choose what"),
        ({"scope": None}, "scope", "Choose what"),
        ({"duration": "365"}, "duration", "Choose for how long"),
        ({"duration": "date"}, "until", "Pick the date"),
        ({"duration": "date", "until": "2026-12-04"}, "until", "has passed"),
        ({"duration": "date", "until": "2027-12-07"}, "until", "At most a year ahead"),
        ({"duration": "date", "until": "2027-02-30"}, "until", "not a date"),
        ({"duration": "date", "until": "tomorrow"}, "until", "not a date"),
    ],
)
def test_every_bad_value_in_the_form_is_an_error_under_its_field(
    values: dict[str, str | None], field: str, message: str
) -> None:
    errors = read_values(form(**values), record(), NOW)
    assert isinstance(errors, dict) and message in errors[field], errors


def test_the_prefix_scope_is_refused_for_a_key_at_the_bucket_root() -> None:
    errors = read_values(form(scope="prefix"), record("a.csv"), NOW)
    assert isinstance(errors, dict) and "bucket's root" in errors["scope"]


# --- the CLI's validate and decide --------------------------------------------------------------------------------


def test_validate_warns_about_expired_exemptions_and_decide_applies_active_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from macie_chatops.cli import main

    # GIVEN accounts.yaml exempting the bucket of tests/events/personal-review.json until the end of today, and
    # an exemption that ran out long ago
    today = datetime.now(UTC).date()
    config_file = tmp_path / "accounts.yaml"
    config_file.write_text(
        with_exemptions(
            f'  - {{account: "345678901234", bucket: payments-prod-exports, until: {today}, reason: Synthetic}}\n'
            '  - {account: "345678901234", bucket: old-bucket, until: 2020-01-31, reason: Old}\n'
        ),
        encoding="utf-8",
    )
    # WHEN it is validated THEN it is valid (exit 0) with a warning naming the expired one
    assert main(["validate", "--config", str(config_file)]) == 0
    err = capsys.readouterr().err
    assert "warning: exemptions[1]: ran out at the end of 2020-01-31" in err and "exemptions[0]" not in err
    # WHEN decide runs on a finding in the exempted bucket THEN it says IGNORE, exempted by accounts.yaml
    assert main(["decide", "--config", str(config_file), str(EVENTS_DIR / "personal-review.json")]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["action"] == "ignore"
    assert line["reason"].startswith(f"exempted by accounts.yaml until {today} (end of day, UTC): Synthetic")


# --- policy findings: a bucket, no object (§16, §18) ----------------------------------------------------------

PUBLIC = "Policy:IAMUser/S3BucketPublic"
BPA_DISABLED = "Policy:IAMUser/S3BlockPublicAccessDisabled"


def policy_target(finding_id: str = "p-1", *, finding_type: str = PUBLIC, bucket: str = "payments-data") -> Target:
    from macie_chatops.policy_summary import PolicySummary

    policy = PolicySummary(
        finding_id=finding_id, finding_type=finding_type, severity="High", account_id=ACCOUNT, region="us-east-1",
        bucket=bucket, count=1, created_at="2026-12-01T00:00:00Z", updated_at="",
    )  # fmt: skip
    return Target.of_policy(policy)


def test_a_policy_dismissal_exempts_this_finding_or_this_bucket_for_its_type_only() -> None:
    base = policy_target()
    assert base.is_policy and base.key == "" and base.version == "p-1"
    made = {
        scope: scoped(scope, base, exemption_id="x", until=NOW + timedelta(days=1), reason="r", by="U0A", at=NOW)
        for scope in (Scope.FINDING, Scope.BUCKET)
    }
    # THEN "this finding" covers that finding only, "this bucket" any later finding of the type on the bucket
    assert made[Scope.FINDING].covers(base) and not made[Scope.FINDING].covers(policy_target("p-2"))
    assert made[Scope.BUCKET].covers(policy_target("p-2"))
    # AND neither covers another type, another bucket, or an object in the bucket
    for made_one in made.values():
        assert made_one.types == (PUBLIC,)
        assert not made_one.covers(policy_target(finding_type=BPA_DISABLED))
        assert not made_one.covers(policy_target(bucket="payments-other"))
        assert not made_one.covers(target())  # an object in the bucket (its own type)
    assert made[Scope.BUCKET].describe_scope() == (
        f"bucket s3://payments-data/ in account {ACCOUNT} (S3BucketPublic findings)"
    )
    assert made[Scope.FINDING].describe_scope().startswith("finding p-1 on bucket s3://payments-data/")
    # AND an object's scopes make no sense for a bucket
    for scope in (Scope.OBJECT, Scope.PREFIX):
        with pytest.raises(ValueError, match="policy finding"):
            scoped(scope, base, exemption_id="x", until=NOW, reason="r", by="U0A", at=NOW)


def test_an_object_exemption_of_the_whole_bucket_never_hides_a_policy_finding() -> None:
    # GIVEN an accounts.yaml exemption of the bucket with no types ("every finding type")
    everything = exemption(Scope.BUCKET, source=CONFIG_SOURCE)
    # THEN it covers the bucket's objects, but not a bucket made public: only an exemption naming the type does
    assert everything.covers(target("any/key"))
    assert not everything.covers(policy_target())
    assert exemption(Scope.BUCKET, types=(PUBLIC,)).covers(policy_target())
    assert not exemption(Scope.PREFIX, "exports/", types=(PUBLIC,)).covers(policy_target())


def policy_record() -> FindingRecord:
    from macie_chatops.policy_summary import PolicySummary

    policy = PolicySummary(
        finding_id="p-1", finding_type=PUBLIC, severity="High", account_id=ACCOUNT, region="us-east-1",
        bucket="payments-data", count=1, created_at="2026-12-01T00:00:00Z", updated_at="",
    )  # fmt: skip
    return FindingRecord("p-1", State.PENDING_APPROVAL, "2026-12-01", "2026-12-01", policy=policy)


@pytest.mark.parametrize(
    ("scope", "valid"), [("finding", True), ("bucket", True), ("object", False), ("prefix", False)]
)
def test_a_policy_findings_form_takes_this_finding_or_this_bucket(scope: str, valid: bool) -> None:
    read = read_values(form(scope=scope), policy_record(), NOW)
    if valid:
        assert read == Submission("fixtures", Scope(scope), NOW + timedelta(days=30))
    else:
        assert isinstance(read, dict) and "this finding, or this bucket" in read["scope"]


def test_the_policy_dismissal_form_offers_the_bucket_scopes() -> None:
    from macie_chatops.dismissal import dismissal_form

    view = dismissal_form(policy_record(), channel="C0PAYMENTS", ts="1.2")
    scope = next(b for b in view["blocks"] if b.get("block_id") == "scope")
    assert [o["value"] for o in scope["element"]["options"]] == ["finding", "bucket"]
    assert "s3://payments-data/" in view["blocks"][0]["text"]["text"]
