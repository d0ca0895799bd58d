"""The Slack adapter: slack_sdk's WebClient, with Slack's failures sorted into what the pipeline acts on.

- ``SlackRetryLaterError`` (a ``SlackRetryableError``): HTTP 429, or the channel's pace slot, that cannot be
  waited out inside the Lambda deadline (``retry_after_s``): re-queue the work with that delay.
- ``SlackRetryableError``: HTTP 5xx, Slack's transient errors, network errors and timeouts: put the work back on
  the queue.
- ``SlackConfigurationError``: channel_not_found, not_in_channel, invalid_auth, missing_scope, invalid_blocks,
  no_such_subteam, ...: the message names the channel or group and what the operator must do; retrying
  will not help.
- ``SlackMessageNotFoundError``: chat.update of a message deleted in Slack, or a reply in its thread.
- ``SlackError``: any other refusal, with ``method`` and ``error_code``.

With a pacer (``slack_pacing.ChannelPacer``), posts and updates first take their slot of the channel's pace
(shared by every concurrent writer through the state table), sleeping while the wait fits the deadline.

A SlackClient installs its :class:`DeadlineRateLimitRetryHandler` on the WebClient it wraps, replacing any
earlier one: build one per invocation around a cached WebClient (it is cheap), so the deadline is the current
invocation's. The token never appears in a message or a log line (slack_sdk redacts the Authorization header).
"""

from __future__ import annotations

import functools
import http.client
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.error import URLError

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import SlackResponse, WebClient

from macie_chatops.errors import (
    PACED,
    SlackConfigurationError,
    SlackError,
    SlackMessageNotFoundError,
    SlackRetryableError,
    SlackRetryLaterError,
)
from macie_chatops.names import SLACK_RATE_LIMITED_METRIC
from macie_chatops.ports import Counter
from macie_chatops.slack_messages import SlackMessage

if TYPE_CHECKING:  # a pacer is passed in by the handlers that pace; those that do not (a click, reminders) load none
    from macie_chatops.slack_pacing import Pacer

logger = logging.getLogger(__name__)

SLACK_API_URL: Final = "https://slack.com/api/"
DEFAULT_TIMEOUT_S: Final = 10
DEFAULT_SAFETY_MARGIN_S: Final = 5.0
CONNECTION_RETRY_PAUSE_S: Final = 0.2
# Without a deadline (CLI, sandbox), never wait longer than this for one 429.
MAX_WAIT_WITHOUT_DEADLINE_S: Final = 30.0
# Writers woken for the same slot should not all ask at the same instant.
PACE_JITTER_S: Final = 0.05
# conversations.replies: replies asked for per call, and calls at most per thread (a 10,000-finding group's thread
# holds about 100 page replies).
THREAD_PAGE_LIMIT: Final = 200
MAX_THREAD_PAGES: Final = 10

# Slack's answers that mean "try again later" (HTTP 200 with ok=false, or alongside a 5xx).
RETRYABLE_ERRORS: Final = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"}
)

_ERROR_CODE: Final = re.compile(r"[a-z0-9_]{1,64}")


@dataclass(frozen=True)
class SlackIdentity:
    """Who the bot token is (auth.test)."""

    team_id: str
    user_id: str
    bot_id: str | None = None
    team: str | None = None
    url: str | None = None


def build_web_client(token: str, *, base_url: str | None = None, timeout: int = DEFAULT_TIMEOUT_S) -> WebClient:
    """A WebClient for the bot token. ``base_url`` points it at the sandbox's stand-in (env SLACK_API_URL)."""
    if not token or not token.strip():
        raise SlackConfigurationError(
            "the Slack bot token is empty: put the app's bot token (xoxb-...) in the Slack secret's bot_token"
        )
    url = base_url or SLACK_API_URL
    if not url.endswith("/"):
        url += "/"  # WebClient joins method names onto the base URL; without the slash it drops "api"
    # Connection resets are retried once by slack_sdk's own handler, after a short fixed pause (its default
    # backoff + jitter can sleep 1.5 s, half of the interaction endpoint's 3 s); 429s by SlackClient's handler.
    return WebClient(
        token=token,
        base_url=url,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(
                max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(CONNECTION_RETRY_PAUSE_S)
            )
        ],
    )


def _retry_after_s(response: HttpResponse) -> float:
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            raw = values[0] if isinstance(values, list | tuple) and values else values
            try:
                return max(0.0, float(str(raw)))
            except ValueError:
                break
    return 1.0  # Slack always sends it; if not, one second is its documented pace


class DeadlineRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retry, but only while the wait still fits before the Lambda deadline.

    ``RateLimitErrorRetryHandler`` sleeps ``Retry-After`` whatever the time left; in a Lambda that can end
    the invocation mid-sleep and lose the batch. Here a 429 is retried only when
    ``remaining_time_s() - retry_after > safety_margin_s``; else the 429 is returned to the caller.
    """

    def __init__(
        self,
        *,
        remaining_time_s: Callable[[], float] | None,
        safety_margin_s: float = DEFAULT_SAFETY_MARGIN_S,
        max_retry_count: int = 2,
        max_wait_s: float = MAX_WAIT_WITHOUT_DEADLINE_S,
        sleep: Callable[[float], None] = time.sleep,
        on_rate_limited: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.remaining_time_s = remaining_time_s
        self.safety_margin_s = safety_margin_s
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.on_rate_limited = on_rate_limited

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        # Every 429 passes here once, retried or not (the base class stops at max_retry_count): tell the caller
        # which method Slack limited (the last part of the API URL, e.g. chat.postMessage).
        if response is not None and response.status_code == 429 and self.on_rate_limited is not None:
            self.on_rate_limited(request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "unknown")
        return super().can_retry(state=state, request=request, response=response, error=error)

    def fits(self, wait_s: float) -> bool:
        if wait_s > self.max_wait_s:
            return False
        if self.remaining_time_s is None:
            return True
        return self.remaining_time_s() - wait_s > self.safety_margin_s

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait_s = _retry_after_s(response)
        if self.fits(wait_s):
            return True
        logger.warning("Slack rate limit: Retry-After %.1fs does not fit before the deadline; not waiting", wait_s)
        return False

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:  # pragma: no cover - _can_retry only accepts responses
            raise SlackRetryableError("rate-limit retry without a response")
        wait_s = _retry_after_s(response)
        logger.info("Slack rate limit: waiting %.1fs (Retry-After) before retrying", wait_s)
        state.next_attempt_requested = True
        self.sleep(wait_s)
        state.increment_current_attempt()


def _configuration_message(code: str, method: str, channel: str | None, target: str | None, needed: str) -> str | None:
    """What the operator must do about a Slack error, or None when it is not a configuration problem."""
    where = f"channel {channel}" if channel else "the channel"
    token_hint = (
        "put the Slack app's current bot token (xoxb-...) in the Slack secret's bot_token "
        "(Secrets Manager, see SLACK_SECRET_ARN) and reinstall the app if it was removed"
    )
    messages = {
        "channel_not_found": f"Slack {where} does not exist or the bot cannot see it: fix the team's channel id "
        "in accounts.yaml, or invite the bot if it is a private channel",
        "not_in_channel": f"the bot is not a member of Slack {where}: invite it (/invite @macie-chatops in the "
        "channel)",
        "is_archived": f"Slack {where} is archived: unarchive it or set another channel for the team in accounts.yaml",
        "channel_is_archived": f"Slack {where} is archived: unarchive it or set another channel for the team in "
        "accounts.yaml",
        "invalid_auth": f"Slack rejected the bot token (invalid_auth): {token_hint}",
        "not_authed": f"no Slack bot token was sent (not_authed): {token_hint}",
        "token_revoked": f"the Slack bot token was revoked: {token_hint}",
        "token_expired": f"the Slack bot token expired: {token_hint}",
        "account_inactive": f"the Slack bot's account is inactive (app uninstalled or deactivated): {token_hint}",
        "no_permission": f"the Slack bot has no permission for {method}: reinstall the app from its manifest",
        "missing_scope": f"the Slack app lacks the scope {needed or '?'} for {method}: add it to the app "
        "(the manifest has chat:write and usergroups:read; channels:history and groups:history with slack-manifest "
        "--read-threads) and reinstall the app",
        "not_allowed_token_type": f"{method} needs a bot token (xoxb-...): fix the Slack secret's bot_token",
        "ekm_access_denied": f"the workspace's Enterprise Key Management denied access to {where}: ask a Slack admin",
        "team_access_not_granted": "the bot token has no access to this workspace: install the app in it",
        "restricted_action": f"the workspace does not let the bot post in {where}: ask a Slack admin to allow it",
        "restricted_action_read_only_channel": f"Slack {where} is read-only for the bot: pick another channel",
        "restricted_action_thread_only_channel": f"Slack {where} only accepts thread replies: pick another channel",
        "restricted_action_non_threadable_channel": f"Slack {where} does not accept this message: pick another channel",
        "no_such_subteam": f"Slack user group {target} does not exist: fix the team's approvers in accounts.yaml",
        "subteam_not_found": f"Slack user group {target} does not exist: fix the team's approvers in accounts.yaml",
        "plan_upgrade_required": "this Slack workspace's plan has no user groups: list approvers by user id "
        "in accounts.yaml",
        "cant_update_message": f"the message in {where} was not posted by this bot, so it cannot be updated",
        "invalid_blocks": f"Slack refused the message blocks for {where} (invalid_blocks): a bug in "
        "macie-chatops message building, report it with the finding id",
        "invalid_blocks_format": f"Slack refused the message blocks for {where} (invalid_blocks_format): a bug in "
        "macie-chatops message building, report it with the finding id",
        "msg_too_long": f"Slack refused the message for {where} as too long: a bug in macie-chatops message "
        "building, report it with the finding id",
        "msg_blocks_too_long": f"Slack refused the message blocks for {where} as too long: a bug in macie-chatops "
        "message building, report it with the finding id",
        "no_text": f"Slack refused an empty message for {where}: a bug in macie-chatops, report it",
        "invalid_arguments": f"Slack refused the arguments of {method}: a bug in macie-chatops, report it",
    }
    return messages.get(code)


class SlackClient:
    """The four Slack calls the pipeline makes, with Slack's failures sorted into retry / fix-config / other."""

    def __init__(
        self,
        web_client: WebClient,
        *,
        remaining_time_s: Callable[[], float] | None = None,
        safety_margin_s: float = DEFAULT_SAFETY_MARGIN_S,
        max_rate_limit_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
        metrics: Counter | None = None,
    ) -> None:
        self._web = web_client
        self._pacer = pacer
        self._sleep = sleep

        def rate_limited(method: str) -> None:
            if metrics is not None:  # every 429 Slack answers, waited out or not (the dashboard's "Slack 429s")
                metrics.count(SLACK_RATE_LIMITED_METRIC, method=method)

        self._rate_limit_handler = DeadlineRateLimitRetryHandler(
            remaining_time_s=remaining_time_s,
            safety_margin_s=safety_margin_s,
            max_retry_count=max_rate_limit_retries,
            sleep=sleep,
            on_rate_limited=rate_limited,
        )
        # Replace any rate-limit handler (including a previous SlackClient's) with this deadline's one.
        kept = [h for h in web_client.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)]
        web_client.retry_handlers = [*kept, self._rate_limit_handler]

    @property
    def web_client(self) -> WebClient:
        return self._web

    def post(self, channel: str, message: SlackMessage) -> str:
        """Post ``message`` to ``channel`` (a channel id); the message's ``ts`` identifies it for updates."""
        return self._post_message(channel, message, thread_ts=None)

    def reply(
        self, channel: str, thread_ts: str, message: SlackMessage, *, metadata: Mapping[str, Any] | None = None
    ) -> str:
        """Post ``message`` in the thread of message ``thread_ts`` in ``channel`` (not broadcast to the channel);
        returns the reply's own ts. ``metadata``: Slack message metadata (``event_type``, ``event_payload``),
        which :meth:`thread_metadata` reads back."""
        return self._post_message(channel, message, thread_ts=thread_ts, metadata=metadata)

    def thread_metadata(self, channel: str, thread_ts: str) -> list[tuple[str, Mapping[str, Any]]]:
        """(ts, metadata) of every reply in the thread of ``thread_ts`` that carries message metadata, oldest first
        (conversations.replies with include_all_metadata, every page of it; Tier 3, unpaced: called rarely)."""
        found: list[tuple[str, Mapping[str, Any]]] = []
        cursor: str | None = None
        for _ in range(MAX_THREAD_PAGES):
            response = self._call(
                "conversations.replies",
                functools.partial(
                    self._web.conversations_replies,
                    channel=channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=THREAD_PAGE_LIMIT,
                    cursor=cursor,
                ),
                channel=channel,
                ts=thread_ts,
            )
            messages = response.get("messages")
            if not isinstance(messages, list):
                raise SlackError("conversations.replies answered without messages", method="conversations.replies")
            for message in messages:
                if not isinstance(message, dict) or message.get("ts") == thread_ts:
                    continue  # the parent comes first in every answer
                ts, metadata = message.get("ts"), message.get("metadata")
                if isinstance(ts, str) and isinstance(metadata, dict):
                    found.append((ts, metadata))
            metadata_of_page = response.get("response_metadata")
            cursor = metadata_of_page.get("next_cursor") if isinstance(metadata_of_page, dict) else None
            if not response.get("has_more") or not cursor:
                return found
        raise SlackError(
            f"conversations.replies: the thread of {thread_ts} in {channel} has more than "
            f"{MAX_THREAD_PAGES * THREAD_PAGE_LIMIT} replies: not read to its end",
            method="conversations.replies",
        )

    def _post_message(
        self,
        channel: str,
        message: SlackMessage,
        *,
        thread_ts: str | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        blocks = message.block_dicts()  # a block that fails validation is a bug: raise it as is, before any call
        self._take_slot(channel, "chat.postMessage")
        response = self._call(
            "chat.postMessage",
            lambda: self._web.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,  # slack_sdk leaves None out of the request: a post to the channel
                text=message.text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                metadata=None if metadata is None else dict(metadata),  # None: left out of the request
            ),
            channel=channel,
            ts=thread_ts,
        )
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            where = f"channel {channel}" if thread_ts is None else f"thread {thread_ts}"
            raise SlackError(f"chat.postMessage to {where} answered without a ts", method="chat.postMessage")
        return ts

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Replace the message ``ts`` in ``channel`` (text and blocks) with ``message``."""
        blocks = message.block_dicts()
        self._take_slot(channel, "chat.update")
        self._call(
            "chat.update",
            lambda: self._web.chat_update(channel=channel, ts=ts, text=message.text, blocks=blocks),
            channel=channel,
            ts=ts,
        )

    def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> str:
        """Open a modal for the user whose click gave ``trigger_id`` (valid 3 seconds, once); the view's id."""
        response = self._call("views.open", lambda: self._web.views_open(trigger_id=trigger_id, view=dict(view)))
        opened = response.get("view")
        view_id = opened.get("id") if isinstance(opened, dict) else None
        if not isinstance(view_id, str) or not view_id:
            raise SlackError("views.open answered without a view id", method="views.open")
        return view_id

    def usergroup_members(self, group_id: str) -> frozenset[str]:
        """The user ids in the Slack user group ``group_id`` (S...), disabled users excluded."""
        response = self._call(
            "usergroups.users.list", lambda: self._web.usergroups_users_list(usergroup=group_id), target=group_id
        )
        users = response.get("users")
        if not isinstance(users, list) or not all(isinstance(user, str) for user in users):
            raise SlackError(
                f"usergroups.users.list for {group_id} answered without a list of users",
                method="usergroups.users.list",
            )
        return frozenset(users)

    def auth_test(self) -> SlackIdentity:
        """Who the token is; the workspace id is what the interaction endpoint compares clicks against."""
        response = self._call("auth.test", self._web.auth_test)
        team_id, user_id = response.get("team_id"), response.get("user_id")
        if not isinstance(team_id, str) or not isinstance(user_id, str):
            raise SlackError("auth.test answered without team_id/user_id", method="auth.test")
        bot_id, team, url = response.get("bot_id"), response.get("team"), response.get("url")
        return SlackIdentity(
            team_id=team_id,
            user_id=user_id,
            bot_id=bot_id if isinstance(bot_id, str) else None,
            team=team if isinstance(team, str) else None,
            url=url if isinstance(url, str) else None,
        )

    def _take_slot(self, channel: str, method: str) -> None:
        """Wait for ``method``'s slot in ``channel`` (no pacer: at once); raises SlackRetryLaterError when the
        wait does not fit the deadline (or, without one, the longest wait allowed in all)."""
        if self._pacer is None:
            return
        waited = 0.0
        while (wait := self._pacer.reserve(channel, method)) > 0:
            wait += random.uniform(0, PACE_JITTER_S)  # spreading the writers woken together, not a secret
            if waited + wait > self._rate_limit_handler.max_wait_s or not self._rate_limit_handler.fits(wait):
                raise SlackRetryLaterError(
                    f"Slack {method} to channel {channel}: the channel's next slot is {wait:.1f}s away, beyond "
                    "the deadline: retry later",
                    method=method,
                    error_code=PACED,
                    retry_after_s=wait,
                )
            logger.debug("Slack pace: waiting %.2fs for the next %s slot in %s", wait, method, channel)
            self._sleep(wait)
            waited += wait

    # --- error translation --------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        call: Callable[[], SlackResponse],
        *,
        channel: str | None = None,
        ts: str | None = None,
        target: str | None = None,
    ) -> SlackResponse:
        try:
            return call()
        except SlackApiError as exc:
            raise self._translate(exc, method, channel=channel, ts=ts, target=target) from exc
        except (URLError, OSError, http.client.HTTPException) as exc:
            # URLError, timeouts and connection resets are all OSError; slack_sdk already retried once.
            raise SlackRetryableError(
                f"Slack {method} failed on the network ({type(exc).__name__}: {exc})", method=method
            ) from exc
        except SlackClientError as exc:
            raise SlackError(f"Slack {method} failed: {exc}", method=method) from exc

    @staticmethod
    def _translate(
        exc: SlackApiError, method: str, *, channel: str | None, ts: str | None, target: str | None
    ) -> SlackError:
        response = exc.response
        status = response.status_code
        data: Any = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or "")
        if not _ERROR_CODE.fullmatch(code):
            # slack_sdk puts a description of a non-JSON body (an HTML 5xx page) here; keep codes short.
            code = f"http_{status}"
        if status == 429 or code == "ratelimited":
            retry_after = _header_seconds(response.headers)
            return SlackRetryLaterError(
                f"Slack {method} is rate limited (Retry-After {retry_after:g}s) and the wait does not fit "
                "before the deadline: retry later",
                method=method,
                error_code="ratelimited",
                retry_after_s=retry_after,
            )
        if status >= 500 or code in RETRYABLE_ERRORS:
            return SlackRetryableError(
                f"Slack {method} failed with HTTP {status} ({code}): retry later", method=method, error_code=code
            )
        if code in ("message_not_found", "thread_not_found"):
            return SlackMessageNotFoundError(
                f"Slack {method}: message {ts} is not in channel {channel} (deleted?)", method=method, error_code=code
            )
        needed = data.get("needed") if isinstance(data.get("needed"), str) else ""
        advice = _configuration_message(code, method, channel, target, needed)
        if advice is not None:
            return SlackConfigurationError(f"Slack {method} failed ({code}): {advice}", method=method, error_code=code)
        where = f" for channel {channel}" if channel else (f" for {target}" if target else "")
        return SlackError(f"Slack {method}{where} failed: {code}", method=method, error_code=code)


def _header_seconds(headers: Any) -> float:
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(str(raw)))
            except ValueError:
                return 1.0
    return 1.0
