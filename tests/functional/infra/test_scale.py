"""1,000 accounts, 100 teams, 4 regions: config size is not resources, and every template stays inside
CloudFormation's limits. (Synth times are compared by bench/bench_synth_scale.py, not asserted here.)"""

from __future__ import annotations

import json
from pathlib import Path

from infra.lambda_bundle import build_bundle
from macie_chatops import names
from stacksets.stackset import TEMPLATE_BODY_LIMIT, template_body
from stacksets.targets import instance_count, regional_instance_groups
from tests.functional.infra.conftest import Synthesized

MAX_RESOURCES = 500
MAX_OUTPUTS = 200
MAX_TEMPLATE_BYTES_VIA_S3 = 1_000_000  # CDK uploads templates > 51,200 bytes to the bootstrap bucket
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code + layers


def _size(template: dict[str, object]) -> int:
    return len(json.dumps(template, separators=(",", ":")).encode("utf-8"))


def _directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_central_stack_does_not_grow_with_the_organisation(scale_10: Synthesized, scale_1000: Synthesized) -> None:
    # GIVEN the same organisation shape with 10 and with 1,000 accounts (100 teams, 4 regions)
    assert len(scale_1000.config.accounts) == 1000 and len(scale_1000.config.teams) == 100
    assert len(scale_1000.config.regions) == 4
    # THEN the central stack has exactly the same resources
    small, large = scale_10.central_json["Resources"], scale_1000.central_json["Resources"]
    assert len(large) == len(small)
    assert sorted(r["Type"] for r in large.values()) == sorted(r["Type"] for r in small.values())
    # AND so does the StackSets stack (accounts are instance targets, not resources)
    assert len(scale_1000.stacksets_json["Resources"]) == len(scale_10.stacksets_json["Resources"])
    # AND the member templates are byte-for-byte the same
    assert scale_1000.roles_body == scale_10.roles_body
    assert scale_1000.regional_body == scale_10.regional_body
    assert scale_1000.administrator_json == scale_10.administrator_json


def test_every_template_is_inside_cloudformation_limits(scale_1000: Synthesized) -> None:
    for name, template in scale_1000.all_templates().items():
        assert len(template["Resources"]) <= MAX_RESOURCES, name
        assert len(template.get("Outputs", {})) <= MAX_OUTPUTS, name
        assert _size(template) <= MAX_TEMPLATE_BYTES_VIA_S3, name
    for body in (scale_1000.roles_body, scale_1000.regional_body, template_body(scale_1000.administrator_json)):
        assert len(body.encode("utf-8")) <= TEMPLATE_BODY_LIMIT
    # AND every listed account gets its instances: 1,000 roles instances, one per account x its regions
    config = scale_1000.config
    regional = scale_1000.stack_set(names.MEMBER_REGIONAL_STACKSET_NAME)
    deployed = sum(len(g["Regions"]) * len(g["DeploymentTargets"]["Accounts"]) for g in regional["StackInstancesGroup"])
    assert (
        deployed
        == instance_count(regional_instance_groups(config))
        == sum(len(config.regions_for(a)) for a in config.accounts)
    )
    roles = scale_1000.stack_set(names.MEMBER_ROLES_STACKSET_NAME)
    assert sum(len(g["DeploymentTargets"]["Accounts"]) for g in roles["StackInstancesGroup"]) == 1000
    # AND the Macie administrator (the security account, not a member here) forwards in the 3 other regions
    administrator = scale_1000.stack_set(names.ADMINISTRATOR_FORWARDING_STACKSET_NAME)
    assert [(g["Regions"], g["DeploymentTargets"]["Accounts"]) for g in administrator["StackInstancesGroup"]] == [
        (list(config.regions[1:]), [config.security_account.id])
    ]


def test_the_lambda_package_fits_with_a_1000_account_config(scale_1000: Synthesized) -> None:
    # GIVEN the config of 1,000 accounts bundled as JSON (it would never fit the 4 KB environment)
    bundle = build_bundle(scale_1000.config)
    config_file = bundle.code_dir / names.BUNDLED_CONFIG_FILE
    assert len(config_file.read_bytes()) > 4096
    # THEN code + dependency layer stay far below Lambda's unzipped limit
    assert _directory_size(bundle.code_dir) + _directory_size(bundle.dependencies_dir) < LAMBDA_UNZIPPED_LIMIT
