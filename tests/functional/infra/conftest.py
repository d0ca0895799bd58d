"""Synthesize each variant of the organisation once per pytest session (jsii start-up is paid once).

Every variant goes through the real code path: ``build_app`` (member App + cdk-nag, the Lambda bundle from
build/, the central and StackSets stacks with cdk-nag) and ``app.synth()``. Tests read the assembly's
templates; the member templates are the exact TemplateBody strings the StackSets carry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app import CENTRAL_STACK_NAME, STACKSETS_STACK_NAME, MacieChatOpsApp, build_app
from macie_chatops.config import Config, parse_config
from macie_chatops_sandbox.testkit.organisations import org_config
from stacksets.context import cdk_json_context

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_CONFIG = ROOT / "accounts.yaml"
NEW_ACCOUNT = "678901234567"
OTHER_ADMINISTRATOR = "111122223333"  # a Macie administrator that is not the pipeline's (security) account


@dataclass(frozen=True)
class Synthesized:
    config: Config
    built: MacieChatOpsApp
    outdir: Path
    central_json: dict[str, Any]
    stacksets_json: dict[str, Any]
    roles_json: dict[str, Any]
    regional_json: dict[str, Any]
    roles_body: str
    regional_body: str
    administrator_json: dict[str, Any]  # the administrator forwarding template (synthesized even when not deployed)

    @property
    def central(self) -> Template:
        return Template.from_json(self.central_json)

    @property
    def stacksets(self) -> Template:
        return Template.from_json(self.stacksets_json)

    @property
    def roles(self) -> Template:
        return Template.from_json(self.roles_json)

    @property
    def regional(self) -> Template:
        return Template.from_json(self.regional_json)

    def stack_set(self, name: str) -> dict[str, Any]:
        for resource in self.stacksets_json["Resources"].values():
            if resource["Type"] == "AWS::CloudFormation::StackSet" and resource["Properties"]["StackSetName"] == name:
                properties: dict[str, Any] = resource["Properties"]
                return properties
        raise KeyError(name)

    def has_stack_set(self, name: str) -> bool:
        try:
            self.stack_set(name)
        except KeyError:
            return False
        return True

    def all_templates(self) -> dict[str, dict[str, Any]]:
        return {
            "central": self.central_json,
            "stacksets": self.stacksets_json,
            "member-roles": self.roles_json,
            "member-regional": self.regional_json,
            "administrator-forwarding": self.administrator_json,
        }


def synthesize(config: Config, outdir: Path, *, context: dict[str, Any] | None = None) -> Synthesized:
    full_context = {**cdk_json_context(), **(context or {})}
    app = App(outdir=str(outdir), context=full_context)
    built = build_app(config, app=app, context=full_context)
    assembly = app.synth()
    stacksets_json = assembly.get_stack_by_name(STACKSETS_STACK_NAME).template
    bodies = {
        r["Properties"]["StackSetName"]: r["Properties"]["TemplateBody"]
        for r in stacksets_json["Resources"].values()
        if r["Type"] == "AWS::CloudFormation::StackSet"
    }
    from macie_chatops import names

    roles_body = bodies[names.MEMBER_ROLES_STACKSET_NAME]
    regional_body = bodies[names.MEMBER_REGIONAL_STACKSET_NAME]
    return Synthesized(
        config=config,
        built=built,
        outdir=outdir,
        central_json=assembly.get_stack_by_name(CENTRAL_STACK_NAME).template,
        stacksets_json=stacksets_json,
        roles_json=json.loads(roles_body),
        regional_json=json.loads(regional_body),
        roles_body=roles_body,
        regional_body=regional_body,
        administrator_json=built.member_templates.administrator,
    )


def example_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    return document


def config_from(document: dict[str, Any], name: str) -> Config:
    return parse_config(yaml.safe_dump(document, sort_keys=False), name)


@pytest.fixture(scope="session")
def synth_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str, Callable[[], Config]], Synthesized]]:
    cache: dict[str, Synthesized] = {}

    def get(name: str, make_config: Callable[[], Config]) -> Synthesized:
        if name not in cache:
            cache[name] = synthesize(make_config(), tmp_path_factory.mktemp(f"cdk-{name}"))
        return cache[name]

    yield get


@pytest.fixture(scope="session")
def example(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    """accounts.yaml as committed: SERVICE_MANAGED, DELEGATED_ADMIN, one account with a region subset."""
    return synth_once("example", lambda: config_from(example_document(), str(EXAMPLE_CONFIG)))


@pytest.fixture(scope="session")
def onboarded(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    """accounts.yaml plus one new account entry (eu-west-1 only)."""

    def make() -> Config:
        document = example_document()
        document["accounts"].append(
            {"id": NEW_ACCOUNT, "name": "analytics-prod", "team": "analytics", "regions": ["eu-west-1"]}
        )
        return config_from(document, "onboarded.yaml")

    return synth_once("onboarded", make)


def _without_the_security_account_as_member(document: dict[str, Any]) -> dict[str, Any]:
    security = document["security_account"]["id"]
    document["accounts"] = [a for a in document["accounts"] if a["id"] != security]
    return document


@pytest.fixture(scope="session")
def administrator(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    """accounts.yaml with the security account (the Macie administrator, by default) not listed as a member:
    its own forwarding in the home region (central stack) and in eu-west-1 (the administrator StackSet)."""
    return synth_once(
        "administrator",
        lambda: config_from(_without_the_security_account_as_member(example_document()), "administrator.yaml"),
    )


@pytest.fixture(scope="session")
def other_administrator(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    """``macie_administrator`` names another account than the pipeline's, SELF_MANAGED StackSets: the forwarding
    goes into that account, home region included; nothing for it in the security account."""

    def make() -> Config:
        document = _without_the_security_account_as_member(example_document())
        document["macie_administrator"] = {"id": OTHER_ADMINISTRATOR}
        document["deployment"] = {"permission_model": "SELF_MANAGED", "call_as": "SELF"}
        return config_from(document, "other-administrator.yaml")

    return synth_once("other_administrator", make)


@pytest.fixture(scope="session")
def self_managed(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    """SELF_MANAGED StackSets (listed accounts, no OUs), a custom remediation role name, break-glass readers
    and a shorter retention: every knob of accounts.yaml the templates depend on."""

    def make() -> Config:
        document = example_document()
        document["deployment"] = {
            "permission_model": "SELF_MANAGED",
            "call_as": "SELF",
            "remediation_role_name": "SecOpsQuarantine",
        }
        document["quarantine"] = {
            "retention_days": 30,
            "encryption": "kms",
            "break_glass_principals": [
                "arn:aws:iam::210987654321:role/SecurityBreakGlass",
                "arn:aws:iam::111122223333:role/Forensics",
            ],
        }
        return config_from(document, "self-managed.yaml")

    return synth_once("self_managed", make)


@pytest.fixture(scope="session")
def scale_10(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    return synth_once("scale_10", lambda: org_config(accounts=10, teams=3))


@pytest.fixture(scope="session")
def scale_1000(synth_once: Callable[[str, Callable[[], Config]], Synthesized]) -> Synthesized:
    return synth_once("scale_1000", lambda: org_config(accounts=1000, teams=100))


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    found = policy_document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
