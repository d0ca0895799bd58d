"""The central stack: the security account, home region. Everything the pipeline runs on.

member default buses --> central bus (org-only PutEvents) --rule--> intake queue --> finding handler
this account's default bus, home region (when it is the Macie administrator) --> central bus
Slack click --> API Gateway POST /slack/interactions --> interaction handler
schedule (rate 15 minutes) --> sweeper --> remediation queue (approved findings whose job was lost)
finding / interaction handler --> remediation queue --> remediator --assume--> member remediation role
state table (DynamoDB), Slack secret (empty until the operator fills it), alarms -> SNS topic.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import AssetHashType, CfnOutput, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.components.alarms import OperationalAlarms
from infra.components.event_bus import CentralEventBus
from infra.components.handler import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, HandlerFunction
from infra.components.queues import QueueWithDeadLetter, acknowledge_event_target_dlq, dead_letter_queue
from infra.components.slack_api import SlackInteractionsApi
from infra.components.slack_secret import SlackSecret
from infra.components.state_table import StateTable
from infra.lambda_bundle import LambdaBundle
from macie_chatops import names
from macie_chatops.config import Config
from stacksets.event_patterns import macie_finding_pattern
from stacksets.nag import acknowledge
from stacksets.roles import ASSUME_ACTIONS
from stacksets.targets import central_administrator_forwarding

LOG_RETENTION = logs.RetentionDays.ONE_YEAR

FINDING_TIMEOUT = Duration.seconds(60)  # parse, decide, one conditional write, one Slack post (with 429 retries)
FINDING_BATCH_SIZE = 10
FINDING_MAX_CONCURRENCY = 5  # bounds the Slack chat.postMessage rate

INTERACTION_TIMEOUT = Duration.seconds(10)  # Slack wants an answer within 3 s; the rest is queued
INTERACTION_MEMORY_MB = 1024  # more memory = more CPU = a shorter cold start inside Slack's 3 s

REMEDIATOR_TIMEOUT = Duration.minutes(15)  # a 5 TB object is a long multipart UploadPartCopy series
# A full vCPU (1,769 MB) for the copy threads and for hashing the copy during verification.
REMEDIATOR_MEMORY_MB = 1769
REMEDIATOR_CONCURRENCY = 5  # reserved: moves never starve other functions, nor flood member accounts

# The sweeper re-queues the job of a finding APPROVED for longer than SWEEP_STALE_AFTER with no outcome, at
# most SWEEP_MAX_REQUEUES times per approval, then reports it stuck (the StuckApprovals alarm). Stale means
# longer than one remediator attempt can run (its timeout; the remediation queue's visibility timeout only
# hides a message that long because AWS asks for 6x), so no attempt is still running for that approval.
SWEEP_INTERVAL = Duration.minutes(15)
SWEEP_STALE_AFTER = Duration.minutes(2 * int(REMEDIATOR_TIMEOUT.to_minutes()))
SWEEP_MAX_REQUEUES = 3
SWEEPER_TIMEOUT = Duration.minutes(2)  # one index query, and per stale finding a read, a send and a write
SWEEP_RETRIES = 2  # EventBridge retries a failed invocation; a later sweep covers it anyway

# AWS: an SQS event source's queue should keep a message invisible for at least 6x the function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6
INTAKE_MAX_RECEIVES = 5
REMEDIATION_MAX_RECEIVES = 3


class CentralStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: Config, bundle: LambdaBundle, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        key = kms.Key(
            self,
            "Key",
            alias="alias/macie-chatops",
            description="macie-chatops: encrypts the queues and the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # EventBridge delivers to the encrypted intake queue, the DLQs and the topic with its service principal.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeDeliversToEncryptedTargets",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )

        state = StateTable(self, "State", table_name=names.STATE_TABLE_NAME)
        slack_secret = SlackSecret(self, "SlackSecret", secret_name=config.slack.secret_name)
        delivery_dlq = dead_letter_queue(
            self, "DeliveryDeadLetterQueue", queue_name=names.CENTRAL_DELIVERY_DLQ_NAME, encryption_key=key
        )
        acknowledge_event_target_dlq(delivery_dlq)
        intake = QueueWithDeadLetter(
            self,
            "Intake",
            queue_name=names.INTAKE_QUEUE_NAME,
            dead_letter_queue_name=names.INTAKE_DLQ_NAME,
            encryption_key=key,
            visibility_timeout=Duration.seconds(FINDING_TIMEOUT.to_seconds() * VISIBILITY_TIMEOUT_FACTOR),
            max_receive_count=INTAKE_MAX_RECEIVES,
        )
        remediation = QueueWithDeadLetter(
            self,
            "Remediation",
            queue_name=names.REMEDIATION_QUEUE_NAME,
            dead_letter_queue_name=names.REMEDIATION_DLQ_NAME,
            encryption_key=key,
            visibility_timeout=Duration.seconds(REMEDIATOR_TIMEOUT.to_seconds() * VISIBILITY_TIMEOUT_FACTOR),
            max_receive_count=REMEDIATION_MAX_RECEIVES,
        )
        bus = CentralEventBus(
            self,
            "Events",
            bus_name=names.CENTRAL_BUS_NAME,
            organization_id=config.organization_id,
            intake_rule_name=names.CENTRAL_RULE_NAME,
            intake_queue=intake.queue,
            delivery_dead_letter_queue=delivery_dlq,
        )

        # This account is the Macie administrator (the default): its jobs and automated discovery publish findings
        # on its default bus, in the bucket's region. In the home region this rule sends them to the central bus
        # (archive, intake rule) like a member's; other regions: the administrator forwarding StackSet.
        # docs/architecture.md §10.
        self.administrator_forward_rule: events.Rule | None = None
        administrator_dlq: sqs.Queue | None = None
        if central_administrator_forwarding(config):
            administrator_dlq = dead_letter_queue(
                self,
                "AdministratorForwardDeadLetterQueue",
                queue_name=names.ADMINISTRATOR_FORWARD_DLQ_NAME,
                encryption_key=key,
            )
            acknowledge_event_target_dlq(administrator_dlq)
            self.administrator_forward_rule = events.Rule(
                self,
                "AdministratorForwardRule",
                rule_name=names.ADMINISTRATOR_FORWARD_RULE_NAME,
                description="macie-chatops: Macie findings the administrator (this account) publishes here -> the "
                "central bus",
                event_pattern=macie_finding_pattern(),
                # No role given: CDK makes one that may PutEvents on this bus only (same account and region).
                targets=[targets.EventBus(bus.bus, dead_letter_queue=administrator_dlq)],
            )

        dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            description="macie-chatops runtime dependencies (aws-lambda-powertools, pydantic, slack-sdk), pinned",
            code=lambda_.Code.from_asset(
                str(bundle.dependencies_dir), asset_hash=bundle.dependencies_hash, asset_hash_type=AssetHashType.CUSTOM
            ),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
        )
        code = lambda_.Code.from_asset(
            str(bundle.code_dir), asset_hash=bundle.code_hash, asset_hash_type=AssetHashType.CUSTOM
        )
        common_env = {
            names.ENV_STATE_TABLE: state.table.table_name,
            names.ENV_SLACK_SECRET_ARN: slack_secret.secret.secret_arn,
        }
        with_queue_env = {**common_env, names.ENV_REMEDIATION_QUEUE_URL: remediation.queue.queue_url}

        finding = HandlerFunction(
            self,
            "FindingHandler",
            function_name=names.FINDING_FUNCTION_NAME,
            handler="macie_chatops.handlers.intake.lambda_handler",
            description="decides each Macie finding, records it, asks or tells the team in Slack",
            code=code,
            dependencies=dependencies,
            environment=with_queue_env,
            timeout=FINDING_TIMEOUT,
            memory_size=512,
            log_retention=LOG_RETENTION,
        )
        finding.function.add_event_source(
            event_sources.SqsEventSource(
                intake.queue,
                batch_size=FINDING_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=FINDING_MAX_CONCURRENCY,
            )
        )
        interaction = HandlerFunction(
            self,
            "InteractionHandler",
            function_name=names.INTERACTION_FUNCTION_NAME,
            handler="macie_chatops.handlers.interaction.lambda_handler",
            description="verifies Slack clicks, records the approver's decision, queues the work",
            code=code,
            dependencies=dependencies,
            environment=with_queue_env,
            timeout=INTERACTION_TIMEOUT,
            memory_size=INTERACTION_MEMORY_MB,
            log_retention=LOG_RETENTION,
        )
        remediator = HandlerFunction(
            self,
            "Remediator",
            function_name=names.REMEDIATOR_FUNCTION_NAME,
            handler="macie_chatops.handlers.remediation.lambda_handler",
            description="moves the exact object version into the member account's quarantine bucket",
            code=code,
            dependencies=dependencies,
            environment=common_env,
            timeout=REMEDIATOR_TIMEOUT,
            memory_size=REMEDIATOR_MEMORY_MB,
            log_retention=LOG_RETENTION,
            role_name=names.REMEDIATOR_ROLE_NAME,
            reserved_concurrent_executions=REMEDIATOR_CONCURRENCY,
        )
        remediator.function.add_event_source(
            event_sources.SqsEventSource(
                remediation.queue,
                batch_size=1,  # one move per invocation: each may take most of the 15 minutes
                report_batch_item_failures=True,
                max_concurrency=REMEDIATOR_CONCURRENCY,
            )
        )

        sweeper = HandlerFunction(
            self,
            "Sweeper",
            function_name=names.SWEEPER_FUNCTION_NAME,
            handler="macie_chatops.handlers.sweeper.lambda_handler",
            description="re-queues approved quarantines that have no outcome; reports the stuck ones",
            code=code,
            dependencies=dependencies,
            environment={
                **with_queue_env,
                names.ENV_SWEEP_STALE_AFTER_S: str(int(SWEEP_STALE_AFTER.to_seconds())),
                names.ENV_SWEEP_MAX_REQUEUES: str(SWEEP_MAX_REQUEUES),
            },
            timeout=SWEEPER_TIMEOUT,
            memory_size=512,
            log_retention=LOG_RETENTION,
            reserved_concurrent_executions=1,  # sweeps never overlap (a late one and the next scheduled one)
        )
        sweep_schedule = events.Rule(
            self,
            "SweepSchedule",
            rule_name=names.SWEEPER_SCHEDULE_RULE_NAME,
            description="runs the macie-chatops sweeper: approved quarantines are never silently forgotten",
            schedule=events.Schedule.rate(SWEEP_INTERVAL),
            targets=[
                targets.LambdaFunction(sweeper.function, dead_letter_queue=delivery_dlq, retry_attempts=SWEEP_RETRIES)
            ],
        )

        # Least privilege: what each handler does, on exactly these resources.
        for handler in (finding, interaction, remediator):
            state.grant_read_write(handler.role)
            slack_secret.grant_read(handler.role)
        for producer in (finding, interaction, sweeper):
            remediation.grant_send(producer.role)
        state.grant_sweep(sweeper.role)  # query the approved index, read and update items: no puts, no scans
        remediation.grant_depth(sweeper.role)  # jobs still waiting: a backlog defers re-queues (sweeper.py)
        slack_secret.grant_read(sweeper.role)  # to tell a stuck finding's team, in its Slack message
        member_role = f"arn:{self.partition}:iam::*:role/{config.deployment.remediation_role_name}"
        remediator.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="AssumeMemberRemediationRoles",
                actions=list(ASSUME_ACTIONS),
                resources=[member_role],
                conditions={"StringEquals": {"aws:ResourceOrgID": config.organization_id}},
            )
        )
        partition = "<AWS::Partition>" if Token.is_unresolved(self.partition) else self.partition
        acknowledge(
            remediator.role,
            f"AwsSolutions-IAM5[Resource::arn:{partition}:iam::*:role/{config.deployment.remediation_role_name}]",
            "The remediator must reach the remediation role in whichever member account a finding names "
            "(1,000s of accounts); aws:ResourceOrgID keeps that to this organisation, and each role trusts only "
            "this one.",
        )

        api = SlackInteractionsApi(
            self,
            "SlackInteractions",
            api_name=names.SLACK_API_NAME,
            path=names.SLACK_INTERACTIONS_PATH,
            handler=interaction.function,
            log_retention=LOG_RETENTION,
        )

        alarms = OperationalAlarms(self, "Alarms", topic_name=names.ALARM_TOPIC_NAME, encryption_key=key)
        watched_dead_letters = [
            ("IntakeDeadLetters", intake.dead_letter_queue, "findings the finding handler failed on 5 times"),
            ("RemediationDeadLetters", remediation.dead_letter_queue, "remediation jobs that failed 3 times"),
            ("DeliveryDeadLetters", delivery_dlq, "events the central rules could not deliver"),
        ]
        if administrator_dlq is not None:
            watched_dead_letters.append(
                ("AdministratorForwardDeadLetters", administrator_dlq, "administrator findings not sent to the bus")
            )
        for construct_id, queue, what in watched_dead_letters:
            alarms.on_dead_letters(
                construct_id, queue=queue, alarm_name=f"{queue.queue_name}-not-empty", description=what
            )
        for handler in (finding, interaction, remediator, sweeper):
            alarms.on_function_errors(
                f"{handler.node.id}Errors", function=handler.function, alarm_name=f"{handler.node.id}-errors"
            )
        alarms.on_rule_failures(
            "IntakeRule", rule=bus.intake_rule, bus_name=names.CENTRAL_BUS_NAME, alarm_name="intake-rule"
        )
        alarms.on_api_server_errors("SlackApi5xx", api=api.api, alarm_name="slack-endpoint-5xx")
        alarms.on_stuck_approvals(
            "StuckApprovals",
            metric_name=names.STUCK_APPROVALS_METRIC,
            service=names.SWEEPER_FUNCTION_NAME,
            period=SWEEP_INTERVAL,
            alarm_name="stuck-approvals",
        )
        alarms.relay_member_alarms(
            "MemberAlarms",
            bus=bus.bus,
            alarm_name_prefix=names.MEMBER_ALARM_NAME_PREFIX,
            dead_letter_queue=delivery_dlq,
        )

        self.bus = bus.bus
        self.slack_url = api.url
        self.alarm_topic = alarms.topic
        self.slack_secret = slack_secret.secret
        self.remediator_role = remediator.role
        self.sweep_schedule = sweep_schedule
        CfnOutput(self, "SlackRequestUrl", value=api.url, description="Slack app: Interactivity request URL")
        CfnOutput(self, "CentralBusArn", value=bus.bus.event_bus_arn, description="Member rules forward here")
        CfnOutput(self, "AlarmTopicArn", value=alarms.topic.topic_arn, description="Subscribe the security team")
        CfnOutput(
            self,
            "SlackSecretArn",
            value=slack_secret.secret.secret_arn,
            description='Store {"bot_token": ..., "signing_secret": ...} here (docs/deploy.md)',
        )
        CfnOutput(self, "RemediatorRoleArn", value=remediator.role.role_arn, description="Member roles trust this")
        CfnOutput(
            self,
            "RemediationQueueUrl",
            value=remediation.queue.queue_url,
            description="macie-chatops restore FINDING_ID --queue-url <this>",
        )
        CfnOutput(self, "StateTableName", value=state.table.table_name, description="Findings state and audit trail")
