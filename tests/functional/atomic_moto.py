"""Make moto's DynamoDB writes atomic per call, as real DynamoDB's are.

moto evaluates a ConditionExpression and then applies the write in plain Python, with nothing stopping
another server thread from doing the same in between; real DynamoDB never lets two conditional writes on
one item both succeed. The race tests (and anything else that relies on conditional writes under
concurrency) use the ``atomic_dynamodb`` fixture so they test our code, not moto's missing lock.
The moto server runs in this process (ThreadedMotoServer), so patching its backend class is enough.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def _serialised(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return locked


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    # One re-entrant lock across tables: plenty for tests, and safe when one write calls another.
    lock = threading.RLock()
    for name in _WRITES:
        if hasattr(DynamoDBBackend, name):
            monkeypatch.setattr(DynamoDBBackend, name, _serialised(getattr(DynamoDBBackend, name), lock))
