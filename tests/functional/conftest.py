"""Fixtures for the functional layer.

- ``atomic_moto``: moto's DynamoDB writes and SQS calls made atomic, as the real services' are, for the
  length of one test. moto applies a conditional write after evaluating its condition with nothing stopping
  another server thread in between; race tests use this fixture so they test our code, not moto's missing
  lock. It is the sandbox's own patch (``macie_chatops_sandbox.moto_atomic``), reference counted, so it
  also composes with a sandbox running in the same process. ``moto_fast`` is installed with it, as the sandbox
  does: it changes no response, only takes out costs only the emulator has.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from macie_chatops_sandbox import moto_atomic, moto_fast


@pytest.fixture
def atomic_moto() -> Iterator[None]:
    moto_atomic.install()
    moto_fast.install()
    try:
        yield
    finally:
        moto_fast.uninstall()
        moto_atomic.uninstall()
