"""Fixtures for the functional layer.

- ``atomic_moto``: moto's DynamoDB writes and SQS calls made atomic, as the real services' are, for the
  length of one test. moto applies a conditional write after evaluating its condition with nothing stopping
  another server thread in between; race tests use this fixture so they test our code, not moto's missing
  lock. It is the sandbox's own patch (``macie_chatops_sandbox.moto_atomic``), reference counted, so it
  also composes with a sandbox running in the same process.
- ``moto_fast`` for every module (``_moto_fast``), as the sandbox has it: it changes no response (its own tests
  compare the raw bytes), it only takes out costs only the emulator has, such as a deep copy of every table a
  transaction names (a group of 300 members joined one by one took minutes). The tests of moto's patches
  themselves (``test_moto_*.py``) see moto as it is, and ``without_moto_fast`` holds them to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from macie_chatops_sandbox import moto_atomic, moto_fast


@pytest.fixture(scope="module", autouse=True)
def _moto_fast(request: pytest.FixtureRequest) -> Iterator[None]:
    module = request.path.name
    if module.startswith("test_moto_") or request.path.parent.name == "infra":  # (infra: no moto at all)
        yield
        return
    moto_fast.install()
    try:
        yield
    finally:
        moto_fast.uninstall()


@pytest.fixture
def without_moto_fast() -> Iterator[None]:
    """The baseline must be moto's own code: nothing else in this process may hold moto_fast installed."""
    assert not moto_fast.installed()
    yield
    while moto_fast.installed():  # a failed test must not leave it behind for the next
        moto_fast.uninstall()


@pytest.fixture
def atomic_moto() -> Iterator[None]:
    moto_atomic.install()
    moto_fast.install()
    try:
        yield
    finally:
        moto_fast.uninstall()
        moto_atomic.uninstall()
