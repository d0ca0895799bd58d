"""The logical ids of every resource that holds data or state are pinned. A changed id makes CloudFormation
replace the resource: the state table's records, a queue's messages, a bucket's copies, what a key encrypted,
the Slack credentials, the archive, the logs, and (for a StackSet) every member's stack instances. Moving or
renaming a construct must leave these ids as they are (docs/architecture.md §12)."""

from __future__ import annotations

from typing import Any, Final

from tests.functional.infra.conftest import Synthesized

STATEFUL_TYPES: Final = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::SecretsManager::Secret",
        "AWS::Events::Archive",
        "AWS::Logs::LogGroup",
        "AWS::CloudFormation::StackSet",
    }
)
CENTRAL: Final = {
    "StateTable962DE04C": "AWS::DynamoDB::Table",
    "Key961B73FD": "AWS::KMS::Key",
    "StateKey1A488514": "AWS::KMS::Key",  # issue 17 item 5: the table's, the secret's and the logs' own keys
    "SlackSecretKey85610288": "AWS::KMS::Key",
    "LogsKeyA6AB43B2": "AWS::KMS::Key",
    "ApprovalKey5E5C8775": "AWS::KMS::Key",  # issue 17 item 3: the HMAC key approvals are signed with
    "SlackSecret83D92A0C": "AWS::SecretsManager::Secret",
    "EventsBusArchive3AC72948": "AWS::Events::Archive",
    "IntakeQueue6FB53B87": "AWS::SQS::Queue",
    "IntakeDeadLetterQueueA5C12DB5": "AWS::SQS::Queue",
    "RemediationQueueD50E141C": "AWS::SQS::Queue",
    "RemediationDeadLetterQueueC293EC72": "AWS::SQS::Queue",
    "DeliveryDeadLetterQueue0C72DD8D": "AWS::SQS::Queue",
    "AdministratorForwardDeadLetterQueueB27405D6": "AWS::SQS::Queue",
    "DigestsQueue5D300572": "AWS::SQS::Queue",  # issue 14: the digest queue
    "DigestsDeadLetterQueue88D07A0F": "AWS::SQS::Queue",
    "BulkContinuationsQueue7E90F69D": "AWS::SQS::Queue",  # issue 14: a bulk approval's continuations
    "BulkContinuationsDeadLetterQueue033F6267": "AWS::SQS::Queue",
    "FindingHandlerLogs9DF11BD0": "AWS::Logs::LogGroup",
    "InteractionHandlerLogsB1882E18": "AWS::Logs::LogGroup",
    "RemediatorLogsC7F39A77": "AWS::Logs::LogGroup",
    "SweeperLogs964BB71D": "AWS::Logs::LogGroup",
    "RemindersLogs8D04B544": "AWS::Logs::LogGroup",  # issue 16: the reminders job
    "ReconcilerLogs9E8D7B0E": "AWS::Logs::LogGroup",  # issue 16: the reconciler
    "DigestWriterLogsE89A9DF8": "AWS::Logs::LogGroup",  # issue 14: the digest writer
    "SlackInteractionsAccessLogs9AE45FA2": "AWS::Logs::LogGroup",
}
STACKSETS: Final = {
    "RolesStackSet88D7245E": "AWS::CloudFormation::StackSet",
    "RegionalStackSet32BC893D": "AWS::CloudFormation::StackSet",
    "AdministratorForwardingStackSetF90C70F4": "AWS::CloudFormation::StackSet",
}
MEMBER_REGIONAL: Final = {
    "QuarantineKey3F3C79FD": "AWS::KMS::Key",
    "QuarantineBucketFDBDA180": "AWS::S3::Bucket",
    "AccessLogBucketDA470295": "AWS::S3::Bucket",
    "ForwardDeadLetterQueueEF5376F5": "AWS::SQS::Queue",
}
ADMINISTRATOR_FORWARDING: Final = {"ForwardDeadLetterQueueEF5376F5": "AWS::SQS::Queue"}


def _stateful(template: dict[str, Any]) -> dict[str, str]:
    return {key: r["Type"] for key, r in template["Resources"].items() if r["Type"] in STATEFUL_TYPES}


def test_stateful_resources_keep_their_logical_ids(administrator: Synthesized) -> None:
    # GIVEN the organisation whose templates hold every stateful resource (the administrator's forwarding
    # in the central stack and by its own StackSet)
    # WHEN the app is synthesized
    templates = administrator.all_templates()
    # THEN every stateful resource has the logical id it was first deployed with, and there are no others
    assert _stateful(templates["central"]) == CENTRAL
    assert _stateful(templates["stacksets"]) == STACKSETS
    assert _stateful(templates["member-regional"]) == MEMBER_REGIONAL
    assert _stateful(templates["administrator-forwarding"]) == ADMINISTRATOR_FORWARDING
    assert _stateful(templates["member-roles"]) == {}
