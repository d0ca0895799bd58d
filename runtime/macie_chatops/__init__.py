"""macie-chatops: Organizations-wide Amazon Macie findings to Slack approval to quarantine.

The package is shipped unchanged as the Lambda asset. Pure domain modules (config, finding, decision,
states, slack_messages, move plan) import neither boto3 nor slack_sdk at module level and do no I/O;
adapters take their clients as arguments; handlers are thin composition roots.
"""

__version__ = "0.1.0"
