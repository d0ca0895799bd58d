"""cdk-nag (v3, a CDK policy-validation plugin) for every App this project synthesizes.

``enable_nag(app)`` adds AwsSolutionsChecks: any finding that is not acknowledged fails synth (the CLI
exits non-zero; ``app.synth()`` raises). ``acknowledge(scope, rule, reason)`` is the only way the project
acknowledges a finding: the reason must say *why this is acceptable here* (a real sentence, not "ok"), and
the tests re-synthesize with acknowledgements switched off to prove each one still matches a finding.
"""

from __future__ import annotations

import re
from typing import Final

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

# Context switch for the tests: with it set to false, acknowledge() records nothing, so the validation
# report lists every finding the project has acknowledged.
ACKNOWLEDGEMENTS_CONTEXT: Final = "macie-chatops:nag-acknowledgements"
ACKNOWLEDGED_METADATA: Final = "aws:cdk:acknowledged-rules"
MIN_REASON_LENGTH: Final = 40
_RULE_RE: Final = re.compile(r"^AwsSolutions-[A-Z]+[0-9]+(\[.+\])?$")


def enable_nag(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding on ``scope`` and its children, with the reason it is acceptable."""
    if not _RULE_RE.match(rule):
        raise ValueError(f"{rule!r} is not an AwsSolutions rule id (e.g. AwsSolutions-S1, AwsSolutions-IAM5[...])")
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(f"the acknowledgement of {rule} needs a real reason (>= {MIN_REASON_LENGTH} characters)")
    if scope.node.try_get_context(ACKNOWLEDGEMENTS_CONTEXT) is False:
        return
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
