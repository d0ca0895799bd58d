"""Make moto's DynamoDB and SQS calls atomic, as the real services are.

moto's server handles requests on threads and its backends are plain Python without locks:
- DynamoDB evaluates a ConditionExpression and then writes, so two concurrent conditional writes on one
  item can both succeed (real DynamoDB never allows that: concurrent clicks must give one transition);
- a DynamoDB read serializes the live item outside any lock, so it can see half of a concurrent
  UpdateItem (the new state without the attributes set in the same write; real DynamoDB reads an item
  whole): the read handlers (GetItem, BatchGetItem, Query, Scan, TransactGetItems) take the writes' lock;
- SQS ``delete_message`` rebuilds the queue's message list, so a message sent to the same queue at that
  moment is silently lost, and two concurrent receives can hand out the same message.

The sandbox and the functional tests (fixture ``atomic_moto``) run the moto server in their own process, so
wrapping the backend classes' methods in a lock is enough. A long-polling receive gives the SQS lock up while
it waits, so senders are not held up. ``install()`` / ``uninstall()`` are reference counted and restore the
original methods (``moto_patches``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Final

from macie_chatops_sandbox.moto_patches import Patches

_DYNAMODB_WRITES: Final = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_DYNAMODB_READ_HANDLERS: Final = ("get_item", "batch_get_item", "query", "scan", "transact_get_items")
_SQS_CALLS: Final = (
    "send_message",
    "send_message_batch",
    "receive_message",
    "delete_message",
    "delete_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "purge_queue",
)

_dynamodb_lock: threading.RLock | None = None


def dynamodb_write_lock() -> threading.RLock | None:
    """The lock moto's DynamoDB writes take while installed (None when not installed): moto_fast's transaction
    path takes it around its item copies, so they see and restore what no other write is changing."""
    return _dynamodb_lock


def _locked(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return wrapper


def _waiting_without(method: Callable[..., Any], lock: Any) -> Callable[..., Any]:
    """Queue.wait_for_messages: release ``lock`` entirely while blocked, take it back afterwards."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not lock._is_owned():
            return method(*args, **kwargs)
        saved = lock._release_save()
        try:
            return method(*args, **kwargs)
        finally:
            lock._acquire_restore(saved)

    return wrapper


def _forget_dynamodb_lock() -> None:
    global _dynamodb_lock
    _dynamodb_lock = None


def _apply(patches: Patches) -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    from moto.sqs.models import Queue, SQSBackend

    global _dynamodb_lock
    dynamodb_lock = _dynamodb_lock = threading.RLock()
    patches.on_uninstall(_forget_dynamodb_lock)  # after the methods taking it are restored
    for name in _DYNAMODB_WRITES:
        if name in DynamoDBBackend.__dict__:
            patches.replace(DynamoDBBackend, name, _locked(DynamoDBBackend.__dict__[name], dynamodb_lock))
    for name in _DYNAMODB_READ_HANDLERS:
        if name in DynamoHandler.__dict__:
            patches.replace(DynamoHandler, name, _locked(DynamoHandler.__dict__[name], dynamodb_lock))
    sqs_lock = threading.RLock()
    for name in _SQS_CALLS:
        if name in SQSBackend.__dict__:
            patches.replace(SQSBackend, name, _locked(SQSBackend.__dict__[name], sqs_lock))
    patches.replace(Queue, "wait_for_messages", _waiting_without(Queue.__dict__["wait_for_messages"], sqs_lock))


_PATCHES = Patches(_apply)
install = _PATCHES.install
uninstall = _PATCHES.uninstall
