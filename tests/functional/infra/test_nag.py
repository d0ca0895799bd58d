"""cdk-nag AwsSolutions on the central App *and* the member App: no unacknowledged finding; every
acknowledgement has a real reason and still matches a finding (none is stale)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, BootstraplessSynthesizer, Environment
from constructs import IConstruct

from infra.app import CENTRAL_STACK_NAME
from infra.central_stack import CentralStack
from infra.lambda_bundle import build_bundle
from macie_chatops.config import Config
from stacksets.administrator import AdministratorForwardingStack
from stacksets.context import cdk_json_context
from stacksets.nag import ACKNOWLEDGED_METADATA, ACKNOWLEDGEMENTS_CONTEXT, MIN_REASON_LENGTH, acknowledge, enable_nag
from stacksets.regional import MemberRegionalStack
from stacksets.roles import MemberRolesStack
from stacksets.templates import MemberSynthError, synthesize_member_templates, validation_violations
from tests.functional.infra.conftest import Synthesized

Acknowledgement = tuple[str, str, str]  # construct path, rule, reason


def _acknowledgements(scope: IConstruct) -> list[Acknowledgement]:
    found = []
    for construct in scope.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACKNOWLEDGED_METADATA:
                for rule, reason in entry.data.items():
                    found.append((construct.node.path, rule.removeprefix("Annotation::"), reason))
    return found


def _member_acknowledgements(config: Config) -> list[Acknowledgement]:
    app = App(context=cdk_json_context())
    roles = MemberRolesStack(app, "MacieChatOpsMemberRoles", config=config, synthesizer=BootstraplessSynthesizer())
    regional = MemberRegionalStack(
        app, "MacieChatOpsMemberRegional", config=config, synthesizer=BootstraplessSynthesizer()
    )
    administrator = AdministratorForwardingStack(
        app, "MacieChatOpsAdministratorForwarding", config=config, synthesizer=BootstraplessSynthesizer()
    )
    return _acknowledgements(roles) + _acknowledgements(regional) + _acknowledgements(administrator)


def _central_findings_without_acknowledgements(config: Config, outdir: Path) -> list[tuple[str, str]]:
    app = App(outdir=str(outdir), context={**cdk_json_context(), ACKNOWLEDGEMENTS_CONTEXT: False})
    enable_nag(app)
    CentralStack(
        app,
        CENTRAL_STACK_NAME,
        config=config,
        bundle=build_bundle(config),
        env=Environment(account=config.security_account.id, region=config.security_account.region),
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    return [(rule, path) for rule, path, _ in validation_violations(outdir / "validation-report.json")]


def _matches(acknowledgement: Acknowledgement, findings: list[tuple[str, str]]) -> bool:
    path, rule, _ = acknowledgement
    return any(r == rule and (p == path or p.startswith(f"{path}/")) for r, p in findings)


def test_both_apps_synthesize_with_zero_unacknowledged_findings(example: Synthesized) -> None:
    # GIVEN the example organisation synthesized with cdk-nag on both Apps (a finding would have failed synth)
    report = json.loads((example.outdir / "validation-report.json").read_text(encoding="utf-8"))
    # THEN the central App's report lists no plugin failure at all
    assert [p for p in report["pluginReports"] if p.get("conclusion") != "success"] == []


@pytest.mark.parametrize("variant", ["example", "self_managed", "administrator"])
def test_every_acknowledgement_is_reasoned_and_matches_a_real_finding(
    variant: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    synth: Synthesized = request.getfixturevalue(variant)
    config = synth.config
    central_acks = _acknowledgements(synth.built.central) + _acknowledgements(synth.built.stacksets)
    member_acks = _member_acknowledgements(config)
    assert central_acks and member_acks
    # THEN every reason is a sentence of its own (no copy-pasted or placeholder reasons)
    reasons = [reason for _, _, reason in central_acks + member_acks]
    assert all(len(reason) >= MIN_REASON_LENGTH for reason in reasons)
    # WHEN both Apps are synthesized with acknowledgements switched off
    central_findings = _central_findings_without_acknowledgements(config, tmp_path / "central")
    with pytest.raises(MemberSynthError) as failure:
        synthesize_member_templates(config, context={**cdk_json_context(), ACKNOWLEDGEMENTS_CONTEXT: False})
    member_findings = list(failure.value.violations)
    # THEN each acknowledgement corresponds to a finding on its construct (none is stale)
    stale = [a for a in central_acks if not _matches(a, central_findings)]
    stale += [a for a in member_acks if not _matches(a, member_findings)]
    assert [(p, r) for p, r, _ in stale] == []
    # AND every finding is one of the acknowledged ones (the acknowledgements are the whole story)
    unexplained = [f for f in central_findings if not any(_matches(a, [f]) for a in central_acks)] + [
        f for f in member_findings if not any(_matches(a, [f]) for a in member_acks)
    ]
    assert unexplained == []


def test_an_acknowledgement_without_a_real_reason_is_refused() -> None:
    app = App()
    with pytest.raises(ValueError, match="real reason"):
        acknowledge(app, "AwsSolutions-S1", "ok")
    with pytest.raises(ValueError, match="not an AwsSolutions rule"):
        acknowledge(app, "S1", "a reason that is long enough to pass the length check here")
