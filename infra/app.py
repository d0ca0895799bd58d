"""The CDK app: ``MacieChatOps-Central`` (the pipeline, security account, home region) and
``MacieChatOps-MemberStackSets`` (the StackSets, whose template bodies are the member stacks synthesized in an App
of their own: stacksets/templates.py), from accounts.yaml (``-c config=FILE``, else $MACIE_CHATOPS_CONFIG, else
./accounts.yaml).

A bad accounts.yaml fails synth with the validator's ``FILE:LINE: field: message`` lines on stderr and exit
status 2; an unacknowledged cdk-nag finding fails it too. Synth needs no AWS credentials and no Docker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if not __package__:  # run as a file (python infra/app.py): import infra/ and stacksets/ from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aws_cdk import App, Environment

from infra.central_stack import CentralStack
from infra.lambda_bundle import DEFAULT_BUILD_DIR, BundleError, build_bundle
from infra.stacksets_stack import MemberStackSetsStack
from macie_chatops.config import Config, ConfigError, config_path, load_config
from stacksets.context import cdk_json_context
from stacksets.nag import ACKNOWLEDGEMENTS_CONTEXT, enable_nag
from stacksets.templates import MemberSynthError, MemberTemplates, synthesize_member_templates

CENTRAL_STACK_NAME: Final = "MacieChatOps-Central"
STACKSETS_STACK_NAME: Final = "MacieChatOps-MemberStackSets"
MEMBER_TEMPLATES_DIR: Final = "member-templates"


@dataclass(frozen=True)
class MacieChatOpsApp:
    app: App
    central: CentralStack
    stacksets: MemberStackSetsStack
    member_templates: MemberTemplates


def stacksets_environment(config: Config) -> Environment:
    deployment = config.deployment
    region = config.security_account.region
    if deployment.permission_model == "SERVICE_MANAGED" and deployment.call_as == "SELF":
        return Environment(region=region)  # the management account: whichever account deploys it
    return Environment(account=config.security_account.id, region=region)


def build_app(
    config: Config,
    *,
    app: App | None = None,
    build_dir: Path = DEFAULT_BUILD_DIR,
    context: Mapping[str, Any] | None = None,
    nag: bool = True,
) -> MacieChatOpsApp:
    """Both stacks for ``config``. ``app`` defaults to a new App carrying cdk.json's context."""
    context = dict(cdk_json_context() if context is None else context)
    if app is None:
        app = App(context=context)
    if nag:
        enable_nag(app)
    member_context = {**context, **_acknowledgement_switch(app)}
    member_templates = synthesize_member_templates(config, context=member_context, nag=nag)
    bundle = build_bundle(config, build_dir)
    home = Environment(account=config.security_account.id, region=config.security_account.region)
    central = CentralStack(
        app,
        CENTRAL_STACK_NAME,
        config=config,
        bundle=bundle,
        env=home,
        description="macie-chatops central pipeline: Macie findings -> Slack approval -> quarantine",
    )
    stacksets = MemberStackSetsStack(
        app,
        STACKSETS_STACK_NAME,
        config=config,
        templates=member_templates,
        env=stacksets_environment(config),
        description="macie-chatops member StackSets: forwarding, remediation role and quarantine bucket per account",
    )
    # Member trust policies name the remediator role, which must exist first (IAM validates principals).
    stacksets.add_stack_dependency(central)
    return MacieChatOpsApp(app=app, central=central, stacksets=stacksets, member_templates=member_templates)


def _acknowledgement_switch(app: App) -> dict[str, Any]:
    value = app.node.try_get_context(ACKNOWLEDGEMENTS_CONTEXT)
    return {} if value is None else {ACKNOWLEDGEMENTS_CONTEXT: value}


def write_member_templates(templates: MemberTemplates, outdir: Path) -> list[Path]:
    """The StackSets' template bodies as files beside the assembly (for cfn-lint and for review)."""
    directory = outdir / MEMBER_TEMPLATES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in templates.bodies().items():
        path = directory / name
        path.write_text(json.dumps(json.loads(body), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main() -> int:
    app = App(context=cdk_json_context())
    try:
        config = load_config(config_path(app.node.try_get_context("config")))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    try:
        built = build_app(config, app=app)
    except (BundleError, MemberSynthError) as exc:
        print(f"macie-chatops: {exc}", file=sys.stderr)
        return 1
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings: the plugin has printed each one above
        print(f"macie-chatops: synth failed: {exc}", file=sys.stderr)
        return 1
    write_member_templates(built.member_templates, Path(app.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
