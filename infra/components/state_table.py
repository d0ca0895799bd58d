"""The findings state table, built from the store's own ``TABLE_DEFINITION`` so the two cannot drift."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from macie_chatops.names import APPROVED_INDEX_NAME, PENDING_INDEX_NAME
from macie_chatops.store import TABLE_DEFINITION, TTL_SPECIFICATION

# What the store adapter does (conditional puts/updates, consistent reads, the pending-by-team query).
READ_WRITE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
)
# What DynamoDB asks KMS for on a reader's or writer's behalf with a customer-managed table key (the table key
# it caches is encrypted under it); CDK's own table grants add the same, with wildcards.
KEY_READ_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
KEY_WRITE_ACTIONS = (*KEY_READ_ACTIONS, "kms:Encrypt", "kms:GenerateDataKey")


def _attribute(definition: Mapping[str, Any], name: str) -> dynamodb.Attribute:
    types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    kinds = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER, "B": dynamodb.AttributeType.BINARY}
    return dynamodb.Attribute(name=name, type=kinds[types[name]])


def _key(definition: Mapping[str, Any], schema: list[Mapping[str, str]], kind: str) -> dynamodb.Attribute | None:
    for element in schema:
        if element["KeyType"] == kind:
            return _attribute(definition, element["AttributeName"])
    return None


class StateTable(Construct):
    """On-demand, point-in-time recovery, encrypted with its own customer-managed key, TTL on final states,
    deletion-protected and retained."""

    def __init__(self, scope: Construct, construct_id: str, *, table_name: str, encryption_key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.encryption_key = encryption_key
        if TABLE_DEFINITION["BillingMode"] != "PAY_PER_REQUEST":
            raise ValueError("the store's TABLE_DEFINITION is expected to be on-demand")
        partition_key = _key(TABLE_DEFINITION, TABLE_DEFINITION["KeySchema"], "HASH")
        assert partition_key is not None
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=partition_key,
            sort_key=_key(TABLE_DEFINITION, TABLE_DEFINITION["KeySchema"], "RANGE"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=encryption_key,
            time_to_live_attribute=TTL_SPECIFICATION["AttributeName"] if TTL_SPECIFICATION["Enabled"] else None,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.index_names: list[str] = []
        for index in TABLE_DEFINITION.get("GlobalSecondaryIndexes", []):
            index_partition = _key(TABLE_DEFINITION, index["KeySchema"], "HASH")
            assert index_partition is not None
            projection = index["Projection"]["ProjectionType"]
            self.table.add_global_secondary_index(
                index_name=index["IndexName"],
                partition_key=index_partition,
                sort_key=_key(TABLE_DEFINITION, index["KeySchema"], "RANGE"),
                projection_type=dynamodb.ProjectionType(projection),
            )
            self.index_names.append(index["IndexName"])

    def _index_arn(self, name: str) -> str:
        return Stack.of(self).format_arn(
            service="dynamodb", resource="table", resource_name=f"{self.table.table_name}/index/{name}"
        )

    def grant_sweep(self, grantee: iam.IGrantable) -> None:
        """The sweeper's: query the approved index, read an item consistently and update it (audit, error);
        nothing else (no puts, no other index, no scans, no deletes)."""
        if APPROVED_INDEX_NAME not in self.index_names:
            raise ValueError(f"the state table has no {APPROVED_INDEX_NAME} index to grant")
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:Query"], resources=[self._index_arn(APPROVED_INDEX_NAME)])
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[self.table.table_arn])
        )
        self.grant_key(grantee, write=True)

    def grant_remind(self, grantee: iam.IGrantable) -> None:
        """The reminders job's: query the pending index, update items (their reminder marks and audit) and read
        one when a condition refused it; nothing else (no puts, no other index, no scans, no deletes)."""
        if PENDING_INDEX_NAME not in self.index_names:
            raise ValueError(f"the state table has no {PENDING_INDEX_NAME} index to grant")
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:Query"], resources=[self._index_arn(PENDING_INDEX_NAME)])
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[self.table.table_arn])
        )
        self.grant_key(grantee, write=True)

    def grant_read_write(self, grantee: iam.IGrantable) -> None:
        """Item reads and conditional writes on the table and its named indexes (no scans, no deletes)."""
        stack = Stack.of(self)
        index_arns = [
            stack.format_arn(
                service="dynamodb", resource="table", resource_name=f"{self.table.table_name}/index/{name}"
            )
            for name in self.index_names
        ]
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(READ_WRITE_ACTIONS), resources=[self.table.table_arn, *index_arns])
        )
        self.grant_key(grantee, write=True)

    def grant_key(self, grantee: iam.IGrantable, *, write: bool) -> None:
        """The table key, only through DynamoDB of this region (``write``: encrypt too; else decrypt only, e.g.
        for reading the table's stream)."""
        stack = Stack.of(self)
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(KEY_WRITE_ACTIONS if write else KEY_READ_ACTIONS),
                resources=[self.encryption_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{stack.region}.amazonaws.com"}},
            )
        )
