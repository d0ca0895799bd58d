"""Synthesize the member stacks (and the administrator's forwarding), in an App of their own, into the StackSets'
template bodies.

A StackSet template is deployed into accounts that were never CDK-bootstrapped, so the member App uses the
bootstrapless synthesizer, contains no assets, and writes no CDK metadata (``analytics_reporting=False``;
path metadata off). cdk-nag checks this App too (a plugin added to the main App does not see it). The App
synthesizes into a temporary directory that is removed afterwards, so nothing stray lands in cdk.out.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aws_cdk import App, BootstraplessSynthesizer

from macie_chatops.config import Config
from stacksets.administrator import AdministratorForwardingStack
from stacksets.context import cdk_json_context
from stacksets.nag import enable_nag
from stacksets.regional import MemberRegionalStack
from stacksets.roles import MemberRolesStack
from stacksets.stackset import template_body

# Context that keeps the templates lean and deterministic whatever the CLI passes in the environment.
_FINAL_CONTEXT: Final = {
    "aws:cdk:enable-path-metadata": False,
    "aws:cdk:enable-asset-metadata": False,
    "aws:cdk:version-reporting": False,
}


class MemberSynthError(RuntimeError):
    """The member App did not synthesize (typically: unacknowledged cdk-nag findings, listed here)."""

    def __init__(self, message: str, violations: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.violations = violations  # (rule, construct path) of each cdk-nag finding


@dataclass(frozen=True)
class MemberTemplates:
    roles: dict[str, Any]
    regional: dict[str, Any]
    administrator: dict[str, Any]  # the Macie administrator's forwarding (stacksets/administrator.py)

    def bodies(self) -> dict[str, str]:
        """File name -> the exact TemplateBody the StackSets carry."""
        return {
            "member-roles.template.json": template_body(self.roles),
            "member-regional.template.json": template_body(self.regional),
            "administrator-forwarding.template.json": template_body(self.administrator),
        }


def validation_violations(report_file: Path) -> list[tuple[str, str, str]]:
    """(rule, construct path, description) of each finding in a CDK validation report (empty if none)."""
    try:
        report = json.loads(report_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                found.append((violation["ruleName"], construct["constructPath"], violation.get("description", "")))
    return found


def synthesize_member_templates(
    config: Config, *, context: Mapping[str, Any] | None = None, nag: bool = True
) -> MemberTemplates:
    outdir = Path(tempfile.mkdtemp(prefix="macie-chatops-members-"))
    try:
        app = App(
            outdir=str(outdir),
            analytics_reporting=False,
            stack_traces=False,
            context=dict(cdk_json_context() if context is None else context),
            post_cli_context=dict(_FINAL_CONTEXT),
        )
        if nag:
            enable_nag(app)
        roles = MemberRolesStack(
            app,
            "MacieChatOpsMemberRoles",
            config=config,
            description="macie-chatops member roles (once per account): remediation role, forwarding role",
            synthesizer=BootstraplessSynthesizer(),
            analytics_reporting=False,
        )
        regional = MemberRegionalStack(
            app,
            "MacieChatOpsMemberRegional",
            config=config,
            description="macie-chatops member resources (per account and region): forwarding rule, quarantine bucket",
            synthesizer=BootstraplessSynthesizer(),
            analytics_reporting=False,
        )
        administrator = AdministratorForwardingStack(
            app,
            "MacieChatOpsAdministratorForwarding",
            config=config,
            description="macie-chatops: the Macie administrator's findings (its jobs, automated discovery) in this "
            "region -> the central bus",
            synthesizer=BootstraplessSynthesizer(),
            analytics_reporting=False,
        )
        try:
            assembly = app.synth()
        except RuntimeError as exc:
            violations = validation_violations(outdir / "validation-report.json")
            details = "\n".join(f"{rule}: {path}: {description}" for rule, path, description in violations)
            raise MemberSynthError(
                f"member stacks did not synthesize: {exc}\n{details}".rstrip(),
                tuple((rule, path) for rule, path, _ in violations),
            ) from None
        templates = {}
        for stack in (roles, regional, administrator):
            artifact = assembly.get_stack_by_name(stack.stack_name)
            if artifact.assets:
                raise MemberSynthError(f"{stack.stack_name} has assets; a StackSet template cannot carry any")
            template: dict[str, Any] = artifact.template
            if any(r.get("Type") == "AWS::CDK::Metadata" for r in template.get("Resources", {}).values()):
                raise MemberSynthError(f"{stack.stack_name} carries AWS::CDK::Metadata")
            templates[stack.stack_name] = template
        return MemberTemplates(
            roles=templates[roles.stack_name],
            regional=templates[regional.stack_name],
            administrator=templates[administrator.stack_name],
        )
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
