"""The canonical encoding an approval's MAC is computed over (docs/architecture.md §23), and the pure rules around
it: which action a job carries out, what target a record names. Signing and verifying with KMS: the functional
tests (tests/functional/test_approvals.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macie_chatops.approvals import (
    ACTING_STATES,
    APPROVAL_ACTIONS,
    DOMAIN,
    MAX_MESSAGE_BYTES,
    Approval,
    ApprovalError,
    action_for,
    iso,
    target_of,
)
from macie_chatops.policy_summary import PolicySummary
from macie_chatops.states import State
from macie_chatops.store import FindingRecord
from macie_chatops.summary import FindingSummary, ObjectVersion
from macie_chatops_sandbox.testkit.world import review_summary
from tests.conftest import ROOT, load_event

EXAMPLE = Approval(
    "f-1",
    ObjectVersion("345678901234", "payments-prod-exports", "exports/customers.csv", "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"),
    "quarantine",
    "U0ALICE",
    "2026-12-05T10:00:00.000000Z",
)

PUBLIC_SITE = PolicySummary(
    "f-1", "Policy:IAMUser/S3BucketPublic", "High", "345678901234", "us-east-1", "site", 1, "2026-12-05T09:00:00Z", ""
)


def _decode(message: bytes) -> list[str]:
    """The fields of a netstring sequence (what the encoding says, read back)."""
    fields = []
    rest = message
    while rest:
        length, _, rest = rest.partition(b":")
        size = int(length)
        assert rest[size : size + 1] == b",", "each netstring ends with a comma"
        fields.append(rest[:size].decode("utf-8", "surrogatepass"))
        rest = rest[size + 1 :]
    return fields


def _summary() -> FindingSummary:
    from macie_chatops.config import load_config

    return review_summary(load_config(ROOT / "accounts.yaml"), load_event("personal-review"))


def _record(**fields: object) -> FindingRecord:
    values: dict[str, object] = {
        "finding_id": "f-1",
        "state": State.APPROVED,
        "received_at": "2026-12-05T09:00:00.000000Z",
        "updated_at": "2026-12-05T10:00:00.000000Z",
    }
    values.update(fields)
    return FindingRecord(**values)  # type: ignore[arg-type]


def test_the_encoding_is_exactly_these_bytes() -> None:
    # GIVEN an approval  WHEN it is encoded  THEN the domain tag, then each field as a netstring, in this order
    assert EXAMPLE.message() == (
        b"25:macie-chatops/approval/v1,3:f-1,12:345678901234,21:payments-prod-exports,21:exports/customers.csv,"
        b"30:3HL4kqtJlcpXroDTDmjVBH40Nrjfkd,10:quarantine,7:U0ALICE,27:2026-12-05T10:00:00.000000Z,"
    )


def test_every_field_is_bound() -> None:
    # GIVEN the example  WHEN any one field changes  THEN the encoding changes
    target = EXAMPLE.target
    variants = [
        dataclasses.replace(EXAMPLE, finding_id="f-2"),
        dataclasses.replace(EXAMPLE, target=dataclasses.replace(target, account_id="456789012345")),
        dataclasses.replace(EXAMPLE, target=dataclasses.replace(target, bucket="payments-prod-exports2")),
        dataclasses.replace(EXAMPLE, target=dataclasses.replace(target, key="exports/customers.csv ")),
        dataclasses.replace(EXAMPLE, target=dataclasses.replace(target, version="etag:abc@1700000000")),
        dataclasses.replace(EXAMPLE, action="restore"),
        dataclasses.replace(EXAMPLE, approver="U0BOB"),
        dataclasses.replace(EXAMPLE, at="2026-12-05T10:00:00.000001Z"),
    ]
    encodings = {variant.message() for variant in variants}
    assert len(encodings) == len(variants) and EXAMPLE.message() not in encodings


def test_a_separator_inside_a_field_cannot_move_bytes_into_another() -> None:
    # GIVEN two approvals whose key and version split the same characters differently (S3 keys may hold ',' and ':')
    one = dataclasses.replace(EXAMPLE, target=dataclasses.replace(EXAMPLE.target, key="a,3:b", version="c"))
    two = dataclasses.replace(EXAMPLE, target=dataclasses.replace(EXAMPLE.target, key="a", version="3:b,c"))
    # THEN they encode differently, and each reads back as its own fields
    assert one.message() != two.message()
    assert _decode(one.message())[4:6] == ["a,3:b", "c"]
    assert _decode(two.message())[4:6] == ["a", "3:b,c"]


text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)


@given(
    finding_id=text,
    account=text,
    bucket=text,
    key=text,
    version=text,
    action=st.sampled_from(sorted(APPROVAL_ACTIONS)),
    approver=text,
    at=text,
)
def test_the_encoding_reads_back_as_its_fields(
    finding_id: str, account: str, bucket: str, key: str, version: str, action: str, approver: str, at: str
) -> None:
    # GIVEN any fields  WHEN encoded  THEN decoding gives them back in order: two approvals never share an encoding
    approval = Approval(finding_id, ObjectVersion(account, bucket, key, version), action, approver, at)  # type: ignore[arg-type]
    assert _decode(approval.message()) == [DOMAIN, finding_id, account, bucket, key, version, action, approver, at]


def test_the_largest_approval_fits_kms_and_a_larger_one_is_refused() -> None:
    # GIVEN every field at the longest the pipeline accepts (a 1,024-byte key of 3-byte characters, a 1,024-character
    # version id, a 128-character finding id, a 64-character approver)
    largest = Approval(
        "f" * 128,
        ObjectVersion("1" * 12, "b" * 63, "€" * 341, "v" * 1024),
        "undo_block_public_access",
        "a" * 64,
        iso(datetime(2026, 12, 5, tzinfo=UTC)),
    )
    # THEN it encodes under KMS's 4,096 bytes
    assert len(largest.message()) < MAX_MESSAGE_BYTES
    # AND one past the limit is refused rather than sent
    too_large = dataclasses.replace(largest, target=dataclasses.replace(largest.target, version="v" * 4096))
    with pytest.raises(ApprovalError, match="over KMS's limit"):
        too_large.message()


def test_the_time_is_iso_utc_with_microseconds() -> None:
    assert iso(datetime(2026, 12, 5, 11, 0, 0, 7, tzinfo=UTC)) == "2026-12-05T11:00:00.000007Z"


def test_an_object_finding_approves_its_exact_object_version() -> None:
    summary = _summary()
    assert target_of(_record(summary=summary)) == summary.object_version


def test_a_policy_finding_approves_its_bucket() -> None:
    assert target_of(_record(policy=PUBLIC_SITE)) == ObjectVersion("345678901234", "site", "", "")


def test_a_record_that_names_nothing_cannot_be_approved() -> None:
    with pytest.raises(ApprovalError, match="names no object or bucket"):
        target_of(_record())


@pytest.mark.parametrize(
    ("policy", "kind", "action"),
    [
        (False, "quarantine", "quarantine"),
        (False, "restore", "restore"),
        (False, "block_public_access", None),
        (False, "undo_block_public_access", None),
        (True, "quarantine", "block_public_access"),  # the sweeper's and retry's job for a policy finding
        (True, "block_public_access", "block_public_access"),
        (True, "undo_block_public_access", "undo_block_public_access"),
        (True, "restore", None),
    ],
)
def test_the_action_a_job_carries_out_is_the_records(policy: bool, kind: str, action: str | None) -> None:
    record = _record(policy=PUBLIC_SITE) if policy else _record(summary=_summary())
    assert action_for(record, kind) == action


def test_each_action_is_carried_out_only_from_its_approving_state() -> None:
    assert {
        "quarantine": {State.APPROVED, State.FAILED},
        "block_public_access": {State.APPROVED, State.FAILED},
        "restore": {State.RESTORE_REQUESTED},
        "undo_block_public_access": {State.UNDO_REQUESTED},
    } == ACTING_STATES
