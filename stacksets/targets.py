"""Which accounts get which member stacks, in which regions: a pure function of accounts.yaml.

Onboarding is adding an account entry: its id joins the instance group for its region set (an account with
its own ``regions`` subset lands in the group of accounts with that same set), and the next deployment of
the StackSets stack creates its instances. Removing an entry removes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from macie_chatops.config import Config


@dataclass(frozen=True)
class InstanceGroup:
    """One ``StackInstancesGroup`` entry: these accounts, in these regions."""

    regions: tuple[str, ...]
    accounts: tuple[str, ...]


def regional_instance_groups(config: Config) -> list[InstanceGroup]:
    """Accounts grouped by their region set (regions in accounts.yaml order; accounts in file order)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for account in config.accounts:
        wanted = set(config.regions_for(account))
        regions = tuple(region for region in config.regions if region in wanted)
        groups.setdefault(regions, []).append(account.id)
    return [InstanceGroup(regions=regions, accounts=tuple(ids)) for regions, ids in groups.items()]


def roles_instance_groups(config: Config) -> list[InstanceGroup]:
    """IAM is global: one roles instance per account, deployed in the security account's home region."""
    return [InstanceGroup(regions=(config.security_account.region,), accounts=tuple(a.id for a in config.accounts))]


def instance_count(groups: list[InstanceGroup]) -> int:
    return sum(len(g.regions) * len(g.accounts) for g in groups)
