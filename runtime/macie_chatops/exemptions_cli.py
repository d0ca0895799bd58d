"""``macie-chatops exemptions list [--all]`` and ``exemptions revoke ID`` (docs/architecture.md §16).

``list`` prints one JSON line per exemption, accounts.yaml's and those recorded from Slack for the accounts
accounts.yaml lists, oldest first: the active ones, or with ``--all`` also those that ran out or were
revoked. ``revoke`` marks one recorded from Slack as revoked by the operator (``cli:<user>``), and adds a
line to the dismissed finding's audit trail; accounts.yaml's are revoked by editing the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from macie_chatops import cli
from macie_chatops.config import Config
from macie_chatops.exemption_store import ExemptionError, ExemptionStore
from macie_chatops.exemptions import CONFIG_SOURCE, Exemption, from_config


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="exemptions_command", required=True, metavar="EXEMPTIONS_COMMAND")
    listing = sub.add_parser("list", help="active exemptions, one JSON line each (accounts.yaml's and Slack's)")
    listing.add_argument("--all", action="store_true", help="also those that ran out or were revoked")
    revoke = sub.add_parser("revoke", help="revoke an exemption recorded from Slack (audited)")
    revoke.add_argument("exemption_id", metavar="ID")


def line(exemption: Exemption, now: datetime) -> dict[str, Any]:
    if exemption.revoked_at is not None:
        status = "revoked"
    elif exemption.active(now):
        status = "active"
    else:
        status = "expired"
    data: dict[str, Any] = {
        "id": exemption.id,
        "status": status,
        "source": exemption.source,
        "account": exemption.account_id,
        "bucket": exemption.bucket,
        "scope": exemption.scope.value,
        "key": exemption.key,
        "version": exemption.version,
        "types": list(exemption.types),
        "until": exemption.until.isoformat(),
        "reason": exemption.reason,
        "created_by": exemption.created_by,
        "finding_id": exemption.finding_id,
    }
    if exemption.source != CONFIG_SOURCE:
        data["created_at"] = exemption.created_at.isoformat()
    if exemption.revoked_at is not None:
        data["revoked_by"], data["revoked_at"] = exemption.revoked_by, exemption.revoked_at.isoformat()
    return data


def run(args: argparse.Namespace) -> int:
    config = cli._load(args)
    if config is None:
        return cli.EXIT_BAD_INPUT
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    table = cli._state_table(args)
    store = ExemptionStore(boto3.client("dynamodb", region_name=args.region), table)
    try:
        if args.exemptions_command == "list":
            return _list(config, store, show_all=args.all)
        return _revoke(args, store, table)
    except (BotoCoreError, ClientError) as exc:
        print(f"exemptions: the state table {table} could not be used: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED


def _list(config: Config, store: ExemptionStore, *, show_all: bool) -> int:
    now = datetime.now(UTC)
    recorded = store.for_accounts(account.id for account in config.accounts)
    shown = [e for e in (*from_config(config), *recorded) if show_all or e.active(now)]
    for exemption in shown:
        print(json.dumps(line(exemption, now), ensure_ascii=False), flush=True)
    which = "exemption(s)" if show_all else "active exemption(s)"
    print(f"{len(shown)} {which} for {len(config.accounts)} account(s)", file=sys.stderr)
    return cli.EXIT_OK


def _revoke(args: argparse.Namespace, store: ExemptionStore, table: str) -> int:
    if args.exemption_id.startswith(CONFIG_SOURCE):
        print(f"exemptions revoke: {args.exemption_id} is written in accounts.yaml: remove it there", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    operator = cli._operator()
    try:
        revoked = store.revoke(args.exemption_id, by=operator)
    except ExemptionError as exc:
        print(f"exemptions revoke: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    print(json.dumps(line(revoked, datetime.now(UTC)), ensure_ascii=False), flush=True)
    if revoked.finding_id:
        from macie_chatops.store import FindingNotFoundError

        detail = f"exemption {revoked.id} revoked ({revoked.describe_scope()})"
        try:
            cli._finding_store(args, table).append_audit(
                revoked.finding_id, actor=operator, event="exemption_revoked", outcome="revoked", detail=detail
            )
        except FindingNotFoundError:
            print(f"exemptions revoke: finding {revoked.finding_id} has no record to audit it on", file=sys.stderr)
    print(
        f"exemption {revoked.id} revoked by {operator}: findings it covered are handled normally again", file=sys.stderr
    )
    return cli.EXIT_OK
