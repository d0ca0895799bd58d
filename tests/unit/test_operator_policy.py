"""`macie-chatops operator-policy`: the IAM policy the operator CLI's commands need (architecture §21), built from
accounts.yaml; every AWS call the commands make is allowed, and nothing else."""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from macie_chatops import approvals, exemption_store, group_store, jobs, names, slack_secrets, store, sweeper
from macie_chatops.cli import COMMANDS, main
from macie_chatops.config import Config, load_config
from macie_chatops.operator_policy import operator_policy, operator_policy_json
from tests.conftest import ROOT


def _example() -> Config:
    return load_config(ROOT / "accounts.yaml")


def test_the_policy_has_exactly_these_statements() -> None:
    config = _example()
    account, region = config.security_account.id, config.security_account.region
    table = f"arn:aws:dynamodb:{region}:{account}:table/{names.STATE_TABLE_NAME}"
    assert operator_policy(config) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadAndChangeFindingsAndExemptions",
                "Effect": "Allow",
                "Action": ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
                "Resource": table,
            },
            {
                "Sid": "ListPendingAndApprovedFindings",
                "Effect": "Allow",
                "Action": "dynamodb:Query",
                "Resource": [f"{table}/index/pending-by-team", f"{table}/index/approved-since"],
            },
            {
                "Sid": "ListPendingFindingsOfAllTeams",
                "Effect": "Allow",
                "Action": "dynamodb:Scan",
                "Resource": f"{table}/index/pending-by-team",
            },
            {
                "Sid": "QueueRemediationJobs",
                "Effect": "Allow",
                "Action": ["sqs:GetQueueAttributes", "sqs:SendMessage"],
                "Resource": f"arn:aws:sqs:{region}:{account}:macie-chatops-remediation",
            },
            {
                "Sid": "WakeTheDigestWriter",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": f"arn:aws:sqs:{region}:{account}:macie-chatops-digests",
            },
            {
                "Sid": "EncryptJobsWithTheCentralKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": f"arn:aws:kms:{region}:{account}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/macie-chatops"},
                    "StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"},
                },
            },
            {
                "Sid": "UseTheStateTableKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": f"arn:aws:kms:{region}:{account}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/macie-chatops-state"},
                    "StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"},
                },
            },
            {
                "Sid": "ReadSlackTokenForLinksAndMessageUpdates",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:aws:secretsmanager:{region}:{account}:secret:{config.slack.secret_name}-??????",
            },
            {
                "Sid": "DecryptTheSlackSecret",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": f"arn:aws:kms:{region}:{account}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/macie-chatops-slack"},
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
                },
            },
            {
                "Sid": "SignOperatorApprovals",
                "Effect": "Allow",
                "Action": "kms:GenerateMac",
                "Resource": f"arn:aws:kms:{region}:{account}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/macie-chatops-approvals"},
                    "StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"},
                },
            },
        ],
    }


def test_the_command_prints_valid_json_equal_to_the_builder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator-policy", "--config", str(ROOT / "accounts.yaml")]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == operator_policy(_example())
    assert printed.strip() == operator_policy_json(_example())


def test_a_broken_config_exits_2(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "accounts.yaml"
    broken.write_text("security_account: {}\n", encoding="utf-8")
    assert main(["operator-policy", "--config", str(broken)]) == 2
    assert capsys.readouterr().out == ""


# --- every AWS call of the operator commands is allowed: read from the code ------------------------------------

# The entry points each command reaches (cli.py, exemptions_cli.py, sweeper.py, job_request.py): restore and
# retry go through job_request.request_job; sweep through sweeper.sweep/requeue. A transition of a grouped finding
# moves its group's counts and wakes the digest writer (cli._GroupCounts: Grouping.state_changed, §22).
GROUP_COUNTS: list[Callable[..., Any]] = [
    group_store.GroupStore.count_alone,
    group_store.GroupStore.mark_dirty,
    group_store.SqsDigestQueue.wake,
]
COMMAND_ENTRY_POINTS: dict[str, list[Callable[..., Any]]] = {
    "pending": [store.FindingStore.pending_approvals, slack_secrets.load_slack_secrets],
    "restore": [
        store.FindingStore.get,
        store.FindingStore.transition,
        store.FindingStore.append_audit,
        jobs.SqsJobQueue.send,
        approvals.ApprovalSigner.stamp,
        *GROUP_COUNTS,
    ],
    "retry": [
        store.FindingStore.get,
        store.FindingStore.transition,
        store.FindingStore.append_audit,
        jobs.SqsJobQueue.send,
        approvals.ApprovalSigner.stamp,  # --reapprove
        *GROUP_COUNTS,
    ],
    "sweep": [
        store.FindingStore.approved_before,
        store.FindingStore.get,
        store.FindingStore.transition,
        store.FindingStore.append_audit,
        jobs.SqsJobQueue.send,
        jobs.SqsJobQueue.waiting,
        slack_secrets.load_slack_secrets,
        approvals.ApprovalSigner.stamp,  # --requeue --reapprove
        *GROUP_COUNTS,
    ],
    "exemptions": [exemption_store.ExemptionStore.for_accounts, exemption_store.ExemptionStore.revoke],
}
SERVICE_OF_CLIENT = {
    "_client": "dynamodb",
    "sqs": "sqs",
    "_sqs": "sqs",
    "secretsmanager_client": "secretsmanager",
    "_kms": "kms",
}


def _calls(function: Callable[..., Any], owner: type | None) -> set[tuple[str, str]]:
    """(service, operation) of every client call in ``function`` and in the methods of ``owner`` it calls."""
    found: set[tuple[str, str]] = set()
    seen: set[str] = set()

    def walk(fn: Callable[..., Any]) -> None:
        if fn.__qualname__ in seen:
            return
        seen.add(fn.__qualname__)
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            client = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
            if client in SERVICE_OF_CLIENT and not node.func.attr.startswith("exceptions"):
                found.add((SERVICE_OF_CLIENT[client], node.func.attr))
            elif isinstance(target, ast.Name) and target.id == "self" and owner is not None:
                method = getattr(owner, node.func.attr, None)
                if callable(method) and hasattr(method, "__code__"):
                    walk(method)

    walk(function)
    return found


def _owner(entry: Callable[..., Any]) -> type | None:
    classes = (
        store.FindingStore,
        exemption_store.ExemptionStore,
        jobs.SqsJobQueue,
        approvals.ApprovalSigner,
        group_store.GroupStore,
        group_store.SqsDigestQueue,
    )
    return next((c for c in classes if entry.__qualname__.startswith(c.__name__ + ".")), None)


def _action(service: str, operation: str) -> str:
    return f"{service}:{''.join(part.capitalize() for part in operation.split('_'))}"


def _allowed(policy: dict[str, Any]) -> set[str]:
    return {
        action
        for statement in policy["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }


@pytest.mark.parametrize("command", sorted(COMMAND_ENTRY_POINTS))
def test_every_call_of_each_command_is_allowed(command: str) -> None:
    allowed = _allowed(operator_policy(_example()))
    for entry in COMMAND_ENTRY_POINTS[command]:
        calls = _calls(entry, _owner(entry))
        assert calls, entry.__qualname__
        for service, operation in calls:
            assert _action(service, operation) in allowed, (command, entry.__qualname__, operation)


def test_nothing_is_allowed_that_no_command_calls() -> None:
    called = {
        _action(service, operation)
        for entries in COMMAND_ENTRY_POINTS.values()
        for entry in entries
        for service, operation in _calls(entry, _owner(entry))
    }
    # KMS: SQS encrypts a job sent to the queue (encrypted with the central key) with the sender's permissions,
    # DynamoDB and Secrets Manager use the table's and the secret's keys with the caller's
    assert _allowed(operator_policy(_example())) - called == {
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
    }


def test_the_commands_reach_only_these_store_and_queue_methods() -> None:
    """The entry points above are the ones the sweeper and the job request really call."""
    used = set(re.findall(r"\b(?:deps\.)?(store|queue)\.(\w+)\(", inspect.getsource(sweeper)))
    assert {m for kind, m in used if kind == "store"} <= {"get", "transition", "append_audit", "approved_before"}
    assert {m for kind, m in used if kind == "queue"} <= {"send", "waiting"}
    assert set(COMMANDS) >= {*COMMAND_ENTRY_POINTS, "operator-policy"}
