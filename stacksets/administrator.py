"""The Macie administrator's forwarding stack (docs/architecture.md §10): the member forwarding
(stacksets/forwarding.py) on the administrator account's default bus and, when the administrator is not the
security account, the reconciler's read-only Macie role (§13). IAM is global and each region is a stack instance,
so the forwarding role is named per region and lives here: no instance waits for another's, nor for the member
roles StackSet. The reader role is one role, created by one instance only (stacksets/macie_reader.py)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.forwarding import forward_to_central_bus, forwarding_role
from stacksets.macie_reader import administrator_reader_condition, macie_reader_role, reader_placement


class AdministratorForwardingStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.forward_role = forwarding_role(
            self,
            config=config,
            role_name=names.administrator_forward_role_name(Aws.REGION),
            description="macie-chatops: the Macie administrator's findings in this region -> the central bus",
        )
        forwarding = forward_to_central_bus(
            self,
            config=config,
            role=self.forward_role,
            rule_name=names.ADMINISTRATOR_FORWARD_RULE_NAME,
            dead_letter_queue_name=names.ADMINISTRATOR_FORWARD_DLQ_NAME,
            alarm_name=names.ADMINISTRATOR_FORWARD_ALARM_NAME,
            alarm_rule_name=names.ADMINISTRATOR_ALARM_RULE_NAME,
            rule_description="macie-chatops: Macie findings the administrator publishes (its jobs, automated "
            "discovery) -> the security account's central bus",
            alarm_description="macie-chatops: Macie findings published in the administrator account (this region) "
            "could not reach the central bus",
        )
        self.dead_letter_queue = forwarding.dead_letter_queue
        self.forward_rule = forwarding.forward_rule
        self.dead_letter_alarm = forwarding.dead_letter_alarm
        self.alarm_rule = forwarding.alarm_rule
        self.macie_reader_role: iam.Role | None = None
        if reader_placement(config) == "administrator":
            self.macie_reader_role = macie_reader_role(
                self, config, created_where=administrator_reader_condition(config)
            )
