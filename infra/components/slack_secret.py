"""The Slack app's credentials: a Secrets Manager secret created *empty*.

No template, context value or environment variable ever holds the bot token or the signing secret. The
stack creates the secret without a value (CloudFormation creates an empty secret when neither SecretString
nor GenerateSecretString is given); the operator then stores ``{"bot_token": ..., "signing_secret": ...}``
once (docs/deploy.md). The Lambdas get the secret's ARN, never its value.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from macie_chatops import names
from stacksets.nag import acknowledge


class SlackSecret(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, secret_name: str, encryption_key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.encryption_key = encryption_key
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=secret_name,
            description=(
                f'macie-chatops Slack app credentials: JSON {{"{names.SLACK_SECRET_BOT_TOKEN}": "xoxb-...", '
                f'"{names.SLACK_SECRET_SIGNING_SECRET}": "..."}}; set by the operator after deployment'
            ),
            encryption_key=encryption_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The L2 construct always asks CloudFormation to generate a random value; an empty secret is the
        # honest state until the operator stores the real credentials.
        cfn_secret = self.secret.node.default_child
        assert isinstance(cfn_secret, secretsmanager.CfnSecret)
        cfn_secret.add_property_deletion_override("GenerateSecretString")
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The Slack bot token and signing secret are issued and rotated in Slack (app settings), not by a "
            "Secrets Manager rotation Lambda; docs/deploy.md describes rotating them and updating this secret.",
        )

    def grant_read(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                resources=[self.secret.secret_arn],
            )
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[self.encryption_key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )
