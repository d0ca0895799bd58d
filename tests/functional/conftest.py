"""Fixtures for the functional layer.

- ``atomic_moto``: moto's DynamoDB writes and SQS calls made atomic, as the real services' are, for the
  length of one test. moto applies a conditional write after evaluating its condition with nothing stopping
  another server thread in between; race tests use this fixture so they test our code, not moto's missing
  lock. It is the sandbox's own patch (``macie_chatops_sandbox.moto_atomic``), reference counted, so it
  also composes with a sandbox running in the same process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from macie_chatops_sandbox import moto_atomic


@pytest.fixture
def atomic_moto() -> Iterator[None]:
    moto_atomic.install()
    try:
        yield
    finally:
        moto_atomic.uninstall()
