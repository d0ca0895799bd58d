"""Names shared by the CDK app, the member StackSets, the handlers and the sandbox.

Keeping them in one module means the sandbox provisions exactly what the stacks deploy, and a handler
reads exactly the environment variable the stack sets.
"""

from typing import Final

PROJECT: Final = "macie-chatops"
# CloudWatch namespace of the handlers' metrics (EMF), as the stack's alarms and dashboards read them.
METRICS_NAMESPACE: Final = "MacieChatOps"

# Central (security account) resources.
CENTRAL_BUS_NAME: Final = "macie-chatops-findings"
INTAKE_QUEUE_NAME: Final = "macie-chatops-intake"
INTAKE_DLQ_NAME: Final = "macie-chatops-intake-dlq"
REMEDIATION_QUEUE_NAME: Final = "macie-chatops-remediation"
REMEDIATION_DLQ_NAME: Final = "macie-chatops-remediation-dlq"
# Finding floods (docs/architecture.md §22): {"group_id": ...} -> the digest writer.
DIGEST_QUEUE_NAME: Final = "macie-chatops-digests"
DIGEST_DLQ_NAME: Final = "macie-chatops-digests-dlq"
# A bulk approval's signed continuations (§22, Bulk decisions) -> the interaction function itself.
BULK_CONTINUATION_QUEUE_NAME: Final = "macie-chatops-bulk-continuations"
BULK_CONTINUATION_DLQ_NAME: Final = "macie-chatops-bulk-continuations-dlq"
BULK_CONTINUATIONS_REFUSED_METRIC: Final = "BulkContinuationsRefused"
STATE_TABLE_NAME: Final = "macie-chatops-findings"
CENTRAL_KEY_ALIAS: Final = "alias/macie-chatops"  # the CMK of the central queues and the alarm topic
STATE_KEY_ALIAS: Final = "alias/macie-chatops-state"  # the CMK of the state table (and its stream)
SLACK_SECRET_KEY_ALIAS: Final = "alias/macie-chatops-slack"  # the CMK of the Slack secret
LOGS_KEY_ALIAS: Final = "alias/macie-chatops-logs"  # the CMK of the central stack's log groups
DASHBOARD_NAME: Final = "macie-chatops"
SLACK_WEB_ACL_NAME: Final = "macie-chatops-slack"
# Metrics the dashboard reads (service dimension: the handler's): every HTTP 429 from Slack, by method; the
# remediator's seconds per job, by result ("quarantined": a move's latency).
SLACK_RATE_LIMITED_METRIC: Final = "SlackRateLimited"
JOB_SECONDS_METRIC: Final = "JobSeconds"
CENTRAL_RULE_NAME: Final = "macie-chatops-intake"
REMEDIATOR_ROLE_NAME: Final = "macie-chatops-remediator"

# Member account resources (one per account, or per account x region).
MEMBER_FORWARD_RULE_NAME: Final = "macie-chatops-forward"
MEMBER_FORWARD_ROLE_NAME: Final = "macie-chatops-forwarder"
DEFAULT_REMEDIATION_ROLE_NAME: Final = "macie-chatops-remediation"
# The Macie administrator's forwarding (its jobs and automated discovery publish there): a rule on its default bus
# in each listed region, unless it is also a member there (the member rule already forwards that bus).
ADMINISTRATOR_FORWARD_RULE_NAME: Final = "macie-chatops-forward-administrator"
ADMINISTRATOR_FORWARD_DLQ_NAME: Final = "macie-chatops-forward-administrator-dlq"  # that rule's dead letters
ADMINISTRATOR_ALARM_RULE_NAME: Final = "macie-chatops-forward-administrator-alarms"  # its DLQ alarm -> central bus
ADMINISTRATOR_FORWARDING_STACKSET_NAME: Final = "macie-chatops-administrator-forwarding"


def administrator_forward_role_name(region: str) -> str:
    """The forwarding role of the administrator's forwarding stack in one region (roles are global, stacks not)."""
    return f"macie-chatops-forwarder-administrator-{region}"


def quarantine_bucket_name(account_id: str, region: str) -> str:
    """The quarantine bucket of one member account in one region (bucket names are global)."""
    return f"{QUARANTINE_BUCKET_PREFIX}{account_id}-{region}"


# Environment variables read by the handlers' composition roots.
ENV_STATE_TABLE: Final = "STATE_TABLE_NAME"
ENV_REMEDIATION_QUEUE_URL: Final = "REMEDIATION_QUEUE_URL"
ENV_SLACK_SECRET_ARN: Final = "SLACK_SECRET_ARN"
ENV_CONFIG_PATH: Final = "MACIE_CHATOPS_CONFIG_JSON"
ENV_CONFIG_FILE: Final = "MACIE_CHATOPS_CONFIG"
ENV_SLACK_API_URL: Final = "SLACK_API_URL"  # only the sandbox sets it (Slack stand-in base URL)
ENV_AWS_ENDPOINT_URL: Final = "AWS_ENDPOINT_URL"  # only the sandbox sets it (moto server)
# "off": Slack writes are not paced (slack_pacing); only the sandbox sets it, when its stand-in has no posting limit.
ENV_SLACK_PACING: Final = "SLACK_PACING"
# The sweeper's policy (optional; defaults in macie_chatops.sweeper): how long an approval may wait for its
# outcome before its job is re-queued, and how many times the sweeper re-queues it before reporting it stuck.
ENV_SWEEP_STALE_AFTER_S: Final = "SWEEP_STALE_AFTER_SECONDS"
ENV_SWEEP_MAX_REQUEUES: Final = "SWEEP_MAX_REQUEUES"
# The reconciler (docs/architecture.md §13): the intake queue it hands recovered findings to and (only when the
# Macie administrator is another account) the role it reads Macie through.
ENV_INTAKE_QUEUE_URL: Final = "INTAKE_QUEUE_URL"
# The digest queue (§22): set for every handler that changes a grouped finding; unset, nothing is grouped.
ENV_DIGEST_QUEUE_URL: Final = "DIGEST_QUEUE_URL"
ENV_BULK_CONTINUATION_QUEUE_URL: Final = "BULK_CONTINUATION_QUEUE_URL"  # the interaction function's own queue
ENV_MACIE_READER_ROLE_ARN: Final = "MACIE_READER_ROLE_ARN"
# The KMS HMAC key that signs approvals (docs/architecture.md §23): its ARN, for the handlers that sign (the
# interaction endpoint, the finding handler's auto approvals) and verify (the remediator, the sweeper).
ENV_APPROVAL_KEY_ID: Final = "APPROVAL_KEY_ID"
APPROVAL_KEY_ALIAS: Final = "alias/macie-chatops-approvals"  # the operator CLI finds the key by it
UNVERIFIED_APPROVALS_METRIC: Final = "UnverifiedApprovals"  # counted by the remediator and the sweeper (alarmed)

# The bundled config document, generated from accounts.yaml at synth time.
BUNDLED_CONFIG_FILE: Final = "config.json"

# Slack secret keys (the secret is one JSON document).
SLACK_SECRET_BOT_TOKEN: Final = "bot_token"
SLACK_SECRET_SIGNING_SECRET: Final = "signing_secret"

# Slack action ids on our buttons.
ACTION_REMEDIATE: Final = "macie_chatops.remediate"
ACTION_DISMISS: Final = "macie_chatops.dismiss"
ACTION_RESTORE: Final = "macie_chatops.restore"
# A policy finding's fix and its Undo (docs/architecture.md §18).
ACTION_BLOCK_PUBLIC_ACCESS: Final = "macie_chatops.block_public_access"
ACTION_UNDO_BLOCK_PUBLIC_ACCESS: Final = "macie_chatops.undo_block_public_access"
# A group's digest (docs/architecture.md §22): act on every listed finding at once, or on one from a thread page.
ACTION_BULK_REMEDIATE: Final = "macie_chatops.bulk_remediate"
ACTION_BULK_DISMISS: Final = "macie_chatops.bulk_dismiss"
ACTION_ACT_ON_ONE: Final = "macie_chatops.act_on_one"

# State table layout (the CDK table, the sandbox table and the store adapter all use these).
STATE_TABLE_KEY: Final = "finding_id"  # partition key (S); one item per finding
PENDING_INDEX_NAME: Final = "pending-by-team"  # sparse GSI: only items awaiting approval carry its keys
PENDING_INDEX_PARTITION: Final = "pending_team"  # (S) team name, set only while PENDING_APPROVAL
PENDING_INDEX_SORT: Final = "received_at"  # (S) ISO 8601 UTC, so oldest first
STATE_TABLE_TTL_ATTRIBUTE: Final = "expires_at"  # (N) epoch seconds; set on final states only
# Sparse GSI of the approved findings (the sweeper's): only an APPROVED item carries its keys, set when it enters
# APPROVED and removed when it leaves, in the transition's own conditional write.
APPROVED_INDEX_NAME: Final = "approved-since"
APPROVED_INDEX_PARTITION: Final = "approved_state"  # (S) always APPROVED_INDEX_VALUE while APPROVED, else absent
APPROVED_INDEX_SORT: Final = "approved_at"  # (S) ISO 8601 UTC: when the finding last entered APPROVED
APPROVED_INDEX_VALUE: Final = "APPROVED"

# Infrastructure-only names (the CDK app, the member StackSets and docs/deploy.md).
FINDING_FUNCTION_NAME: Final = "macie-chatops-finding"
INTERACTION_FUNCTION_NAME: Final = "macie-chatops-interaction"
REMEDIATOR_FUNCTION_NAME: Final = "macie-chatops-remediator"
SWEEPER_FUNCTION_NAME: Final = "macie-chatops-sweeper"
SWEEPER_SCHEDULE_RULE_NAME: Final = "macie-chatops-sweep"  # EventBridge schedule on the default bus
REMINDERS_FUNCTION_NAME: Final = "macie-chatops-reminders"
DIGEST_WRITER_FUNCTION_NAME: Final = "macie-chatops-digest-writer"
REMIND_SCHEDULE_RULE_NAME: Final = "macie-chatops-remind"  # hourly: reminders of open reviews
ESCALATION_SCHEDULE_RULE_NAME: Final = "macie-chatops-escalate"  # daily: the escalation summary
STUCK_APPROVALS_METRIC: Final = "StuckApprovals"  # the sweeper publishes it (service = its function name); alarmed
RECONCILER_FUNCTION_NAME: Final = "macie-chatops-reconciler"
RECONCILER_ROLE_NAME: Final = "macie-chatops-reconciler"  # named: the administrator's reader role trusts it
RECONCILER_SCHEDULE_RULE_NAME: Final = "macie-chatops-reconcile"  # EventBridge schedule on the default bus
RECONCILE_ERRORS_METRIC: Final = "ReconcileErrors"  # the reconciler publishes it (service = its function name)
# The read-only role in the Macie administrator account (macie2:ListFindings and GetFindings only) the reconciler
# assumes when the administrator is not the security account; deployed with the administrator forwarding.
MACIE_READER_ROLE_NAME: Final = "macie-chatops-macie-reader"
CENTRAL_DELIVERY_DLQ_NAME: Final = "macie-chatops-delivery-dlq"  # central rules could not reach their target
ALARM_TOPIC_NAME: Final = "macie-chatops-alarms"
SLACK_API_NAME: Final = "macie-chatops-slack"
SLACK_INTERACTIONS_PATH: Final = "/slack/interactions"  # the Slack app's interactivity request URL path
MEMBER_FORWARD_DLQ_NAME: Final = "macie-chatops-forward-dlq"  # member rule could not reach the central bus
MEMBER_ALARM_RULE_NAME: Final = "macie-chatops-forward-alarms"  # member alarm state changes -> central bus
MEMBER_ALARM_NAME_PREFIX: Final = "macie-chatops-member-"  # member alarms the central stack relays to its topic
# The administrator forwarding's DLQ alarm outside the central stack: relayed like a member's (same prefix).
ADMINISTRATOR_FORWARD_ALARM_NAME: Final = f"{MEMBER_ALARM_NAME_PREFIX}administrator-forward-dlq"
QUARANTINE_KEY_ALIAS: Final = "alias/macie-chatops-quarantine"  # per member account x region
QUARANTINE_BUCKET_PREFIX: Final = "macie-chatops-quarantine-"  # quarantine_bucket_name's fixed part
# The role CloudFormation StackSets runs a member stack as (architecture §20): SERVICE_MANAGED creates
# `stacksets-exec-<id>` roles in each target account; SELF_MANAGED assumes the execution role the StackSet names,
# AWSCloudFormationStackSetExecutionRole when it names none (ours name none).
STACKSET_SERVICE_MANAGED_EXECUTION_ROLE_PATTERN: Final = "stacksets-exec-*"
STACKSET_SELF_MANAGED_EXECUTION_ROLE_NAME: Final = "AWSCloudFormationStackSetExecutionRole"


def stackset_execution_role_name(permission_model: str) -> str:
    """The execution role's name (an IAM ARN pattern's last part) for the StackSets' permission model."""
    if permission_model == "SERVICE_MANAGED":
        return STACKSET_SERVICE_MANAGED_EXECUTION_ROLE_PATTERN
    return STACKSET_SELF_MANAGED_EXECUTION_ROLE_NAME


MEMBER_ROLES_STACKSET_NAME: Final = "macie-chatops-member-roles"
MEMBER_REGIONAL_STACKSET_NAME: Final = "macie-chatops-member-regional"

# Security Hub in the loop (accounts.yaml `security_hub.enabled`; docs/architecture.md §17): the updater reads the
# state table's stream; the stream records it gave up on go to its dead-letter queue.
SECURITY_HUB_FUNCTION_NAME: Final = "macie-chatops-security-hub"
SECURITY_HUB_DLQ_NAME: Final = "macie-chatops-security-hub-dlq"
SECURITY_HUB_UPDATES_METRIC: Final = "SecurityHubUpdates"  # dimensions: result=updated and status, or result=failed
