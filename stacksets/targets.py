"""Which accounts get which member stacks, in which regions: a pure function of accounts.yaml.

The Macie administrator's forwarding goes where its findings are published and nothing forwards them yet
(``administrator_instance_groups``, ``central_administrator_forwarding``).

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


def administrator_instance_groups(config: Config) -> list[InstanceGroup]:
    """The Macie administrator's forwarding: its account, in each listed region where it is not a member, except
    the home region when it is the security account (the central stack has that rule). Empty: no StackSet."""
    regions = config.administrator_forwarding_regions()
    if config.administrator_is_security_account:
        regions = tuple(region for region in regions if region != config.security_account.region)
    return [InstanceGroup(regions=regions, accounts=(config.macie_administrator_id,))] if regions else []


def central_administrator_forwarding(config: Config) -> bool:
    """True when the central stack forwards the administrator's default bus in the home region: the administrator
    is the security account and not a member there."""
    return (
        config.administrator_is_security_account
        and config.security_account.region in config.administrator_forwarding_regions()
    )


def instance_count(groups: list[InstanceGroup]) -> int:
    return sum(len(g.regions) * len(g.accounts) for g in groups)
