"""ARNs a member template names. The template is shared by every account and region of its StackSet, so the
member's own account and region are pseudo parameters; the security account's come from accounts.yaml."""

from __future__ import annotations

from aws_cdk import Aws

from macie_chatops import names
from macie_chatops.config import Config


def remediator_role_arn(config: Config) -> str:
    """The central remediator's role (fixed name), the only principal member accounts trust."""
    return f"arn:{Aws.PARTITION}:iam::{config.security_account.id}:role/{names.REMEDIATOR_ROLE_NAME}"


def central_bus_arn(config: Config) -> str:
    home = config.security_account
    return f"arn:{Aws.PARTITION}:events:{home.region}:{home.id}:event-bus/{names.CENTRAL_BUS_NAME}"


def member_role_arn(role_name: str) -> str:
    """A role of the account the StackSet instance runs in."""
    return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{role_name}"


def quarantine_bucket_arn_pattern() -> str:
    # names.quarantine_bucket_name(account, "*"): this account's quarantine bucket in every region.
    return f"arn:{Aws.PARTITION}:s3:::{names.quarantine_bucket_name(Aws.ACCOUNT_ID, '*')}"
