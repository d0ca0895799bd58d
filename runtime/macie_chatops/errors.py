"""Exceptions shared across the runtime package (one place, so handlers can catch by family).

Add new families here with a one-line docstring. Messages must never contain tokens or secret values.
"""

from __future__ import annotations

from typing import Final

# Slack error codes that a new bot token fixes (after a rotation): the handlers re-read the Slack secret.
SLACK_TOKEN_ERRORS: Final = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)


class MacieChatOpsError(Exception):
    """Base class of every error this package raises on purpose."""


class SlackError(MacieChatOpsError):
    """Slack refused or could not complete a Web API call (``method``/``error_code`` say which and why)."""

    def __init__(self, message: str, *, method: str | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.error_code = error_code


class SlackRetryableError(SlackError):
    """A transient Slack failure (rate limit, 5xx, network): put the work back on the queue and retry later."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        error_code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, method=method, error_code=error_code)
        self.retry_after_s = retry_after_s


# SlackRetryLaterError's error_code when our own pace (slack_pacing), not Slack, held the call back.
PACED: Final = "paced"


class SlackRetryLaterError(SlackRetryableError):
    """Slack cannot take this call for ``retry_after_s`` seconds (a 429, or the channel's pace) and the wait does
    not fit the invocation: re-queue the work with that delay (handlers/_root.py ``run_sqs_batch`` does)."""

    def __init__(
        self, message: str, *, retry_after_s: float, method: str | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message, method=method, error_code=error_code, retry_after_s=retry_after_s)
        self.retry_after_s: float = retry_after_s


class SlackMessageNotFoundError(SlackError):
    """chat.update found no such message (deleted in Slack, or a wrong channel/ts pair)."""


class SlackConfigurationError(SlackError):
    """Slack rejected the call for a reason only an operator can fix (channel, membership, token, scope)."""


class SecretError(MacieChatOpsError):
    """A secret in Secrets Manager is missing, empty or malformed; the message says what the operator must do."""
