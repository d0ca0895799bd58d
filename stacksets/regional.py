"""The member *regional* stack: every member account x configured region. Its parts: the forwarding of the
default bus's Macie findings to the central bus (stacksets/forwarding.py) and the quarantine
(stacksets/quarantine.py)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from macie_chatops import names
from macie_chatops.config import Config
from stacksets.arns import member_role_arn
from stacksets.forwarding import forward_to_central_bus
from stacksets.quarantine import Quarantine


class MemberRegionalStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        forwarding = forward_to_central_bus(
            self,
            config=config,
            role=iam.Role.from_role_arn(
                self, "ForwardRole", member_role_arn(names.MEMBER_FORWARD_ROLE_NAME), mutable=False
            ),
            rule_name=names.MEMBER_FORWARD_RULE_NAME,
            dead_letter_queue_name=names.MEMBER_FORWARD_DLQ_NAME,
            alarm_name=f"{names.MEMBER_ALARM_NAME_PREFIX}forward-dlq",
            alarm_rule_name=names.MEMBER_ALARM_RULE_NAME,
            rule_description="macie-chatops: Macie findings -> the security account's central bus",
            alarm_description="macie-chatops: Macie findings of this account/region could not reach the central bus",
        )
        self.dead_letter_queue = forwarding.dead_letter_queue
        self.forward_rule = forwarding.forward_rule
        self.dead_letter_alarm = forwarding.dead_letter_alarm
        self.alarm_rule = forwarding.alarm_rule

        quarantine = Quarantine(
            self, config, remediation_role_arn=member_role_arn(config.deployment.remediation_role_name)
        )
        self.key = quarantine.key
        self.access_log_bucket = quarantine.access_log_bucket
        self.bucket = quarantine.bucket
