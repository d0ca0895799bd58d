"""The IAM policy `macie-chatops operator-policy` prints (architecture §21): exactly what the operator CLI's
commands that touch AWS need, in the security account's home region (``security_account``), nothing else.

What each command calls (read from cli.py, exemptions_cli.py, store.py, exemption_store.py, jobs.py, sweeper.py):
- ``pending``: Query of the pending index (``--team``), else Scan of it; GetSecretValue on the Slack secret
  when ``--slack-secret`` (or $SLACK_SECRET_ARN) names it, for the message links;
- ``restore``, ``retry``: GetItem and UpdateItem (the transition, the audit entry, the undo) on the table;
  SendMessage on the remediation queue (encrypted with the central key: GenerateDataKey and Decrypt through SQS);
  for a grouped finding, UpdateItem of its group (the counts) and SendMessage on the digest queue (the writer's
  wake-up, same key; architecture §22), as the sweep's transitions do;
- ``sweep``: Query of the approved index, GetItem and UpdateItem; GetQueueAttributes (the backlog) and
  SendMessage on the queue; GetSecretValue when it updates the stuck findings' Slack messages
  (``--requeue``: GetItem, UpdateItem, SendMessage);
- ``restore``, ``retry --reapprove``, ``sweep --requeue --reapprove``: GenerateMac on the approval key (the
  operator's signed approval, architecture §23), found by its alias;
- ``exemptions list``: BatchGetItem on the table; ``exemptions revoke``: UpdateItem (GetItem when it is
  refused, to say why).

The state table and the Slack secret are encrypted with customer-managed keys of their own (architecture §25):
the table's key through DynamoDB (Decrypt to read, Encrypt and GenerateDataKey to write, as the stack grants the
handlers), the secret's key through Secrets Manager (Decrypt), each found by its alias. ``validate``, ``decide``,
``schema``, ``slack-manifest``, ``scp`` and this command touch no AWS API.
"""

from __future__ import annotations

import json
from typing import Any, Final

from macie_chatops import names
from macie_chatops.config import Config

TABLE_ACTIONS: Final = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem")
QUEUE_ACTIONS: Final = ("sqs:GetQueueAttributes", "sqs:SendMessage")
QUEUE_KEY_ACTIONS: Final = ("kms:Decrypt", "kms:GenerateDataKey")
TABLE_KEY_ACTIONS: Final = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
SECRET_KEY_ACTIONS: Final = ("kms:Decrypt",)


def operator_policy(
    config: Config,
    *,
    table_name: str = names.STATE_TABLE_NAME,
    queue_name: str = names.REMEDIATION_QUEUE_NAME,
    partition: str = "aws",
) -> dict[str, Any]:
    """The identity-based policy document for the people (or the role) who run the operator CLI."""
    account, region = config.security_account.id, config.security_account.region
    table = f"arn:{partition}:dynamodb:{region}:{account}:table/{table_name}"
    secret = f"arn:{partition}:secretsmanager:{region}:{account}:secret:{config.slack.secret_name}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadAndChangeFindingsAndExemptions",
                "Effect": "Allow",
                "Action": list(TABLE_ACTIONS),
                "Resource": table,
            },
            {
                "Sid": "ListPendingAndApprovedFindings",
                "Effect": "Allow",
                "Action": "dynamodb:Query",
                "Resource": [
                    f"{table}/index/{names.PENDING_INDEX_NAME}",
                    f"{table}/index/{names.APPROVED_INDEX_NAME}",
                ],
            },
            {
                "Sid": "ListPendingFindingsOfAllTeams",
                "Effect": "Allow",
                "Action": "dynamodb:Scan",
                "Resource": f"{table}/index/{names.PENDING_INDEX_NAME}",
            },
            {
                "Sid": "QueueRemediationJobs",
                "Effect": "Allow",
                "Action": list(QUEUE_ACTIONS),
                "Resource": f"arn:{partition}:sqs:{region}:{account}:{queue_name}",
            },
            {
                "Sid": "WakeTheDigestWriter",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": f"arn:{partition}:sqs:{region}:{account}:{names.DIGEST_QUEUE_NAME}",
            },
            {
                "Sid": "EncryptJobsWithTheCentralKey",
                "Effect": "Allow",
                "Action": list(QUEUE_KEY_ACTIONS),
                "Resource": f"arn:{partition}:kms:{region}:{account}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": names.CENTRAL_KEY_ALIAS},
                    "StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"},
                },
            },
            _key_through(
                "UseTheStateTableKey", TABLE_KEY_ACTIONS, names.STATE_KEY_ALIAS, "dynamodb", partition, region, account
            ),
            {
                "Sid": "ReadSlackTokenForLinksAndMessageUpdates",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                # Secrets Manager appends a hyphen and six random characters to the secret's name in its ARN.
                "Resource": f"{secret}-??????",
            },
            _key_through(
                "DecryptTheSlackSecret",
                SECRET_KEY_ACTIONS,
                names.SLACK_SECRET_KEY_ALIAS,
                "secretsmanager",
                partition,
                region,
                account,
            ),
            _sign_approvals(partition, region, account),
        ],
    }


def _sign_approvals(partition: str, region: str, account: str) -> dict[str, Any]:
    """restore, retry --reapprove, sweep --requeue --reapprove: the operator's own signed approval (§23)."""
    return {
        "Sid": "SignOperatorApprovals",
        "Effect": "Allow",
        "Action": "kms:GenerateMac",
        "Resource": f"arn:{partition}:kms:{region}:{account}:key/*",
        "Condition": {
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": names.APPROVAL_KEY_ALIAS},
            "StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"},
        },
    }


def _key_through(
    sid: str, actions: tuple[str, ...], alias: str, service: str, partition: str, region: str, account: str
) -> dict[str, Any]:
    """A key found by its alias (its id is not known before deploy), used only through ``service``."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": f"arn:{partition}:kms:{region}:{account}:key/*",
        "Condition": {
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": alias},
            "StringEquals": {"kms:ViaService": f"{service}.{region}.amazonaws.com"},
        },
    }


def operator_policy_json(config: Config, **names_: str) -> str:
    return json.dumps(operator_policy(config, **names_), indent=2)
