"""Generated organisations (accounts.yaml documents) of any size, for the infrastructure tests and
bench/bench_synth_scale.py. The text goes through the real loader (``parse_config``), so a generated
organisation is validated exactly like an operator's file."""

from __future__ import annotations

from typing import Any

import yaml

from macie_chatops.config import Config, parse_config

SCALE_REGIONS = ("us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2")


def org_document(*, accounts: int, teams: int, regions: tuple[str, ...] = SCALE_REGIONS) -> dict[str, Any]:
    """An organisation of ``accounts`` accounts spread over ``teams`` teams; every 7th account uses a region
    subset (the first two regions) and every 5th team overrides the policy, like a real file would."""
    team_names = [f"team-{i:03d}" for i in range(teams)]
    document: dict[str, Any] = {
        "version": 1,
        "organization_id": "o-a1b2c3d4e5",
        "security_account": {"id": "210987654321", "region": regions[0]},
        "regions": list(regions),
        "slack": {"team_id": "T0EXAMPLE", "secret_name": "macie-chatops/slack"},
        "quarantine": {"retention_days": 90},
        "teams": {
            name: {
                "channel": f"C0{i:07d}",
                "approvers": [f"U0{i:07d}", f"S0{i:07d}"],
                **({"policy": {"min_severity": "Medium"}} if i % 5 == 0 else {}),
            }
            for i, name in enumerate(team_names)
        },
        "accounts": [
            {
                "id": f"{100000000000 + i:012d}",
                "name": f"account-{i:04d}",
                "team": team_names[i % teams],
                **({"regions": list(regions[:2])} if i % 7 == 3 else {}),
            }
            for i in range(accounts)
        ],
        "deployment": {
            "permission_model": "SERVICE_MANAGED",
            "call_as": "DELEGATED_ADMIN",
            "organizational_units": ["ou-abcd-12345678"],
        },
    }
    return document


def to_yaml(document: dict[str, Any]) -> str:
    # Account ids must be quoted in YAML; safe_dump quotes digit-only strings.
    return yaml.safe_dump(document, sort_keys=False)


def org_config(*, accounts: int, teams: int, regions: tuple[str, ...] = SCALE_REGIONS) -> Config:
    return parse_config(to_yaml(org_document(accounts=accounts, teams=teams, regions=regions)), "generated.yaml")
