"""cfn-lint on every template the app deploys, member templates included (extracted from the StackSets'
TemplateBody into files, because cfn-lint does not look inside that string)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.functional.infra.conftest import Synthesized

# CDK declares a Lambda's DependsOn on its role's policy *and* references the role: the standard pattern.
ACCEPTED_WARNINGS = {"W3005"}


@pytest.mark.parametrize("variant", ["example", "self_managed", "administrator", "other_administrator"])
def test_every_template_passes_cfn_lint(variant: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # GIVEN every template of the variant, as files (the member ones extracted from the StackSets)
    synth: Synthesized = request.getfixturevalue(variant)
    problems = []
    for name, template in synth.all_templates().items():
        if variant in {"self_managed", "other_administrator"} and name == "central":
            continue  # differs from the example's only in the remediation role name / the bundled config
        file = tmp_path / f"{name}.template.json"
        file.write_text(json.dumps(template, indent=1), encoding="utf-8")
        deployed_per_region = name.startswith(("member", "administrator"))
        regions = list(synth.config.regions) if deployed_per_region else [synth.config.security_account.region]
        # WHEN cfn-lint checks it for the regions it is deployed to
        matches = lint_file(file, config=ManualArgs(regions=regions))
        problems += [
            f"{name}: {m.rule.id} {m.message} (line {m.linenumber})"
            for m in matches
            if m.rule.id not in ACCEPTED_WARNINGS
        ]
    # THEN there is no error and no warning beyond the accepted CDK pattern
    assert problems == []
