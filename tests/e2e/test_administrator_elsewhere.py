"""A Macie administrator that is not the security account (``macie_administrator: {id}`` in accounts.yaml).

Its own default bus, in every listed region, forwards to the central bus (the administrator forwarding
deployed in that account); the security account's default bus forwards only as a member.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from macie_chatops import names
from macie_chatops.config import Config, load_config
from macie_chatops.states import State
from macie_chatops_sandbox.findings import macie_finding_event
from macie_chatops_sandbox.sandbox import Sandbox
from tests.conftest import ROOT
from tests.e2e.world import CREDENTIALS, PAYMENTS_PROD, SETTLED, upload

ADMINISTRATOR = "111122223333"
SECURITY = "210987654321"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
    path: Path = tmp_path_factory.mktemp("config") / "accounts.yaml"
    path.write_text(text + f'macie_administrator: {{id: "{ADMINISTRATOR}"}}\n', encoding="utf-8")
    return load_config(path)


def test_the_administrator_forwards_in_every_listed_region_and_the_security_account_only_as_a_member(
    sandbox: Sandbox, config: Config
) -> None:
    assert config.macie_administrator_id == ADMINISTRATOR
    for region in config.regions:
        rules = sandbox.client("events", ADMINISTRATOR, region).list_rules()["Rules"]
        assert [rule["Name"] for rule in rules] == [names.ADMINISTRATOR_FORWARD_RULE_NAME]
        security_rules = sandbox.client("events", SECURITY, region).list_rules()["Rules"]
        assert [rule["Name"] for rule in security_rules] == [names.MEMBER_FORWARD_RULE_NAME]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_a_finding_published_in_the_administrator_account_is_quarantined_in_the_bucket_owners_account(
    sandbox: Sandbox, region: str
) -> None:
    # GIVEN automated discovery's finding about payments-prod's bucket, published in the administrator account
    stored = upload(sandbox, account_id=PAYMENTS_PROD, finding_type=CREDENTIALS, region=region)
    event = macie_finding_event(
        account_id=PAYMENTS_PROD,
        region=region,
        finding_type=CREDENTIALS,
        severity="High",
        stored=stored,
        finding_id=uuid.uuid4().hex,
        job_id=None,
        published_by=ADMINISTRATOR,
    )
    # WHEN it is put on the administrator's default bus in the bucket's region
    assert sandbox.publish(event) == "administrator"
    # THEN the administrator's rule carried it: quarantined in payments-prod's quarantine bucket
    record = sandbox.wait_for_state(event["detail"]["id"], *SETTLED)
    assert record.state is State.QUARANTINED, record.outcome_detail
    assert record.quarantine is not None
    assert record.quarantine["bucket"] == names.quarantine_bucket_name(PAYMENTS_PROD, region)
    assert sandbox.object_location(event["detail"]["id"], PAYMENTS_PROD, region, stored, record) == "quarantine"
