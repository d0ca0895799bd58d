"""Reference-counted patches of moto's classes and modules, shared by the sandbox's emulator extensions.

An extension (``moto_atomic``, ``moto_fast``, ``moto_conditional_copy``, ``moto_session_policy``,
``macie_standin``) is installed by the sandbox and again by test fixtures running in the same process: the first
``install()`` applies its patches, the last ``uninstall()`` puts back exactly what was there, in reverse order.
A patch that fails half-way is undone before the error goes on, so moto is never left half-patched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Patches:
    """One extension's patches: ``apply`` makes them through :meth:`replace` and :meth:`on_uninstall`."""

    def __init__(self, apply: Callable[[Patches], None]) -> None:
        self._apply = apply
        self._lock = threading.Lock()
        self._installs = 0
        self._undo: list[Callable[[], None]] = []  # run in reverse order

    def replace(self, target: Any, name: str, replacement: Any) -> None:
        """Set ``target.name`` (a class's or a module's own attribute) to ``replacement`` until uninstalled."""
        original = target.__dict__[name]
        setattr(target, name, replacement)
        self._undo.append(lambda: setattr(target, name, original))

    def on_uninstall(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` when the patches are taken off (after everything applied later is undone)."""
        self._undo.append(undo)

    def install(self) -> None:
        with self._lock:
            self._installs += 1
            if self._installs > 1:
                return
            try:
                self._apply(self)
            except BaseException:
                self._installs = 0
                self._run_undo()
                raise

    def uninstall(self) -> None:
        """Take one install back; the last one restores moto. More uninstalls than installs change nothing."""
        with self._lock:
            if self._installs == 0:
                return
            self._installs -= 1
            if self._installs == 0:
                self._run_undo()

    def installed(self) -> bool:
        with self._lock:
            return self._installs > 0

    def _run_undo(self) -> None:
        while self._undo:
            self._undo.pop()()
