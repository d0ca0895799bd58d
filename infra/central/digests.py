"""The digests room (docs/architecture.md §22): the digest queue and the digest writer, which keeps each group's
Slack digest and thread pages up to date; every handler that moves a grouped finding may wake it."""

from __future__ import annotations

from aws_cdk import Duration, Stack

from infra.central.foundation import Foundation
from infra.central.lambdas import ConsumedQueue, HandlerAssets, consume
from infra.components.alarms import OperationalAlarms
from infra.components.handler import HandlerFunction
from macie_chatops import names

# Pages of 100 members at Slack's pace of about one post a second, and one chat.update: well under a minute.
DIGEST_WRITER_TIMEOUT = Duration.seconds(60)
DIGEST_BATCH_SIZE = 10
DIGEST_MAX_CONCURRENCY = 2  # the event source's minimum; the channel pacer keeps any number of writers in pace
DIGEST_MAX_RECEIVES = 5
DIGEST_QUEUE = ConsumedQueue(names.DIGEST_QUEUE_NAME, names.DIGEST_DLQ_NAME, DIGEST_WRITER_TIMEOUT, DIGEST_MAX_RECEIVES)


class Digests:
    def __init__(self, stack: Stack, foundation: Foundation, assets: HandlerAssets) -> None:
        self.queue = DIGEST_QUEUE.build(stack, "Digests", foundation)
        self.writer = assets.handler(
            stack,
            "DigestWriter",
            function_name=names.DIGEST_WRITER_FUNCTION_NAME,
            handler="macie_chatops.handlers.digests.lambda_handler",
            description="keeps each group of findings' Slack digest and its thread pages up to date",
            environment=self.environment(),
            timeout=DIGEST_WRITER_TIMEOUT,
            memory_size=256,
        )
        # It wakes itself again (a change during a write, a group's close): consume grants sending to its queue.
        consume(self.writer, self.queue, batch_size=DIGEST_BATCH_SIZE, max_concurrency=DIGEST_MAX_CONCURRENCY)
        foundation.grant_records_and_slack(self.writer)

    def environment(self) -> dict[str, str]:
        """What a handler that moves grouped findings needs in its environment (without it, nothing is grouped)."""
        return {names.ENV_DIGEST_QUEUE_URL: self.queue.queue.queue_url}

    def woken_by(self, *handlers: HandlerFunction) -> None:
        """``handlers`` join findings to groups or move their members: they wake the writer."""
        for handler in handlers:
            for name, value in self.environment().items():
                handler.function.add_environment(name, value)
            self.queue.grant_send(handler.function)

    def watch(self, alarms: OperationalAlarms) -> None:
        """Dead letters (a group whose digest stopped being written), the writer's errors and throttles, and a
        queue nothing receives."""
        alarms.on_dead_letters(
            "DigestDeadLetters",
            queue=self.queue.dead_letter_queue,
            alarm_name=f"{names.DIGEST_DLQ_NAME}-not-empty",
            description="digest wake-ups the writer failed on 5 times: a group's digest is behind (its members are "
            "in the table; the next change of the group wakes the writer again)",
        )
        alarms.on_function_errors("DigestWriterErrors", function=self.writer.function, alarm_name="DigestWriter-errors")
        alarms.on_function_throttles(
            "DigestWriterThrottles", function=self.writer.function, alarm_name="DigestWriter-throttles"
        )
        max_age = DIGEST_QUEUE.max_age
        alarms.on_oldest_message_age(
            "DigestOldestMessage",
            queue=self.queue.queue,
            max_age=max_age,
            alarm_name=f"{names.DIGEST_QUEUE_NAME}-oldest-message",
            description=(
                f"digest wake-ups waited longer than every retry could take ({int(max_age.to_seconds())} s): "
                "nothing is receiving the queue (throttled or disabled writer); see docs/deploy.md (operating it)"
            ),
        )
