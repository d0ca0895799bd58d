"""Lambda SnapStart for the interaction handler (docs/architecture.md §6): during a SnapStart init, a before-snapshot
hook does the loading a container's first click would do, so every container restored from the version's snapshot
starts with it done; an after-restore hook reseeds the ``random`` module.

The hooks are registered through ``snapshot_restore_py``, which the Python managed runtimes carry (the layer does not
ship it), and only when the runtime says the init is a SnapStart one (``AWS_LAMBDA_INITIALIZATION_TYPE``): an
on-demand init, the sandbox and the tests register nothing. A hook that raises fails the init, so a version whose
prime fails (its bundled config unreadable, its environment incomplete) is not published.

What the prime must leave out of the snapshot, which every restored container shares: credentials and connections
(no boto3 client or session is built; the clients, the signing secret and the bot token are built or read on the
first click after the restore, by the handler's ``ContainerCache``), and anything meant to be unique (attempt ids,
tokens and MAC inputs are drawn at call time from ``secrets``/``uuid4``, which read the kernel's generator per call).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from macie_chatops import names

if TYPE_CHECKING:
    from macie_chatops.handlers._root import ContainerCache, Settings

# Set by the Lambda runtime: "on-demand", "provisioned-concurrency" or, while it initializes a version for its
# snapshot, "snap-start".
INITIALIZATION_TYPE_ENV: Final = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START: Final = "snap-start"

# What a single finding's first click imports after the handler module (handlers/interaction.py's dependencies and
# secret reading, _root.ContainerCache's builders, interaction.handle_interaction's click path). Not the forms' module
# (dismissal), the groups' clicks' (bulk), the continuations' (bulk_continuation) nor the exemptions' store: each is
# imported by the rarer request that needs it, primed or not.
CLICK_MODULES: Final = (
    "macie_chatops.config",
    "macie_chatops.interaction",
    "macie_chatops.job_request",
    "macie_chatops.jobs",
    "macie_chatops.store",
    "macie_chatops.group_store",
    "macie_chatops.approvals",
    "macie_chatops.slack_client",
    "macie_chatops.slack_secrets",
)
# A made-up Remediate click, parsed as a verified body is: its payload models validate once before the snapshot. Its
# ids name nothing real; it is never applied.
PRIME_CLICK_PAYLOAD: Final = {
    "type": "block_actions",
    "user": {"id": "U0PRIME"},
    "team": {"id": "T0PRIME"},
    "channel": {"id": "C0PRIME"},
    "container": {"type": "message", "channel_id": "C0PRIME", "message_ts": "1.000001"},
    "actions": [{"action_id": names.ACTION_REMEDIATE, "type": "button", "value": "0" * 32}],
}


def snapstart_init() -> bool:
    """Whether the runtime is initializing this container for a SnapStart snapshot."""
    return os.environ.get(INITIALIZATION_TYPE_ENV) == SNAP_START


def register_snapstart_hooks(prime: Callable[[], None]) -> bool:
    """During a SnapStart init, register ``prime`` to run before the snapshot and :func:`reseed_random` after each
    restore; whether they were registered (not outside a SnapStart init, nor without the runtime's library)."""
    if not snapstart_init():
        return False
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # a runtime without it takes the snapshot after the import alone, as before
        return False
    register_before_snapshot(prime)
    register_after_restore(reseed_random)
    return True


def prime_click(cache: ContainerCache, settings: Settings) -> None:
    """What a first click loads, done before the snapshot: :data:`CLICK_MODULES`, the bundled config into ``cache``
    (our own synthesized artifact: no secret), a made-up click parsed (its payload models' validators run), then
    the end of the cold start's collector pause (``end_cold_start``), so the snapshot holds what the init built
    frozen. No AWS client, session, secret or connection: those are built on the first click after the restore."""
    import importlib
    import json
    from urllib.parse import urlencode

    from macie_chatops.handlers._tracing import end_cold_start

    for name in CLICK_MODULES:
        importlib.import_module(name)
    cache.config(settings)
    from macie_chatops.interaction import Answer, parse_click

    parsed = parse_click(urlencode({"payload": json.dumps(PRIME_CLICK_PAYLOAD)}).encode())
    if isinstance(parsed, Answer):  # the prime's own click must parse, or the models changed under it
        raise RuntimeError(f"SnapStart prime: the made-up click was refused ({parsed.reason})")
    end_cold_start()


def reseed_random() -> None:
    """After a restore: reseed ``random``'s shared generator from the kernel. Every container restored from one
    snapshot starts with the same generator state (seeded when ``random`` was imported during the init); its users
    here (botocore's retry jitter, the Slack pacer's jitter) spread waits, which identical draws would not."""
    import random

    random.seed()
